#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""make bench ONLY=audio: the ALSA plugin on the audio-loopback sample,
against aplay to ALSA's null device in the same run.

Usage: audio_alsa.py ASOUNDRC STATE_DIR UID [HOST_PIDS]

Each round, with a CPU-bound job on every core:
 - ours: the smallest period (frames; the buffer is 4 periods) at which
   aplay to odk:UID and arecord from it run AUDIO_SECONDS (10) of 48 kHz
   stereo S16_LE with no xrun (a trial ends at its first xrun), trying
   AUDIO_PERIODS ascending; and the CPU time aplay spent per second of
   audio at that period (its user + system time, from wait4);
 - peer: aplay to `null` with the same period, buffer and frames.  The null
   PCM has no clock (it takes frames as fast as aplay writes them), so it
   never xruns at any period: its CPU is the floor, aplay's own cost of
   moving the same frames through libasound.
As root, aplay, arecord and the driver host (HOST_PIDS, comma-separated)
run at SCHED_FIFO 10, as Linux runs audio (AUDIO_RT=0: normal priority).
Rounds alternate ours and the peer (AUDIO_ROUNDS, 3).  Prints the
min/median/max like bench/bench.h, and fails, printing no number, when no
period ran clean or a stream ended with an error."""
import os
import signal
import statistics
import subprocess
import sys
import time

ASOUNDRC, STATE, UID = sys.argv[1:4]
HOSTS = [p for p in (sys.argv[4] if len(sys.argv) > 4 else "").split(",") if p]
RT = os.geteuid() == 0 and os.environ.get("AUDIO_RT", "1") != "0"
PRIO = ["chrt", "-f", "10"] if RT else []
SECONDS = float(os.environ.get("AUDIO_SECONDS", "10"))
ROUNDS = int(os.environ.get("AUDIO_ROUNDS", "3"))
PERIODS = [int(p) for p in os.environ.get("AUDIO_PERIODS", "32 64 128 256 512 1024 2048").split()]
RATE = 48000
FRAMES = int(SECONDS * RATE)
ENV = dict(os.environ, ALSA_CONFIG_PATH=ASOUNDRC, ODK_STATE_DIR=STATE)


def spawn(*args):
    return subprocess.Popen(PRIO + [str(a) for a in args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)


def reap(p, kill_on_xrun=False):
    """Waits for p: (exit status, CPU seconds, stderr, xrun seen)."""
    err = []
    xrun = False
    for line in p.stderr:
        err.append(line)
        if "underrun" in line or "overrun" in line:
            xrun = True
            if kill_on_xrun:
                os.kill(p.pid, signal.SIGKILL)  # not p.kill(): it may reap p
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return p.returncode, ru.ru_utime + ru.ru_stime, "".join(err), xrun


def stream_args(period):
    return ["-t", "raw", "-f", "S16_LE", "-c", "2", "-r", RATE, f"--period-size={period}",
            f"--buffer-size={4 * period}", "-s", FRAMES]


def ours(period):
    """(clean, aplay CPU s per audio s) of one loopback trial at period."""
    # The output takes the format before the capture starts the device
    # (a stream's format is fixed while the device runs).
    first = spawn("aplay", "-D", f"odk:{UID}", *stream_args(period)[:-2], "-s", 1, "/dev/zero")
    if reap(first)[0] != 0:
        raise SystemExit("audio_alsa: aplay could not set the output's format")
    rec = spawn("arecord", "-D", f"odk:{UID}", *stream_args(period), "/dev/null")
    time.sleep(0.2)
    play = spawn("aplay", "-D", f"odk:{UID}", *stream_args(period), "/dev/zero")
    rc, cpu, err, xrun = reap(play, kill_on_xrun=True)
    if xrun:
        os.kill(rec.pid, signal.SIGKILL)
    rrc, _, rerr, rxrun = reap(rec, kill_on_xrun=True)
    if not xrun and rc != 0:
        raise SystemExit(f"audio_alsa: aplay at period {period} failed ({rc}): {err}")
    if not (xrun or rxrun) and rrc != 0:
        raise SystemExit(f"audio_alsa: arecord at period {period} failed ({rrc}): {rerr}")
    return not (xrun or rxrun), cpu / SECONDS


def peer(period):
    play = spawn("aplay", "-D", "null", *stream_args(period), "/dev/zero")
    rc, cpu, err, _ = reap(play)
    if rc != 0:
        raise SystemExit(f"audio_alsa: aplay to null failed ({rc}): {err}")
    return cpu / SECONDS


def load():
    """A CPU-bound job on every core (killed by the caller)."""
    return [subprocess.Popen(["sh", "-c", "while :; do :; done"])
            for _ in range(os.cpu_count() or 1)]


def rng(v, fmt):
    return (f"{fmt % statistics.median_high(v)} (min {fmt % min(v)}, max {fmt % max(v)})")


def main():
    if RT:
        for pid in HOSTS:
            subprocess.run(["chrt", "-a", "-f", "-p", "10", pid], check=True)
    hogs = load()
    periods, cpu_ours, cpu_peer = [], [], []
    try:
        for _ in range(ROUNDS):
            found = None
            for period in PERIODS:
                clean, cpu = ours(period)
                if clean:
                    found = (period, cpu)
                    break
            if found is None:
                raise SystemExit(f"audio_alsa: no period in {PERIODS} ran {SECONDS:g} s "
                                 "without an xrun")
            periods.append(found[0])
            cpu_ours.append(found[1] * 100)
            cpu_peer.append(peer(found[0]) * 100)
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    ratio = [o / p if p > 0 else float("inf") for o, p in zip(cpu_ours, cpu_peer)]
    prio = "real-time" if RT else "normal priority"
    print(f"audio_min_period (buffer 4 periods, {SECONDS:g} s, under load, {prio}): "
          f"ours={rng(periods, '%d')} frames; null has no clock (any period) "
          f"over {ROUNDS} rounds")
    print(f"audio_cpu_per_stream vs aplay-null: ours={rng(cpu_ours, '%.2f')} % "
          f"peer={rng(cpu_peer, '%.2f')} % ratio={rng(ratio, '%.2f')} over {ROUNDS} rounds")
    sys.stdout.flush()


main()
