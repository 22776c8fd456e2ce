/* SPDX-License-Identifier: MIT */
/* fuzz_value_decode — odk_value_decode on untrusted bytes (the body of every
 * control message).  Whatever decodes must re-encode to the very same
 * bytes: the encoding is canonical (no alternative forms, no trailing
 * bytes), so a difference means decode accepted something it should not,
 * or encode and decode disagree about a limit.  Both abort. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "odk/status.h"
#include "odk/value.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what, size_t size)
{
    fprintf(stderr, "fuzz_value_decode: %s (input %zu bytes)\n", what, size);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    odk_value *v = NULL;
    int st = odk_value_decode(data, size, &v);
    if (st != ODK_OK) {
        if (v)
            die("decode failed but left *out set", size);
        if (st != ODK_E_PROTOCOL && st != ODK_E_NOMEM)
            die("decode failed with a status other than ODK_E_PROTOCOL", size);
        return 0;
    }
    if (!v)
        die("decode succeeded with *out == NULL", size);

    void *enc = NULL;
    size_t enc_len = 0;
    st = odk_value_encode(v, &enc, &enc_len);
    if (st != ODK_OK)
        die("a decoded value does not re-encode", size);
    if (enc_len != size || memcmp(enc, data, size) != 0)
        die("round trip is not byte-identical", size);

    /* The copy and equality used by the daemon on decoded values. */
    odk_value *c = odk_value_copy(v);
    if (!c || !odk_value_equal(v, c) || !odk_value_equal(c, v))
        die("copy of a decoded value is not equal to it", size);
    odk_value *again = NULL;
    if (odk_value_decode(enc, enc_len, &again) != ODK_OK || !odk_value_equal(v, again))
        die("re-decoding the re-encoding gives another value", size);

    /* odkctl prints received values as JSON. */
    char *json = odk_value_to_json(v, size & 1 ? ODK_JSON_PRETTY : 0);
    free(json);

    odk_value_free(again);
    odk_value_free(c);
    free(enc);
    odk_value_free(v);
    return 0;
}
