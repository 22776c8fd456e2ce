/* SPDX-License-Identifier: MIT */
/* bundle.c — a driver bundle folder: which manifest it holds, the shared
 * object that manifest names (hashed for a build id when none is given)
 * and its entitlements file.  Parsing is bundle_manifest.c's and
 * bundle_plist.c's. */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/core/bundle_internal.h"
#include "daemon/core/entitlements.h"
#include "daemon/core/signature.h"
#include "odk/status.h"

void bundle_free(bundle *b)
{
    if (!b)
        return;
    free(b->id);
    free(b->version);
    free(b->build);
    free(b->dir);
    free(b->executable);
    free(b->manifest);
    odk_value_free(b->personalities);
    odk_value_free(b->entitlements);
    free(b);
}

/* ---- files ---- */

static char *join(const char *dir, const char *name)
{
    char *p = NULL;
    return asprintf(&p, "%s/%s", dir, name) < 0 ? NULL : p;
}

static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Reads a whole file (NUL-terminated for text parsers). */
static int read_file(const struct ctx *c, const char *path, char **out, size_t *out_len)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (c->err && c->err_len)
            snprintf(c->err, c->err_len, "%s: cannot open: %s", path, strerror(e));
        return e == ENOENT ? ODK_E_NOT_FOUND : ODK_E_IO;
    }
    struct stat sb;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        if (c->err && c->err_len)
            snprintf(c->err, c->err_len, "%s: not a regular file", path);
        return ODK_E_IO;
    }
    if ((uint64_t)sb.st_size > BUNDLE_MANIFEST_MAX) {
        close(fd);
        if (c->err && c->err_len)
            snprintf(c->err, c->err_len, "%s: larger than the %u byte limit", path,
                     BUNDLE_MANIFEST_MAX);
        return ODK_E_LIMIT;
    }
    size_t cap = (size_t)sb.st_size + 1, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        close(fd);
        return bundle_nomem(c);
    }
    for (;;) {
        if (len + 1 == cap) {
            /* The file grew while we read it. */
            if (cap > BUNDLE_MANIFEST_MAX) {
                free(buf);
                close(fd);
                if (c->err && c->err_len)
                    snprintf(c->err, c->err_len, "%s: larger than the %u byte limit", path,
                             BUNDLE_MANIFEST_MAX);
                return ODK_E_LIMIT;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                close(fd);
                return bundle_nomem(c);
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            free(buf);
            close(fd);
            if (c->err && c->err_len)
                snprintf(c->err, c->err_len, "%s: cannot read: %s", path, strerror(e));
            return ODK_E_IO;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return ODK_OK;
}

/* First 16 hex characters of the BLAKE2b hash of the file's bytes. */
/* The build id: the shared object's bytes, the manifest's and those of an
 * entitlements file beside it (BLAKE2b over their digests, the first 16
 * hex digits).  So a rebuild is a new build, and so is a manifest edited
 * alone (a personality, an entitlement): an install then takes it rather
 * than saying "unchanged". */
static int build_id(const struct ctx *c, const char *dir, const char *so, const char *manifest,
                    char **out)
{
    char *ent_json = join(dir, "entitlements.json"), *ent_plist = join(dir, "Entitlements.plist");
    const char *files[] = {so, manifest, ent_json, ent_plist};
    crypto_generichash_state h;
    unsigned char digest[SIGNATURE_HASH_BYTES];
    int st = ent_json && ent_plist ? ODK_OK : bundle_nomem(c);
    if (st == ODK_OK)
        crypto_generichash_init(&h, NULL, 0, sizeof digest);
    for (size_t i = 0; st == ODK_OK && i < sizeof files / sizeof files[0]; i++) {
        if (i >= 2 && !is_file(files[i]))
            continue;
        st = signature_hash_file(files[i], digest, c->err, c->err_len);
        if (st == ODK_OK)
            crypto_generichash_update(&h, digest, sizeof digest);
    }
    free(ent_json);
    free(ent_plist);
    if (st < 0)
        return st;
    crypto_generichash_final(&h, digest, sizeof digest);
    char hex[2 * SIGNATURE_HASH_BYTES + 1];
    sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
    hex[16] = '\0';
    *out = strdup(hex);
    return *out ? ODK_OK : bundle_nomem(c);
}

/* Entitlements from entitlements.json or Entitlements.plist in dir; an
 * empty dictionary when neither exists. */
static int load_entitlements(const char *dir, odk_value **out, char *err, size_t err_len)
{
    *out = NULL;
    char *json_path = join(dir, "entitlements.json");
    char *plist_path = join(dir, "Entitlements.plist");
    struct ctx c = {NULL, err, err_len};
    int st = ODK_OK;
    if (!json_path || !plist_path) {
        st = bundle_nomem(&c);
    } else if (is_file(json_path) || is_file(plist_path)) {
        bool is_json = is_file(json_path);
        c.source = is_json ? json_path : plist_path;
        char *text = NULL;
        size_t len = 0;
        st = read_file(&c, c.source, &text, &len);
        if (st == ODK_OK && is_json) {
            st = bundle_json_value(&c, text, len, out);
        } else if (st == ODK_OK) {
            plist_t root;
            st = bundle_plist_root(&c, text, len, &root);
            if (st == ODK_OK) {
                st = bundle_from_plist(&c, root, "", 0, out);
                plist_free(root);
            }
        }
        if (st == ODK_OK && odk_value_type(*out) != ODK_TYPE_DICT) {
            st = bundle_fail(&c, NULL, "expected a dictionary at the top level, got %s",
                      odk_type_name(odk_value_type(*out)));
            odk_value_free(*out);
            *out = NULL;
        }
        free(text);
    } else if (!(*out = odk_value_new_dict())) {
        st = bundle_nomem(&c);
    }
    free(json_path);
    free(plist_path);
    return st;
}

int bundle_load(const char *dir, bundle **out, char *err, size_t err_len)
{
    struct ctx c = {dir, err, err_len};
    if (!out)
        return ODK_E_INVALID;
    *out = NULL;
    if (!dir || !*dir)
        return bundle_fail(&c, NULL, "no bundle folder given");
    char *abs = realpath(dir, NULL);
    if (!abs) {
        int e = errno;
        if (err && err_len)
            snprintf(err, err_len, "%s: %s", dir, strerror(e));
        return e == ENOENT || e == ENOTDIR ? ODK_E_NOT_FOUND : ODK_E_IO;
    }
    struct stat sb;
    if (stat(abs, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
        if (err && err_len)
            snprintf(err, err_len, "%s: not a folder", abs);
        free(abs);
        return ODK_E_NOT_FOUND;
    }

    bundle *b = NULL;
    char *manifest = join(abs, "odk.json");
    char *text = NULL, *exe = NULL;
    size_t len = 0;
    int st = manifest ? ODK_OK : bundle_nomem(&c);
    bool is_json = true;
    if (st == ODK_OK && !is_file(manifest)) {
        free(manifest);
        manifest = join(abs, "Info.plist");
        is_json = false;
        if (!manifest)
            st = bundle_nomem(&c);
        else if (!is_file(manifest)) {
            if (err && err_len)
                snprintf(err, err_len, "%s: no odk.json or Info.plist in the folder", abs);
            st = ODK_E_NOT_FOUND;
        }
    }
    c.source = manifest;
    if (st == ODK_OK)
        st = read_file(&c, manifest, &text, &len);
    if (st == ODK_OK)
        st = is_json ? bundle_parse_json_text(text, len, &c, &b) : bundle_parse_plist_bytes(text, len, &c, &b);
    free(text);

    if (st == ODK_OK) {
        exe = join(abs, b->executable);
        if (!exe) {
            st = bundle_nomem(&c);
        } else if (!is_file(exe)) {
            /* Xcode names the executable without a suffix; an odk build of
             * the same driver is NAME.so. */
            char *so = NULL;
            if (asprintf(&so, "%s.so", exe) < 0)
                st = bundle_nomem(&c);
            else if (is_file(so)) {
                free(exe);
                exe = so;
                so = NULL;
            } else {
                st = bundle_fail(&c, is_json ? bundle_json_keys.executable : bundle_plist_keys.executable,
                          "file %s does not exist", exe);
            }
            free(so);
        }
    }
    if (st == ODK_OK) {
        free(b->executable);
        b->executable = exe;
        exe = NULL;
        b->dir = abs;
        abs = NULL;
        b->manifest = manifest;
        manifest = NULL;
        if (!b->build)
            st = build_id(&c, b->dir, b->executable, b->manifest, &b->build);
    }
    if (st == ODK_OK && !b->entitlements)
        st = load_entitlements(b->dir, &b->entitlements, err, err_len);

    free(exe);
    free(abs);
    free(manifest);
    if (st != ODK_OK) {
        bundle_free(b);
        return st;
    }
    *out = b;
    return ODK_OK;
}

int bundle_verify(const bundle *b, const struct signature_trust *trust, char *err, size_t err_len)
{
    int st = signature_verify(b->dir, b->entitlements, trust, NULL, err, err_len);
    if (st < 0)
        return st;
    char why[512] = "";
    st = entitlements_check(b->entitlements, trust && trust->dev, why, sizeof why);
    if (st < 0 && err && err_len)
        snprintf(err, err_len, "%s: %s", b->manifest ? b->manifest : b->dir, why);
    return st;
}
