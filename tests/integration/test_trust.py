# SPDX-License-Identifier: MIT
"""Trust end to end (docs/trust.md): keys made with odkctl keygen, bundles
signed with odkctl sign, odkd refusing what is unsigned, signed by a key it
does not trust or changed after signing (at install and again at launch),
--dev accepting development keys and wildcard entitlements, and
entitlements deciding what a personality may match."""
import json
import os
import shutil
import stat
import time
import subprocess

from conftest import BIN, CHILD_ENV, DRIVERS, TEST_DRIVERS, TRUST, sign_bundle, wait_until

ECHO_SO = "echo.so"


def odkctl(*args, check=True):
    r = subprocess.run([str(BIN / "odkctl"), *map(str, args)], capture_output=True, text=True,
                       env=CHILD_ENV)
    if check:
        assert r.returncode == 0, f"odkctl {args}: {r.stdout}{r.stderr}"
    return r


def keygen(folder, name):
    folder.mkdir(parents=True, exist_ok=True)
    odkctl("keygen", folder / name)
    return folder / f"{name}.key", folder / f"{name}.pub"


def trust_folder(tmp_path, *pubs, dev=()):
    """A trust folder: the build's key (so the samples load), pubs trusted,
    dev trusted as development keys."""
    t = tmp_path / "trust"
    (t / "dev").mkdir(parents=True, exist_ok=True)
    shutil.copy(TRUST / "odk-build.pub", t)
    for p in pubs:
        shutil.copy(p, t)
    for p in dev:
        shutil.copy(p, t / "dev")
    return t


def echo_bundle(folder, model, entitlements=None, key=None):
    """A copy of the echo test driver under its own id, matching model;
    signed with key when given."""
    shutil.copytree(TEST_DRIVERS / "echo", folder, ignore=shutil.ignore_patterns("*.p"))
    (folder / "odk.sig").unlink()
    m = json.loads((folder / "odk.json").read_text())
    m["bundle"] = f"org.example.{model}"
    m["entitlements"] = {"sim": True} if entitlements is None else entitlements
    p = m["personalities"]["EchoDriver"]
    p["IOUserServerName"] = m["bundle"]
    p["IOPropertyMatch"] = {"model": model}
    (folder / "odk.json").write_text(json.dumps(m))
    if key:
        sign_bundle(folder, key)
    return folder


def flip_a_byte(path, at=100):
    b = bytearray(path.read_bytes())
    b[at] ^= 0x01
    path.write_bytes(bytes(b))


def test_keygen_sign_verify_install_and_run(make_odkd, tmp_path):
    key, pub = keygen(tmp_path / "keys", "alice")
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert pub.read_text().startswith("odk-public-key ed25519 ")
    # keygen never overwrites a key.
    r = odkctl("keygen", tmp_path / "keys" / "alice", check=False)
    assert r.returncode != 0 and "exists already" in r.stderr
    b = echo_bundle(tmp_path / "mine", "trusted-echo", key=key)
    assert "odk.sig" in os.listdir(b)
    trust = trust_folder(tmp_path, pub)
    out = odkctl("verify", b, "--trust", trust).stdout
    assert "signature good" in out and "alice.pub" in out

    d = make_odkd(extra_args=["--trust-dir", trust])
    assert d.ctl("install", b).stdout.strip() == "installed"
    dev = d.plug({"model": "trusted-echo"})
    (inst,) = d.running(provider=dev)
    assert inst["bundle"] == "org.example.trusted-echo"


def test_a_flipped_byte_is_refused_at_install_naming_the_file(make_odkd, tmp_path):
    key, pub = keygen(tmp_path / "keys", "alice")
    b = echo_bundle(tmp_path / "mine", "flipped", key=key)
    flip_a_byte(b / ECHO_SO)
    r = odkctl("verify", b, check=False)
    assert r.returncode != 0 and "changed after signing: echo.so differs" in r.stderr, r.stderr
    d = make_odkd(extra_args=["--trust-dir", trust_folder(tmp_path, pub)])
    r = d.ctl("install", b, check=False)
    assert r.returncode != 0, r.stdout
    assert "ODK_E_ACCESS" in r.stderr and "changed after signing: echo.so differs" in r.stderr
    # An added file is named too, and so is a missing one.
    flip_a_byte(b / ECHO_SO)
    (b / "extra.so").write_bytes(b"\x7fELF")
    r = d.ctl("install", b, check=False)
    assert r.returncode != 0 and "extra.so was added" in r.stderr, r.stderr
    (b / "extra.so").unlink()
    assert d.ctl("install", b).stdout.strip() == "installed"  # back as signed


def test_a_change_after_install_is_refused_at_launch(make_odkd, tmp_path):
    key, pub = keygen(tmp_path / "keys", "alice")
    b = echo_bundle(tmp_path / "mine", "changed-later", key=key)
    d = make_odkd(extra_args=["--trust-dir", trust_folder(tmp_path, pub)])
    assert d.ctl("install", b).stdout.strip() == "installed"
    (installed,) = [p for p in (d.state / "bundles").iterdir()
                    if p.is_dir() and p.name.startswith("org.example.changed-later-")]
    flip_a_byte(installed / ECHO_SO)
    dev = d.plug({"model": "changed-later"})
    (inst,) = wait_until(lambda: [i for i in d.instances()
                                  if i["provider"] == dev and i["state"] == "failed"],
                         what="the launch to be refused")
    assert "refused" in inst["reason"] and "echo.so differs" in inst["reason"], inst
    assert "refused at launch" in d.log_text() and "echo.so differs" in d.log_text()
    # The other drivers are unaffected.
    echo = d.plug({"model": "echo"})
    d.running(provider=echo)


def test_a_change_after_a_launch_is_refused_at_the_next_launch(make_odkd, tmp_path):
    """odkd remembers a launch check that passed (catalog_verify_launch) and
    skips the next one only while no file changed: a byte flipped in place
    (same inode, same size) after a launch is refused at the next."""
    key, pub = keygen(tmp_path / "keys", "alice")
    b = echo_bundle(tmp_path / "mine", "changed-between", key=key)
    d = make_odkd(extra_args=["--trust-dir", trust_folder(tmp_path, pub)])
    assert d.ctl("install", b).stdout.strip() == "installed"
    (installed,) = [p for p in (d.state / "bundles").iterdir()
                    if p.is_dir() and p.name.startswith("org.example.changed-between-")]
    # Files changed in the last 2 s are checked in full anyway: let them settle,
    # so that the launches below are the remembered kind.
    time.sleep(2.5)
    for _ in range(2):
        dev = d.plug({"model": "changed-between"})
        d.running(provider=dev)
        d.ctl("sim", "unplug", str(dev))
        wait_until(lambda: not [i for i in d.instances() if i["provider"] == dev],
                   what="the unplugged driver to go")
    flip_a_byte(installed / ECHO_SO)
    time.sleep(2.5)  # settled again: only the changed stamp can tell
    dev = d.plug({"model": "changed-between"})
    (inst,) = wait_until(lambda: [i for i in d.instances()
                                  if i["provider"] == dev and i["state"] == "failed"],
                         what="the launch to be refused")
    assert "refused" in inst["reason"] and "echo.so differs" in inst["reason"], inst


def test_unsigned_and_unknown_keys_are_refused_saying_which(make_odkd, tmp_path):
    key, pub = keygen(tmp_path / "keys", "alice")
    stranger, _ = keygen(tmp_path / "keys", "mallory")
    d = make_odkd(extra_args=["--trust-dir", trust_folder(tmp_path, pub)])
    unsigned = echo_bundle(tmp_path / "unsigned", "unsigned")
    r = d.ctl("install", unsigned, check=False)
    assert r.returncode != 0 and "unsigned" in r.stderr and "odk.sig" in r.stderr, r.stderr
    unknown = echo_bundle(tmp_path / "unknown", "unknown", key=stranger)
    r = d.ctl("install", unknown, check=False)
    assert r.returncode != 0 and "signed by unknown key" in r.stderr, r.stderr
    # A bundle in a --drivers folder is refused the same way, and logged.
    more = tmp_path / "more"
    echo_bundle(more / "stranger", "stranger", key=stranger)
    d2 = make_odkd("b", extra_args=["--trust-dir", trust_folder(tmp_path, pub)],
                   drivers=(DRIVERS, TEST_DRIVERS, more))
    wait_until(lambda: "refusing bundle org.example.stranger" in d2.log_text(),
               what="the refusal in odkd's log")
    assert "signed by unknown key" in d2.log_text()
    assert not [i for i in d2.instances() if i["bundle"] == "org.example.stranger"]


def test_dev_mode_accepts_dev_keys_and_wildcards_and_only_dev_mode(make_odkd, tmp_path):
    dev_key, dev_pub = keygen(tmp_path / "keys", "devkey")
    rel_key, rel_pub = keygen(tmp_path / "keys", "release")
    trust = trust_folder(tmp_path, rel_pub, dev=(dev_pub,))
    wild = {"sim": True, "usb": "*", "resources": "*"}
    dev_signed = echo_bundle(tmp_path / "devsigned", "dev-signed", wild, key=dev_key)
    # A trusted release key does not make a wildcard acceptable outside --dev.
    rel_wild = echo_bundle(tmp_path / "relwild", "rel-wild", wild, key=rel_key)

    strict = make_odkd("strict", extra_args=["--trust-dir", trust])
    r = strict.ctl("install", dev_signed, check=False)
    assert r.returncode != 0 and "development key" in r.stderr and "--dev" in r.stderr, r.stderr
    r = strict.ctl("install", rel_wild, check=False)
    assert r.returncode != 0 and "entitlements.usb" in r.stderr and "wildcard" in r.stderr, \
        r.stderr

    dev = make_odkd("dev", extra_args=["--trust-dir", trust, "--dev"])
    assert "development mode" in dev.log_text()
    assert dev.ctl("install", dev_signed).stdout.strip() == "installed"
    assert dev.ctl("install", rel_wild).stdout.strip() == "installed"
    node = dev.plug({"model": "dev-signed"})
    dev.running(provider=node)


def usb_bundle(folder, entitlements, key):
    """usb-vendor-echo under another id, with the given entitlements."""
    shutil.copytree(DRIVERS / "usb-vendor-echo", folder, ignore=shutil.ignore_patterns("*.p"))
    m = json.loads((folder / "odk.json").read_text())
    m["bundle"] = "org.example.usb-narrow"
    m["entitlements"] = entitlements
    (p,) = m["personalities"].values()
    p["IOUserServerName"] = m["bundle"]
    (folder / "odk.json").write_text(json.dumps(m))
    sign_bundle(folder, key)
    return folder


def test_an_entitlement_without_the_vendor_id_does_not_match(make_odkd, tmp_path):
    key, pub = keygen(tmp_path / "keys", "alice")
    # Entitled to another product of the same vendor only.
    b = usb_bundle(tmp_path / "narrow", {"usb": [{"vendor": 0x1209, "product": 0x9999}]}, key)
    (tmp_path / "none").mkdir()  # no other drivers: nothing else matches the device
    d = make_odkd(extra_args=["--trust-dir", trust_folder(tmp_path, pub)],
                  drivers=(tmp_path / "none",))
    assert d.ctl("install", b).stdout.strip() == "installed"
    dev = int(d.ctl("usb", "plug", "vendor-echo").stdout.split()[0])
    (iface,) = [n["id"] for n in d.json("tree")
                if n.get("parent") == dev and n["class"] == "IOUSBHostInterface"
                and n["properties"].get("bInterfaceNumber") == 0]
    rows = [r for r in d.json("match", "--explain", iface)
            if r["bundle"] == "org.example.usb-narrow"]
    (row,) = rows
    assert not row["matched"] and row["entitlement"] is False, row
    assert "USB vendor 0x1209 product 0x0002" in row["reason"], row
    text = d.ctl("match", "--explain", iface).stdout
    line = [l for l in text.splitlines() if "org.example.usb-narrow" in l][0]
    assert "entitlement" in line, text
    assert not d.instances()

    # The same bundle entitled to the device's ids matches and runs.
    d.ctl("usb", "unplug", dev)
    wide = usb_bundle(tmp_path / "wide", {"usb": [{"vendor": 0x1209, "product": 0x0002}]}, key)
    m = json.loads((wide / "odk.json").read_text())
    m["version"] = "2.0.0"
    (wide / "odk.json").write_text(json.dumps(m))
    sign_bundle(wide, key)
    assert d.ctl("install", wide).stdout.strip() == "installed"
    dev = int(d.ctl("usb", "plug", "vendor-echo").stdout.split()[0])
    wait_until(lambda: [i for i in d.instances()
                        if i["bundle"] == "org.example.usb-narrow" and i["state"] == "running"],
               what="the entitled bundle to run")


def test_a_family_resource_needs_its_entitlement(make_odkd, tmp_path):
    """serial-loopback without "resources": ["serial"] may match its device
    but the serial family refuses to create its port, saying why, to the
    driver and in the log; with the entitlement the port appears."""
    key, pub = keygen(tmp_path / "keys", "alice")
    d = make_odkd(extra_args=["--trust-dir", trust_folder(tmp_path, pub)])

    def loopback(name, entitlements, version):
        b = tmp_path / name
        shutil.copytree(DRIVERS / "serial-loopback", b, ignore=shutil.ignore_patterns("*.p"))
        m = json.loads((b / "odk.json").read_text())
        m["bundle"], m["version"], m["entitlements"] = "org.example.loop", version, entitlements
        (p,) = m["personalities"].values()
        p["IOUserServerName"] = m["bundle"]
        p["IOPropertyMatch"] = {"model": "entitled-loop"}
        (b / "odk.json").write_text(json.dumps(m))
        sign_bundle(b, key)
        return b

    assert d.ctl("install", loopback("bare", {"sim": True}, "1.0.0")).stdout.strip() == "installed"
    node = d.plug({"model": "entitled-loop"})
    wait_until(lambda: "not entitled to create a serial resource" in d.log_text(),
               what="the serial family's refusal in odkd's log")
    assert "serial-pty" in d.log_text()
    assert not [n for n in d.json("tree") if n["class"] == "IOUserSerial"
                and n.get("parent") is not None and n["properties"].get(
                    "CFBundleIdentifier") == "org.example.loop"]
    log = d.ctl("log", "org.example.loop").stdout
    assert "ODK_E_ACCESS" in log or "not entitled" in log, log

    entitled = loopback("entitled", {"sim": True, "resources": ["serial"]}, "2.0.0")
    assert d.ctl("install", entitled).stdout.strip() == "installed"
    wait_until(lambda: [i for i in d.instances() if i["bundle"] == "org.example.loop"
                        and i["version"] == "2.0.0" and i["state"] == "running"
                        and i["provider"] == node], what="the entitled build to run")
    wait_until(lambda: list((d.dev).glob("tty.*")), what="its serial port's link")
