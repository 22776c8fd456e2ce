# SPDX-License-Identifier: MIT
"""End to end: plug a device, a driver process starts, an app calls it."""
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess

import pytest

from conftest import (BIN, CHILD_ENV, DRIVERS, HANG_GUARD, ROOT, TEST_DRIVERS, sign_bundle,
                      check_odkd_exit, pid_alive, wait_until)
from driver_selectors import ECHO

ECHO_DEVICE = {"model": "echo", "serial": "T-1"}
REFUSED = 1  # odkd's exit status when it cannot listen (src/daemon/main.c)


def test_plug_starts_driver_in_its_own_process(odkd):
    dev = odkd.plug(ECHO_DEVICE)
    (inst,) = odkd.running(provider=dev)
    assert inst["bundle"] == "org.odk.echo"
    assert inst["class"] == "EchoDriver"
    assert inst["pid"] > 0 and inst["pid"] != odkd.proc.pid
    assert pid_alive(inst["pid"])
    assert inst["restarts"] == 0
    assert inst["version"] == "1.0.0" and len(inst["build"]) >= 8


def test_calls_return_the_right_outputs(odkd):
    dev = odkd.plug(ECHO_DEVICE)
    odkd.running(provider=dev)
    svc = wait_until(lambda: odkd.service_node("EchoDriver"))
    assert odkd.ctl("call", svc, ECHO.ADD, 2, 40).stdout.split() == ["42"]
    out = odkd.ctl("call", svc, ECHO.ECHO, "--struct", "68656c6c6f").stdout.split()
    assert out == ["68656c6c6f"]
    # The device node works too: its driver answers.
    assert odkd.ctl("call", dev, ECHO.ADD, 7, 8).stdout.split() == ["15"]
    served = int(odkd.ctl("call", svc, ECHO.COUNT).stdout.split()[0])
    assert served == 3


def test_wrong_arguments_get_an_error_and_the_driver_keeps_serving(odkd):
    dev = odkd.plug(ECHO_DEVICE)
    (inst,) = odkd.running(provider=dev)
    r = odkd.ctl("call", dev, ECHO.ADD, 2, "--struct", "00", check=False)
    assert r.returncode != 0 and "ODK_E_BAD_ARGUMENTS" in r.stderr
    r = odkd.ctl("call", dev, ECHO.ADD, 2, check=False)  # one scalar instead of two
    assert r.returncode != 0 and "ODK_E_BAD_ARGUMENTS" in r.stderr
    r = odkd.ctl("call", dev, 99, check=False)
    assert r.returncode != 0 and "ODK_E_BAD_SELECTOR" in r.stderr
    r = odkd.ctl("call", dev, ECHO.ADD, 1, 1, "--scalars-out", "0", check=False)
    assert r.returncode != 0 and "ODK_E_BAD_ARGUMENTS" in r.stderr
    assert odkd.ctl("call", dev, ECHO.ADD, 1, 1).stdout.split() == ["2"]
    (after,) = odkd.running(provider=dev)
    assert after["pid"] == inst["pid"] and after["restarts"] == 0
    assert "expected 2 scalar inputs, got 1" in odkd.ctl("log", "org.odk.echo").stdout


def test_large_structures_travel_unchanged(odkd):
    dev = odkd.plug(ECHO_DEVICE)
    odkd.running(provider=dev)
    blob = os.urandom(60000)  # above the 48 KiB inline size: goes through a memfd
    out = odkd.ctl("call", dev, ECHO.ECHO, "--struct", blob.hex()).stdout.split()
    assert out == [blob.hex()]


def test_several_apps_at_once(odkd):
    dev = odkd.plug(ECHO_DEVICE)
    odkd.running(provider=dev)
    procs = [subprocess.Popen([str(BIN / "odkctl"), "--state-dir", str(odkd.state), "call",
                               str(dev), str(ECHO.ADD), str(i), "1000"],
                              stdout=subprocess.PIPE, text=True, env=CHILD_ENV)
             for i in range(8)]
    outs = [p.communicate(timeout=HANG_GUARD)[0].split() for p in procs]
    assert sorted(int(o[0]) for o in outs) == [1000 + i for i in range(8)]


def test_unplug_stops_the_driver(odkd):
    dev = odkd.plug(ECHO_DEVICE)
    (inst,) = odkd.running(provider=dev)
    odkd.ctl("sim", "unplug", dev)
    # The unplug returns once the driver stopped; its host may still be
    # exiting (odkd lists it "stopping" until it has reaped it).
    assert all(n["id"] != dev for n in odkd.json("tree"))
    wait_until(lambda: not pid_alive(inst["pid"]), what="the driver to exit")
    wait_until(lambda: odkd.instances() == [], what="the instance to go")
    assert odkd.service_node("EchoDriver") is None


def test_killed_driver_restarts(odkd):
    dev = odkd.plug(ECHO_DEVICE)
    (inst,) = odkd.running(provider=dev)
    os.kill(inst["pid"], signal.SIGKILL)

    def restarted():
        l = [i for i in odkd.instances() if i["state"] == "running" and i["pid"] != inst["pid"]]
        return l[0] if l else None
    new = wait_until(restarted, what="a restarted driver")
    assert new["restarts"] == 1 and pid_alive(new["pid"])
    assert "crashed: killed by signal 9" in odkd.log_text()
    svc = wait_until(lambda: odkd.service_node("EchoDriver"))
    assert odkd.ctl("call", svc, ECHO.ADD, 3, 4).stdout.split() == ["7"]
    assert len(odkd.json("crashes")) == 1


def test_garbage_on_the_socket_does_not_hurt_odkd(odkd):
    path = str(odkd.state / "odkd.sock")
    hdr = struct.Struct("<IHHIiQ")
    bad = [
        b"",
        os.urandom(3),
        os.urandom(4096),
        hdr.pack(0x314B444F, 1, 0, 1, 0, 100) + b"short",       # body shorter than claimed
        hdr.pack(0x314B444F, 1, 0, 1, 0, 0),                     # empty request
        hdr.pack(0xDEADBEEF, 1, 0, 1, 0, 4) + b"abcd",           # bad magic
        hdr.pack(0x314B444F, 1, 1, 1, 0, 1 << 40),               # body in an fd that is not there
        hdr.pack(0x314B444F, 1, 0, 1, 0, 9) + b"\x06\xff\xff\xff\xff\x01\x00\x00\x00",  # lying dict
        hdr.pack(0x314B444F, 9, 0, 1, 0, 0),                     # unknown type
    ]
    for payload in bad:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.connect(path)
        for _ in range(3):
            try:
                s.send(payload)
            except (BrokenPipeError, ConnectionResetError):
                break  # odkd may drop a connection that sent garbage; it must only survive
        s.close()
    # A stream of garbage on one connection, then the same connection still answers.
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(path)
    s.settimeout(5)
    for _ in range(50):
        s.send(os.urandom(64))
        reply = s.recv(65536)
        magic, typ, _flags, _seq, status, _blen = hdr.unpack_from(reply)
        assert magic == 0x314B444F and typ == 2 and status < 0
    s.close()
    assert odkd.proc.poll() is None
    assert odkd.instances() == []
    dev = odkd.plug(ECHO_DEVICE)
    odkd.running(provider=dev)


def write_bundle(folder, manifest, so=b"\x7fELF not really"):
    folder.mkdir(parents=True)
    (folder / "odk.json").write_text(manifest if isinstance(manifest, str) else json.dumps(manifest))
    (folder / "x.so").write_bytes(so)
    return folder


def test_malformed_manifest_names_the_file_and_key(make_odkd, tmp_path):
    drivers = tmp_path / "drivers"
    bad = write_bundle(drivers / "bad", {
        "bundle": "org.example.bad", "version": "1", "executable": "x.so",
        "personalities": {"P": {"IOProviderClass": "OdkSimDevice", "IOUserClass": "X",
                                "IOProbeScore": "high"}}})
    write_bundle(drivers / "syntax", '{"bundle": "org.example.syntax",,}')
    d = make_odkd(drivers=(drivers, DRIVERS, TEST_DRIVERS))
    # odkd listens before it loads its --drivers folders: wait for both lines.
    log = wait_until(lambda: (lambda t: t if str(bad / "odk.json") in t and
                              str(drivers / "syntax" / "odk.json") in t else None)(d.log_text()),
                     what="both refusals in odkd's log")
    assert str(bad / "odk.json") in log and "IOProbeScore" in log
    assert str(drivers / "syntax" / "odk.json") in log and "line 1" in log
    # The good bundles still load and work.
    dev = d.plug(ECHO_DEVICE)
    d.running(provider=dev)
    r = d.ctl("install", bad, check=False)
    assert r.returncode != 0 and "IOProbeScore" in r.stderr and "odk.json" in r.stderr


def test_match_explain(odkd):
    dev = odkd.plug(ECHO_DEVICE)
    other = odkd.plug({"model": "nothing-matches-me"})
    odkd.running(provider=dev)
    rows = odkd.json("match", "--explain", dev)
    echo = [r for r in rows if r["bundle"] == "org.odk.echo"][0]
    assert echo["matched"] and echo["winner"]
    rows = odkd.json("match", "--explain", other)
    echo = [r for r in rows if r["bundle"] == "org.odk.echo"][0]
    assert not echo["matched"] and "IOPropertyMatch" in echo["reason"]
    text = odkd.ctl("match", "--explain", other).stdout
    assert "org.odk.echo" in text and "IOPropertyMatch" in text


def test_match_explain_says_who_holds_the_category_of_a_driver_that_does_not_run(odkd, tmp_path):
    """Story 17: a second bundle for the same device, installed while echo
    drives it, outranks echo but does not displace it: explain says the
    category is held, and by which instance."""
    dev = odkd.plug(ECHO_DEVICE)
    (echo,) = odkd.running(provider=dev)
    high = tmp_path / "echo-high"
    shutil.copytree(TEST_DRIVERS / "echo", high)
    m = json.loads((high / "odk.json").read_text())
    m["bundle"] = "org.example.echo-high"
    m["personalities"]["EchoDriver"]["IOProbeScore"] = 5000
    (high / "odk.json").write_text(json.dumps(m))
    sign_bundle(high)
    assert odkd.ctl("install", high).stdout.strip() == "installed"
    assert [i["bundle"] for i in odkd.running(provider=dev)] == ["org.odk.echo"]
    rows = {r["bundle"]: r for r in odkd.json("match", "--explain", dev)}
    held = f"org.odk.echo#{echo['instance']} (EchoDriver, running)"
    assert rows["org.example.echo-high"]["winner"]
    assert rows["org.example.echo-high"]["held_by"] == held
    assert rows["org.odk.echo"]["running_as"] == held
    assert rows["org.odk.echo"]["outranked_by"] == "org.example.echo-high/EchoDriver"
    text = odkd.ctl("match", "--explain", dev).stdout
    assert f"org.example.echo-high/EchoDriver (score 5000, category IODefaultMatchCategory): " \
           f"not running: the category is held by {held}" in text
    assert f"org.odk.echo/EchoDriver (score 1000, category IODefaultMatchCategory): " \
           f"running as {held}" in text


def test_tree_shows_nodes_and_properties(odkd):
    dev = odkd.plug(ECHO_DEVICE)
    odkd.running(provider=dev)
    nodes = {n["id"]: n for n in odkd.json("tree")}
    assert nodes[dev]["class"] == "OdkSimDevice"
    assert nodes[dev]["properties"]["model"] == "echo"
    assert nodes[dev]["state"] == "started"
    svc = [n for n in nodes.values() if n.get("parent") == dev][0]
    assert svc["class"] == "EchoDriver" and svc["properties"]["EchoSerial"] == "T-1"
    assert "IOService" in svc["ancestry"]
    assert "IOUserResources" in odkd.ctl("tree").stdout


def test_install_newer_build_replaces_running_instances(odkd, tmp_path):
    src = tmp_path / "echo-copy"
    shutil.copytree(TEST_DRIVERS / "echo", src)
    dev = odkd.plug(ECHO_DEVICE)
    (old,) = odkd.running(provider=dev)
    assert odkd.ctl("install", src).stdout.strip() == "unchanged"  # same build as the running one
    with open(src / "echo.so", "ab") as f:
        f.write(b"\0rebuilt")  # a new build: different bytes, so a different build id
    sign_bundle(src)
    assert odkd.ctl("install", src).stdout.strip() == "installed"

    def replaced():
        l = [i for i in odkd.instances() if i["state"] == "running"]
        return l if l and all(i["build"] != old["build"] for i in l) else None
    (new,) = wait_until(replaced, what="the new build to run")
    assert new["pid"] != old["pid"] and not pid_alive(old["pid"])
    assert odkd.ctl("call", dev, ECHO.ADD, 20, 22).stdout.split() == ["42"]
    assert odkd.ctl("install", src).stdout.strip() == "unchanged"


def test_install_of_the_same_build_with_an_edited_manifest_is_a_change(odkd, tmp_path):
    """Only odk.json edited (a personality's match), the shared object not
    rebuilt: the install takes the new manifest, it does not say
    "unchanged" and keep the old one."""
    src = tmp_path / "echo-copy"
    shutil.copytree(TEST_DRIVERS / "echo", src)
    m = json.loads((src / "odk.json").read_text())
    m["personalities"]["EchoDriver"]["IOPropertyMatch"] = {"model": "echo-edited"}
    (src / "odk.json").write_text(json.dumps(m))
    sign_bundle(src)
    assert odkd.ctl("install", src).stdout.strip() == "installed"
    dev = odkd.plug({"model": "echo-edited"})
    assert odkd.running(provider=dev)[0]["bundle"] == "org.odk.echo"
    assert odkd.ctl("install", src).stdout.strip() == "unchanged"


def test_driver_whose_class_is_missing_fails_clearly(make_odkd, tmp_path):
    drivers = tmp_path / "drivers"
    b = drivers / "noclass"
    shutil.copytree(TEST_DRIVERS / "echo", b)
    m = json.loads((b / "odk.json").read_text())
    m["bundle"] = "org.example.noclass"
    m["personalities"]["EchoDriver"]["IOUserClass"] = "NoSuchClass"
    m["personalities"]["EchoDriver"]["IOPropertyMatch"] = {"model": "noclass"}
    (b / "odk.json").write_text(json.dumps(m))
    sign_bundle(b)
    d = make_odkd(drivers=(drivers,))
    d.plug({"model": "noclass"})
    wait_until(lambda: [i for i in d.instances() if i["state"] == "failed"], what="failed state")
    assert "NoSuchClass" in d.ctl("log", "org.example.noclass").stdout


def test_odkctl_reports_unknown_nodes(odkd):
    r = odkd.ctl("call", 12345, 0, check=False)
    assert r.returncode != 0 and "ODK_E_NOT_FOUND" in r.stderr
    r = odkd.ctl("sim", "unplug", 0, check=False)
    assert r.returncode != 0 and "not a device on the sim bus" in r.stderr
    r = odkd.ctl("sim", "plug", "{not json", check=False)
    assert r.returncode != 0 and "JSON" in r.stderr


def test_an_upgrade_that_cannot_start_rolls_back(odkd, tmp_path):
    # The device also names a fault the faulty driver does not know; echo
    # ignores it.
    dev = odkd.plug(dict(ECHO_DEVICE, fault="no-such-fault"))
    (old,) = odkd.running(provider=dev)
    broken = tmp_path / "echo-broken"
    shutil.copytree(TEST_DRIVERS / "echo", broken)
    shutil.copy(TEST_DRIVERS / "faulty" / "faulty.so", broken / "echo.so")
    m = json.loads((broken / "odk.json").read_text())
    m["version"] = "2.0.0"
    # Passes the install check (the class is there), then its start fails
    # on the unknown fault.
    m["personalities"]["EchoDriver"]["IOUserClass"] = "FaultyDriver"
    (broken / "odk.json").write_text(json.dumps(m))
    sign_bundle(broken)
    assert odkd.ctl("install", broken).stdout.strip() == "installed"
    wait_until(lambda: "rolling back to 1.0.0" in odkd.log_text(), what="the rollback")

    def back():
        l = [i for i in odkd.instances() if i["state"] == "running"]
        return l if l and l[0]["build"] == old["build"] and l[0]["version"] == "1.0.0" else None
    (new,) = wait_until(back, what="the previous build running again")
    assert new["pid"] != old["pid"]
    assert odkd.ctl("call", dev, ECHO.ADD, 40, 2).stdout.split() == ["42"]


def test_an_upgrade_whose_host_dies_while_starting_rolls_back(odkd, tmp_path):
    """The host of the new build is killed before its start completes (its
    start hangs past a 100 ms deadline): the reap reports a failed start,
    the rollback terminates that very instance, and the reap must not free
    it twice.  (A 1 ms deadline on echo's own start raced the start's
    reply on a fast machine: a start answered first is a crash after
    "started", restarted instead of rolled back.)"""
    # echo ignores the fault; the new build (faulty.so) hangs in its start.
    dev = odkd.plug(dict(ECHO_DEVICE, fault="hang-in-start"))
    (old,) = odkd.running(provider=dev)
    slow = tmp_path / "echo-slow"
    shutil.copytree(TEST_DRIVERS / "echo", slow)
    shutil.copy(TEST_DRIVERS / "faulty" / "faulty.so", slow / "echo.so")
    m = json.loads((slow / "odk.json").read_text())
    m["version"] = "2.0.0"
    m["personalities"]["EchoDriver"]["IOUserClass"] = "FaultyDriver"
    m["personalities"]["EchoDriver"]["OdkDeadlines"] = {"start": 100}
    (slow / "odk.json").write_text(json.dumps(m))
    sign_bundle(slow)
    assert odkd.ctl("install", slow).stdout.strip() == "installed"
    wait_until(lambda: "rolling back to 1.0.0" in odkd.log_text(), what="the rollback")

    def back():
        l = [i for i in odkd.instances() if i["state"] == "running"]
        return l if l and l[0]["version"] == "1.0.0" else None
    wait_until(back, what="the previous build running again")
    assert "missed its start deadline" in odkd.log_text()
    assert odkd.ctl("call", dev, ECHO.ADD, 40, 2).stdout.split() == ["42"]
    assert len(odkd.instances()) == 1


def test_installed_builds_survive_an_odkd_restart(make_odkd, tmp_path):
    src = tmp_path / "echo-copy"
    shutil.copytree(TEST_DRIVERS / "echo", src)
    with open(src / "echo.so", "ab") as f:
        f.write(b"\0v2")
    sign_bundle(src)
    a = make_odkd("first")
    assert a.ctl("install", src).stdout.strip() == "installed"
    a.stop()  # checked like any odkd: exit status 0, no sanitizer report
    # The same state folder, a new odkd: the installed build wins over --drivers.
    a.start()  # stopped and checked by make_odkd
    dev = a.plug(ECHO_DEVICE)
    (inst,) = a.running(provider=dev)
    installed = [d for d in (a.state / "bundles").iterdir() if d.is_dir()]
    assert len(installed) == 1 and installed[0].name.endswith(inst["build"])


def test_a_second_odkd_on_the_same_socket_is_refused(odkd):
    """A live odkd's socket is never taken over, and a file that is not a
    socket is never deleted to make room."""
    r = subprocess.run([str(BIN / "odkd"), "--state-dir", str(odkd.state)],
                       capture_output=True, text=True, timeout=HANG_GUARD, env=CHILD_ENV)
    check_odkd_exit(r.returncode, r.stdout + r.stderr, expected=REFUSED, who="the second odkd")
    assert f"another odkd is listening on {odkd.state}/odkd.sock" in r.stderr
    assert odkd.ctl("list").returncode == 0  # the first one still answers

    precious = odkd.state.parent / "not-a-socket"
    precious.write_text("keep me")
    r = subprocess.run([str(BIN / "odkd"), "--state-dir", str(odkd.state.parent / "s2"),
                        "--socket", str(precious)],
                       capture_output=True, text=True, timeout=HANG_GUARD, env=CHILD_ENV)
    check_odkd_exit(r.returncode, r.stdout + r.stderr, expected=REFUSED, who="the refused odkd")
    assert "exists and is not a socket" in r.stderr
    assert precious.read_text() == "keep me"


def test_a_crash_leaves_its_mark_in_the_drivers_own_log(odkd):
    """odkctl log BUNDLE tells the driver's author what happened to it:
    the crash with its reason and report, the backoff and the restart."""
    dev = odkd.plug({"model": "hello"})
    (first,) = odkd.running(provider=dev)
    os.kill(first["pid"], signal.SIGKILL)
    wait_until(lambda: any(i["state"] == "running" and i["pid"] != first["pid"]
                           for i in odkd.instances()), what="the restart")
    log = odkd.ctl("log", "org.odk.hello").stdout
    inst = first["instance"]
    assert (f"error odkd: org.odk.hello#{inst} (pid {first['pid']}) crashed: killed by signal 9"
            in log), log
    assert "report " + str(odkd.state / "crashes") in log, log
    assert f"info odkd: org.odk.hello#{inst} backs off 100 ms before restart 1" in log, log
    assert f"info odkd: restarting org.odk.hello#{inst} (restart 1)" in log, log


def test_failed_and_backing_off_instances_say_why(make_odkd, odkd, tmp_path):
    """odkctl list has a REASON column (and --json list a "reason") for an
    instance that is failed or backing off: the crash with its signal and
    the driver function it was in, the count of crashes, a failed start
    with the host's own sentence."""
    # Crashes in every start: backs off 100, 200, 400, 800 ms, then the
    # fifth crash within 60 s marks it failed.
    dev = odkd.plug({"model": "faulty", "fault": "crash-in-start"})
    backing_off = set()

    def failed():
        (i,) = [i for i in odkd.instances() if i["provider"] == dev] or [None]
        if i and i["state"] == "backoff":
            backing_off.add(i["reason"])
        return i if i and i["state"] == "failed" else None
    inst = wait_until(failed, what="the crash limit")
    assert inst["reason"] == ("crashed: SIGSEGV in faulty_null_deref (5 crashes in 60 s; "
                              "failed until `odkctl restart`)"), inst
    assert "crashed: SIGSEGV in faulty_null_deref (5 crashes" in odkd.ctl("list").stdout
    # The backoffs last 1.5 s in all; the polls above saw some of them.
    assert backing_off, "no backoff seen"
    for r in backing_off:
        assert re.fullmatch(r"crashed: SIGSEGV in faulty_null_deref \([1-4] crash(es)? in 60 s\)",
                            r), r

    drivers = tmp_path / "drivers"
    b = drivers / "noclass"
    shutil.copytree(TEST_DRIVERS / "echo", b)
    m = json.loads((b / "odk.json").read_text())
    m["bundle"] = "org.example.noclass"
    m["personalities"]["EchoDriver"]["IOUserClass"] = "NoSuchClass"
    m["personalities"]["EchoDriver"]["IOPropertyMatch"] = {"model": "noclass"}
    (b / "odk.json").write_text(json.dumps(m))
    sign_bundle(b)
    d = make_odkd("noclass", drivers=(drivers,))
    d.plug({"model": "noclass"})
    failed = wait_until(lambda: [i for i in d.instances()
                                 if i["state"] == "failed" and "NoSuchClass" in i["reason"]],
                        what="a failed instance naming its class")
    assert failed[0]["reason"].startswith("start failed: "), failed
    listing = d.ctl("list").stdout
    assert "REASON" in listing.splitlines()[0] and "NoSuchClass" in listing


def build_so(tmp_path, name, source):
    """Compiles a driver shared object against the tree's headers."""
    c = tmp_path / (name + ".c")
    c.write_text(source)
    so = tmp_path / (name + ".so")
    subprocess.run(["cc", "-shared", "-fPIC", "-I", str(ROOT / "include"), "-o", str(so), str(c)],
                   check=True, timeout=HANG_GUARD)
    return so


CLASS_SOURCE = r"""
#include <stdio.h>
#include <unistd.h>
#include "odk/driver.h"
%s
static int start(odk_driver *drv) { return odk_driver_register_service(drv); }
static const odk_driver_class cls = {.name = "Checked", .start = start};
ODK_DRIVER_CLASS(cls);
"""


def checked_bundle(tmp_path, name, so, user_class="Checked"):
    b = tmp_path / name
    b.mkdir()
    shutil.copy(so, b / "drv.so")
    (b / "odk.json").write_text(json.dumps({
        "bundle": "org.example." + name, "version": "1.0.0", "executable": "drv.so",
        "entitlements": {"sim": True},
        "personalities": {"P": {"IOProviderClass": "OdkSimDevice", "IOUserClass": user_class,
                                "IOPropertyMatch": {"model": name}}}}))
    sign_bundle(b)
    return b


def test_install_refuses_a_bundle_whose_class_is_missing(odkd, tmp_path):
    so = build_so(tmp_path, "good", CLASS_SOURCE % "")
    b = checked_bundle(tmp_path, "noclass", so, user_class="NotDeclared")
    r = odkd.ctl("install", b, check=False)
    assert r.returncode != 0, r.stdout
    assert "IOUserClass NotDeclared not found in drv.so" in r.stderr, r.stderr
    assert "ODK_E_LOAD" in r.stderr
    bundles = odkd.state / "bundles"
    assert not bundles.exists() or not list(bundles.iterdir())
    dev = odkd.plug({"model": "noclass"})
    assert not [i for i in odkd.instances() if i["provider"] == dev]  # nothing was installed


def test_install_refuses_a_bundle_with_an_undefined_symbol(odkd, tmp_path):
    so = build_so(tmp_path, "unresolved", CLASS_SOURCE % """
extern int odk_example_not_defined_anywhere(void);
int use_it(void) { return odk_example_not_defined_anywhere(); }
""")
    b = checked_bundle(tmp_path, "unresolved", so)
    r = odkd.ctl("install", b, check=False)
    assert r.returncode != 0, r.stdout
    assert "cannot load drv.so: undefined symbol: odk_example_not_defined_anywhere" in r.stderr, \
        r.stderr
    dev = odkd.plug({"model": "unresolved"})
    assert not [i for i in odkd.instances() if i["provider"] == dev]


def test_install_runs_constructors_only_in_a_throwaway_host(make_odkd, tmp_path):
    """A good bundle installs; its constructor ran in a process that is
    neither odkd nor alive any more (the check's host), and again in the
    driver's own host when it starts.  The constructor notes its pid in a
    file outside its bundle, which the sandbox forbids (test_sandbox.py):
    this odkd runs without it."""
    odkd = make_odkd(extra_args=["--no-sandbox"])
    pids = tmp_path / "constructor-pids"
    so = build_so(tmp_path, "ctor", CLASS_SOURCE % (r"""
__attribute__((constructor)) static void note_pid(void)
{
    FILE *f = fopen("%s", "a");
    if (f) { fprintf(f, "%%d\n", (int)getpid()); fclose(f); }
}
""" % pids))
    b = checked_bundle(tmp_path, "ctor", so)
    assert odkd.ctl("install", b).stdout.strip() == "installed"
    (checker,) = [int(p) for p in pids.read_text().split()]
    assert checker != odkd.proc.pid
    wait_until(lambda: not pid_alive(checker), what="the check's host to be gone")
    dev = odkd.plug({"model": "ctor"})
    (inst,) = odkd.running(provider=dev)
    got = [int(p) for p in pids.read_text().split()]
    # A third run, once the start answered, is in the host odkd primes for
    # the bundle's next launch (docs/architecture.md, "primed hosts").
    assert got[:2] == [checker, inst["pid"]] and len(got) <= 3, got
