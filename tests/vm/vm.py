# SPDX-License-Identifier: MIT
"""The guest machine: Debian's stock kernel under QEMU, running the host's
own file system (read-only over virtio-9p, writes to a tmpfs overlay).

kernel()      fetches linux-image-amd64 into a cache folder, never installing it
initramfs()   makes the tiny initramfs (busybox-static, the 9p/overlay modules)
boot()        runs one command in one guest with the devices asked for, streams
              the console, kills the guest at a deadline, returns a Result
collect()     which tests pytest selects, with the devices each one asks for
groups()      one boot per distinct device set
"""
import fcntl
import hashlib
import io
import json
import lzma
import os
import re
import select
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

# Modules the initramfs loads to mount the host's root; their dependencies
# come from the kernel's modules.dep.
BOOT_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay")

# A guest that has not powered off by then is killed and the run fails.
# Generous: it only ends a guest that would otherwise hang the suite.
DEFAULT_DEADLINE = 600.0


def cache_dir():
    """Where kernels are kept between runs: $ODK_VM_CACHE, else
    /var/cache/odk-vm when writable (root), else ~/.cache/odk-vm."""
    if os.environ.get("ODK_VM_CACHE"):
        d = Path(os.environ["ODK_VM_CACHE"])
    elif os.access("/var/cache", os.W_OK):
        d = Path("/var/cache/odk-vm")
    else:
        d = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "odk-vm"
    d.mkdir(parents=True, exist_ok=True)
    return d


def log(msg):
    print(f"odk-vm: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- kernel

@dataclass
class Kernel:
    version: str      # uname -r in the guest, e.g. 6.1.0-57-amd64
    image: Path       # what QEMU's -kernel loads (see _vmlinux)
    modules: Path     # the extracted /lib/modules/<version>, with modules.dep


# How long the answer to "which kernel is linux-image-amd64 today" is kept
# (apt-cache takes seconds on a busy machine); ODK_VM_REFRESH=1 asks anew.
PACKAGE_ANSWER_SECONDS = 24 * 3600


def _kernel_package(cache):
    """The package linux-image-amd64 depends on today, e.g.
    linux-image-6.1.0-57-amd64 (its name carries the kernel's ABI)."""
    memo = cache / "kernel-package"
    try:
        if (os.environ.get("ODK_VM_REFRESH") != "1"
                and time.time() - memo.stat().st_mtime < PACKAGE_ANSWER_SECONDS):
            return memo.read_text().strip()
    except OSError:
        pass
    out = subprocess.run(["apt-cache", "depends", "linux-image-amd64"], capture_output=True,
                         text=True, check=True).stdout
    m = re.search(r"Depends:\s*(linux-image-\S+-amd64)", out)
    if not m:
        raise RuntimeError(f"apt-cache depends linux-image-amd64 names no kernel:\n{out}")
    memo.write_text(m.group(1) + "\n")
    return m.group(1)


def _download(pkg, into):
    cmd = ["apt-get", "download", "-q", pkg]
    r = subprocess.run(cmd, cwd=into, capture_output=True, text=True)
    if r.returncode != 0 and os.geteuid() == 0:
        # Stale package lists (the mirror moved on): refresh once, retry.
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        r = subprocess.run(cmd, cwd=into, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stdout}{r.stderr}")
    debs = sorted(Path(into).glob(f"{pkg}_*.deb"))
    if not debs:
        raise RuntimeError(f"apt-get download {pkg} left no .deb in {into}")
    return debs[-1]


def kernel():
    """Debian's stock kernel, extracted (dpkg-deb -x, never installed) into
    the cache with its modules.dep made by depmod.  Downloaded once per
    version; later runs reuse it, also offline."""
    cache = cache_dir()
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            pkg = _kernel_package(cache)
            tree = cache / pkg
        except (OSError, subprocess.CalledProcessError, RuntimeError) as e:
            trees = sorted(cache.glob("linux-image-*/.complete"))
            if not trees:
                raise
            tree = trees[-1].parent
            log(f"cannot ask apt for the kernel ({e}); using the cached {tree.name}")
        if not (tree / ".complete").exists():
            shutil.rmtree(tree, ignore_errors=True)
            tmp = Path(tempfile.mkdtemp(dir=cache, prefix=".extract-"))
            log(f"fetching {pkg} into {cache}")
            deb = _download(pkg, tmp)
            subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp / "root")], check=True)
            deb.unlink()
            kver = pkg[len("linux-image-"):]
            subprocess.run(["depmod", "-b", str(tmp / "root"), kver], check=True)
            (tmp / "root" / ".complete").write_text(kver + "\n")
            (tmp / "root").rename(tree)
            shutil.rmtree(tmp)
        kver = (tree / ".complete").read_text().strip()
        image = _vmlinux(tree / "boot" / f"vmlinuz-{kver}")
    return Kernel(kver, image, tree / "lib" / "modules" / kver)


def _vmlinux(vmlinuz):
    """The uncompressed ELF kernel inside Debian's bzImage, made once next
    to it.  QEMU boots it directly through its PVH entry point: that skips
    the firmware and the xz decompression, which take most of a boot's
    first seconds under software emulation.  Falls back to the bzImage."""
    elf = vmlinuz.with_name(vmlinuz.name.replace("vmlinuz", "vmlinux"))
    if elf.exists():
        return elf
    data = vmlinuz.read_bytes()
    at = data.find(b"\xfd7zXZ\x00")
    try:
        if at < 0:
            raise lzma.LZMAError("no xz stream")
        out = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data[at:])
    except lzma.LZMAError as e:
        log(f"booting the bzImage: cannot unpack {vmlinuz.name} ({e})")
        return vmlinuz
    if not out.startswith(b"\x7fELF"):
        log(f"booting the bzImage: {vmlinuz.name} does not hold an ELF kernel")
        return vmlinuz
    tmp = elf.with_suffix(".tmp")
    tmp.write_bytes(out)
    tmp.rename(elf)
    return elf


# ------------------------------------------------------------- initramfs

def _module_order(k, names):
    """Module files (relative to k.modules) to insmod, dependencies first."""
    deps = {}
    for line in (k.modules / "modules.dep").read_text().splitlines():
        mod, _, rest = line.partition(":")
        deps[mod] = rest.split()
    by_name = {Path(m).name.split(".ko")[0].replace("-", "_"): m for m in deps}
    order = []

    def add(m):
        if m in order:
            return
        for d in deps[m]:
            add(d)
        order.append(m)
    for n in names:
        m = by_name.get(n.replace("-", "_"))
        if m is None:  # built into this kernel: nothing to load
            if not re.search(rf"/{re.escape(n)}\.ko", (k.modules / "modules.builtin").read_text()):
                raise RuntimeError(f"module {n} is neither in modules.dep nor built in")
            continue
        add(m)
    return order


class _Cpio:
    """A newc archive, the format the kernel unpacks as initramfs."""

    def __init__(self):
        self.buf = io.BytesIO()
        self.ino = 1

    def _entry(self, name, mode, data=b"", rdev=(0, 0)):
        name_b = name.encode() + b"\0"
        hdr = "070701" + "".join(f"{v:08x}" for v in (
            self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name_b), 0))
        self.ino += 1
        self.buf.write(hdr.encode() + name_b)
        self.buf.write(b"\0" * (-(110 + len(name_b)) % 4))
        self.buf.write(data)
        self.buf.write(b"\0" * (-len(data) % 4))

    def dir(self, name):
        self._entry(name, 0o040755)

    def file(self, name, data, mode=0o644):
        self._entry(name, 0o100000 | mode, data)

    def symlink(self, name, target):
        self._entry(name, 0o120777, target.encode())

    def chardev(self, name, major, minor):
        self._entry(name, 0o020600, rdev=(major, minor))

    def finish(self):
        self._entry("TRAILER!!!", 0)
        self.buf.write(b"\0" * (-self.buf.tell() % 512))
        return self.buf.getvalue()


def initramfs(k, out_dir):
    """Makes (or reuses, when nothing it holds changed) the initramfs for
    kernel k in out_dir; returns its path."""
    order = _module_order(k, BOOT_MODULES)
    conf = (f"export ODK_VM_KVER={shlex.quote(k.version)}\n"
            f"export ODK_VM_MODULES={shlex.quote(str(k.modules))}\n"
            f"export ODK_VM_STAGE2={shlex.quote(str(HERE / 'stage2'))}\n")
    busybox = Path("/bin/busybox").read_bytes()
    init = (HERE / "init").read_bytes()
    mods = [(Path(m).name, (k.modules / m).read_bytes()) for m in order]
    h = hashlib.sha256(conf.encode() + busybox + init)
    for n, data in mods:
        h.update(n.encode() + data)
    out = Path(out_dir) / f"initramfs-{h.hexdigest()[:16]}.cpio"
    if out.exists():
        return out
    c = _Cpio()
    for d in ("bin", "dev", "proc", "sys", "modules"):
        c.dir(d)
    c.chardev("dev/console", 5, 1)
    c.file("bin/busybox", busybox, 0o755)
    c.file("init", init, 0o755)
    c.file("odk.conf", conf.encode())
    for n, data in mods:
        c.file(f"modules/{n}", data)
    c.file("modules/order", "".join(n + "\n" for n, _ in mods).encode())
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    # Runs that start together (make vm-test's) may make the same file at
    # once: each writes its own and the last rename wins, same content.
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".initramfs-")
    with os.fdopen(fd, "wb") as f:
        f.write(c.finish())
    os.chmod(tmp, 0o644)
    os.replace(tmp, out)
    return out


# ------------------------------------------------------------------ boot

@dataclass
class Result:
    status: int | None         # the command's exit status; None if it gave none
    timed_out: bool            # killed at the deadline
    output: str                # the whole console
    seconds: float             # QEMU start to exit
    ready_seconds: float | None  # QEMU start to "guest ready" (stage 2 about to run the command)
    pytest_seconds: float | None = None  # QEMU start to pytest's session start, if it ran
    devices: list = field(default_factory=list)
    deadline: float = DEFAULT_DEADLINE

    @property
    def ok(self):
        return self.status == 0 and not self.timed_out

    def why(self):
        if self.timed_out:
            return f"killed at its deadline of {self.deadline:g} s"
        if self.status is None:
            return "the guest powered off without an exit status (panic or stage failure)"
        return f"the command exited with status {self.status}"


def qemu_command(k, initrd, rundir, devices=()):
    # One CPU by default: on a busy shared machine a second emulated CPU
    # costs more in contention than it gives ($ODK_VM_CPUS to change).
    cpus = int(os.environ.get("ODK_VM_CPUS", 1))
    memory_mb = int(os.environ.get("ODK_VM_MEMORY_MB", 1024))
    kvm = os.access("/dev/kvm", os.R_OK | os.W_OK)
    cmd = ["qemu-system-x86_64", "-machine", "q35", "-accel", "kvm" if kvm else "tcg,thread=multi",
           "-cpu", "host" if kvm else "qemu64", "-m", str(memory_mb), "-smp", str(cpus),
           "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
           "-serial", "stdio", "-monitor", "none",
           "-kernel", str(k.image), "-initrd", str(initrd),
           # no_timer_check: under software emulation on a loaded host the
           # kernel's check that the timer interrupt reaches the IO-APIC can
           # time out and panic the boot ("timer doesn't work through
           # Interrupt-remapped IO-APIC"); QEMU's timer is known to work.
           "-append", "console=ttyS0 panic=-1 loglevel=4 intel_iommu=on no_timer_check "
                      "rdinit=/init"]
    # The devices a test asks for come first: intel-iommu must precede
    # every PCI device it translates for.  "{rundir}" in them is this
    # boot's own folder (for a socket path no other boot shares).
    cmd += [a.replace("{rundir}", str(rundir)) for a in devices]
    cmd += ["-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
            "-virtfs", f"local,path={rundir},mount_tag=odkrun,security_model=none"]
    # QEMU's monitor (QMP), reachable from inside the guest: the host relays
    # between the monitor's socket and a virtio serial port named
    # org.odk.monitor (see Monitor), so a guest test can device_del and
    # device_add what it was booted with.
    cmd += ["-chardev", f"socket,id=odkqmp,path={rundir}/qmp.sock,server=on,wait=off",
            "-mon", "chardev=odkqmp,mode=control",
            "-device", "virtio-serial-pci,id=odkvs",
            "-chardev", f"socket,id=odkport,path={rundir}/port.sock,server=on,wait=off",
            "-device", f"virtserialport,bus=odkvs.0,chardev=odkport,name={MONITOR_PORT}"]
    return cmd


MONITOR_PORT = "org.odk.monitor"


class Monitor(threading.Thread):
    """Relays bytes between QEMU's QMP socket and the socket behind the
    guest's org.odk.monitor port, until either end closes."""

    def __init__(self, rundir, proc):
        super().__init__(daemon=True)
        self.rundir, self.proc = rundir, proc

    def _connect(self, name):
        while self.proc.poll() is None:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(str(self.rundir / name))
                return s
            except OSError:  # QEMU has not made it yet
                s.close()
                time.sleep(0.05)
        return None

    def run(self):
        a = self._connect("qmp.sock")
        b = a and self._connect("port.sock")
        try:
            peer = {a: b, b: a} if a and b else {}
            while peer:
                for s in select.select(list(peer), [], [])[0]:
                    data = s.recv(65536)
                    if not data:
                        return
                    peer[s].sendall(data)
        except OSError:  # QEMU went away
            return
        finally:
            for s in (a, b):
                if s:
                    s.close()


def boot(command=None, devices=(), deadline=DEFAULT_DEADLINE, env=None, cwd=ROOT,
         shell=False, out=sys.stdout, workdir=None):
    """Boots a guest that runs `command` (a list, run by /bin/sh in the
    guest, from cwd) with the QEMU `devices` arguments, streams its console
    to `out` line by line, and returns a Result.  The guest is killed at
    `deadline` seconds.  shell=True gives an interactive shell on the
    console instead (the caller's terminal)."""
    k = kernel()
    work = Path(workdir or os.environ.get("ODK_VM_WORK", cache_dir() / "work"))
    initrd = initramfs(k, work)
    rundir = Path(tempfile.mkdtemp(dir=work, prefix="run-"))
    try:
        lines = [f"export {n}={shlex.quote(v)}" for n, v in (env or {}).items()]
        lines.append(f"export ODK_VM_CWD={shlex.quote(str(cwd))}")
        if shell:
            lines.append("export ODK_VM_SHELL=1")
        (rundir / "env").write_text("\n".join(lines) + "\n")
        (rundir / "cmd.sh").write_text(shlex.join(command or ["true"]) + "\n")
        cmd = qemu_command(k, initrd, rundir, devices)
        if shell:
            cmd = [a if a != "stdio" else "mon:stdio" for a in cmd]
            start = time.monotonic()
            proc = subprocess.Popen(cmd)
            Monitor(rundir, proc).start()
            proc.wait()
            return Result(_status(rundir), False, "", time.monotonic() - start, None, list(devices))
        return _run(cmd, rundir, deadline, out, list(devices))
    finally:
        shutil.rmtree(rundir, ignore_errors=True)


def _status(rundir):
    try:
        return int((rundir / "status").read_text())
    except (OSError, ValueError):
        return None


def _run(cmd, rundir, deadline, out, devices):
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    Monitor(rundir, proc).start()
    captured = []
    ready, session = [], []

    def pump():
        for raw in proc.stdout:
            line = raw.decode(errors="replace").replace("\r", "")
            if not ready and line.startswith("odk-vm: guest ready"):
                ready.append(time.monotonic() - start)
            if not session and "test session starts" in line:
                session.append(time.monotonic() - start)
            captured.append(line)
            out.write(line)
            out.flush()
    t = threading.Thread(target=pump, daemon=True)
    t.start()
    timed_out = False
    try:
        proc.wait(timeout=deadline)
    except subprocess.TimeoutExpired:
        timed_out = True
        proc.kill()
        proc.wait()
    t.join(timeout=10)
    seconds = time.monotonic() - start
    output = "".join(captured)
    if proc.returncode not in (0, None) and not timed_out:
        output += f"\nodk-vm: qemu exited with status {proc.returncode}\n"
    return Result(None if timed_out else _status(rundir), timed_out, output, seconds,
                  ready[0] if ready else None, session[0] if session else None, devices, deadline)


# ------------------------------------------------------------ selection

def collect(pytest_args, python=sys.executable):
    """The tests pytest selects with pytest_args (collected on the host),
    as [(nodeid, devices)] where devices are the QEMU arguments of the
    test's vm marker (empty without one)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        env = dict(os.environ, ODK_VM_COLLECT=f.name,
                   PYTHONPATH=os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])))
        r = subprocess.run([python, "-m", "pytest", "--collect-only", "-q", "-p", "collect",
                            "-p", "no:cacheprovider", *pytest_args],
                           cwd=ROOT, env=env, capture_output=True, text=True)
        if r.returncode not in (0, 5):  # 5: nothing collected
            raise RuntimeError(f"collecting {' '.join(pytest_args)} failed:\n{r.stdout}{r.stderr}")
        data = json.loads(Path(f.name).read_text() or "[]")
    return [(d["nodeid"], tuple(d["devices"])) for d in data]


def groups(items):
    """One boot per distinct device set, in order of first appearance.
    Tests that ask for no devices join the first boot that has some."""
    sets = {}
    for nodeid, devices in items:
        sets.setdefault(devices, []).append(nodeid)
    if () in sets and len(sets) > 1:
        plain = sets.pop(())
        first = next(iter(sets))
        sets[first] = plain + sets[first]
    return list(sets.items())
