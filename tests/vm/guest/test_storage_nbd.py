# SPDX-License-Identifier: MIT
"""The storage family's export through the kernel's NBD client, in the
guest: scsi-raid's RAID-5 volume on the simulated HBA, attached with
nbd-client to /dev/nbd0 (over the export's Unix socket), formatted with
mkfs.ext4 and mounted.  The driver is killed with SIGKILL while files are
being written and fdatasync'ed; after the restart the mount is still
read-write and usable, and every file whose fdatasync succeeded reads
back intact after an unmount, a detach and a fresh attach.

The files are written before the kill (zeros, fsync'ed) and overwritten
in place during it: an overwrite of allocated blocks, flushed with
fdatasync on a lazytime mount, needs no journal commit, so the EIO that
in-flight requests get when the driver dies reaches only the writes that
were in flight (their fdatasync fails) and never ext4's journal (whose
failure would make the file system read-only, as on any disk)."""
import hashlib
import importlib.util
import json
import os
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from guest_util import read, wait_until

_spec = importlib.util.spec_from_file_location(
    "odk_integration_conftest", Path(__file__).resolve().parents[2] / "integration" / "conftest.py")
_host = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_host)
Odkd, pid_alive = _host.Odkd, _host.pid_alive

pytestmark = pytest.mark.vm

NBD = "/dev/nbd0"
FILES = 96           # files written once each while the driver is killed
FILE_BYTES = 64 << 10


def run(*cmd, timeout=120):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}{r.stderr}"
    return r.stdout


def volume(odkd, hba):
    def find():
        inst = [i for i in odkd.instances() if i.get("provider") == hba and i["state"] == "running"]
        if not inst:
            return None
        disks = [n for n in odkd.json("tree")
                 if n["class"] == "OdkBlockDisk" and n.get("parent") == inst[0]["node"]]
        return (inst[0], disks[0]) if disks else None
    return wait_until(find, "scsi-raid's volume")


def raid_state(odkd, hba):
    inst = [i for i in odkd.instances() if i.get("provider") == hba]
    svc = [n for n in odkd.json("tree") if inst and n["id"] == inst[0]["node"]]
    return svc[0]["properties"].get("OdkRAIDState") if svc else None


def attach(sock, name):
    run("nbd-client", "-unix", sock, NBD, "-name", name, "-block-size", "4096", "-timeout", "60")
    wait_until(lambda: read("/sys/block/nbd0/size") not in (None, "0"), "/dev/nbd0's size")


def detach():
    subprocess.run(["nbd-client", "-d", NBD], capture_output=True, timeout=60)
    wait_until(lambda: read("/sys/block/nbd0/size") in ("0", None), "/dev/nbd0 detached")


def content(i):
    return hashlib.sha256(f"file {i}".encode()).digest() * (FILE_BYTES // 32)


@pytest.fixture
def nbd_module():
    run("modprobe", "nbd")
    assert Path(NBD).is_block_device()


def test_ext4_on_kernel_nbd_survives_kill_9_of_the_driver_during_fsync_writes(nbd_module,
                                                                            tmp_path):
    odkd = Odkd(tmp_path)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    mounted = attached = False
    try:
        r = odkd.ctl("storage", "plug", 4, json.dumps({"size_mb": 16,
                                                       "properties": {"OdkRAIDLevel": 5}}))
        hba = int(r.stdout.strip())
        inst, disk = volume(odkd, hba)
        props = disk["properties"]
        attach(props["OdkNBDSocket"], props["OdkNBDExportName"])
        attached = True
        # The kernel's NBD driver holds the connection (nbd-client set it
        # up over netlink and left): the block device is the volume's size.
        assert int(read("/sys/block/nbd0/size")) * 512 == props["Size"] == 3 * 16 << 20
        assert subprocess.run(["nbd-client", "-c", NBD], capture_output=True).returncode == 0
        run("mkfs.ext4", "-q", "-F", "-b", "4096", NBD, timeout=300)
        run("mount", "-o", "lazytime,noatime", NBD, str(mnt))
        mounted = True
        for i in range(FILES):
            with open(mnt / f"f{i}", "wb") as f:
                f.write(bytes(FILE_BYTES))
                f.flush()
                os.fsync(f.fileno())
        run("sync")

        acked, failed = [], []
        killed = threading.Event()
        before_kill = []

        def writer():
            for i in range(FILES):
                if i == FILES // 3:
                    before_kill.append(len(acked))
                    killed.wait(timeout=120)
                fd = os.open(mnt / f"f{i}", os.O_WRONLY)
                try:
                    os.pwrite(fd, content(i), 0)
                    os.fdatasync(fd)
                    acked.append(i)
                except OSError:
                    failed.append(i)
                finally:
                    os.close(fd)
        t = threading.Thread(target=writer)
        t.start()
        wait_until(lambda: before_kill, "the first third of the files written")
        # Writes in flight (the writer goes on as soon as the kill is sent).
        killed.set()
        os.kill(inst["pid"], signal.SIGKILL)
        t.join(timeout=300)
        assert not t.is_alive(), "a write hung after the driver was killed"
        wait_until(lambda: (raid_state(odkd, hba) == "optimal"
                            and volume(odkd, hba)[0]["pid"] != inst["pid"]),
                   "scsi-raid restarted")
        assert before_kill[0] == FILES // 3 and acked, (acked, failed)

        # The mount stays read-write and usable after the restart.
        opts = next(l.split()[3] for l in Path("/proc/mounts").read_text().splitlines()
                    if l.split()[1] == str(mnt))
        assert opts.split(",")[0] == "rw", opts
        after = mnt / "after-restart"
        with open(after, "wb") as f:
            f.write(content(-1))
            f.flush()
            os.fsync(f.fileno())
        for i in failed:  # a write that failed can be done again
            with open(mnt / f"f{i}", "r+b") as f:
                f.write(content(i))
                f.flush()
                os.fsync(f.fileno())
        run("umount", str(mnt))
        mounted = False
        detach()
        attached = False

        # Read back from the disks through a fresh attach: no page cache.
        attach(props["OdkNBDSocket"], props["OdkNBDExportName"])
        attached = True
        r = subprocess.run(["e2fsck", "-fn", NBD], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        run("mount", "-o", "ro", NBD, str(mnt))
        mounted = True
        for i in range(FILES):
            assert (mnt / f"f{i}").read_bytes() == content(i), f"file f{i} (fdatasync'ed) lost"
        assert after.read_bytes() == content(-1)
        print(f"{len(acked)} writes acknowledged, {len(failed)} failed by the kill")
    except BaseException:
        print(odkd.log_text()[-6000:])
        raise
    finally:
        if mounted:
            subprocess.run(["umount", str(mnt)], capture_output=True, timeout=60)
        if attached:
            detach()
        odkd.stop()
