/* SPDX-License-Identifier: MIT */
/* Unit tests for keys and bundle signatures: a signed bundle verifies, and
 * each way of breaking it (a tampered, extra or missing file, changed
 * entitlements, a wrong or untrusted key, a truncated or garbage odk.sig)
 * is refused with a sentence naming what. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon/core/signature.h"
#include "odk/status.h"

struct fx {
    char root[64];   /* mkdtemp folder */
    char bundle[128];
    char key[128];   /* base of the signing key */
    char trust[128]; /* trust folder holding the key's .pub */
    odk_value *ent;
};

static void put(const char *dir, const char *name, const char *bytes)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(bytes, f);
    fclose(f);
}

static char *get(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *buf = calloc(1, 1 << 16);
    fread(buf, 1, (1 << 16) - 1, f);
    fclose(f);
    return buf;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    snprintf(f->root, sizeof f->root, "/tmp/odk-sig-XXXXXX");
    assert_non_null(mkdtemp(f->root));
    snprintf(f->bundle, sizeof f->bundle, "%s/b", f->root);
    snprintf(f->key, sizeof f->key, "%s/alice", f->root);
    snprintf(f->trust, sizeof f->trust, "%s/trust", f->root);
    assert_int_equal(mkdir(f->bundle, 0755), 0);
    assert_int_equal(mkdir(f->trust, 0755), 0);
    put(f->bundle, "odk.json", "{\"bundle\": \"x\"}\n");
    put(f->bundle, "x.so", "ELF pretend\n");
    char err[512];
    assert_int_equal(signature_keygen(f->key, err, sizeof err), ODK_OK);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cp %s.pub %s/", f->key, f->trust);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(odk_value_from_json("{\"usb\": [{\"vendor\": 1027}]}", &f->ent, NULL, 0), 0);
    char key_path[160];
    snprintf(key_path, sizeof key_path, "%s.key", f->key);
    assert_int_equal(signature_sign(f->bundle, key_path, f->ent, err, sizeof err), ODK_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->root);
    assert_int_equal(system(cmd), 0);
    odk_value_free(f->ent);
    free(f);
    return 0;
}

static int verify(struct fx *f, bool dev, char *err, size_t err_len)
{
    struct signature_trust t = {f->trust, dev};
    return signature_verify(f->bundle, f->ent, &t, NULL, err, err_len);
}

static void keygen_modes_and_no_overwrite(void **state)
{
    struct fx *f = *state;
    char path[160], err[512];
    struct stat sb;
    snprintf(path, sizeof path, "%s.key", f->key);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    char *pub = get(f->root, "alice.pub");
    assert_non_null(strstr(pub, "odk-public-key ed25519 "));
    assert_non_null(strstr(pub, " alice\n"));
    free(pub);
    assert_int_equal(signature_keygen(f->key, err, sizeof err), ODK_E_EXISTS);
    assert_non_null(strstr(err, "alice.key"));
}

static void signed_bundle_verifies(void **state)
{
    struct fx *f = *state;
    char err[512] = "";
    struct signature_info info;
    struct signature_trust t = {f->trust, false};
    assert_int_equal(signature_verify(f->bundle, f->ent, &t, &info, err, sizeof err), ODK_OK);
    assert_int_equal(strlen(info.key_id), SIGNATURE_KEY_ID_LEN);
    assert_non_null(strstr(info.key_file, "alice.pub"));
    assert_false(info.dev_key);
    /* Without a trust folder only integrity is checked. */
    assert_int_equal(signature_verify(f->bundle, f->ent, NULL, NULL, err, sizeof err), ODK_OK);
}

static void tampered_file_is_named(void **state)
{
    struct fx *f = *state;
    char err[512];
    put(f->bundle, "x.so", "ELF pretenD\n");
    assert_int_equal(verify(f, false, err, sizeof err), ODK_E_ACCESS);
    assert_non_null(strstr(err, "changed after signing: x.so differs"));
}

static void extra_file_is_named(void **state)
{
    struct fx *f = *state;
    char err[512];
    put(f->bundle, "evil.so", "more\n");
    assert_int_equal(verify(f, false, err, sizeof err), ODK_E_ACCESS);
    assert_non_null(strstr(err, "evil.so was added"));
}

static void missing_file_is_named(void **state)
{
    struct fx *f = *state;
    char err[512], path[256];
    snprintf(path, sizeof path, "%s/x.so", f->bundle);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(verify(f, false, err, sizeof err), ODK_E_ACCESS);
    assert_non_null(strstr(err, "x.so is missing"));
}

static void subfolders_are_not_part_of_a_bundle(void **state)
{
    struct fx *f = *state;
    char err[512], path[256];
    snprintf(path, sizeof path, "%s/x.so.p", f->bundle);
    assert_int_equal(mkdir(path, 0755), 0);
    assert_int_equal(verify(f, false, err, sizeof err), ODK_OK);
}

static void changed_entitlements_refused(void **state)
{
    struct fx *f = *state;
    char err[512];
    odk_value *other = NULL;
    assert_int_equal(odk_value_from_json("{\"usb\": [{\"vendor\": \"*\"}]}", &other, NULL, 0), 0);
    struct signature_trust t = {f->trust, false};
    assert_int_equal(signature_verify(f->bundle, other, &t, NULL, err, sizeof err), ODK_E_ACCESS);
    assert_non_null(strstr(err, "entitlements differ"));
    odk_value_free(other);
}

static void unsigned_bundle_refused(void **state)
{
    struct fx *f = *state;
    char err[512], path[256];
    snprintf(path, sizeof path, "%s/odk.sig", f->bundle);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(verify(f, false, err, sizeof err), ODK_E_ACCESS);
    assert_non_null(strstr(err, "unsigned"));
}

static void unknown_key_refused(void **state)
{
    struct fx *f = *state;
    char err[512], base[160], key[170];
    snprintf(base, sizeof base, "%s/mallory", f->root);
    snprintf(key, sizeof key, "%s.key", base);
    assert_int_equal(signature_keygen(base, err, sizeof err), ODK_OK);
    assert_int_equal(signature_sign(f->bundle, key, f->ent, err, sizeof err), ODK_OK);
    assert_int_equal(verify(f, false, err, sizeof err), ODK_E_ACCESS);
    assert_non_null(strstr(err, "unknown key"));
    /* Integrity alone still holds. */
    assert_int_equal(signature_verify(f->bundle, f->ent, NULL, NULL, err, sizeof err), ODK_OK);
}

static void dev_key_needs_dev_mode(void **state)
{
    struct fx *f = *state;
    char err[512], cmd[512];
    snprintf(cmd, sizeof cmd, "mkdir %s/dev && mv %s/alice.pub %s/dev/", f->trust, f->trust,
             f->trust);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(verify(f, false, err, sizeof err), ODK_E_ACCESS);
    assert_non_null(strstr(err, "only with --dev"));
    struct signature_info info;
    struct signature_trust t = {f->trust, true};
    assert_int_equal(signature_verify(f->bundle, f->ent, &t, &info, err, sizeof err), ODK_OK);
    assert_true(info.dev_key);
}

/* A signature made by one key but claiming another does not verify. */
static void wrong_key_in_signature_refused(void **state)
{
    struct fx *f = *state;
    char err[512];
    char *sig = get(f->bundle, "odk.sig");
    char *k = strstr(sig, "key ed25519 ") + 12;
    k[0] = k[0] == 'a' ? 'b' : 'a';
    put(f->bundle, "odk.sig", sig);
    free(sig);
    assert_int_equal(verify(f, false, err, sizeof err), ODK_E_ACCESS);
    assert_non_null(strstr(err, "does not verify"));
}

static void edited_hash_line_refused(void **state)
{
    struct fx *f = *state;
    char err[512];
    char *sig = get(f->bundle, "odk.sig");
    char *h = strstr(sig, "file ") + 5;
    h[0] = h[0] == '0' ? '1' : '0';
    put(f->bundle, "odk.sig", sig);
    free(sig);
    assert_int_equal(verify(f, false, err, sizeof err), ODK_E_ACCESS);
    assert_non_null(strstr(err, "does not verify"));
}

static void truncated_signature_refused(void **state)
{
    struct fx *f = *state;
    char *sig = get(f->bundle, "odk.sig");
    size_t len = strlen(sig);
    /* Every cut, from nothing to one byte short, is refused. */
    for (size_t cut = 0; cut < len; cut++) {
        char err[512] = "";
        char *part = strndup(sig, cut);
        put(f->bundle, "odk.sig", part);
        free(part);
        assert_int_equal(verify(f, false, err, sizeof err), ODK_E_ACCESS);
        assert_true(strstr(err, "malformed signature") || strstr(err, "does not verify"));
    }
    free(sig);
}

static void garbage_signature_refused(void **state)
{
    struct fx *f = *state;
    static const char *const garbage[] = {
        "",
        "hello\n",
        "odk-signature 2\n",
        "odk-signature 1\nkey rsa 00\n",
        "odk-signature 1\nkey ed25519 zz\n",
        "odk-signature 1\nkey ed25519 "
        "0000000000000000000000000000000000000000000000000000000000000000\nentitlements {}\n"
        "file 00 x.so\n",
        "odk-signature 1\nkey ed25519 "
        "0000000000000000000000000000000000000000000000000000000000000000\nentitlements {}\n"
        "sig 00\n",
        "odk-signature 1\nkey ed25519 "
        "0000000000000000000000000000000000000000000000000000000000000000\nentitlements {}\n"
        "file 0000000000000000000000000000000000000000000000000000000000000000 ../etc\n",
        "\177ELF\1\1\1",
    };
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
        char err[512] = "";
        put(f->bundle, "odk.sig", garbage[i]);
        assert_int_equal(verify(f, false, err, sizeof err), ODK_E_ACCESS);
        assert_non_null(strstr(err, "malformed signature"));
    }
}

static void not_a_secret_key_refused(void **state)
{
    struct fx *f = *state;
    char err[512], pub[160];
    snprintf(pub, sizeof pub, "%s.pub", f->key);
    assert_int_equal(signature_sign(f->bundle, pub, f->ent, err, sizeof err), ODK_E_MANIFEST);
    assert_non_null(strstr(err, "not an odk secret key"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(keygen_modes_and_no_overwrite),
        T(signed_bundle_verifies),
        T(tampered_file_is_named),
        T(extra_file_is_named),
        T(missing_file_is_named),
        T(subfolders_are_not_part_of_a_bundle),
        T(changed_entitlements_refused),
        T(unsigned_bundle_refused),
        T(unknown_key_refused),
        T(dev_key_needs_dev_mode),
        T(wrong_key_in_signature_refused),
        T(edited_hash_line_refused),
        T(truncated_signature_refused),
        T(garbage_signature_refused),
        T(not_a_secret_key_refused),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
