# SPDX-License-Identifier: MIT
"""The storage family's peripheral role (story 13): scsi-inquiry matched to
the RAID volume's LUN node sends CDBs to it, through `odkctl scsi`.  The
library's checker refuses a malformed CDB naming its field before it leaves
the driver; a CDB sent past the checker reaches the volume, whose disk
emulation answers with sense that comes back in words."""
import json
import os
import signal

import pytest

from conftest import wait_until


def plug(odkd):
    return int(odkd.ctl("storage", "plug", 3,
                        json.dumps({"size_mb": 8, "properties": {"OdkRAIDLevel": 0}})).stdout)


def lun_of(odkd, hba, old=None):
    """The volume's LUN node (not old) once scsi-inquiry runs on it."""
    def find():
        tree = odkd.json("tree")
        raid = [i for i in odkd.instances() if i.get("provider") == hba and i["state"] == "running"]
        if not raid:
            return None
        luns = [n for n in tree if n["class"] == "OdkSCSILUN" and n.get("parent") == raid[0]["node"]
                and n["id"] != old]
        if not luns:
            return None
        inq = [i for i in odkd.instances()
               if i.get("provider") == luns[0]["id"] and i["state"] == "running"]
        return luns[0]["id"] if inq else None
    try:
        return wait_until(find, what="scsi-inquiry running on the volume's LUN")
    except AssertionError as e:
        raise AssertionError(f"{e}\n{odkd.ctl('list').stdout}\n{odkd.log_text()[-4000:]}") from None


@pytest.fixture
def lun(odkd):
    """An HBA with 3 disks as a RAID-0 volume; its LUN node once scsi-inquiry runs on it."""
    return lun_of(odkd, plug(odkd))


def scsi(odkd, lun, *args):
    return odkd.ctl("scsi", lun, *args, check=False)


def test_standard_inquiry_vpd_and_capacity_through_odkctl_scsi(odkd, lun):
    r = scsi(odkd, lun, "inquiry")
    assert r.returncode == 0, r.stdout + r.stderr
    print(r.stdout)
    assert "RAID-0" in r.stdout
    r = scsi(odkd, lun, "inquiry", "--vpd", "0x80")
    assert r.returncode == 0, r.stdout + r.stderr
    print(r.stdout)
    r = scsi(odkd, lun, "capacity")
    assert r.returncode == 0, r.stdout + r.stderr
    print(r.stdout)
    # 3 disks of 8 MiB, RAID-0 in 64 KiB chunks
    assert "25165824 bytes" in r.stdout
    r = scsi(odkd, lun, "sense")
    print(r.stdout, r.stderr)
    assert r.returncode == 0, r.stdout + r.stderr


def test_story_13_inquiry_with_a_reserved_bit_comes_back_with_decoded_sense(odkd, lun):
    # INQUIRY with byte 1 bit 7 (reserved) set, past the checker: the
    # volume's disk emulation answers CHECK CONDITION with a field pointer.
    r = scsi(odkd, lun, "raw", "--unchecked", "--in", "96", "12 80 00 00 60 00")
    print(r.stdout, r.stderr)
    assert r.returncode == 1
    assert "CHECK CONDITION" in r.stdout
    assert "ILLEGAL REQUEST: INVALID FIELD IN CDB, byte 1 bit 7" in r.stdout


def test_a_malformed_cdb_is_refused_by_the_checker_naming_the_field(odkd, lun):
    r = scsi(odkd, lun, "raw", "--in", "96", "12 80 00 00 60 00")
    print(r.stdout, r.stderr)
    assert r.returncode == 1
    assert "refused by the checker: INQUIRY: byte 1 bits 7-1 are reserved and set (0x80)" in r.stdout
    # a READ (10) twelve bytes long: its group takes 10
    r = scsi(odkd, lun, "raw", "--in", "512", "28 00 00 00 00 00 00 00 01 00 00 00")
    assert "refused by the checker: READ (10): opcode 0x28: the CDB is 12 bytes" in r.stdout
    # an allocation length that disagrees with the buffer
    r = scsi(odkd, lun, "raw", "--in", "16", "12 00 00 00 60 00")
    print(r.stdout)
    assert r.stdout.startswith("refused by the checker: INQUIRY: ")
    assert "ALLOCATION LENGTH" in r.stdout


def test_a_vendor_specific_cdb_reaches_the_disk(odkd, lun):
    # Group 6 (0xc0..0xdf) is vendor-specific: the checker lets it through
    # and the volume's emulation, which has no vendor commands, refuses it.
    r = scsi(odkd, lun, "raw", "c1 00 00 00 00 00 00 00 00 00")
    print(r.stdout, r.stderr)
    assert "refused" not in r.stdout
    assert "CHECK CONDITION" in r.stdout
    assert "ILLEGAL REQUEST: INVALID COMMAND OPERATION CODE" in r.stdout
    # and a standard data-out CDB with its data: WRITE (10) of one block, read back
    block = "a5" * 512
    r = scsi(odkd, lun, "raw", "--out", block, "2a 00 00 00 00 07 00 00 01 00")
    assert "status: GOOD" in r.stdout, r.stdout + r.stderr
    r = scsi(odkd, lun, "raw", "--in", "512", "28 00 00 00 00 07 00 00 01 00")
    assert "status: GOOD" in r.stdout, r.stdout + r.stderr
    assert r.stdout.count(" a5") == 512


def test_many_cdbs_with_data_reuse_the_peripherals_buffer(odkd, lun):
    # scsi-raid maps each memory descriptor into its HBA once, 64 at most:
    # the peripheral's buffer must stay one descriptor across CDBs.
    for i in range(70):
        r = scsi(odkd, lun, "raw", "--in", "512", f"28 00 00 00 00 {i:02x} 00 00 01 00")
        assert "status: GOOD" in r.stdout, f"read {i}: {r.stdout}{r.stderr}"


def test_a_crashed_controller_takes_the_lun_away_and_its_restart_serves_a_new_one(odkd):
    hba = plug(odkd)
    first = lun_of(odkd, hba)
    assert scsi(odkd, first, "inquiry").returncode == 0
    raid = next(i for i in odkd.instances() if i.get("provider") == hba)
    os.kill(raid["pid"], signal.SIGKILL)
    second = lun_of(odkd, hba, old=first)
    r = scsi(odkd, second, "inquiry")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "RAID-0" in r.stdout
    r = scsi(odkd, first, "inquiry")
    assert r.returncode == 1 and "no scsi-inquiry driver" in r.stderr
