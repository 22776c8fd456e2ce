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
# The build's signing key and the folder that trusts it (docs/trust.md):
# every in-tree bundle is signed with it; a test that makes or changes a
# bundle signs it again with sign_bundle().
TRUST = BUILD / "trust"
BUILD_KEY = BUILD / "keys" / "odk-build.key"


def sign_bundle(folder, key=BUILD_KEY):
    """Signs a bundle folder (odkctl sign) with the build's key by default."""
    subprocess.run([str(BIN / "odkctl"), "sign", str(folder), "--key", str(key)], check=True,
                   capture_output=True, text=True, env=CHILD_ENV)


# Under `make asan-test` pytest itself runs with the ASan runtime preloaded
# (so ctypes can load the ASan-built libodk); odk's own programs must not
# inherit that, nor the relaxed options.
CHILD_ENV = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "ASAN_OPTIONS")}


# Every timeout in these tests is a hang guard: it only ends a test that
# would otherwise wait forever, it is never the property under test, and it
# is generous (the machine is shared and sanitizer builds are slow).
HANG_GUARD = 60.0


def wait_until(cond, timeout=HANG_GUARD, what="condition"):
    """Polls cond() until it returns something truthy; fails after timeout
    (a hang guard, not a statement about speed)."""
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


# What a sanitizer writes when it finds something (ASan, LSan, UBSan).
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def sanitizer_report(text):
    """The first sanitizer report in text (from its first line on), or None."""
    lines = text.splitlines()
    for k, line in enumerate(lines):
        if any(m in line for m in SANITIZER_MARKERS):
            return "\n".join(lines[max(0, k - 2):k + 60])
    return None


def stop_odkd(proc):
    """Ends an odkd this test started: SIGTERM, then its exit status.  A
    SIGKILL only if it does not exit within the hang guard (then the status
    says so and check_odkd_exit fails)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=HANG_GUARD)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def check_odkd_exit(status, log, expected=0, who="odkd"):
    """Every odkd a test starts ends here: its log (odkd's own lines and the
    driver hosts' it relays) holds no sanitizer report, and it exited with
    the expected status (0 after SIGTERM).  Fails the test naming the report."""
    report = sanitizer_report(log)
    if report is not None:
        kind = next(m for m in SANITIZER_MARKERS if m in report)
        kind = {"runtime error:": "UndefinedBehaviorSanitizer"}.get(kind, kind.split()[-1])
        pytest.fail(f"{who}: {kind} report in its log:\n{report}", pytrace=False)
    assert status == expected, (f"{who} exited with status {status}, not {expected}"
                                + (" (killed: no exit within the hang guard after SIGTERM)"
                                   if status == -signal.SIGKILL else "")
                                + ":\n" + log[-4000:])


def stop_and_check_odkd(proc, log_path, who="odkd"):
    """stop_odkd then check_odkd_exit on the log file at log_path."""
    status = stop_odkd(proc)
    check_odkd_exit(status, Path(log_path).read_text(errors="replace"), who=who)


class Odkd:
    # With any --drivers, odkd no longer reads its default folder, so both
    # are named.
    def __init__(self, tmp, extra_args=(), drivers=(DRIVERS, TEST_DRIVERS)):
        self.tmp = tmp
        self.state = tmp / "state"
        self.dev = tmp / "dev"
        self.dev.mkdir()
        self.args = [str(BIN / "odkd"), "--state-dir", str(self.state), "--dev-dir", str(self.dev),
                     "--trust-dir", str(TRUST)]
        for d in drivers:
            self.args += ["--drivers", str(d)]
        self.args += list(extra_args)
        self.runs = 0
        self.checked = []  # log paths of earlier runs, already stopped and checked
        self.start()

    def start(self):
        """Starts odkd (again, after stop(): same state folder, a new log)."""
        self.runs += 1
        self.log_path = self.tmp / ("odkd.log" if self.runs == 1 else f"odkd.{self.runs}.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.args, stderr=self.log, stdout=self.log, env=CHILD_ENV)
        wait_until(lambda: (self.state / "odkd.sock").exists() or self.proc.poll() is not None,
                   what="odkd's socket")
        assert self.proc.poll() is None, self.log_text()
        # The socket exists before odkd has loaded (and verified) its
        # bundles; its first answer comes after, once its loop (and the
        # spare host) runs: a test's baseline starts there.
        self.ctl("list")

    def log_text(self):
        return self.log_path.read_text(errors="replace")

    def ctl(self, *args, check=True, timeout=HANG_GUARD):
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
        """Stops this run of odkd with SIGTERM and checks it (exit status 0,
        no sanitizer report); idempotent."""
        if self.log_path in self.checked:
            return
        status = stop_odkd(self.proc)
        self.log.close()
        self.checked.append(self.log_path)
        check_odkd_exit(status, self.log_text(), who=f"odkd ({self.log_path.name})")


# The vm marker (tests/vm): a test marked vm runs only inside the guest
# machine, where the harness sets ODK_IN_VM=1; here it is skipped.
def pytest_configure(config):
    config.addinivalue_line(
        "markers", "vm(devices=[...]): runs only in the guest (make vm-test); "
        "devices are QEMU arguments the guest is booted with")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("ODK_IN_VM") == "1":
        return
    skip = pytest.mark.skip(reason="runs only in the guest machine: make vm-test")
    for item in items:
        if item.get_closest_marker("vm"):
            item.add_marker(skip)


@pytest.fixture
def odkd(tmp_path):
    d = Odkd(tmp_path)
    yield d
    d.stop()


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
    failures = []
    for d in started:  # every one is stopped, even when an earlier one fails
        try:
            d.stop()
        except BaseException as e:  # pytest.fail raises a BaseException
            failures.append(e)
    if failures:
        raise failures[0]
