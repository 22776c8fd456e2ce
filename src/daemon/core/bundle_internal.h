/* SPDX-License-Identifier: MIT */
/* bundle_internal.h — shared by the three files that read bundles:
 * bundle.c (the folder: files, hashing, entitlements), bundle_manifest.c
 * (odk.json and the checks every manifest passes) and bundle_plist.c
 * (Info.plist through libplist, with guards against hostile plists). */
#ifndef ODK_DAEMON_BUNDLE_INTERNAL_H
#define ODK_DAEMON_BUNDLE_INTERNAL_H

#include <plist/plist.h>
#include <stddef.h>

#include "daemon/core/bundle.h"

/* Largest manifest or entitlements file read; bigger ones are refused with
 * ODK_E_LIMIT (a real manifest is a few kilobytes). */
#define BUNDLE_MANIFEST_MAX (4u << 20)
/* Key paths longer than this are cut in error messages. */
#define KEY_PATH_MAX 512

/* Where an error goes and which file it names. */
struct ctx {
    const char *source;
    char *err;
    size_t err_len;
};

/* "SOURCE: PATH: message" into c->err; returns ODK_E_MANIFEST. */
int bundle_fail(const struct ctx *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "SOURCE: out of memory"; returns ODK_E_NOMEM. */
int bundle_nomem(const struct ctx *c);
/* parent.key and parent[i] into out (KEY_PATH_MAX bytes), cut to fit. */
void bundle_path_key(char *out, const char *parent, const char *key);
void bundle_path_index(char *out, const char *parent, size_t i);

/* The manifest keys that hold each field: odk.json and Info.plist differ. */
struct keys {
    const char *id, *version, *alt_version, *build, *executable, *personalities, *entitlements;
};
extern const struct keys bundle_json_keys, bundle_plist_keys;

/* Checks manifest m (converted to values) and builds a bundle from it;
 * entitlements stay NULL when m has none, dir and manifest NULL. */
int bundle_from_manifest(const struct ctx *c, odk_value *m, const struct keys *k, bundle **out);
/* A parsed bundle gets an empty entitlements dictionary when it has none. */
int bundle_finish_parse(int st, bundle **out, const struct ctx *c);

/* JSON text (not NUL-terminated) to a value, errors naming the key path. */
int bundle_json_value(const struct ctx *c, const char *text, size_t len, odk_value **out);
int bundle_parse_json_text(const char *text, size_t len, const struct ctx *c, bundle **out);

/* Parses plist bytes after the guards; *out is the caller's (plist_free). */
int bundle_plist_root(const struct ctx *c, const char *bytes, size_t len, plist_t *out);
int bundle_from_plist(const struct ctx *c, plist_t p, const char *path, int depth, odk_value **out);
int bundle_parse_plist_bytes(const char *bytes, size_t len, const struct ctx *c, bundle **out);

#endif
