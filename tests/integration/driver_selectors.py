# SPDX-License-Identifier: MIT
"""User-client selector numbers, read from the C headers that define them.

tests/drivers/echo/echo_selectors.h, tests/drivers/faulty/faulty_selectors.h
and the serial family's include/odk/serial.h are the one place the numbers
live: the drivers index their method tables with them, the benchmarks
#include them, and the tests take them from here.  Each enumerator is
`PREFIX_NAME = NUMBER,` on a line of its own; the prefix is dropped, so
ECHO_ADD is ECHO.ADD and ECHO_MEM_FILL is ECHO.MEM_FILL.

(Not named selectors.py: that would shadow the standard library module
subprocess imports.)  No import of conftest or libodk, so
tests/stress/fault_campaign can use it too."""
import re
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[2]

_ENUMERATOR = re.compile(r"^\s*([A-Z][A-Z0-9_]*)\s*=\s*(0x[0-9a-fA-F]+|\d+)\s*,", re.M)


def read_enums(header, enums, prefix):
    """The `PREFIX_NAME = NUMBER,` lines of the named enums in header, as a
    namespace NAME -> NUMBER.  Fails loudly when an enum is missing or empty."""
    text = Path(header).read_text()
    found = {}
    for enum in enums:
        m = re.search(r"\benum\s+%s\s*\{(.*?)\}" % re.escape(enum), text, re.S)
        if not m:
            raise ValueError(f"{header}: no enum {enum}")
        values = {name[len(prefix):]: int(value, 0)
                  for name, value in _ENUMERATOR.findall(m.group(1)) if name.startswith(prefix)}
        if not values:
            raise ValueError(f"{header}: enum {enum} has no {prefix}* = NUMBER lines")
        found.update(values)
    return SimpleNamespace(**found)


ECHO = read_enums(ROOT / "tests" / "drivers" / "echo" / "echo_selectors.h",
                  ("echo_selector", "echo_memory_op"), "ECHO_")
FAULTY = read_enums(ROOT / "tests" / "drivers" / "faulty" / "faulty_selectors.h",
                    ("faulty_selector",), "FAULTY_")
# The serial family's port user client (docs/serial.md).
SERIAL = read_enums(ROOT / "include" / "odk" / "serial.h", ("odk_serial_selector",), "ODK_SERIAL_")
