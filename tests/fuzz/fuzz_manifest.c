/* SPDX-License-Identifier: MIT */
/* fuzz_manifest — bundle_parse_json on untrusted odk.json text.  The text
 * is passed with its length and without a terminating NUL, exactly as the
 * fuzzer gives it, so ASan sees any read past the end.  A manifest that is
 * accepted must give a complete bundle whose personalities odkd can send
 * to a driver host (instance.c wraps one in its "start" request): if that
 * encoding fails, the manifest check let through something the daemon
 * cannot use, and the harness aborts. */
#define FUZZ_NAME "fuzz_manifest"
#include "bundle_checks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_bundle_parser(bundle_parse_json, "fuzz/odk.json", data, size);
}
