/* SPDX-License-Identifier: MIT */
/* Unit tests for the SBC-3 disk emulation: each command, each error, over
 * a sparse file and over a caller's backend. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "odk/scsi.h"
#include "odk/status.h"

#define BS 512u
#define BLOCKS 2048u /* 1 MiB */

typedef struct fixture {
    char path[64];
    int fd;
    odk_scsi_disk *disk;
    odk_scsi_result res;
    uint8_t in[65536];
} fixture;

static int setup_config(void **state, const odk_scsi_disk_config *cfg)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->path, sizeof f->path, "/tmp/odk-scsi-disk-XXXXXX");
    f->fd = mkstemp(f->path);
    if (f->fd < 0)
        return -1;
    unlink(f->path);
    if (odk_scsi_disk_create_file(cfg, f->fd, &f->disk) != ODK_OK)
        return -1;
    *state = f;
    return 0;
}

static int setup(void **state)
{
    odk_scsi_disk_config cfg = {.block_size = BS,
                                .block_count = BLOCKS,
                                .vendor = "ACME",
                                .product = "TEST DISK",
                                .serial = "SER0001",
                                .write_cache = true};
    return setup_config(state, &cfg);
}

static int setup_power_on(void **state)
{
    odk_scsi_disk_config cfg = {.block_size = BS, .block_count = BLOCKS, .power_on_reset = true};
    return setup_config(state, &cfg);
}

static int teardown(void **state)
{
    fixture *f = *state;
    odk_scsi_disk_free(f->disk);
    close(f->fd);
    free(f);
    return 0;
}

/* Runs a built CDB; data-in goes to f->in (in_len bytes). */
static uint8_t run(fixture *f, const odk_scsi_cdb *c, const void *out, size_t out_len,
                   size_t in_len)
{
    assert_int_equal(odk_scsi_disk_execute(f->disk, c->bytes, c->length, out, out_len,
                                           in_len ? f->in : NULL, in_len, &f->res),
                     ODK_OK);
    return f->res.status;
}

static uint8_t run_raw(fixture *f, const uint8_t *cdb, size_t len, size_t in_len)
{
    assert_int_equal(
        odk_scsi_disk_execute(f->disk, cdb, len, NULL, 0, in_len ? f->in : NULL, in_len, &f->res),
        ODK_OK);
    return f->res.status;
}

/* The one-line description of the result's sense. */
static const char *sense(fixture *f)
{
    static char line[256];
    odk_scsi_sense s;
    assert_int_equal(f->res.status, ODK_SCSI_STATUS_CHECK_CONDITION);
    assert_int_equal(odk_scsi_sense_parse(f->res.sense, f->res.sense_len, &s), ODK_OK);
    odk_scsi_sense_describe(&s, line, sizeof line);
    return line;
}

/* ---- identity ------------------------------------------------------------ */

static void test_inquiry(void **state)
{
    fixture *f = *state;
    odk_scsi_cdb c;
    odk_scsi_build_inquiry(&c, false, 0, 96);
    assert_int_equal(run(f, &c, NULL, 0, 96), ODK_SCSI_STATUS_GOOD);
    assert_int_equal(f->res.transferred, 74);
    assert_int_equal(f->res.residual, 96 - 74);
    assert_int_equal(f->res.sense_len, 0);
    odk_scsi_inquiry_data d;
    assert_int_equal(odk_scsi_inquiry_parse(f->in, f->res.transferred, &d), ODK_OK);
    assert_string_equal(d.vendor, "ACME");
    assert_string_equal(d.product, "TEST DISK");
    assert_string_equal(d.revision, "0001");
    assert_int_equal(d.device_type, 0);
    assert_true(d.cmdque);
    /* Cut by the allocation length, and by a smaller buffer. */
    odk_scsi_build_inquiry(&c, false, 0, 5);
    run(f, &c, NULL, 0, 96);
    assert_int_equal(f->res.transferred, 5);
    assert_false(f->res.overflow);
    odk_scsi_build_inquiry(&c, false, 0, 96);
    run(f, &c, NULL, 0, 36);
    assert_int_equal(f->res.transferred, 36);
    assert_int_equal(f->res.residual, 0);
    assert_true(f->res.overflow);
}

static void test_vpd(void **state)
{
    fixture *f = *state;
    odk_scsi_cdb c;
    odk_scsi_build_inquiry(&c, true, 0x00, 255);
    assert_int_equal(run(f, &c, NULL, 0, 255), ODK_SCSI_STATUS_GOOD);
    const uint8_t pages[] = {0, 0, 0, 6, 0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2};
    assert_int_equal(f->res.transferred, sizeof pages);
    assert_memory_equal(f->in, pages, sizeof pages);

    odk_scsi_build_inquiry(&c, true, 0x80, 255);
    run(f, &c, NULL, 0, 255);
    char serial[40];
    assert_int_equal(odk_scsi_vpd_serial_parse(f->in, f->res.transferred, serial, sizeof serial),
                     ODK_OK);
    assert_string_equal(serial, "SER0001");
    assert_string_equal(odk_scsi_disk_serial(f->disk), "SER0001");

    odk_scsi_build_inquiry(&c, true, 0x83, 255);
    run(f, &c, NULL, 0, 255);
    assert_int_equal(f->in[1], 0x83);
    assert_int_equal(f->in[4 + 1], 0x03);   /* NAA first */
    assert_int_equal(f->in[4 + 4] >> 4, 3); /* locally assigned */
    char text[1024];
    assert_int_equal(odk_scsi_format_inquiry(f->in, f->res.transferred, true, text, sizeof text),
                     ODK_OK);
    assert_non_null(strstr(text, "T10 vendor ID, logical unit: ACME    TEST DISK       SER0001"));

    odk_scsi_build_inquiry(&c, true, 0xb0, 64);
    run(f, &c, NULL, 0, 64);
    odk_scsi_block_limits bl;
    assert_int_equal(odk_scsi_vpd_block_limits_parse(f->in, f->res.transferred, &bl), ODK_OK);
    assert_int_equal(bl.maximum_transfer_length, 65536);
    assert_true(bl.maximum_unmap_lba_count > 0);

    odk_scsi_build_inquiry(&c, true, 0xb1, 64);
    run(f, &c, NULL, 0, 64);
    assert_int_equal(f->in[5], 1); /* non-rotating */

    odk_scsi_build_inquiry(&c, true, 0xb2, 64);
    run(f, &c, NULL, 0, 64);
    assert_int_equal(f->in[6] & 7, 2); /* thin provisioned */

    odk_scsi_build_inquiry(&c, true, 0x89, 64);
    run(f, &c, NULL, 0, 64);
    assert_string_equal(sense(f), "ILLEGAL REQUEST: INVALID FIELD IN CDB, byte 2");
    assert_int_equal(f->res.transferred, 0);
    assert_int_equal(f->res.residual, 64);
}

/* Story 13: an INQUIRY with a reserved bit set comes back with sense that
 * says which bit. */
static void test_malformed_cdb(void **state)
{
    fixture *f = *state;
    const uint8_t inq[6] = {0x12, 0x80, 0, 0, 96, 0};
    run_raw(f, inq, sizeof inq, 96);
    assert_string_equal(sense(f), "ILLEGAL REQUEST: INVALID FIELD IN CDB, byte 1 bit 7");
    const uint8_t unknown[10] = {0x4d};
    run_raw(f, unknown, sizeof unknown, 0);
    assert_string_equal(sense(f), "ILLEGAL REQUEST: INVALID COMMAND OPERATION CODE");
    const uint8_t vendor[6] = {0xc0};
    run_raw(f, vendor, sizeof vendor, 0);
    assert_string_equal(sense(f), "ILLEGAL REQUEST: INVALID COMMAND OPERATION CODE");
    const uint8_t wrong_len[6] = {0x28};
    run_raw(f, wrong_len, sizeof wrong_len, 0);
    assert_string_equal(sense(f), "ILLEGAL REQUEST: INVALID FIELD IN CDB, byte 0");
    const uint8_t naca[6] = {0, 0, 0, 0, 0, 0x04};
    run_raw(f, naca, sizeof naca, 0);
    assert_string_equal(sense(f), "ILLEGAL REQUEST: INVALID FIELD IN CDB, byte 5 bit 2");
    const uint8_t rdprotect[10] = {0x28, 0x20, 0, 0, 0, 0, 0, 0, 1, 0};
    run_raw(f, rdprotect, sizeof rdprotect, 512);
    assert_string_equal(sense(f), "ILLEGAL REQUEST: INVALID FIELD IN CDB, byte 1 bit 7");
    run_raw(f, inq, 0, 0);
    assert_string_equal(sense(f), "ILLEGAL REQUEST: INVALID COMMAND OPERATION CODE");
    assert_int_equal(odk_scsi_disk_execute(f->disk, NULL, 6, NULL, 0, NULL, 0, &f->res),
                     ODK_E_INVALID);
}

/* ---- readiness and sense ------------------------------------------------- */

static void test_ready(void **state)
{
    fixture *f = *state;
    odk_scsi_cdb c;
    odk_scsi_build_test_unit_ready(&c);
    assert_int_equal(run(f, &c, NULL, 0, 0), ODK_SCSI_STATUS_GOOD);
    odk_scsi_disk_set_not_ready(f->disk, true);
    run(f, &c, NULL, 0, 0);
    assert_string_equal(sense(f),
                        "NOT READY: LOGICAL UNIT NOT READY, MANUAL INTERVENTION REQUIRED");
    /* INQUIRY still answers; REQUEST SENSE reports the state with GOOD. */
    odk_scsi_cdb inq;
    odk_scsi_build_inquiry(&inq, false, 0, 36);
    assert_int_equal(run(f, &inq, NULL, 0, 36), ODK_SCSI_STATUS_GOOD);
    odk_scsi_cdb rs;
    odk_scsi_build_request_sense(&rs, false, 252);
    assert_int_equal(run(f, &rs, NULL, 0, 252), ODK_SCSI_STATUS_GOOD);
    odk_scsi_sense s;
    assert_int_equal(odk_scsi_sense_parse(f->in, f->res.transferred, &s), ODK_OK);
    assert_int_equal(s.key, ODK_SCSI_SENSE_NOT_READY);
    odk_scsi_disk_set_not_ready(f->disk, false);
    assert_int_equal(run(f, &c, NULL, 0, 0), ODK_SCSI_STATUS_GOOD);

    /* START STOP UNIT: stopped, the medium is not ready until started. */
    odk_scsi_cdb ssu;
    odk_scsi_build_start_stop_unit(&ssu, false, 0, false, false);
    assert_int_equal(run(f, &ssu, NULL, 0, 0), ODK_SCSI_STATUS_GOOD);
    run(f, &c, NULL, 0, 0);
    assert_string_equal(sense(f),
                        "NOT READY: LOGICAL UNIT NOT READY, INITIALIZING COMMAND REQUIRED");
    odk_scsi_build_start_stop_unit(&ssu, true, 0, false, true);
    assert_int_equal(run(f, &ssu, NULL, 0, 0), ODK_SCSI_STATUS_GOOD);
    assert_int_equal(run(f, &c, NULL, 0, 0), ODK_SCSI_STATUS_GOOD);

    /* REQUEST SENSE with nothing pending: NO SENSE, in either format. */
    odk_scsi_build_request_sense(&rs, true, 252);
    assert_int_equal(run(f, &rs, NULL, 0, 252), ODK_SCSI_STATUS_GOOD);
    assert_int_equal(f->in[0], 0x72);
    assert_int_equal(f->res.transferred, 8);
}

static void test_unit_attention(void **state)
{
    fixture *f = *state;
    odk_scsi_cdb c, inq;
    odk_scsi_build_inquiry(&inq, false, 0, 36);
    odk_scsi_build_test_unit_ready(&c);
    /* INQUIRY does not clear it; the next other command reports it once. */
    assert_int_equal(run(f, &inq, NULL, 0, 36), ODK_SCSI_STATUS_GOOD);
    run(f, &c, NULL, 0, 0);
    assert_string_equal(sense(f), "UNIT ATTENTION: POWER ON OCCURRED");
    assert_int_equal(run(f, &c, NULL, 0, 0), ODK_SCSI_STATUS_GOOD);
    /* Queued in order; REQUEST SENSE returns and clears one. */
    odk_scsi_disk_post_unit_attention(f->disk, 0x2a, 0x09);
    odk_scsi_disk_post_unit_attention(f->disk, 0x3f, 0x0e);
    odk_scsi_cdb rs;
    odk_scsi_build_request_sense(&rs, false, 18);
    assert_int_equal(run(f, &rs, NULL, 0, 18), ODK_SCSI_STATUS_GOOD);
    assert_int_equal(f->in[12], 0x2a);
    run(f, &c, NULL, 0, 0);
    assert_string_equal(sense(f), "UNIT ATTENTION: REPORTED LUNS DATA HAS CHANGED");
    /* Overflow of the queue is reported with the next one. */
    for (int i = 0; i < 6; i++)
        odk_scsi_disk_post_unit_attention(f->disk, 0x29, 0x00);
    run(f, &c, NULL, 0, 0);
    assert_string_equal(sense(f), "UNIT ATTENTION: POWER ON, RESET, OR BUS DEVICE RESET OCCURRED, "
                                  "unit attention queue overflowed");
}

/* ---- capacity and LUNs --------------------------------------------------- */

static void test_capacity(void **state)
{
    fixture *f = *state;
    odk_scsi_cdb c;
    odk_scsi_capacity cap;
    odk_scsi_build_read_capacity_10(&c);
    assert_int_equal(run(f, &c, NULL, 0, 8), ODK_SCSI_STATUS_GOOD);
    assert_int_equal(odk_scsi_capacity10_parse(f->in, f->res.transferred, &cap), ODK_OK);
    assert_int_equal(cap.block_count, BLOCKS);
    assert_int_equal(cap.block_size, BS);
    odk_scsi_build_read_capacity_16(&c, 32);
    assert_int_equal(run(f, &c, NULL, 0, 32), ODK_SCSI_STATUS_GOOD);
    assert_int_equal(odk_scsi_capacity16_parse(f->in, f->res.transferred, &cap), ODK_OK);
    assert_int_equal(cap.last_lba, BLOCKS - 1);
    assert_true(cap.lbpme && cap.lbprz);
    assert_int_equal(odk_scsi_disk_block_count(f->disk), BLOCKS);
    assert_int_equal(odk_scsi_disk_block_size(f->disk), BS);
}

static void test_report_luns(void **state)
{
    fixture *f = *state;
    odk_scsi_cdb c;
    odk_scsi_build_report_luns(&c, 0, 64);
    assert_int_equal(run(f, &c, NULL, 0, 64), ODK_SCSI_STATUS_GOOD);
    uint64_t luns[4];
    size_t n = 0, total = 0;
    assert_int_equal(odk_scsi_report_luns_parse(f->in, f->res.transferred, luns, 4, &n, &total),
                     ODK_OK);
    assert_int_equal(n, 1);
    assert_int_equal(odk_scsi_lun_number(luns[0]), 0);
    odk_scsi_build_report_luns(&c, 1, 64);
    run(f, &c, NULL, 0, 64);
    assert_int_equal(odk_scsi_report_luns_parse(f->in, f->res.transferred, luns, 4, &n, &total),
                     ODK_OK);
    assert_int_equal(total, 0);
}

/* ---- reads and writes ---------------------------------------------------- */

static void fill(uint8_t *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 9));
}

static void test_read_write(void **state)
{
    fixture *f = *state;
    odk_scsi_cdb c;
    uint8_t data[8 * BS];
    fill(data, sizeof data, 1);
    odk_scsi_build_write_10(&c, 100, 8, 0);
    assert_int_equal(run(f, &c, data, sizeof data, 0), ODK_SCSI_STATUS_GOOD);
    assert_int_equal(f->res.transferred, sizeof data);
    assert_int_equal(f->res.residual, 0);
    odk_scsi_build_read_16(&c, 100, 8, ODK_SCSI_RW_FUA);
    assert_int_equal(run(f, &c, NULL, 0, sizeof data), ODK_SCSI_STATUS_GOOD);
    assert_memory_equal(f->in, data, sizeof data);
    /* The file holds the blocks where SBC puts them. */
    uint8_t back[BS];
    assert_int_equal(pread(f->fd, back, BS, 101 * BS), BS);
    assert_memory_equal(back, data + BS, BS);
    /* FUA writes, and the last block. */
    odk_scsi_build_write_16(&c, BLOCKS - 1, 1, ODK_SCSI_RW_FUA);
    assert_int_equal(run(f, &c, data, BS, 0), ODK_SCSI_STATUS_GOOD);
    /* A zero-length transfer is GOOD. */
    odk_scsi_build_read_10(&c, 5, 0, 0);
    assert_int_equal(run(f, &c, NULL, 0, 0), ODK_SCSI_STATUS_GOOD);
    /* Never-written blocks read as zeroes. */
    odk_scsi_build_read_10(&c, 1000, 1, 0);
    run(f, &c, NULL, 0, BS);
    uint8_t zero[BS] = {0};
    assert_memory_equal(f->in, zero, BS);
}

static void test_read_write_errors(void **state)
{
    fixture *f = *state;
    odk_scsi_cdb c;
    uint8_t data[2 * BS] = {1};
    odk_scsi_build_read_10(&c, BLOCKS - 1, 2, 0);
    run(f, &c, NULL, 0, sizeof data);
    assert_string_equal(sense(f),
                        "ILLEGAL REQUEST: LOGICAL BLOCK ADDRESS OUT OF RANGE, information 0x7ff");
    assert_int_equal(f->res.transferred, 0);
    odk_scsi_build_write_16(&c, UINT64_MAX, 1, 0);
    run(f, &c, data, BS, 0);
    assert_non_null(strstr(sense(f), "LOGICAL BLOCK ADDRESS OUT OF RANGE"));
    odk_scsi_build_read_10(&c, BLOCKS, 0, 0);
    run(f, &c, NULL, 0, 0);
    assert_non_null(strstr(sense(f), "LOGICAL BLOCK ADDRESS OUT OF RANGE"));
    /* More than the Block Limits page allows. */
    odk_scsi_build_read_16(&c, 0, 65537, 0);
    run(f, &c, NULL, 0, 0);
    assert_string_equal(sense(f), "ILLEGAL REQUEST: INVALID FIELD IN CDB, byte 10");
    /* Less data-out than the CDB announces. */
    odk_scsi_build_write_10(&c, 0, 2, 0);
    run(f, &c, data, BS, 0);
    assert_string_equal(sense(f), "ABORTED COMMAND: DATA PHASE ERROR");
    /* A data-in buffer smaller than the transfer: what fits, and overflow. */
    odk_scsi_build_read_10(&c, 0, 4, 0);
    assert_int_equal(run(f, &c, NULL, 0, 2 * BS), ODK_SCSI_STATUS_GOOD);
    assert_int_equal(f->res.transferred, 2 * BS);
    assert_true(f->res.overflow);
}

static void test_medium_error(void **state)
{
    fixture *f = *state;
    odk_scsi_cdb c;
    uint8_t data[8 * BS];
    fill(data, sizeof data, 2);
    odk_scsi_build_write_10(&c, 10, 8, 0);
    assert_int_equal(run(f, &c, data, sizeof data, 0), ODK_SCSI_STATUS_GOOD);
    odk_scsi_disk_set_medium_error(f->disk, 13, 2, false);
    /* The blocks before the bad one arrive, then MEDIUM ERROR at LBA 13. */
    odk_scsi_build_read_10(&c, 10, 8, 0);
    run(f, &c, NULL, 0, sizeof data);
    assert_string_equal(sense(f), "MEDIUM ERROR: UNRECOVERED READ ERROR, information 0xd");
    assert_int_equal(f->res.transferred, 3 * BS);
    assert_memory_equal(f->in, data, 3 * BS);
    assert_int_equal(f->res.residual, 5 * BS);
    /* Outside the range, reads work; writes were not included. */
    odk_scsi_build_read_10(&c, 15, 3, 0);
    assert_int_equal(run(f, &c, NULL, 0, 3 * BS), ODK_SCSI_STATUS_GOOD);
    odk_scsi_build_write_10(&c, 12, 2, 0);
    assert_int_equal(run(f, &c, data, 2 * BS, 0), ODK_SCSI_STATUS_GOOD);
    odk_scsi_disk_set_medium_error(f->disk, 13, 2, true);
    run(f, &c, data, 2 * BS, 0);
    assert_string_equal(sense(f), "MEDIUM ERROR: WRITE ERROR, information 0xd");
    assert_int_equal(f->res.transferred, BS);
    odk_scsi_disk_set_medium_error(f->disk, 0, 0, false);
    odk_scsi_build_read_10(&c, 10, 8, 0);
    assert_int_equal(run(f, &c, NULL, 0, sizeof data), ODK_SCSI_STATUS_GOOD);
}

static void test_sync_cache(void **state)
{
    fixture *f = *state;
    odk_scsi_cdb c;
    odk_scsi_build_synchronize_cache_10(&c, 0, 0, false);
    assert_int_equal(run(f, &c, NULL, 0, 0), ODK_SCSI_STATUS_GOOD);
    odk_scsi_build_synchronize_cache_16(&c, 10, 10, true);
    assert_int_equal(run(f, &c, NULL, 0, 0), ODK_SCSI_STATUS_GOOD);
    odk_scsi_build_synchronize_cache_16(&c, BLOCKS, 1, false);
    run(f, &c, NULL, 0, 0);
    assert_non_null(strstr(sense(f), "LOGICAL BLOCK ADDRESS OUT OF RANGE"));
}

/* ---- mode pages ---------------------------------------------------------- */

static void test_mode_sense(void **state)
{
    fixture *f = *state;
    odk_scsi_cdb c;
    odk_scsi_build_mode_sense_6(&c, false, 0, 0x08, 0, 255);
    assert_int_equal(run(f, &c, NULL, 0, 255), ODK_SCSI_STATUS_GOOD);
    /* Header 4 + block descriptor 8 + caching page 20. */
    assert_int_equal(f->res.transferred, 32);
    assert_int_equal(f->in[0], 31);
    assert_int_equal(f->in[2], 0x10); /* DPOFUA */
    assert_int_equal(f->in[3], 8);
    assert_int_equal(f->in[4 + 7], 0x00); /* block length 0x000200 */
    assert_int_equal(f->in[4 + 6], 0x02);
    assert_int_equal(f->in[12], 0x08);
    assert_int_equal(f->in[14] & 0x04, 0x04); /* WCE */
    /* MODE SENSE (10), long LBA descriptor, every page. */
    odk_scsi_build_mode_sense_10(&c, true, false, 0, 0x3f, 0, 512);
    assert_int_equal(run(f, &c, NULL, 0, 512), ODK_SCSI_STATUS_GOOD);
    assert_int_equal(f->res.transferred, 8 + 16 + 20 + 12);
    assert_int_equal(f->in[4], 0x01);
    assert_int_equal(f->in[7], 16);
    assert_int_equal(f->in[8 + 16 + 20], 0x0a);
    /* Changeable values: WCE and D_SENSE only. */
    odk_scsi_build_mode_sense_6(&c, true, 1, 0x3f, 0, 255);
    run(f, &c, NULL, 0, 255);
    assert_int_equal(f->in[4 + 2], 0x04);
    assert_int_equal(f->in[4 + 20 + 2], 0x04);
    assert_int_equal(f->in[4 + 20 + 3], 0x00);
    /* Saved values are not supported; unknown pages are invalid fields. */
    odk_scsi_build_mode_sense_6(&c, true, 3, 0x08, 0, 255);
    run(f, &c, NULL, 0, 255);
    assert_string_equal(sense(f), "ILLEGAL REQUEST: SAVING PARAMETERS NOT SUPPORTED");
    odk_scsi_build_mode_sense_6(&c, true, 0, 0x19, 0, 255);
    run(f, &c, NULL, 0, 255);
    assert_string_equal(sense(f), "ILLEGAL REQUEST: INVALID FIELD IN CDB, byte 2 bit 5");
    odk_scsi_build_mode_sense_6(&c, true, 0, 0x08, 1, 255);
    run(f, &c, NULL, 0, 255);
    assert_string_equal(sense(f), "ILLEGAL REQUEST: INVALID FIELD IN CDB, byte 3");
}

static void test_mode_select(void **state)
{
    fixture *f = *state;
    odk_scsi_cdb c;
    /* Read the current caching page with its header, clear WCE, send back. */
    odk_scsi_build_mode_sense_6(&c, true, 0, 0x08, 0, 255);
    run(f, &c, NULL, 0, 255);
    uint8_t list[24];
    memcpy(list, f->in, 24);
    list[0] = 0; /* mode data length is reserved in MODE SELECT */
    list[4 + 2] &= (uint8_t)~0x04;
    odk_scsi_build_mode_select_6(&c, true, false, 24);
    assert_int_equal(run(f, &c, list, sizeof list, 0), ODK_SCSI_STATUS_GOOD);
    odk_scsi_build_mode_sense_6(&c, true, 0, 0x08, 0, 255);
    run(f, &c, NULL, 0, 255);
    assert_int_equal(f->in[4 + 2] & 0x04, 0);
    /* A bit that is not changeable: INVALID FIELD IN PARAMETER LIST with
     * the pointer into the list. */
    list[4 + 2] |= 0x01; /* RCD */
    odk_scsi_build_mode_select_6(&c, true, false, 24);
    run(f, &c, list, sizeof list, 0);
    assert_string_equal(sense(f),
                        "ILLEGAL REQUEST: INVALID FIELD IN PARAMETER LIST, parameter byte 6 bit 0");
    /* PF 0, SP 1, short data, wrong page length. */
    odk_scsi_build_mode_select_6(&c, false, false, 24);
    run(f, &c, list, sizeof list, 0);
    assert_string_equal(sense(f), "ILLEGAL REQUEST: INVALID FIELD IN CDB, byte 1 bit 4");
    odk_scsi_build_mode_select_6(&c, true, true, 24);
    run(f, &c, list, sizeof list, 0);
    assert_string_equal(sense(f), "ILLEGAL REQUEST: INVALID FIELD IN CDB, byte 1 bit 0");
    odk_scsi_build_mode_select_6(&c, true, false, 24);
    run(f, &c, list, 10, 0);
    assert_string_equal(sense(f), "ILLEGAL REQUEST: PARAMETER LIST LENGTH ERROR");
    list[4 + 2] &= (uint8_t)~0x01;
    list[5] = 0x11;
    run(f, &c, list, sizeof list, 0);
    assert_string_equal(sense(f),
                        "ILLEGAL REQUEST: INVALID FIELD IN PARAMETER LIST, parameter byte 5");

    /* MODE SELECT (10) sets D_SENSE: sense comes in descriptor format. */
    uint8_t ctl[8 + 12] = {0};
    ctl[8] = 0x0a;
    ctl[9] = 0x0a;
    ctl[10] = 0x04;
    ctl[11] = 0x10;
    ctl[16] = 0xff, ctl[17] = 0xff;
    odk_scsi_build_mode_select_10(&c, true, false, sizeof ctl);
    assert_int_equal(run(f, &c, ctl, sizeof ctl, 0), ODK_SCSI_STATUS_GOOD);
    const uint8_t bad[6] = {0x12, 0x02, 0, 0, 36, 0};
    run_raw(f, bad, sizeof bad, 36);
    assert_int_equal(f->res.sense[0], 0x72);
    assert_string_equal(sense(f), "ILLEGAL REQUEST: INVALID FIELD IN CDB, byte 1 bit 1");
}

/* ---- thin provisioning --------------------------------------------------- */

static off_t allocated(fixture *f)
{
    struct stat st;
    assert_int_equal(fstat(f->fd, &st), 0);
    return st.st_blocks * 512;
}

static void test_unmap(void **state)
{
    fixture *f = *state;
    odk_scsi_cdb c;
    static uint8_t data[256 * BS];
    memset(data, 0xa5, sizeof data);
    odk_scsi_build_write_10(&c, 0, 256, 0);
    assert_int_equal(run(f, &c, data, sizeof data, 0), ODK_SCSI_STATUS_GOOD);
    fsync(f->fd);
    off_t before = allocated(f);
    odk_scsi_unmap_range r[2] = {{0, 128}, {128, 128}};
    uint8_t list[64];
    size_t len;
    odk_scsi_build_unmap(&c, false, r, 2, list, sizeof list, &len);
    assert_int_equal(run(f, &c, list, len, 0), ODK_SCSI_STATUS_GOOD);
    assert_true(allocated(f) < before);
    odk_scsi_build_read_10(&c, 64, 1, 0);
    run(f, &c, NULL, 0, BS);
    uint8_t zero[BS] = {0};
    assert_memory_equal(f->in, zero, BS);
    /* Errors: a range past the end (nothing unmapped then), short list,
     * ANCHOR. */
    r[1].lba = BLOCKS - 1;
    r[1].blocks = 2;
    odk_scsi_build_unmap(&c, false, r, 2, list, sizeof list, &len);
    run(f, &c, list, len, 0);
    assert_non_null(strstr(sense(f), "LOGICAL BLOCK ADDRESS OUT OF RANGE"));
    run(f, &c, list, len - 1, 0);
    assert_string_equal(sense(f), "ILLEGAL REQUEST: PARAMETER LIST LENGTH ERROR");
    list[3] = 17; /* block descriptor data length not a multiple of 16 */
    run(f, &c, list, len, 0);
    assert_string_equal(sense(f), "ILLEGAL REQUEST: PARAMETER LIST LENGTH ERROR");
    odk_scsi_build_unmap(&c, true, r, 1, list, sizeof list, &len);
    run(f, &c, list, len, 0);
    assert_string_equal(sense(f), "ILLEGAL REQUEST: INVALID FIELD IN CDB, byte 1 bit 0");
    /* An empty list is GOOD. */
    odk_scsi_build_unmap(&c, false, r, 0, list, sizeof list, &len);
    assert_int_equal(run(f, &c, list, len, 0), ODK_SCSI_STATUS_GOOD);
}

static void test_write_same(void **state)
{
    fixture *f = *state;
    odk_scsi_cdb c;
    uint8_t block[BS];
    fill(block, BS, 3);
    odk_scsi_build_write_same_16(&c, 100, 50, false);
    assert_int_equal(run(f, &c, block, BS, 0), ODK_SCSI_STATUS_GOOD);
    for (unsigned lba = 100; lba < 150; lba += 7) {
        odk_scsi_cdb r;
        odk_scsi_build_read_10(&r, lba, 1, 0);
        run(f, &r, NULL, 0, BS);
        assert_memory_equal(f->in, block, BS);
    }
    /* WRITE SAME with UNMAP and a zero block punches a hole. */
    fsync(f->fd);
    off_t before = allocated(f);
    uint8_t zero[BS] = {0};
    odk_scsi_build_write_same_10(&c, 96, 64, true);
    assert_int_equal(run(f, &c, zero, BS, 0), ODK_SCSI_STATUS_GOOD);
    assert_true(allocated(f) < before);
    odk_scsi_cdb r;
    odk_scsi_build_read_10(&r, 120, 1, 0);
    run(f, &r, NULL, 0, BS);
    assert_memory_equal(f->in, zero, BS);
    /* UNMAP with data that is not zero writes the data. */
    odk_scsi_build_write_same_10(&c, 200, 4, true);
    assert_int_equal(run(f, &c, block, BS, 0), ODK_SCSI_STATUS_GOOD);
    odk_scsi_build_read_10(&r, 203, 1, 0);
    run(f, &r, NULL, 0, BS);
    assert_memory_equal(f->in, block, BS);
    /* NDOB: zeroes without a data-out block. */
    odk_scsi_build_write_same_16(&c, 200, 4, false);
    c.bytes[1] |= 0x01;
    assert_int_equal(run(f, &c, NULL, 0, 0), ODK_SCSI_STATUS_GOOD);
    run(f, &r, NULL, 0, BS);
    assert_memory_equal(f->in, zero, BS);
    /* 0 blocks: to the end of the medium. */
    odk_scsi_build_write_same_10(&c, BLOCKS - 3, 0, false);
    assert_int_equal(run(f, &c, block, BS, 0), ODK_SCSI_STATUS_GOOD);
    odk_scsi_build_read_10(&r, BLOCKS - 1, 1, 0);
    run(f, &r, NULL, 0, BS);
    assert_memory_equal(f->in, block, BS);
    /* Errors. */
    odk_scsi_build_write_same_10(&c, BLOCKS - 1, 2, false);
    run(f, &c, block, BS, 0);
    assert_non_null(strstr(sense(f), "LOGICAL BLOCK ADDRESS OUT OF RANGE"));
    odk_scsi_build_write_same_10(&c, 0, 2, false);
    run(f, &c, block, BS - 1, 0);
    assert_string_equal(sense(f), "ABORTED COMMAND: DATA PHASE ERROR");
    c.bytes[1] |= 0x10;
    run(f, &c, block, BS, 0);
    assert_string_equal(sense(f), "ILLEGAL REQUEST: INVALID FIELD IN CDB, byte 1 bit 4");
}

/* ---- a caller's backend -------------------------------------------------- */

typedef struct mem {
    uint8_t bytes[64 * BS];
    int fail; /* status every call returns, 0 for none */
    int flushes;
} mem;

static int mem_read(void *ctx, uint64_t off, void *buf, size_t len)
{
    mem *m = ctx;
    if (m->fail)
        return m->fail;
    memcpy(buf, m->bytes + off, len);
    return ODK_OK;
}

static int mem_write(void *ctx, uint64_t off, const void *buf, size_t len, bool fua)
{
    mem *m = ctx;
    if (m->fail)
        return m->fail;
    memcpy(m->bytes + off, buf, len);
    if (fua)
        m->flushes++;
    return ODK_OK;
}

static int mem_flush(void *ctx)
{
    mem *m = ctx;
    m->flushes++;
    return m->fail;
}

static void test_backend(void **state)
{
    static mem m;
    memset(&m, 0, sizeof m);
    odk_scsi_disk_backend be = {mem_read, mem_write, mem_flush, NULL, &m};
    odk_scsi_disk_config cfg = {.block_size = BS, .block_count = 64, .descriptor_sense = true};
    odk_scsi_disk *d = NULL;
    assert_int_equal(odk_scsi_disk_create(&cfg, &be, &d), ODK_OK);
    fixture *f = calloc(1, sizeof *f);
    f->disk = d;
    odk_scsi_cdb c;
    uint8_t data[BS];
    fill(data, BS, 4);
    /* Write cache off: every write is forced to the medium. */
    odk_scsi_build_write_10(&c, 3, 1, 0);
    assert_int_equal(run(f, &c, data, BS, 0), ODK_SCSI_STATUS_GOOD);
    assert_memory_equal(m.bytes + 3 * BS, data, BS);
    assert_int_equal(m.flushes, 1);
    /* Without unmap, UNMAP is not supported and VPD b2 is absent. */
    odk_scsi_unmap_range r = {0, 1};
    uint8_t list[32];
    size_t len;
    odk_scsi_build_unmap(&c, false, &r, 1, list, sizeof list, &len);
    run(f, &c, list, len, 0);
    assert_string_equal(sense(f), "ILLEGAL REQUEST: INVALID COMMAND OPERATION CODE");
    assert_int_equal(f->res.sense[0], 0x72);
    odk_scsi_build_inquiry(&c, true, 0xb2, 64);
    run(f, &c, NULL, 0, 64);
    assert_string_equal(sense(f), "ILLEGAL REQUEST: INVALID FIELD IN CDB, byte 2");
    /* Backend errors become sense. */
    odk_scsi_build_read_10(&c, 7, 1, 0);
    m.fail = ODK_E_IO;
    run(f, &c, NULL, 0, BS);
    assert_string_equal(sense(f), "MEDIUM ERROR: UNRECOVERED READ ERROR, information 0x7");
    m.fail = ODK_E_GONE;
    run(f, &c, NULL, 0, BS);
    assert_string_equal(sense(f), "NOT READY: LOGICAL UNIT NOT READY, CAUSE NOT REPORTABLE");
    m.fail = ODK_E_NOMEM;
    run(f, &c, NULL, 0, BS);
    assert_string_equal(sense(f), "HARDWARE ERROR: INTERNAL TARGET FAILURE");
    odk_scsi_build_synchronize_cache_10(&c, 0, 0, false);
    m.fail = ODK_E_IO;
    run(f, &c, NULL, 0, 0);
    assert_string_equal(sense(f), "MEDIUM ERROR: WRITE ERROR, information 0x0");
    odk_scsi_disk_free(d);
    free(f);

    /* Bad configurations. */
    odk_scsi_disk_config bad = cfg;
    bad.block_size = 520;
    assert_int_equal(odk_scsi_disk_create(&bad, &be, &d), ODK_E_INVALID);
    assert_null(d);
    bad = cfg;
    bad.block_count = 0;
    assert_int_equal(odk_scsi_disk_create(&bad, &be, &d), ODK_E_INVALID);
    be.flush = NULL;
    assert_int_equal(odk_scsi_disk_create(&cfg, &be, &d), ODK_E_INVALID);
    assert_int_equal(odk_scsi_disk_create_file(&cfg, -1, &d), ODK_E_INVALID);
    /* A refused config leaves the file alone; a longer file is not cut. */
    char path[] = "/tmp/odk-scsi-size-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    bad = cfg;
    bad.block_size = 100;
    assert_int_equal(odk_scsi_disk_create_file(&bad, fd, &d), ODK_E_INVALID);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_size, 0);
    assert_int_equal(odk_scsi_disk_create_file(&cfg, fd, &d), ODK_OK);
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_size, 64 * BS);
    odk_scsi_disk_free(d);
    assert_int_equal(ftruncate(fd, 100 * BS), 0);
    assert_int_equal(odk_scsi_disk_create_file(&cfg, fd, &d), ODK_OK);
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_size, 100 * BS);
    odk_scsi_disk_free(d);
    close(fd);
    odk_scsi_disk_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_inquiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vpd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_cdb, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ready, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unit_attention, setup_power_on, teardown),
        cmocka_unit_test_setup_teardown(test_capacity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_luns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_write_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_medium_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mode_sense, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mode_select, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unmap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_same, setup, teardown),
        cmocka_unit_test(test_backend),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
