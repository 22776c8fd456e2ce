# SPDX-License-Identifier: MIT
"""The ALSA PCM plugin end to end: real ALSA applications (aplay, arecord,
alsabat) open odk audio devices as `odk:UID` through the ALSA configuration
meson generates into the build tree, and move samples through the device's
shared rings.  No kernel sound support is used.

ODK_AUDIO_SOAK_SECONDS scales the loopback soak (30 s here; `make
audio-soak` runs 10 minutes under a CPU-bound job on both cores)."""
import ctypes
import json
import os
import re
import signal
import subprocess
import sys
import time
import wave

import numpy as np
import pytest

from conftest import BIN, BUILD, CHILD_ENV, HANG_GUARD, pid_alive, wait_until

ASOUNDRC = BUILD / "src" / "families" / "audio" / "alsa" / "asoundrc"
PLUGIN = BUILD / "src" / "families" / "audio" / "alsa" / "libasound_module_pcm_odk.so"
SOAK_SECONDS = float(os.environ.get("ODK_AUDIO_SOAK_SECONDS", "30"))
# ODK_AUDIO_SOAK_LOAD=1: a CPU-bound job on every core while the soak runs.
SOAK_LOAD = os.environ.get("ODK_AUDIO_SOAK_LOAD") == "1"

pytestmark = pytest.mark.skipif(not PLUGIN.exists(),
                                reason="the ALSA plugin is not built (no libasound2-dev)")


def alsa_env(odkd):
    env = dict(CHILD_ENV)
    env["ALSA_CONFIG_PATH"] = str(ASOUNDRC)
    env["ODK_STATE_DIR"] = str(odkd.state)
    # alsabat 1.2.8 returns a stale errno as its status when a locale file
    # lookup failed before it (ENOENT under LANG=C.UTF-8): the C locale has
    # no files to look up.
    env["LC_ALL"] = "C"
    env["ODK_ALSA_DEBUG"] = "1"  # an xrun says where it happened
    # Under make asan-test the plugin and libodk are ASan+UBSan builds that
    # aplay (not one) loads: it needs the runtime first, as pytest has it.
    if "asan" in os.environ.get("LD_PRELOAD", ""):
        env["LD_PRELOAD"] = os.environ["LD_PRELOAD"]
        env["ASAN_OPTIONS"] = "detect_leaks=0"
    return env


def run(odkd, *args, timeout=HANG_GUARD, check=True):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout,
                       env=alsa_env(odkd))
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed ({r.returncode}):\n"
                             f"{r.stdout}{r.stderr}\n--- odkd log ---\n{odkd.log_text()[-3000:]}")
    return r


# The soak runs its audio path as Linux runs audio (sound servers and JACK
# clients get real-time priority through rtkit, CoreAudio runs drivers' I/O
# threads real-time): aplay, arecord and the driver host at SCHED_FIFO 10,
# above the load.  Needs root; ODK_AUDIO_SOAK_RT=0 runs them at the normal
# priority instead.
SOAK_RT = os.geteuid() == 0 and os.environ.get("ODK_AUDIO_SOAK_RT", "1") != "0"
AUDIO_PRIO = ["chrt", "-f", "10"] if SOAK_RT else []


def popen(odkd, *args):
    return subprocess.Popen([str(a) for a in args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=alsa_env(odkd))


# ---- the samples -------------------------------------------------------------

_lib = ctypes.CDLL(str(BUILD / "src" / "client" / "libodk.so"))
_lib.odk_audio_list.restype = ctypes.c_int
_lib.odk_audio_list.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
_lib.odk_value_to_json.restype = ctypes.c_void_p
_lib.odk_value_to_json.argtypes = [ctypes.c_void_p, ctypes.c_int]
_lib.odk_value_free.argtypes = [ctypes.c_void_p]
# free() from the global scope: under make asan-test that is ASan's, which
# allocated the string (libodk's own lookup would find glibc's).
_free = ctypes.CDLL(None).free
_free.argtypes = [ctypes.c_void_p]
_lib.odk_audio_open.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
_lib.odk_audio_close.argtypes = [ctypes.c_void_p]
_lib.odk_audio_set_control.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int64]


def audio_devices(odkd):
    """odk_audio_list: [{"id", "properties", "streams"}, ...]."""
    out = ctypes.c_void_p()
    st = _lib.odk_audio_list(str(odkd.state).encode(), ctypes.byref(out))
    assert st == 0, f"odk_audio_list: {st}"
    try:
        text = _lib.odk_value_to_json(out, 0)
        try:
            return json.loads(ctypes.string_at(text).decode())
        finally:
            _free(text)
    finally:
        _lib.odk_value_free(out)


def device(odkd, uid):
    """The properties of the device uid, or None."""
    return next((d["properties"] for d in audio_devices(odkd)
                 if d["properties"]["UID"] == uid), None)


class Stream(ctypes.Structure):  # odk_audio_shm_stream (odk/audio_types.h)
    _fields_ = [("direction", ctypes.c_uint32), ("frame_bytes", ctypes.c_uint32),
                ("channels", ctypes.c_uint32), ("sample_format", ctypes.c_uint32),
                ("ring_offset", ctypes.c_uint64), ("ring_bytes", ctypes.c_uint64),
                ("ring_frames", ctypes.c_uint32), ("reserved", ctypes.c_uint32),
                ("driver_pos", ctypes.c_uint64), ("app_pos", ctypes.c_uint64),
                ("app_active", ctypes.c_uint32), ("reserved2", ctypes.c_uint32),
                ("xruns", ctypes.c_uint64)]


class Clock(ctypes.Structure):  # odk_audio_shm_clock
    _fields_ = [("seq", ctypes.c_uint32), ("rate", ctypes.c_uint32),
                ("sample_time", ctypes.c_uint64), ("host_time_ns", ctypes.c_uint64),
                ("period_frames", ctypes.c_uint64), ("generation", ctypes.c_uint64)]


class Shm(ctypes.Structure):  # odk_audio_shm
    _fields_ = [("magic", ctypes.c_uint32), ("version", ctypes.c_uint32),
                ("state", ctypes.c_uint32), ("n_streams", ctypes.c_uint32),
                ("clock", Clock), ("streams", Stream * 8)]


class Timestamp(ctypes.Structure):  # odk_audio_timestamp
    _fields_ = [("sample_time", ctypes.c_uint64), ("host_time_ns", ctypes.c_uint64),
                ("rate", ctypes.c_uint32), ("state", ctypes.c_uint32),
                ("generation", ctypes.c_uint64)]


_lib.odk_audio_shared.restype = ctypes.POINTER(Shm)
_lib.odk_audio_shared.argtypes = [ctypes.c_void_p]
_lib.odk_audio_get_timestamp.argtypes = [ctypes.c_void_p, ctypes.POINTER(Timestamp)]


class Audio:
    """A handle of our own on a device (odk_audio), beside the ALSA apps."""

    def __init__(self, odkd, uid):
        self.h = ctypes.c_void_p()
        st = _lib.odk_audio_open(str(odkd.state).encode(), uid.encode(), ctypes.byref(self.h))
        assert st == 0, f"odk_audio_open: {st}"

    def shared(self):
        return _lib.odk_audio_shared(self.h).contents

    def timestamp(self):
        ts = Timestamp()
        assert _lib.odk_audio_get_timestamp(self.h, ctypes.byref(ts)) == 0
        return ts

    def set_control(self, control, value):
        return _lib.odk_audio_set_control(self.h, control, value)

    def close(self):
        _lib.odk_audio_close(self.h)


UIDS = {"audio-loopback": "odk-loopback", "audio-tone": "odk-tone", "audio-clock": "odk-clock"}


# The loopback's ring for the tests that are not about latency: 32768
# frames (680 ms at 48 kHz) rather than its default 8192, so that the
# shared machine's scheduling delays do not turn into xruns.
ROOMY = {"OdkAudioRingFrames": 32768}


def plug_sample(odkd, model, props=None):
    """Plugs a sim node that the audio sample `model` matches (with props
    for the sample, e.g. ROOMY); returns the node and the UID of the
    device it publishes, once it is there."""
    node = odkd.plug({"model": model, **(props or {})})
    odkd.running(provider=node)
    uid = UIDS[model]
    wait_until(lambda: device(odkd, uid), what=f"the {model} device")
    return node, uid


# ---- signals -----------------------------------------------------------------

def write_wav(path, frames, rate, sampwidth):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(frames.shape[1])
        w.setsampwidth(sampwidth)
        w.setframerate(rate)
        w.writeframes(frames.astype("<i2" if sampwidth == 2 else "<i4").tobytes())


def read_raw(path, channels, dtype):
    data = np.fromfile(str(path), dtype=dtype)
    return data[:len(data) // channels * channels].reshape(-1, channels)


def find_start(recorded, known):
    """Index of the frame where known (frames x channels) begins in recorded,
    found by its first 32 frames; None when absent."""
    head = known[:32]
    col = recorded[:, 0]
    cands = np.flatnonzero(col == head[0, 0])
    for c in cands:
        if c + len(head) <= len(recorded) and np.array_equal(recorded[c:c + len(head)], head):
            return int(c)
    return None


def peak_hz(samples, rate):
    x = samples.astype(np.float64)
    x = x - x.mean()
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1.0 / rate)[int(np.argmax(spec))])


# ---- tests ---------------------------------------------------------------------

def test_aplay_lists_the_devices_of_the_running_odkd(odkd):
    _, uid = plug_sample(odkd, "audio-loopback")
    out = run(odkd, "aplay", "-L").stdout
    assert f"odk:{uid}" in out.splitlines(), out
    assert "odk" in out.splitlines(), out
    rec = run(odkd, "arecord", "-L").stdout
    assert f"odk:{uid}" in rec.splitlines(), rec


@pytest.mark.parametrize("rate", [48000, 96000])
def test_alsabat_detects_the_sine_through_the_loopback(odkd, tmp_path, rate):
    """aplay plays a 997 Hz sine to the loopback; alsabat records it from the
    loopback and detects the frequency.  (alsabat's own two-thread mode
    starts its capture and its playback independently: when the playback's
    open takes longer than alsabat's 500 ms capture delay, as under ASan on
    a loaded machine, the recording holds the sine's onset and alsabat sees
    side peaks.  Here the sine runs before the capture starts.)"""
    _, uid = plug_sample(odkd, "audio-loopback", ROOMY)
    t = np.arange(rate * 8) / rate
    sine = (0.8 * 32767 * np.sin(2 * np.pi * 997 * t)).astype(np.int64)
    wav = tmp_path / "sine.wav"
    write_wav(wav, np.stack([sine, sine], axis=1), rate, 2)
    play = popen(odkd, "aplay", "-D", f"odk:{uid}", wav)
    try:
        wait_until(lambda: (device(odkd, uid) or {}).get("Running") or play.poll() is not None,
                   what="aplay to start the loopback")
        assert play.poll() is None, play.stderr.read()
        # aplay's first frame lands a period after the start: the capture
        # begins once the device clock is half a second in, past that onset.
        h = Audio(odkd, uid)
        try:
            wait_until(lambda: h.timestamp().sample_time > rate // 2 or play.poll() is not None,
                       what="half a second of the sine")
        finally:
            h.close()
        r = run(odkd, "alsabat", "-C", f"odk:{uid}", "-r", rate, "-c", 2, "-f", "S16_LE",
                "-F", 997, "-n", rate, f"--log={tmp_path / 'bat.log'}", check=False)
    finally:
        play.terminate()
        play.wait()
    log = (tmp_path / "bat.log").read_text(errors="replace")
    assert r.returncode == 0, log[-3000:] + odkd.log_text()[-2000:]
    assert log.count("PASS: Peak detected at target frequency") == 2, log[-3000:]


def set_output_format(odkd, uid, fmt, channels, rate):
    """A stream's format is fixed while the device runs (the capture below
    starts it): the output takes the format first, through a one-frame
    aplay (the plugin sets it at hw_params, and it stays)."""
    run(odkd, "aplay", "-D", f"odk:{uid}", "-t", "raw", "-f", fmt, "-c", channels, "-r", rate,
        "-s", 1, "/dev/zero")


@pytest.mark.parametrize("fmt,channels,rate", [("S16_LE", 2, 48000), ("S32_LE", 8, 96000)])
def test_wav_played_with_aplay_comes_back_sample_exact_from_arecord(odkd, tmp_path, fmt,
                                                                     channels, rate):
    _, uid = plug_sample(odkd, "audio-loopback", ROOMY)
    width = 2 if fmt == "S16_LE" else 4
    dtype = "<i2" if width == 2 else "<i4"
    rng = np.random.default_rng(14)
    hi = 2 ** (8 * width - 1)
    known = rng.integers(-hi, hi, size=(rate, channels), dtype=np.int64)  # one second
    known[:, :][known == 0] = 1  # no zero frame inside: silence is what surrounds it
    wav = tmp_path / "known.wav"
    write_wav(wav, known, rate, width)
    raw = tmp_path / "rec.raw"
    seconds = 3
    set_output_format(odkd, uid, fmt, channels, rate)
    rec = popen(odkd, "arecord", "-D", f"odk:{uid}", "-t", "raw", "-f", fmt, "-c", channels,
                "-r", rate, "-s", rate * seconds, raw)
    # The capture runs once the device's input position moves.
    wait_until(lambda: (raw.exists() and raw.stat().st_size > 0) or rec.poll() is not None,
               what="arecord to start recording")
    play = run(odkd, "aplay", "-D", f"odk:{uid}", wav)
    _, err = rec.communicate(timeout=HANG_GUARD)
    assert rec.returncode == 0, err
    # aplay and arecord recover from an xrun and still exit 0: a lost frame
    # would show below, but say why first.
    assert "underrun" not in play.stderr, play.stderr
    assert "overrun" not in err, err
    got = read_raw(raw, channels, dtype)
    start = find_start(got, known)
    assert start is not None, "the played signal is not in the recording"
    assert start + len(known) <= len(got), "the recording ends inside the signal"
    same = got[start:start + len(known)] == known
    assert same.all(), (f"{int((~same.all(axis=1)).sum())} of {len(known)} frames differ, "
                        f"first at frame {int(np.argmin(same.all(axis=1)))}")


def test_arecord_from_audio_tone_shows_its_frequency(odkd, tmp_path):
    node, uid = plug_sample(odkd, "audio-tone")
    service = odkd.service_node("AudioTone")
    odkd.ctl("call", service, 0, 1000 * 1000)  # the tone's frequency, in millihertz
    raw = tmp_path / "tone.raw"
    run(odkd, "arecord", "-D", f"odk:{uid}", "-t", "raw", "-f", "S16_LE", "-c", 1, "-r", 48000,
        "-s", 48000, raw)
    got = read_raw(raw, 1, "<i2")[:, 0]
    assert len(got) == 48000
    assert np.abs(got).max() > 1000, "silence"
    assert abs(peak_hz(got, 48000) - 1000) <= 2


def test_a_format_the_device_lacks_is_a_clear_alsa_error(odkd, tmp_path):
    _, uid = plug_sample(odkd, "audio-loopback")
    r = run(odkd, "aplay", "-D", f"odk:{uid}", "-t", "raw", "-f", "U8", "-c", 2, "-r", 48000,
            "-d", 1, "/dev/zero", check=False)
    assert r.returncode != 0
    assert "Sample format non available" in r.stderr, r.stderr
    r = run(odkd, "aplay", "-D", f"odk:{uid}", "-t", "raw", "-f", "S16_LE", "-c", 2,
            "-r", 12345, "--disable-resample", "-d", 1, "/dev/zero", check=False)
    # aplay takes the nearest rate and says so: the odd rate is not offered.
    assert "rate is not accurate" in r.stderr or r.returncode != 0, r.stderr
    r = run(odkd, "aplay", "-D", "odk:no-such-device", "-d", 1, "/dev/zero", check=False)
    assert r.returncode != 0
    assert "no-such-device" in r.stderr, r.stderr


def test_withdrawing_the_device_ends_arecord_with_an_error(odkd, tmp_path):
    node, uid = plug_sample(odkd, "audio-loopback")
    raw = tmp_path / "rec.raw"
    rec = popen(odkd, "arecord", "-D", f"odk:{uid}", "-t", "raw", "-f", "S16_LE", "-c", 2,
                "-r", 48000, raw)
    wait_until(lambda: (raw.exists() and raw.stat().st_size > 4096) or rec.poll() is not None,
               what="arecord to record")
    assert rec.poll() is None, rec.stderr.read()
    t0 = time.monotonic()
    odkd.ctl("sim", "unplug", node)
    _, err = rec.communicate(timeout=HANG_GUARD)
    took = time.monotonic() - t0
    print(f"arecord ended {took:.3f} s after the unplug: {err.strip()!r}")
    assert rec.returncode != 0, err


def test_kill_9_of_the_driver_errors_the_player_and_the_device_returns(odkd, tmp_path):
    node, uid = plug_sample(odkd, "audio-loopback")
    inst = odkd.running(provider=node)[0]
    play = popen(odkd, "aplay", "-D", f"odk:{uid}", "-t", "raw", "-f", "S16_LE", "-c", 2,
                 "-r", 48000, "/dev/zero")
    wait_until(lambda: (device(odkd, uid) or {}).get("Running") or play.poll() is not None,
               what="aplay to start the device")
    assert play.poll() is None, play.stderr.read()
    os.kill(inst["pid"], signal.SIGKILL)
    _, err = play.communicate(timeout=HANG_GUARD)
    assert play.returncode != 0, err
    wait_until(lambda: device(odkd, uid), what="the device back after the restart")
    run(odkd, "aplay", "-D", f"odk:{uid}", "-t", "raw", "-f", "S16_LE", "-c", 2, "-r", 48000,
        "-s", 4800, "/dev/zero")


def hw_rates(odkd, uid):
    r = run(odkd, "aplay", "-D", f"odk:{uid}", "--dump-hw-params", "-t", "raw", "-f", "S16_LE",
            "-c", 2, "-s", 1, "/dev/zero", check=False)
    m = re.search(r"^RATE:\s*(.*)$", r.stderr, re.M)
    assert m, r.stderr
    return m.group(1).strip()


def rate_offered(odkd, uid, rate):
    """Whether a new aplay gets exactly rate (aplay takes the nearest one
    the device offers, and warns when that is another)."""
    r = run(odkd, "aplay", "-D", f"odk:{uid}", "-t", "raw", "-f", "S16_LE", "-c", 2,
            "-r", rate, "-s", 1, "/dev/zero")
    return "rate is not accurate" not in r.stderr


def test_a_clock_switch_changes_the_rates_a_new_aplay_sees(odkd):
    node, uid = plug_sample(odkd, "audio-clock")
    before = hw_rates(odkd, uid)
    dev = device(odkd, uid)
    sel = next(c for c in dev["Controls"] if c["Kind"] == "selector")
    other = next(i["ID"] for i in sel["Items"] if i["ID"] != sel["Value"])
    h = Audio(odkd, uid)
    try:
        assert h.set_control(sel["ID"], other) == 0
    finally:
        h.close()
    wait_until(lambda: device(odkd, uid)["AvailableSampleRates"] != dev["AvailableSampleRates"],
               what="the new rates")
    after = hw_rates(odkd, uid)
    rates = device(odkd, uid)["AvailableSampleRates"]
    assert before != after
    # ALSA shows the rates as an interval; each one is tried exactly.
    for r in rates:
        assert rate_offered(odkd, uid, r), (r, after)
    for r in dev["AvailableSampleRates"]:
        if r not in rates:
            assert not rate_offered(odkd, uid, r), (r, after)


def counting_frames(n, start=0):
    """Stereo S32_LE frames: channel 0 counts, channel 1 is its complement."""
    c = np.arange(start + 1, start + 1 + n, dtype=np.int64).astype("<i4")
    return np.stack([c, ~c], axis=1)


def test_loopback_soak_64_frame_periods_has_no_xrun_and_no_lost_frame(odkd, tmp_path):
    node, uid = plug_sample(odkd, "audio-loopback")
    if SOAK_RT:
        host = odkd.running(provider=node)[0]["pid"]
        subprocess.run(["chrt", "-a", "-f", "-p", "10", str(host)], check=True)
    rate = 48000
    frames = int(SOAK_SECONDS * rate)
    src = tmp_path / "count.raw"
    counting_frames(frames).tofile(str(src))
    raw = tmp_path / "rec.raw"
    # 64-frame periods (a wakeup every 1.3 ms).  The buffer, 4096 frames
    # (85 ms), is the delay the machine may add before aplay or arecord runs
    # again; the rest of the loopback's 8192-frame ring is the delay it may
    # add before the driver does (a playback frame waits in the ring until
    # the driver takes it).
    common = ["-t", "raw", "-f", "S32_LE", "-c", 2, "-r", rate, "--period-size=64",
              "--buffer-size=4096"]
    set_output_format(odkd, uid, "S32_LE", 2, rate)
    handle = Audio(odkd, uid)
    shm = handle.shared()
    hogs = [subprocess.Popen(["sh", "-c", "while :; do :; done"])
            for _ in range(os.cpu_count() if SOAK_LOAD else 0)]
    try:
        rec = popen(odkd, *AUDIO_PRIO, "arecord", "-D", f"odk:{uid}", *common,
                    "-s", frames + rate, raw)
        wait_until(lambda: (raw.exists() and raw.stat().st_size > 0) or rec.poll() is not None,
                   what="arecord to start recording")
        started = time.monotonic()
        t0 = handle.timestamp()
        play = run(odkd, *AUDIO_PRIO, "aplay", "-D", f"odk:{uid}", *common, src,
                   timeout=SOAK_SECONDS * 3 + 60)
        t1 = handle.timestamp()
        played_for = time.monotonic() - started
        _, rec_err = rec.communicate(timeout=HANG_GUARD)
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    assert rec.returncode == 0, rec_err
    for who, err in (("aplay", play.stderr), ("arecord", rec_err)):
        assert "underrun" not in err and "overrun" not in err, f"{who}: {err}"
    got = read_raw(raw, 2, "<i4")
    start = find_start(got, counting_frames(64))
    assert start is not None, "the counter is not in the recording"
    seq = got[start:start + frames]
    assert len(seq) == frames, f"{len(seq)} of {frames} frames came back"
    expect = counting_frames(frames)
    bad = ~(seq == expect).all(axis=1)
    assert not bad.any(), f"{int(bad.sum())} frames lost or repeated, first at {int(np.argmax(bad))}"
    # The device's own count: the driver never needed a frame that was not
    # there (output) nor overwrote one not read yet (input).
    shm = handle.shared()
    xruns = [shm.streams[i].xruns for i in range(shm.n_streams)]
    assert xruns == [0] * len(xruns), xruns  # counted from the start of I/O
    clock_frames = t1.sample_time - t0.sample_time
    wall = (t1.host_time_ns - t0.host_time_ns) / 1e9
    print(f"soak: {frames} frames, sample-exact; aplay ran {played_for:.2f} s for "
          f"{frames / rate:.2f} s of audio; the device clock counted {clock_frames} frames "
          f"in {wall:.3f} s ({clock_frames / wall:.1f} Hz); device xruns {xruns}; "
          f"real-time {SOAK_RT}, load {SOAK_LOAD}")
    handle.close()
