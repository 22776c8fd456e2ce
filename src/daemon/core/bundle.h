/* SPDX-License-Identifier: MIT */
/* bundle.h — a driver bundle as odkd sees it: identity, shared object,
 * personalities, entitlements.
 *
 * A bundle is a folder holding either odk.json or a DriverKit-style
 * Info.plist (read with libplist; IOKitPersonalities, CFBundleIdentifier,
 * CFBundleShortVersionString / CFBundleVersion, CFBundleExecutable), plus
 * the shared object it names and optionally an entitlements file.
 *
 * odk.json:
 *   { "bundle": "org.odk.echo", "version": "1.0.0", "build": "optional",
 *     "executable": "echo.so", "entitlements": { ... },
 *     "personalities": { "Name": { "IOProviderClass": ..., ... } } }
 *
 * When "build" is absent, the build id is a hash of the shared object's
 * bytes, so every rebuild has a new build id.
 */
#ifndef ODK_DAEMON_BUNDLE_H
#define ODK_DAEMON_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>

#include "daemon/core/signature.h"
#include "odk/value.h"

typedef struct bundle {
    char *id;          /* "org.odk.echo" */
    char *version;     /* "1.0.0" */
    char *build;       /* build id */
    char *dir;         /* absolute path of the bundle folder */
    char *executable;  /* absolute path of the shared object */
    char *manifest;    /* absolute path of the manifest file read */
    odk_value *personalities; /* dictionary: name -> personality dictionary */
    odk_value *entitlements;  /* dictionary, possibly empty */
    /* odkd's last launch check that passed (catalog_verify_launch). */
    bool launch_checked;
    unsigned char launch_stamp[32];
} bundle;

/* Loads the bundle in folder dir.  On error returns ODK_E_MANIFEST (or
 * ODK_E_IO / ODK_E_NOT_FOUND) and writes into err a sentence naming the
 * file and the key that is wrong, e.g.
 *   "/x/echo/odk.json: personalities.Echo.IOProbeScore: expected integer, got string".
 * Every personality must have IOProviderClass (string) and IOUserClass or
 * IOClass (string); IOProbeScore must be an integer; IOMatchCategory a
 * string; IOPropertyMatch a dictionary or array of dictionaries.
 * The shared object must exist.  Caller owns *out (bundle_free). */
int bundle_load(const char *dir, bundle **out, char *err, size_t err_len);
void bundle_free(bundle *b);

/* The same checks on a manifest already in memory (used by the loader and
 * by the fuzzers).  json_text is odk.json text; source names it in errors. */
int bundle_parse_json(const char *json_text, size_t len, const char *source, bundle **out,
                      char *err, size_t err_len);
int bundle_parse_plist(const char *plist_bytes, size_t len, const char *source,
                       bundle **out, char *err, size_t err_len);

/* Whether odkd may run b: its signature holds for the bundle's files and
 * entitlements and comes from a key trust accepts (signature_verify), and
 * its entitlements are well formed, with wildcards only when trust->dev
 * (entitlements_check).  ODK_E_ACCESS or ODK_E_MANIFEST with a sentence in
 * err that names the bundle and says which; reads and hashes every file. */
int bundle_verify(const bundle *b, const struct signature_trust *trust, char *err, size_t err_len);

#endif
