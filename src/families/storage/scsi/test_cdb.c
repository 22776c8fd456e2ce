/* SPDX-License-Identifier: MIT */
/* Unit tests for the CDB builders (byte-exact against CDBs checked by hand
 * with SPC-4 and SBC-3 open), decoding, and each rule of the checker. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "odk/scsi.h"
#include "odk/status.h"

#define EXPECT_CDB(cdb, ...)                                                                       \
    do {                                                                                           \
        const uint8_t want_[] = {__VA_ARGS__};                                                     \
        assert_int_equal((cdb).length, sizeof want_);                                              \
        assert_memory_equal((cdb).bytes, want_, sizeof want_);                                     \
        for (size_t i_ = sizeof want_; i_ < ODK_SCSI_CDB_MAX; i_++)                                \
            assert_int_equal((cdb).bytes[i_], 0);                                                  \
    } while (0)

/* Every builder's output passes the checker with the buffer it implies. */
static void builds_valid(const odk_scsi_cdb *c, odk_scsi_dir dir, size_t len, uint32_t bs)
{
    odk_scsi_cdb_error err;
    int st = odk_scsi_cdb_check(c->bytes, c->length, ODK_SCSI_TYPE_DISK, ODK_SCSI_CHECK_STRICT, dir,
                                len, bs, &err);
    if (st != ODK_OK)
        fail_msg("checker refused a built CDB: %s", err.text);
}

/* ---- builders ------------------------------------------------------------ */

static void test_inquiry(void **state)
{
    odk_scsi_cdb c;
    assert_int_equal(odk_scsi_build_inquiry(&c, false, 0, 96), ODK_OK);
    EXPECT_CDB(c, 0x12, 0x00, 0x00, 0x00, 0x60, 0x00);
    builds_valid(&c, ODK_SCSI_DIR_FROM_DEVICE, 96, 0);
    assert_int_equal(odk_scsi_build_inquiry(&c, true, 0x83, 0x1234), ODK_OK);
    EXPECT_CDB(c, 0x12, 0x01, 0x83, 0x12, 0x34, 0x00);
    assert_int_equal(odk_scsi_build_inquiry(&c, true, 0x00, 255), ODK_OK);
    EXPECT_CDB(c, 0x12, 0x01, 0x00, 0x00, 0xff, 0x00);
    /* A page without EVPD is refused and leaves a zeroed CDB. */
    assert_int_equal(odk_scsi_build_inquiry(&c, false, 0x80, 96), ODK_E_INVALID);
    assert_int_equal(c.length, 0);
}

static void test_tur_request_sense(void **state)
{
    odk_scsi_cdb c;
    assert_int_equal(odk_scsi_build_test_unit_ready(&c), ODK_OK);
    EXPECT_CDB(c, 0, 0, 0, 0, 0, 0);
    builds_valid(&c, ODK_SCSI_DIR_NONE, 0, 0);
    assert_int_equal(odk_scsi_build_request_sense(&c, true, 252), ODK_OK);
    EXPECT_CDB(c, 0x03, 0x01, 0x00, 0x00, 0xfc, 0x00);
    assert_int_equal(odk_scsi_build_request_sense(&c, false, 18), ODK_OK);
    EXPECT_CDB(c, 0x03, 0x00, 0x00, 0x00, 0x12, 0x00);
}

static void test_read_capacity(void **state)
{
    odk_scsi_cdb c;
    assert_int_equal(odk_scsi_build_read_capacity_10(&c), ODK_OK);
    EXPECT_CDB(c, 0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    builds_valid(&c, ODK_SCSI_DIR_FROM_DEVICE, 8, 512);
    assert_int_equal(odk_scsi_build_read_capacity_16(&c, 32), ODK_OK);
    EXPECT_CDB(c, 0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20, 0, 0);
    builds_valid(&c, ODK_SCSI_DIR_FROM_DEVICE, 32, 512);
}

static void test_read_write(void **state)
{
    odk_scsi_cdb c;
    assert_int_equal(odk_scsi_build_read_10(&c, 0x12345678, 0x0102, 0), ODK_OK);
    EXPECT_CDB(c, 0x28, 0x00, 0x12, 0x34, 0x56, 0x78, 0x00, 0x01, 0x02, 0x00);
    builds_valid(&c, ODK_SCSI_DIR_FROM_DEVICE, 0x102 * 512, 512);
    assert_int_equal(odk_scsi_build_write_10(&c, 7, 8, ODK_SCSI_RW_FUA | ODK_SCSI_RW_DPO), ODK_OK);
    EXPECT_CDB(c, 0x2a, 0x18, 0, 0, 0, 7, 0, 0, 8, 0);
    builds_valid(&c, ODK_SCSI_DIR_TO_DEVICE, 8 * 4096, 4096);
    assert_int_equal(odk_scsi_build_read_16(&c, 0x0102030405060708ull, 0x0a0b0c0d, ODK_SCSI_RW_FUA),
                     ODK_OK);
    EXPECT_CDB(c, 0x88, 0x08, 1, 2, 3, 4, 5, 6, 7, 8, 0x0a, 0x0b, 0x0c, 0x0d, 0, 0);
    assert_int_equal(odk_scsi_build_write_16(&c, 1, 2, ODK_SCSI_RW_DPO), ODK_OK);
    EXPECT_CDB(c, 0x8a, 0x10, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0);
    /* Values past the (10) fields, and unknown flags, are refused. */
    assert_int_equal(odk_scsi_build_read_10(&c, 1ull << 32, 1, 0), ODK_E_INVALID);
    assert_int_equal(odk_scsi_build_write_10(&c, 0, 65536, 0), ODK_E_INVALID);
    assert_int_equal(odk_scsi_build_read_16(&c, 0, 1, 0x01), ODK_E_INVALID);
    /* The short form when it fits, the long one when not. */
    assert_int_equal(odk_scsi_build_read(&c, 100, 65535, 0), ODK_OK);
    assert_int_equal(c.bytes[0], 0x28);
    assert_int_equal(odk_scsi_build_read(&c, 100, 65536, 0), ODK_OK);
    assert_int_equal(c.bytes[0], 0x88);
    assert_int_equal(odk_scsi_build_write(&c, 1ull << 32, 1, 0), ODK_OK);
    assert_int_equal(c.bytes[0], 0x8a);
    assert_int_equal(odk_scsi_build_write(&c, 5, 1, 0), ODK_OK);
    assert_int_equal(c.bytes[0], 0x2a);
}

static void test_sync_cache(void **state)
{
    odk_scsi_cdb c;
    assert_int_equal(odk_scsi_build_synchronize_cache_10(&c, 0x100, 0x20, true), ODK_OK);
    EXPECT_CDB(c, 0x35, 0x02, 0, 0, 0x01, 0x00, 0, 0, 0x20, 0);
    builds_valid(&c, ODK_SCSI_DIR_NONE, 0, 512);
    assert_int_equal(odk_scsi_build_synchronize_cache_16(&c, 0, 0, false), ODK_OK);
    EXPECT_CDB(c, 0x91, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    assert_int_equal(odk_scsi_build_synchronize_cache_10(&c, 1ull << 32, 0, false), ODK_E_INVALID);
}

static void test_mode(void **state)
{
    odk_scsi_cdb c;
    assert_int_equal(odk_scsi_build_mode_sense_6(&c, true, 0, 0x08, 0, 36), ODK_OK);
    EXPECT_CDB(c, 0x1a, 0x08, 0x08, 0x00, 0x24, 0x00);
    assert_int_equal(odk_scsi_build_mode_sense_6(&c, false, 1, 0x3f, 0xff, 255), ODK_OK);
    EXPECT_CDB(c, 0x1a, 0x00, 0x7f, 0xff, 0xff, 0x00);
    assert_int_equal(odk_scsi_build_mode_sense_10(&c, true, false, 2, 0x0a, 0, 0x0200), ODK_OK);
    EXPECT_CDB(c, 0x5a, 0x10, 0x8a, 0x00, 0, 0, 0, 0x02, 0x00, 0);
    assert_int_equal(odk_scsi_build_mode_sense_6(&c, false, 4, 0x08, 0, 1), ODK_E_INVALID);
    assert_int_equal(odk_scsi_build_mode_sense_10(&c, false, false, 0, 0x40, 0, 1), ODK_E_INVALID);
    assert_int_equal(odk_scsi_build_mode_select_6(&c, true, false, 24), ODK_OK);
    EXPECT_CDB(c, 0x15, 0x10, 0, 0, 24, 0);
    builds_valid(&c, ODK_SCSI_DIR_TO_DEVICE, 24, 0);
    assert_int_equal(odk_scsi_build_mode_select_10(&c, true, true, 0x0102), ODK_OK);
    EXPECT_CDB(c, 0x55, 0x11, 0, 0, 0, 0, 0, 0x01, 0x02, 0);
}

static void test_report_luns(void **state)
{
    odk_scsi_cdb c;
    assert_int_equal(odk_scsi_build_report_luns(&c, 2, 0x1000), ODK_OK);
    EXPECT_CDB(c, 0xa0, 0, 0x02, 0, 0, 0, 0, 0, 0x10, 0x00, 0, 0);
    builds_valid(&c, ODK_SCSI_DIR_FROM_DEVICE, 0x1000, 0);
    assert_int_equal(odk_scsi_build_report_luns(&c, 0, 15), ODK_E_INVALID);
}

static void test_unmap(void **state)
{
    odk_scsi_cdb c;
    odk_scsi_unmap_range r[2] = {{0x10, 8}, {0x0102030405060708ull, 0x11223344}};
    uint8_t list[64];
    size_t len = 0;
    assert_int_equal(odk_scsi_build_unmap(&c, false, r, 2, list, sizeof list, &len), ODK_OK);
    assert_int_equal(len, 40);
    EXPECT_CDB(c, 0x42, 0, 0, 0, 0, 0, 0, 0, 40, 0);
    const uint8_t want[40] = {0, 38, 0, 32, 0, 0, 0, 0, /* header */
                              0, 0,  0, 0,  0, 0, 0, 0x10, 0,    0,    0,    8,    0, 0, 0, 0,
                              1, 2,  3, 4,  5, 6, 7, 8,    0x11, 0x22, 0x33, 0x44, 0, 0, 0, 0};
    assert_memory_equal(list, want, sizeof want);
    builds_valid(&c, ODK_SCSI_DIR_TO_DEVICE, len, 512);
    assert_int_equal(odk_scsi_build_unmap(&c, true, r, 1, list, sizeof list, &len), ODK_OK);
    assert_int_equal(c.bytes[1], 0x01);
    assert_int_equal(odk_scsi_build_unmap(&c, false, r, 2, list, 39, &len), ODK_E_LIMIT);
    assert_int_equal(odk_scsi_build_unmap(&c, false, r, 4096, list, 1u << 20, &len), ODK_E_LIMIT);
}

static void test_write_same(void **state)
{
    odk_scsi_cdb c;
    assert_int_equal(odk_scsi_build_write_same_10(&c, 0x2000, 0x80, true), ODK_OK);
    EXPECT_CDB(c, 0x41, 0x08, 0, 0, 0x20, 0x00, 0, 0, 0x80, 0);
    builds_valid(&c, ODK_SCSI_DIR_TO_DEVICE, 512, 512);
    assert_int_equal(odk_scsi_build_write_same_16(&c, 1ull << 40, 0, false), ODK_OK);
    EXPECT_CDB(c, 0x93, 0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    assert_int_equal(odk_scsi_build_write_same_10(&c, 1ull << 32, 1, false), ODK_E_INVALID);
}

static void test_start_stop(void **state)
{
    odk_scsi_cdb c;
    assert_int_equal(odk_scsi_build_start_stop_unit(&c, true, 0, false, true), ODK_OK);
    EXPECT_CDB(c, 0x1b, 0x01, 0, 0, 0x01, 0);
    builds_valid(&c, ODK_SCSI_DIR_NONE, 0, 0);
    assert_int_equal(odk_scsi_build_start_stop_unit(&c, false, 3, true, false), ODK_OK);
    EXPECT_CDB(c, 0x1b, 0x00, 0, 0, 0x32, 0);
    assert_int_equal(odk_scsi_build_start_stop_unit(&c, false, 16, false, false), ODK_E_INVALID);
}

/* ---- decoding ------------------------------------------------------------ */

static void test_decode(void **state)
{
    odk_scsi_cdb c;
    odk_scsi_cdb_info info;
    odk_scsi_build_write_16(&c, 0x123456789ull, 77, ODK_SCSI_RW_FUA);
    assert_int_equal(odk_scsi_cdb_decode(c.bytes, c.length, &info), ODK_OK);
    assert_string_equal(info.name, "WRITE (16)");
    assert_int_equal(info.dir, ODK_SCSI_DIR_TO_DEVICE);
    assert_true(info.lba == 0x123456789ull);
    assert_int_equal(info.blocks, 77);
    assert_true(info.length_in_blocks && info.fua && !info.dpo);
    odk_scsi_build_inquiry(&c, true, 0xb0, 64);
    assert_int_equal(odk_scsi_cdb_decode(c.bytes, c.length, &info), ODK_OK);
    assert_int_equal(info.length, 64);
    assert_false(info.length_in_blocks);
    /* WRITE SAME (16) with NDOB moves no data. */
    odk_scsi_build_write_same_16(&c, 0, 8, true);
    c.bytes[1] |= 0x01;
    assert_int_equal(odk_scsi_cdb_decode(c.bytes, c.length, &info), ODK_OK);
    assert_int_equal(info.dir, ODK_SCSI_DIR_NONE);
    const uint8_t vendor[6] = {0xc1, 0, 0, 0, 0, 0};
    assert_int_equal(odk_scsi_cdb_decode(vendor, 6, &info), ODK_E_NOT_FOUND);
    assert_null(info.name);
    assert_int_equal(odk_scsi_cdb_decode(c.bytes, 10, &info), ODK_E_PROTOCOL);
    assert_string_equal(odk_scsi_opcode_name(0x9e, 0x10), "READ CAPACITY (16)");
    assert_null(odk_scsi_opcode_name(0x9e, 0x12));
    assert_string_equal(odk_scsi_opcode_name(0x00, 0), "TEST UNIT READY");
    assert_int_equal(odk_scsi_cdb_group_length(0x1f), 6);
    assert_int_equal(odk_scsi_cdb_group_length(0x5f), 10);
    assert_int_equal(odk_scsi_cdb_group_length(0x7f), 0);
    assert_int_equal(odk_scsi_cdb_group_length(0x88), 16);
    assert_int_equal(odk_scsi_cdb_group_length(0xa0), 12);
    assert_int_equal(odk_scsi_cdb_group_length(0xc0), 0);
}

/* ---- checker: one test per rule ------------------------------------------ */

static int check_fields(const uint8_t *cdb, size_t len, int type, odk_scsi_cdb_error *err)
{
    return odk_scsi_cdb_check_fields(cdb, len, type, 0, err);
}

static void test_check_reserved_bits(void **state)
{
    odk_scsi_cdb_error err;
    /* The message of the issue, word for word. */
    const uint8_t inq[6] = {0x12, 0x80, 0, 0, 36, 0};
    assert_int_equal(check_fields(inq, 6, ODK_SCSI_TYPE_DISK, &err), ODK_E_PROTOCOL);
    assert_string_equal(err.text, "INQUIRY: byte 1 bits 7-1 are reserved and set (0x80)");
    assert_int_equal(err.byte, 1);
    assert_int_equal(err.bit, 7);
    assert_int_equal(err.asc, 0x24);
    /* A single reserved bit: WRITE (10) byte 1 bit 2. */
    const uint8_t w10[10] = {0x2a, 0x04, 0, 0, 0, 0, 0, 0, 1, 0};
    assert_int_equal(check_fields(w10, 10, ODK_SCSI_TYPE_DISK, &err), ODK_E_PROTOCOL);
    assert_string_equal(err.text, "WRITE (10): byte 1 bit 2 is reserved and set (0x04)");
    /* The CONTROL byte's reserved bits 5-3; its NACA bit is not reserved. */
    const uint8_t tur[6] = {0, 0, 0, 0, 0, 0x08};
    assert_int_equal(check_fields(tur, 6, ODK_SCSI_TYPE_DISK, &err), ODK_E_PROTOCOL);
    assert_string_equal(err.text, "TEST UNIT READY: byte 5 bits 5-3 are reserved and set (0x08)");
    assert_int_equal(err.bit, 3);
    const uint8_t tur_naca[6] = {0, 0, 0, 0, 0, 0x04};
    assert_int_equal(check_fields(tur_naca, 6, ODK_SCSI_TYPE_DISK, &err), ODK_OK);
    /* Vendor-specific bits of the CONTROL byte are allowed. */
    const uint8_t tur_vs[6] = {0, 0, 0, 0, 0, 0xc0};
    assert_int_equal(check_fields(tur_vs, 6, ODK_SCSI_TYPE_DISK, &err), ODK_OK);
    /* MODE SENSE (6) byte 1: bits 7-4 and 2-0 are two runs around DBD. */
    const uint8_t ms6[6] = {0x1a, 0x02, 0x3f, 0, 255, 0};
    assert_int_equal(check_fields(ms6, 6, ODK_SCSI_TYPE_DISK, &err), ODK_E_PROTOCOL);
    assert_string_equal(err.text, "MODE SENSE (6): byte 1 bits 2-0 are reserved and set (0x02)");
    assert_int_equal(err.bit, 1);
    /* READ CAPACITY (16): byte 1 bits 7-5 around the service action. */
    const uint8_t rc16[16] = {0x9e, 0x30, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0};
    assert_int_equal(check_fields(rc16, 16, ODK_SCSI_TYPE_DISK, &err), ODK_E_PROTOCOL);
    assert_string_equal(err.text,
                        "READ CAPACITY (16): byte 1 bits 7-5 are reserved and set (0x20)");
    /* REPORT LUNS byte 10. */
    const uint8_t rl[12] = {0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0x01, 0};
    assert_int_equal(check_fields(rl, 12, ODK_SCSI_TYPE_DISK, &err), ODK_E_PROTOCOL);
    assert_string_equal(err.text, "REPORT LUNS: byte 10 bits 7-0 are reserved and set (0x01)");
}

static void test_check_group_length(void **state)
{
    odk_scsi_cdb_error err;
    const uint8_t r10[12] = {0x28};
    assert_int_equal(check_fields(r10, 12, ODK_SCSI_TYPE_DISK, &err), ODK_E_PROTOCOL);
    assert_string_equal(err.text,
                        "READ (10): opcode 0x28: the CDB is 12 bytes; group 1 opcodes take 10");
    assert_int_equal(err.byte, 0);
    /* Unknown opcodes are checked for their group's length too. */
    const uint8_t log_sense[8] = {0x4d};
    assert_int_equal(check_fields(log_sense, 8, ODK_SCSI_TYPE_DISK, &err), ODK_E_PROTOCOL);
    assert_string_equal(err.text, "opcode 0x4d: the CDB is 8 bytes; group 2 opcodes take 10");
    const uint8_t log10[10] = {0x4d};
    assert_int_equal(check_fields(log10, 10, ODK_SCSI_TYPE_DISK, &err), ODK_OK);
    /* Group 3 is reserved. */
    const uint8_t g3[10] = {0x60};
    assert_int_equal(check_fields(g3, 10, ODK_SCSI_TYPE_DISK, &err), ODK_E_PROTOCOL);
    assert_int_equal(err.asc, 0x20);
    /* Vendor-specific groups: any length from 6 to 16. */
    const uint8_t vs[17] = {0xc0};
    assert_int_equal(check_fields(vs, 6, ODK_SCSI_TYPE_DISK, &err), ODK_OK);
    assert_int_equal(check_fields(vs, 16, ODK_SCSI_TYPE_DISK, &err), ODK_OK);
    assert_int_equal(check_fields(vs, 5, ODK_SCSI_TYPE_DISK, &err), ODK_E_PROTOCOL);
    assert_int_equal(check_fields(vs, 17, ODK_SCSI_TYPE_DISK, &err), ODK_E_PROTOCOL);
    assert_string_equal(err.text,
                        "vendor-specific opcode 0xc0: the CDB is 17 bytes; odk sends 6 to 16");
    assert_int_equal(odk_scsi_cdb_check_fields(NULL, 6, 0, 0, &err), ODK_E_INVALID);
    assert_int_equal(odk_scsi_cdb_check_fields(vs, 0, 0, 0, &err), ODK_E_INVALID);
}

static void test_check_device_type(void **state)
{
    odk_scsi_cdb_error err;
    odk_scsi_cdb c;
    odk_scsi_build_read_10(&c, 0, 1, 0);
    assert_int_equal(check_fields(c.bytes, c.length, ODK_SCSI_TYPE_ENCLOSURE, &err),
                     ODK_E_PROTOCOL);
    assert_string_equal(err.text, "READ (10) is not defined for device type 0x0d (enclosure "
                                  "services device)");
    assert_int_equal(err.asc, 0x20);
    assert_int_equal(check_fields(c.bytes, c.length, ODK_SCSI_TYPE_ANY, &err), ODK_OK);
    /* Commands for every device type. */
    odk_scsi_build_inquiry(&c, false, 0, 36);
    assert_int_equal(check_fields(c.bytes, c.length, ODK_SCSI_TYPE_ENCLOSURE, &err), ODK_OK);
    /* Strict: opcodes the library does not know are refused. */
    const uint8_t log10[10] = {0x4d};
    assert_int_equal(
        odk_scsi_cdb_check_fields(log10, 10, ODK_SCSI_TYPE_DISK, ODK_SCSI_CHECK_STRICT, &err),
        ODK_E_PROTOCOL);
    assert_string_equal(err.text, "opcode 0x4d is not one odk knows");
    const uint8_t lba_status[16] = {0x9e, 0x12};
    assert_int_equal(
        odk_scsi_cdb_check_fields(lba_status, 16, ODK_SCSI_TYPE_DISK, ODK_SCSI_CHECK_STRICT, &err),
        ODK_E_PROTOCOL);
    assert_int_equal(err.byte, 1);
    assert_int_equal(err.asc, 0x24);
}

static void test_check_field_values(void **state)
{
    odk_scsi_cdb_error err;
    const uint8_t inq[6] = {0x12, 0x00, 0x80, 0, 36, 0};
    assert_int_equal(check_fields(inq, 6, ODK_SCSI_TYPE_DISK, &err), ODK_E_PROTOCOL);
    assert_string_equal(err.text,
                        "INQUIRY: byte 2 (PAGE CODE) is 0x80 but EVPD (byte 1 bit 0) is 0");
    assert_int_equal(err.byte, 2);
    assert_int_equal(err.bit, -1);
    const uint8_t rc10[10] = {0x25, 0, 0, 0, 0, 1, 0, 0, 0, 0};
    assert_int_equal(check_fields(rc10, 10, ODK_SCSI_TYPE_DISK, &err), ODK_E_PROTOCOL);
    assert_int_equal(err.byte, 2);
    const uint8_t rc10_pmi[10] = {0x25, 0, 0, 0, 0, 1, 0, 0, 1, 0};
    assert_int_equal(check_fields(rc10_pmi, 10, ODK_SCSI_TYPE_DISK, &err), ODK_OK);
    const uint8_t rc16[16] = {0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 32, 0, 0};
    assert_int_equal(check_fields(rc16, 16, ODK_SCSI_TYPE_DISK, &err), ODK_E_PROTOCOL);
    const uint8_t rl_sel[12] = {0xa0, 0, 0x05, 0, 0, 0, 0, 0, 0, 16, 0, 0};
    assert_int_equal(check_fields(rl_sel, 12, ODK_SCSI_TYPE_DISK, &err), ODK_E_PROTOCOL);
    assert_string_equal(err.text, "REPORT LUNS: byte 2 (SELECT REPORT) is 0x05, a reserved value");
    const uint8_t rl_len[12] = {0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 0, 0};
    assert_int_equal(check_fields(rl_len, 12, ODK_SCSI_TYPE_DISK, &err), ODK_E_PROTOCOL);
    assert_string_equal(err.text,
                        "REPORT LUNS: bytes 6-9 (ALLOCATION LENGTH) are 15; the least is 16");
    const uint8_t ssu[6] = {0x1b, 0, 0, 0, 0x40, 0};
    assert_int_equal(check_fields(ssu, 6, ODK_SCSI_TYPE_DISK, &err), ODK_E_PROTOCOL);
    assert_int_equal(err.byte, 4);
    assert_int_equal(err.bit, 7);
}

static void test_check_buffer(void **state)
{
    odk_scsi_cdb_error err;
    odk_scsi_cdb c;
    odk_scsi_build_inquiry(&c, false, 0, 96);
    /* A data-in buffer may be larger than the allocation length, not smaller. */
    assert_int_equal(
        odk_scsi_cdb_check(c.bytes, c.length, 0, 0, ODK_SCSI_DIR_FROM_DEVICE, 128, 0, &err),
        ODK_OK);
    assert_int_equal(
        odk_scsi_cdb_check(c.bytes, c.length, 0, 0, ODK_SCSI_DIR_FROM_DEVICE, 36, 0, &err),
        ODK_E_PROTOCOL);
    assert_string_equal(
        err.text, "INQUIRY: bytes 3-4 (ALLOCATION LENGTH) is 96, but the buffer holds 36 bytes");
    assert_int_equal(err.byte, 3);
    assert_int_equal(err.asc, 0);
    /* Direction. */
    assert_int_equal(
        odk_scsi_cdb_check(c.bytes, c.length, 0, 0, ODK_SCSI_DIR_TO_DEVICE, 96, 0, &err),
        ODK_E_PROTOCOL);
    assert_string_equal(err.text,
                        "INQUIRY moves data from the device (data-in), but the buffer is data-out");
    /* Blocks against the block size. */
    odk_scsi_build_read_10(&c, 0, 8, 0);
    assert_int_equal(
        odk_scsi_cdb_check(c.bytes, c.length, 0, 0, ODK_SCSI_DIR_FROM_DEVICE, 4096, 512, &err),
        ODK_OK);
    assert_int_equal(
        odk_scsi_cdb_check(c.bytes, c.length, 0, 0, ODK_SCSI_DIR_FROM_DEVICE, 512, 512, &err),
        ODK_E_PROTOCOL);
    assert_string_equal(err.text, "READ (10): bytes 7-8 (TRANSFER LENGTH) is 8 blocks of 512 "
                                  "bytes = 4096 bytes, but the buffer holds 512");
    /* Unknown block size: the length is not compared. */
    assert_int_equal(
        odk_scsi_cdb_check(c.bytes, c.length, 0, 0, ODK_SCSI_DIR_FROM_DEVICE, 512, 0, &err),
        ODK_OK);
    /* Data-out must match exactly. */
    odk_scsi_build_write_10(&c, 0, 2, 0);
    assert_int_equal(
        odk_scsi_cdb_check(c.bytes, c.length, 0, 0, ODK_SCSI_DIR_TO_DEVICE, 2048, 512, &err),
        ODK_E_PROTOCOL);
    /* A command without data and a buffer. */
    odk_scsi_build_test_unit_ready(&c);
    assert_int_equal(
        odk_scsi_cdb_check(c.bytes, c.length, 0, 0, ODK_SCSI_DIR_FROM_DEVICE, 8, 0, &err),
        ODK_E_PROTOCOL);
    assert_string_equal(err.text,
                        "TEST UNIT READY moves no data, but a 8-byte data-in buffer comes with it");
    /* A zero transfer length needs no buffer. */
    odk_scsi_build_read_10(&c, 0, 0, 0);
    assert_int_equal(odk_scsi_cdb_check(c.bytes, c.length, 0, 0, ODK_SCSI_DIR_NONE, 0, 512, &err),
                     ODK_OK);
    /* WRITE SAME takes one block. */
    odk_scsi_build_write_same_16(&c, 0, 100, false);
    assert_int_equal(
        odk_scsi_cdb_check(c.bytes, c.length, 0, 0, ODK_SCSI_DIR_TO_DEVICE, 512, 512, &err),
        ODK_OK);
    assert_int_equal(
        odk_scsi_cdb_check(c.bytes, c.length, 0, 0, ODK_SCSI_DIR_TO_DEVICE, 1024, 512, &err),
        ODK_E_PROTOCOL);
    /* READ CAPACITY (10) returns 8 bytes whatever the CDB says. */
    odk_scsi_build_read_capacity_10(&c);
    assert_int_equal(
        odk_scsi_cdb_check(c.bytes, c.length, 0, 0, ODK_SCSI_DIR_FROM_DEVICE, 4, 0, &err),
        ODK_E_PROTOCOL);
    assert_string_equal(err.text, "READ CAPACITY (10): returns 8 bytes, but the buffer holds 4");
    /* Unknown opcodes: nothing to compare. */
    const uint8_t vs[6] = {0xc5};
    assert_int_equal(odk_scsi_cdb_check(vs, 6, 0, 0, ODK_SCSI_DIR_TO_DEVICE, 77, 0, &err), ODK_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inquiry),
        cmocka_unit_test(test_tur_request_sense),
        cmocka_unit_test(test_read_capacity),
        cmocka_unit_test(test_read_write),
        cmocka_unit_test(test_sync_cache),
        cmocka_unit_test(test_mode),
        cmocka_unit_test(test_report_luns),
        cmocka_unit_test(test_unmap),
        cmocka_unit_test(test_write_same),
        cmocka_unit_test(test_start_stop),
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_check_reserved_bits),
        cmocka_unit_test(test_check_group_length),
        cmocka_unit_test(test_check_device_type),
        cmocka_unit_test(test_check_field_values),
        cmocka_unit_test(test_check_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
