# SPDX-License-Identifier: MIT
"""Who may do what on odkd's socket (issue 15, item 4; docs/trust.md).

The tests create two throwaway users (odkacc-a, odkacc-b) and a group
(odkacc-g) and run odkctl and small socket clients as them.  The
access-probe driver (tests/drivers/access-probe) logs and counts every
user-client open that reaches it, so a refusal can be shown to have
happened in odkd, before the driver heard of the attempt.
"""
import fcntl
import grp
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import BIN, CHILD_ENV, HANG_GUARD, ROOT, TEST_DRIVERS, Odkd
from driver_selectors import read_enums

USER_A, USER_B, GROUP = "odkacc-a", "odkacc-b", "odkacc-g"  # named in access-probe's odk.json
BUNDLE = "org.odk.test.access-probe"
PROBE = read_enums(ROOT / "tests" / "drivers" / "access-probe" / "access_probe_selectors.h",
                   ("access_probe_selector",), "PROBE_")
WHOAMI = PROBE.WHOAMI  # out: the caller's uid, the opens the driver has seen

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="creates users and groups and runs programs as them: "
                                       "needs root")


def _run(*cmd):
    subprocess.run(cmd, check=True, capture_output=True, timeout=HANG_GUARD)


def _remove_accounts():
    for u in (USER_A, USER_B):
        try:
            pwd.getpwnam(u)
        except KeyError:
            continue
        _run("userdel", u)
    try:
        grp.getgrnam(GROUP)
    except KeyError:
        return
    _run("groupdel", GROUP)


@pytest.fixture(scope="module")
def accounts():
    """The users and the group, created for this module and removed after.
    A lock keeps two runs of this file (normal and ASan) from sharing them."""
    if not shutil.which("useradd"):
        pytest.skip("useradd is not installed (package passwd)")
    lock = open("/tmp/odk-test-access.lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        _remove_accounts()  # left over by a run that was killed
        _run("groupadd", GROUP)
        for u in (USER_A, USER_B):
            _run("useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", u)
        yield {"a": pwd.getpwnam(USER_A).pw_uid, "b": pwd.getpwnam(USER_B).pw_uid,
               "g": grp.getgrnam(GROUP).gr_gid}
    finally:
        _remove_accounts()
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


@pytest.fixture
def odkd(accounts):
    """odkd (as root) in a folder every user can reach: pytest's own
    temporary folders are private to root."""
    tmp = Path(tempfile.mkdtemp(prefix="odk-access-"))
    tmp.chmod(0o755)
    d = Odkd(tmp)
    yield d
    try:
        d.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def as_user(d, user, *args, groups=()):
    """odkctl run as user, with exactly these supplementary groups."""
    return subprocess.run(
        [str(BIN / "odkctl"), "--state-dir", str(d.state), *map(str, args)],
        user=user, group=pwd.getpwnam(user).pw_gid, extra_groups=list(groups),
        capture_output=True, text=True, timeout=HANG_GUARD, env=CHILD_ENV, cwd="/")


def plug_probe(d, model):
    dev = d.plug({"model": model})
    d.running(provider=dev)
    return dev


def opens_seen(d):
    """The driver's log lines for opens that reached it."""
    return [l for l in d.ctl("log", BUNDLE).stdout.splitlines() if "client_open by uid" in l]


def test_another_uid_cannot_open_and_the_driver_never_sees_it(odkd, accounts):
    dev = plug_probe(odkd, "access-default")
    r = as_user(odkd, USER_A, "call", dev, WHOAMI)
    assert r.returncode != 0
    assert "ODK_E_ACCESS" in r.stderr
    assert "not allowed to open user clients of AccessDefault" in r.stderr
    # Even in the group: this personality names none, so only root and
    # odkd's own user may open it.
    r = as_user(odkd, USER_A, "call", dev, WHOAMI, groups=[accounts["g"]])
    assert r.returncode != 0 and "ODK_E_ACCESS" in r.stderr
    assert opens_seen(odkd) == []
    # Root's open is the first the driver counts.
    assert odkd.ctl("call", dev, WHOAMI).stdout.split() == ["0", "1"]
    (line,) = opens_seen(odkd)
    assert "uid 0 " in line


def test_a_member_of_the_allowed_group_can_open(odkd, accounts):
    dev = plug_probe(odkd, "access-group")
    r = as_user(odkd, USER_A, "call", dev, WHOAMI, groups=[accounts["g"]])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(accounts["a"]), "1"]
    # The group counts only while the process holds it: the credentials are
    # the kernel's (SO_PEERGROUPS), not what the group database says.
    r = as_user(odkd, USER_B, "call", dev, WHOAMI)
    assert r.returncode != 0 and "not allowed to open user clients of AccessByGroup" in r.stderr
    r = as_user(odkd, USER_A, "call", dev, WHOAMI)
    assert r.returncode != 0 and "ODK_E_ACCESS" in r.stderr
    lines = opens_seen(odkd)
    assert len(lines) == 1 and f"uid {accounts['a']} " in lines[0]


def test_a_listed_user_can_open_and_others_cannot(odkd, accounts):
    dev = plug_probe(odkd, "access-user")
    r = as_user(odkd, USER_A, "call", dev, WHOAMI)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(accounts["a"]), "1"]
    r = as_user(odkd, USER_B, "call", dev, WHOAMI, groups=[accounts["g"]])
    assert r.returncode != 0 and "not allowed to open user clients of AccessByUser" in r.stderr
    assert len(opens_seen(odkd)) == 1


def test_everyone_lets_any_uid_open(odkd, accounts):
    dev = plug_probe(odkd, "access-everyone")
    r = as_user(odkd, USER_B, "call", dev, WHOAMI)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(accounts["b"]), "1"]


def test_reads_are_open_to_everyone_and_changes_are_privileged(odkd, accounts):
    dev = plug_probe(odkd, "access-default")
    for args in (["list"], ["tree"], ["find", '{"IOProviderClass": "OdkSimDevice"}'],
                 ["match", "--explain", dev], ["crashes"]):
        r = as_user(odkd, USER_A, *args)
        assert r.returncode == 0, (args, r.stderr)
    assert BUNDLE in as_user(odkd, USER_A, "list").stdout
    (before,) = odkd.running(provider=dev)
    refused = {
        "sim-plug": ["sim", "plug", '{"class": "OdkSimDevice", "properties": {"model": "x"}}'],
        "sim-unplug": ["sim", "unplug", dev],
        "restart": ["restart", BUNDLE],
        "uninstall": ["uninstall", BUNDLE],
        "install": ["install", "/nonexistent"],
        "power": ["power", "sleep"],
        "debug": ["debug", BUNDLE],
    }
    for op, args in refused.items():
        r = as_user(odkd, USER_A, *args)
        assert r.returncode != 0, op
        assert "ODK_E_ACCESS" in r.stderr, (op, r.stderr)
        assert f"permission denied: {op} needs root or odkd's user" in r.stderr, r.stderr
    # Nothing happened: the same instance runs, and the device is still there.
    (after,) = odkd.running(provider=dev)
    assert after["pid"] == before["pid"] and after["restarts"] == 0
    assert len(odkd.json("find", '{"IOProviderClass": "OdkSimDevice"}')) == 1


def _as_user_socket(user, path, messages):
    """A child running as user sends raw messages on odkd's socket without
    reading the replies; returns its exit code (0: it could connect)."""
    pw = pwd.getpwnam(user)
    pid = os.fork()
    if pid == 0:  # the child: drop to the user, send, exit without pytest's cleanup
        code = 1
        try:
            os.setgroups([])
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            s.settimeout(HANG_GUARD)
            s.connect(path)
            for m in messages:
                try:
                    s.send(m)
                except OSError:
                    pass  # too large for the socket: refused by the kernel, fine
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_garbage_from_an_unprivileged_uid_is_refused_and_odkd_stays_up(odkd, accounts):
    dev = plug_probe(odkd, "access-default")
    sock = str(odkd.state / "odkd.sock")
    garbage = [os.urandom(n) for n in (1, 7, 64, 4096, 65536, 150000)]
    garbage += [b"\x00" * 64, b"\xff" * 64, b"x" * (4 << 20)]  # the last is too big to send
    assert _as_user_socket(USER_A, sock, garbage) == 0
    assert odkd.proc.poll() is None
    # Still serving everyone, and still refusing the unprivileged.
    assert as_user(odkd, USER_A, "list").returncode == 0
    r = as_user(odkd, USER_A, "restart", BUNDLE)
    assert r.returncode != 0 and "ODK_E_ACCESS" in r.stderr
    r = as_user(odkd, USER_A, "call", dev, WHOAMI)
    assert r.returncode != 0 and "ODK_E_ACCESS" in r.stderr
    assert opens_seen(odkd) == []
    # Well-formed requests with hostile arguments, from the same uid: the
    # privileged ones are refused before their arguments are read.
    hostile = {("restart", "x" * (1 << 16)): "ODK_E_ACCESS",
               ("sim", "unplug", "18446744073709551615"): "ODK_E_ACCESS",
               ("match", "--explain", "18446744073709551615"): "ODK_E_NOT_FOUND",
               ("log", "../../etc/passwd"): "ODK_E_NOT_FOUND",
               ("call", "18446744073709551615", WHOAMI): "ODK_E_NOT_FOUND"}
    for args, status in hostile.items():
        r = as_user(odkd, USER_A, *args)
        assert odkd.proc.poll() is None, args
        assert r.returncode != 0 and status in r.stderr, (args, r.stderr)
    assert odkd.ctl("call", dev, WHOAMI).stdout.split() == ["0", "1"]


MALFORMED = [  # OdkUserClientAccess value, the key path named, what is said
    ('{"group": ["odkacc-g"]}', "OdkUserClientAccess.group", "unknown key"),
    ('"owner"', "OdkUserClientAccess", 'must be "everyone" or {"users"'),
    ('{"users": "odkacc-a"}', "OdkUserClientAccess.users", "expected array"),
    ('{"users": [-1]}', "OdkUserClientAccess.users[0]", "expected a name or an id"),
    ('{"groups": ["odkacc-g", ""]}', "OdkUserClientAccess.groups[1]", "expected a name or an id"),
]


def test_a_malformed_access_key_is_refused_at_install(odkd):
    folder = Path(tempfile.mkdtemp(prefix="odk-access-bad-"))
    try:
        for i, (value, where, says) in enumerate(MALFORMED):
            shutil.copytree(TEST_DRIVERS / "access-probe", folder / str(i))
            manifest = folder / str(i) / "odk.json"
            text = manifest.read_text().replace('{"groups": ["odkacc-g"]}', value)
            manifest.write_text(text.replace(BUNDLE, "org.odk.test.access-bad"))
            r = odkd.ctl("install", folder / str(i), check=False)
            assert r.returncode != 0, value
            assert "ODK_E_MANIFEST" in r.stderr and where in r.stderr and says in r.stderr, \
                (value, r.stderr)
        assert "org.odk.test.access-bad" not in odkd.ctl("list").stdout
    finally:
        shutil.rmtree(folder, ignore_errors=True)
