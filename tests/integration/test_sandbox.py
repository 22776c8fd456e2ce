# SPDX-License-Identifier: MIT
"""The driver host's sandbox (docs/trust.md, "The sandbox"; src/host/sandbox.c).

The sandbox-probe driver (tests/drivers/sandbox-probe) tries, on request,
what a driver must not do and answers with the errno it got.  Refusals that
are errors leave the driver running; the calls seccomp kills on end the
host, and the crash report names the system call.  The host's own view
(/proc/PID/status) shows the uid, capabilities, no-new-privs and seccomp
mode; --no-sandbox turns all of it off."""
import errno
import json
import os
import re
import shutil
import signal
import socket

import pytest

from conftest import DRIVERS, TEST_DRIVERS, pid_alive, sign_bundle, wait_until
from driver_selectors import ROOT, read_enums
from libodk import Connection, OdkError

PROBE = read_enums(ROOT / "tests" / "drivers" / "sandbox-probe" / "sandbox_probe_selectors.h",
                   ("probe_selector", "probe_attempt"), "PROBE_")
BUNDLE = "org.odk.sandbox-probe"
DEVICE = {"model": "sandbox-probe"}
# HOST_UID_FIRST and HOST_UID_COUNT (src/daemon/bookkeeping/host.h).
UID_FIRST, UID_COUNT = 0x70000000, 65536
AS_ROOT = os.geteuid() == 0


def status(pid):
    """/proc/PID/status as a dict of its fields."""
    with open(f"/proc/{pid}/status") as f:
        return dict(l.rstrip("\n").split(":\t", 1) for l in f if ":\t" in l)


def probe(d, dev, attempt, arg=0, path=b""):
    with Connection(d.state, dev) as c:
        (e,), _ = c.call(PROBE.TRY, [attempt, arg], struct=path, n_out=1)
    return e


def instance_of(d, dev):
    l = [i for i in d.instances() if i["provider"] == dev]
    return l[0] if l else None


def net_bundle(tmp_path):
    """A copy of the probe holding the network-client entitlement, as a
    bundle of its own (matching "sandbox-probe-net") in a --drivers folder."""
    folder = tmp_path / "net-drivers"
    dst = folder / "sandbox-probe-net"
    shutil.copytree(TEST_DRIVERS / "sandbox-probe", dst)
    manifest = json.loads((dst / "odk.json").read_text())
    manifest["bundle"] = BUNDLE + "-net"
    manifest["entitlements"] = {"sim": True, "network-client": True}
    pers = manifest["personalities"]["SandboxProbe"]
    pers["IOPropertyMatch"] = {"model": "sandbox-probe-net"}
    pers["IOUserServerName"] = manifest["bundle"]
    (dst / "odk.json").write_text(json.dumps(manifest))
    sign_bundle(dst)
    return folder


def test_denials_are_errors_and_the_driver_keeps_running(odkd, tmp_path):
    dev = odkd.plug(DEVICE)
    (inst,) = odkd.running(provider=dev)
    outside = tmp_path / "outside-its-folder"
    expected = [
        (PROBE.OPEN_SHADOW, 0, b"", errno.EACCES),
        # World-readable, so only Landlock refuses it.
        (PROBE.OPEN_PASSWD, 0, b"", errno.EACCES),
        (PROBE.WRITE_PATH, 0, str(outside).encode(), errno.EACCES),
        (PROBE.INET_SOCKET, 0, b"", errno.EPERM),
        (PROBE.NETLINK_SOCKET, 0, b"", errno.EPERM),
        (PROBE.SETUID_ROOT, 0, b"", errno.EPERM),
        (PROBE.MOUNT, 0, b"", errno.EPERM),
        (PROBE.EXEC_SHELL, 0, b"", errno.EPERM),
        # What it may do: write into its runtime folder.
        (PROBE.WRITE_RUNTIME, 0, b"", 0),
    ]
    got = [(a, probe(odkd, dev, a, arg, path)) for a, arg, path, _ in expected]
    assert got == [(a, e) for a, _, _, e in expected]
    assert not outside.exists()
    written = odkd.state / "run" / BUNDLE / "probe-was-here"
    assert written.exists()
    if AS_ROOT:
        st = status(inst["pid"])
        assert written.stat().st_uid == int(st["Uid"].split()[0])
    (after,) = odkd.running(provider=dev)
    assert (after["pid"], after["restarts"]) == (inst["pid"], 0)
    assert pid_alive(inst["pid"])


def test_the_host_runs_unprivileged_under_seccomp(odkd):
    dev = odkd.plug(DEVICE)
    (inst,) = odkd.running(provider=dev)
    st = status(inst["pid"])
    assert st["NoNewPrivs"] == "1"
    assert st["Seccomp"] == "2"  # filter mode
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(st[cap], 16) == 0, (cap, st[cap])
    # A network namespace of its own (no network-client entitlement).
    assert os.readlink(f"/proc/{inst['pid']}/ns/net") != os.readlink("/proc/self/ns/net")
    # Its seccomp program came from the ones odkd had generated once (a
    # memfd odkd keeps), with this host's pid written in.
    fds = [os.readlink(f"/proc/{odkd.proc.pid}/fd/{f}") for f in os.listdir(f"/proc/{odkd.proc.pid}/fd")]
    assert any("odk-seccomp-programs" in f for f in fds), fds
    assert "seccomp programs are unusable" not in odkd.log_text()
    if not AS_ROOT:
        return
    uids = {int(u) for u in st["Uid"].split()}
    gids = {int(g) for g in st["Gid"].split()}
    (uid,) = uids
    assert UID_FIRST <= uid < UID_FIRST + UID_COUNT
    assert gids == {uid}
    assert st["Groups"].split() == []
    # Stable per bundle within a run: a restarted host gets the same uid.
    odkd.ctl("restart", BUNDLE)
    new = wait_until(lambda: (lambda i: i if i and i["state"] == "running" and
                              i["pid"] != inst["pid"] else None)(instance_of(odkd, dev)),
                     what="the restarted probe")
    assert int(status(new["pid"])["Uid"].split()[0]) == uid
    # Another bundle, another uid.
    echo = odkd.plug({"model": "echo", "serial": "S-1"})
    (e,) = odkd.running(provider=echo)
    other = int(status(e["pid"])["Uid"].split()[0])
    assert other != uid and UID_FIRST <= other < UID_FIRST + UID_COUNT


@pytest.mark.parametrize("attempt,name", [("PTRACE", "ptrace"), ("INIT_MODULE", "init_module")])
def test_seccomp_kills_and_the_crash_report_names_the_call(odkd, attempt, name):
    dev = odkd.plug(DEVICE)
    (inst,) = odkd.running(provider=dev)
    with Connection(odkd.state, dev) as c:
        with pytest.raises(OdkError) as e:
            c.call(PROBE.TRY, [getattr(PROBE, attempt), odkd.proc.pid], n_out=1)
        assert e.value.name == "ODK_E_GONE"
    # Restarted like any crashed driver.
    wait_until(lambda: (lambda i: i if i and i["state"] == "running" and
                        i["pid"] != inst["pid"] else None)(instance_of(odkd, dev)),
               what="the probe to be restarted")
    assert not pid_alive(inst["pid"])
    log = odkd.log_text()
    m = re.search(re.escape(BUNDLE) + r"#\d+ \(pid %d\) crashed: ([^;\n]*)" % inst["pid"], log)
    assert m, log[-3000:]
    assert re.fullmatch(r"killed by signal %d \(\w+\)" % signal.SIGSYS, m[1].strip()), m[1]
    (report,) = json.loads(odkd.ctl("--json", "crashes").stdout)
    text = open(report, errors="replace").read()
    nr = re.search(r"system call (\w+) \((\d+)\) is not allowed", text)
    assert nr and nr[1] == name, text
    # The backtrace reaches the driver's own code, symbolised.
    assert "sandbox_probe.c" in text.split("backtrace:", 1)[1].split("last log lines:")[0], text


def test_network_client_entitlement_reaches_the_loopback(make_odkd, tmp_path):
    d = make_odkd(drivers=(DRIVERS, TEST_DRIVERS, net_bundle(tmp_path)))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(4)
        port = srv.getsockname()[1]
        net = d.plug({"model": "sandbox-probe-net"})
        (inst,) = d.running(provider=net)
        assert inst["bundle"] == BUNDLE + "-net"
        assert probe(d, net, PROBE.CONNECT_LOOPBACK, port) == 0
        srv.settimeout(60)
        conn, _ = srv.accept()  # the driver's connection really arrived
        conn.close()
        # Still no netlink, and still no file outside its folders.
        assert probe(d, net, PROBE.NETLINK_SOCKET) == errno.EPERM
        assert probe(d, net, PROBE.OPEN_PASSWD) == errno.EACCES
        assert os.readlink(f"/proc/{inst['pid']}/ns/net") == os.readlink("/proc/self/ns/net")
        # The same driver without the entitlement cannot.
        plain = d.plug(DEVICE)
        d.running(provider=plain)
        assert probe(d, plain, PROBE.CONNECT_LOOPBACK, port) == errno.EPERM


def landlock_abi():
    """The kernel's Landlock ABI version (landlock_create_ruleset with
    LANDLOCK_CREATE_RULESET_VERSION), or -1."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.syscall(444, None, ctypes.c_size_t(0), ctypes.c_uint32(1))


def test_hosts_reach_only_their_own_abstract_sockets(make_odkd, tmp_path):
    """Sandboxed hosts share odkd's one empty network namespace (where
    abstract Unix sockets live) when Landlock can scope those sockets to
    each host (ABI 6): a host reaches its own, not another host's, and a
    network-client host, in odkd's namespace, not one of the machine's."""
    d = make_odkd(drivers=(DRIVERS, TEST_DRIVERS, net_bundle(tmp_path)))
    a = d.plug(dict(DEVICE, serial="A"))
    b = d.plug(dict(DEVICE, serial="B"))
    (ia,) = d.running(provider=a)
    (ib,) = d.running(provider=b)
    assert ia["pid"] != ib["pid"]
    name = f"odk-probe-{os.getpid()}".encode()
    assert probe(d, a, PROBE.ABSTRACT_LISTEN, path=name) == 0
    assert probe(d, a, PROBE.ABSTRACT_CONNECT, path=name) == 0  # its own
    # Another host of the same bundle (same uid): refused by Landlock in
    # the shared namespace, or not there at all in a namespace of its own.
    assert probe(d, b, PROBE.ABSTRACT_CONNECT, path=name) in (errno.EPERM, errno.ECONNREFUSED)
    netns = {os.readlink(f"/proc/{i['pid']}/ns/net") for i in (ia, ib)}
    assert os.readlink("/proc/self/ns/net") not in netns
    if landlock_abi() < 6:
        return
    assert len(netns) == 1  # the shared one
    # A listener of the machine's (this test's, in odkd's namespace).
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as srv:
        outside = name + b"-outside"
        srv.bind(b"\0" + outside)
        srv.listen(4)
        net = d.plug({"model": "sandbox-probe-net"})
        (inst,) = d.running(provider=net)
        assert os.readlink(f"/proc/{inst['pid']}/ns/net") == os.readlink("/proc/self/ns/net")
        assert probe(d, net, PROBE.ABSTRACT_CONNECT, path=outside) == errno.EPERM
        assert probe(d, b, PROBE.ABSTRACT_CONNECT, path=outside) == errno.ECONNREFUSED


def test_no_sandbox_turns_it_off_and_says_so(make_odkd, tmp_path):
    d = make_odkd(extra_args=["--no-sandbox"])
    assert "SANDBOX OFF" in d.log_text()
    dev = d.plug(DEVICE)
    (inst,) = d.running(provider=dev)
    st = status(inst["pid"])
    assert (st["Seccomp"], st["NoNewPrivs"]) == ("0", "0")
    assert int(st["Uid"].split()[0]) == os.geteuid()
    assert os.readlink(f"/proc/{inst['pid']}/ns/net") == os.readlink("/proc/self/ns/net")
    assert probe(d, dev, PROBE.OPEN_PASSWD) == 0
    assert probe(d, dev, PROBE.INET_SOCKET) == 0
    # Said for the host too, in its bundle's log and odkd's.
    assert "SANDBOX OFF" in d.ctl("log", BUNDLE).stdout
    assert f"{BUNDLE}: SANDBOX OFF" in d.log_text()
