# SPDX-License-Identifier: MIT
"""tools/check-layers: odkd's layers call down only.  The real build must
pass; a planted upward call (a core file calling into the policy layer)
and an upward include must each fail, naming the files involved."""
import json
import os
import subprocess

from conftest import BUILD

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHECK = os.path.join(ROOT, "tools", "check-layers")


def run_check(build, root=ROOT):
    return subprocess.run([CHECK, build, "--root", root], capture_output=True, text=True)


def test_real_build_has_no_upward_calls():
    r = run_check(str(BUILD))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 violations" in r.stderr


def planted_tree(tmp_path, core_source, policy_source):
    """A fake source tree with one core and one policy file, compiled into
    odkd-named objects, and its compile_commands.json."""
    root = tmp_path / "src-root"
    build = tmp_path / "build"
    for d in ("src/daemon/core", "src/daemon/policy"):
        (root / d).mkdir(parents=True)
    build.mkdir()
    (root / "src/daemon/core/planted.c").write_text(core_source)
    (root / "src/daemon/policy/manager.c").write_text(policy_source)
    commands = []
    for rel in ("src/daemon/core/planted.c", "src/daemon/policy/manager.c"):
        out = "odkd.p/" + rel.replace("/", "_") + ".o"
        (build / "odkd.p").mkdir(exist_ok=True)
        subprocess.run(["cc", "-c", str(root / rel), "-o", str(build / out)], check=True)
        commands.append({"directory": str(build), "file": str(root / rel), "output": out,
                         "command": "cc"})
    (build / "compile_commands.json").write_text(json.dumps(commands))
    return root, build


def test_planted_upward_call_fails(tmp_path):
    root, build = planted_tree(
        tmp_path,
        "void manager_register(void);\nvoid core_thing(void) { manager_register(); }\n",
        "void manager_register(void) {}\n")
    r = run_check(str(build), str(root))
    assert r.returncode == 1, r.stdout + r.stderr
    assert ("src/daemon/core/planted.c (core) calls manager_register in "
            "src/daemon/policy/manager.c (policy)") in r.stdout


def test_planted_upward_include_fails(tmp_path):
    root, build = planted_tree(
        tmp_path,
        '#if 0\n#include "daemon/policy/manager.h"\n#endif\nvoid core_thing(void) {}\n',
        "void manager_register(void) {}\n")
    r = run_check(str(build), str(root))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "src/daemon/core/planted.c (core) includes daemon/policy/manager.h (policy)" in r.stdout


def test_downward_call_passes(tmp_path):
    root, build = planted_tree(
        tmp_path,
        "void registry_thing(void) {}\n",
        "void registry_thing(void);\nvoid manager_register(void) { registry_thing(); }\n")
    r = run_check(str(build), str(root))
    assert r.returncode == 0, r.stdout + r.stderr
