# SPDX-License-Identifier: MIT
"""USB serial adapters end to end: a simulated CDC-ACM or FTDI adapter on
odkd's USB host controller, the usb-cdc-acm or usb-ftdi sample on the
USB-serial base, and pyserial on the tty the port became."""
import hashlib
import os
import threading

import pytest
import serial

from conftest import pid_alive, wait_until

ADAPTERS = [("cdc-acm", "usbmodem", "org.odk.usb-cdc-acm"),
            ("ftdi", "usbserial", "org.odk.usb-ftdi")]


def plug(odkd, model):
    return int(odkd.ctl("usb", "plug", model).stdout)


def node(odkd, node_id):
    return next(n for n in odkd.json("tree") if n["id"] == node_id)


def port_for(odkd, base):
    def found():
        links = sorted(p for p in odkd.dev.iterdir() if p.name.startswith(f"tty.{base}-"))
        return links[0] if links else None
    return wait_until(found, what=f"the tty.{base}-N link")


def model_state(odkd, dev):
    return node(odkd, dev)["properties"].get("OdkUSBModelState", {})


def round_trip(port, size):
    data = os.urandom(size)
    errors = []

    def writer():
        try:
            port.write(data)
            port.flush()
        except Exception as e:  # reported by the reader's assertion
            errors.append(e)
    t = threading.Thread(target=writer)
    t.start()
    got = bytearray()
    while len(got) < size:
        chunk = port.read(min(65536, size - len(got)))
        if not chunk:
            break  # the port's timeout: no byte for that long
        got += chunk
    t.join()
    assert not errors, errors
    assert len(got) == size, f"{len(got)} of {size} bytes came back"
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()


@pytest.mark.parametrize("model,base,bundle", ADAPTERS)
def test_line_settings_and_modem_lines_reach_the_device(odkd, model, base, bundle):
    dev = plug(odkd, model)
    path = port_for(odkd, base)
    with serial.Serial(str(path), 57600, bytesize=8, parity="N", stopbits=1, timeout=10) as p:
        # pyserial raises DTR and RTS when it opens the port.
        want = {"data_bits": 8, "parity": "none", "stop_bits": "1", "dtr": True, "rts": True}
        state = wait_until(
            lambda: (lambda s: s if all(s.get(k) == v for k, v in want.items())
                     and abs(s.get("baud", 0) - 57600) <= 57600 * 0.03 else None)(
                model_state(odkd, dev)),
            what="the device to be told 57600 8N1 with DTR and RTS")
        if model == "cdc-acm":
            assert state["baud"] == 57600  # CDC carries the rate itself
        # A pty port carries the speed, not 7 bits or parity (Linux forces
        # 8N on a pty; the CUSE ports of the serial issue will).
        p.baudrate = 115200
        wait_until(lambda: abs(model_state(odkd, dev).get("baud", 0) - 115200) <= 115200 * 0.03,
                   what="the new speed at the device")
        # A pty has no modem lines (TIOCMGET and TIOCMBIS fail: the CUSE
        # ports of the serial issue will have them): the port's user client
        # sets DTR and RTS (selector 4) and reports the inputs the device
        # sent (selector 5: cts, dsr, ri, dcd).
        port = odkd.json("find", '{"IOProviderClass": "IOSerialBSDClient"}')[0]["id"]

        def lines():
            return [int(v) for v in odkd.ctl("call", port, 5).stdout.split()]
        odkd.ctl("call", port, 4, 0, 1)
        wait_until(lambda: model_state(odkd, dev).get("dtr") is False, what="DTR down")
        # The loopback plug: DSR and DCD follow DTR.
        wait_until(lambda: (lambda l: l[1] == 0 and l[3] == 0)(lines()),
                   what="DSR and DCD down with DTR")
        odkd.ctl("call", port, 4, 1, 1)
        wait_until(lambda: (lambda l: l[1] == 1 and l[3] == 1)(lines()),
                   what="DSR and DCD up with DTR")


@pytest.mark.parametrize("model,base,bundle", ADAPTERS)
def test_8_mib_round_trip(odkd, model, base, bundle):
    plug(odkd, model)
    path = port_for(odkd, base)
    with serial.Serial(str(path), 921600, timeout=20) as p:
        round_trip(p, 8 << 20)


@pytest.mark.parametrize("model,base,bundle", ADAPTERS)
def test_unplug_mid_transfer_removes_the_port_and_leaves_nothing(odkd, model, base, bundle):
    baseline = len(os.listdir(f"/proc/{odkd.proc.pid}/fd"))
    dev = plug(odkd, model)
    path = port_for(odkd, base)
    (inst,) = odkd.running()
    model_pid = node(odkd, dev)["properties"]["OdkUSBModelPid"]
    p = serial.Serial(str(path), 115200, timeout=2, write_timeout=2)
    stop = threading.Event()

    def writer():
        chunk = os.urandom(65536)
        while not stop.is_set():
            try:
                p.write(chunk)
            except Exception:
                return  # the port hung up: expected
    t = threading.Thread(target=writer)
    t.start()
    try:
        p.read(4096)  # the transfer is under way
        odkd.ctl("usb", "unplug", dev)
        wait_until(lambda: not path.exists(), what="the tty link to go")
    finally:
        stop.set()
        t.join(timeout=30)
        try:
            p.close()
        except Exception:
            pass
    assert not t.is_alive(), "a write blocked after the unplug"
    wait_until(lambda: not pid_alive(inst["pid"]), what="the driver's host to exit")
    wait_until(lambda: not pid_alive(model_pid), what="the device model to exit")
    wait_until(lambda: len(os.listdir(f"/proc/{odkd.proc.pid}/fd")) <= baseline,
               what="odkd's descriptors back")
    assert "crashed" not in odkd.ctl("log", bundle).stdout
