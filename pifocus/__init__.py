"""pifocus: a live focus assistant for Raspberry Pi cameras.

The pipeline (see README.md)::

    FrameSource -> Frame -> FocusAnalyzer -> FocusReport -> outputs / autofocus

``import pifocus`` is light: it pulls in numpy only.  OpenCV, the LiteRT interpreter,
gpiozero and picamera2 are imported by the modules that use them, and picamera2 and
TensorFlow never by this package's import.
"""

__version__ = "0.1.0"

from .exc import (  # noqa: F401  (re-exported)
    AutofocusError,
    ConfigError,
    DriveError,
    LimitError,
    ModelError,
    OutputError,
    PiFocusError,
    SourceDisconnected,
    SourceError,
    SourceExhausted,
)
from .frames import Frame  # noqa: F401
