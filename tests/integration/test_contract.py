# SPDX-License-Identifier: MIT
"""odk's public contract: a driver built for another ODK_API_VERSION is
refused with both versions named, the public headers and ODK_DRIVER_CLASS
compile cleanly in strict ISO C under gcc and clang, and the driver host and
libodk export only public odk_* names."""
import json
import re
import shutil
import subprocess

import pytest

from conftest import BIN, BUILD, DRIVERS, ROOT, TEST_DRIVERS, pid_alive, sign_bundle, wait_until
from driver_selectors import ECHO

ECHO_DEVICE = {"model": "echo"}

# A driver as small as one can be: a class whose start succeeds.
TINY_C = r"""
#include "odk/driver.h"
static int tiny_start(odk_driver *drv) { return odk_driver_register_service(drv); }
static const odk_driver_class tiny_class = { .name = "TinyDriver", .start = tiny_start };
ODK_DRIVER_CLASS(tiny_class);
"""

# Every public header, so a pedantic build checks them all, not only driver.h.
PUBLIC_HEADERS = sorted(p.name for p in (ROOT / "include" / "odk").glob("*.h"))


def api_version():
    text = (ROOT / "include" / "odk" / "version.h").read_text()
    return int(re.search(r"#define ODK_API_VERSION (\d+)u?", text)[1])


def build_tiny(folder, bundle, model, cflags=()):
    """A bundle folder with the tiny driver, compiled with extra cflags."""
    folder.mkdir(parents=True)
    (folder / "tiny.c").write_text(TINY_C)
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    subprocess.run([cc, "-shared", "-fPIC", "-O1", "-D_GNU_SOURCE", f"-I{ROOT / 'include'}",
                    *cflags, "-o", str(folder / "tiny.so"), str(folder / "tiny.c")], check=True)
    (folder / "tiny.c").unlink()
    (folder / "odk.json").write_text(json.dumps({
        "bundle": bundle, "version": "1.0.0", "executable": "tiny.so", "entitlements": {"sim": True},
        "personalities": {"Tiny": {
            "IOProviderClass": "OdkSimDevice", "IOClass": "IOUserService",
            "IOUserClass": "TinyDriver", "IOUserServerName": bundle,
            "IOPropertyMatch": {"model": model}, "IOProbeScore": 1000}}}))
    sign_bundle(folder)
    return folder


def instance_of(d, dev):
    l = [i for i in d.instances() if i["provider"] == dev]
    return l[0] if l else None


def in_state(d, dev, state):
    return wait_until(lambda: (lambda i: i if i and i["state"] == state else None)(
        instance_of(d, dev)), what=f"state {state}")


def test_a_driver_of_another_api_version_is_refused_naming_both(make_odkd, tmp_path):
    ours = api_version()
    theirs = ours + 98
    bundle = "org.example.tiny-future"
    src = build_tiny(tmp_path / "drivers" / "future", bundle, "tiny-future",
                     [f"-DODK_API_VERSION_OVERRIDE={theirs}"])
    odkd = make_odkd(drivers=(tmp_path / "drivers", DRIVERS, TEST_DRIVERS))
    # odkctl install checks a new build in a throwaway host and refuses it
    # at once...
    build2 = tmp_path / "future-rebuilt"
    shutil.copytree(src, build2)
    with open(build2 / "tiny.so", "ab") as f:
        f.write(b"\0rebuilt")  # another build id: not the one already in the catalog
    sign_bundle(build2)
    r = odkd.ctl("install", build2, check=False)
    assert r.returncode != 0 and f"version {theirs}" in r.stderr and f"version {ours}" in r.stderr, \
        r.stderr
    # ...and the copy odkd found in a --drivers folder (never checked) fails
    # to start, saying the same in its log.
    echo = odkd.plug(ECHO_DEVICE)
    dev = odkd.plug({"model": "tiny-future"})
    failed = in_state(odkd, dev, "failed")
    if failed["pid"]:  # the host leaves once odkd has read its answer
        wait_until(lambda: not pid_alive(failed["pid"]), what="the refused host to exit")
    log = odkd.ctl("log", bundle).stdout
    line = [l for l in log.splitlines() if "API version" in l]
    assert line, log
    assert any(f"version {theirs}" in l and f"version {ours}" in l for l in line), log
    # The rest keeps running: echo answers, and odkd is alive.
    odkd.running(provider=echo)
    assert odkd.ctl("call", echo, ECHO.ADD, 40, 2).stdout.split() == ["42"]
    assert odkd.proc.poll() is None


def test_the_same_driver_built_for_this_version_runs(odkd, tmp_path):
    bundle = "org.example.tiny"
    src = build_tiny(tmp_path / "tiny", bundle, "tiny")
    assert odkd.ctl("install", src).stdout.strip() == "installed"
    dev = odkd.plug({"model": "tiny"})
    odkd.running(provider=dev)
    assert "API version" not in odkd.ctl("log", bundle).stdout


@pytest.mark.parametrize("compiler", ["cc", "clang"])
def test_a_driver_compiles_cleanly_in_strict_c17(compiler, tmp_path):
    """`ODK_DRIVER_CLASS(x);` at file scope, with every public header, under
    -std=c17 -Wpedantic -Werror: the ';' must close a declaration, not be an
    empty one ("ISO C does not allow extra ';' outside of a function")."""
    cc = shutil.which(compiler)
    assert cc, f"{compiler} is not installed (make deps installs gcc and clang)"
    includes = "".join(f'#include "odk/{h}"\n' for h in PUBLIC_HEADERS)
    src = tmp_path / "strict.c"
    src.write_text(includes + TINY_C)
    r = subprocess.run([cc, "-std=c17", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-fPIC",
                        "-shared", f"-I{ROOT / 'include'}", "-o", str(tmp_path / "strict.so"),
                        str(src)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stderr == "", r.stderr


# Symbols the toolchain defines in every ELF object, not part of any API.
LINKER_SYMBOLS = {"_init", "_fini", "_edata", "_end", "__bss_start", "_IO_stdin_used",
                  "__data_start", "data_start", "_start", "__dso_handle", "__libc_csu_init",
                  "__libc_csu_fini"}


def exported(path):
    out = subprocess.run(["nm", "-D", "--defined-only", str(path)], capture_output=True,
                         text=True, check=True).stdout
    names = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] in "TtDdBbRrVvWwGgSsui":
            names.append(parts[2].split("@")[0])
    return names


@pytest.mark.parametrize("path", [BIN / "odk-driver-host", BUILD / "src/client/libodk.so"],
                         ids=["odk-driver-host", "libodk.so"])
def test_only_public_names_are_exported(path):
    assert shutil.which("nm"), "nm is not installed (make deps installs binutils)"
    names = exported(path)
    if any(n.startswith("__asan") for n in names):
        pytest.skip("sanitizer build: the ASan runtime exports its interceptors")
    assert any(n.startswith("odk_") for n in names), names
    stray = sorted(n for n in names if not n.startswith("odk_") and n not in LINKER_SYMBOLS)
    assert stray == [], f"{path.name} exports non-public names: {stray}"


def declared_functions():
    """Every odk_* function the public headers declare (macros and static
    inline helpers, which compile into their caller, excluded)."""
    names = set()
    for header in (ROOT / "include" / "odk").glob("*.h"):
        text = header.read_text()
        text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
        text = re.sub(r"^#.*?(?<!\\)$", "", text, flags=re.S | re.M)
        text = re.sub(r"static inline [^;{]*\{.*?^\}", "", text, flags=re.S | re.M)
        names |= set(re.findall(r"\b(odk_[a-z0-9_]+)\s*\(", text))
    return names


def test_every_public_function_is_exported():
    """A declaration that lost its ODK_PUBLIC would be hidden: drivers and
    apps could not link against it.  Each declared function is exported by
    the host (drivers' API) or by libodk (apps' API)."""
    assert shutil.which("nm"), "nm is not installed (make deps installs binutils)"
    both = set(exported(BIN / "odk-driver-host")) | set(exported(BUILD / "src/client/libodk.so"))
    missing = sorted(declared_functions() - both)
    assert missing == [], f"declared in include/odk but exported by neither: {missing}"
