/* SPDX-License-Identifier: MIT */
/* fuzz_scsi_sense — sense data, INQUIRY, READ CAPACITY, REPORT LUNS and VPD
 * replies as a device could send them: parsed, described and formatted.
 * The bytes sit in a buffer of exactly their length, so ASan sees any read
 * past what the device sent.
 *
 * Sense that parses must build back: what odk_scsi_sense_build writes from
 * the decoded fields parses to the same key, ASC, ASCQ and field pointer;
 * every text comes back terminated within its buffer; otherwise the
 * harness aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "odk/scsi.h"
#include "odk/status.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void terminated(const char *t, size_t cap, const char *what)
{
    if (!memchr(t, 0, cap)) {
        fprintf(stderr, "fuzz_scsi_sense: %s text not terminated\n", what);
        abort();
    }
}

static void round_trip(const odk_scsi_sense *s)
{
    for (int desc = 0; desc < 2; desc++) {
        uint8_t b[ODK_SCSI_SENSE_MAX];
        size_t n = 0;
        if (odk_scsi_sense_build(s, desc, b, sizeof b, &n) != ODK_OK || n > sizeof b)
            abort();
        odk_scsi_sense p;
        if (odk_scsi_sense_parse(b, n, &p) != ODK_OK || p.key != s->key || p.asc != s->asc ||
            p.ascq != s->ascq || p.sks_valid != s->sks_valid || p.descriptor != desc ||
            p.deferred != s->deferred) {
            fprintf(stderr, "fuzz_scsi_sense: sense does not round-trip (%s)\n",
                    desc ? "descriptor" : "fixed");
            abort();
        }
        if (s->sks_valid && memcmp(p.sks, s->sks, 3)) {
            fprintf(stderr, "fuzz_scsi_sense: sense-key specific bytes changed\n");
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *b = malloc(size ? size : 1);
    if (!b)
        return 0;
    memcpy(b, data, size);
    char text[512], small[24];

    odk_scsi_sense s;
    if (odk_scsi_sense_parse(b, size, &s) == ODK_OK) {
        round_trip(&s);
        odk_scsi_sense_describe(&s, text, sizeof text);
        terminated(text, sizeof text, "describe");
        odk_scsi_sense_describe(&s, small, sizeof small);
        terminated(small, sizeof small, "short describe");
    }
    odk_scsi_format_sense(b, size, text, sizeof text);
    terminated(text, sizeof text, "format_sense");
    if (size >= 2) {
        odk_scsi_asc_describe(b[0], b[1], small, sizeof small);
        terminated(small, sizeof small, "asc");
    }

    odk_scsi_inquiry_data inq;
    (void)odk_scsi_inquiry_parse(b, size, &inq);
    odk_scsi_format_inquiry(b, size, false, text, sizeof text);
    terminated(text, sizeof text, "format_inquiry");
    odk_scsi_format_inquiry(b, size, true, text, sizeof text);
    terminated(text, sizeof text, "format_inquiry vpd");
    odk_scsi_format_capacity(b, size, false, text, sizeof text);
    odk_scsi_format_capacity(b, size, true, text, sizeof text);
    terminated(text, sizeof text, "format_capacity");

    uint64_t luns[8];
    size_t count = 0, total = 0;
    if (odk_scsi_report_luns_parse(b, size, luns, 8, &count, &total) == ODK_OK) {
        if (count > 8 || count > total || 8 + 8 * count > size)
            abort();
        for (size_t i = 0; i < count; i++)
            (void)odk_scsi_lun_number(luns[i]);
    }
    odk_scsi_block_limits bl;
    (void)odk_scsi_vpd_block_limits_parse(b, size, &bl);
    char serial[16];
    if (odk_scsi_vpd_serial_parse(b, size, serial, sizeof serial) >= ODK_E_LIMIT)
        terminated(serial, sizeof serial, "serial");
    free(b);
    return 0;
}
