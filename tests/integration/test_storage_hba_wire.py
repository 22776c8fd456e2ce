# SPDX-License-Identifier: MIT
"""The simulated HBA's command ring, spoken to directly (hba_wire.h) as a
buggy or hostile controller driver could: scatter-gather lists that are
whole move the data in place, and malformed ones are refused with
HBA_BAD_COMMAND and a reason naming what is wrong, while the model keeps
serving.  No odkd: the test plays odkd on the model's fd 3."""
import os
import socket
import struct
import subprocess

import pytest

from conftest import BIN, CHILD_ENV

# struct hba_msg (native, x86-64): see src/buses/storage_sim/hba_wire.h.
MSG = struct.Struct("<IIQIBBBBQQQQIIII16s256s")
CTL = struct.Struct("<IIIIQQ")  # struct hba_ctl
HBA_CTL_ATTACH = 1
HBA_HELLO, HBA_SLOT, HBA_MAP, HBA_CMD, HBA_DONE = 1, 2, 3, 4, 5
HBA_OK, HBA_BAD_COMMAND = 0, 2
DIR_FROM, DIR_TO = 1, 2  # odk_scsi_dir: none 0, from the device 1, to the device 2
SG_MAX = 16
MAP_LEN = 64 << 10


def msg(type_, slot=0, tag=0, map_id=0, dir_=0, cdb=b"", offset=0, length=0, sg=()):
    body = b"".join(struct.pack("<QII", off, ln, mid) for off, ln, mid in sg)
    return MSG.pack(type_, slot, tag, map_id, dir_, len(cdb), 0, 0, offset, length, 0, 0, 0, 0,
                    len(sg), 0, cdb.ljust(16, b"\0"), body.ljust(256, b"\0"))


def rw16(op, lba, blocks):
    return bytes([op, 0]) + lba.to_bytes(8, "big") + blocks.to_bytes(4, "big") + b"\0\0"


READ16, WRITE16 = 0x88, 0x8A


class Link:
    def __init__(self, sock):
        self.sock = sock

    def command(self, tag, **kw):
        """Sends one HBA_CMD and returns its HBA_DONE as a dict."""
        self.sock.send(msg(HBA_CMD, tag=tag, **kw))
        data = self.sock.recv(MSG.size * 64)
        assert len(data) == MSG.size, len(data)
        f = MSG.unpack(data)
        assert f[0] == HBA_DONE and f[2] == tag
        sense_len = f[13]
        return {"service": f[7], "status": f[6], "transferred": f[10],
                "sense": f[17][:sense_len]}


@pytest.fixture
def hba(tmp_path):
    ctl, ctl_model = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    err = open(tmp_path / "model.err", "w+")
    proc = subprocess.Popen(
        [str(BIN / "odk-storage-model"), str(tmp_path), "2", "4", "512", "memory"],
        preexec_fn=lambda: os.dup2(ctl_model.fileno(), 3), pass_fds=(3,), stderr=err,
        env=CHILD_ENV)
    ctl_model.close()
    link, link_model = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    socket.send_fds(ctl, [CTL.pack(HBA_CTL_ATTACH, 0, 0, 0, 0, 0)], [link_model.fileno()])
    link_model.close()
    link.settimeout(10)
    hello = link.recv(MSG.size * 64)
    # HELLO and one SLOT a disk, in one message: also proves the layout.
    assert len(hello) == 3 * MSG.size
    assert MSG.unpack(hello[:MSG.size])[0] == HBA_HELLO
    mfd = os.memfd_create("hba-wire-test")
    os.ftruncate(mfd, MAP_LEN)
    socket.send_fds(link, [msg(HBA_MAP, map_id=0, length=MAP_LEN)], [mfd])
    mem = open(mfd, "r+b", buffering=0)
    yield Link(link), mem, proc, err
    link.close()
    ctl.close()
    proc.wait(timeout=10)
    mem.close()
    err.close()


def put(mem, off, data):
    mem.seek(off)
    mem.write(data)


def get(mem, off, n):
    mem.seek(off)
    return mem.read(n)


def test_a_scatter_gather_write_and_read_move_each_piece_in_place(hba):
    link, mem, proc, _ = hba
    a, b = os.urandom(512), os.urandom(1024)
    put(mem, 0, a)
    put(mem, 8192, b)
    # 3 blocks from two places, one command, one place on the disk.
    done = link.command(1, dir_=DIR_TO, cdb=rw16(WRITE16, 8, 3), length=1536,
                        sg=[(0, 512, 0), (8192, 1024, 0)])
    assert (done["service"], done["status"], done["transferred"]) == (HBA_OK, 0, 1536)
    # Read back into three other places, pieces of other sizes (512 + 512 + 512).
    done = link.command(2, dir_=DIR_FROM, cdb=rw16(READ16, 8, 3), length=1536,
                        sg=[(20480, 512, 0), (16384, 512, 0), (32768, 512, 0)])
    assert (done["service"], done["status"], done["transferred"]) == (HBA_OK, 0, 1536)
    assert get(mem, 20480, 512) + get(mem, 16384, 512) + get(mem, 32768, 512) == a + b
    # Pieces that are not whole blocks, and a CDB that is not a READ: the
    # HBA gathers and scatters them whole.
    done = link.command(3, dir_=DIR_FROM, cdb=rw16(READ16, 8, 2), length=1024,
                        sg=[(40960, 100, 0), (50000, 924, 0)])
    assert done["service"] == HBA_OK and done["transferred"] == 1024
    assert get(mem, 40960, 100) + get(mem, 50000, 924) == (a + b)[:1024]
    inquiry = bytes([0x12, 0, 0, 0, 96, 0])
    done = link.command(4, dir_=DIR_FROM, cdb=inquiry, length=96,
                        sg=[(60000, 10, 0), (61000, 86, 0)])
    assert done["service"] == HBA_OK and done["status"] == 0
    data = get(mem, 60000, 10) + get(mem, 61000, 86)
    assert data[8:16] == b"ODK     "
    assert proc.poll() is None


@pytest.mark.parametrize("case, words", [
    ({"sg": [(0, 512, 0), (512, 512, 5)], "length": 1024},
     b"entry 1 names map 5, which is not mapped"),
    ({"sg": [(MAP_LEN - 256, 512, 0)] * 2, "length": 1024},
     b"entry 0 (512 bytes at 65280) runs past the end of map 0"),
    ({"sg": [(0, 512, 0), (512, 0, 0)], "length": 512}, b"entry 1 is empty"),
    ({"sg": [(0, 512, 0), (512, 512, 0)], "length": 2048},
     b"add up to 1024 bytes, the command says 2048"),
    ({"sg": [(i * 512, 512, 0) for i in range(SG_MAX + 1)], "length": 512 * (SG_MAX + 1)},
     b"has 17 entries (at most 16)"),
    ({"map_id": 9, "offset": 0, "length": 512}, b"map 9, which is not mapped"),
])
def test_a_malformed_scatter_gather_list_is_refused_with_its_reason_and_the_model_goes_on(
        hba, case, words):
    link, mem, proc, err = hba
    put(mem, 0, b"\xab" * 1024)
    put(mem, 4096, b"\xff" * 256)
    put(mem, 12288, b"\xff" * 256)
    sg = case.get("sg", ())
    n_blocks = case["length"] // 512
    done = link.command(7, dir_=DIR_TO, cdb=rw16(WRITE16, 0, n_blocks), sg=sg,
                        map_id=case.get("map_id", 0), offset=case.get("offset", 0),
                        length=case["length"])
    assert done["service"] == HBA_BAD_COMMAND
    assert words in done["sense"], done["sense"]
    # Nothing was written, and the model still serves.
    done = link.command(8, dir_=DIR_FROM, cdb=rw16(READ16, 0, 1), length=512,
                        sg=[(4096, 256, 0), (12288, 256, 0)])
    assert (done["service"], done["status"]) == (HBA_OK, 0)
    assert get(mem, 4096, 256) + get(mem, 12288, 256) == b"\0" * 512
    assert proc.poll() is None
    err.seek(0)
    assert words.decode() in err.read()


def test_completions_of_one_doorbell_come_back_every_mib_moved_and_small_ones_together(hba):
    """The model answers the commands of one message together (one
    interrupt), except that each MiB the commands move sends what is done
    so far: the driver hears of a large transfer while the model copies
    the next, not after all of them."""
    link, _, proc, _ = hba
    big = 1 << 20
    mfd = os.memfd_create("hba-wire-test-big")
    os.ftruncate(mfd, big)
    socket.send_fds(link.sock, [msg(HBA_MAP, map_id=1, length=big)], [mfd])
    os.close(mfd)

    def doorbell(cmds):
        link.sock.send(b"".join(cmds))
        got = []
        while sum(len(m) for m in got) < len(cmds) * MSG.size:
            got.append(link.sock.recv(MSG.size * 64))
        tags = [[MSG.unpack(m[i:i + MSG.size])[2] for i in range(0, len(m), MSG.size)]
                for m in got]
        for m in got:
            for i in range(0, len(m), MSG.size):
                f = MSG.unpack(m[i:i + MSG.size])
                assert (f[0], f[7], f[6]) == (HBA_DONE, HBA_OK, 0), f[:12]
        return tags

    half = big // 2
    # Three 512 KiB WRITEs in one message: the first two make a MiB and
    # are answered at once, the third when the message is done.
    cmds = [msg(HBA_CMD, tag=10 + i, map_id=1, offset=(i % 2) * half, dir_=DIR_TO,
                cdb=rw16(WRITE16, i * (half // 512), half // 512), length=half)
            for i in range(3)]
    assert doorbell(cmds) == [[10, 11], [12]]
    # Small commands of one message still come back as one message.
    cmds = [msg(HBA_CMD, tag=20 + i, map_id=0, offset=i * 4096, dir_=DIR_FROM,
                cdb=rw16(READ16, i * 8, 8), length=4096) for i in range(3)]
    assert doorbell(cmds) == [[20, 21, 22]]
    assert proc.poll() is None
