/* SPDX-License-Identifier: MIT */
/* odk/scsi.h — SCSI commands and sense data as a library: CDB builders, a
 * checker that refuses a malformed CDB before it is sent and names the
 * field, sense data built and decoded to words with the full T10 ASC/ASCQ
 * table, parsers and formatters for the replies an initiator reads, and an
 * SBC-3 direct-access disk that answers CDBs (the disk model's and a
 * virtual volume's target side).
 *
 * Byte layouts follow SPC-4/SPC-5 and SBC-3/SBC-4: multi-byte CDB and data
 * fields are big-endian.  A DriverKit port maps:
 *   SCSICmd_INQUIRY_StandardData   odk_scsi_inquiry_data
 *   SCSI_Sense_Data                odk_scsi_sense (decoded), raw bytes
 *   SCSIServiceResponse/TaskStatus odk_scsi_result.status
 *
 * CDBs, sense and data-in bytes are untrusted input (a device or a driver
 * wrote them): every parser checks lengths first and answers with an error,
 * never reads past len.  Every function except the odk_scsi_disk_* ones is
 * pure: no allocation, no blocking, any thread.  Text goes into a caller's
 * buffer and is always NUL-terminated when the buffer has room for one
 * byte; a function that truncates it returns ODK_E_LIMIT.
 */
#ifndef ODK_SCSI_H
#define ODK_SCSI_H

#include "odk/export.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- constants ----------------------------------------------------------- */

#define ODK_SCSI_CDB_MAX 16u         /* longest CDB odk sends (no variable-length CDBs) */
#define ODK_SCSI_SENSE_MAX 252u      /* longest sense data (SPC: 8 + 244 additional bytes) */
#define ODK_SCSI_SENSE_FIXED_LEN 18u /* fixed-format sense with no extra bytes */
#define ODK_SCSI_INQUIRY_STD_LEN 36u /* the standard INQUIRY data every device returns */

/* Operation codes the library knows (builders, checker, disk). */
enum {
    ODK_SCSI_OP_TEST_UNIT_READY = 0x00,
    ODK_SCSI_OP_REQUEST_SENSE = 0x03,
    ODK_SCSI_OP_INQUIRY = 0x12,
    ODK_SCSI_OP_MODE_SELECT_6 = 0x15,
    ODK_SCSI_OP_MODE_SENSE_6 = 0x1a,
    ODK_SCSI_OP_START_STOP_UNIT = 0x1b,
    ODK_SCSI_OP_READ_CAPACITY_10 = 0x25,
    ODK_SCSI_OP_READ_10 = 0x28,
    ODK_SCSI_OP_WRITE_10 = 0x2a,
    ODK_SCSI_OP_SYNCHRONIZE_CACHE_10 = 0x35,
    ODK_SCSI_OP_WRITE_SAME_10 = 0x41,
    ODK_SCSI_OP_UNMAP = 0x42,
    ODK_SCSI_OP_MODE_SELECT_10 = 0x55,
    ODK_SCSI_OP_MODE_SENSE_10 = 0x5a,
    ODK_SCSI_OP_READ_16 = 0x88,
    ODK_SCSI_OP_WRITE_16 = 0x8a,
    ODK_SCSI_OP_SYNCHRONIZE_CACHE_16 = 0x91,
    ODK_SCSI_OP_WRITE_SAME_16 = 0x93,
    ODK_SCSI_OP_SERVICE_ACTION_IN_16 = 0x9e, /* READ CAPACITY (16) is its action 0x10 */
    ODK_SCSI_OP_REPORT_LUNS = 0xa0,
};
#define ODK_SCSI_SA_READ_CAPACITY_16 0x10u

/* SCSI status (SAM-5). */
enum {
    ODK_SCSI_STATUS_GOOD = 0x00,
    ODK_SCSI_STATUS_CHECK_CONDITION = 0x02,
    ODK_SCSI_STATUS_CONDITION_MET = 0x04,
    ODK_SCSI_STATUS_BUSY = 0x08,
    ODK_SCSI_STATUS_RESERVATION_CONFLICT = 0x18,
    ODK_SCSI_STATUS_TASK_SET_FULL = 0x28,
    ODK_SCSI_STATUS_ACA_ACTIVE = 0x30,
    ODK_SCSI_STATUS_TASK_ABORTED = 0x40,
};

/* Sense keys (SPC-4 table 48). */
enum {
    ODK_SCSI_SENSE_NO_SENSE = 0x0,
    ODK_SCSI_SENSE_RECOVERED_ERROR = 0x1,
    ODK_SCSI_SENSE_NOT_READY = 0x2,
    ODK_SCSI_SENSE_MEDIUM_ERROR = 0x3,
    ODK_SCSI_SENSE_HARDWARE_ERROR = 0x4,
    ODK_SCSI_SENSE_ILLEGAL_REQUEST = 0x5,
    ODK_SCSI_SENSE_UNIT_ATTENTION = 0x6,
    ODK_SCSI_SENSE_DATA_PROTECT = 0x7,
    ODK_SCSI_SENSE_BLANK_CHECK = 0x8,
    ODK_SCSI_SENSE_VENDOR_SPECIFIC = 0x9,
    ODK_SCSI_SENSE_COPY_ABORTED = 0xa,
    ODK_SCSI_SENSE_ABORTED_COMMAND = 0xb,
    ODK_SCSI_SENSE_VOLUME_OVERFLOW = 0xd,
    ODK_SCSI_SENSE_MISCOMPARE = 0xe,
    ODK_SCSI_SENSE_COMPLETED = 0xf,
};

/* Peripheral device types (INQUIRY byte 0 bits 4-0) the checker tells
 * apart; ODK_SCSI_TYPE_ANY accepts every opcode the library knows. */
enum {
    ODK_SCSI_TYPE_DISK = 0x00, /* SBC direct-access block device */
    ODK_SCSI_TYPE_TAPE = 0x01,
    ODK_SCSI_TYPE_PROCESSOR = 0x03,
    ODK_SCSI_TYPE_CDROM = 0x05,
    ODK_SCSI_TYPE_ENCLOSURE = 0x0d,
    ODK_SCSI_TYPE_WELL_KNOWN_LU = 0x1e,
    ODK_SCSI_TYPE_UNKNOWN = 0x1f,
    ODK_SCSI_TYPE_ANY = -1,
};

/* Which way the data of a command moves. */
typedef enum odk_scsi_dir {
    ODK_SCSI_DIR_NONE = 0,
    ODK_SCSI_DIR_FROM_DEVICE = 1, /* data-in: the device writes the buffer */
    ODK_SCSI_DIR_TO_DEVICE = 2,   /* data-out: the device reads the buffer */
} odk_scsi_dir;

/* A built CDB: bytes[0..length) is what goes on the wire. */
typedef struct odk_scsi_cdb {
    uint8_t bytes[ODK_SCSI_CDB_MAX];
    uint8_t length;
} odk_scsi_cdb;

/* ---- CDB builders --------------------------------------------------------
 * Each fills *cdb completely (unused bytes zero, CONTROL byte 0) and
 * returns ODK_OK, or ODK_E_INVALID when a value does not fit its field
 * (the CDB is then zeroed).  cdb must not be NULL. */

/* INQUIRY (SPC-4 6.6): evpd false asks for the standard data (page must then
 * be 0); evpd true asks for VPD page (0x00 list, 0x80 unit serial number,
 * 0x83 device identification, 0xb0 block limits, 0xb1 block device
 * characteristics, or any other). */
ODK_PUBLIC int odk_scsi_build_inquiry(odk_scsi_cdb *cdb, bool evpd, uint8_t page,
                                      uint16_t allocation_length);
ODK_PUBLIC int odk_scsi_build_test_unit_ready(odk_scsi_cdb *cdb);
/* REQUEST SENSE (SPC-4 6.39): desc asks for descriptor-format sense. */
ODK_PUBLIC int odk_scsi_build_request_sense(odk_scsi_cdb *cdb, bool desc,
                                            uint8_t allocation_length);
ODK_PUBLIC int odk_scsi_build_read_capacity_10(odk_scsi_cdb *cdb);
ODK_PUBLIC int odk_scsi_build_read_capacity_16(odk_scsi_cdb *cdb, uint32_t allocation_length);

/* Flags of READ/WRITE (SBC-3 5.15, 5.38). */
#define ODK_SCSI_RW_FUA 0x08u /* force unit access: the data is on the medium when GOOD */
#define ODK_SCSI_RW_DPO 0x10u /* disable page out: do not keep the data in the cache */

/* READ/WRITE (10) take an LBA below 2^32 and up to 65535 blocks; the (16)
 * forms a 64-bit LBA and up to 2^32-1 blocks.  flags: ODK_SCSI_RW_*. */
ODK_PUBLIC int odk_scsi_build_read_10(odk_scsi_cdb *cdb, uint64_t lba, uint32_t blocks,
                                      unsigned flags);
ODK_PUBLIC int odk_scsi_build_write_10(odk_scsi_cdb *cdb, uint64_t lba, uint32_t blocks,
                                       unsigned flags);
ODK_PUBLIC int odk_scsi_build_read_16(odk_scsi_cdb *cdb, uint64_t lba, uint32_t blocks,
                                      unsigned flags);
ODK_PUBLIC int odk_scsi_build_write_16(odk_scsi_cdb *cdb, uint64_t lba, uint32_t blocks,
                                       unsigned flags);
/* The shortest READ/WRITE that carries lba and blocks: (10) when both fit,
 * else (16). */
ODK_PUBLIC int odk_scsi_build_read(odk_scsi_cdb *cdb, uint64_t lba, uint32_t blocks,
                                   unsigned flags);
ODK_PUBLIC int odk_scsi_build_write(odk_scsi_cdb *cdb, uint64_t lba, uint32_t blocks,
                                    unsigned flags);

/* SYNCHRONIZE CACHE (SBC-3 5.22): blocks 0 means from lba to the end. */
ODK_PUBLIC int odk_scsi_build_synchronize_cache_10(odk_scsi_cdb *cdb, uint64_t lba, uint32_t blocks,
                                                   bool immed);
ODK_PUBLIC int odk_scsi_build_synchronize_cache_16(odk_scsi_cdb *cdb, uint64_t lba, uint32_t blocks,
                                                   bool immed);

/* MODE SENSE (SPC-4 6.11, 6.12).  pc: 0 current, 1 changeable, 2 default,
 * 3 saved values.  dbd: no block descriptors; llbaa (10 only): long LBA
 * block descriptors.  page 0x3f with subpage 0 asks for every page. */
ODK_PUBLIC int odk_scsi_build_mode_sense_6(odk_scsi_cdb *cdb, bool dbd, uint8_t pc, uint8_t page,
                                           uint8_t subpage, uint8_t allocation_length);
ODK_PUBLIC int odk_scsi_build_mode_sense_10(odk_scsi_cdb *cdb, bool llbaa, bool dbd, uint8_t pc,
                                            uint8_t page, uint8_t subpage,
                                            uint16_t allocation_length);
/* MODE SELECT (SPC-4 6.9, 6.10): pf says the pages follow SPC's format
 * (set it); sp asks the device to save them. */
ODK_PUBLIC int odk_scsi_build_mode_select_6(odk_scsi_cdb *cdb, bool pf, bool sp,
                                            uint8_t parameter_list_length);
ODK_PUBLIC int odk_scsi_build_mode_select_10(odk_scsi_cdb *cdb, bool pf, bool sp,
                                             uint16_t parameter_list_length);

/* REPORT LUNS (SPC-4 6.33): select_report 0 all logical units, 1 well-known
 * only, 2 all; allocation_length at least 16. */
ODK_PUBLIC int odk_scsi_build_report_luns(odk_scsi_cdb *cdb, uint8_t select_report,
                                          uint32_t allocation_length);

/* One range of an UNMAP parameter list. */
typedef struct odk_scsi_unmap_range {
    uint64_t lba;
    uint32_t blocks;
} odk_scsi_unmap_range;

/* UNMAP (SBC-3 5.28) with its parameter list: writes the 8-byte header and
 * n 16-byte block descriptors into list (list_cap bytes), sets *list_len
 * and builds the CDB whose parameter list length is *list_len.
 * ODK_E_LIMIT when list_cap is too small or n exceeds 4095 (the list length
 * is 16 bits). */
ODK_PUBLIC int odk_scsi_build_unmap(odk_scsi_cdb *cdb, bool anchor,
                                    const odk_scsi_unmap_range *ranges, size_t n, uint8_t *list,
                                    size_t list_cap, size_t *list_len);

/* WRITE SAME (SBC-3 5.41, 5.42): one block of data-out written to blocks
 * blocks from lba; unmap asks the device to unmap them instead when the
 * block is all zeroes.  blocks 0 means to the end of the medium. */
ODK_PUBLIC int odk_scsi_build_write_same_10(odk_scsi_cdb *cdb, uint64_t lba, uint16_t blocks,
                                            bool unmap);
ODK_PUBLIC int odk_scsi_build_write_same_16(odk_scsi_cdb *cdb, uint64_t lba, uint32_t blocks,
                                            bool unmap);

/* START STOP UNIT (SBC-3 5.25): power_condition 0 means start/loej apply;
 * immed returns before the operation completes. */
ODK_PUBLIC int odk_scsi_build_start_stop_unit(odk_scsi_cdb *cdb, bool immed,
                                              uint8_t power_condition, bool loej, bool start);

/* ---- CDB checker --------------------------------------------------------- */

/* What is wrong with a CDB, for a caller that wants more than the text. */
typedef struct odk_scsi_cdb_error {
    uint8_t byte;      /* CDB byte of the offending field */
    int8_t bit;        /* its most significant bit, or -1 for the whole byte(s) */
    uint8_t asc, ascq; /* what a device answers: 0x20/0x00 INVALID COMMAND OPERATION CODE,
                          0x24/0x00 INVALID FIELD IN CDB; 0/0 when only the initiator can
                          see the fault (length against the buffer) */
    char text[160];    /* "INQUIRY: byte 1 bits 7-1 are reserved and set (0x80)" */
} odk_scsi_cdb_error;

/* Flags of odk_scsi_cdb_check. */
#define ODK_SCSI_CHECK_STRICT 0x1u /* refuse opcodes the library does not know */

/* Checks a CDB the way a device would, without a buffer: its length for its
 * group code (6, 10, 12, 16; any 6..16 for vendor-specific groups 6 and 7),
 * that the opcode is defined for device_type (an ODK_SCSI_TYPE_*), reserved
 * bits, and field values the standard forbids (an INQUIRY page without
 * EVPD, a READ CAPACITY (16) without its service action, ...).  A CDB with
 * an opcode the library does not know is checked for its length only,
 * unless flags has ODK_SCSI_CHECK_STRICT.  Returns ODK_OK, or
 * ODK_E_PROTOCOL with err (may be NULL) naming the first fault;
 * ODK_E_INVALID when cdb is NULL or cdb_len is 0. */
ODK_PUBLIC int odk_scsi_cdb_check_fields(const uint8_t *cdb, size_t cdb_len, int device_type,
                                         unsigned flags, odk_scsi_cdb_error *err);

/* odk_scsi_cdb_check_fields, then the CDB against the buffer it is sent
 * with: the direction the command moves data, and its allocation or
 * transfer length in bytes against buffer_len (block counts times
 * block_size; block_size 0 skips the comparison for commands that count
 * blocks).  A data-in command may have a buffer larger than its allocation
 * length; every other mismatch is refused.  Errors as
 * odk_scsi_cdb_check_fields. */
ODK_PUBLIC int odk_scsi_cdb_check(const uint8_t *cdb, size_t cdb_len, int device_type,
                                  unsigned flags, odk_scsi_dir dir, size_t buffer_len,
                                  uint32_t block_size, odk_scsi_cdb_error *err);

/* What a CDB asks for, as far as the library knows its opcode. */
typedef struct odk_scsi_cdb_info {
    const char *name; /* "READ (10)", or NULL for an unknown opcode; static */
    odk_scsi_dir dir; /* ODK_SCSI_DIR_NONE for unknown opcodes */
    uint64_t lba;     /* commands that address blocks; else 0 */
    uint32_t blocks;  /* transfer length in blocks (0 for WRITE SAME's "to the end") */
    uint32_t length;  /* allocation or parameter list length in bytes, or blocks for
                         READ/WRITE; see length_in_blocks */
    bool length_in_blocks;
    bool fua, dpo;
} odk_scsi_cdb_info;

/* Decodes a CDB's opcode, direction and lengths (no checks beyond what
 * reading them needs).  ODK_OK; ODK_E_NOT_FOUND for an opcode the library
 * does not know (info->name NULL); ODK_E_PROTOCOL when cdb_len is too
 * short for the opcode; ODK_E_INVALID for NULL arguments. */
ODK_PUBLIC int odk_scsi_cdb_decode(const uint8_t *cdb, size_t cdb_len, odk_scsi_cdb_info *info);

/* "READ (10)", "SERVICE ACTION IN (16)/READ CAPACITY (16)", or NULL for an
 * opcode the library does not know.  Static storage. */
ODK_PUBLIC const char *odk_scsi_opcode_name(uint8_t opcode, uint8_t service_action);

/* The CDB length for an opcode's group code: 6, 10, 12 or 16, or 0 for the
 * reserved and vendor-specific groups (3, 6, 7). */
ODK_PUBLIC size_t odk_scsi_cdb_group_length(uint8_t opcode);

/* ---- sense data ---------------------------------------------------------- */

/* Sense data, decoded.  Fields a format does not carry are 0/false. */
typedef struct odk_scsi_sense {
    uint8_t response_code; /* 0x70/0x71 fixed, 0x72/0x73 descriptor */
    bool descriptor;       /* descriptor format */
    bool deferred;         /* 0x71/0x73: about an earlier command */
    uint8_t key, asc, ascq;
    bool info_valid;         /* information field present and valid */
    uint64_t information;    /* e.g. the first LBA that failed */
    bool command_info_valid; /* command-specific information present */
    uint64_t command_info;
    bool sks_valid;          /* sense-key-specific bytes present (SKSV) */
    uint8_t sks[3];          /* raw: byte 0 bit 7 is SKSV */
    bool filemark, eom, ili; /* stream commands; ILI: incorrect length */
    uint8_t fru;             /* field replaceable unit code, 0 if none */
} odk_scsi_sense;

/* Parses sense data of either format.  Returns ODK_OK; ODK_E_PROTOCOL when
 * len is too short for the header (fixed: 8 bytes, more when the additional
 * length says so, truncated fields are reported absent; descriptor: 8) or
 * the response code is neither 0x70..0x73 (vendor 0x7f is refused too);
 * ODK_E_INVALID for NULL arguments.  Descriptors past len or malformed are
 * ignored, as SPC tells initiators to. */
ODK_PUBLIC int odk_scsi_sense_parse(const uint8_t *buf, size_t len, odk_scsi_sense *out);

/* Builds sense data in the format descriptor says (fixed 0x70/0x71 or
 * descriptor 0x72/0x73, deferred from s->deferred); s->response_code is
 * ignored.  Fixed format sets VALID only when the information fits 32 bits.
 * Writes at most cap bytes, sets *len.  ODK_E_LIMIT when cap is below the
 * data's length (18 fixed; 8 + descriptors); ODK_E_INVALID for NULL. */
ODK_PUBLIC int odk_scsi_sense_build(const odk_scsi_sense *s, bool descriptor, uint8_t *buf,
                                    size_t cap, size_t *len);

/* Sets the sense-key-specific field pointer of ILLEGAL REQUEST: in_cdb
 * (C/D), the byte, and bit (0..7, or -1 when no bit is named). */
ODK_PUBLIC void odk_scsi_sense_set_field_pointer(odk_scsi_sense *s, bool in_cdb, uint16_t byte,
                                                 int bit);

/* "ILLEGAL REQUEST".  Static; never NULL ("RESERVED" for 0x0c, "?" beyond 0x0f). */
ODK_PUBLIC const char *odk_scsi_sense_key_name(uint8_t key);

/* The text of an ASC/ASCQ pair from T10's table (asc-num.txt), ranges
 * included: 0x40/0x85 gives "DIAGNOSTIC FAILURE ON COMPONENT 85h".  ASC or
 * ASCQ 0x80..0xff outside the table give "VENDOR SPECIFIC (ASC 0xNN, ASCQ
 * 0xNN)".  Returns ODK_OK for a known or vendor-specific pair,
 * ODK_E_NOT_FOUND (text "ASC 0xNN ASCQ 0xNN") for a reserved one,
 * ODK_E_LIMIT when truncated. */
ODK_PUBLIC int odk_scsi_asc_describe(uint8_t asc, uint8_t ascq, char *buf, size_t len);

/* The sense-key-specific field in words: "byte 3 bit 7" (field pointer,
 * "parameter byte 12" when C/D is 0), "progress 42%", "actual retry count
 * 3", "segment 2 byte 8", "unit attention queue overflowed".  Empty text
 * when s has none.  ODK_OK or ODK_E_LIMIT. */
ODK_PUBLIC int odk_scsi_sense_specific_describe(const odk_scsi_sense *s, char *buf, size_t len);

/* One line: "ILLEGAL REQUEST: INVALID FIELD IN CDB, byte 3 bit 7", with
 * ", information 0x1234" and "(deferred)" when present.  ODK_OK or
 * ODK_E_LIMIT. */
ODK_PUBLIC int odk_scsi_sense_describe(const odk_scsi_sense *s, char *buf, size_t len);

/* ---- reply parsers ------------------------------------------------------- */

/* Standard INQUIRY data (SPC-4 6.6.2).  Strings have their trailing spaces
 * removed and non-printable bytes replaced by '.'. */
typedef struct odk_scsi_inquiry_data {
    uint8_t qualifier;   /* peripheral qualifier, byte 0 bits 7-5 */
    uint8_t device_type; /* byte 0 bits 4-0 (ODK_SCSI_TYPE_*) */
    bool removable;
    uint8_t version; /* 0x06 SPC-4, 0x07 SPC-5 */
    bool normaca, hisup;
    uint8_t response_format; /* 2 */
    uint8_t additional_length;
    bool sccs, acc, tpgs_implicit, tpgs_explicit, three_pc, protect;
    bool encserv, multip, cmdque;
    char vendor[9], product[17], revision[5];
} odk_scsi_inquiry_data;

/* ODK_OK; ODK_E_PROTOCOL when len < 36 or the response format is not 2
 * (the text fields then are not filled); ODK_E_INVALID for NULL. */
ODK_PUBLIC int odk_scsi_inquiry_parse(const uint8_t *buf, size_t len, odk_scsi_inquiry_data *out);

/* READ CAPACITY (10) or (16) data. */
typedef struct odk_scsi_capacity {
    uint64_t last_lba;    /* 0xffffffff from (10) means "ask (16)" */
    uint64_t block_count; /* last_lba + 1 */
    uint32_t block_size;
    bool prot_en;   /* (16) only */
    uint8_t p_type; /* protection type - 1 when prot_en */
    uint8_t p_i_exponent;
    uint8_t lb_per_pb_exponent; /* logical blocks per physical block, log2 */
    bool lbpme, lbprz;          /* thin provisioned; unmapped blocks read zero */
    uint16_t lowest_aligned_lba;
} odk_scsi_capacity;

/* (10) needs 8 bytes, (16) 32 (fewer: ODK_E_PROTOCOL).  ODK_E_INVALID for
 * NULL. */
ODK_PUBLIC int odk_scsi_capacity10_parse(const uint8_t *buf, size_t len, odk_scsi_capacity *out);
ODK_PUBLIC int odk_scsi_capacity16_parse(const uint8_t *buf, size_t len, odk_scsi_capacity *out);

/* REPORT LUNS data: stores up to max LUNs (8-byte, as on the wire, in host
 * order) in luns, sets *count to how many were stored and *total (may be
 * NULL) to how many the device listed (more than stored when the
 * allocation length or max was too small).  ODK_E_PROTOCOL when len < 8 or
 * the list length is not a multiple of 8. */
ODK_PUBLIC int odk_scsi_report_luns_parse(const uint8_t *buf, size_t len, uint64_t *luns,
                                          size_t max, size_t *count, size_t *total);

/* A LUN number (0..16383) as the single-level 8-byte LUN REPORT LUNS lists
 * (peripheral addressing below 256, flat addressing above), and back:
 * odk_scsi_lun_number gives -1 for a LUN that is neither. */
ODK_PUBLIC uint64_t odk_scsi_lun_from_number(uint16_t number);
ODK_PUBLIC int odk_scsi_lun_number(uint64_t lun);

/* Block Limits VPD page (0xb0, SBC-3 6.6.4): the fields a block layer needs. */
typedef struct odk_scsi_block_limits {
    uint16_t optimal_transfer_granularity; /* blocks */
    uint32_t maximum_transfer_length;      /* blocks, 0: no limit */
    uint32_t optimal_transfer_length;
    uint32_t maximum_unmap_lba_count; /* 0: UNMAP not supported */
    uint32_t maximum_unmap_descriptor_count;
    uint32_t optimal_unmap_granularity;
    uint64_t maximum_write_same_length;
} odk_scsi_block_limits;

/* ODK_E_PROTOCOL unless buf is page 0xb0 with at least 64 bytes (the page
 * length SBC-3 gives it). */
ODK_PUBLIC int odk_scsi_vpd_block_limits_parse(const uint8_t *buf, size_t len,
                                               odk_scsi_block_limits *out);

/* Unit Serial Number VPD page (0x80) into serial (trailing spaces removed).
 * ODK_E_PROTOCOL when buf is not page 0x80 or shorter than its length
 * says; ODK_E_LIMIT when serial_len is too small (truncated). */
ODK_PUBLIC int odk_scsi_vpd_serial_parse(const uint8_t *buf, size_t len, char *serial,
                                         size_t serial_len);

/* ---- formatters (what `odkctl scsi` prints) -------------------------------
 * Several lines of "name: value" text into out.  ODK_OK, ODK_E_LIMIT when
 * truncated, or the parser's error (the text then says what was wrong). */

/* Standard INQUIRY data, or a VPD page (0x00, 0x80, 0x83, 0xb0, 0xb1 in
 * words; other pages as hex) when buf[1] is a page code and the data is
 * not standard (pass vpd true). */
ODK_PUBLIC int odk_scsi_format_inquiry(const uint8_t *buf, size_t len, bool vpd, char *out,
                                       size_t out_len);
/* READ CAPACITY data: sixteen says which command returned it.  Prints the
 * size in bytes and in binary units. */
ODK_PUBLIC int odk_scsi_format_capacity(const uint8_t *buf, size_t len, bool sixteen, char *out,
                                        size_t out_len);
/* Sense data: the one-line description, then each field. */
ODK_PUBLIC int odk_scsi_format_sense(const uint8_t *buf, size_t len, char *out, size_t out_len);

/* ---- SBC-3 disk emulation -------------------------------------------------
 * A direct-access logical unit that answers CDBs: INQUIRY (standard and VPD
 * 00, 80, 83, b0, b1, and b2 when thin-provisioned), TEST UNIT READY,
 * REQUEST SENSE, READ CAPACITY 10/16, READ/WRITE 10/16, SYNCHRONIZE CACHE 10/16, MODE SENSE/SELECT
 * 6/10 (caching and control pages), REPORT LUNS, UNMAP, WRITE SAME 10/16, START STOP UNIT; anything
 * else gets CHECK CONDITION with real sense.
 *
 * Its blocks live behind a backend: a sparse file (odk_scsi_disk_create_file)
 * or the caller's callbacks (a RAID volume).  A disk is not thread-safe:
 * the caller serializes every call on one disk (one queue owns it).  The
 * execute function blocks on the backend's I/O. */

typedef struct odk_scsi_disk odk_scsi_disk;

/* Where a disk's blocks live.  Offsets and lengths are in bytes, aligned
 * to the block size and inside the disk.  Each returns ODK_OK, or an error
 * the disk turns into sense: ODK_E_IO gives MEDIUM ERROR (UNRECOVERED READ
 * ERROR or WRITE ERROR), ODK_E_GONE or ODK_E_STATE NOT READY, anything else
 * HARDWARE ERROR. */
typedef struct odk_scsi_disk_backend {
    int (*read)(void *ctx, uint64_t offset, void *buf, size_t len);
    /* fua: the data must be durable when this returns. */
    int (*write)(void *ctx, uint64_t offset, const void *buf, size_t len, bool fua);
    int (*flush)(void *ctx);
    /* May be NULL: the disk is then not thin-provisioned (no UNMAP; WRITE
     * SAME with UNMAP writes zeroes).  Unmapped blocks must read as zeroes. */
    int (*unmap)(void *ctx, uint64_t offset, uint64_t len);
    void *ctx;
} odk_scsi_disk_backend;

typedef struct odk_scsi_disk_config {
    uint32_t block_size;  /* a power of two, 512..65536 */
    uint64_t block_count; /* at least 1 */
    /* ASCII, copied; padded with spaces or truncated to 8, 16, 4 and 32
     * bytes.  NULL: "ODK", "SIM DISK", "0001", and a serial derived from
     * the disk's address. */
    const char *vendor, *product, *revision, *serial;
    uint64_t naa_id;              /* NAA designator (VPD 0x83); 0: an NAA 3 (locally assigned) id
                                     derived from the serial */
    bool write_cache;             /* WCE in the caching mode page (changeable by MODE SELECT) */
    bool descriptor_sense;        /* D_SENSE in the control mode page (changeable) */
    bool power_on_reset;          /* the first command gets UNIT ATTENTION: POWER ON OCCURRED */
    uint32_t max_transfer_blocks; /* Block Limits; 0: 65536 blocks */
} odk_scsi_disk_config;

/* The outcome of one CDB. */
typedef struct odk_scsi_result {
    uint8_t status; /* ODK_SCSI_STATUS_* */
    uint8_t sense[ODK_SCSI_SENSE_MAX];
    size_t sense_len;   /* 0 unless CHECK CONDITION */
    size_t transferred; /* bytes moved to data_in or taken from data_out */
    size_t residual;    /* the buffer's length minus transferred */
    bool overflow;      /* the command had more data than the buffer held */
} odk_scsi_result;

/* A disk over the caller's backend (copied; ctx borrowed until the disk is
 * freed).  New object: free with odk_scsi_disk_free.  ODK_E_INVALID for a
 * bad config or a backend without read, write or flush; ODK_E_NOMEM. */
ODK_PUBLIC int odk_scsi_disk_create(const odk_scsi_disk_config *config,
                                    const odk_scsi_disk_backend *backend, odk_scsi_disk **out);

/* A disk over a file (fd borrowed, duplicated: the caller may close it).
 * The file is extended (sparse) to block_size * block_count when shorter;
 * UNMAP and WRITE SAME with UNMAP punch holes (fallocate).  Errors as
 * odk_scsi_disk_create, and ODK_E_IO when the file cannot be sized. */
ODK_PUBLIC int odk_scsi_disk_create_file(const odk_scsi_disk_config *config, int fd,
                                         odk_scsi_disk **out);

/* Frees disk (NULL is fine).  Does not flush. */
ODK_PUBLIC void odk_scsi_disk_free(odk_scsi_disk *disk);

/* Executes one CDB.  data_out (data_out_len bytes) is what the initiator
 * sends, data_in (data_in_len) where the reply goes; either may be NULL
 * with length 0.  Fills *result with status, sense and residual.  Returns
 * ODK_OK whenever the command ran, whatever its SCSI status (a malformed
 * CDB is a CHECK CONDITION, not an error); ODK_E_INVALID for NULL disk,
 * cdb or result.  Blocks on the backend. */
ODK_PUBLIC int odk_scsi_disk_execute(odk_scsi_disk *disk, const uint8_t *cdb, size_t cdb_len,
                                     const void *data_out, size_t data_out_len, void *data_in,
                                     size_t data_in_len, odk_scsi_result *result);

/* Fault injection (the HBA model's).  not_ready: every medium access gets
 * NOT READY, LOGICAL UNIT NOT READY, MANUAL INTERVENTION REQUIRED until
 * cleared. */
ODK_PUBLIC void odk_scsi_disk_set_not_ready(odk_scsi_disk *disk, bool not_ready);

/* Reads (and writes, when writes is true) touching [lba, lba + blocks) get
 * MEDIUM ERROR with the first failing LBA in the information field.
 * blocks 0 clears the medium errors.  One range at a time: a new call
 * replaces it. */
ODK_PUBLIC void odk_scsi_disk_set_medium_error(odk_scsi_disk *disk, uint64_t lba, uint64_t blocks,
                                               bool writes);

/* Queues a UNIT ATTENTION (asc/ascq) for the next command, e.g. 0x29/0x00
 * after a reset or 0x2a/0x09 CAPACITY DATA HAS CHANGED. */
ODK_PUBLIC void odk_scsi_disk_post_unit_attention(odk_scsi_disk *disk, uint8_t asc, uint8_t ascq);

/* The disk's geometry and identity as configured (borrowed strings, valid
 * until the disk is freed; vendor and product trimmed). */
ODK_PUBLIC uint32_t odk_scsi_disk_block_size(const odk_scsi_disk *disk);
ODK_PUBLIC uint64_t odk_scsi_disk_block_count(const odk_scsi_disk *disk);
ODK_PUBLIC const char *odk_scsi_disk_serial(const odk_scsi_disk *disk);

#ifdef __cplusplus
}
#endif
#endif
