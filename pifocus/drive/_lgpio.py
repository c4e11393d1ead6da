"""lgpio plumbing of the step/dir stepper on a Pi: which gpiochip carries the header pins,
and lgpio's errors turned into :class:`~pifocus.exc.DriveError` with the fix.

lgpio is imported by the caller (``stepper.py``, on a Pi only) and handed in.

Which chip (``[drive] gpiochip = -1``, auto):
    ``lgpio.gpiochip_open(0)`` succeeds on every Pi, but on a Pi 5 with an older kernel chip
    0 is a gpio-brcmstb block and the 40-pin header is chip 4 (the RP1, label
    ``pinctrl-rp1``); newer kernels put the RP1 at chip 0.  So each ``/dev/gpiochipN`` is
    opened and the one whose label (``lgpio.gpio_get_chip_info``) is the header controller
    -- ``pinctrl-rp1`` (Pi 5), ``pinctrl-bcm2711`` (Pi 4), ``pinctrl-bcm2835`` (older) -- is
    used.  An lgpio without ``gpio_get_chip_info`` gets gpiozero's rule (LGPIOFactory):
    chip 4 when ``/dev/gpiochip4`` exists (a Pi 5), else chip 0.
"""

import logging
import os
from typing import List, Tuple

from ..exc import DriveError, is_lgpio_error, lgpio_busy_hint

log = logging.getLogger("pifocus.drive")

#: gpiochip labels of the Raspberry Pi header controllers, preferred first
HEADER_LABELS = ("pinctrl-rp1", "pinctrl-bcm2711", "pinctrl-bcm2835")
MAX_CHIP = 16


def _existing_chips() -> List[int]:
    return [n for n in range(MAX_CHIP + 1) if os.path.exists(f"/dev/gpiochip{n}")]


def open_header_chip(lgpio, requested: int, drive: str) -> Tuple[int, int]:
    """Open the gpiochip of the header pins; returns ``(handle, chip number)``.

    Args:
        lgpio: the lgpio module.
        requested: ``[drive] gpiochip`` (-1 = auto, see the module doc).
        drive: the drive's name, for messages.

    Raises:
        DriveError: the chip cannot be opened (permissions, no such chip).
    """
    if requested >= 0:
        return _open(lgpio, requested, drive), requested
    chips = _existing_chips() or [0]
    info = getattr(lgpio, "gpio_get_chip_info", None)
    if info is not None:
        found = []
        for n in chips:
            try:
                h = lgpio.gpiochip_open(n)
            except Exception as e:
                log.debug("gpiochip%d: cannot open (%s)", n, e)
                continue
            try:
                label = str(info(h)[3])
            except Exception:
                label = ""
            if label in HEADER_LABELS:
                found.append((HEADER_LABELS.index(label), n, h, label))
            else:
                _close(lgpio, h)
        if found:
            found.sort()
            for _, n, h, _ in found[1:]:
                _close(lgpio, h)
            _, n, h, label = found[0]
            log.info("drive %s: header pins on gpiochip%d (%s)", drive, n, label)
            return h, n
        log.warning("drive %s: no gpiochip labelled %s among %s; guessing as gpiozero does",
                    drive, "/".join(HEADER_LABELS), chips)
    n = 4 if 4 in chips else 0
    return _open(lgpio, n, drive), n


def _open(lgpio, n: int, drive: str) -> int:
    try:
        return lgpio.gpiochip_open(n)
    except Exception as e:  # lgpio.error
        raise DriveError(f"drive {drive!r}: cannot open /dev/gpiochip{n} with lgpio ({e}); add the user "
                         "to the gpio group, set [drive] gpiochip, or backend = 'gpiozero'") from e


def _close(lgpio, h: int) -> None:
    try:
        lgpio.gpiochip_close(h)
    except Exception:
        pass


def claim_error(e: BaseException, drive: str, what: str, gpio: int) -> DriveError:
    """The :class:`DriveError` for a failed ``gpio_claim_output`` of ``what`` (GPIO ``gpio``)."""
    text = str(e)
    if is_lgpio_error(e) and "busy" in text.lower():
        return DriveError(f"drive {drive!r}: {what} GPIO{gpio} is in use by another program ({text}); "
                          f"{lgpio_busy_hint(gpio)}, or give the drive another pin in [drive]")
    return DriveError(f"drive {drive!r}: {what} GPIO{gpio} cannot be claimed ({text}); check the pin "
                      "number in [drive] (BCM numbering) and [drive] gpiochip")
