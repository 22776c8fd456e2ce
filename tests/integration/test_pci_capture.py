# SPDX-License-Identifier: MIT
"""The simulated capture card (src/buses/pci/models/capture.c), its driver
pci-capture and its app odk-capture, end to end: frames DMA'd through the
driver's IOMMU into a buffer the app maps (no copy), one MSI-X interrupt
per frame, contiguous and >2 GiB mappings, surprise removal and plug
cycles."""
import json
import os
import struct
import subprocess
import time

import pytest

from conftest import pid_alive, wait_until
from driver_selectors import ROOT, read_enums
from libodk import Connection, OdkError

CAP = read_enums(ROOT / "drivers" / "pci-capture" / "pci_capture.h", ["capture_selector"],
                 "CAPTURE_")
EVENT = struct.Struct("<QQIIII")
MAGIC = 0x464B444F
PLUG_CYCLES = int(os.environ.get("ODK_CAPTURE_PLUG_CYCLES", "100"))


def pattern(seq, word):
    return (word * 0x9E3779B1 + seq * 0x85EBCA77 + 0x27D4EB2F) & 0xFFFFFFFF


def plug(odkd, args=None):
    cmd = ["pci", "plug", "capture"] + ([json.dumps(args)] if args is not None else [])
    return int(odkd.ctl(*cmd).stdout.strip())


def node(odkd, node_id):
    return next(n for n in odkd.json("tree") if n["id"] == node_id)


def model_state(odkd, fn):
    return node(odkd, fn)["properties"].get("OdkPCIModelState", {})


def service(odkd, fn):
    return odkd.running(provider=fn)[0]


def connect(odkd, fn):
    inst = service(odkd, fn)
    return Connection(odkd.state, inst["node"]), inst


def configure(conn, width=64, height=48, fps=0, slots=4, stride=0, flags=0):
    return conn.call(CAP.CONFIGURE, [width, height, fps, slots, stride, flags], n_out=6)[0]


def check_frame(mem, stride, ev, width, height, words=None):
    seq, _ts, slot, nbytes, status, _ = ev
    assert status == 0 and nbytes == width * height * 4
    base = slot * stride
    magic, w, h, _fmt, hseq = struct.unpack("<IIIIQ", mem.read(base, 24))
    assert (magic, w, h, hseq) == (MAGIC, width, height, seq)
    n = nbytes // 4 if words is None else min(words, nbytes // 4)
    got = struct.unpack(f"<{n - 8}I", mem.read(base + 32, (n - 8) * 4))
    want = tuple(pattern(seq, k) for k in range(8, n))
    assert got == want, f"frame {seq} in slot {slot} differs from the card's pattern"


def test_frames_arrive_intact_in_order_in_the_apps_mapping(odkd):
    fn = plug(odkd)
    p = node(odkd, fn)["properties"]
    assert (p["vendor-id"], p["device-id"], p["class-code"]) == (0x1234, 0x0C4E, 0x040000)
    conn, inst = connect(odkd, fn)
    try:
        frame, stride, total, segs, ring, sg = configure(conn)
        assert frame == 64 * 48 * 4 and stride == 12288 and total == 4 * stride
        mem = conn.map_memory(0)
        q = conn.map_data_queue(0)
        conn.call(CAP.START)
        for i in range(40):
            rec = q.get()
            assert rec is not None, f"frame {i} never came"
            ev = EVENT.unpack(rec)
            assert ev[0] == i and ev[2] == i % 4
            check_frame(mem, stride, ev, 64, 48)
            conn.call(CAP.RELEASE, [1])
        conn.call(CAP.STOP)
        c = conn.call(CAP.COUNTERS, n_out=8)[0]
        assert c[0] >= 40 and c[4] == 0 and c[5] == 0
    finally:
        conn.close()
