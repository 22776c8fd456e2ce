# SPDX-License-Identifier: MIT
"""The storage family end to end: the simulated HBA with its disks, the
scsi-raid sample presenting them as one volume, and the volume's NBD export
used by real clients (nbdinfo, nbdcopy, fio, nbdfuse + losetup + mkfs.ext4)
and by a small NBD client here for what they cannot do (garbage, a client
that never reads, a driver killed under in-flight requests).

ODK_STORAGE_COPY_MB sets the size of the nbdcopy round trip (small by
default; `make storage-big` runs it with 1024)."""
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import time

import pytest

import conftest
from conftest import pid_alive, wait_until

COPY_MB = int(os.environ.get("ODK_STORAGE_COPY_MB", "24"))
NEEDS = ["nbdinfo", "nbdcopy"]
pytestmark = pytest.mark.skipif(any(shutil.which(t) is None for t in NEEDS),
                                reason="libnbd-bin is not installed (make deps)")

NBD_MAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
REQ_MAGIC = 0x25609513
SIMPLE_MAGIC = 0x67446698
CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH = 0, 1, 2, 3
EIO, EINVAL, ENOSPC = 5, 22, 28


def plug(odkd, disks, size_mb=16, level=5):
    r = odkd.ctl("storage", "plug", disks,
                 json.dumps({"size_mb": size_mb, "properties": {"OdkRAIDLevel": level}}))
    return int(r.stdout.strip())


def nodes(odkd):
    return odkd.json("tree")


def disk_node(odkd, hba):
    """The volume's OdkBlockDisk node, once scsi-raid published it."""
    def find():
        inst = [i for i in odkd.instances() if i.get("provider") == hba and i["state"] == "running"]
        if not inst:
            return None
        svc = inst[0]["node"]
        d = [n for n in nodes(odkd) if n["class"] == "OdkBlockDisk" and n.get("parent") == svc]
        return d[0] if d else None
    return wait_until(find, what="the RAID volume's disk node")


def raid_state(odkd, hba):
    """The RAID driver's OdkRAIDState, or None while it has no service node
    (between a crash and the restart the instance names a node that is
    already gone)."""
    inst = [i for i in odkd.instances() if i.get("provider") == hba]
    svc = next((n for n in nodes(odkd) if inst and n["id"] == inst[0]["node"]), None)
    return svc["properties"].get("OdkRAIDState") if svc else None


def wait_state(odkd, hba, state):
    wait_until(lambda: raid_state(odkd, hba) == state, what=f"volume {state}")


def raid_pid(odkd, hba):
    return next(i["pid"] for i in odkd.instances() if i.get("provider") == hba)


def nbdinfo_size(uri):
    return int(subprocess.run(["nbdinfo", "--size", uri], check=True, capture_output=True,
                              text=True, timeout=60).stdout)


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def random_file(path, mb, seed):
    """Deterministic incompressible-enough data without reading /dev/urandom."""
    block = hashlib.sha256(str(seed).encode()).digest() * (1 << 15)  # 1 MiB
    with open(path, "wb") as f:
        for i in range(mb):
            f.write(bytes([i & 0xFF]) + block[1:])


def copy_in(src, uri):
    subprocess.run(["nbdcopy", str(src), uri], check=True, timeout=300)


def read_back(uri, dst, mb):
    subprocess.run(["nbdcopy", uri, str(dst)], check=True, timeout=300)
    with open(dst, "r+b") as f:
        f.truncate(mb << 20)


class Nbd:
    """A minimal NBD client (fixed newstyle, NBD_OPT_GO, simple replies)."""

    def __init__(self, path, name=""):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.settimeout(30)
        self.s.connect(path)
        magic, opt, _flags = struct.unpack(">QQH", self.recv(18))
        assert (magic, opt) == (NBD_MAGIC, IHAVEOPT)
        self.s.sendall(struct.pack(">I", 3))  # FIXED_NEWSTYLE | NO_ZEROES
        data = struct.pack(">I", len(name)) + name.encode() + struct.pack(">H", 0)
        self.s.sendall(struct.pack(">QII", IHAVEOPT, 7, len(data)) + data)
        while True:
            _m, _o, rtype, length = struct.unpack(">QIII", self.recv(20))
            body = self.recv(length)
            if rtype == 3 and struct.unpack(">H", body[:2])[0] == 0:
                self.size = struct.unpack(">Q", body[2:10])[0]
            if rtype == 1:
                break
            assert rtype == 3, hex(rtype)
        self.cookie = 0

    def recv(self, n):
        b = b""
        while len(b) < n:
            c = self.s.recv(n - len(b))
            if not c:
                raise ConnectionError("server closed the connection")
            b += c
        return b

    def send(self, cmd, offset=0, length=0, data=b"", flags=0):
        self.cookie += 1
        self.s.sendall(struct.pack(">IHHQQI", REQ_MAGIC, flags, cmd, self.cookie, offset,
                                   length) + data)
        return self.cookie

    def reply(self, length=0):
        magic, err, cookie = struct.unpack(">IIQ", self.recv(16))
        assert magic == SIMPLE_MAGIC
        return err, cookie, (self.recv(length) if not err and length else b"")

    def read(self, offset, length):
        self.send(CMD_READ, offset, length)
        err, _, data = self.reply(length)
        return err, data

    def write(self, offset, data):
        self.send(CMD_WRITE, offset, len(data), data)
        return self.reply()[0]

    def close(self):
        self.s.close()


def socket_of(uri):
    return uri.split("socket=", 1)[1]


@pytest.fixture
def raid5(odkd):
    hba = plug(odkd, 8)
    disk = disk_node(odkd, hba)
    return odkd, hba, disk


def test_eight_disks_become_one_raid5_disk_node_that_nbdinfo_reads(raid5):
    odkd, hba, disk = raid5
    p = disk["properties"]
    # 8 disks of 16 MiB, 64 KiB chunks: 7 data disks' worth.
    assert p["Size"] == 7 * 16 << 20
    assert p["Block Size"] == 512
    assert p["Vendor"] == "ODK" and p["Product"] == "RAID-5 VOLUME"
    assert p["Serial Number"].startswith("ODKRAID")
    assert p["OdkNBDURI"].startswith("nbd+unix:///raid5-hba")
    assert nbdinfo_size(p["OdkNBDURI"]) == p["Size"]
    lun = next(n for n in nodes(odkd) if n["id"] == p["OdkLUNNode"])
    assert lun["class"] == "OdkSCSILUN"
    assert lun["properties"]["Peripheral Device Type"] == 0
    assert lun["properties"]["Product Identification"] == "RAID-5 VOLUME"
    assert raid_state(odkd, hba) == "optimal"
    assert "raid5-hba" in odkd.ctl("storage").stdout
    assert p["OdkNBDURI"] in odkd.ctl("tree").stdout


def test_nbdcopy_writes_and_reads_back_the_same_sha256(odkd, tmp_path):
    mb = COPY_MB
    # Enough disks for COPY_MB: 8 disks of mb/7 + 1 MiB each.
    hba = plug(odkd, 8, size_mb=max(16, mb // 7 + 2))
    uri = disk_node(odkd, hba)["properties"]["OdkNBDURI"]
    src, dst = tmp_path / "in", tmp_path / "out"
    random_file(src, mb, seed=1)
    copy_in(src, uri)
    read_back(uri, dst, mb)
    assert sha(dst) == sha(src)


def test_raid0_round_trip_and_a_second_connection_sees_the_data(odkd, tmp_path):
    hba = plug(odkd, 4, level=0)
    disk = disk_node(odkd, hba)
    assert disk["properties"]["Size"] == 4 * 16 << 20
    uri = disk["properties"]["OdkNBDURI"]
    src, dst = tmp_path / "in", tmp_path / "out"
    random_file(src, 8, seed=2)
    copy_in(src, uri)
    read_back(uri, dst, 8)
    assert sha(dst) == sha(src)
    a, b = Nbd(socket_of(uri)), Nbd(socket_of(uri))
    assert a.write(1 << 20, b"\xab" * 4096) == 0
    assert b.read(1 << 20, 4096) == (0, b"\xab" * 4096)


def test_requests_sent_with_a_writes_payload_in_one_go_keep_their_data(odkd):
    """After a WRITE, the export takes the next request's header, as many
    bytes as that WRITE's payload straight into a free area, and what
    follows into its buffer, in one recvmsg: a WRITE of the same length,
    a longer or a shorter one, a READ, and requests sent together must all
    keep their data and order."""
    hba = plug(odkd, 4, level=0)
    c = Nbd(socket_of(disk_node(odkd, hba)["properties"]["OdkNBDURI"]))
    disk = bytearray(2 << 20)  # what the first 2 MiB must hold

    def run(*reqs):
        """Sends reqs ((CMD_WRITE, offset, data) or (CMD_READ, offset,
        length)) in one sendall and checks every reply."""
        blob = b""
        for cookie, (cmd, off, arg) in enumerate(reqs, start=1):
            data = arg if cmd == CMD_WRITE else b""
            length = len(arg) if cmd == CMD_WRITE else arg
            blob += struct.pack(">IHHQQI", REQ_MAGIC, 0, cmd, cookie, off, length) + data
        c.s.sendall(blob)
        for _ in reqs:  # replies in any order; no two requests here overlap
            magic, err, cookie = struct.unpack(">IIQ", c.recv(16))
            assert magic == SIMPLE_MAGIC and err == 0, (hex(magic), err, cookie)
            cmd, off, arg = reqs[cookie - 1]
            if cmd == CMD_READ:
                assert c.recv(arg) == bytes(disk[off:off + arg]), (cookie, off)
        for cmd, off, arg in reqs:
            if cmd == CMD_WRITE:
                disk[off:off + len(arg)] = arg

    def fill(n, seed):
        return bytes((seed * 7 + k // 512) & 0xFF for k in range(n))

    run((CMD_WRITE, 0, fill(64 << 10, 1)))
    run((CMD_WRITE, 64 << 10, fill(64 << 10, 2)))  # the same length as guessed
    run((CMD_WRITE, 128 << 10, fill(128 << 10, 3)))  # longer
    run((CMD_READ, 0, 256 << 10))  # a READ after a WRITE
    run((CMD_WRITE, 416 << 10, fill(64 << 10, 17)))
    # shorter, with the requests after it in the area too
    run((CMD_WRITE, 400 << 10, fill(4096, 15)), (CMD_READ, 0, 8192),
        (CMD_WRITE, 404 << 10, fill(4096, 16)))
    run((CMD_WRITE, 256 << 10, fill(4096, 4)))
    run((CMD_WRITE, 300 << 10, fill(4096, 5)), (CMD_READ, 64 << 10, 8192))
    run((CMD_WRITE, 320 << 10, fill(4096, 6)), (CMD_WRITE, 336 << 10, fill(8192, 7)),
        (CMD_WRITE, 352 << 10, fill(4096, 8)), (CMD_READ, 0, 4096))
    run((CMD_WRITE, 1 << 20, fill(1 << 20, 9)), (CMD_WRITE, 512 << 10, fill(64 << 10, 10)),
        (CMD_READ, 128 << 10, 128 << 10), (CMD_WRITE, 640 << 10, fill(64 << 10, 11)))
    for seed in range(12, 15):  # the same again: the export sees them in any split
        run((CMD_WRITE, 768 << 10, fill(128 << 10, seed)), (CMD_READ, 1 << 20, 64 << 10),
            (CMD_WRITE, 896 << 10, fill(4096, seed)), (CMD_READ, 300 << 10, 4096))
    assert c.read(0, 2 << 20) == (0, bytes(disk))


def test_a_failed_disk_is_served_degraded_and_rebuilt_onto_its_replacement(raid5, tmp_path):
    odkd, hba, disk = raid5
    uri = disk["properties"]["OdkNBDURI"]
    src, dst = tmp_path / "in", tmp_path / "out"
    random_file(src, 16, seed=3)
    copy_in(src, uri)
    odkd.ctl("storage", "fault", hba, 3, "remove")
    wait_state(odkd, hba, "degraded")
    read_back(uri, dst, 16)
    assert sha(dst) == sha(src)
    # Writes while degraded keep parity right.
    c = Nbd(socket_of(uri))
    assert c.write(5 << 20, b"\x5a" * 65536) == 0
    with open(src, "r+b") as f:
        f.seek(5 << 20)
        f.write(b"\x5a" * 65536)
    odkd.ctl("storage", "fault", hba, 3, "insert")
    wait_state(odkd, hba, "optimal")
    # The rebuilt disk carries its share: lose another one and read again.
    odkd.ctl("storage", "fault", hba, 6, "remove")
    wait_state(odkd, hba, "degraded")
    read_back(uri, dst, 16)
    assert sha(dst) == sha(src)


def test_a_medium_error_on_a_read_is_reconstructed_from_the_other_disks(raid5, tmp_path):
    odkd, hba, disk = raid5
    uri = disk["properties"]["OdkNBDURI"]
    c = Nbd(socket_of(uri))
    assert c.write(0, b"\x11" * (1 << 20)) == 0
    # Disk 1 holds the volume's first chunk (parity is on disk 7 in row 0).
    odkd.ctl("storage", "fault", hba, 1, "medium-error", 0, 128)
    assert c.read(0, 1 << 20) == (0, b"\x11" * (1 << 20))
    wait_state(odkd, hba, "degraded")


def test_bad_nbd_input_ends_that_connection_and_others_go_on(raid5):
    odkd, hba, disk = raid5
    path = socket_of(disk["properties"]["OdkNBDURI"])
    good = Nbd(path)
    assert good.write(0, b"\x42" * 512) == 0
    # Past the end: an error reply, the connection stays.
    assert good.read(good.size, 512)[0] == EINVAL
    assert good.write(good.size - 512, b"x" * 1024) == ENOSPC
    # Unaligned: the disk layer refuses it.
    assert good.read(100, 512)[0] == EINVAL
    # Garbage magic: the connection ends.
    bad = Nbd(path)
    bad.s.sendall(b"\xde\xad\xbe\xef" * 7)
    with pytest.raises((ConnectionError, OSError)):
        bad.reply()
    # A truncated request, then hang-up.
    cut = Nbd(path)
    cut.s.sendall(struct.pack(">IHH", REQ_MAGIC, 0, CMD_WRITE))
    cut.close()
    # A write larger than the maximum block size: the connection ends.
    big = Nbd(path)
    big.s.sendall(struct.pack(">IHHQQI", REQ_MAGIC, 0, CMD_WRITE, 1, 0, 64 << 20))
    with pytest.raises((ConnectionError, OSError)):
        big.reply()
    # Garbage in the handshake.
    raw = socket.socket(socket.AF_UNIX)
    raw.settimeout(30)
    raw.connect(path)
    raw.recv(18)
    raw.sendall(b"\x00\x00\x00\x03" + b"\xff" * 64)
    assert raw.recv(4096) == b""
    assert good.read(0, 512) == (0, b"\x42" * 512)
    assert nbdinfo_size(disk["properties"]["OdkNBDURI"]) == good.size


def test_a_client_that_never_reads_its_replies_is_disconnected(tmp_path, monkeypatch):
    monkeypatch.setitem(conftest.CHILD_ENV, "ODK_NBD_STALL_MS", "1000")
    odkd = conftest.Odkd(tmp_path)
    try:
        hba = plug(odkd, 3, level=0)
        path = socket_of(disk_node(odkd, hba)["properties"]["OdkNBDURI"])
        good = Nbd(path)
        lazy = Nbd(path)
        lazy.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        # 1 MiB reads, never read back: the replies pile up.
        for _ in range(96):
            lazy.send(CMD_READ, 0, 1 << 20)
        def closed():
            try:
                lazy.s.setblocking(False)
                while True:
                    b = lazy.s.recv(1 << 20)
                    if not b:
                        return True
            except BlockingIOError:
                return False
            except OSError:
                return True
        # It is dropped only after it stopped reading; read nothing until
        # the server had time to give up, then drain.
        wait_until(lambda: "stopped reading its replies" in odkd.log_text(),
                   what="the export to give up on the client")
        assert wait_until(closed, what="the lazy connection to end")
        assert good.read(0, 4096)[0] == 0
    finally:
        odkd.stop()


def test_an_hba_with_its_disks_in_memory_serves_like_one_with_files(odkd, tmp_path):
    r = odkd.ctl("storage", "plug", 2, json.dumps({"backing": "tape"}), check=False)
    assert r.returncode != 0 and "'backing' is \"file\"" in r.stderr + r.stdout
    hba = int(odkd.ctl("storage", "plug", 3, json.dumps(
        {"size_mb": 8, "backing": "memory", "properties": {"OdkRAIDLevel": 0}})).stdout)
    disk = disk_node(odkd, hba)
    uri = disk["properties"]["OdkNBDURI"]
    src, dst = tmp_path / "in", tmp_path / "out"
    random_file(src, 8, seed=5)
    copy_in(src, uri)
    read_back(uri, dst, 8)
    assert sha(dst) == sha(src)
    hba_node = next(n for n in nodes(odkd) if n["id"] == hba)
    assert hba_node["properties"]["OdkStorageBacking"] == "memory"
    # No disk files: the disks are memfds of the model.
    assert not list((odkd.state / "storage").glob("hba-*/disk-*.img"))


def test_writes_cut_off_in_their_payload_give_their_areas_back(tmp_path, monkeypatch):
    """A large WRITE's payload goes from the socket straight into an area of
    the driver's arena; a client that hangs up or stops in the middle must
    not keep that area (the driver has 64)."""
    monkeypatch.setitem(conftest.CHILD_ENV, "ODK_NBD_STALL_MS", "1000")
    # Requests that wait for an area fail after 5 s, not 30.
    monkeypatch.setitem(conftest.CHILD_ENV, "ODK_NBD_DEADLINE_MS", "5000")
    odkd = conftest.Odkd(tmp_path)
    try:
        hba = plug(odkd, 3, level=0)
        path = socket_of(disk_node(odkd, hba)["properties"]["OdkNBDURI"])
        good = Nbd(path)
        for _ in range(80):  # more than the areas
            cut = Nbd(path)
            cut.send(CMD_WRITE, 0, 1 << 20, b"\x11" * (512 << 10))
            cut.close()
        stuck = Nbd(path)
        stuck.send(CMD_WRITE, 0, 1 << 20, b"\x22" * (512 << 10))
        wait_until(lambda: "stopped in the middle of a WRITE's payload" in odkd.log_text(),
                   what="the export to give up on the stuck client")
        assert stuck.s.recv(16) == b""
        data = bytes(range(256)) * 4096  # 1 MiB
        mib = good.size >> 20
        cookies = [good.send(CMD_WRITE, (i % mib) << 20, 1 << 20, data) for i in range(64)]
        replies = [good.reply() for _ in cookies]
        assert all(err == 0 for err, _, _ in replies), [err for err, _, _ in replies]
        assert good.read((mib - 1) << 20, 1 << 20) == (0, data)
    finally:
        odkd.stop()


def test_a_write_whose_payload_is_coming_when_the_driver_dies_waits_for_the_next(raid5):
    """The payload's first half lands in the dead driver's arena: the export
    keeps it, takes the rest, and the restarted driver writes it all."""
    odkd, hba, disk = raid5
    c = Nbd(socket_of(disk["properties"]["OdkNBDURI"]))
    data = bytes(range(256)) * 4096  # 1 MiB
    c.send(CMD_WRITE, 4 << 20, len(data), data[:512 << 10])
    assert Nbd(socket_of(disk["properties"]["OdkNBDURI"])).read(0, 512)[0] == 0
    time.sleep(0.3)  # the export takes the first half (the test still passes if not yet)
    pid = raid_pid(odkd, hba)
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: "driver detached" in odkd.log_text(), what="the export to see the crash")
    c.s.sendall(data[512 << 10:])
    assert c.reply()[0] == 0
    wait_state(odkd, hba, "optimal")
    assert c.read(4 << 20, len(data)) == (0, data)


def test_kill_9_fails_in_flight_requests_and_flushed_writes_survive(raid5):
    odkd, hba, disk = raid5
    path = socket_of(disk["properties"]["OdkNBDURI"])
    c = Nbd(path)
    # Acknowledged and flushed before the crash: must survive.
    flushed = {}
    for i in range(64):
        data = bytes([i]) * 65536
        assert c.write(i * 65536, data) == 0
        flushed[i] = data
    c.send(CMD_FLUSH)
    assert c.reply()[0] == 0
    # Many requests in flight, then the driver dies.
    pid = raid_pid(odkd, hba)
    sent = [c.send(CMD_WRITE, (64 + i) * 65536, 65536, b"\xee" * 65536) for i in range(200)]
    os.kill(pid, signal.SIGKILL)
    start = time.monotonic()
    answered = 0
    errors = 0
    while answered < len(sent):
        err, _cookie, _ = c.reply()
        answered += 1
        errors += err != 0
    assert time.monotonic() - start < 30, "in-flight requests must fail within the deadline"
    wait_until(lambda: raid_pid(odkd, hba) not in (pid, 0, None) and
               raid_state(odkd, hba) == "optimal", what="the restarted driver")
    # The same connection works again with the restarted driver.
    wait_until(lambda: c.read(0, 65536) == (0, flushed[0]), what="reads after the restart")
    for i, data in flushed.items():
        assert c.read(i * 65536, 65536) == (0, data), f"flushed block {i} lost"
    assert "driver detached (the driver closed its end)" in odkd.log_text()


def test_unplugging_the_hba_ends_the_export_and_tells_the_client(raid5):
    odkd, hba, disk = raid5
    path = socket_of(disk["properties"]["OdkNBDURI"])
    c = Nbd(path)
    assert c.read(0, 512)[0] == 0
    odkd.ctl("storage", "unplug", hba)
    wait_until(lambda: not os.path.exists(path), what="the export's socket to go")
    with pytest.raises((ConnectionError, OSError)):
        c.read(0, 512)
    assert not [n for n in nodes(odkd) if n["class"] in ("OdkStorageHBA", "OdkBlockDisk")]


@pytest.mark.skipif(shutil.which("fio") is None, reason="fio is not installed")
def test_fio_random_writes_with_fsync_through_the_nbd_engine(raid5, tmp_path):
    _, _, disk = raid5
    uri = disk["properties"]["OdkNBDURI"]
    r = subprocess.run(["fio", "--name=w", "--ioengine=nbd", f"--uri={uri}", "--rw=randwrite",
                        "--bs=4k", "--size=8M", "--fsync=16", "--iodepth=8", "--verify=crc32c",
                        "--output-format=json"], capture_output=True, text=True, timeout=300,
                       cwd=tmp_path)  # fio leaves its verify state in its directory
    assert r.returncode == 0, r.stderr
    job = json.loads(r.stdout[r.stdout.index("{"):])["jobs"][0]
    assert job["error"] == 0 and job["write"]["io_bytes"] == 8 << 20


def test_ext4_on_nbdfuse_and_a_loop_device_keeps_its_files_across_remount(raid5, tmp_path):
    """The volume as a real block device: nbdfuse exposes it as a file,
    losetup makes /dev/loopN of it, mkfs.ext4 and mount use it."""
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse") or shutil.which("nbdfuse") is None \
            or shutil.which("fusermount3") is None:
        pytest.skip("needs root, /dev/fuse, nbdfuse and fusermount3")
    odkd, _, disk = raid5
    uri = disk["properties"]["OdkNBDURI"]
    fuse_dir, mnt = tmp_path / "fuse", tmp_path / "mnt"
    fuse_dir.mkdir()
    mnt.mkdir()
    fuse = subprocess.Popen(["nbdfuse", str(fuse_dir / "nbd"), uri])
    loop = None
    try:
        wait_until(lambda: (fuse_dir / "nbd").exists(), what="nbdfuse's file")
        loop = subprocess.run(["losetup", "-f", "--show", str(fuse_dir / "nbd")], check=True,
                              capture_output=True, text=True, timeout=60).stdout.strip()
        subprocess.run(["mkfs.ext4", "-q", "-F", loop], check=True, timeout=120)
        subprocess.run(["mount", loop, str(mnt)], check=True, timeout=60)
        files = {f"f{i}": hashlib.sha256(str(i).encode()).digest() * (1000 * (i + 1))
                 for i in range(8)}
        for name, data in files.items():
            (mnt / name).write_bytes(data)
        subprocess.run(["sync"], check=True, timeout=60)
        subprocess.run(["umount", str(mnt)], check=True, timeout=60)
        subprocess.run(["mount", loop, str(mnt)], check=True, timeout=60)
        for name, data in files.items():
            assert (mnt / name).read_bytes() == data
        subprocess.run(["umount", str(mnt)], check=True, timeout=60)
        r = subprocess.run(["e2fsck", "-fn", loop], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True, timeout=60)
        if loop:
            subprocess.run(["losetup", "-d", loop], capture_output=True, timeout=60)
        subprocess.run(["fusermount3", "-u", str(fuse_dir)], capture_output=True,
                       timeout=60)
        fuse.wait(timeout=60)


@pytest.mark.skipif(shutil.which("fio") is None, reason="fio is not installed")
def test_kill_9_under_fio_random_writes_ends_fio_with_errors_not_a_hang(raid5):
    odkd, hba, disk = raid5
    uri = disk["properties"]["OdkNBDURI"]
    images = list((odkd.state / "storage").glob("hba-*/disk-*.img"))
    assert images

    def allocated():
        return sum(os.stat(p).st_blocks for p in images) * 512

    before = allocated()
    # fio stops at its first write error; the run time (counted from its
    # first I/O) only has to keep it writing until the kill.
    fio = subprocess.Popen(["fio", "--name=w", "--ioengine=nbd", f"--uri={uri}",
                            "--rw=randwrite", "--bs=4k", "--size=64M", "--fsync=8",
                            "--iodepth=16", "--time_based", "--runtime=12"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # Kill only once fio's writes reach the disks: a fixed sleep let a
        # slow-starting fio (a loaded machine) connect after the kill, and
        # the restarted driver then served every write (no error to see).
        # With 16 writes in flight through RAID-5's FIFO some are always
        # outstanding while fio writes.
        wait_until(lambda: allocated() >= before + (1 << 20) or fio.poll() is not None,
                   what="fio's writes on the disks")
        assert fio.poll() is None, fio.communicate()[0]
        os.kill(raid_pid(odkd, hba), signal.SIGKILL)
        # The requests in flight fail with EIO at once (the export says
        # how many); fio stops at its first error or goes on against the
        # restarted driver until its run time is up: no hang (the timeout
        # is the hang guard).
        out, _ = fio.communicate(timeout=60)
        m = wait_until(lambda: re.search(r"failing the (\d+) requests it held",
                                         odkd.log_text()), what="the export's failing line")
        assert int(m.group(1)) > 0, odkd.log_text()[-8000:]
        # fio reports the EIO of a write; it ignores that of a flush (its
        # nbd engine's sync commands, fio 3.33), and --fsync=8 drains the
        # writes before each flush: a kill during a flush shows no error
        # in fio's output (seen: 16 FLUSHes failed, fio err=0).  What it
        # does report must be EIO.
        if "io_u error" in out:
            assert "Input/output error" in out, out
        assert "err= 0" in out or "Input/output error" in out, out
        wait_state(odkd, hba, "optimal")
    finally:
        if fio.poll() is None:
            fio.kill()
            fio.wait()


def test_trim_and_write_zeroes_work_and_zeroes_read_back(raid5):
    _, _, disk = raid5
    c = Nbd(socket_of(disk["properties"]["OdkNBDURI"]))
    assert c.write(0, b"\x77" * (1 << 20)) == 0
    c.send(6, 4096, 64 << 20)  # WRITE_ZEROES, larger than a read may be
    assert c.reply()[0] == 0
    assert c.read(0, 8192) == (0, b"\x77" * 4096 + b"\0" * 4096)
    assert c.read(60 << 20, 4096) == (0, b"\0" * 4096)
    c.send(4, 0, c.size)  # TRIM the whole volume
    assert c.reply()[0] == 0


def test_raid0_passes_a_disks_not_ready_to_the_client_as_eio_until_cleared(odkd):
    hba = plug(odkd, 2, level=0)
    c = Nbd(socket_of(disk_node(odkd, hba)["properties"]["OdkNBDURI"]))
    assert c.write(0, b"\x33" * 131072) == 0
    odkd.ctl("storage", "fault", hba, 0, "not-ready")
    # The first chunk is on disk 0, the second on disk 1.
    assert c.read(0, 4096)[0] == EIO
    assert c.read(65536, 4096) == (0, b"\x33" * 4096)
    odkd.ctl("storage", "fault", hba, 0, "clear")
    assert c.read(0, 4096) == (0, b"\x33" * 4096)
    r = odkd.ctl("storage", "fault", hba, 99, "remove", check=False)
    assert r.returncode != 0 and "slot" in r.stderr


def plug_props(odkd, disks, props, size_mb=16):
    r = odkd.ctl("storage", "plug", disks, json.dumps({"size_mb": size_mb, "properties": props}))
    return int(r.stdout.strip())


def test_the_volume_also_serves_on_a_loopback_tcp_port_across_a_driver_restart(odkd, tmp_path):
    """OdkNBDTCPPort on the HBA (0: any free port): scsi-raid asks for a
    loopback TCP listener (odk_storage_lun_export_tcp); the disk node names
    it, real clients use it, and it outlives a crash of the driver."""
    hba = plug_props(odkd, 4, {"OdkRAIDLevel": 0, "OdkNBDTCPPort": 0})
    p = disk_node(odkd, hba)["properties"]
    port = p["OdkNBDTCPPort"]
    assert 1024 <= port <= 65535
    uri = p["OdkNBDTCPURI"]
    assert uri == f"nbd://127.0.0.1:{port}/{p['OdkNBDExportName']}"
    assert nbdinfo_size(uri) == p["Size"]
    assert uri in odkd.ctl("storage").stdout
    # Written over TCP, read back over the Unix socket.
    src, dst = tmp_path / "in", tmp_path / "out"
    random_file(src, 4, seed=7)
    copy_in(src, uri)
    read_back(p["OdkNBDURI"], dst, 4)
    with open(dst, "rb") as f:
        assert hashlib.sha256(f.read(4 << 20)).hexdigest() == sha(src)
    # A client connected over TCP stays connected across the driver's crash.
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    assert struct.unpack(">QQH", s.recv(18, socket.MSG_WAITALL))[:2] == (NBD_MAGIC, IHAVEOPT)
    os.kill(raid_pid(odkd, hba), signal.SIGKILL)
    wait_state(odkd, hba, "optimal")
    p2 = disk_node(odkd, hba)["properties"]
    assert (p2["OdkNBDTCPPort"], p2["OdkNBDTCPURI"]) == (port, uri)
    assert nbdinfo_size(uri) == p["Size"]
    s.close()


def test_a_taken_tcp_port_is_named_and_the_volume_serves_on_its_unix_socket(odkd):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        hba = plug_props(odkd, 4, {"OdkRAIDLevel": 0, "OdkNBDTCPPort": port})
        p = disk_node(odkd, hba)["properties"]
        assert "OdkNBDTCPURI" not in p and "OdkNBDTCPPort" not in p
        assert nbdinfo_size(p["OdkNBDURI"]) == p["Size"]
        log = odkd.ctl("log", "org.odk.scsi-raid").stdout
        assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in log
        assert f"OdkNBDTCPPort {port}: no TCP listener" in log
    finally:
        taken.close()


def test_a_driver_not_entitled_to_block_tcp_gets_no_tcp_listener(odkd, tmp_path):
    """A TCP listener any local user reaches is a resource of its own
    ("block-tcp" in entitlements.resources): scsi-raid signed without it
    serves its volume on the Unix socket only, and its log says why."""
    bundle = tmp_path / "scsi-raid"
    shutil.copytree(conftest.DRIVERS / "scsi-raid", bundle, symlinks=True)
    manifest = json.loads((bundle / "odk.json").read_text())
    manifest["entitlements"]["resources"] = ["block"]
    (bundle / "odk.json").write_text(json.dumps(manifest))
    conftest.sign_bundle(bundle)
    assert odkd.ctl("install", bundle).stdout.strip() == "installed"
    hba = plug_props(odkd, 4, {"OdkRAIDLevel": 0, "OdkNBDTCPPort": 0})
    p = disk_node(odkd, hba)["properties"]
    assert nbdinfo_size(p["OdkNBDURI"]) == p["Size"]
    assert "OdkNBDTCPURI" not in p
    log = odkd.ctl("log", "org.odk.scsi-raid").stdout
    assert "not entitled to create a block-tcp resource" in log
