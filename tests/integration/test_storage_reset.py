# SPDX-License-Identifier: MIT
"""The storage family's error paths when a controller driver stops
answering.  The simulated HBA's disk told to `swallow` takes commands and
answers none, but the HBA's ABORT TASK reaches it: scsi-raid passes the
family's abort on, the held command ends without touching the medium and
the client gets EIO at once.  A disk told to `hang` also fails task
management, so scsi-raid holds its tasks: the family fails the late task
itself after the task's timeout and the abort's deadline, escalates LUN
reset -> target reset -> bus reset while the driver still holds it, logs
each step and counts it on the LUN node; once the disk answers again the
LUN serves as before.

The HBA node's OdkSCSITaskTimeoutMS and OdkSCSIResetDeadlineMS shorten the
family's deadlines (30 s and 2 s by default) so the test is quick; nothing
here measures time: the order of odkd's log lines is the proof."""
import json

from conftest import wait_until
from test_storage import CMD_READ, EIO, Nbd, raid_state, socket_of
from test_storage_peripheral import lun_of

TIMEOUT_MS, RESET_MS = 1500, 400
STEPS = ["timed out after", "ABORT TASK", "was not completed in time; failing it",
         "LOGICAL UNIT RESET", "TARGET RESET", "BUS RESET", "no reset is left"]


def plug(odkd, level):
    props = {"OdkRAIDLevel": level, "OdkSCSITaskTimeoutMS": TIMEOUT_MS,
             "OdkSCSIResetDeadlineMS": RESET_MS}
    return int(odkd.ctl("storage", "plug", 3, json.dumps({"size_mb": 8,
                                                           "properties": props})).stdout)


def lun_node(odkd, lun):
    return next(n for n in odkd.json("tree") if n["id"] == lun)


def counters(odkd, lun):
    p = lun_node(odkd, lun)["properties"]
    return {k[len("OdkSCSI"):]: v for k, v in p.items()
            if k.startswith("OdkSCSI") and isinstance(v, int)
            and k not in ("OdkSCSITaskTimeoutMS", "OdkSCSIResetDeadlineMS")}


def in_order(text, lines):
    """Each of lines appears in text after the one before it."""
    at = 0
    for line in lines:
        i = text.find(line, at)
        if i < 0:
            return False
        at = i + len(line)
    return True


def read16(lba, blocks):
    return "88 00 " + " ".join(f"{b:02x}" for b in lba.to_bytes(8, "big")) + " " + \
        " ".join(f"{b:02x}" for b in blocks.to_bytes(4, "big")) + " 00 00"


def test_a_swallowed_nbd_read_fails_with_eio_escalates_to_bus_reset_and_the_lun_recovers(odkd):
    hba = plug(odkd, 0)
    lun = lun_of(odkd, hba)
    disk = next(n for n in odkd.json("tree")
                if n["class"] == "OdkBlockDisk" and n["properties"]["OdkLUNNode"] == lun)
    c = Nbd(socket_of(disk["properties"]["OdkNBDURI"]))
    data = bytes(range(256)) * 256
    assert c.write(0, data) == 0  # chunk 0 of the RAID-0 volume: disk 0

    odkd.ctl("storage", "fault", hba, 0, "hang")
    # A disk that never answers: the client gets EIO, not a hang.
    assert c.read(0, 65536)[0] == EIO
    wait_until(lambda: "no reset is left" in odkd.log_text(), what="the escalation to its end")
    log = odkd.log_text()
    assert in_order(log, STEPS), log[-6000:]
    # scsi-raid was asked for each step (its own lines, relayed by odkd).
    assert in_order(log, ["abort task asked", "LUN reset asked", "target reset asked",
                          "bus reset asked"]), log[-6000:]
    # ... and the HBA answered each that the hung disk did not take it.
    assert in_order(log, ["the HBA's ABORT TASK (slot 0) failed",
                          "the HBA's LOGICAL UNIT RESET (slot 0) failed",
                          "the HBA's BUS RESET (slot -1) failed"]), log[-6000:]
    wait_until(lambda: counters(odkd, lun).get("BusResets") == 1, what="the LUN node's counters")
    n = counters(odkd, lun)
    assert n["TaskTimeouts"] == n["TaskAborts"] == n["TasksFailed"] == 1, n
    assert n["LUNResets"] == n["TargetResets"] == n["BusResets"] == 1, n
    assert n["TasksAbandoned"] == 1, n

    # The disk answers again: the driver completes the abandoned task
    # (the family drops that late answer) and the LUN serves as before.
    odkd.ctl("storage", "fault", hba, 0, "clear")
    wait_until(lambda: counters(odkd, lun)["TasksAbandoned"] == 0,
               what="the abandoned task let go")
    assert "the driver let go of its abandoned tasks (after BUS RESET)" in odkd.log_text()
    assert c.read(0, 65536) == (0, data)
    assert c.write(65536 * 3, data) == 0 and c.read(65536 * 3, 65536) == (0, data)
    # The failed read's area of the shared arena stayed with the driver
    # while it held the task, and came back when it let go: the export
    # took the release, dropped no link.
    wait_until(lambda: in_order(odkd.log_text(), ["shared arena: ",
                                                  "stays with the driver until it lets go",
                                                  "is back from the driver"]),
               what="the export's area kept, then released")
    log = odkd.log_text()
    assert "detached" not in log and "bad reply" not in log, log[-6000:]
    c.close()


def test_a_peripheral_cdb_the_controller_never_completes_times_out_and_the_lun_works_after(odkd):
    hba = plug(odkd, 0)
    lun = lun_of(odkd, hba)
    odkd.ctl("storage", "fault", hba, 0, "hang")
    r = odkd.ctl("scsi", lun, "raw", "--timeout", "1000", "--in", "512", read16(0, 1), check=False)
    print(r.stdout, r.stderr)
    assert r.returncode == 1
    assert "TASK TIMED OUT" in r.stdout, r.stdout + r.stderr
    # The driver's log lines reach odkd's log on their own path: the
    # answer to odkctl may come first.
    wait_until(lambda: in_order(odkd.log_text(), ["timed out after 1000 ms", "ABORT TASK",
                                                  "was not completed in time; failing it"]),
               what="the timeout, the abort and the failure in the log")
    # Another LUN command while the first is still held by the driver: the
    # family took it off the driver's queue depth, the LUN still answers
    # what needs no disk (INQUIRY comes from scsi-raid's emulation).
    r = odkd.ctl("scsi", lun, "inquiry", check=False)
    assert r.returncode == 0 and "RAID-0" in r.stdout, r.stdout + r.stderr
    odkd.ctl("storage", "fault", hba, 0, "clear")
    wait_until(lambda: counters(odkd, lun)["TasksAbandoned"] == 0,
               what="the abandoned peripheral task let go")
    r = odkd.ctl("scsi", lun, "raw", "--timeout", "1000", "--in", "512", read16(0, 1), check=False)
    if "UNIT ATTENTION" in r.stdout:
        # The escalation reached a LUN reset before the disk came back:
        # the volume's LUN says so once, to this first command.
        assert "POWER ON, RESET, OR BUS DEVICE RESET OCCURRED" in r.stdout, r.stdout
        assert counters(odkd, lun)["LUNResets"] >= 1
        r = odkd.ctl("scsi", lun, "raw", "--timeout", "1000", "--in", "512", read16(0, 1),
                     check=False)
    assert r.returncode == 0 and "status: GOOD" in r.stdout, r.stdout + r.stderr
    n = counters(odkd, lun)
    assert n["TaskTimeouts"] == n["TaskAborts"] == n["TasksFailed"] == 1, n


def test_a_swallowed_write_is_aborted_in_the_hba_never_reaches_the_disk_and_the_lun_works(odkd):
    hba = plug(odkd, 0)
    lun = lun_of(odkd, hba)
    disk = next(n for n in odkd.json("tree")
                if n["class"] == "OdkBlockDisk" and n["properties"]["OdkLUNNode"] == lun)
    c = Nbd(socket_of(disk["properties"]["OdkNBDURI"]))
    old, new = bytes(range(256)) * 256, bytes([0xA5]) * 65536
    assert c.write(0, old) == 0  # chunk 0 of the RAID-0 volume: disk 0

    odkd.ctl("storage", "fault", hba, 0, "swallow")
    # The disk holds the write; at the task's timeout the family asks for
    # ABORT TASK, scsi-raid sends it to the HBA, the HBA ends the command,
    # and the task completes (EIO) before the abort's deadline: nothing is
    # abandoned, nothing escalates.
    assert c.write(0, new) == EIO
    wait_until(lambda: "ended 1 command(s)" in odkd.log_text(), what="the HBA's abort")
    log = odkd.log_text()
    assert in_order(log, ["timed out after", "ABORT TASK", "abort task asked",
                          "the HBA's ABORT TASK (slot 0) ended 1 command(s)"]), log[-6000:]
    assert "was not completed in time" not in log, log[-6000:]
    assert "LOGICAL UNIT RESET" not in log, log[-6000:]
    wait_until(lambda: counters(odkd, lun).get("TaskAborts") == 1, what="the LUN's counters")
    n = counters(odkd, lun)
    assert n["TaskTimeouts"] == n["TaskAborts"] == 1, n
    assert n["TasksFailed"] == n["TasksAbandoned"] == n["LUNResets"] == 0, n

    # The disk answers again.  The aborted write is not in its held
    # commands any more (without the abort, `clear` would run it late and
    # the new bytes would land): the old data is still there.
    odkd.ctl("storage", "fault", hba, 0, "clear")
    assert c.read(0, 65536) == (0, old)
    assert c.write(0, new) == 0 and c.read(0, 65536) == (0, new)
    assert "failed" not in str(raid_state(odkd, hba))
    c.close()


def test_a_disk_deaf_to_abort_task_is_freed_by_a_lun_reset_and_its_unit_attention_retried(odkd):
    """A disk told `no-abort` holds its commands and fails ABORT TASK, but
    a LUN reset ends them: the family's escalation stops at its first
    step.  The reset disks then report UNIT ATTENTION (29h/00h) to their
    next command, which scsi-raid sends again, and so does the volume's
    LUN, whose command the disk layer sends again: the client sees no
    error."""
    hba = plug(odkd, 0)
    lun = lun_of(odkd, hba)
    disk = next(n for n in odkd.json("tree")
                if n["class"] == "OdkBlockDisk" and n["properties"]["OdkLUNNode"] == lun)
    c = Nbd(socket_of(disk["properties"]["OdkNBDURI"]))
    data = bytes(range(256)) * 256
    assert c.write(0, data) == 0  # chunk 0 of the RAID-0 volume: disk 0

    odkd.ctl("storage", "fault", hba, 0, "no-abort")
    assert c.read(0, 65536)[0] == EIO
    wait_until(lambda: "let go of its abandoned tasks (after LOGICAL UNIT RESET)"
               in odkd.log_text(), what="the LUN reset to end the held command")
    log = odkd.log_text()
    assert in_order(log, ["timed out after", "ABORT TASK",
                          "the HBA's ABORT TASK (slot 0) failed",
                          "was not completed in time; failing it", "LOGICAL UNIT RESET",
                          "the HBA's LOGICAL UNIT RESET (slot 0) ended 1 command(s)",
                          "let go of its abandoned tasks (after LOGICAL UNIT RESET)"]), log[-6000:]
    wait_until(lambda: counters(odkd, lun)["TasksAbandoned"] == 0, what="the LUN node's counters")
    n = counters(odkd, lun)
    assert n["LUNResets"] == 1 and n["TargetResets"] == n["BusResets"] == 0, n
    assert n["TasksFailed"] == 1, n

    # The disk takes commands again; the first to each reset disk meets
    # the unit attention and goes again.
    odkd.ctl("storage", "fault", hba, 0, "clear")
    assert c.read(0, 65536) == (0, data)
    assert c.write(65536, data) == 0 and c.read(65536, 65536) == (0, data)  # disk 1
    # The host's log reaches odkd's file through its own pipe, maybe after
    # the reply reached the client.
    wait_until(lambda: "disk 1: UNIT ATTENTION" in odkd.log_text(), what="disk 1's log line")
    log = odkd.log_text()
    assert ("disk 0: UNIT ATTENTION: POWER ON, RESET, OR BUS DEVICE RESET OCCURRED; "
            "the command goes again") in log, log[-6000:]
    assert "disk 1: UNIT ATTENTION" in log, log[-6000:]
    # The volume's own LUN was reset too: its unit attention went to the
    # disk layer's next command, which went again.
    assert "UNIT ATTENTION from the LUN; the command goes again" in log, log[-6000:]
    assert "detached" not in log and "bad reply" not in log, log[-6000:]
    c.close()


def test_an_abort_drops_the_raid5_stripe_pieces_still_waiting_their_turn(odkd):
    """A RAID-5 write of four chunks is four stripe pieces run one at a
    time.  The first waits on a swallowing disk; ABORT TASK ends its
    command in the HBA and drops the three waiting behind it, so none of
    them reaches a disk (the fourth would land on the swallowing disk again
    and keep the task past the abort's deadline)."""
    hba = plug(odkd, 5)
    lun = lun_of(odkd, hba)
    disk = next(n for n in odkd.json("tree")
                if n["class"] == "OdkBlockDisk" and n["properties"]["OdkLUNNode"] == lun)
    c = Nbd(socket_of(disk["properties"]["OdkNBDURI"]))
    old, new = bytes(range(256)) * 1024, bytes([0x5A]) * (256 << 10)
    assert c.write(0, old) == 0  # chunks 0-3: disks 0, 1 (row 0), 2, 0 (row 1)

    odkd.ctl("storage", "fault", hba, 0, "swallow")
    assert c.write(0, new) == EIO
    wait_until(lambda: "ended 1 command(s)" in odkd.log_text(), what="the HBA's abort")
    log = odkd.log_text()
    assert in_order(log, ["timed out after", "ABORT TASK",
                          "abort task: 3 stripe piece(s) waiting in the FIFO dropped",
                          "the HBA's ABORT TASK (slot 0) ended 1 command(s)"]), log[-6000:]
    assert "was not completed in time" not in log, log[-6000:]
    wait_until(lambda: counters(odkd, lun).get("TaskAborts") == 1, what="the LUN's counters")
    n = counters(odkd, lun)
    assert n["TasksFailed"] == n["TasksAbandoned"] == n["LUNResets"] == 0, n

    odkd.ctl("storage", "fault", hba, 0, "clear")
    assert c.read(0, 256 << 10) == (0, old)  # no piece of the aborted write landed
    assert c.write(0, new) == 0 and c.read(0, 256 << 10) == (0, new)
    assert raid_state(odkd, hba) == "optimal"
    c.close()
