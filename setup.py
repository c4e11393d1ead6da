"""Packaging for pifocus, the live-focus assistant for Raspberry Pi camera rigs."""
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "pifocus" / "__init__.py").read_text()).group(1)

setup(
    name="pifocus",
    version=VERSION,
    description="Live focus assistant for Raspberry Pi cameras: tile Laplacian gate + int8 CNN, "
    "LED/meter/buzzer/shutter outputs, autofocus drives, headless service with phone preview",
    long_description=(HERE / "README.md").read_text(encoding="utf-8") if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    license="BSD-3-Clause",
    python_requires=">=3.9",
    # The shipped model lives in the top-level models/ folder and installs as the package
    # pifocus.models, so it is loaded with importlib.resources.
    packages=find_packages(include=["pifocus", "pifocus.*"]) + ["pifocus.models"],
    package_dir={"pifocus.models": "models"},
    include_package_data=True,
    package_data={
        "pifocus.models": ["*.tflite", "*.json", "*.md"],
        "pifocus.web": ["static/*"],
        "pifocus.rig": ["static/*"],
    },
    install_requires=[
        "numpy>=1.24",
        "opencv-python-headless>=4.8",
        "gpiozero>=2.0",
        # LiteRT has wheels for x86_64 and aarch64, CPython 3.10-3.14.  32-bit Raspberry Pi OS
        # (armv7l) has none: use the [tflite-runtime] extra there.
        "ai-edge-litert>=1.2; platform_machine in 'x86_64 aarch64 AMD64 arm64' and python_version >= '3.10'",
        "tomli>=1.1; python_version < '3.11'",
    ],
    extras_require={
        # Pi-only GPIO backend (Pi 5 needs lgpio; gpiozero picks it up automatically).
        "pi": ["lgpio>=0.2; platform_machine == 'aarch64' and sys_platform == 'linux'"],
        # Legacy interpreter for 32-bit Raspberry Pi OS; its last release (2.14) crashes with numpy 2.
        "tflite-runtime": ["tflite-runtime>=2.11; python_version < '3.12'", "numpy<2"],
        "train": ["tensorflow-cpu>=2.16; platform_machine == 'x86_64'",
                  "tensorflow>=2.16; platform_machine != 'x86_64'",
                  "matplotlib>=3.5", "tqdm>=4.60"],
        "plot": ["matplotlib>=3.5"],
        # Rig scale over MQTT ([mqtt] in the config, `pifocus rig`); the broker is Mosquitto.
        "mqtt": ["paho-mqtt>=2.0"],
        # Camera raws for `pifocus cull` (DNG from the Pi, CR2/NEF/ARW/...): LibRaw through rawpy.
        "raw": ["rawpy>=0.18"],
        # Tests; selenium drives Debian's headless chromium for the web-page tests.
        "dev": ["pytest>=7", "hypothesis>=6.0", "matplotlib>=3.5", "tqdm>=4.60", "selenium>=4.10",
                "paho-mqtt>=2.0"],
    },
    entry_points={"console_scripts": ["pifocus = pifocus.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Operating System :: POSIX :: Linux",
        "Topic :: Multimedia :: Graphics :: Capture :: Digital Camera",
    ],
)
