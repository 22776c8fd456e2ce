/* SPDX-License-Identifier: MIT */
/* Placeholders: replaced file by file as the library is implemented. */
#include "odk/scsi.h"
#include "odk/status.h"

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
