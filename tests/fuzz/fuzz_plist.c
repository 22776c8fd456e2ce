/* SPDX-License-Identifier: MIT */
/* fuzz_plist — bundle_parse_plist on untrusted Info.plist bytes, XML or
 * binary ("bplist00"), through libplist.  The bytes are passed with their
 * length and without a terminating NUL, as the fuzzer gives them, so ASan
 * sees any read past the end.  An accepted Info.plist must give a complete
 * bundle whose personalities odkd can send to a driver host (instance.c
 * wraps one in its "start" request); otherwise the harness aborts.
 *
 * libplist 2.2 asserts on a NUL inside a binary string; bundle.c checks
 * binary plists before handing them over (bplist_strings_ok).  Any other
 * abort inside libplist shows up here as a crash in plist_from_memory. */
#define FUZZ_NAME "fuzz_plist"
#include "bundle_checks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_bundle_parser(bundle_parse_plist, "fuzz/Info.plist", data, size);
}
