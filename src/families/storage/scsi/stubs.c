/* SPDX-License-Identifier: MIT */
/* Placeholders: replaced file by file as the library is implemented. */
#include "odk/scsi.h"
#include "odk/status.h"

int odk_scsi_build_inquiry(odk_scsi_cdb *cdb, bool evpd, uint8_t page, uint16_t allocation_length)
{
    return ODK_E_UNSUPPORTED;
}

int odk_scsi_build_test_unit_ready(odk_scsi_cdb *cdb)
{
    return ODK_E_UNSUPPORTED;
}

int odk_scsi_build_request_sense(odk_scsi_cdb *cdb, bool desc, uint8_t allocation_length)
{
    return ODK_E_UNSUPPORTED;
}

int odk_scsi_build_read_capacity_10(odk_scsi_cdb *cdb)
{
    return ODK_E_UNSUPPORTED;
}

int odk_scsi_build_read_capacity_16(odk_scsi_cdb *cdb, uint32_t allocation_length)
{
    return ODK_E_UNSUPPORTED;
}

int odk_scsi_build_read_10(odk_scsi_cdb *cdb, uint64_t lba, uint32_t blocks, unsigned flags)
{
    return ODK_E_UNSUPPORTED;
}

int odk_scsi_build_write_10(odk_scsi_cdb *cdb, uint64_t lba, uint32_t blocks, unsigned flags)
{
    return ODK_E_UNSUPPORTED;
}

int odk_scsi_build_read_16(odk_scsi_cdb *cdb, uint64_t lba, uint32_t blocks, unsigned flags)
{
    return ODK_E_UNSUPPORTED;
}

int odk_scsi_build_write_16(odk_scsi_cdb *cdb, uint64_t lba, uint32_t blocks, unsigned flags)
{
    return ODK_E_UNSUPPORTED;
}

int odk_scsi_build_read(odk_scsi_cdb *cdb, uint64_t lba, uint32_t blocks, unsigned flags)
{
    return ODK_E_UNSUPPORTED;
}

int odk_scsi_build_write(odk_scsi_cdb *cdb, uint64_t lba, uint32_t blocks, unsigned flags)
{
    return ODK_E_UNSUPPORTED;
}

int odk_scsi_build_synchronize_cache_10(odk_scsi_cdb *cdb, uint64_t lba, uint32_t blocks, bool immed)
{
    return ODK_E_UNSUPPORTED;
}

int odk_scsi_build_synchronize_cache_16(odk_scsi_cdb *cdb, uint64_t lba, uint32_t blocks, bool immed)
{
    return ODK_E_UNSUPPORTED;
}

int odk_scsi_build_mode_sense_6(odk_scsi_cdb *cdb, bool dbd, uint8_t pc, uint8_t page, uint8_t subpage, uint8_t allocation_length)
{
    return ODK_E_UNSUPPORTED;
}

int odk_scsi_build_mode_sense_10(odk_scsi_cdb *cdb, bool llbaa, bool dbd, uint8_t pc, uint8_t page, uint8_t subpage, uint16_t allocation_length)
{
    return ODK_E_UNSUPPORTED;
}

int odk_scsi_build_mode_select_6(odk_scsi_cdb *cdb, bool pf, bool sp, uint8_t parameter_list_length)
{
    return ODK_E_UNSUPPORTED;
}

int odk_scsi_build_mode_select_10(odk_scsi_cdb *cdb, bool pf, bool sp, uint16_t parameter_list_length)
{
    return ODK_E_UNSUPPORTED;
}

int odk_scsi_build_report_luns(odk_scsi_cdb *cdb, uint8_t select_report, uint32_t allocation_length)
{
    return ODK_E_UNSUPPORTED;
}

int odk_scsi_build_unmap(odk_scsi_cdb *cdb, bool anchor, const odk_scsi_unmap_range *ranges, size_t n, uint8_t *list, size_t list_cap, size_t *list_len)
{
    return ODK_E_UNSUPPORTED;
}

int odk_scsi_build_write_same_10(odk_scsi_cdb *cdb, uint64_t lba, uint16_t blocks, bool unmap)
{
    return ODK_E_UNSUPPORTED;
}

int odk_scsi_build_write_same_16(odk_scsi_cdb *cdb, uint64_t lba, uint32_t blocks, bool unmap)
{
    return ODK_E_UNSUPPORTED;
}

int odk_scsi_build_start_stop_unit(odk_scsi_cdb *cdb, bool immed, uint8_t power_condition, bool loej, bool start)
{
    return ODK_E_UNSUPPORTED;
}

int odk_scsi_cdb_check_fields(const uint8_t *cdb, size_t cdb_len, int device_type, unsigned flags, odk_scsi_cdb_error *err)
{
    return ODK_E_UNSUPPORTED;
}

int odk_scsi_cdb_check(const uint8_t *cdb, size_t cdb_len, int device_type, unsigned flags, odk_scsi_dir dir, size_t buffer_len, uint32_t block_size, odk_scsi_cdb_error *err)
{
    return ODK_E_UNSUPPORTED;
}

int odk_scsi_cdb_decode(const uint8_t *cdb, size_t cdb_len, odk_scsi_cdb_info *info)
{
    return ODK_E_UNSUPPORTED;
}

const char * odk_scsi_opcode_name(uint8_t opcode, uint8_t service_action)
{
    return NULL;
}

size_t odk_scsi_cdb_group_length(uint8_t opcode)
{
    return 0;
}

int odk_scsi_sense_parse(const uint8_t *buf, size_t len, odk_scsi_sense *out)
{
    return ODK_E_UNSUPPORTED;
}

int odk_scsi_sense_build(const odk_scsi_sense *s, bool descriptor, uint8_t *buf, size_t cap, size_t *len)
{
    return ODK_E_UNSUPPORTED;
}

void odk_scsi_sense_set_field_pointer(odk_scsi_sense *s, bool in_cdb, uint16_t byte, int bit)
{
    
}

const char * odk_scsi_sense_key_name(uint8_t key)
{
    return NULL;
}

int odk_scsi_asc_describe(uint8_t asc, uint8_t ascq, char *buf, size_t len)
{
    return ODK_E_UNSUPPORTED;
}

int odk_scsi_sense_specific_describe(const odk_scsi_sense *s, char *buf, size_t len)
{
    return ODK_E_UNSUPPORTED;
}

int odk_scsi_sense_describe(const odk_scsi_sense *s, char *buf, size_t len)
{
    return ODK_E_UNSUPPORTED;
}

int odk_scsi_inquiry_parse(const uint8_t *buf, size_t len, odk_scsi_inquiry_data *out)
{
    return ODK_E_UNSUPPORTED;
}

int odk_scsi_capacity10_parse(const uint8_t *buf, size_t len, odk_scsi_capacity *out)
{
    return ODK_E_UNSUPPORTED;
}

int odk_scsi_capacity16_parse(const uint8_t *buf, size_t len, odk_scsi_capacity *out)
{
    return ODK_E_UNSUPPORTED;
}

int odk_scsi_report_luns_parse(const uint8_t *buf, size_t len, uint64_t *luns, size_t max, size_t *count, size_t *total)
{
    return ODK_E_UNSUPPORTED;
}

uint64_t odk_scsi_lun_from_number(uint16_t number)
{
    return 0;
}

int odk_scsi_lun_number(uint64_t lun)
{
    return ODK_E_UNSUPPORTED;
}

int odk_scsi_vpd_block_limits_parse(const uint8_t *buf, size_t len, odk_scsi_block_limits *out)
{
    return ODK_E_UNSUPPORTED;
}

int odk_scsi_vpd_serial_parse(const uint8_t *buf, size_t len, char *serial, size_t serial_len)
{
    return ODK_E_UNSUPPORTED;
}

int odk_scsi_format_inquiry(const uint8_t *buf, size_t len, bool vpd, char *out, size_t out_len)
{
    return ODK_E_UNSUPPORTED;
}

int odk_scsi_format_capacity(const uint8_t *buf, size_t len, bool sixteen, char *out, size_t out_len)
{
    return ODK_E_UNSUPPORTED;
}

int odk_scsi_format_sense(const uint8_t *buf, size_t len, char *out, size_t out_len)
{
    return ODK_E_UNSUPPORTED;
}

int odk_scsi_disk_create(const odk_scsi_disk_config *config, const odk_scsi_disk_backend *backend, odk_scsi_disk **out)
{
    return ODK_E_UNSUPPORTED;
}

int odk_scsi_disk_create_file(const odk_scsi_disk_config *config, int fd, odk_scsi_disk **out)
{
    return ODK_E_UNSUPPORTED;
}

void odk_scsi_disk_free(odk_scsi_disk *disk)
{
    
}

int odk_scsi_disk_execute(odk_scsi_disk *disk, const uint8_t *cdb, size_t cdb_len, const void *data_out, size_t data_out_len, void *data_in, size_t data_in_len, odk_scsi_result *result)
{
    return ODK_E_UNSUPPORTED;
}

void odk_scsi_disk_set_not_ready(odk_scsi_disk *disk, bool not_ready)
{
    
}

void odk_scsi_disk_set_medium_error(odk_scsi_disk *disk, uint64_t lba, uint64_t blocks, bool writes)
{
    
}

void odk_scsi_disk_post_unit_attention(odk_scsi_disk *disk, uint8_t asc, uint8_t ascq)
{
    
}

uint32_t odk_scsi_disk_block_size(const odk_scsi_disk *disk)
{
    return 0;
}

uint64_t odk_scsi_disk_block_count(const odk_scsi_disk *disk)
{
    return 0;
}

const char * odk_scsi_disk_serial(const odk_scsi_disk *disk)
{
    return NULL;
}
