# SPDX-License-Identifier: MIT
"""The SDK: odk installed under a private prefix, and a driver and an app
built out of tree against it with nothing but pkg-config.

One meson build and install per module (a separate build: its prefix is a
temporary folder, which the build tree of the other tests cannot have)."""
import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import CHILD_ENV, HANG_GUARD, ROOT, stop_and_check_odkd, wait_until

# Every sample bundle in drivers/ is installed; faulty is a test driver.
SAMPLE_DRIVERS = sorted(d.name for d in (ROOT / "drivers").iterdir()
                        if (d / "odk.json").exists() and d.name != "faulty")

# An app as a user would write it: find the skeleton driver's service, call
# selector 0 with two scalars, print the sum (docs/sdk.md shows the same).
APP_C = r"""
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <odk/client.h>

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: app STATE-DIR CLASS A B\n");
        return 2;
    }
    odk_client *c;
    int st = odk_client_open(argv[1], &c);
    if (st < 0) {
        fprintf(stderr, "odk_client_open: %s\n", odk_strerror(st));
        return 1;
    }
    odk_value *match = odk_value_new_dict(), *nodes = NULL;
    odk_dict_set_string(match, "IOProviderClass", argv[2]);
    st = odk_find_services(c, match, &nodes);
    odk_value_free(match);
    if (st < 0 || odk_array_count(nodes) == 0) {
        fprintf(stderr, "no %s: %s\n", argv[2], odk_strerror(st));
        return 1;
    }
    uint64_t id = (uint64_t)odk_dict_get_int(odk_array_get(nodes, 0), "id", 0);
    odk_value_free(nodes);
    odk_connection *conn;
    st = odk_connection_open(c, id, 0, &conn);
    uint64_t in[2] = {strtoull(argv[3], NULL, 0), strtoull(argv[4], NULL, 0)}, out[1];
    uint32_t n_out = 1;
    if (st == ODK_OK)
        st = odk_connection_call(conn, 0, in, 2, NULL, 0, out, &n_out, NULL, NULL);
    if (st < 0) {
        fprintf(stderr, "call: %s\n", odk_strerror(st));
        return 1;
    }
    printf("%" PRIu64 "\n", out[0]);
    odk_connection_close(conn);
    odk_client_close(c);
    return 0;
}
"""


def run(args, **kw):
    kw.setdefault("env", CHILD_ENV)
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                       timeout=kw.pop("timeout", 600), **kw)
    assert r.returncode == 0, f"{shlex.join(map(str, args))} failed ({r.returncode}):\n" \
                              f"{r.stdout[-4000:]}{r.stderr[-4000:]}"
    return r


class Installed:
    """An odk installed under prefix; paths found the way a user would."""

    def __init__(self, prefix):
        self.prefix = prefix
        pcs = list(prefix.glob("**/pkgconfig/odk-driver.pc"))
        assert len(pcs) == 1, f"odk-driver.pc not installed once under {prefix}: {pcs}"
        self.pkgconfig = pcs[0].parent
        self.libdir = self.pkgconfig.parent
        self.env = dict(CHILD_ENV, PKG_CONFIG_PATH=str(self.pkgconfig))

    def pkg(self, *args):
        return run(["pkg-config", *args], env=self.env).stdout.strip()

    def ctl(self, state, *args, cwd=None, check=True):
        r = subprocess.run([str(self.prefix / "bin" / "odkctl"), "--state-dir", str(state),
                            *map(str, args)], capture_output=True, text=True, timeout=HANG_GUARD,
                           env=CHILD_ENV, cwd=cwd)
        if check:
            assert r.returncode == 0, f"odkctl {args} failed: {r.stdout}{r.stderr}"
        return r


@pytest.fixture(scope="module")
def sdk(tmp_path_factory):
    base = tmp_path_factory.mktemp("sdk")
    assert ROOT not in base.parents, "the SDK test needs a temporary folder outside the tree"
    build, prefix = base / "build", base / "prefix"
    run(["meson", "setup", build, ROOT, "--prefix", prefix, "--buildtype=debug"])
    run(["meson", "install", "-C", build])
    return Installed(prefix)


def test_installed_tree(sdk):
    p = sdk.prefix
    for prog in (p / "bin" / "odkd", p / "bin" / "odkctl", p / "libexec" / "odk" / "odk-driver-host"):
        assert os.access(prog, os.X_OK), prog
    headers = {h.name for h in (ROOT / "include" / "odk").glob("*.h")}
    assert {h.name for h in (p / "include" / "odk").glob("*.h")} == headers
    assert (sdk.libdir / "libodk.so").exists()

    # Only the samples: test drivers (faulty, tests/drivers) stay in the tree.
    drivers = Path(sdk.pkg("--variable=driversdir", "odk-driver"))
    assert drivers == sdk.libdir / "odk" / "drivers"
    assert sorted(d.name for d in drivers.iterdir()) == SAMPLE_DRIVERS
    for name in SAMPLE_DRIVERS:
        manifest = json.loads((drivers / name / "odk.json").read_text())
        assert (drivers / name / manifest["executable"]).exists()

    # Apps link libodk; drivers only get the headers.
    assert sdk.pkg("--libs", "odk") == f"-L{sdk.libdir} -lodk"
    assert sdk.pkg("--libs", "odk-driver") == ""
    assert f"-I{p / 'include'}" in sdk.pkg("--cflags", "odk-driver").split()
    assert Path(sdk.pkg("--variable=hostdir", "odk-driver")) == p / "libexec" / "odk"

    # The installed odkctl finds the installed libodk by itself.
    r = run([p / "bin" / "odkctl", "--version"])
    assert r.stdout.startswith("odkctl ")


def test_man_pages(sdk):
    pages = [sdk.prefix / "share" / "man" / "man8" / "odkd.8",
             sdk.prefix / "share" / "man" / "man1" / "odkctl.1"]
    for page in pages:
        text = page.read_text()
        assert "@" not in text, f"{page} has an unsubstituted placeholder"
        # groff (groff-base) and man (man-db) come from `make deps`: never
        # skipped.  Every warning but "break": the temporary prefix makes
        # paths too long to fill a line, which a real prefix does not.
        r = run(["groff", "-man", "-Tutf8", "-ww", "-Wbreak", "-z", page])
        assert r.stderr == "", f"groff warns about {page}:\n{r.stderr}"
    out = run(["man", "-l", pages[0]], env=dict(CHILD_ENV, MANPAGER="cat", PAGER="cat")).stdout
    assert "odk driver manager" in out
    # The installed paths are filled in, with '-' escaped as troff wants.
    drivers = str(sdk.libdir / "odk" / "drivers").replace("-", "\\-")
    assert f".IR {drivers} ." in pages[0].read_text()


def test_systemd_unit(sdk):
    unit = sdk.prefix / "lib" / "systemd" / "system" / "odkd.service"
    lines = [l.strip() for l in unit.read_text().splitlines()]
    keys = dict(l.split("=", 1) for l in lines if "=" in l and not l.startswith("#"))
    assert keys["ExecStart"] == (f"{sdk.prefix}/bin/odkd --state-dir /var/lib/odk "
                                 "--socket /run/odk/odkd.sock")
    assert keys["StateDirectory"] == "odk" and keys["RuntimeDirectory"] == "odk"
    assert "[Service]" in lines and "[Install]" in lines
    # systemd-analyze (package systemd) comes from `make deps`: never skipped.
    # MANPATH: the unit's Documentation= pages must be the installed ones.
    run(["systemd-analyze", "verify", unit],
        env=dict(CHILD_ENV, MANPATH=str(sdk.prefix / "share" / "man")))


def complete(script, line):
    """What odkctl's completion offers for line (the cursor at its end)."""
    words = line.split(" ")
    prog = (f"source {shlex.quote(str(script))}\n"
            f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)})\n"
            f"COMP_CWORD={len(words) - 1}\n"
            f"COMP_LINE={shlex.quote(line)}; COMP_POINT=${{#COMP_LINE}}\n"
            "_odkctl\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n")
    return sorted(w for w in run(["bash", "-c", prog]).stdout.split("\n") if w)


def test_bash_completion(sdk):
    script = sdk.prefix / "share" / "bash-completion" / "completions" / "odkctl"
    run(["bash", "-n", script])
    assert complete(script, "odkctl ne") == ["new"]
    assert complete(script, "odkctl --state-dir /x sim ") == ["plug", "unplug"]
    assert complete(script, "odkctl --js") == ["--json"]
    assert complete(script, "odkctl power w") == ["wake"]


def test_odkctl_new_refuses(sdk, tmp_path):
    odkctl = sdk.prefix / "bin" / "odkctl"
    for bad in ("", "2fast", "a/b", "../up", "has space", "x" * 65, "caf\u00e9"):
        r = subprocess.run([str(odkctl), "new", bad], capture_output=True, text=True,
                           cwd=tmp_path, env=CHILD_ENV)
        assert r.returncode == 1 and "not a valid driver name" in r.stderr, (bad, r.stderr)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.c").write_text("keep me\n")
    r = subprocess.run([str(odkctl), "new", "taken"], capture_output=True, text=True,
                       cwd=tmp_path, env=CHILD_ENV)
    assert r.returncode == 1 and "already exists" in r.stderr
    assert [f.name for f in (tmp_path / "taken").iterdir()] == ["mine.c"]
    r = subprocess.run([str(odkctl), "new"], capture_output=True, text=True, cwd=tmp_path,
                       env=CHILD_ENV)
    assert r.returncode == 2 and "new NAME" in r.stderr


@pytest.fixture
def installed_odkd(sdk, tmp_path):
    """The installed odkd as the unit runs it: no --drivers and no
    ODK_DRIVER_HOST, so it must find the installed samples and host by
    itself (odk_config.h), and its socket apart from its state (--socket).
    Yields the socket's folder, which is what clients are given."""
    state, run_dir, dev = tmp_path / "state", tmp_path / "run", tmp_path / "dev"
    dev.mkdir()
    run_dir.mkdir()
    log_path = tmp_path / "odkd.log"
    env = {k: v for k, v in CHILD_ENV.items() if k != "ODK_DRIVER_HOST"}
    with open(log_path, "w") as log:
        proc = subprocess.Popen([str(sdk.prefix / "bin" / "odkd"), "--state-dir", str(state),
                                 "--socket", str(run_dir / "odkd.sock"), "--dev-dir", str(dev)],
                                stdout=log, stderr=log, env=env)
    wait_until(lambda: (run_dir / "odkd.sock").exists() or proc.poll() is not None,
               what="odkd's socket")
    assert proc.poll() is None, log_path.read_text()
    # The socket can come before the catalog's lines reach the log.
    driversdir = sdk.pkg("--variable=driversdir", "odk-driver")
    try:
        wait_until(lambda: "bundle org.odk.hello 1.0.0" in log_path.read_text()
                   and driversdir in log_path.read_text(), what="the installed bundles in the log")
    except AssertionError:
        raise AssertionError(log_path.read_text()) from None
    assert not (state / "odkd.sock").exists()
    yield run_dir, log_path
    stop_and_check_odkd(proc, log_path, who="the installed odkd")


def service(sdk, state, cls):
    r = sdk.ctl(state, "find", json.dumps({"IOProviderClass": cls}))
    return int(r.stdout.split()[0]) if r.stdout.strip() else None


def test_skeleton_builds_out_of_tree_and_runs(sdk, installed_odkd, tmp_path):
    state, log_path = installed_odkd
    work = tmp_path / "work"
    work.mkdir()
    r = sdk.ctl(state, "new", "hello2", cwd=work)
    bundle = work / "hello2"
    assert sorted(f.name for f in bundle.iterdir()) == \
        ["README.md", "hello2.c", "meson.build", "odk.json"]
    assert 'model":"hello2"' in (bundle / "README.md").read_text().replace(" ", "")

    # Out of tree, with warnings as errors, through pkg-config alone.
    run(["meson", "setup", "build", "-Dwerror=true"], cwd=bundle, env=sdk.env)
    run(["meson", "compile", "-C", "build"], cwd=bundle, env=sdk.env)
    commands = (bundle / "build" / "compile_commands.json").read_text()
    assert str(ROOT) not in commands, "the skeleton reached into the source tree"
    assert f"-I{sdk.prefix / 'include'}" in commands
    assert (bundle / "build" / "odk.json").exists() and (bundle / "build" / "hello2.so").exists()

    # The installed samples run on the installed odkd and host.
    hello_dev = int(sdk.ctl(state, "sim", "plug", '{"properties":{"model":"hello"}}').stdout)
    hello = wait_until(lambda: service(sdk, state, "HelloDriver"), what="the hello service")
    assert sdk.ctl(state, "call", hello, 0, 3, 4).stdout.split() == ["7"]

    # Signed with a key of one's own that the installed odkd trusts
    # (docs/trust.md): it reads its trust folder at every check.
    sdk.ctl(state, "keygen", tmp_path / "me")
    shutil.copy(tmp_path / "me.pub", sdk.prefix / "etc" / "odk" / "trust")
    sdk.ctl(state, "sign", "build", "--key", tmp_path / "me.key", cwd=bundle)
    assert sdk.ctl(state, "install", "build", cwd=bundle).stdout.strip() == "installed"
    sdk.ctl(state, "sim", "plug", '{"properties":{"model":"hello2"}}')
    svc = wait_until(lambda: service(sdk, state, "Hello2Driver"), what="the hello2 service")
    assert sdk.ctl(state, "call", svc, 0, 2, 40).stdout.split() == ["42"]
    # Two scalars are what the table says; one is refused before the driver runs.
    r = sdk.ctl(state, "call", svc, 0, 2, check=False)
    assert r.returncode == 1 and "ODK_E_BAD_ARGUMENTS" in r.stderr
    assert "hello2 ready" in sdk.ctl(state, "log", "org.example.hello2").stdout

    # An app built against libodk with pkg-config odk calls it too.
    (work / "app.c").write_text(APP_C)
    flags = shlex.split(sdk.pkg("--cflags", "--libs", "odk"))
    run(["cc", "-std=c17", "-Wall", "-Wextra", "-Werror", "-o", work / "app", work / "app.c",
         *flags, f"-Wl,-rpath,{sdk.libdir}"])
    assert run([work / "app", state, "Hello2Driver", 1000, 234]).stdout.split() == ["1234"]

    sdk.ctl(state, "sim", "unplug", hello_dev)
