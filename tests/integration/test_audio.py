# SPDX-License-Identifier: MIT
"""The audio family end to end, through libodk's audio client API
(odk/audio_client.h, bound here with ctypes): devices found and opened by
UID, samples through the shared rings of audio-loopback, the tone's
frequency, clock-source switches reaching every client, app-owned devices,
withdrawn and killed drivers, and impossible formats refused."""
import ctypes
import json
import math
import os
import signal
import struct
import time

import pytest

from conftest import BUILD, wait_until
from libodk import Connection, OdkError

lib = ctypes.CDLL(str(BUILD / "src" / "client" / "libodk.so"))
vp = ctypes.c_void_p

OUTPUT, INPUT = 1, 2
S16, S24_3, S32, FLOAT = 1, 2, 3, 4
STATE_STOPPED, STATE_RUNNING, STATE_GONE = 0, 1, 2
EVENT_PROPERTY, EVENT_GONE = 1, 2


class Format(ctypes.Structure):
    _fields_ = [("channels", ctypes.c_uint32), ("sample_format", ctypes.c_uint32),
                ("rate", ctypes.c_uint32)]


class Event(ctypes.Structure):
    _fields_ = [("kind", ctypes.c_uint32), ("key", ctypes.c_char * 64)]


class Timestamp(ctypes.Structure):
    _fields_ = [("sample_time", ctypes.c_uint64), ("host_time_ns", ctypes.c_uint64),
                ("rate", ctypes.c_uint32), ("state", ctypes.c_uint32),
                ("generation", ctypes.c_uint64)]


def _sig(name, restype, *argtypes):
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)


_sig("odk_audio_list", ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(vp))
_sig("odk_value_to_json", ctypes.c_void_p, vp, ctypes.c_int)
_sig("odk_value_free", None, vp)
# free() as the process resolves it (under ASan, the sanitizer's own).
libc = ctypes.CDLL(None)
libc.free.restype = None
libc.free.argtypes = [vp]
_sig("odk_audio_open", ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(vp))
_sig("odk_audio_close", None, vp)
_sig("odk_audio_properties", vp, vp)
_sig("odk_audio_rate", ctypes.c_uint32, vp)
_sig("odk_audio_node_id", ctypes.c_uint64, vp)
_sig("odk_audio_find_stream", ctypes.c_int, vp, ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint32))
_sig("odk_audio_set_format", ctypes.c_int, vp, ctypes.c_uint32, ctypes.POINTER(Format))
_sig("odk_audio_set_control", ctypes.c_int, vp, ctypes.c_uint32, ctypes.c_int64)
_sig("odk_audio_start", ctypes.c_int, vp)
_sig("odk_audio_stop", ctypes.c_int, vp)
_sig("odk_audio_state", ctypes.c_uint32, vp)
_sig("odk_audio_read_event", ctypes.c_int, vp, ctypes.POINTER(Event), ctypes.c_int)
_sig("odk_audio_event_fd", ctypes.c_int, vp)
_sig("odk_audio_get_timestamp", ctypes.c_int, vp, ctypes.POINTER(Timestamp))
_sig("odk_audio_driver_position", ctypes.c_uint64, vp, ctypes.c_uint32)
_sig("odk_audio_set_app_position", ctypes.c_int, vp, ctypes.c_uint32, ctypes.c_uint64,
     ctypes.c_bool)
_sig("odk_audio_write_frames", ctypes.c_int, vp, ctypes.c_uint32, ctypes.c_uint64,
     ctypes.c_char_p, ctypes.c_uint32)
_sig("odk_audio_read_frames", ctypes.c_int, vp, ctypes.c_uint32, ctypes.c_uint64, vp,
     ctypes.c_uint32)
_sig("odk_audio_ring", ctypes.c_int, vp, ctypes.c_uint32, ctypes.POINTER(ctypes.c_void_p),
     ctypes.POINTER(ctypes.c_uint32), ctypes.POINTER(ctypes.c_uint32))
_sig("odk_status_name", ctypes.c_char_p, ctypes.c_int)
lib.odk_value_to_json.restype = ctypes.c_void_p


def status(st):
    return lib.odk_status_name(st).decode()


def value_json(v):
    p = lib.odk_value_to_json(v, 0)
    text = ctypes.string_at(p).decode()
    libc.free(p)
    return json.loads(text)


def list_devices(odkd):
    out = vp()
    st = lib.odk_audio_list(str(odkd.state).encode(), ctypes.byref(out))
    assert st == 0, status(st)
    try:
        return value_json(out)
    finally:
        lib.odk_value_free(out)


class Audio:
    """One app's handle on one device (odk_audio)."""

    def __init__(self, odkd, uid):
        self.h = vp()
        st = lib.odk_audio_open(str(odkd.state).encode(), uid.encode() if uid else None,
                                ctypes.byref(self.h))
        if st != 0:
            raise OdkError(st)

    def close(self):
        if self.h:
            lib.odk_audio_close(self.h)
            self.h = None

    def props(self):
        return value_json(lib.odk_audio_properties(self.h))

    def stream(self, direction):
        i = ctypes.c_uint32()
        assert lib.odk_audio_find_stream(self.h, direction, ctypes.byref(i)) == 0
        return i.value

    def set_format(self, stream, channels, fmt, rate):
        f = Format(channels, fmt, rate)
        return lib.odk_audio_set_format(self.h, stream, ctypes.byref(f))

    def check(self, st):
        if st != 0:
            raise OdkError(st)

    def start(self):
        self.check(lib.odk_audio_start(self.h))

    def stop(self):
        self.check(lib.odk_audio_stop(self.h))

    def state(self):
        return lib.odk_audio_state(self.h)

    def event(self, timeout_ms=10000):
        """(kind, key), or None on a timeout."""
        ev = Event()
        st = lib.odk_audio_read_event(self.h, ctypes.byref(ev), timeout_ms)
        if st != 0:
            if status(st) in ("ODK_E_TIMEOUT", "ODK_E_AGAIN"):
                return None
            raise OdkError(st)
        return ev.kind, ev.key.decode()

    def events_until(self, key, timeout=30):
        """Every event up to and including the first change of key."""
        seen = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            e = self.event(1000)
            if e:
                seen.append(e)
                if e == (EVENT_PROPERTY, key) or e[0] == EVENT_GONE:
                    return seen
        raise AssertionError(f"no change of {key} came; saw {seen}")

    def timestamp(self):
        ts = Timestamp()
        assert lib.odk_audio_get_timestamp(self.h, ctypes.byref(ts)) == 0
        return ts

    def driver_pos(self, stream):
        return lib.odk_audio_driver_position(self.h, stream)

    def write(self, stream, pos, data, frames):
        return lib.odk_audio_write_frames(self.h, stream, pos, data, frames)

    def read(self, stream, pos, frames, frame_bytes):
        buf = ctypes.create_string_buffer(frames * frame_bytes)
        st = lib.odk_audio_read_frames(self.h, stream, pos, buf, frames)
        return st, buf.raw


def plug_loopback(odkd, **extra):
    node = odkd.plug({"model": "audio-loopback", **extra})
    odkd.running(provider=node)
    wait_until(lambda: any(d["properties"]["UID"] == "odk-loopback" for d in list_devices(odkd)),
               what="the loopback device")
    return node


# Rings of 256 Ki frames (5.4 s at 48 kHz): a Python reader on a loaded
# machine under ASan may stall that long without losing frames.
RING = 262144


@pytest.fixture
def loopback(odkd):
    plug_loopback(odkd, OdkAudioRingFrames=RING)
    return odkd


def pattern(frames, channels, start=0):
    """Distinct 16-bit samples: frame f, channel c -> a value from f and c."""
    return b"".join(struct.pack("<h", ((f * 7 + c * 1001) % 65536) - 32768)
                    for f in range(start, start + frames) for c in range(channels))


def loop_through(a, out, inp, data, frames, frame_bytes, chunk=2048):
    """Prefills the output, starts I/O, plays the rest of data while
    recording the same sample times from the input; returns what was
    recorded."""
    got = b""
    wpos = rpos = 0
    while wpos < frames:
        n = min(chunk, frames - wpos)
        if a.write(out, wpos, data[wpos * frame_bytes:(wpos + n) * frame_bytes], n) != 0:
            break
        wpos += n
    a.start()
    deadline = time.monotonic() + 60
    while rpos < frames:
        assert time.monotonic() < deadline, f"stuck: wrote {wpos}, read {rpos}"
        if wpos < frames:
            n = min(chunk, frames - wpos)
            st = a.write(out, wpos, data[wpos * frame_bytes:(wpos + n) * frame_bytes], n)
            if st == 0:
                wpos += n
                continue
            assert status(st) == "ODK_E_AGAIN", status(st)
        n = min(chunk, frames - rpos, a.driver_pos(inp) - rpos)
        if n > 0:
            st, buf = a.read(inp, rpos, n, frame_bytes)
            assert st == 0, status(st)
            got += buf
            rpos += n
        else:
            time.sleep(0.002)
    return got


def test_the_loopback_is_listed_with_its_streams_formats_and_controls(loopback):
    devs = list_devices(loopback)
    (d,) = [d for d in devs if d["properties"]["UID"] == "odk-loopback"]
    p = d["properties"]
    assert p["Name"] == "odk loopback" and p["TransportType"] == "Virtual"
    assert p["SampleRate"] == 48000
    assert p["AvailableSampleRates"] == [44100, 48000, 88200, 96000, 176400, 192000]
    assert p["ZeroTimestampPeriod"] == 256 and p["Running"] is False
    assert [s["Direction"] for s in p["Streams"]] == ["output", "input"]
    assert len(p["Streams"][0]["AvailableFormats"]) == 64
    assert {c["Kind"] for c in p["Controls"]} == {"volume", "mute"}
    assert sorted(s["Direction"] for s in d["streams"]) == ["input", "output"]
    nodes = loopback.json("find", json.dumps({"IOProviderClass": "IOUserAudioStream"}))
    assert len(nodes) == 2


@pytest.mark.parametrize("channels,fmt,rate", [(2, S16, 48000), (8, S32, 96000)])
def test_loopback_samples_round_trip_exactly_through_the_shared_rings(loopback, channels, fmt,
                                                                      rate):
    a = Audio(loopback, "odk-loopback")
    try:
        out, inp = a.stream(OUTPUT), a.stream(INPUT)
        assert a.set_format(out, channels, fmt, rate) == 0
        assert a.set_format(inp, channels, fmt, rate) == 0
        assert lib.odk_audio_rate(a.h) == rate or a.events_until("SampleRate")
        frame_bytes = channels * (2 if fmt == S16 else 4)
        frames = rate // 2  # half a second
        if fmt == S16:
            data = pattern(frames, channels)
        else:
            data = b"".join(struct.pack("<i", (f * 65537 + c * 1000003) % (1 << 31) - (1 << 30))
                            for f in range(frames) for c in range(channels))
        got = loop_through(a, out, inp, data, frames, frame_bytes)
        assert a.state() == STATE_RUNNING
        assert got == data
        ts = a.timestamp()
        assert ts.rate == rate and ts.sample_time % 256 == 0 and ts.sample_time >= frames
        a.stop()
    finally:
        a.close()


def test_impossible_formats_are_refused_by_the_family(loopback):
    a = Audio(loopback, "odk-loopback")
    try:
        out = a.stream(OUTPUT)
        assert status(a.set_format(out, 0, S16, 48000)) == "ODK_E_UNSUPPORTED"
        assert status(a.set_format(out, 2, S16, 0)) == "ODK_E_UNSUPPORTED"
        assert status(a.set_format(out, 17, S16, 48000)) == "ODK_E_UNSUPPORTED"
        assert status(a.set_format(out, 2, 9, 48000)) == "ODK_E_UNSUPPORTED"
        assert status(a.set_format(out, 2, S16, 22050)) == "ODK_E_UNSUPPORTED"
        assert status(a.set_format(7, 2, S16, 48000)) == "ODK_E_INVALID"
        a.start()
        assert status(a.set_format(out, 2, S16, 96000)) == "ODK_E_BUSY"
        b = Audio(loopback, "odk-loopback")  # joins the running device
        assert b.set_format(b.stream(INPUT), 2, S16, 48000) == 0  # the format it has
        b.close()
        a.stop()
        assert a.set_format(out, 2, S16, 96000) == 0
    finally:
        a.close()


def goertzel(samples, rate, freq):
    """The power of samples at freq (one DFT bin, Goertzel's recurrence)."""
    k = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + k * s1 - s2, s1
    return s1 * s1 + s2 * s2 - k * s1 * s2


def record(a, inp, frames, frame_bytes, start=None):
    """frames frames from the input, from sample time start (default: now)."""
    pos = a.driver_pos(inp) if start is None else start
    got = b""
    deadline = time.monotonic() + 30
    while len(got) < frames * frame_bytes:
        assert time.monotonic() < deadline
        n = min(1024, frames - len(got) // frame_bytes, a.driver_pos(inp) - pos)
        if n <= 0:
            time.sleep(0.005)
            continue
        st, buf = a.read(inp, pos, n, frame_bytes)
        assert st == 0, status(st)
        got += buf
        pos += n
    return got


@pytest.mark.parametrize("hz", [1000, 440])
def test_the_tone_records_the_frequency_set_through_its_user_client(odkd, hz):
    node = odkd.plug({"model": "audio-tone"})
    odkd.running(provider=node)
    service = wait_until(lambda: odkd.service_node("IOUserService"), what="the tone's service")
    with Connection(odkd.state, service) as c:
        c.call(0, [hz * 1000], n_out=0)
        assert c.call(1, [], n_out=1)[0] == [hz * 1000]
        with pytest.raises(OdkError):
            c.call(0, [30000 * 1000], n_out=0)  # past Nyquist at 48 kHz
    a = Audio(odkd, "odk-tone")
    try:
        inp = a.stream(INPUT)
        a.start()
        wait_until(lambda: a.driver_pos(inp) >= 2048, what="the tone's first periods")
        raw = record(a, inp, 24000, 2)
        samples = [s for (s,) in struct.iter_unpack("<h", raw)]
        assert max(samples) > 15000  # half of full scale
        crossings = sum(1 for x, y in zip(samples, samples[1:]) if x < 0 <= y)
        assert abs(crossings - hz / 2) <= 2, crossings  # half a second of it
        at = goertzel(samples, 48000, hz)
        assert at > 100 * goertzel(samples, 48000, hz * 1.25)
        assert at > 100 * goertzel(samples, 48000, hz * 0.8)
    finally:
        a.close()


def test_a_clock_source_switch_reaches_every_client_with_the_new_rates(odkd):
    node = odkd.plug({"model": "audio-clock"})
    odkd.running(provider=node)
    wait_until(lambda: list_devices(odkd), what="the clock device")
    a, b = Audio(odkd, "odk-clock"), Audio(odkd, "odk-clock")
    try:
        assert a.props()["AvailableSampleRates"] == [48000, 96000, 192000]
        out = b.stream(OUTPUT)
        assert b.set_format(out, 2, S16, 96000) == 0
        for h in (a, b):
            h.events_until("SampleRate")
        assert a.props()["SampleRate"] == 96000
        # The switch, by client a; both hear of every changed property.
        assert lib.odk_audio_set_control(a.h, 0, 2) == 0
        for h in (a, b):
            keys = [k for _, k in h.events_until("Controls")]
            assert {"AvailableSampleRates", "SampleRate", "Streams", "Controls"} <= set(keys)
            p = h.props()
            assert p["AvailableSampleRates"] == [44100, 88200, 176400]
            assert p["SampleRate"] == 44100
            assert p["Controls"][0]["Value"] == 2
            assert all(s["Format"]["SampleRate"] == 44100 for s in p["Streams"])
        assert status(b.set_format(out, 2, S16, 96000)) == "ODK_E_UNSUPPORTED"
        assert b.set_format(out, 2, S16, 88200) == 0
        # A client opened after the switch sees only the new rates.
        c = Audio(odkd, "odk-clock")
        assert c.props()["AvailableSampleRates"] == [44100, 88200, 176400]
        assert c.props()["SampleRate"] == 88200
        # Not while I/O runs; a selector value that is no item is refused.
        c.start()
        assert status(lib.odk_audio_set_control(a.h, 0, 1)) == "ODK_E_BUSY"
        c.close()
        assert status(lib.odk_audio_set_control(a.h, 0, 3)) == "ODK_E_INVALID"
        assert lib.odk_audio_set_control(a.h, 0, 1) == 0
        b.events_until("Controls")
        assert b.props()["AvailableSampleRates"] == [48000, 96000, 192000]
    finally:
        a.close()
        b.close()


def loopback_service(odkd):
    return wait_until(lambda: odkd.service_node("IOUserService"), what="the loopback's service")


def test_a_watching_app_sees_an_app_owned_device_come_and_go(loopback):
    """Story 16 from a client's side: an app that watches audio devices
    (odk_watch_services on IOUserAudioDevice) is told when another app's
    device is published and when it is withdrawn, without polling."""
    from test_events import Watcher
    w = Watcher(loopback.state, {"IOProviderClass": "IOUserAudioDevice"})
    try:
        seen = lambda: [(e, d["properties"].get("UID")) for e, d in w.events
                        if e in ("registered", "terminated")]
        wait_until(lambda: w.dispatch() >= 0 and ("registered", "odk-loopback") in seen(),
                   what="the loopback's own device, matched at once")
        owner = Connection(loopback.state, loopback_service(loopback))
        owner.call(0, [], struct=b"watched-device", n_out=1)
        wait_until(lambda: w.dispatch() >= 0 and ("registered", "watched-device") in seen(),
                   what="the app's device to be announced")
        owner.close()
        wait_until(lambda: w.dispatch() >= 0 and ("terminated", "watched-device") in seen(),
                   what="the app's device to be withdrawn")
        assert seen().count(("registered", "watched-device")) == 1
    finally:
        w.close()


def test_an_app_owned_device_lives_while_its_connection_is_open(loopback):
    owner = Connection(loopback.state, loopback_service(loopback))
    (node,), _ = owner.call(0, [], struct=b"my-app-device", n_out=1)
    uids = lambda: sorted(d["properties"]["UID"] for d in list_devices(loopback))
    assert uids() == ["my-app-device", "odk-loopback"]
    assert node in [d["id"] for d in list_devices(loopback)]
    # Two apps cannot have one UID.
    other = Connection(loopback.state, loopback_service(loopback))
    with pytest.raises(OdkError) as e:
        other.call(0, [], struct=b"my-app-device", n_out=1)
    assert e.value.name == "ODK_E_EXISTS"
    other.close()
    # Another app records from it while the owner's connection is open...
    a = Audio(loopback, "my-app-device")
    try:
        inp = a.stream(INPUT)
        a.start()
        wait_until(lambda: a.driver_pos(inp) > 0, what="the app device's clock")
        # ...and the device goes when it closes: the recorder gets the error.
        owner.close()
        wait_until(lambda: uids() == ["odk-loopback"], what="the app device to go")
        assert a.events_until("none")[-1] == (EVENT_GONE, "")
        assert a.state() == STATE_GONE
        assert status(lib.odk_audio_start(a.h)) == "ODK_E_GONE"
        assert status(lib.odk_audio_stop(a.h)) == "ODK_E_GONE"
        with pytest.raises(OdkError):
            a.event(0)
    finally:
        a.close()
    # The loopback's own device carried on.
    b = Audio(loopback, "odk-loopback")
    b.close()


def test_kill_9_of_the_driver_is_an_error_and_the_device_comes_back_under_its_uid(loopback):
    a = Audio(loopback, "odk-loopback")
    try:
        out = a.stream(OUTPUT)
        a.start()
        assert a.write(out, 0, pattern(256, 2), 256) == 0
        (inst,) = [i for i in loopback.instances() if i["state"] == "running"]
        old_node = lib.odk_audio_node_id(a.h)
        os.kill(inst["pid"], signal.SIGKILL)
        assert a.events_until("none")[-1] == (EVENT_GONE, "")
        assert a.state() == STATE_GONE
        assert status(lib.odk_audio_stop(a.h)) == "ODK_E_GONE"
    finally:
        a.close()
    # The app saw the hang-up before odkd may have removed the old node, and
    # the restarted driver publishes its device before it is running: an app
    # opens again until it gets a new node.
    def reopen():
        try:
            h = Audio(loopback, "odk-loopback")
        except OdkError as e:
            assert e.name in ("ODK_E_NOT_FOUND", "ODK_E_STATE", "ODK_E_GONE"), e.name
            return None
        if lib.odk_audio_node_id(h.h) == old_node:
            h.close()
            return None
        return h
    b = wait_until(reopen, what="the device after the restart")
    try:
        b.start()
        inp = b.stream(INPUT)
        wait_until(lambda: b.driver_pos(inp) > 0, what="the restarted clock")
    finally:
        b.close()


def test_gain_applies_only_when_the_user_asks_for_it(loopback):
    a = Audio(loopback, "odk-loopback")
    try:
        out, inp = a.stream(OUTPUT), a.stream(INPUT)
        data = pattern(4800, 2)
        assert loop_through(a, out, inp, data, 4800, 4) == data  # unity: bit for bit
        a.stop()
        assert lib.odk_audio_set_control(a.h, 0, 500) == 0  # half the volume
        assert status(lib.odk_audio_set_control(a.h, 0, 1001)) == "ODK_E_INVALID"
        got = loop_through(a, out, inp, data, 4800, 4)
        half = [round(x * 0.5) for (x,) in struct.iter_unpack("<h", data)]
        assert [x for (x,) in struct.iter_unpack("<h", got)] == half
        a.stop()
        assert lib.odk_audio_set_control(a.h, 1, 1) == 0  # mute
        assert loop_through(a, out, inp, data, 4800, 4) == bytes(len(data))
    finally:
        a.close()


def test_property_changes_come_as_events_on_a_pollable_fd(loopback):
    import select
    a, b = Audio(loopback, "odk-loopback"), Audio(loopback, "odk-loopback")
    try:
        fd = lib.odk_audio_event_fd(b.h)
        while b.event(0):
            pass
        a.start()
        r, _, _ = select.select([fd], [], [], 10)
        assert r == [fd]
        assert b.events_until("Running")[-1] == (EVENT_PROPERTY, "Running")
        assert b.props()["Running"] is True
        a.stop()
        b.events_until("Running")
        assert b.props()["Running"] is False
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("props,reason", [
    ({"OdkAudioRingFrames": 64},
     "stream 0: ring of 64 frames is smaller than the zero-timestamp period (256)"),
    ({"OdkAudioPeriod": 0}, "zero-timestamp period of 0 frames"),
])
def test_a_driver_publishing_an_impossible_device_is_refused_with_the_reason(odkd, props,
                                                                              reason):
    odkd.plug({"model": "audio-loopback", **props})
    wait_until(lambda: reason in odkd.log_text(), what="the refusal in odkd's log")
    assert list_devices(odkd) == []
    assert status(lib.odk_audio_open(str(odkd.state).encode(), b"odk-loopback",
                                     ctypes.byref(vp()))) == "ODK_E_NOT_FOUND"


def test_odkctl_audio_lists_devices_and_watch_prints_every_change(odkd):
    import subprocess
    from conftest import BIN, CHILD_ENV
    node = odkd.plug({"model": "audio-clock"})
    odkd.running(provider=node)
    wait_until(lambda: list_devices(odkd), what="the clock device")
    text = odkd.ctl("audio").stdout
    assert "odk-clock" in text and "rate 48000 of [48000 96000 192000]" in text
    assert 'control 0: selector "Clock source" (device) = 1' in text
    assert "stream 1: input  2 x S16_LE @ 48000" in text
    (d,) = odkd.json("audio")
    assert d["properties"]["UID"] == "odk-clock" and d["clock"]["state"] == "stopped"
    assert d["clock"]["xruns"] == [0, 0]
    watch = subprocess.Popen([str(BIN / "odkctl"), "--state-dir", str(odkd.state), "--json",
                              "audio", "watch", "odk-clock", "4"], stdout=subprocess.PIPE,
                             text=True, env=CHILD_ENV)
    try:
        assert watch.stdout.readline().strip() == "watching odk-clock"
        odkd.ctl("audio", "control", "odk-clock", "0", "2")
        lines = [json.loads(watch.stdout.readline()) for _ in range(4)]
        assert watch.wait(timeout=30) == 0
    finally:
        watch.kill()
        watch.wait()
    assert {l["key"] for l in lines} == {"AvailableSampleRates", "SampleRate", "Streams",
                                         "Controls"}
    assert [l["value"] for l in lines if l["key"] == "AvailableSampleRates"] == \
        [[44100, 88200, 176400]]
    r = odkd.ctl("audio", "control", "odk-clock", "0", "9", check=False)
    assert r.returncode == 1 and "ODK_E_INVALID" in r.stderr


def test_the_loopback_keeps_every_frame_at_a_64_frame_period(odkd):
    """A soak, scaled by ODK_AUDIO_SOAK_S (seconds; make soak-audio runs
    600): a counting pattern played while the same sample times are
    recorded comes back whole — no frame lost or doubled — with no xrun, and
    the zero timestamps count frames at the device's rate."""
    seconds = float(os.environ.get("ODK_AUDIO_SOAK_S", "5"))
    plug_loopback(odkd, OdkAudioPeriod=64, OdkAudioRingFrames=RING)
    a = Audio(odkd, "odk-loopback")
    try:
        out, inp = a.stream(OUTPUT), a.stream(INPUT)
        frames_total = int(48000 * seconds)
        chunk = 1024
        block = lambda start: struct.pack(f"<{2 * chunk}i",
                                          *[(start + i) * 2 + c for i in range(chunk)
                                            for c in range(2)])
        assert a.set_format(out, 2, S32, 48000) == 0
        assert a.set_format(inp, 2, S32, 48000) == 0
        wpos = rpos = 0
        while a.write(out, wpos, block(wpos), chunk) == 0:
            wpos += chunk
        a.start()
        first = a.timestamp()
        buf = ctypes.create_string_buffer(chunk * 8)
        deadline = time.monotonic() + seconds * 4 + 60
        while rpos < frames_total:
            assert time.monotonic() < deadline
            moved = False
            if a.write(out, wpos, block(wpos), chunk) == 0:  # as far ahead as the ring allows
                wpos += chunk
                moved = True
            if a.driver_pos(inp) >= rpos + chunk:
                st = lib.odk_audio_read_frames(a.h, inp, rpos, buf, chunk)
                assert st == 0, status(st)
                assert buf.raw == block(rpos), f"frames {rpos}..{rpos + chunk} differ"
                rpos += chunk
                moved = True
            if not moved:
                time.sleep(0.01)
        # Done: the app stops streaming, so what follows is no xrun.
        for st_, pos in ((out, wpos), (inp, rpos)):
            assert lib.odk_audio_set_app_position(a.h, st_, pos, False) == 0
        last = a.timestamp()
        assert last.generation == first.generation
        assert (last.sample_time - first.sample_time) % 64 == 0
        span_ns = last.host_time_ns - first.host_time_ns
        # host time = start + sample time / rate, to the nanosecond
        assert abs((last.sample_time - first.sample_time) * 10**9 - span_ns * 48000) <= 2 * 48000
        xruns = odkd.json("audio")[0]["clock"]["xruns"]
        assert xruns == [0, 0], xruns
    finally:
        a.close()
