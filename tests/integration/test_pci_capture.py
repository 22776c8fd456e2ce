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

from conftest import BIN, CHILD_ENV, HANG_GUARD, pid_alive, wait_until
from driver_selectors import ROOT, read_enums
from libodk import MEM_IN, MEM_OUT, Buffer, Connection, OdkError, odkd_fds, odkd_fds_back

CAP = read_enums(ROOT / "drivers" / "pci-capture" / "pci_capture.h", ["capture_selector"],
                 "CAPTURE_")
EVENT = struct.Struct("<QQIIII")
MAGIC = 0x464B444F
PLUG_CYCLES = int(os.environ.get("ODK_CAPTURE_PLUG_CYCLES", "50"))
# odk-capture at 30 fps: 90 frames (3 s) here, 300 (10 s) in make soak-capture.
RATE_FRAMES = int(os.environ.get("ODK_CAPTURE_RATE_FRAMES", "90"))
# 8K frames, each in a slot of its own: 2 here, 16 (more than 2 GiB) in
# make soak-capture.
EIGHT_K_FRAMES = int(os.environ.get("ODK_CAPTURE_8K_FRAMES", "2"))
GIB = 1 << 30


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
        # One MSI-X interrupt per frame: the card counted what it raised.  A
        # frame in flight at STOP may still land, so the driver's count is
        # read again until the stopped card and the driver agree.
        def agreed():
            s = model_state(odkd, fn)
            if s.get("running", True):
                return None
            n = conn.call(CAP.COUNTERS, n_out=8)[0][1]
            return s if s.get("frames") == n else None
        st = wait_until(agreed, what="the card's report")
        assert st["interrupts"] == st["frames"] and st["dma_faults"] == 0
        # The card wrote the frames (and read its descriptors) itself,
        # through its view of the driver's IOMMU: no byte crossed a socket.
        assert st["dma_bytes_host"] == 0
        assert st["dma_bytes_local"] >= st["frames"] * frame
        q.free()
        mem.free()
    finally:
        conn.close()


def test_slots_given_back_through_the_release_page(odkd):
    """Memory type 1: the app stores how many frames it gave back in all, and
    the driver takes them at each frame's interrupt; it sets `starved` when
    the card has no descriptor left (no interrupt will come), and the app
    then calls CAPTURE_RELEASE with 0.  Only the page gives frames back
    here: past the 4 slots nothing moves without it.  A count past what the
    app holds is ignored and logged, and the card goes on."""
    fn = plug(odkd)
    conn, _ = connect(odkd, fn)
    try:
        frame, stride, *_ = configure(conn)
        mem = conn.map_memory(0)
        rel = conn.map_memory(1)
        assert rel.length >= 16 and rel.read(0, 16) == bytes(16)
        q = conn.map_data_queue(0)
        conn.call(CAP.START)

        def starved():
            return struct.unpack("<I", rel.read(8, 4))[0] == 1

        calls = 0
        for i in range(40):
            rec = q.get(timeout_ms=2000)
            if rec is None and starved():  # our store and its flag crossed
                conn.call(CAP.RELEASE, [0])
                calls += 1
                rec = q.get()
            assert rec is not None, f"frame {i} never came"
            ev = EVENT.unpack(rec)
            assert ev[0] == i and ev[2] == i % 4
            check_frame(mem, stride, ev, 64, 48)
            rel.write(0, struct.pack("<Q", i + 1))
            if starved():
                conn.call(CAP.RELEASE, [0])
                calls += 1
        c = conn.call(CAP.COUNTERS, n_out=8)[0]
        assert c[6] >= 40 - 4 and c[4] == 0  # released (the last few may wait for an interrupt)
        # More than the app holds: ignored, logged, and the stream goes on.
        rel.write(0, struct.pack("<Q", 40 + 100))
        conn.call(CAP.RELEASE, [0])
        log = wait_until(lambda: (lambda l: l if "release page" in l else None)(
            odkd.ctl("log", "org.odk.pci-capture").stdout), what="the driver's warning")
        assert "140 frames given back" in log
        rel.write(0, struct.pack("<Q", 40))
        conn.call(CAP.RELEASE, [0])
        rec = q.get()
        assert rec is not None and EVENT.unpack(rec)[0] == 40
        conn.call(CAP.STOP)
        q.free()
        rel.free()
        mem.free()
    finally:
        conn.close()


def test_the_app_maps_the_drivers_own_pages_not_a_copy(odkd):
    """The app maps once; what the driver stores afterwards through its own
    mapping is in the app's pages when the call returns (story 11)."""
    fn = plug(odkd)
    conn, _ = connect(odkd, fn)
    try:
        frame, stride, *_ = configure(conn, slots=2)
        mem = conn.map_memory(0)
        for off, value in [(frame, 0x0DDBA11CAFEF00D), (2 * stride - 8, 0x1122334455667788)]:
            assert mem.read(off, 8) != struct.pack("<Q", value)
            conn.call(CAP.POKE, [off, value])
            assert mem.read(off, 8) == struct.pack("<Q", value)
        # The app's mapping is a memfd, as the driver's is: one set of pages.
        maps = open("/proc/self/maps").read()
        assert "memfd:" in maps
        with pytest.raises(OdkError) as e:
            conn.call(CAP.POKE, [2 * stride - 4, 1])  # past the end
        assert e.value.name == "ODK_E_INVALID"
        mem.free()
    finally:
        conn.close()


def run_capture(odkd, *args, timeout=HANG_GUARD):
    return subprocess.run([str(BIN / "odk-capture"), "--state-dir", str(odkd.state), "--json",
                           *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env=CHILD_ENV)


def test_odk_capture_reports_frame_rate_with_no_drops_at_30_fps(odkd):
    fn = plug(odkd)
    service(odkd, fn)
    # First a run at full speed, which stops with a frame in flight: the
    # next app starts a fresh stream, and no event of this one reaches it.
    r = run_capture(odkd, "--frames", 5, "--fps", 0, "--width", 320, "--height", 240)
    assert r.returncode == 0, r.stderr
    r = run_capture(odkd, "--frames", RATE_FRAMES, "--fps", 30,
                    timeout=HANG_GUARD + RATE_FRAMES / 10)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["frames"] == RATE_FRAMES and out["width"] == 640 and out["height"] == 480
    assert out["dropped"] == 0 and out["bad"] == 0 and out["out_of_order"] == 0, \
        {k: v for k, v in model_state(odkd, fn).items() if k.startswith(("drop", "frames"))}
    assert out["error"] is None and out["frames_per_s"] > 0


def test_8k_frames_of_141_557_760_bytes_arrive_every_word_checked(odkd):
    """Issue 10: 8192x4320 BGRA frames, each into a slot of its own in the
    app's buffer, every word checked by odk-capture against the card's
    pattern (sixteen of them, 2.26 GB, in make soak-capture).  Slow where
    first touches of fresh memory are: each slot is new pages."""
    fn = plug(odkd, {"fps": 0})
    service(odkd, fn)
    n = EIGHT_K_FRAMES
    r = run_capture(odkd, "--frames", n, "--fps", 0, "--width", 8192, "--height", 4320,
                    "--slots", n, "--check", "full", timeout=HANG_GUARD + 10 * n)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["frames"] == n and out["frame_bytes"] == 141557760
    assert out["total_bytes"] >= n * 141557760
    assert out["bad"] == 0 and out["out_of_order"] == 0 and out["dropped"] == 0
    assert out["error"] is None
    st = wait_until(lambda: (lambda s: s if s.get("frames", 0) >= n else None)(
        model_state(odkd, fn)), what="the card's report")
    assert st["dma_bytes_host"] == 0 and st["dma_bytes_local"] >= n * 141557760


def test_a_contiguous_frame_buffer_is_one_segment_or_a_clear_error(odkd):
    """Story 6: one IOVA-contiguous segment when asked, or ODK_E_LIMIT with
    the reason in the driver's log; the driver goes on working."""
    fn = plug(odkd)
    conn, inst = connect(odkd, fn)
    try:
        _, _, total, segs, _, sg = configure(conn, 640, 480, slots=8, flags=1)
        assert total == 8 * 1228800 and segs == 1 and sg == 8
        _, _, total, segs, _, _ = configure(conn, 640, 480, slots=8)
        assert segs > 1, "the sim IOMMU scatters what need not be contiguous"
        # The card's scatter-gather entries count 32 bits: 5 GiB cannot be
        # one segment.
        with pytest.raises(OdkError) as e:
            configure(conn, 640, 480, slots=5, stride=GIB, flags=1)
        assert e.value.name == "ODK_E_LIMIT"
        log = odkd.ctl("log", "org.odk.pci-capture").stdout
        assert "as one segment" in log and "max_segment_size" in log
        # Without the flag the same 5 GiB maps, and frames flow.
        _, _, total, segs, _, _ = configure(conn, 64, 48, slots=5, stride=GIB)
        assert total == 5 * GIB and segs > 1
        q = conn.map_data_queue(0)
        conn.call(CAP.START)
        assert EVENT.unpack(q.get())[0] == 0
        conn.call(CAP.STOP)
        q.free()
        assert pid_alive(inst["pid"])
    finally:
        conn.close()


def test_dma_mappings_past_2_gib_in_total_carry_frames(odkd):
    """Story 14: 3 GiB of frame buffer mapped for the card (sparse: only
    the frames' pages are ever touched); frames land in every slot,
    including the one past 2.25 GiB, and are checked there."""
    fn = plug(odkd)
    conn, _ = connect(odkd, fn)
    try:
        stride = 768 << 20
        frame, _, total, segs, _, _ = configure(conn, 640, 480, slots=4, stride=stride)
        assert total == 3 * GIB
        mem = conn.map_memory(0)
        q = conn.map_data_queue(0)
        conn.call(CAP.START)
        for i in range(8):
            ev = EVENT.unpack(q.get())
            assert ev[0] == i and ev[2] == i % 4
            check_frame(mem, stride, ev, 640, 480, words=4096)
            # The frame's last page too, at 2.25 GiB + 1.2 MiB in slot 3.
            last = (frame - 4096) // 4
            got = struct.unpack("<1024I", mem.read(ev[2] * stride + last * 4, 4096))
            assert got == tuple(pattern(i, last + k) for k in range(1024))
            conn.call(CAP.RELEASE, [1])
        conn.call(CAP.STOP)
        q.free()
        mem.free()
    finally:
        conn.close()


def test_calls_with_bad_arguments_get_errors_and_the_driver_lives(odkd):
    """Story 4: whatever an app sends, the framework and the driver answer
    with a status."""
    fn = plug(odkd)
    conn, inst = connect(odkd, fn)
    try:
        for sel, scalars, want in [
            (CAP.START, [], "ODK_E_STATE"),                      # not configured
            (CAP.CONFIGURE, [1, 2], "ODK_E_BAD_ARGUMENTS"),       # too few scalars
            (CAP.CONFIGURE, [0, 48, 0, 4, 0, 0], "ODK_E_INVALID"),
            (CAP.CONFIGURE, [64, 48, 0, 4096, 0, 0], "ODK_E_INVALID"),
            (CAP.CONFIGURE, [64, 48, 0, 4, 100, 0], "ODK_E_INVALID"),
            (CAP.CONFIGURE, [64, 48, 0, 4, 0, 0x80], "ODK_E_INVALID"),
            (CAP.CONFIGURE, [1 << 63, 1 << 63, 1 << 63, 1 << 63, 1 << 63, 1 << 63],
             "ODK_E_INVALID"),
            (CAP.RELEASE, [1], "ODK_E_INVALID"),                 # holds nothing
            (CAP.CONFIG_READ, [0x10000, 4], "ODK_E_INVALID"),
            (CAP.CONFIG_READ, [0, 3], "ODK_E_INVALID"),
            (99, [], "ODK_E_BAD_SELECTOR"),
        ]:
            with pytest.raises(OdkError) as e:
                conn.call(sel, scalars, n_out=8)
            assert e.value.name == want, (sel, scalars)
        with pytest.raises(OdkError) as e:
            conn.map_memory(0)  # nothing configured yet
        assert e.value.name == "ODK_E_STATE"
        assert conn.call(CAP.CONFIG_READ, [0, 4], n_out=1)[0] == [0x0C4E1234]
        configure(conn)
        assert pid_alive(inst["pid"])
    finally:
        conn.close()


def test_surprise_removal_while_capturing_gives_the_app_an_error(odkd):
    fn = plug(odkd)
    service(odkd, fn)
    app = subprocess.Popen([str(BIN / "odk-capture"), "--state-dir", str(odkd.state),
                            "--frames", "1000000", "--fps", "100", "--json"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=CHILD_ENV)
    try:
        wait_until(lambda: model_state(odkd, fn).get("frames", 0) >= 10, what="10 frames")
        odkd.ctl("pci", "unplug", "--surprise", fn)
        out, err = app.communicate(timeout=HANG_GUARD)
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()
    assert app.returncode == 1, err
    assert "the capture card went away after" in err
    res = json.loads(out)
    assert res["frames"] >= 1 and res["bad"] == 0 and res["out_of_order"] == 0
    # The driver, stopped after the function vanished, read its
    # configuration space: all ones, as on hardware.
    log = wait_until(lambda: (lambda l: l if "configuration space reads" in l else None)(
        odkd.ctl("log", "org.odk.pci-capture").stdout), what="the driver's stop")
    assert "configuration space reads 0xffffffff" in log


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def memfd_maps():
    with open("/proc/self/maps") as f:
        return sum(1 for line in f if "memfd:" in line)


def children(pid, name):
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{p}/cmdline") as f:
                    cmd = f.read()
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid and name in cmd:
                out.append(int(p))
    return out


def one_cycle(odkd, i):
    """Plug, capture a frame with the app attached, unplug under it."""
    fn = plug(odkd, {"fps": 0})
    conn, _ = connect(odkd, fn)
    mem = q = None
    try:
        configure(conn, 64, 48, fps=0, slots=2)
        mem, q = conn.map_memory(0), conn.map_data_queue(0)
        conn.call(CAP.START)
        assert q.get() is not None
        odkd.ctl("pci", "unplug", *(["--surprise"] if i % 2 else []), fn)
        wait_until(lambda: all(n["id"] != fn for n in odkd.json("tree")), what=f"unplug {i}")
        with pytest.raises(OdkError) as e:
            conn.call(CAP.COUNTERS, n_out=8)
        assert e.value.name == "ODK_E_GONE"
    finally:
        for x in (q, mem):
            if x:
                x.free()
        conn.close()


def test_plug_unplug_cycles_with_the_app_attached_leak_nothing(odkd):
    """Story 5: unplug with the app attached and the card running, over and
    over (ODK_CAPTURE_PLUG_CYCLES, 50 here, 1000 in make soak-capture):
    odkd alive, no model or driver left, no descriptor or mapping leaked in
    odkd or in the app."""
    pid = odkd.proc.pid
    one_cycle(odkd, 0)  # odkd's and libodk's lazily made descriptors exist now
    wait_until(lambda: not [i for i in odkd.instances() if i["bundle"] == "org.odk.pci-capture"],
               what="the first driver gone")
    base_fds = odkd_fds(odkd)
    base_app_fds, base_maps = fd_count(os.getpid()), memfd_maps()
    base_hosts = len(children(pid, "odk-driver-host"))
    for i in range(1, PLUG_CYCLES + 1):
        one_cycle(odkd, i)
    assert odkd.proc.poll() is None
    wait_until(lambda: not [i for i in odkd.instances() if i["bundle"] == "org.odk.pci-capture"],
               what="every capture driver gone")
    wait_until(lambda: odkd_fds_back(odkd, base_fds), what="odkd's descriptors back")
    wait_until(lambda: len(children(pid, "odk-driver-host")) <= base_hosts,
               what="no driver host left")
    assert children(pid, "odk-pci-model") == []
    assert fd_count(os.getpid()) == base_app_fds
    assert memfd_maps() == base_maps


def test_kill_9_mid_capture_resets_the_card_and_capture_resumes(odkd):
    fn = plug(odkd, {"fps": 0})
    conn, inst = connect(odkd, fn)
    configure(conn, 320, 240, fps=0, slots=4)
    q = conn.map_data_queue(0)
    conn.call(CAP.START)
    assert q.get() is not None
    os.kill(inst["pid"], 9)
    q.free()
    conn.close()
    # odkd turned bus mastering off and reset the card before anything
    # else: the card counts a DMA attempted after the link ended with bus
    # mastering still on (unsafe_dma) and an attach before the reset.
    st = wait_until(lambda: (lambda s: s if s.get("resets", 0) >= 1 else None)(
        model_state(odkd, fn)), what="the reset")
    new = wait_until(lambda: [i for i in odkd.instances() if i["provider"] == fn and
                              i["state"] == "running" and i["pid"] != inst["pid"]] or None,
                     what="the restarted driver")
    st = model_state(odkd, fn)
    assert st["unsafe_dma"] == 0 and st["refused_attach"] == 0
    conn = Connection(odkd.state, new[0]["node"])
    try:
        configure(conn, 64, 48, fps=0, slots=2)
        q = conn.map_data_queue(0)
        conn.call(CAP.START)
        assert EVENT.unpack(q.get())[0] == 0  # a fresh card numbers from 0
        q.free()
    finally:
        conn.close()


def parse_edid(e):
    """An E-EDID 1.4 base block, checked the way a video source checks it:
    header, checksum, version; then what it says."""
    assert len(e) == 128
    assert e[:8] == b"\x00\xff\xff\xff\xff\xff\xff\x00", "EDID header"
    assert sum(e) % 256 == 0, "EDID checksum"
    assert (e[18], e[19]) == (1, 4), "EDID version"
    mfg = e[8] << 8 | e[9]
    out = {"manufacturer": "".join(chr(64 + (mfg >> s & 31)) for s in (10, 5, 0)),
           "product": e[10] | e[11] << 8, "extensions": e[126], "timings": [], "name": None}
    for d in (e[54:72], e[72:90], e[90:108], e[108:126]):
        clock = (d[0] | d[1] << 8) * 10000
        if clock:
            ha, hb = d[2] | (d[4] >> 4) << 8, d[3] | (d[4] & 15) << 8
            va, vb = d[5] | (d[7] >> 4) << 8, d[6] | (d[7] & 15) << 8
            out["timings"].append((ha, va, round(clock / ((ha + hb) * (va + vb)), 2)))
        elif d[3] == 0xFC:
            out["name"] = d[5:18].split(b"\n")[0].decode()
    return out


def test_the_edid_lands_in_the_apps_in_buffer_and_parses(odkd, tmp_path):
    """Story 11: the driver writes the card's EDID into a buffer of the app's
    with direction IN, and the bytes are in the app's buffer when the call
    returns (only the range the call named); odk-capture --edid writes the
    same bytes to a file."""
    fn = plug(odkd)
    conn, _ = connect(odkd, fn)
    buf = Buffer(4096)
    try:
        buf.write(0, b"\xaa" * 4096)
        bid = conn.register(buf, MEM_IN)
        outs, _ = conn.call_memory(CAP.EDID, [], [(bid, 1000, 128)], n_out=1)
        assert outs == [128]
        edid = buf.read(1000, 128)
        e = parse_edid(edid)
        assert (e["manufacturer"], e["product"], e["extensions"]) == ("ODK", 0x0C4E, 0)
        assert e["timings"] == [(1920, 1080, 60.0), (3840, 2160, 30.0)]
        assert e["name"] == "ODK Capture"
        assert buf.read(0, 1000) == b"\xaa" * 1000 and buf.read(1128, 2968) == b"\xaa" * 2968
        # Too small a range, or one the driver may not write: refused.
        with pytest.raises(OdkError) as err:
            conn.call_memory(CAP.EDID, [], [(bid, 0, 127)], n_out=1)
        assert err.value.name == "ODK_E_INVALID"
        inb = Buffer(128)
        try:
            with pytest.raises(OdkError) as err:
                conn.call_memory(CAP.EDID, [], [(conn.register(inb, MEM_OUT), 0, 128)], n_out=1)
            assert err.value.name == "ODK_E_ACCESS"
        finally:
            inb.free()
    finally:
        conn.close()
        buf.free()
    out = tmp_path / "card.edid"
    r = subprocess.run([str(BIN / "odk-capture"), "--state-dir", str(odkd.state), "--edid",
                        str(out)], capture_output=True, text=True, env=CHILD_ENV,
                       timeout=HANG_GUARD)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == edid
    assert "EDID 1.4 from ODK, product 0x0c4e, preferred 1920x1080, checksum right" in r.stderr


def test_an_edid_with_a_bad_checksum_is_not_passed_on(odkd):
    fn = plug(odkd, {"edid": "bad-checksum"})
    conn, inst = connect(odkd, fn)
    buf = Buffer(128)
    try:
        bid = conn.register(buf, MEM_IN)
        with pytest.raises(OdkError) as err:
            conn.call_memory(CAP.EDID, [], [(bid, 0, 128)], n_out=1)
        assert err.value.name == "ODK_E_IO"
        assert buf.read(0, 128) == b"\0" * 128
        assert pid_alive(inst["pid"]) and conn.call(CAP.COUNTERS, n_out=8)[0][4] == 0
    finally:
        conn.close()
        buf.free()
    assert "checksum off by" in odkd.ctl("log", "org.odk.pci-capture").stdout
