/* SPDX-License-Identifier: MIT */
/* bundle_checks.h — what fuzz_manifest and fuzz_plist check about a
 * bundle parser's answer.  Included by exactly one target each; the target
 * defines FUZZ_NAME first. */
#ifndef ODK_FUZZ_BUNDLE_CHECKS_H
#define ODK_FUZZ_BUNDLE_CHECKS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/core/bundle.h"
#include "odk/status.h"
#include "odk/value.h"

static void die(const char *what)
{
    fprintf(stderr, "%s: %s\n", FUZZ_NAME, what);
    abort();
}

/* A relative path with no empty, "." or ".." component. */
static bool inside(const char *path)
{
    if (!*path || *path == '/')
        return false;
    for (const char *p = path;;) {
        size_t n = strcspn(p, "/");
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        if (!p[n])
            return true;
        p += n + 1;
    }
}

static void check_bundle(const bundle *b)
{
    if (!b->id || !*b->id || !b->version || !b->executable || !b->personalities || !b->entitlements)
        die("accepted bundle is missing a field");
    if (!inside(b->executable))
        die("accepted bundle's executable is not inside the bundle");
    if (odk_value_type(b->personalities) != ODK_TYPE_DICT ||
        odk_value_type(b->entitlements) != ODK_TYPE_DICT)
        die("accepted bundle's personalities or entitlements is not a dictionary");
    for (size_t i = 0; i < odk_dict_count(b->personalities); i++) {
        const odk_value *p = odk_dict_value_at(b->personalities, i);
        if (odk_value_type(p) != ODK_TYPE_DICT || !odk_dict_get_string(p, "IOProviderClass", NULL))
            die("accepted personality without a string IOProviderClass");
        /* instance.c: args = {op, bundle, ..., "personality": copy} */
        odk_value *args = odk_value_new_dict();
        if (!args)
            die("out of memory");
        odk_dict_set_string(args, "op", "start");
        odk_dict_set_string(args, "bundle", b->id);
        odk_dict_set(args, "personality", odk_value_copy(p));
        void *enc = NULL;
        size_t len = 0;
        int st = odk_value_encode(args, &enc, &len);
        if (st != ODK_OK) {
            fprintf(stderr, "%s: personality %s: encode gives %d\n", FUZZ_NAME,
                    odk_dict_key_at(b->personalities, i), st);
            die("an accepted personality cannot be sent to a driver host");
        }
        odk_value *back = NULL;
        if (odk_value_decode(enc, len, &back) != ODK_OK || !odk_value_equal(back, args))
            die("an accepted personality does not survive the wire");
        odk_value_free(back);
        free(enc);
        odk_value_free(args);
    }
    void *enc = NULL;
    size_t len = 0;
    if (odk_value_encode(b->entitlements, &enc, &len) != ODK_OK)
        die("accepted entitlements cannot be encoded");
    free(enc);
}

typedef int (*bundle_parser)(const char *text, size_t len, const char *source, bundle **out,
                             char *err, size_t err_len);

/* Runs parser on the fuzz input (no terminating NUL, as given) and checks
 * the answer.  Alternates between a roomy and a tiny error buffer:
 * truncation of the key path and message must stay inside it. */
static int fuzz_bundle_parser(bundle_parser parse, const char *source, const uint8_t *data,
                              size_t size)
{
    char err[256];
    bundle *b = NULL;
    size_t err_len = size & 1 ? 7 : sizeof err;
    err[err_len - 1] = 'X';
    int st = parse((const char *)data, size, source, &b, err, err_len);
    if (st == ODK_OK) {
        if (!b)
            die("OK without a bundle");
        check_bundle(b);
        bundle_free(b);
    } else {
        if (b)
            die("error but *out set");
        if (!memchr(err, '\0', err_len))
            die("error message not NUL-terminated within err_len");
        if (st != ODK_E_MANIFEST && st != ODK_E_NOMEM)
            die("unexpected status");
    }
    return 0;
}

#endif
