"""Selector numbers of the test drivers, read from their C headers.

tests/drivers/echo/echo_selectors.h and tests/drivers/faulty/faulty_selectors.h
are the one place the numbers live: the drivers index their method tables
with them, and the tests (here) and benchmarks (#include) take them from
there.  Each enumerator is `PREFIX_NAME = NUMBER` on a line of its own; the
prefix is dropped, so ECHO_ADD is ECHO.ADD and ECHO_MEM_FILL is ECHO.MEM_FILL.

No import of conftest or libodk, so tests/stress/fault_campaign can use it too."""
import re
from pathlib import Path
from types import SimpleNamespace

TEST_DRIVERS_SRC = Path(__file__).resolve().parents[1] / "drivers"

_ENUMERATOR = re.compile(r"^\s*([A-Z][A-Z0-9_]*)\s*=\s*(0x[0-9a-fA-F]+|\d+)\s*,", re.M)


def read_enum(header, prefix):
    """Every `PREFIX_NAME = NUMBER,` in header, as a namespace NAME -> NUMBER."""
    text = Path(header).read_text()
    found = {name[len(prefix):]: int(value, 0) for name, value in _ENUMERATOR.findall(text)
             if name.startswith(prefix)}
    if not found:
        raise ValueError(f"{header}: no enumerators named {prefix}*")
    return SimpleNamespace(**found)


ECHO = read_enum(TEST_DRIVERS_SRC / "echo" / "echo_selectors.h", "ECHO_")
FAULTY = read_enum(TEST_DRIVERS_SRC / "faulty" / "faulty_selectors.h", "FAULTY_")
