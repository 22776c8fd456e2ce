/* SPDX-License-Identifier: MIT */
/* signature.c — ed25519 key pairs, and the signed list of a bundle's files
 * (signature.h has the formats).  odk.sig is untrusted input until its
 * signature verifies: every line is length- and alphabet-checked first. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/core/signature.h"
#include "odk/status.h"

#define HASH_BYTES SIGNATURE_HASH_BYTES
#define HASH_HEX (2 * HASH_BYTES)

static int fail(char *err, size_t err_len, int st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t err_len, int st, const char *fmt, ...)
{
    if (err && err_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return st;
}

/* ---- small file helpers ---- */

/* Reads a whole (small) file, NUL-terminated; ODK_E_NOT_FOUND when absent. */
static int slurp(const char *path, size_t max, char **out, size_t *out_len, char *err,
                 size_t err_len)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail(err, err_len, errno == ENOENT ? ODK_E_NOT_FOUND : ODK_E_IO,
                    "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return fail(err, err_len, ODK_E_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)sb.st_size > max) {
        close(fd);
        return fail(err, err_len, ODK_E_LIMIT, "%s: larger than the %zu byte limit", path, max);
    }
    char *buf = malloc((size_t)sb.st_size + 1);
    size_t len = 0;
    if (!buf) {
        close(fd);
        return fail(err, err_len, ODK_E_NOMEM, "%s: out of memory", path);
    }
    while (len < (size_t)sb.st_size) {
        ssize_t n = read(fd, buf + len, (size_t)sb.st_size - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return ODK_OK;
}

int signature_hash_file(const char *path, unsigned char out[SIGNATURE_HASH_BYTES], char *err,
                        size_t err_len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail(err, err_len, ODK_E_IO, "%s: cannot open: %s", path, strerror(errno));
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, HASH_BYTES);
    unsigned char buf[65536];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            return fail(err, err_len, ODK_E_IO, "%s: cannot read: %s", path, strerror(e));
        }
        if (n == 0)
            break;
        crypto_generichash_update(&h, buf, (unsigned long long)n);
    }
    close(fd);
    crypto_generichash_final(&h, out, HASH_BYTES);
    return ODK_OK;
}

static bool hex_decode(const char *hex, size_t hex_len, unsigned char *out, size_t out_len)
{
    size_t n = 0;
    if (hex_len != 2 * out_len)
        return false;
    for (size_t i = 0; i < hex_len; i++)
        if (!hex[i] || !strchr("0123456789abcdef", hex[i]))
            return false;
    return sodium_hex2bin(out, out_len, hex, hex_len, NULL, &n, NULL) == 0 && n == out_len;
}

static void key_id(const unsigned char pk[crypto_sign_PUBLICKEYBYTES],
                   char id[SIGNATURE_KEY_ID_LEN + 1])
{
    char hex[2 * crypto_sign_PUBLICKEYBYTES + 1];
    sodium_bin2hex(hex, sizeof hex, pk, crypto_sign_PUBLICKEYBYTES);
    memcpy(id, hex, SIGNATURE_KEY_ID_LEN);
    id[SIGNATURE_KEY_ID_LEN] = '\0';
}

/* ---- keys ---- */

static int write_all(int fd, const char *s)
{
    size_t len = strlen(s), off = 0;
    while (off < len) {
        ssize_t n = write(fd, s + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        off += (size_t)n;
    }
    return 0;
}

int signature_keygen(const char *base, char *err, size_t err_len)
{
    if (!base || !*base)
        return fail(err, err_len, ODK_E_INVALID, "no key name given");
    if (sodium_init() < 0)
        return fail(err, err_len, ODK_E_IO, "libsodium does not initialise");
    char key_path[PATH_MAX], pub_path[PATH_MAX];
    if ((size_t)snprintf(key_path, sizeof key_path, "%s.key", base) >= sizeof key_path ||
        (size_t)snprintf(pub_path, sizeof pub_path, "%s.pub", base) >= sizeof pub_path)
        return fail(err, err_len, ODK_E_LIMIT, "%s: path too long", base);
    const char *name = strrchr(base, '/');
    name = name ? name + 1 : base;
    if (!*name)
        return fail(err, err_len, ODK_E_INVALID, "%s: names a folder, not a key", base);

    unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    crypto_sign_keypair(pk, sk);
    char pk_hex[2 * sizeof pk + 1], sk_hex[2 * sizeof sk + 1];
    sodium_bin2hex(pk_hex, sizeof pk_hex, pk, sizeof pk);
    sodium_bin2hex(sk_hex, sizeof sk_hex, sk, sizeof sk);
    sodium_memzero(sk, sizeof sk);

    int st = ODK_OK;
    int kfd = open(key_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (kfd < 0) {
        st = fail(err, err_len, errno == EEXIST ? ODK_E_EXISTS : ODK_E_IO, "%s: %s", key_path,
                  errno == EEXIST ? "exists already (not overwritten)" : strerror(errno));
        goto out;
    }
    int pfd = open(pub_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (pfd < 0) {
        st = fail(err, err_len, errno == EEXIST ? ODK_E_EXISTS : ODK_E_IO, "%s: %s", pub_path,
                  errno == EEXIST ? "exists already (not overwritten)" : strerror(errno));
        close(kfd);
        unlink(key_path);
        goto out;
    }
    char line[512];
    snprintf(line, sizeof line, "odk-secret-key ed25519 %s\n", sk_hex);
    int bad = fchmod(kfd, 0600) < 0 || write_all(kfd, line) < 0;
    sodium_memzero(line, sizeof line);
    bad |= close(kfd) < 0;
    snprintf(line, sizeof line, "odk-public-key ed25519 %s %.200s\n", pk_hex, name);
    bad |= write_all(pfd, line) < 0;
    bad |= close(pfd) < 0;
    if (bad) {
        unlink(key_path);
        unlink(pub_path);
        st = fail(err, err_len, ODK_E_IO, "%s: cannot write: %s", base, strerror(errno));
    }
out:
    sodium_memzero(sk_hex, sizeof sk_hex);
    return st;
}

static int read_secret_key(const char *path, unsigned char sk[crypto_sign_SECRETKEYBYTES],
                           char *err, size_t err_len)
{
    char *text = NULL;
    size_t len = 0;
    int st = slurp(path, 4096, &text, &len, err, err_len);
    if (st < 0)
        return st;
    static const char prefix[] = "odk-secret-key ed25519 ";
    size_t hex_len = 2 * crypto_sign_SECRETKEYBYTES;
    if (strncmp(text, prefix, sizeof prefix - 1) != 0 || len < sizeof prefix - 1 + hex_len ||
        !hex_decode(text + sizeof prefix - 1, hex_len, sk, crypto_sign_SECRETKEYBYTES))
        st = fail(err, err_len, ODK_E_MANIFEST,
                  "%s: not an odk secret key (odkctl keygen writes NAME.key)", path);
    sodium_memzero(text, len);
    free(text);
    return st;
}

/* Reads a .pub file's key; false when the file is not one. */
static bool read_public_key(const char *path, unsigned char pk[crypto_sign_PUBLICKEYBYTES])
{
    char *text = NULL;
    size_t len = 0;
    if (slurp(path, 4096, &text, &len, NULL, 0) < 0)
        return false;
    static const char prefix[] = "odk-public-key ed25519 ";
    size_t hex_len = 2 * crypto_sign_PUBLICKEYBYTES;
    bool ok = strncmp(text, prefix, sizeof prefix - 1) == 0 &&
              len >= sizeof prefix - 1 + hex_len &&
              hex_decode(text + sizeof prefix - 1, hex_len, pk, crypto_sign_PUBLICKEYBYTES);
    free(text);
    return ok;
}

/* ---- the list of files ---- */

struct entry {
    char *name;
    unsigned char hash[HASH_BYTES];
};

struct listing {
    struct entry *v;
    size_t n, cap;
};

static void listing_free(struct listing *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].name);
    free(l->v);
    *l = (struct listing){0};
}

static int listing_add(struct listing *l, const char *name, size_t name_len)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        struct entry *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return ODK_E_NOMEM;
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n].name = strndup(name, name_len)))
        return ODK_E_NOMEM;
    l->n++;
    return ODK_OK;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct entry *)a)->name, ((const struct entry *)b)->name);
}

/* A name that fits on a line of odk.sig: no '/', no control characters. */
static bool line_safe_name(const char *s, size_t len)
{
    if (len == 0 || len > NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == '/' || s[i] == 0x7f)
            return false;
    return !(len == 1 && s[0] == '.') && !(len == 2 && s[0] == '.' && s[1] == '.');
}

/* Every regular file of dir but odk.sig, hashed, in name order. */
static int list_bundle(const char *dir, struct listing *l, char *err, size_t err_len)
{
    DIR *dh = opendir(dir);
    if (!dh)
        return fail(err, err_len, ODK_E_IO, "%s: cannot read the folder: %s", dir, strerror(errno));
    struct dirent *de;
    int st = ODK_OK;
    while (st == ODK_OK && (de = readdir(dh))) {
        if (strcmp(de->d_name, SIGNATURE_FILE) == 0 || strcmp(de->d_name, ".") == 0 ||
            strcmp(de->d_name, "..") == 0)
            continue;
        char path[PATH_MAX];
        struct stat sb;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (stat(path, &sb) < 0 || !S_ISREG(sb.st_mode))
            continue;
        if (!line_safe_name(de->d_name, strlen(de->d_name))) {
            st = fail(err, err_len, ODK_E_INVALID,
                      "%s: a file name with control characters cannot be signed", path);
            break;
        }
        st = listing_add(l, de->d_name, strlen(de->d_name));
        if (st == ODK_OK)
            st = signature_hash_file(path, l->v[l->n - 1].hash, err, err_len);
        else
            fail(err, err_len, st, "%s: out of memory", dir);
    }
    closedir(dh);
    if (st == ODK_OK)
        qsort(l->v, l->n, sizeof *l->v, by_name);
    return st;
}

/* ---- odk.sig ---- */

static char *entitlements_json(const odk_value *entitlements)
{
    if (!entitlements)
        return strdup("{}");
    return odk_value_to_json(entitlements, 0);
}

/* The signed part of odk.sig (everything but the sig line). */
static char *signed_text(const unsigned char pk[crypto_sign_PUBLICKEYBYTES], const char *ent_json,
                         const struct listing *l)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    char hex[2 * crypto_sign_PUBLICKEYBYTES + 1];
    sodium_bin2hex(hex, sizeof hex, pk, crypto_sign_PUBLICKEYBYTES);
    fprintf(f, "odk-signature 1\nkey ed25519 %s\nentitlements %s\n", hex, ent_json);
    for (size_t i = 0; i < l->n; i++) {
        char h[HASH_HEX + 1];
        sodium_bin2hex(h, sizeof h, l->v[i].hash, HASH_BYTES);
        fprintf(f, "file %s %s\n", h, l->v[i].name);
    }
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

int signature_sign(const char *dir, const char *key_path, const odk_value *entitlements,
                   char *err, size_t err_len)
{
    if (sodium_init() < 0)
        return fail(err, err_len, ODK_E_IO, "libsodium does not initialise");
    unsigned char sk[crypto_sign_SECRETKEYBYTES], pk[crypto_sign_PUBLICKEYBYTES];
    int st = read_secret_key(key_path, sk, err, err_len);
    if (st < 0)
        return st;
    crypto_sign_ed25519_sk_to_pk(pk, sk);
    struct listing l = {0};
    char *ent = NULL, *text = NULL;
    st = list_bundle(dir, &l, err, err_len);
    if (st == ODK_OK && (!(ent = entitlements_json(entitlements)) ||
                         !(text = signed_text(pk, ent, &l))))
        st = fail(err, err_len, ODK_E_NOMEM, "%s: out of memory", dir);
    if (st == ODK_OK) {
        unsigned char sig[crypto_sign_BYTES];
        crypto_sign_detached(sig, NULL, (const unsigned char *)text, strlen(text), sk);
        char sig_hex[2 * crypto_sign_BYTES + 1];
        sodium_bin2hex(sig_hex, sizeof sig_hex, sig, sizeof sig);
        char path[PATH_MAX], tmp[PATH_MAX + 8];
        snprintf(path, sizeof path, "%s/%s", dir, SIGNATURE_FILE);
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        bool bad = fd < 0;
        if (!bad) {
            bad |= write_all(fd, text) < 0 || write_all(fd, "sig ") < 0 ||
                   write_all(fd, sig_hex) < 0 || write_all(fd, "\n") < 0;
            bad |= close(fd) < 0;
        }
        if (bad || rename(tmp, path) < 0) {
            st = fail(err, err_len, ODK_E_IO, "%s: cannot write: %s", path, strerror(errno));
            unlink(tmp);
        }
    }
    sodium_memzero(sk, sizeof sk);
    free(text);
    free(ent);
    listing_free(&l);
    return st;
}

/* odk.sig parsed (not yet verified). */
struct parsed {
    unsigned char pk[crypto_sign_PUBLICKEYBYTES];
    unsigned char sig[crypto_sign_BYTES];
    const char *ent;      /* into the text */
    size_t ent_len;
    size_t signed_len;    /* bytes before the sig line */
    struct listing files; /* in file order, which must be name order */
};

static int parse_sig(const char *path, char *text, size_t len, struct parsed *p, char *err,
                     size_t err_len)
{
    if (memchr(text, '\0', len))
        return fail(err, err_len, ODK_E_ACCESS, "%s: malformed signature: holds a NUL byte", path);
    size_t lineno = 0;
    bool have_sig = false;
    for (char *line = text; *line && !have_sig;) {
        char *nl = strchr(line, '\n');
        if (!nl)
            return fail(err, err_len, ODK_E_ACCESS,
                        "%s: malformed signature: line %zu is cut short (truncated file?)", path,
                        lineno + 1);
        size_t n = (size_t)(nl - line);
        lineno++;
        if (lineno == 1) {
            if (n != 15 || memcmp(line, "odk-signature 1", 15) != 0)
                return fail(err, err_len, ODK_E_ACCESS,
                            "%s: malformed signature: line 1 is not \"odk-signature 1\"", path);
        } else if (lineno == 2) {
            if (n != 12 + 2 * sizeof p->pk || memcmp(line, "key ed25519 ", 12) != 0 ||
                !hex_decode(line + 12, 2 * sizeof p->pk, p->pk, sizeof p->pk))
                return fail(err, err_len, ODK_E_ACCESS,
                            "%s: malformed signature: line 2 is not \"key ed25519 HEX\"", path);
        } else if (lineno == 3) {
            if (n < 13 || memcmp(line, "entitlements ", 13) != 0)
                return fail(err, err_len, ODK_E_ACCESS,
                            "%s: malformed signature: line 3 is not \"entitlements JSON\"", path);
            p->ent = line + 13;
            p->ent_len = n - 13;
        } else if (n >= 4 && memcmp(line, "sig ", 4) == 0) {
            if (n != 4 + 2 * sizeof p->sig || !hex_decode(line + 4, 2 * sizeof p->sig, p->sig,
                                                          sizeof p->sig))
                return fail(err, err_len, ODK_E_ACCESS,
                            "%s: malformed signature: line %zu: the signature is not %zu hex "
                            "digits",
                            path, lineno, 2 * sizeof p->sig);
            p->signed_len = (size_t)(line - text);
            have_sig = true;
            if (nl[1])
                return fail(err, err_len, ODK_E_ACCESS,
                            "%s: malformed signature: text after the sig line", path);
        } else {
            if (n < 5 + HASH_HEX + 1 || memcmp(line, "file ", 5) != 0 || line[5 + HASH_HEX] != ' ')
                return fail(err, err_len, ODK_E_ACCESS,
                            "%s: malformed signature: line %zu is not \"file HASH NAME\"", path,
                            lineno);
            const char *name = line + 5 + HASH_HEX + 1;
            size_t name_len = n - 5 - HASH_HEX - 1;
            if (!line_safe_name(name, name_len))
                return fail(err, err_len, ODK_E_ACCESS,
                            "%s: malformed signature: line %zu: not a file name", path, lineno);
            if (listing_add(&p->files, name, name_len) < 0)
                return fail(err, err_len, ODK_E_NOMEM, "%s: out of memory", path);
            struct entry *e = &p->files.v[p->files.n - 1];
            if (!hex_decode(line + 5, HASH_HEX, e->hash, HASH_BYTES))
                return fail(err, err_len, ODK_E_ACCESS,
                            "%s: malformed signature: line %zu: the hash is not %d hex digits",
                            path, lineno, HASH_HEX);
            if (p->files.n > 1 && strcmp(p->files.v[p->files.n - 2].name, e->name) >= 0)
                return fail(err, err_len, ODK_E_ACCESS,
                            "%s: malformed signature: line %zu: files out of order", path, lineno);
        }
        line = nl + 1;
    }
    if (!have_sig)
        return fail(err, err_len, ODK_E_ACCESS,
                    "%s: malformed signature: no sig line (truncated file?)", path);
    return ODK_OK;
}

/* Looks for pk among folder's *.pub files; the matching file into out. */
static bool find_key(const char *folder, const unsigned char pk[crypto_sign_PUBLICKEYBYTES],
                     char *out, size_t out_len)
{
    DIR *dh = opendir(folder);
    if (!dh)
        return false;
    struct dirent *de;
    bool found = false;
    while (!found && (de = readdir(dh))) {
        size_t n = strlen(de->d_name);
        if (n < 5 || strcmp(de->d_name + n - 4, ".pub") != 0)
            continue;
        char path[PATH_MAX];
        unsigned char k[crypto_sign_PUBLICKEYBYTES];
        snprintf(path, sizeof path, "%s/%s", folder, de->d_name);
        if (read_public_key(path, k) && sodium_memcmp(k, pk, sizeof k) == 0) {
            snprintf(out, out_len, "%s", path);
            found = true;
        }
    }
    closedir(dh);
    return found;
}

/* Compares the signed list with the folder's; the first difference in name
 * order is the one named. */
static int compare_files(const char *dir, const struct listing *want, const struct listing *have,
                         char *err, size_t err_len)
{
    size_t i = 0, j = 0;
    while (i < want->n || j < have->n) {
        int c = i == want->n ? 1 : j == have->n ? -1 : strcmp(want->v[i].name, have->v[j].name);
        if (c < 0)
            return fail(err, err_len, ODK_E_ACCESS,
                        "%s: changed after signing: %s is missing (it was signed)", dir,
                        want->v[i].name);
        if (c > 0)
            return fail(err, err_len, ODK_E_ACCESS,
                        "%s: changed after signing: %s was added (it is not in the signature)",
                        dir, have->v[j].name);
        if (sodium_memcmp(want->v[i].hash, have->v[j].hash, HASH_BYTES) != 0)
            return fail(err, err_len, ODK_E_ACCESS,
                        "%s: changed after signing: %s differs from the file that was signed",
                        dir, want->v[i].name);
        i++;
        j++;
    }
    return ODK_OK;
}

int signature_verify(const char *dir, const odk_value *entitlements,
                     const struct signature_trust *trust, struct signature_info *info,
                     char *err, size_t err_len)
{
    struct signature_info scratch;
    if (!info)
        info = &scratch;
    *info = (struct signature_info){0};
    if (sodium_init() < 0)
        return fail(err, err_len, ODK_E_IO, "libsodium does not initialise");
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, SIGNATURE_FILE) >= sizeof path)
        return fail(err, err_len, ODK_E_LIMIT, "%s: path too long", dir);
    char *text = NULL;
    size_t len = 0;
    int st = slurp(path, SIGNATURE_MAX, &text, &len, err, err_len);
    if (st == ODK_E_NOT_FOUND)
        return fail(err, err_len, ODK_E_ACCESS,
                    "%s: unsigned: the bundle has no %s (sign it: odkctl sign %s --key KEY)", dir,
                    SIGNATURE_FILE, dir);
    if (st < 0)
        return st;
    struct parsed p = {0};
    struct listing have = {0};
    char *ent = NULL;
    st = parse_sig(path, text, len, &p, err, err_len);
    if (st == ODK_OK) {
        key_id(p.pk, info->key_id);
        if (crypto_sign_verify_detached(p.sig, (const unsigned char *)text, p.signed_len, p.pk) != 0)
            st = fail(err, err_len, ODK_E_ACCESS,
                      "%s: the signature does not verify with its key %s (odk.sig was edited or "
                      "is corrupt)",
                      path, info->key_id);
    }
    /* The signature holds: now the folder must be what was signed. */
    if (st == ODK_OK)
        st = list_bundle(dir, &have, err, err_len);
    if (st == ODK_OK)
        st = compare_files(dir, &p.files, &have, err, err_len);
    if (st == ODK_OK) {
        ent = entitlements_json(entitlements);
        if (!ent)
            st = fail(err, err_len, ODK_E_NOMEM, "%s: out of memory", dir);
        else if (strlen(ent) != p.ent_len || memcmp(ent, p.ent, p.ent_len) != 0)
            st = fail(err, err_len, ODK_E_ACCESS,
                      "%s: changed after signing: the entitlements differ from the signed ones",
                      dir);
    }
    if (st == ODK_OK && trust && trust->trust_dir) {
        char dev_dir[PATH_MAX];
        snprintf(dev_dir, sizeof dev_dir, "%s/dev", trust->trust_dir);
        if (find_key(trust->trust_dir, p.pk, info->key_file, sizeof info->key_file)) {
            info->dev_key = false;
        } else if (find_key(dev_dir, p.pk, info->key_file, sizeof info->key_file)) {
            info->dev_key = true;
            if (!trust->dev)
                st = fail(err, err_len, ODK_E_ACCESS,
                          "%s: signed by development key %s (%s), which odkd accepts only "
                          "with --dev",
                          dir, info->key_id, info->key_file);
        } else {
            st = fail(err, err_len, ODK_E_ACCESS,
                      "%s: signed by unknown key %s (no matching .pub in %s%s)", dir,
                      info->key_id, trust->trust_dir, trust->dev ? " or its dev folder" : "");
        }
    }
    free(ent);
    listing_free(&have);
    listing_free(&p.files);
    free(text);
    return st;
}
