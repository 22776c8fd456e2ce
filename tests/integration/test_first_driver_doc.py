# SPDX-License-Identifier: MIT
"""docs/driver-guide.md's "Your first driver in five minutes", run verbatim.

The blocks fenced as ```sh first-driver run in order, in one bash, in a
temporary folder, with the variables the page asks the reader to set:
ODK_SRC and ODK_BUILD (this checkout and its build), ODK_STATE_DIR (a
temporary state folder) and PATH (the build's bin first).  The block fenced
as ```sh first-driver-in-tree adds the driver to the tree, so it runs in a
scratch copy of the checkout with a build folder of its own.  Nothing in the
commands is edited; the test only checks what they printed."""
import os
import re
import shutil
import signal
import subprocess

from conftest import BUILD, CHILD_ENV, HANG_GUARD, ROOT, check_odkd_exit

DOC = ROOT / "docs" / "driver-guide.md"
BLOCK = re.compile(r"^```sh (first-driver(?:-in-tree)?)\n(.*?)^```$", re.M | re.S)


def blocks(kind):
    found = [body for k, body in BLOCK.findall(DOC.read_text()) if k == kind]
    assert found, f"no ```sh {kind} block in {DOC}"
    return found


def run_bash(script, cwd, env, timeout):
    """Runs script with bash -e -u in cwd; returns stdout + stderr, failing
    the test (with the output) when bash fails."""
    p = subprocess.Popen(["bash", "-e", "-u", "-o", "pipefail", "-c", script], cwd=cwd, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        raise AssertionError(f"the commands hung (hang guard {timeout} s):\n{out}")
    assert p.returncode == 0, f"the commands failed (status {p.returncode}):\n{out}"
    return out


def copy_checkout(dst):
    """The checkout's sources, without build folders or git metadata."""
    def ignore(folder, names):
        if os.path.samefile(folder, ROOT):
            return [n for n in names if n.startswith("build") or n in (".git", ".pytest_cache")]
        return [n for n in names if n in ("__pycache__",)]
    shutil.copytree(ROOT, dst, ignore=ignore, symlinks=True)


def test_the_first_driver_page_runs_as_written(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    state = tmp_path / "state"
    env = dict(CHILD_ENV, ODK_SRC=str(ROOT), ODK_BUILD=str(BUILD), ODK_STATE_DIR=str(state),
               PATH=f"{BUILD / 'bin'}:{CHILD_ENV.get('PATH', '/usr/bin:/bin')}")
    env.pop("ODK_DRIVER_HOST", None)

    # The tour's shell: every first-driver block in order.  Its own `kill %1`
    # stops odkd; the log it kept is checked like any odkd's.
    script = "\n".join(blocks("first-driver")) + "\nwait\n"
    out = run_bash(script, work, env, timeout=4 * HANG_GUARD)
    log = (state / "odkd.log").read_text(errors="replace")
    assert "info odkd: stopped" in log, log
    check_odkd_exit(0, log, who="the tour's odkd")  # no sanitizer report in its log

    lines = out.splitlines()
    assert "installed" in lines, out
    assert "5" in lines, out  # odkctl call "$NODE" 0 2 3
    assert re.search(r"info org\.example\.mydriver#\d+: mydriver ready", out), out
    assert "the call failed: the driver crashed" in out, out
    assert re.search(r"odkd: org\.example\.mydriver#\d+ \(pid \d+\) crashed: ", out), out
    # The report, symbolised: the driver's function and source line.
    assert re.search(r"my_crash at .*mydriver\.c:\d+", out), out
    assert (work / "mydriver" / "mydriver.so").exists()

    # The in-tree build, in a scratch copy of the checkout.
    src = tmp_path / "odk"
    copy_checkout(src)
    build = src / "build"
    subprocess.run(["meson", "setup", str(build)], cwd=src, env=CHILD_ENV, check=True,
                   capture_output=True, timeout=4 * HANG_GUARD)
    env_tree = dict(env, ODK_SRC=str(src), ODK_BUILD=str(build))
    out = run_bash("\n".join(blocks("first-driver-in-tree")), work, env_tree,
                   timeout=4 * HANG_GUARD)
    bundle = build / "drivers" / "mydriver"
    assert (bundle / "mydriver.so").exists() and (bundle / "odk.json").exists(), out
    assert "mydriver.so" in out and "odk.json" in out
