/* SPDX-License-Identifier: MIT */
/* Unit tests for bundle loading: odk.json, Info.plist (XML and binary),
 * build ids, entitlements and every kind of malformed manifest. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <plist/plist.h>
#include <sodium.h>

#include "daemon/core/bundle.h"
#include "odk/status.h"

#ifndef ODK_TEST_DATA
#error "ODK_TEST_DATA must name the testdata folder"
#endif

static char *data_path(const char *name)
{
    char *rel = NULL;
    assert_true(asprintf(&rel, "%s/%s", ODK_TEST_DATA, name) > 0);
    char *abs = realpath(rel, NULL);
    assert_non_null(abs);
    free(rel);
    return abs;
}

static void write_file(const char *dir, const char *name, const char *bytes)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(bytes, f);
    fclose(f);
}

static void remove_file(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
}

static bool is_hex16(const char *s)
{
    if (strlen(s) != 16)
        return false;
    for (; *s; s++)
        if (!strchr("0123456789abcdef", *s))
            return false;
    return true;
}

static void test_good_json(void **state)
{
    char *dir = data_path("echo");
    bundle *b = NULL;
    char err[1024] = "";
    int st = bundle_load(ODK_TEST_DATA "/echo", &b, err, sizeof err);
    if (st != ODK_OK)
        fail_msg("load failed: %s", err);
    assert_string_equal(b->id, "org.odk.test.echo");
    assert_string_equal(b->version, "1.2.3");
    assert_string_equal(b->dir, dir);
    char want[4096];
    snprintf(want, sizeof want, "%s/echo.so", dir);
    assert_string_equal(b->executable, want);
    snprintf(want, sizeof want, "%s/odk.json", dir);
    assert_string_equal(b->manifest, want);
    assert_true(is_hex16(b->build));

    assert_int_equal(odk_dict_count(b->personalities), 2);
    const odk_value *echo = odk_dict_get(b->personalities, "Echo");
    assert_string_equal(odk_dict_get_string(echo, "IOProviderClass", ""), "OdkSimDevice");
    assert_int_equal(odk_dict_get_int(echo, "IOProbeScore", 0), 100);
    assert_string_equal(odk_dict_get_string(odk_dict_get(echo, "IOPropertyMatch"), "model", ""),
                        "echo");
    const odk_value *usb = odk_dict_get(b->personalities, "EchoUSB");
    assert_int_equal(odk_dict_get_int(usb, "idVendor", 0), 4660);
    assert_true(odk_dict_get_bool(b->entitlements, "org.odk.sim", false));
    bundle_free(b);
    free(dir);
}

static void test_relative_dir_becomes_absolute(void **state)
{
    char cwd[4096];
    assert_non_null(getcwd(cwd, sizeof cwd));
    char *data = data_path("");
    assert_int_equal(chdir(data), 0);
    bundle *b = NULL;
    char err[1024];
    int st = bundle_load("./echo/", &b, err, sizeof err);
    assert_int_equal(chdir(cwd), 0);
    if (st != ODK_OK)
        fail_msg("load failed: %s", err);
    assert_true(b->dir[0] == '/');
    assert_non_null(strstr(b->dir, "testdata/echo"));
    assert_null(strstr(b->dir, "./"));
    assert_true(b->executable[0] == '/');
    bundle_free(b);
    free(data);
}

static void check_serial_personalities(const bundle *b)
{
    assert_string_equal(b->id, "com.example.SerialDriver");
    assert_string_equal(b->version, "1.0");
    assert_int_equal(odk_dict_count(b->personalities), 2);
    const odk_value *p = odk_dict_get(b->personalities, "SerialDriver");
    assert_non_null(p);
    assert_string_equal(odk_dict_get_string(p, "IOProviderClass", ""), "IOUSBHostInterface");
    assert_string_equal(odk_dict_get_string(p, "IOClass", ""), "IOUserSerial");
    assert_string_equal(odk_dict_get_string(p, "IOUserClass", ""), "SerialDriver");
    assert_int_equal(odk_value_type(odk_dict_get(p, "IOProbeScore")), ODK_TYPE_INT);
    assert_int_equal(odk_dict_get_int(p, "IOProbeScore", 0), 2000);
    assert_int_equal(odk_dict_get_int(p, "idVendor", 0), 1027);
    assert_int_equal(odk_dict_get_int(p, "idProduct", 0), 24577);
    assert_int_equal(odk_value_type(odk_dict_get(p, "bInterfaceNumber")), ODK_TYPE_INT);
    assert_true(odk_dict_get_bool(p, "OdkDebug", false));
    const odk_value *ucp = odk_dict_get(p, "UserClientProperties");
    assert_int_equal(odk_value_type(ucp), ODK_TYPE_DICT);
    assert_string_equal(odk_dict_get_string(ucp, "IOUserClass", ""), "SerialUserClient");

    const odk_value *pci = odk_dict_get(b->personalities, "SerialPCI");
    assert_string_equal(odk_dict_get_string(pci, "IOPCIClassMatch", ""), "0x07000000&0xffff0000");
    size_t len = 0;
    const unsigned char *blob = odk_value_data(odk_dict_get(pci, "Blob"), &len);
    assert_int_equal(len, 4);
    assert_memory_equal(blob, "\xde\xad\xbe\xef", 4);
    const odk_value *names = odk_dict_get(pci, "IONameMatch");
    assert_int_equal(odk_array_count(names), 2);
    assert_string_equal(odk_value_string(odk_array_get(names, 1)), "uart");
}

static void test_good_plist(void **state)
{
    char *dir = data_path("serial-plist");
    bundle *b = NULL;
    char err[1024] = "";
    int st = bundle_load(dir, &b, err, sizeof err);
    if (st != ODK_OK)
        fail_msg("load failed: %s", err);
    check_serial_personalities(b);
    /* CFBundleExecutable "SerialDriver" does not exist, SerialDriver.so does. */
    char want[4096];
    snprintf(want, sizeof want, "%s/SerialDriver.so", dir);
    assert_string_equal(b->executable, want);
    snprintf(want, sizeof want, "%s/Info.plist", dir);
    assert_string_equal(b->manifest, want);
    assert_true(is_hex16(b->build));
    /* Entitlements.plist from the folder. */
    assert_true(odk_dict_get_bool(b->entitlements, "com.apple.developer.driverkit", false));
    const odk_value *usb =
        odk_dict_get(b->entitlements, "com.apple.developer.driverkit.transport.usb");
    assert_int_equal(odk_array_count(usb), 1);
    bundle_free(b);
    free(dir);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = malloc(1 << 16);
    assert_non_null(buf);
    *len = fread(buf, 1, 1 << 16, f);
    fclose(f);
    return buf;
}

static void test_binary_plist(void **state)
{
    char *path = data_path("serial-plist/Info.plist");
    size_t len;
    char *xml = slurp(path, &len);
    plist_t root = NULL;
    plist_from_xml(xml, (uint32_t)len, &root);
    assert_non_null(root);
    char *bin = NULL;
    uint32_t bin_len = 0;
    plist_to_bin(root, &bin, &bin_len);
    assert_non_null(bin);
    assert_memory_equal(bin, "bplist00", 8);

    bundle *b = NULL;
    char err[1024] = "";
    int st = bundle_parse_plist(bin, bin_len, "Info.plist", &b, err, sizeof err);
    if (st != ODK_OK)
        fail_msg("parse failed: %s", err);
    check_serial_personalities(b);
    /* The parsers leave paths to bundle_load; entitlements are never NULL. */
    assert_string_equal(b->executable, "SerialDriver");
    assert_null(b->dir);
    assert_null(b->build);
    assert_non_null(b->entitlements);
    bundle_free(b);
    free(bin);
    plist_free(root);
    free(xml);
    free(path);
}

static void test_plist_version_fallback(void **state)
{
    const char *xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><plist version=\"1.0\"><dict>"
                      "<key>CFBundleIdentifier</key><string>com.example.V</string>"
                      "<key>CFBundleVersion</key><string>42</string>"
                      "<key>CFBundleExecutable</key><string>V</string>"
                      "<key>SomeDate</key><date>2024-01-01T00:00:00Z</date>"
                      "<key>SomeReal</key><real>2.5</real>"
                      "<key>IOKitPersonalities</key><dict/>"
                      "</dict></plist>";
    bundle *b = NULL;
    char err[1024] = "";
    int st = bundle_parse_plist(xml, strlen(xml), "V/Info.plist", &b, err, sizeof err);
    if (st != ODK_OK)
        fail_msg("parse failed: %s", err);
    assert_string_equal(b->version, "42");
    assert_int_equal(odk_dict_count(b->personalities), 0);
    bundle_free(b);
}

static void test_build_id_from_hash(void **state)
{
    char tmpl[] = "/tmp/odk-test-bundle-XXXXXX";
    char *dir = mkdtemp(tmpl);
    assert_non_null(dir);
    write_file(dir, "odk.json",
               "{\"bundle\":\"org.odk.test.hash\",\"version\":\"1\",\"executable\":\"h.so\","
               "\"personalities\":{}}");
    write_file(dir, "h.so", "first build");

    bundle *b1 = NULL, *b2 = NULL, *b3 = NULL;
    char err[1024] = "";
    assert_int_equal(bundle_load(dir, &b1, err, sizeof err), ODK_OK);
    assert_true(is_hex16(b1->build));
    /* It is BLAKE2b over the BLAKE2b digests of the .so's and the
     * manifest's bytes. */
    unsigned char d2[2][crypto_generichash_BYTES], digest[crypto_generichash_BYTES];
    char hex[2 * crypto_generichash_BYTES + 1];
    const char *manifest = "{\"bundle\":\"org.odk.test.hash\",\"version\":\"1\",\"executable\":"
                           "\"h.so\",\"personalities\":{}}";
    assert_true(sodium_init() >= 0);
    crypto_generichash(d2[0], sizeof d2[0], (const unsigned char *)"first build", 11, NULL, 0);
    crypto_generichash(d2[1], sizeof d2[1], (const unsigned char *)manifest, strlen(manifest),
                       NULL, 0);
    crypto_generichash(digest, sizeof digest, d2[0], sizeof d2, NULL, 0);
    sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
    assert_memory_equal(b1->build, hex, 16);
    /* No entitlements anywhere: an empty dictionary. */
    assert_int_equal(odk_dict_count(b1->entitlements), 0);

    write_file(dir, "h.so", "second build");
    assert_int_equal(bundle_load(dir, &b2, err, sizeof err), ODK_OK);
    assert_string_not_equal(b1->build, b2->build);

    write_file(dir, "h.so", "first build");
    assert_int_equal(bundle_load(dir, &b3, err, sizeof err), ODK_OK);
    assert_string_equal(b1->build, b3->build);
    bundle_free(b2);
    bundle_free(b3);

    /* The manifest edited alone (a personality), or an entitlements file
     * added beside it: another build. */
    write_file(dir, "odk.json",
               "{\"bundle\":\"org.odk.test.hash\",\"version\":\"1\",\"executable\":\"h.so\","
               "\"personalities\":{\"P\":{\"IOProviderClass\":\"IOUserResources\","
               "\"IOUserClass\":\"X\"}}}");
    assert_int_equal(bundle_load(dir, &b2, err, sizeof err), ODK_OK);
    assert_string_not_equal(b1->build, b2->build);
    write_file(dir, "entitlements.json", "{\"sim\": true}");
    assert_int_equal(bundle_load(dir, &b3, err, sizeof err), ODK_OK);
    assert_string_not_equal(b2->build, b3->build);
    remove_file(dir, "entitlements.json");
    bundle_free(b1);
    bundle_free(b2);
    bundle_free(b3);

    /* A build given in the manifest wins. */
    write_file(dir, "odk.json",
               "{\"bundle\":\"org.odk.test.hash\",\"version\":\"1\",\"build\":\"rel-7\","
               "\"executable\":\"h.so\",\"personalities\":{}}");
    assert_int_equal(bundle_load(dir, &b1, err, sizeof err), ODK_OK);
    assert_string_equal(b1->build, "rel-7");
    bundle_free(b1);

    /* entitlements.json beside odk.json. */
    write_file(dir, "entitlements.json", "{\"org.odk.usb\": [1027]}");
    assert_int_equal(bundle_load(dir, &b1, err, sizeof err), ODK_OK);
    assert_int_equal(odk_array_count(odk_dict_get(b1->entitlements, "org.odk.usb")), 1);
    bundle_free(b1);
    write_file(dir, "entitlements.json", "{\"org.odk.usb\": 1.5}");
    assert_int_equal(bundle_load(dir, &b1, err, sizeof err), ODK_E_MANIFEST);
    assert_null(b1);
    assert_non_null(strstr(err, "entitlements.json: org.odk.usb: "));

    remove_file(dir, "entitlements.json");
    remove_file(dir, "odk.json");
    remove_file(dir, "h.so");
    rmdir(dir);
}

/* Loads testdata/name and expects ODK_E_MANIFEST naming the file and each
 * of the fragments. */
static void expect_bad_dir(const char *name, const char *file, const char *frag1, const char *frag2)
{
    char rel[4096];
    snprintf(rel, sizeof rel, "%s/%s", ODK_TEST_DATA, name);
    char *dir = realpath(rel, NULL);
    assert_non_null(dir);
    bundle *b = (bundle *)1;
    char err[1024] = "";
    int st = bundle_load(rel, &b, err, sizeof err);
    if (st != ODK_E_MANIFEST)
        fail_msg("%s: expected ODK_E_MANIFEST, got %s (%s)", name, odk_status_name(st), err);
    assert_null(b);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s: ", dir, file);
    if (strncmp(err, path, strlen(path)) != 0)
        fail_msg("%s: message \"%s\" does not start with \"%s\"", name, err, path);
    if (frag1 && !strstr(err, frag1))
        fail_msg("%s: message \"%s\" lacks \"%s\"", name, err, frag1);
    if (frag2 && !strstr(err, frag2))
        fail_msg("%s: message \"%s\" lacks \"%s\"", name, err, frag2);
    free(dir);
}

static void test_bad_bundles(void **state)
{
    expect_bad_dir("bad-no-provider", "odk.json",
                   "personalities.NoProvider.IOProviderClass: ", "missing");
    expect_bad_dir("bad-score-type", "odk.json",
                   "personalities.Echo.IOProbeScore: expected integer, got string", NULL);
    expect_bad_dir("bad-syntax", "odk.json", "line 5", "column");
    expect_bad_dir("bad-no-exe", "odk.json", "executable: ", "missing.so");
    expect_bad_dir("bad-not-dict", "odk.json", "expected a dictionary", "array");
    expect_bad_dir("bad-plist-real", "Info.plist", "IOKitPersonalities.Real.Threshold: ", "real");
}

static void test_missing_bundle(void **state)
{
    bundle *b = NULL;
    char err[1024] = "";
    assert_int_equal(bundle_load(ODK_TEST_DATA "/no-such-bundle", &b, err, sizeof err),
                     ODK_E_NOT_FOUND);
    assert_non_null(strstr(err, "no-such-bundle"));
    /* A folder without a manifest. */
    char tmpl[] = "/tmp/odk-test-empty-XXXXXX";
    char *dir = mkdtemp(tmpl);
    assert_non_null(dir);
    assert_int_equal(bundle_load(dir, &b, err, sizeof err), ODK_E_NOT_FOUND);
    assert_non_null(strstr(err, dir));
    rmdir(dir);
}

/* In-memory manifests: bundle_parse_json with one flaw each. */
static void expect_bad_json(const char *text, const char *frag)
{
    bundle *b = (bundle *)1;
    char err[1024] = "";
    int st = bundle_parse_json(text, strlen(text), "/m/odk.json", &b, err, sizeof err);
    if (st != ODK_E_MANIFEST)
        fail_msg("%s: expected ODK_E_MANIFEST, got %s (%s)", text, odk_status_name(st), err);
    assert_null(b);
    if (strncmp(err, "/m/odk.json: ", 13) != 0 || !strstr(err, frag))
        fail_msg("%s: message \"%s\" lacks \"%s\"", text, err, frag);
}

#define HEAD "{\"bundle\":\"org.x\",\"version\":\"1\",\"executable\":\"x.so\","
#define PERS(body) HEAD "\"personalities\":{\"P\":{" body "}}}"
#define OK_KEYS "\"IOProviderClass\":\"IOService\",\"IOUserClass\":\"X\""

static void test_bad_json_manifests(void **state)
{
    expect_bad_json(PERS("\"IOProviderClass\":\"IOService\""),
                    "personalities.P.IOUserClass: missing (IOUserClass or IOClass is required)");
    expect_bad_json(PERS("\"IOProviderClass\":3,\"IOClass\":\"X\""),
                    "personalities.P.IOProviderClass: expected string, got integer");
    expect_bad_json(PERS("\"IOProviderClass\":\"IOService\",\"IOClass\":true"),
                    "personalities.P.IOClass: expected string, got boolean");
    expect_bad_json(PERS(OK_KEYS ",\"IOMatchCategory\":1"),
                    "personalities.P.IOMatchCategory: expected string, got integer");
    expect_bad_json(PERS(OK_KEYS ",\"IOPropertyMatch\":\"x\""),
                    "personalities.P.IOPropertyMatch: expected dictionary or array");
    expect_bad_json(PERS(OK_KEYS ",\"IOPropertyMatch\":[{},1]"),
                    "personalities.P.IOPropertyMatch[1]: expected dictionary, got integer");
    expect_bad_json(PERS(OK_KEYS ",\"IONameMatch\":[\"a\",2]"),
                    "personalities.P.IONameMatch[1]: expected string");
    expect_bad_json(PERS(OK_KEYS ",\"IOProbeScore\":1.5"),
                    "personalities.P.IOProbeScore: real numbers are not supported");
    expect_bad_json(PERS(OK_KEYS ",\"Deep\":{\"x\":[0,null]}"),
                    "personalities.P.Deep.x[1]: null is not supported");
    expect_bad_json(HEAD "\"personalities\":{\"P\":\"x\"}}",
                    "personalities.P: expected dictionary, got string");
    expect_bad_json(HEAD "\"personalities\":[]}", "personalities: expected dictionary, got array");
    expect_bad_json(HEAD "\"entitlements\":[],"
                         "\"personalities\":{}}",
                    "entitlements: expected dictionary");
    expect_bad_json("{\"version\":\"1\",\"executable\":\"x.so\",\"personalities\":{}}",
                    "bundle: missing");
    expect_bad_json("{\"bundle\":\"a/b\",\"executable\":\"x.so\",\"personalities\":{}}",
                    "bundle: \"a/b\" is not a valid bundle id");
    expect_bad_json("{\"bundle\":\"..\",\"executable\":\"x.so\",\"personalities\":{}}", "bundle: ");
    expect_bad_json("{\"bundle\":\"a\",\"executable\":\"../x.so\",\"personalities\":{}}",
                    "executable: \"../x.so\" must name a file inside the bundle folder");
    expect_bad_json("{\"bundle\":\"a\",\"executable\":\"/lib/x.so\",\"personalities\":{}}",
                    "executable: ");
    expect_bad_json("{\"bundle\":\"a\",\"executable\":\"\",\"personalities\":{}}",
                    "executable: must not be empty");
    expect_bad_json("{\"bundle\":\"a\",\"executable\":\"x.so\"}", "personalities: missing");
    expect_bad_json("{\"bundle\":\"a\",\"bundle\":\"b\",\"executable\":\"x\",\"personalities\":{}}",
                    "duplicate");
    expect_bad_json("", "line 1");
    expect_bad_json("{\n\"bundle\": \"a\",\n  oops }", "line 3 column");
    expect_bad_json("42", "expected a dictionary at the top level, got integer");

    /* Nesting deeper than the wire format allows. */
    char deep[2048] = HEAD "\"personalities\":{\"P\":{" OK_KEYS ",\"D\":";
    size_t n = strlen(deep);
    for (int i = 0; i < 80; i++)
        deep[n++] = '[';
    for (int i = 0; i < 80; i++)
        deep[n++] = ']';
    strcpy(deep + n, "}}}");
    expect_bad_json(deep, "nested deeper than");
}

static void test_bad_plists(void **state)
{
    bundle *b = NULL;
    char err[1024] = "";
    const char *junk = "this is not a plist";
    assert_int_equal(bundle_parse_plist(junk, strlen(junk), "/p/Info.plist", &b, err, sizeof err),
                     ODK_E_MANIFEST);
    assert_non_null(strstr(err, "/p/Info.plist: "));
    assert_int_equal(bundle_parse_plist("", 0, "/p/Info.plist", &b, err, sizeof err),
                     ODK_E_MANIFEST);
    const char *arr = "<?xml version=\"1.0\"?><plist version=\"1.0\"><array/></plist>";
    assert_int_equal(bundle_parse_plist(arr, strlen(arr), "/p/Info.plist", &b, err, sizeof err),
                     ODK_E_MANIFEST);
    assert_non_null(strstr(err, "expected a dictionary"));
    const char *noid = "<?xml version=\"1.0\"?><plist version=\"1.0\"><dict>"
                       "<key>CFBundleExecutable</key><string>X</string>"
                       "<key>IOKitPersonalities</key><dict/></dict></plist>";
    assert_int_equal(bundle_parse_plist(noid, strlen(noid), "/p/Info.plist", &b, err, sizeof err),
                     ODK_E_MANIFEST);
    assert_non_null(strstr(err, "/p/Info.plist: CFBundleIdentifier: missing"));
    const char *score = "<?xml version=\"1.0\"?><plist version=\"1.0\"><dict>"
                        "<key>CFBundleIdentifier</key><string>a.b</string>"
                        "<key>CFBundleExecutable</key><string>X</string>"
                        "<key>IOKitPersonalities</key><dict><key>P</key><dict>"
                        "<key>IOProviderClass</key><string>IOService</string>"
                        "<key>IOClass</key><string>IOUserService</string>"
                        "<key>IOProbeScore</key><string>9</string>"
                        "</dict></dict></dict></plist>";
    assert_int_equal(bundle_parse_plist(score, strlen(score), "/p/Info.plist", &b, err, sizeof err),
                     ODK_E_MANIFEST);
    assert_non_null(strstr(err, "IOKitPersonalities.P.IOProbeScore: expected integer, got string"));
}

/* libplist 2.2 aborts on a NUL inside a binary plist string; such files
 * must be refused, not crash odkd. */
static void test_binary_plist_nul_string(void **state)
{
    plist_t root = plist_new_dict();
    plist_dict_set_item(root, "CFBundleIdentifier", plist_new_string("a.b"));
    plist_dict_set_item(root, "CFBundleExecutable", plist_new_string("x\xc3\xa9")); /* "xé" */
    plist_dict_set_item(root, "IOKitPersonalities", plist_new_dict());
    char *bin = NULL;
    uint32_t len = 0;
    plist_to_bin(root, &bin, &len);
    plist_free(root);
    assert_non_null(bin);

    bundle *b = NULL;
    char err[1024] = "";
    assert_int_equal(bundle_parse_plist(bin, len, "/p/Info.plist", &b, err, sizeof err), ODK_OK);
    assert_string_equal(b->executable, "x\xc3\xa9");
    bundle_free(b);

    /* Turn the UTF-16 "é" (00 e9) into U+0000. */
    char *hit = memmem(bin, len, "\x00x\x00\xe9", 4);
    assert_non_null(hit);
    hit[3] = 0;
    assert_int_equal(bundle_parse_plist(bin, len, "/p/Info.plist", &b, err, sizeof err),
                     ODK_E_MANIFEST);
    assert_non_null(strstr(err, "/p/Info.plist: "));
    /* Truncated binary plists too. */
    assert_int_equal(bundle_parse_plist(bin, len / 2, "/p/Info.plist", &b, err, sizeof err),
                     ODK_E_MANIFEST);
    free(bin);
}

/* Regression tests for what fuzzing found inside libplist 2.2: shared
 * references that expand to 2^32 nodes, and nesting that overflows its
 * recursive parser.  Both must be refused before libplist sees them. */
static void test_plist_bombs(void **state)
{
    char *path = data_path("shared-refs-oom.bplist");
    size_t len;
    char *bin = slurp(path, &len);
    bundle *b = NULL;
    char err[1024] = "";
    assert_int_equal(bundle_parse_plist(bin, len, "/p/Info.plist", &b, err, sizeof err),
                     ODK_E_MANIFEST);
    assert_non_null(strstr(err, "expands to more than"));
    free(bin);
    free(path);

    size_t depth = 200000, xlen = 7 + depth * 7 + 8;
    char *xml = malloc(xlen + 1), *p = xml;
    p += sprintf(p, "<plist>");
    for (size_t i = 0; i < depth; i++)
        p += sprintf(p, "<array>");
    p += sprintf(p, "</plist>");
    assert_int_equal(bundle_parse_plist(xml, (size_t)(p - xml), "/p/Info.plist", &b, err,
                                        sizeof err),
                     ODK_E_MANIFEST);
    assert_non_null(strstr(err, "arrays and dictionaries"));
    free(xml);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_json),
        cmocka_unit_test(test_relative_dir_becomes_absolute),
        cmocka_unit_test(test_good_plist),
        cmocka_unit_test(test_binary_plist),
        cmocka_unit_test(test_plist_version_fallback),
        cmocka_unit_test(test_build_id_from_hash),
        cmocka_unit_test(test_bad_bundles),
        cmocka_unit_test(test_missing_bundle),
        cmocka_unit_test(test_bad_json_manifests),
        cmocka_unit_test(test_bad_plists),
        cmocka_unit_test(test_binary_plist_nul_string),
        cmocka_unit_test(test_plist_bombs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
