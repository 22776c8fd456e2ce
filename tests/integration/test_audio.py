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
_sig("free", None, vp)
_sig("odk_audio_open", ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(vp))
_sig("odk_audio_close", None, vp)
_sig("odk_audio_properties", vp, vp)
_sig("odk_audio_rate", ctypes.c_uint32, vp)
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
    lib.free(p)
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


@pytest.fixture
def loopback(odkd):
    plug_loopback(odkd)
    return odkd


def pattern(frames, channels, start=0):
    """Distinct 16-bit samples: frame f, channel c -> a value from f and c."""
    return b"".join(struct.pack("<h", ((f * 7 + c * 1001) % 65536) - 32768)
                    for f in range(start, start + frames) for c in range(channels))


def loop_through(a, out, inp, data, frames, frame_bytes, chunk=512):
    """Plays data through the output while recording the same sample times
    from the input; returns what was recorded."""
    got = b""
    wpos = rpos = 0
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
        a.start()
        assert a.state() == STATE_RUNNING
        got = loop_through(a, out, inp, data, frames, frame_bytes)
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
        a.stop()
        assert a.set_format(out, 2, S16, 96000) == 0
    finally:
        a.close()
