/* SPDX-License-Identifier: MIT */
/* odkctl scsi LUN inquiry|capacity|sense|raw — CDBs to a LUN through the
 * scsi-inquiry peripheral driver matched to it (docs/storage.md), printed
 * with the SCSI library's formatters. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../drivers/scsi-inquiry/scsi_inquiry.h"
#include "odk/client.h"
#include "odk/scsi.h"
#include "odk/status.h"
#include "odk/value.h"

int odkctl_scsi(odk_client *c, int argc, char **argv);

static int usage(void)
{
    fprintf(stderr,
            "usage: odkctl scsi LUN inquiry [--vpd PAGE]\n"
            "       odkctl scsi LUN capacity|sense\n"
            "       odkctl scsi LUN raw [--unchecked] [--in N] [--out HEX] [--timeout MS] CDB-HEX\n"
            "LUN is the OdkSCSILUN node; scsi-inquiry must be matched to it.\n");
    return 2;
}

/* The scsi-inquiry service whose provider is the LUN node. */
static int find_driver(odk_client *c, int64_t lun, uint64_t *service)
{
    odk_value *m = odk_value_new_dict(), *pm = odk_value_new_dict(), *nodes = NULL;
    odk_dict_set_string(pm, "IOUserClass", "ScsiInquiry");
    odk_dict_set(m, "IOPropertyMatch", pm);
    int st = odk_find_services(c, m, &nodes);
    odk_value_free(m);
    if (st < 0) {
        fprintf(stderr, "odkctl: %s\n", odk_strerror(st));
        return -1;
    }
    for (size_t i = 0; i < odk_array_count(nodes); i++) {
        const odk_value *n = odk_array_get(nodes, i);
        if (odk_dict_get_int(n, "parent", -1) == lun) {
            *service = (uint64_t)odk_dict_get_int(n, "id", 0);
            odk_value_free(nodes);
            return 0;
        }
    }
    odk_value_free(nodes);
    fprintf(stderr,
            "odkctl: no scsi-inquiry driver on node %" PRId64
            " (is it an OdkSCSILUN node of a direct-access LUN?)\n",
            lun);
    return -1;
}

static int hex_parse(const char *s, uint8_t *out, size_t cap, size_t *len)
{
    size_t n = 0;
    int half = -1;
    for (; *s; s++) {
        int v;
        if (*s == ' ' || *s == ':' || *s == ',')
            continue;
        if (*s >= '0' && *s <= '9')
            v = *s - '0';
        else if ((*s | 0x20) >= 'a' && (*s | 0x20) <= 'f')
            v = (*s | 0x20) - 'a' + 10;
        else
            return -1;
        if (half < 0) {
            half = v;
        } else {
            if (n == cap)
                return -1;
            out[n++] = (uint8_t)(half << 4 | v);
            half = -1;
        }
    }
    *len = n;
    return half < 0 && n ? 0 : -1;
}

static const char *status_name(uint32_t s)
{
    switch (s) {
    case ODK_SCSI_STATUS_GOOD:
        return "GOOD";
    case ODK_SCSI_STATUS_CHECK_CONDITION:
        return "CHECK CONDITION";
    case ODK_SCSI_STATUS_BUSY:
        return "BUSY";
    case ODK_SCSI_STATUS_TASK_SET_FULL:
        return "TASK SET FULL";
    case ODK_SCSI_STATUS_RESERVATION_CONFLICT:
        return "RESERVATION CONFLICT";
    default:
        return "?";
    }
}

enum what { INQ, VPD, CAPACITY, SENSE, RAW };

/* Prints what came back; 0 for GOOD with data, 1 otherwise. */
static int show(enum what w, const uint8_t *buf, size_t len)
{
    struct scsi_inq_reply rep;
    if (len < sizeof rep) {
        fprintf(stderr, "odkctl: short reply from the driver\n");
        return 1;
    }
    memcpy(&rep, buf, sizeof rep);
    const uint8_t *data = buf + sizeof rep;
    size_t n = len - sizeof rep;
    if (rep.result == ODK_E_PROTOCOL) {
        printf("refused by the checker: %s\n", rep.text);
        return 1;
    }
    if (rep.service_response != 0) {
        printf("service response: %s\n", rep.service_response == SCSI_INQ_TIMED_OUT
                                             ? "TASK TIMED OUT (the controller never completed it)"
                                             : "SERVICE FAILURE");
        return 1;
    }
    if (rep.status != ODK_SCSI_STATUS_GOOD || w == RAW)
        printf("status: %s (0x%02x)\n", status_name(rep.status), rep.status);
    if (rep.sense_len) {
        char text[2048];
        odk_scsi_format_sense(rep.sense, rep.sense_len, text, sizeof text);
        printf("sense: %s\n%s%s", rep.text, text,
               text[0] && text[strlen(text) - 1] != '\n' ? "\n" : "");
    }
    if (rep.status != ODK_SCSI_STATUS_GOOD && w != SENSE)
        return 1;
    char out[8192];
    out[0] = 0;
    switch (w) {
    case INQ:
    case VPD:
        odk_scsi_format_inquiry(data, n, w == VPD, out, sizeof out);
        break;
    case CAPACITY:
        odk_scsi_format_capacity(data, n, true, out, sizeof out);
        break;
    case SENSE:
        if (n)
            odk_scsi_format_sense(data, n, out, sizeof out);
        break;
    case RAW:
        printf("transferred: %u\n", rep.transferred);
        for (size_t i = 0; i < n; i += 16) {
            printf("%04zx:", i);
            for (size_t j = i; j < n && j < i + 16; j++)
                printf(" %02x", data[j]);
            printf("\n");
        }
        return 0;
    }
    fputs(out, stdout);
    if (out[0] && out[strlen(out) - 1] != '\n')
        putchar('\n');
    return 0;
}

int odkctl_scsi(odk_client *c, int argc, char **argv)
{
    if (argc < 2)
        return usage();
    char *end;
    long long lun = strtoll(argv[0], &end, 0);
    if (!*argv[0] || *end || lun < 0)
        return usage();
    const char *cmd = argv[1];
    enum what w;
    uint64_t in[4] = {0};
    uint32_t selector = SCSI_INQ_RAW, n_in = 4;
    uint8_t sin[1 + ODK_SCSI_CDB_MAX + 4096];
    size_t sin_len = 0;
    odk_scsi_cdb cdb;
    if (strcmp(cmd, "inquiry") == 0 && argc == 2) {
        w = INQ;
        selector = SCSI_INQ_STANDARD;
        in[0] = 96;
        n_in = 1;
    } else if (strcmp(cmd, "inquiry") == 0 && argc == 4 && strcmp(argv[2], "--vpd") == 0) {
        w = VPD;
        selector = SCSI_INQ_VPD;
        in[0] = strtoull(argv[3], NULL, 0);
        in[1] = 255;
        n_in = 2;
    } else if ((strcmp(cmd, "capacity") == 0 || strcmp(cmd, "sense") == 0) && argc == 2) {
        w = cmd[0] == 'c' ? CAPACITY : SENSE;
        int st = w == CAPACITY ? odk_scsi_build_read_capacity_16(&cdb, 32)
                               : odk_scsi_build_request_sense(&cdb, false, 252);
        if (st < 0)
            return 1;
        sin[0] = cdb.length;
        memcpy(sin + 1, cdb.bytes, cdb.length);
        sin_len = 1u + cdb.length;
        in[0] = ODK_SCSI_DIR_FROM_DEVICE;
        in[1] = w == CAPACITY ? 32 : 252;
    } else if (strcmp(cmd, "raw") == 0) {
        w = RAW;
        const char *hex = NULL, *out_hex = NULL;
        for (int i = 2; i < argc; i++) {
            if (strcmp(argv[i], "--unchecked") == 0)
                in[2] |= SCSI_INQ_UNCHECKED;
            else if (strcmp(argv[i], "--in") == 0 && i + 1 < argc)
                in[1] = strtoull(argv[++i], NULL, 0);
            else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc)
                in[3] = strtoull(argv[++i], NULL, 0);
            else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
                out_hex = argv[++i];
            else if (!hex)
                hex = argv[i];
            else
                return usage();
        }
        size_t cl = 0, ol = 0;
        if (!hex || hex_parse(hex, sin + 1, ODK_SCSI_CDB_MAX, &cl) < 0) {
            fprintf(stderr, "odkctl: the CDB must be 1 to %u bytes of hex\n", ODK_SCSI_CDB_MAX);
            return 2;
        }
        if (out_hex && hex_parse(out_hex, sin + 1 + cl, sizeof sin - 1 - cl, &ol) < 0) {
            fprintf(stderr, "odkctl: --out takes up to 4096 bytes of hex\n");
            return 2;
        }
        if (ol && in[1]) {
            fprintf(stderr, "odkctl: a CDB moves data one way: --in or --out\n");
            return 2;
        }
        sin[0] = (uint8_t)cl;
        sin_len = 1 + cl + ol;
        in[0] = ol ? ODK_SCSI_DIR_TO_DEVICE : in[1] ? ODK_SCSI_DIR_FROM_DEVICE : ODK_SCSI_DIR_NONE;
    } else {
        return usage();
    }
    uint64_t service;
    if (find_driver(c, lun, &service) < 0)
        return 1;
    odk_connection *conn = NULL;
    int st = odk_connection_open(c, service, 0, &conn);
    if (st < 0) {
        fprintf(stderr, "odkctl: cannot open scsi-inquiry on node %" PRIu64 ": %s\n", service,
                odk_strerror(st));
        return 1;
    }
    size_t cap = sizeof(struct scsi_inq_reply) + SCSI_INQ_DATA_MAX;
    uint8_t *buf = malloc(cap);
    size_t len = cap;
    st = buf ? odk_connection_call(conn, selector, in, n_in, sin_len ? sin : NULL, sin_len, NULL,
                                   NULL, buf, &len)
             : ODK_E_NOMEM;
    odk_connection_close(conn);
    int rc;
    if (st < 0) {
        fprintf(stderr, "odkctl: %s\n", odk_strerror(st));
        rc = 1;
    } else {
        rc = show(w, buf, len);
    }
    free(buf);
    return rc;
}
