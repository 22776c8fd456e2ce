/* SPDX-License-Identifier: MIT */
/* Unit tests for sense data (build, parse, describe, both formats), the
 * ASC/ASCQ table with its ranges and vendor codes, the reply parsers and
 * the formatters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "odk/scsi.h"
#include "odk/status.h"

/* ---- sense: fixed format ------------------------------------------------- */

/* ILLEGAL REQUEST, INVALID FIELD IN CDB, field pointer byte 3 bit 7: SKSV,
 * C/D, BPV and bit pointer 7 make 0xcf. */
static const uint8_t fixed_field[18] = {0x70, 0, 0x05, 0,    0, 0, 0,    0x0a, 0,
                                        0,    0, 0,    0x24, 0, 0, 0xcf, 0x00, 0x03};

static void test_fixed_build(void **state)
{
    odk_scsi_sense s = {.key = ODK_SCSI_SENSE_ILLEGAL_REQUEST, .asc = 0x24};
    odk_scsi_sense_set_field_pointer(&s, true, 3, 7);
    uint8_t b[ODK_SCSI_SENSE_MAX];
    size_t n = 0;
    assert_int_equal(odk_scsi_sense_build(&s, false, b, sizeof b, &n), ODK_OK);
    assert_int_equal(n, 18);
    assert_memory_equal(b, fixed_field, 18);
    assert_int_equal(odk_scsi_sense_build(&s, false, b, 17, &n), ODK_E_LIMIT);
    /* Information that fits 32 bits sets VALID; a larger one cannot. */
    odk_scsi_sense m = {.key = 3, .asc = 0x11, .info_valid = true, .information = 0x1234};
    odk_scsi_sense_build(&m, false, b, sizeof b, &n);
    assert_int_equal(b[0], 0xf0);
    assert_int_equal(b[6], 0x34);
    m.information = 1ull << 33;
    m.deferred = true;
    odk_scsi_sense_build(&m, false, b, sizeof b, &n);
    assert_int_equal(b[0], 0x71);
}

static void test_fixed_parse(void **state)
{
    odk_scsi_sense s;
    assert_int_equal(odk_scsi_sense_parse(fixed_field, sizeof fixed_field, &s), ODK_OK);
    assert_int_equal(s.response_code, 0x70);
    assert_false(s.descriptor);
    assert_false(s.deferred);
    assert_int_equal(s.key, 5);
    assert_int_equal(s.asc, 0x24);
    assert_int_equal(s.ascq, 0);
    assert_true(s.sks_valid);
    char line[256];
    assert_int_equal(odk_scsi_sense_describe(&s, line, sizeof line), ODK_OK);
    assert_string_equal(line, "ILLEGAL REQUEST: INVALID FIELD IN CDB, byte 3 bit 7");
    /* Only the bytes the additional length covers count: with 0x06 the
     * ASC is absent. */
    uint8_t cut[18];
    memcpy(cut, fixed_field, sizeof cut);
    cut[7] = 4;
    assert_int_equal(odk_scsi_sense_parse(cut, sizeof cut, &s), ODK_OK);
    assert_int_equal(s.asc, 0);
    assert_false(s.sks_valid);
    /* Truncated below the header, and wrong response codes. */
    assert_int_equal(odk_scsi_sense_parse(fixed_field, 7, &s), ODK_E_PROTOCOL);
    cut[0] = 0x7f;
    assert_int_equal(odk_scsi_sense_parse(cut, sizeof cut, &s), ODK_E_PROTOCOL);
    cut[0] = 0x6f;
    assert_int_equal(odk_scsi_sense_parse(cut, sizeof cut, &s), ODK_E_PROTOCOL);
    assert_int_equal(odk_scsi_sense_parse(NULL, 18, &s), ODK_E_INVALID);
    /* VALID bit and information; the filemark/EOM/ILI flags. */
    const uint8_t medium[18] = {0xf1, 0, 0xe3, 0, 0,    0x12, 0x34, 0x0a,
                                0,    0, 0,    0, 0x11, 0x04, 0x07};
    assert_int_equal(odk_scsi_sense_parse(medium, sizeof medium, &s), ODK_OK);
    assert_true(s.deferred && s.info_valid && s.filemark && s.eom && s.ili);
    assert_true(s.information == 0x1234);
    assert_int_equal(s.fru, 7);
    odk_scsi_sense_describe(&s, line, sizeof line);
    assert_string_equal(line, "MEDIUM ERROR: UNRECOVERED READ ERROR - AUTO REALLOCATE FAILED, "
                              "information 0x1234 (deferred)");
}

/* ---- sense: descriptor format -------------------------------------------- */

static const uint8_t desc_medium[20] = {0x72, 0x03, 0x11, 0x00, 0, 0, 0,    0x0c, 0x00, 0x0a,
                                        0x80, 0,    0,    0,    0, 1, 0x23, 0x45, 0x67, 0x89};

static void test_descriptor_build_parse(void **state)
{
    odk_scsi_sense s = {.key = 3, .asc = 0x11, .info_valid = true, .information = 0x123456789ull};
    uint8_t b[ODK_SCSI_SENSE_MAX];
    size_t n = 0;
    assert_int_equal(odk_scsi_sense_build(&s, true, b, sizeof b, &n), ODK_OK);
    assert_int_equal(n, sizeof desc_medium);
    assert_memory_equal(b, desc_medium, n);
    odk_scsi_sense p;
    assert_int_equal(odk_scsi_sense_parse(b, n, &p), ODK_OK);
    assert_true(p.descriptor);
    assert_true(p.info_valid && p.information == 0x123456789ull);
    char line[256];
    odk_scsi_sense_describe(&p, line, sizeof line);
    assert_string_equal(line, "MEDIUM ERROR: UNRECOVERED READ ERROR, information 0x123456789");

    /* Every descriptor type round-trips. */
    odk_scsi_sense all = {.key = 5,
                          .asc = 0x26,
                          .ascq = 0x02,
                          .deferred = true,
                          .command_info_valid = true,
                          .command_info = 77,
                          .fru = 9,
                          .ili = true};
    odk_scsi_sense_set_field_pointer(&all, false, 12, 1);
    assert_int_equal(odk_scsi_sense_build(&all, true, b, sizeof b, &n), ODK_OK);
    assert_int_equal(b[0], 0x73);
    assert_int_equal(n, 8 + 12 + 8 + 4 + 4);
    assert_int_equal(odk_scsi_sense_parse(b, n, &p), ODK_OK);
    assert_true(p.deferred && p.command_info_valid && p.command_info == 77 && p.fru == 9 && p.ili);
    assert_true(p.sks_valid);
    odk_scsi_sense_describe(&p, line, sizeof line);
    assert_string_equal(
        line, "ILLEGAL REQUEST: PARAMETER VALUE INVALID, parameter byte 12 bit 1 (deferred)");
    /* A descriptor that runs past the data is ignored, the rest kept. */
    b[7] = (uint8_t)(n - 8 + 4);
    uint8_t longer[64];
    memcpy(longer, b, n);
    longer[n] = 0x00;
    longer[n + 1] = 0x0a; /* an information descriptor of 12 bytes, only 4 present */
    longer[n + 2] = 0x80;
    longer[n + 3] = 0;
    assert_int_equal(odk_scsi_sense_parse(longer, n + 4, &p), ODK_OK);
    assert_false(p.info_valid);
    assert_int_equal(p.fru, 9);
}

/* ---- sense-key specific -------------------------------------------------- */

static void test_sense_specific(void **state)
{
    char t[80];
    odk_scsi_sense s = {.key = ODK_SCSI_SENSE_ILLEGAL_REQUEST, .asc = 0x24};
    odk_scsi_sense_set_field_pointer(&s, true, 7, -1);
    odk_scsi_sense_specific_describe(&s, t, sizeof t);
    assert_string_equal(t, "byte 7");
    s = (odk_scsi_sense){.key = ODK_SCSI_SENSE_NOT_READY,
                         .asc = 0x04,
                         .ascq = 0x04,
                         .sks_valid = true,
                         .sks = {0x80, 0x80, 0x00}};
    odk_scsi_sense_specific_describe(&s, t, sizeof t);
    assert_string_equal(t, "progress 50%");
    s.key = ODK_SCSI_SENSE_MEDIUM_ERROR;
    s.sks[1] = 0, s.sks[2] = 3;
    odk_scsi_sense_specific_describe(&s, t, sizeof t);
    assert_string_equal(t, "actual retry count 3");
    s.key = ODK_SCSI_SENSE_COPY_ABORTED;
    s.sks[0] = 0x80 | 0x20 | 0x08 | 2, s.sks[1] = 0, s.sks[2] = 8;
    odk_scsi_sense_specific_describe(&s, t, sizeof t);
    assert_string_equal(t, "segment descriptor byte 8 bit 2");
    s.key = ODK_SCSI_SENSE_UNIT_ATTENTION;
    s.sks[0] = 0x81;
    odk_scsi_sense_specific_describe(&s, t, sizeof t);
    assert_string_equal(t, "unit attention queue overflowed");
    s.sks_valid = false;
    odk_scsi_sense_specific_describe(&s, t, sizeof t);
    assert_string_equal(t, "");
}

/* ---- the ASC/ASCQ table -------------------------------------------------- */

static void test_asc_table(void **state)
{
    char t[128];
    assert_int_equal(odk_scsi_asc_describe(0x00, 0x00, t, sizeof t), ODK_OK);
    assert_string_equal(t, "NO ADDITIONAL SENSE INFORMATION");
    assert_int_equal(odk_scsi_asc_describe(0x24, 0x00, t, sizeof t), ODK_OK);
    assert_string_equal(t, "INVALID FIELD IN CDB");
    odk_scsi_asc_describe(0x20, 0x00, t, sizeof t);
    assert_string_equal(t, "INVALID COMMAND OPERATION CODE");
    odk_scsi_asc_describe(0x21, 0x00, t, sizeof t);
    assert_string_equal(t, "LOGICAL BLOCK ADDRESS OUT OF RANGE");
    odk_scsi_asc_describe(0x04, 0x03, t, sizeof t);
    assert_string_equal(t, "LOGICAL UNIT NOT READY, MANUAL INTERVENTION REQUIRED");
    odk_scsi_asc_describe(0x29, 0x01, t, sizeof t);
    assert_string_equal(t, "POWER ON OCCURRED");
    /* First and last entries, and ones from the generated families. */
    odk_scsi_asc_describe(0x74, 0x79, t, sizeof t);
    assert_string_equal(t, "SECURITY CONFLICT IN TRANSLATED DEVICE");
    odk_scsi_asc_describe(0x5d, 0x3c, t, sizeof t);
    assert_string_equal(t, "DATA CHANNEL IMPENDING FAILURE DRIVE CALIBRATION RETRY COUNT");
    odk_scsi_asc_describe(0x3f, 0x12, t, sizeof t);
    assert_string_equal(t, "iSCSI IP ADDRESS ADDED");
    /* Ranges. */
    assert_int_equal(odk_scsi_asc_describe(0x40, 0x85, t, sizeof t), ODK_OK);
    assert_string_equal(t, "DIAGNOSTIC FAILURE ON COMPONENT 85h");
    odk_scsi_asc_describe(0x40, 0x00, t, sizeof t);
    assert_string_equal(t, "RAM FAILURE (SHOULD USE 40 NN)");
    odk_scsi_asc_describe(0x4d, 0x1f, t, sizeof t);
    assert_string_equal(t, "TAGGED OVERLAPPED COMMANDS (TASK TAG 1Fh)");
    odk_scsi_asc_describe(0x70, 0x02, t, sizeof t);
    assert_string_equal(t, "DECOMPRESSION EXCEPTION SHORT ALGORITHM ID OF 02h");
    /* Vendor specific: ASC 80h-FFh, or ASCQ 80h-FFh with any ASC. */
    assert_int_equal(odk_scsi_asc_describe(0x80, 0x01, t, sizeof t), ODK_OK);
    assert_string_equal(t, "VENDOR SPECIFIC (ASC 0x80, ASCQ 0x01)");
    assert_int_equal(odk_scsi_asc_describe(0x24, 0x90, t, sizeof t), ODK_OK);
    assert_string_equal(t, "VENDOR SPECIFIC (ASC 0x24, ASCQ 0x90)");
    /* Reserved. */
    assert_int_equal(odk_scsi_asc_describe(0x3c, 0x00, t, sizeof t), ODK_E_NOT_FOUND);
    assert_string_equal(t, "ASC 0x3c ASCQ 0x00");
    assert_int_equal(odk_scsi_asc_describe(0x24, 0x7f, t, sizeof t), ODK_E_NOT_FOUND);
    /* Truncation is reported, the text stays terminated. */
    assert_int_equal(odk_scsi_asc_describe(0x24, 0x00, t, 8), ODK_E_LIMIT);
    assert_string_equal(t, "INVALID");
    assert_string_equal(odk_scsi_sense_key_name(0x6), "UNIT ATTENTION");
    assert_string_equal(odk_scsi_sense_key_name(0xc), "RESERVED");
    assert_string_equal(odk_scsi_sense_key_name(0x10), "?");
}

/* ---- reply parsers ------------------------------------------------------- */

static const uint8_t std_inquiry[36] = {0x00, 0x80, 0x06, 0x12, 31,  0xb9, 0x50, 0x02, 'A',
                                        'C',  'M',  'E',  ' ',  ' ', ' ',  ' ',  'R',  'A',
                                        'I',  'D',  ' ',  'V',  'O', 'L',  'U',  'M',  'E',
                                        ' ',  ' ',  ' ',  ' ',  ' ', '1',  '.',  '0',  ' '};

static void test_inquiry_parse(void **state)
{
    odk_scsi_inquiry_data d;
    assert_int_equal(odk_scsi_inquiry_parse(std_inquiry, sizeof std_inquiry, &d), ODK_OK);
    assert_int_equal(d.device_type, 0);
    assert_int_equal(d.qualifier, 0);
    assert_true(d.removable && d.hisup && d.cmdque && d.protect && d.three_pc && d.sccs);
    assert_true(d.tpgs_implicit && d.tpgs_explicit && d.encserv && d.multip);
    assert_false(d.normaca);
    assert_int_equal(d.version, 6);
    assert_string_equal(d.vendor, "ACME");
    assert_string_equal(d.product, "RAID VOLUME");
    assert_string_equal(d.revision, "1.0");
    assert_int_equal(odk_scsi_inquiry_parse(std_inquiry, 35, &d), ODK_E_PROTOCOL);
    /* The header still comes back from a short reply. */
    assert_int_equal(d.version, 6);
    uint8_t bad[36];
    memcpy(bad, std_inquiry, sizeof bad);
    bad[3] = 0x01;
    assert_int_equal(odk_scsi_inquiry_parse(bad, sizeof bad, &d), ODK_E_PROTOCOL);
    /* Non-printable bytes become '.', NUL padding goes. */
    memcpy(bad, std_inquiry, sizeof bad);
    bad[9] = 0x01;
    memset(bad + 12, 0, 4);
    assert_int_equal(odk_scsi_inquiry_parse(bad, sizeof bad, &d), ODK_OK);
    assert_string_equal(d.vendor, "A.ME");
}

static void test_capacity_parse(void **state)
{
    odk_scsi_capacity c;
    const uint8_t rc10[8] = {0x00, 0x1f, 0xff, 0xff, 0x00, 0x00, 0x02, 0x00};
    assert_int_equal(odk_scsi_capacity10_parse(rc10, 8, &c), ODK_OK);
    assert_true(c.last_lba == 0x1fffff && c.block_count == 0x200000 && c.block_size == 512);
    assert_int_equal(odk_scsi_capacity10_parse(rc10, 7, &c), ODK_E_PROTOCOL);
    uint8_t rc16[32] = {0, 0, 0, 1, 0, 0, 0, 0xff, 0, 0, 0x10, 0, 0x05, 0x23, 0xc0, 0x07};
    assert_int_equal(odk_scsi_capacity16_parse(rc16, 32, &c), ODK_OK);
    assert_true(c.last_lba == 0x1000000ffull && c.block_size == 4096);
    assert_true(c.prot_en && c.p_type == 2 && c.p_i_exponent == 2);
    assert_int_equal(c.lb_per_pb_exponent, 3);
    assert_true(c.lbpme && c.lbprz);
    assert_int_equal(c.lowest_aligned_lba, 7);
    assert_int_equal(odk_scsi_capacity16_parse(rc16, 31, &c), ODK_E_PROTOCOL);
}

static void test_report_luns_parse(void **state)
{
    uint8_t b[8 + 24] = {0, 0, 0, 24};
    uint64_t l0 = odk_scsi_lun_from_number(0), l5 = odk_scsi_lun_from_number(5),
             l300 = odk_scsi_lun_from_number(300);
    for (int i = 0; i < 8; i++) {
        b[8 + i] = (uint8_t)(l0 >> (56 - 8 * i));
        b[16 + i] = (uint8_t)(l5 >> (56 - 8 * i));
        b[24 + i] = (uint8_t)(l300 >> (56 - 8 * i));
    }
    /* Flat addressing above 255: 0x41 0x2c. */
    assert_int_equal(b[24], 0x41);
    assert_int_equal(b[25], 0x2c);
    assert_int_equal(b[17], 5);
    uint64_t luns[4];
    size_t count = 0, total = 0;
    assert_int_equal(odk_scsi_report_luns_parse(b, sizeof b, luns, 4, &count, &total), ODK_OK);
    assert_int_equal(count, 3);
    assert_int_equal(total, 3);
    assert_int_equal(odk_scsi_lun_number(luns[0]), 0);
    assert_int_equal(odk_scsi_lun_number(luns[1]), 5);
    assert_int_equal(odk_scsi_lun_number(luns[2]), 300);
    /* A reply cut by the allocation length lists more than it holds. */
    assert_int_equal(odk_scsi_report_luns_parse(b, 16, luns, 4, &count, &total), ODK_OK);
    assert_int_equal(count, 1);
    assert_int_equal(total, 3);
    assert_int_equal(odk_scsi_report_luns_parse(b, sizeof b, luns, 2, &count, NULL), ODK_OK);
    assert_int_equal(count, 2);
    b[3] = 23;
    assert_int_equal(odk_scsi_report_luns_parse(b, sizeof b, luns, 4, &count, NULL),
                     ODK_E_PROTOCOL);
    assert_int_equal(odk_scsi_report_luns_parse(b, 7, luns, 4, &count, NULL), ODK_E_PROTOCOL);
    assert_int_equal(odk_scsi_lun_number(0x0001000000000000ull | 1), -1);
    assert_int_equal(odk_scsi_lun_number(0x8000000000000000ull), -1);
}

static void test_vpd_parse(void **state)
{
    uint8_t bl[64] = {0, 0xb0, 0, 0x3c};
    bl[7] = 8;                 /* optimal granularity */
    bl[9] = 0x01;              /* max transfer 0x10000 */
    bl[23] = 0x40;             /* max unmap LBA count */
    bl[27] = 0x10;             /* descriptors */
    bl[31] = 0x08;             /* unmap granularity */
    bl[42] = 0x01, bl[43] = 0; /* max write same 0x100 */
    odk_scsi_block_limits l;
    assert_int_equal(odk_scsi_vpd_block_limits_parse(bl, sizeof bl, &l), ODK_OK);
    assert_int_equal(l.optimal_transfer_granularity, 8);
    assert_int_equal(l.maximum_transfer_length, 0x10000);
    assert_int_equal(l.maximum_unmap_lba_count, 0x40);
    assert_int_equal(l.maximum_unmap_descriptor_count, 0x10);
    assert_int_equal(l.optimal_unmap_granularity, 8);
    assert_true(l.maximum_write_same_length == 0x100);
    assert_int_equal(odk_scsi_vpd_block_limits_parse(bl, 63, &l), ODK_E_PROTOCOL);
    bl[1] = 0xb1;
    assert_int_equal(odk_scsi_vpd_block_limits_parse(bl, sizeof bl, &l), ODK_E_PROTOCOL);

    const uint8_t sn[12] = {0, 0x80, 0, 8, 'S', 'N', '1', '2', '3', ' ', ' ', ' '};
    char s[16];
    assert_int_equal(odk_scsi_vpd_serial_parse(sn, sizeof sn, s, sizeof s), ODK_OK);
    assert_string_equal(s, "SN123");
    assert_int_equal(odk_scsi_vpd_serial_parse(sn, sizeof sn, s, 3), ODK_E_LIMIT);
    assert_string_equal(s, "SN");
    assert_int_equal(odk_scsi_vpd_serial_parse(sn, 11, s, sizeof s), ODK_E_PROTOCOL);
}

/* ---- formatters ---------------------------------------------------------- */

static void test_format(void **state)
{
    char out[2048];
    assert_int_equal(
        odk_scsi_format_inquiry(std_inquiry, sizeof std_inquiry, false, out, sizeof out), ODK_OK);
    assert_non_null(strstr(out, "vendor: ACME\nproduct: RAID VOLUME\nrevision: 1.0\n"));
    assert_non_null(strstr(out, "device type: 0x00 (direct-access block device)\n"));
    assert_non_null(strstr(out, "version: 0x06 (SPC-4)\n"));
    assert_non_null(strstr(out, "ALUA: implicit and explicit\n"));
    assert_int_equal(odk_scsi_format_inquiry(std_inquiry, 20, false, out, sizeof out),
                     ODK_E_PROTOCOL);
    assert_non_null(strstr(out, "not standard INQUIRY data: 20 bytes"));

    const uint8_t id[4 + 12 + 8] = {0, 0x83, 0, 20, 0x01, 0x03, 0, 8, 0x30, 1,   2,   3,
                                    4, 5,    6, 7,  0x02, 0x01, 0, 4, 'O',  'D', 'K', ' '};
    assert_int_equal(odk_scsi_format_inquiry(id, sizeof id, true, out, sizeof out), ODK_OK);
    assert_non_null(strstr(out, "designator: NAA, logical unit: 0x3001020304050607\n"));
    assert_non_null(strstr(out, "designator: T10 vendor ID, logical unit: ODK \n"));
    /* A page length past the data is reported. */
    assert_int_equal(odk_scsi_format_inquiry(id, sizeof id - 1, true, out, sizeof out),
                     ODK_E_PROTOCOL);

    const uint8_t rc16[32] = {0, 0, 0, 0, 0, 0x1f, 0xff, 0xff, 0, 0, 0x02, 0, 0, 0, 0x80, 0};
    assert_int_equal(odk_scsi_format_capacity(rc16, 32, true, out, sizeof out), ODK_OK);
    assert_non_null(strstr(out, "blocks: 2097152\n"));
    assert_non_null(strstr(out, "capacity: 1073741824 bytes (1.00 GiB)\n"));
    assert_non_null(strstr(out, "thin provisioned: yes\n"));
    const uint8_t rc10[8] = {0xff, 0xff, 0xff, 0xff, 0, 0, 2, 0};
    assert_int_equal(odk_scsi_format_capacity(rc10, 8, false, out, sizeof out), ODK_OK);
    assert_non_null(strstr(out, "ask (16)"));

    assert_int_equal(odk_scsi_format_sense(fixed_field, sizeof fixed_field, out, sizeof out),
                     ODK_OK);
    assert_non_null(strstr(out, "ILLEGAL REQUEST: INVALID FIELD IN CDB, byte 3 bit 7\n"));
    assert_non_null(strstr(out, "response code: 0x70 (fixed, current)\n"));
    assert_non_null(strstr(out, "sense-key specific: byte 3 bit 7\n"));
    assert_non_null(strstr(out, "bytes: 70 00 05 00"));
    assert_int_equal(odk_scsi_format_sense(fixed_field, sizeof fixed_field, out, 20), ODK_E_LIMIT);
    assert_int_equal(strlen(out), 19);
    const uint8_t junk[3] = {0x12, 0x34, 0x56};
    assert_int_equal(odk_scsi_format_sense(junk, sizeof junk, out, sizeof out), ODK_E_PROTOCOL);
    assert_non_null(strstr(out, "bytes: 12 34 56"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_build),
        cmocka_unit_test(test_fixed_parse),
        cmocka_unit_test(test_descriptor_build_parse),
        cmocka_unit_test(test_sense_specific),
        cmocka_unit_test(test_asc_table),
        cmocka_unit_test(test_inquiry_parse),
        cmocka_unit_test(test_capacity_parse),
        cmocka_unit_test(test_report_luns_parse),
        cmocka_unit_test(test_vpd_parse),
        cmocka_unit_test(test_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
