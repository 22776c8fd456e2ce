# SPDX-License-Identifier: MIT
"""Primed hosts (src/daemon/bookkeeping/host.c, docs/architecture.md, "primed hosts"): after a
bundle's launch, odkd primes a spare for it (its sandbox applied, its shared
object loaded), and the bundle's next launch starts in that host."""
import os
import shutil
import signal

import conftest
from conftest import TEST_DRIVERS, pid_alive, sign_bundle, wait_until
from driver_selectors import ECHO
from test_spare_host import SPARES, cmdline, host_children, primed_for, spares, the_zygote


def primed_hosts(odkd):
    """{pid: bundle id} of odkd's hosts primed for a bundle."""
    return {p: primed_for(cmdline(p)) for p in host_children(odkd.proc.pid, primed=True)}


def primed_for_bundle(odkd, bundle):
    """The pid of the host primed for bundle, once there is one."""
    def one():
        pids = [p for p, b in primed_hosts(odkd).items() if b == bundle]
        return pids[0] if len(pids) == 1 else None
    return wait_until(one, what=f"a host primed for {bundle}")


def comm(pid):
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


def test_the_second_plug_starts_in_the_host_primed_for_its_bundle(odkd):
    dev = odkd.plug({"model": "echo"})
    first = odkd.running(provider=dev)[0]["pid"]
    primed = primed_for_bundle(odkd, "org.odk.echo")
    assert primed != first
    assert comm(primed) == "odk-primed"
    odkd.ctl("sim", "unplug", dev)
    dev = odkd.plug({"model": "echo"})
    inst = odkd.running(provider=dev)[0]
    assert inst["pid"] == primed, "the second plug did not start in the primed host"
    # The host is a driver host again, and serves calls.
    assert comm(primed) == "odk-driver-host" and primed_for(cmdline(primed)) is None
    svc = wait_until(lambda: odkd.service_node("EchoDriver"), what="the echo service")
    assert odkd.ctl("call", svc, ECHO.ADD, 2, 40).stdout.split() == ["42"]
    # And the bundle is primed again for its next launch.
    assert primed_for_bundle(odkd, "org.odk.echo") != primed


def test_restart_after_kill_uses_the_primed_host(odkd):
    dev = odkd.plug({"model": "echo"})
    first = odkd.running(provider=dev)[0]["pid"]
    primed = primed_for_bundle(odkd, "org.odk.echo")
    os.kill(first, signal.SIGKILL)
    again = wait_until(lambda: (lambda l: l[0] if l and l[0]["pid"] != first else None)(
        odkd.running(provider=dev)), what="the restarted instance")
    assert again["pid"] == primed


def test_a_changed_shared_object_is_not_started_in_the_host_primed_with_the_old(make_odkd,
                                                                                  tmp_path):
    drivers = tmp_path / "drivers"
    shutil.copytree(TEST_DRIVERS / "echo", drivers / "echo", symlinks=True)
    odkd = make_odkd(drivers=(drivers,))
    dev = odkd.plug({"model": "echo"})
    odkd.running(provider=dev)
    primed = primed_for_bundle(odkd, "org.odk.echo")
    odkd.ctl("sim", "unplug", dev)
    # The same bytes written again: the signature still holds, but it is
    # another file version than the one the primed host loaded.
    so = drivers / "echo" / "echo.so"
    data = so.read_bytes()
    so.unlink()
    so.write_bytes(data)
    dev = odkd.plug({"model": "echo"})
    inst = odkd.running(provider=dev)[0]
    assert inst["pid"] != primed, "started in a host primed with the old shared object"
    wait_until(lambda: primed not in host_children(odkd.proc.pid, primed=True),
               what="the out-of-date primed host to end")
    assert f"the host primed for it (pid {primed}) has another shared object" in odkd.log_text()


def test_a_reinstalled_bundle_ends_the_host_primed_with_the_old_build(odkd, tmp_path):
    dev = odkd.plug({"model": "echo"})
    odkd.running(provider=dev)
    primed = primed_for_bundle(odkd, "org.odk.echo")
    odkd.ctl("sim", "unplug", dev)
    # Another build of echo (other bytes, signed again) replaces the one
    # the primed host loaded: with no launch to notice, the install ends it.
    build2 = tmp_path / "echo-rebuilt"
    shutil.copytree(TEST_DRIVERS / "echo", build2, symlinks=True)
    with open(build2 / "echo.so", "ab") as f:
        f.write(b"\0rebuilt")
    sign_bundle(build2)
    assert odkd.ctl("install", build2).stdout.strip() == "installed"
    wait_until(lambda: not pid_alive(primed), what="the host primed with the old build to end")
    dev = odkd.plug({"model": "echo"})
    assert odkd.running(provider=dev)[0]["pid"] != primed


def test_a_bundle_whose_constructor_crashes_at_prime_is_started_plainly(make_odkd, monkeypatch):
    monkeypatch.setitem(conftest.CHILD_ENV, "ODK_TEST_FAULTY_CRASH_PRIMED", "1")
    odkd = make_odkd()
    dev = odkd.plug({"model": "faulty"})
    odkd.running(provider=dev)
    wait_until(lambda: "org.odk.faulty: its prime failed" in odkd.log_text(),
               what="the failed prime in the log")
    log = odkd.log_text()
    assert "crashing in the constructor" in log
    assert "was killed by signal 11 while priming" in log
    odkd.ctl("sim", "unplug", dev)
    dev = odkd.plug({"model": "faulty"})
    assert odkd.running(provider=dev)[0]["state"] == "running"
    # Not primed again this run: one failure in the log, no primed host.
    assert odkd.log_text().count("org.odk.faulty: its prime failed") == 1
    assert "org.odk.faulty" not in primed_hosts(odkd).values()


def test_odk_no_prime_primes_nothing(make_odkd, monkeypatch):
    monkeypatch.setitem(conftest.CHILD_ENV, "ODK_NO_PRIME", "1")
    assert_nothing_primed(make_odkd())


def assert_nothing_primed(odkd):
    """Echo plugged, unplugged and plugged again starts in a plain spare,
    and no host is primed."""
    dev = odkd.plug({"model": "echo"})
    odkd.running(provider=dev)
    # A bundle is primed once its start answered (the tests above wait for
    # it the same way): a plug and an unplug later, still none.
    odkd.ctl("sim", "unplug", dev)
    before = spares(odkd)
    dev = odkd.plug({"model": "echo"})
    assert odkd.running(provider=dev)[0]["pid"] in before, "not started in a plain spare"
    spares(odkd)
    assert primed_hosts(odkd) == {}
    assert [x for x in odkd.json("hosts") if x["role"] == "primed"] == []



def test_odkctl_hosts_names_the_zygote_spares_primed_hosts_and_instances(odkd):
    dev = odkd.plug({"model": "echo"})
    inst = odkd.running(provider=dev)[0]
    primed = primed_for_bundle(odkd, "org.odk.echo")

    def shown():
        rows = odkd.json("hosts")
        ready = [x for x in rows if x["role"] == "primed" and x.get("state") == "ready"]
        return rows if ready and len([x for x in rows if x["role"] == "spare"]) == SPARES \
            else None
    rows = wait_until(shown, what="a ready primed host and the spares in odkctl hosts")
    by_role = {}
    for x in rows:
        by_role.setdefault(x["role"], []).append(x)
    assert [x["pid"] for x in by_role["zygote"]] == [the_zygote(odkd)]
    assert sorted(x["pid"] for x in by_role["spare"]) == spares(odkd)
    assert by_role["primed"] == [{"pid": primed, "role": "primed", "bundle": "org.odk.echo",
                                  "state": "ready"}]
    assert [(x["pid"], x["bundle"], x["state"], x["instance"]) for x in by_role["instance"]] == \
        [(inst["pid"], "org.odk.echo", "running", inst["instance"])]
    lines = odkd.ctl("hosts").stdout.splitlines()
    assert lines[0].split() == ["PID", "ROLE", "BUNDLE", "STATE"]
    assert [str(primed), "primed", "org.odk.echo", "ready"] in [l.split() for l in lines]


def test_the_two_bundles_launched_last_are_primed_and_the_oldest_gives_way(odkd):
    """At most HOST_PRIMES (2) primed hosts: a third bundle's launch ends the
    host primed for the bundle launched longest ago."""
    odkd.running(provider=odkd.plug({"model": "echo"}))
    echo = primed_for_bundle(odkd, "org.odk.echo")
    odkd.running(provider=odkd.plug({"model": "faulty"}))
    faulty = primed_for_bundle(odkd, "org.odk.faulty")
    assert set(primed_hosts(odkd).values()) == {"org.odk.echo", "org.odk.faulty"}
    odkd.running(provider=odkd.plug({"model": "sandbox-probe"}))
    probe = primed_for_bundle(odkd, "org.odk.sandbox-probe")
    wait_until(lambda: not pid_alive(echo), what="the host primed for echo to end")
    assert primed_hosts(odkd) == {faulty: "org.odk.faulty", probe: "org.odk.sandbox-probe"}
    # echo's next launch starts plainly, and primes echo again in place of
    # faulty's (now the oldest).
    before = spares(odkd)
    dev = odkd.plug({"model": "echo"})
    assert odkd.running(provider=dev)[0]["pid"] in before
    primed_for_bundle(odkd, "org.odk.echo")
    wait_until(lambda: not pid_alive(faulty), what="the host primed for faulty to end")
    assert set(primed_hosts(odkd).values()) == {"org.odk.echo", "org.odk.sandbox-probe"}


def test_nothing_is_primed_while_a_bundle_is_debugged(make_odkd):
    """odkd --debug B stops B's hosts before any driver code runs; a primed
    host runs constructors ahead, so no bundle is primed under --debug."""
    assert_nothing_primed(make_odkd(extra_args=["--debug", "org.odk.faulty"]))
