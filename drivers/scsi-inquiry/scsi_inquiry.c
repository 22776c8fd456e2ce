/* SPDX-License-Identifier: MIT */
/* scsi-inquiry: a peripheral driver (odk/storage.h's peripheral role) for
 * direct-access LUNs.  It matches an OdkSCSILUN node, opens it, and lets
 * apps send it standard INQUIRY, VPD pages and raw CDBs, vendor-specific
 * ones too (scsi_inquiry.h has the selectors).  Every CDB goes through the
 * SCSI library's checker first, so a malformed one comes back with the
 * byte, bit and field at fault instead of reaching the device; when the
 * device refuses one, its sense comes back in words ("ILLEGAL REQUEST:
 * INVALID FIELD IN CDB, byte 1 bit 7").  The forum's INQUIRY case, done
 * right. */
#include <stdio.h>
#include <string.h>

#include "odk/driver.h"
#include "odk/memory.h"
#include "odk/scsi.h"
#include "odk/storage.h"
#include "scsi_inquiry.h"

struct inq {
    odk_storage_peripheral *p;
    odk_memory *buf; /* the data buffer every CDB uses (a memfd the controller fills) */
    uint8_t *addr;
};

static int inq_start(odk_driver *drv)
{
    struct inq *q = odk_driver_state(drv);
    int st = odk_storage_peripheral_open(drv, &q->p);
    if (st == ODK_OK)
        st = odk_memory_create(SCSI_INQ_DATA_MAX, ODK_MEM_INOUT, &q->buf);
    if (st == ODK_OK)
        st = odk_memory_map(q->buf, ODK_MAP_READ | ODK_MAP_WRITE, (void **)&q->addr);
    if (st < 0) {
        odk_error("scsi-inquiry: cannot open the LUN: %s", odk_strerror(st));
        return st;
    }
    odk_info("scsi-inquiry: LUN of type 0x%02x ready", odk_storage_peripheral_type(q->p));
    return odk_driver_register_service(drv);
}

static void inq_stop(odk_driver *drv)
{
    struct inq *q = odk_driver_state(drv);
    odk_storage_peripheral_close(q->p);
    if (q->buf)
        odk_release(q->buf);
    q->p = NULL;
    q->buf = NULL;
}

/* Sends cdb with out_len bytes of data out (already in the buffer) or up
 * to in_len bytes in, and fills the reply and the data after it. */
static int inq_send(struct inq *q, odk_call *call, const uint8_t *cdb, size_t cdb_len,
                    odk_scsi_dir dir, uint64_t out_len, uint64_t in_len, unsigned flags,
                    uint32_t timeout_ms)
{
    struct scsi_inq_reply rep;
    memset(&rep, 0, sizeof rep);
    uint64_t len = dir == ODK_SCSI_DIR_TO_DEVICE     ? out_len
                   : dir == ODK_SCSI_DIR_FROM_DEVICE ? in_len
                                                     : 0;
    if (dir == ODK_SCSI_DIR_FROM_DEVICE && call->struct_out_cap < sizeof rep + in_len)
        return ODK_E_INVALID; /* the app has no room for what it asks */
    if (call->struct_out_cap < sizeof rep)
        return ODK_E_INVALID;
    odk_scsi_cdb_result res;
    odk_scsi_cdb_error err;
    memset(&err, 0, sizeof err);
    int st = odk_storage_peripheral_send_cdb(q->p, cdb, cdb_len, dir, dir ? q->buf : NULL, 0, len,
                                             timeout_ms, flags, &res, &err);
    rep.result = st;
    if (st == ODK_E_PROTOCOL) {
        snprintf(rep.text, sizeof rep.text, "%s", err.text);
    } else if (st == ODK_OK) {
        rep.service_response = res.service_response;
        rep.status = res.status;
        rep.transferred = (uint32_t)res.transferred;
        rep.sense_len = res.sense_len;
        memcpy(rep.sense, res.sense, res.sense_len);
        odk_scsi_sense s;
        if (res.sense_len && odk_scsi_sense_parse(res.sense, res.sense_len, &s) == ODK_OK)
            odk_scsi_sense_describe(&s, rep.text, sizeof rep.text);
        else if (res.service_response == ODK_SCSI_TASK_TIMED_OUT)
            snprintf(rep.text, sizeof rep.text,
                     "TASK TIMED OUT: the controller did not complete the CDB in %u ms",
                     timeout_ms);
        else if (res.service_response != ODK_SCSI_TASK_COMPLETE)
            snprintf(rep.text, sizeof rep.text, "SERVICE FAILURE: the LUN did not answer");
    } else {
        return st; /* the controller went away or did not answer */
    }
    uint8_t *out = call->struct_out;
    memcpy(out, &rep, sizeof rep);
    size_t got = dir == ODK_SCSI_DIR_FROM_DEVICE && st == ODK_OK ? rep.transferred : 0;
    memcpy(out + sizeof rep, q->addr, got);
    call->struct_out_len = sizeof rep + got;
    return ODK_OK;
}

static int inq_standard(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct inq *q = odk_driver_state(drv);
    (void)uc;
    odk_scsi_cdb cdb;
    uint64_t alloc = call->scalar_in[0];
    if (alloc == 0 || alloc > 0xffff || odk_scsi_build_inquiry(&cdb, false, 0, (uint16_t)alloc) < 0)
        return ODK_E_INVALID;
    return inq_send(q, call, cdb.bytes, cdb.length, ODK_SCSI_DIR_FROM_DEVICE, 0, alloc, 0, 0);
}

static int inq_vpd(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct inq *q = odk_driver_state(drv);
    (void)uc;
    odk_scsi_cdb cdb;
    uint64_t page = call->scalar_in[0], alloc = call->scalar_in[1];
    if (page > 0xff || alloc == 0 || alloc > 0xffff ||
        odk_scsi_build_inquiry(&cdb, true, (uint8_t)page, (uint16_t)alloc) < 0)
        return ODK_E_INVALID;
    return inq_send(q, call, cdb.bytes, cdb.length, ODK_SCSI_DIR_FROM_DEVICE, 0, alloc, 0, 0);
}

static int inq_raw(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct inq *q = odk_driver_state(drv);
    (void)uc;
    const uint8_t *in = call->struct_in;
    uint64_t dir = call->scalar_in[0], in_len = call->scalar_in[1], flags = call->scalar_in[2];
    uint64_t timeout_ms = call->scalar_in[3];
    if (call->struct_in_len < 1 || in[0] == 0 || in[0] > ODK_SCSI_CDB_MAX ||
        call->struct_in_len < 1u + in[0] || dir > ODK_SCSI_DIR_TO_DEVICE ||
        in_len > SCSI_INQ_DATA_MAX || (flags & ~(uint64_t)SCSI_INQ_UNCHECKED) ||
        timeout_ms > 600000)
        return ODK_E_INVALID;
    uint8_t cdb[ODK_SCSI_CDB_MAX];
    size_t cdb_len = in[0];
    memcpy(cdb, in + 1, cdb_len); /* the app's memory: copied before use */
    uint64_t out_len = call->struct_in_len - 1 - cdb_len;
    if (out_len > SCSI_INQ_DATA_MAX || (dir == ODK_SCSI_DIR_TO_DEVICE) != (out_len > 0) ||
        (dir == ODK_SCSI_DIR_FROM_DEVICE) != (in_len > 0))
        return ODK_E_INVALID;
    memcpy(q->addr, in + 1 + cdb_len, out_len);
    return inq_send(q, call, cdb, cdb_len, (odk_scsi_dir)dir, out_len, in_len,
                    (flags & SCSI_INQ_UNCHECKED) ? ODK_SCSI_SEND_UNCHECKED : 0,
                    (uint32_t)timeout_ms);
}

static const odk_method inq_methods[] = {
    [SCSI_INQ_STANDARD] = {inq_standard, .scalar_in = 1, .struct_out = ODK_VARIABLE_SIZE},
    [SCSI_INQ_VPD] = {inq_vpd, .scalar_in = 2, .struct_out = ODK_VARIABLE_SIZE},
    [SCSI_INQ_RAW] = {inq_raw, .scalar_in = 4, .struct_in = ODK_VARIABLE_SIZE,
                      .struct_out = ODK_VARIABLE_SIZE},
};

static const odk_driver_class inq_class = {
    .name = "ScsiInquiry",
    .state_size = sizeof(struct inq),
    .start = inq_start,
    .stop = inq_stop,
    .methods = inq_methods,
    .n_methods = sizeof inq_methods / sizeof inq_methods[0],
};
ODK_DRIVER_CLASS(inq_class);
