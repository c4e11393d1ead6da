"""Packaging for pifocus, the live-focus assistant for Raspberry Pi camera rigs."""
import platform
import re
import struct
import sysconfig
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "pifocus" / "__init__.py").read_text()).group(1)


def arm32_userland() -> bool:
    """True when this Python is a 32-bit ARM build (armhf Raspberry Pi OS), whatever the kernel.

    32-bit Raspberry Pi OS on a Pi 4/5 runs a 64-bit kernel, so ``uname -m``, pip's
    ``platform_machine`` marker and ``sysconfig.get_platform()`` all say ``aarch64`` there:
    markers alone would ask for aarch64-only wheels (ai-edge-litert, opencv-python-headless)
    that do not exist for armv7l.  The userland is told by the interpreter itself: its pointer
    size (``platform.architecture()``) and Debian's multiarch triplet (``arm-linux-gnueabihf``).
    Evaluated when the wheel is built, which pip does on the machine it installs on.
    """
    machine = platform.machine().lower()
    if not (machine.startswith("arm") or machine == "aarch64"):
        return False
    bits = platform.architecture()[0]
    multiarch = str(sysconfig.get_config_var("MULTIARCH") or "")
    return bits == "32bit" or struct.calcsize("P") == 4 or multiarch.startswith("arm-")


ARM32 = arm32_userland()
# PyPI has no armv7l wheels of these: a 32-bit userland takes OpenCV from apt (python3-opencv,
# 4.6 on Bookworm) and the interpreter from the [tflite-runtime] extra.
WHEELS_64BIT_ONLY = [] if ARM32 else [
    # <5: OpenCV 5 moved CascadeClassifier (the cull's Haar face finder) out of the main wheel;
    # the Pi gets 4.11 (the last numpy-1 build), this pin keeps the PC on the same 4.x API.
    "opencv-python-headless>=4.6,<5",
    # LiteRT has wheels for x86_64 and aarch64 (64-bit userland), CPython 3.10+.
    "ai-edge-litert>=1.2; platform_machine in 'x86_64 aarch64 AMD64 arm64'",
]
# lgpio has linux_aarch64 and linux_armv7l wheels; on a 32-bit userland platform_machine may
# say either, so no machine marker there.
LGPIO = "lgpio>=0.2; sys_platform == 'linux'" if ARM32 else \
    "lgpio>=0.2; platform_machine == 'aarch64' and sys_platform == 'linux'"

setup(
    name="pifocus",
    version=VERSION,
    description="Live focus assistant for Raspberry Pi cameras: tile Laplacian gate + int8 CNN, "
    "LED/meter/buzzer/shutter outputs, autofocus drives, headless service with phone preview",
    long_description=(HERE / "README.md").read_text(encoding="utf-8") if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    license="BSD-3-Clause",
    python_requires=">=3.10",
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
        "gpiozero>=2.0",
        "tomli>=1.1; python_version < '3.11'",
    ] + WHEELS_64BIT_ONLY,
    extras_require={
        # Pi-only GPIO backend (Pi 5 needs lgpio; gpiozero picks it up automatically).
        "pi": [LGPIO],
        # Legacy interpreter for 32-bit Raspberry Pi OS; its last release (2.14) crashes with numpy 2.
        "tflite-runtime": ["tflite-runtime>=2.11; python_version < '3.12'", "numpy<2"],
        "train": ["tensorflow-cpu>=2.16; platform_machine == 'x86_64'",
                  "tensorflow>=2.16; platform_machine != 'x86_64'",
                  "matplotlib>=3.5", "tqdm>=4.60"],
        # On Bookworm, matplotlib from PyPI pulls numpy 2 and breaks apt's picamera2/OpenCV:
        # Pi users take apt's python3-matplotlib and keep "numpy<1.25" on the pip line (README).
        "plot": ["matplotlib>=3.5"],
        # Rig scale over MQTT ([mqtt] in the config, `pifocus rig`); the broker is Mosquitto.
        "mqtt": ["paho-mqtt>=2.0"],
        # Camera raws for `pifocus cull` (DNG from the Pi, CR2/NEF/ARW/...): LibRaw through rawpy.
        "raw": ["rawpy>=0.18"],
        # Real photographs for the cull's face tests (the astronaut portrait and the Labeled
        # Faces in the Wild patches ship inside the scikit-image wheel: no download).  Apart
        # from [dev] so the Pi's emulated install does not pull SciPy under its numpy pin.
        "testphotos": ["scikit-image>=0.19"],
        # Tests; selenium drives Debian's headless chromium for the web-page tests.
        "dev": ["pytest>=7", "hypothesis>=6.0", "matplotlib>=3.5", "tqdm>=4.60", "selenium>=4.10",
                "paho-mqtt>=2.0"],
    },
    entry_points={"console_scripts": ["pifocus = pifocus.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Operating System :: POSIX :: Linux",
        "Topic :: Multimedia :: Graphics :: Capture :: Digital Camera",
    ],
)
