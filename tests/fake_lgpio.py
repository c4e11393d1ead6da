"""A fake ``lgpio`` module that behaves like the real one where pifocus depends on it.

Follows joan2937/lg ``PY_LGPIO/lgpio_extra.py`` (the ``lgpio`` Python module):

* ``error`` is lgpio's own exception class (not OSError, not a gpiozero error); its ``str()``
  is ``repr(value)``, e.g. ``'GPIO busy'`` -- raised by ``_u2i`` for any negative status.
* ``gpiochip_open(n)`` returns ``handle | (n << 16)`` and opens *any* existing chip: on a
  Pi 5 with an older kernel chip 0 exists (gpio-brcmstb) but the header pins are on chip 4
  (``pinctrl-rp1``); newer kernels put the RP1 at chip 0.  ``gpio_get_chip_info(h)`` returns
  ``[status, lines, name, label]``.
* ``gpio_claim_output`` on a line another process holds raises ``error('GPIO busy')``;
  on a line the chip does not have, ``error('bad GPIO number')``.
* ``tx_pulse`` queues one entry per call and returns the entries left; the queue holds 10
  entries per GPIO (lgTx.c, served by lgpio's user-space thread, as DESIGN.md records: the
  file itself is not in the searchable index) and a full queue raises
  ``error('TX queue full')``.  ``tx_room`` / ``tx_busy`` report the queue.  Time is
  simulated: entries run back to back from when the train starts, and a train that starts
  on an idle queue starts up to ``start_latency_s`` (20 ms) late; when the queue runs dry
  during a train the next entry starts late too (``cold_starts`` records every entry that
  found the queue idle).
"""

import os
import sys
import time
import types

#: gpiochip labels per board: chip number -> (name, label, lines)
BOARDS = {
    "pi5-old-kernel": {0: ("gpiochip0", "gpio-brcmstb@107d508500", 32),
                       1: ("gpiochip1", "gpio-brcmstb@107d508520", 4),
                       4: ("gpiochip4", "pinctrl-rp1", 54)},
    "pi5": {0: ("gpiochip0", "pinctrl-rp1", 54), 10: ("gpiochip10", "gpio-brcmstb@107d508500", 32)},
    "pi4": {0: ("gpiochip0", "pinctrl-bcm2711", 58), 1: ("gpiochip1", "raspberrypi-exp-gpio", 8)},
}

QUEUE = 10


class error(Exception):
    """lgpio.error: ``str()`` is ``repr(value)`` as in lgpio_extra.py."""

    def __init__(self, value):
        self.value = value

    def __str__(self):
        return repr(self.value)


def make(board="pi5-old-kernel", busy=(), clock=None, start_latency_s=0.02):
    """A fresh fake lgpio module for ``board``; ``busy``: (chip, gpio) lines held by another
    process; ``clock``: a ``time.monotonic``-like function (simulated time in tests)."""
    m = types.ModuleType("lgpio")
    m.__fake__ = True
    m.error = error
    m.TX_PWM, m.TX_WAVE = 0, 1
    m.SET_PULL_NONE = m.SET_BIAS_DISABLE = 0
    chips = BOARDS[board]
    clock = clock or time.monotonic
    m.opened = []            # chip numbers opened
    m.claimed = {}           # (chip, gpio) -> level
    m.writes = []            # (gpio, level)
    m.pulses = []            # (gpio, on_us, off_us, cycles, start_time, writes before it)
    m.cold_starts = []       # (gpio, time): entries queued on an idle queue (start late)
    m.calls = {"tx_pulse": 0}
    m.queue = {}             # gpio -> list of [start, end] of queued entries

    def _chip(h):
        return h >> 16

    def gpiochip_open(n):
        if n not in chips:
            raise error("can not open gpiochip")
        m.opened.append(n)
        return 5 | (n << 16)

    def gpiochip_close(h):
        return 0

    def gpio_get_chip_info(h):
        name, label, lines = chips[_chip(h)]
        return [0, lines, name, label]

    def gpio_claim_output(h, gpio, level=0, lFlags=0):
        key = (_chip(h), gpio)
        if gpio >= chips[_chip(h)][2]:
            raise error("bad GPIO number")
        if key in busy:
            raise error("GPIO busy")
        m.claimed[key] = level
        return 0

    def gpio_free(h, gpio):
        m.claimed.pop((_chip(h), gpio), None)
        return 0

    def gpio_write(h, gpio, level):
        m.writes.append((gpio, level))
        return 0

    def _live(gpio):
        now = clock()
        q = [e for e in m.queue.get(gpio, []) if e[1] > now]
        m.queue[gpio] = q
        return q, now

    def tx_room(h, gpio, kind):
        q, _ = _live(gpio)
        return QUEUE - len(q)

    def tx_busy(h, gpio, kind):
        q, _ = _live(gpio)
        return 1 if q else 0

    def tx_pulse(h, gpio, on_us, off_us, offset=0, cycles=0):
        m.calls["tx_pulse"] += 1
        q, now = _live(gpio)
        if on_us == 0 and off_us == 0:
            m.queue[gpio] = []
            return QUEUE
        if len(q) >= QUEUE:
            raise error("TX queue full")
        dur = cycles * (on_us + off_us) * 1e-6
        if q:
            start = q[-1][1]
        else:
            start = now + start_latency_s     # the lgpio thread picks a new train up late
            m.cold_starts.append((gpio, now))
        m.queue[gpio] = q + [[start, start + dur]]
        m.pulses.append((gpio, on_us, off_us, cycles, start, len(m.writes)))
        return QUEUE - len(m.queue[gpio])

    for f in (gpiochip_open, gpiochip_close, gpio_get_chip_info, gpio_claim_output, gpio_free,
              gpio_write, tx_room, tx_busy, tx_pulse):
        setattr(m, f.__name__, f)
    return m


def steps_done(m, gpio, dir_gpio, t):
    """Net steps the pulses on ``gpio`` had made by time ``t`` (+1 per pulse with
    ``dir_gpio`` high, -1 low): what the motor shaft did."""
    total = 0
    for g, on, off, cycles, start, nw in m.pulses:
        if g != gpio or t <= start:
            continue
        level = next((lv for wg, lv in reversed(m.writes[:nw]) if wg == dir_gpio), 0)
        done = min(cycles, int((t - start) / ((on + off) * 1e-6)))
        total += done if level else -done
    return total


class SimClock:
    """Simulated time for a drive's module: ``sleep`` advances it; ``monotonic`` and
    ``perf_counter`` read it (so lgpio's timing runs without waiting)."""

    def __init__(self):
        self.t = 1000.0

    def now(self):
        return self.t

    monotonic = perf_counter = time_ = now

    def sleep(self, s):
        self.t += max(float(s), 1e-6)

    def time(self):
        return self.t


def install(monkeypatch, **kw):
    """Put a fresh fake lgpio into ``sys.modules``; returns it."""
    m = make(**kw)
    monkeypatch.setitem(sys.modules, "lgpio", m)
    return m


def dev_exists_for(board):
    """An ``os.path.exists`` stand-in for ``/dev/gpiochipN`` on ``board``."""
    chips = BOARDS[board]
    real = os.path.exists

    def exists(path):
        p = str(path)
        if p.startswith("/dev/gpiochip"):
            try:
                return int(p[len("/dev/gpiochip"):]) in chips
            except ValueError:
                return False
        return real(path)
    return exists
