/* SPDX-License-Identifier: MIT */
/* fuzz_signature — signature_verify on an untrusted odk.sig.  A bundle of
 * two fixed files is made once in a temporary folder; each input becomes
 * its odk.sig (the seed corpus holds a genuine signature of those files).  Anything but a clean refusal (ODK_E_ACCESS, or ODK_E_LIMIT
 * for an oversized file) is a bug, and so is acceptance: the fuzzer cannot
 * forge an ed25519 signature, so an accepted input means the signed bytes
 * and the checked bytes differ somewhere. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/core/signature.h"
#include "odk/status.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];

static void put(const char *name, const void *bytes, size_t len)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f || fwrite(bytes, 1, len, f) != len || fclose(f) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/odk-fuzz-sig-XXXXXX");
        if (!mkdtemp(dir))
            abort();
        /* The files the seed corpus's signatures cover. */
        static const char manifest[] =
            "{\"bundle\": \"f\", \"executable\": \"x.so\", \"personalities\": {}}\n";
        put("odk.json", manifest, sizeof manifest - 1);
        put("x.so", "x\n", 2);
    }
    put(SIGNATURE_FILE, data, size);
    char err[512];
    int st = signature_verify(dir, NULL, NULL, NULL, err, sizeof err);
    if (st == ODK_OK) {
        /* Only the seed (one genuine signature, deterministic ed25519) may
         * pass: a second, different accepted input is a forgery. */
        static uint8_t *first;
        static size_t first_len;
        if (!first) {
            first = malloc(size ? size : 1);
            if (!first)
                abort();
            memcpy(first, data, size);
            first_len = size;
        } else if (size != first_len || memcmp(first, data, size) != 0) {
            abort();
        }
    } else if (st != ODK_E_ACCESS && st != ODK_E_LIMIT && st != ODK_E_NOMEM) {
        fprintf(stderr, "fuzz_signature: unexpected status %d: %s\n", st, err);
        abort();
    }
    return 0;
}
