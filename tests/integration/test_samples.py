# SPDX-License-Identifier: MIT
"""The graded samples in drivers/: each one is built, matches its sim device
and answers the way docs/driver-guide.md says it does."""
import pytest

from conftest import DRIVERS, ROOT, TEST_DRIVERS, wait_until
from libodk import Connection, OdkError

HELLO = {"model": "hello"}
HELLO_ADD = 0  # hello's only selector (drivers/hello/hello.c)


def test_the_samples_folder_holds_only_the_samples():
    found = sorted(p.name for p in DRIVERS.iterdir() if p.is_dir())
    # A build folder from before the move still holds echo and faulty here:
    # remove build/drivers/echo and build/drivers/faulty (meson leaves them).
    assert found == ["audio-clock", "audio-loopback", "audio-tone",
                     "hello", "hid-remap", "hid-usb", "hid-virtual-keyboard", "net-sim",
                     "pci-capture", "pci-edu", "scsi-inquiry", "scsi-raid", "serial-loopback",
                     "serial-tcp", "usb-cdc-acm", "usb-cdc-ecm", "usb-ftdi", "usb-vendor-echo"], found
    for name in ("echo", "faulty"):
        assert (TEST_DRIVERS / name / "odk.json").is_file()
        assert (TEST_DRIVERS / name / f"{name}.so").is_file()


def test_hello_adds_two_numbers_from_odkctl(odkd):
    dev = odkd.plug(HELLO)
    (inst,) = odkd.running(provider=dev)
    assert inst["bundle"] == "org.odk.hello" and inst["class"] == "HelloDriver"
    assert odkd.ctl("call", dev, HELLO_ADD, 2, 3).stdout.split() == ["5"]
    # The service node answers too, as the guide shows.
    svc = wait_until(lambda: odkd.service_node("HelloDriver"), what="hello's service")
    assert odkd.ctl("call", svc, HELLO_ADD, 40, 2).stdout.split() == ["42"]
    assert "hello device ready" in odkd.ctl("log", "org.odk.hello").stdout


def test_hello_adds_two_numbers_from_libodk(odkd):
    dev = odkd.plug(HELLO)
    odkd.running(provider=dev)
    with Connection(odkd.state, dev) as c:
        assert c.call(HELLO_ADD, [2, 3], n_out=1)[0] == [5]
        assert c.call(HELLO_ADD, [2**64 - 1, 1], n_out=1)[0] == [0]  # unsigned, wraps


def test_hello_refuses_the_wrong_scalar_count_clearly(odkd):
    dev = odkd.plug(HELLO)
    (inst,) = odkd.running(provider=dev)
    # Stories 4 and 10: the app is told what was wrong, not only the log.
    for scalars in ([2], [1, 2, 3], []):
        r = odkd.ctl("call", dev, HELLO_ADD, *scalars, check=False)
        assert r.returncode != 0
        assert r.stderr == (f"odkctl: ODK_E_BAD_ARGUMENTS: selector 0: expected 2 scalar inputs, "
                            f"got {len(scalars)}\n"), r.stderr
    r = odkd.ctl("call", dev, 1, 2, 3, check=False)
    assert r.returncode != 0 and "ODK_E_BAD_SELECTOR" in r.stderr
    with Connection(odkd.state, dev) as c:
        with pytest.raises(OdkError) as e:
            c.call(HELLO_ADD, [2], n_out=1)
        assert e.value.name == "ODK_E_BAD_ARGUMENTS"
        assert e.value.why == "selector 0: expected 2 scalar inputs, got 1"
        assert c.call(HELLO_ADD, [2, 3], n_out=1)[0] == [5]  # and it keeps serving
        assert c.error() is None  # the sentence is the last call's only
    log = odkd.ctl("log", "org.odk.hello").stdout
    assert "selector 0: expected 2 scalar inputs, got 1" in log
    (after,) = odkd.running(provider=dev)
    assert after["pid"] == inst["pid"] and after["restarts"] == 0


@pytest.mark.parametrize("path", ["mailbox", "socket"])
def test_a_refused_call_tells_the_app_why_on_either_path(odkd, monkeypatch, path):
    """odk_connection_error after a call the host's check refused, through the
    call mailbox and over the socket (ODK_NO_FASTPATH), sync and async."""
    if path == "socket":
        monkeypatch.setenv("ODK_NO_FASTPATH", "1")
    dev = odkd.plug(HELLO)
    odkd.running(provider=dev)
    with Connection(odkd.state, dev) as c:
        with pytest.raises(OdkError) as e:
            c.call(HELLO_ADD, [1, 2], struct=b"\0" * 8, n_out=1)
        assert e.value.name == "ODK_E_BAD_ARGUMENTS" and "selector 0" in e.value.why, e.value.why
        with pytest.raises(OdkError) as e:
            c.call(7, [], n_out=1)
        assert e.value.name == "ODK_E_BAD_SELECTOR" and "7" in (e.value.why or ""), e.value.why
        seen = []
        c.call_async(HELLO_ADD, [2], lambda st, outs: seen.append((st, c.error())))
        while not seen:
            c.dispatch(1000)
        assert seen[0][1] == "selector 0: expected 2 scalar inputs, got 1", seen
        assert c.call(HELLO_ADD, [40, 2], n_out=1)[0] == [42]
        assert c.error() is None


def test_the_guide_shows_hello_whole():
    """docs/driver-guide.md walks through hello.c in full: keep them equal."""
    source = (ROOT / "drivers" / "hello" / "hello.c").read_text()
    assert len(source.splitlines()) <= 50
    assert "```c\n" + source + "```" in (ROOT / "docs" / "driver-guide.md").read_text()
