# SPDX-License-Identifier: MIT
"""Shared fixtures: start odkd in a temporary folder and drive it with odkctl."""
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("ODK_BUILD", ROOT / "build"))
BIN = BUILD / "bin"
DRIVERS = BUILD / "drivers"  # the samples: hello, serial-loopback, serial-tcp
TEST_DRIVERS = BUILD / "tests" / "drivers"  # echo and faulty, built for the tests


# Under `make asan-test` pytest itself runs with the ASan runtime preloaded
# (so ctypes can load the ASan-built libodk); odk's own programs must not
# inherit that, nor the relaxed options.
CHILD_ENV = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "ASAN_OPTIONS")}


def wait_until(cond, timeout=15.0, what="condition"):
    """Polls cond() until it returns something truthy; fails after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is not alive for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:  # reaped between the kill and the open (ESRCH, ENOENT)
        return False


class Odkd:
    # With any --drivers, odkd no longer reads its default folder, so both
    # are named.
    def __init__(self, tmp, extra_args=(), drivers=(DRIVERS, TEST_DRIVERS)):
        self.state = tmp / "state"
        self.dev = tmp / "dev"
        self.dev.mkdir()
        self.log_path = tmp / "odkd.log"
        args = [str(BIN / "odkd"), "--state-dir", str(self.state), "--dev-dir", str(self.dev)]
        for d in drivers:
            args += ["--drivers", str(d)]
        args += list(extra_args)
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(args, stderr=self.log, stdout=self.log, env=CHILD_ENV)
        wait_until(lambda: (self.state / "odkd.sock").exists() or self.proc.poll() is not None,
                   what="odkd's socket")
        assert self.proc.poll() is None, self.log_text()

    def log_text(self):
        return self.log_path.read_text(errors="replace")

    def ctl(self, *args, check=True, timeout=30):
        r = subprocess.run([str(BIN / "odkctl"), "--state-dir", str(self.state), *map(str, args)],
                           capture_output=True, text=True, timeout=timeout, env=CHILD_ENV)
        if check and r.returncode != 0:
            raise AssertionError(f"odkctl {' '.join(map(str, args))} failed ({r.returncode}):\n"
                                 f"{r.stdout}{r.stderr}\n--- odkd log ---\n{self.log_text()[-4000:]}")
        return r

    def json(self, *args):
        return json.loads(self.ctl("--json", *args).stdout)

    def plug(self, props, cls="OdkSimDevice"):
        out = self.ctl("sim", "plug", json.dumps({"class": cls, "properties": props})).stdout
        return int(out.strip())

    def instances(self):
        return self.json("list")

    def running(self, provider=None, n=1):
        def ok():
            l = [i for i in self.instances()
                 if i["state"] == "running" and (provider is None or i["provider"] == provider)]
            return l if len(l) >= n else None
        return wait_until(ok, what="a running driver instance")

    def service_node(self, cls):
        nodes = self.json("find", json.dumps({"IOProviderClass": cls}))
        return nodes[0]["id"] if nodes else None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture
def odkd(tmp_path):
    d = Odkd(tmp_path)
    yield d
    d.stop()
    assert d.proc.returncode == 0, "odkd did not exit cleanly:\n" + d.log_text()[-4000:]
    assert_no_sanitizer_reports(d)


def assert_no_sanitizer_reports(d):
    """Under `make asan` the hosts and odkd write sanitizer reports into the log."""
    log = d.log_text()
    for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
        assert marker not in log, f"sanitizer report in odkd's log:\n{log[-6000:]}"


@pytest.fixture
def make_odkd(tmp_path):
    """For tests that need their own odkd arguments."""
    started = []

    def make(sub="a", **kw):
        p = tmp_path / sub
        p.mkdir()
        d = Odkd(p, **kw)
        started.append(d)
        return d
    yield make
    for d in started:
        d.stop()
        assert_no_sanitizer_reports(d)
