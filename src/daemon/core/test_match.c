/* SPDX-License-Identifier: MIT */
/* Unit tests for IOKit matching: every key, PCI match strings, ranking,
 * match categories and --explain. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "daemon/core/match.h"
#include "daemon/core/test_fixture.h"
#include "odk/status.h"

struct fx {
    registry *reg;
    reg_node *sim;   /* OdkSimDevice: model=echo, IOName=echo0, serial=42 */
    reg_node *usb;   /* IOUSBHostInterface: idVendor=0x0403, idProduct=0x6001 */
    reg_node *pci;   /* IOPCIDevice 8086:1234, subsystem 1af4:1100, class 020000 rev 3 */
    reg_node *res;   /* IOUserResources: IOKit, org.odk.sim */
    reg_node *plain; /* OdkSimDevice with no properties */
};

static odk_value *json(const char *text)
{
    odk_value *v = NULL;
    char err[256];
    int st = odk_value_from_json(text, &v, err, sizeof err);
    if (st != ODK_OK)
        fail_msg("bad test JSON: %s: %s", err, text);
    return v;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    if (!f || fixture_registry(&f->reg) != ODK_OK)
        return -1;
    reg_node *root = registry_root(f->reg);
    registry_add(f->reg, root, "OdkSimDevice",
                 json("{\"model\":\"echo\",\"IOName\":\"echo0\",\"serial\":42,"
                      "\"blob\":{\"$data\":\"0102\"},\"flags\":[1,2]}"),
                 &f->sim);
    registry_add(f->reg, root, "IOUSBHostInterface",
                 json("{\"idVendor\":1027,\"idProduct\":24577,\"bInterfaceNumber\":0,"
                      "\"name\":\"usb-serial\"}"),
                 &f->usb);
    registry_add(f->reg, root, "IOPCIDevice",
                 json("{\"vendor-id\":32902,\"device-id\":4660,\"subsystem-vendor-id\":6900,"
                      "\"subsystem-id\":4352,\"class-code\":131072,\"revision-id\":3}"),
                 &f->pci);
    registry_add(f->reg, root, "IOUserResources", json("{\"IOKit\":true,\"org.odk.sim\":true}"),
                 &f->res);
    registry_add(f->reg, root, "OdkSimDevice", NULL, &f->plain);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    registry_free(f->reg);
    free(f);
    return 0;
}

/* Matches personality text against node; on no match, why must contain
 * want_why (when not NULL). */
static void expect(const struct fx *f, const reg_node *n, const char *personality, int want,
                   const char *want_why)
{
    odk_value *p = json(personality);
    char why[512] = "unset";
    int r = match_personality(f->reg, n, p, why, sizeof why);
    odk_value_free(p);
    if (r != want)
        fail_msg("%s: expected %d, got %d (%s)", personality, want, r, why);
    if (want == 0 && want_why && !strstr(why, want_why))
        fail_msg("%s: reason \"%s\" does not mention \"%s\"", personality, why, want_why);
    if (want == 0 && !*why)
        fail_msg("%s: no reason given", personality);
}

static void test_provider_class(void **state)
{
    struct fx *f = *state;
    /* IOService matches every node derived from it. */
    const char *svc = "{\"IOProviderClass\":\"IOService\"}";
    expect(f, f->sim, svc, 1, NULL);
    expect(f, f->usb, svc, 1, NULL);
    expect(f, f->pci, svc, 1, NULL);
    expect(f, f->res, svc, 1, NULL);
    expect(f, f->sim, "{\"IOProviderClass\":\"OdkSimDevice\"}", 1, NULL);
    expect(f, f->sim, "{\"IOProviderClass\":\"OSObject\"}", 1, NULL);
    expect(f, f->sim, "{\"IOProviderClass\":\"IOPCIDevice\"}", 0,
           "IOProviderClass: node class OdkSimDevice is not a IOPCIDevice");
    expect(f, f->sim, "{\"IOUserClass\":\"X\"}", 0, "IOProviderClass");
    expect(f, f->sim, "{\"IOProviderClass\":5}", 0, "IOProviderClass");
    expect(f, f->sim, "[1]", 0, "dictionary");
    /* The root is not an IOService. */
    expect(f, registry_root(f->reg), svc, 0, "IOProviderClass");

    /* A class declared at run time matches its ancestors' personalities. */
    assert_int_equal(registry_define_class(f->reg, "EchoDevice", "OdkSimDevice"), ODK_OK);
    reg_node *n;
    registry_add(f->reg, registry_root(f->reg), "EchoDevice", NULL, &n);
    expect(f, n, "{\"IOProviderClass\":\"OdkSimDevice\"}", 1, NULL);
    expect(f, n, "{\"IOProviderClass\":\"EchoDevice\"}", 1, NULL);
    expect(f, f->sim, "{\"IOProviderClass\":\"EchoDevice\"}", 0, "not a EchoDevice");
}

static void test_name_match(void **state)
{
    struct fx *f = *state;
    /* IOName first, then name, then the class name. */
    expect(f, f->sim, "{\"IOProviderClass\":\"IOService\",\"IONameMatch\":\"echo0\"}", 1, NULL);
    expect(f, f->usb, "{\"IOProviderClass\":\"IOService\",\"IONameMatch\":\"usb-serial\"}", 1,
           NULL);
    expect(f, f->plain, "{\"IOProviderClass\":\"IOService\",\"IONameMatch\":\"OdkSimDevice\"}", 1,
           NULL);
    expect(f, f->sim, "{\"IOProviderClass\":\"IOService\",\"IONameMatch\":[\"a\",\"echo0\"]}", 1,
           NULL);
    expect(f, f->sim, "{\"IOProviderClass\":\"IOService\",\"IONameMatch\":\"echo1\"}", 0,
           "IONameMatch");
    expect(f, f->sim, "{\"IOProviderClass\":\"IOService\",\"IONameMatch\":[\"a\",\"b\"]}", 0,
           "IONameMatch");
    expect(f, f->sim, "{\"IOProviderClass\":\"IOService\",\"IONameMatch\":[]}", 0, "IONameMatch");
    expect(f, f->sim, "{\"IOProviderClass\":\"IOService\",\"IONameMatch\":7}", 0,
           "IONameMatch: expected");
}

static void test_property_match(void **state)
{
    struct fx *f = *state;
    expect(f, f->sim,
           "{\"IOProviderClass\":\"IOService\",\"IOPropertyMatch\":{\"model\":\"echo\","
           "\"serial\":42}}",
           1, NULL);
    /* Deep equality for data and arrays. */
    expect(f, f->sim,
           "{\"IOProviderClass\":\"IOService\",\"IOPropertyMatch\":{\"blob\":{\"$data\":\"0102\"},"
           "\"flags\":[1,2]}}",
           1, NULL);
    expect(f, f->sim, "{\"IOProviderClass\":\"IOService\",\"IOPropertyMatch\":{}}", 1, NULL);
    expect(f, f->sim,
           "{\"IOProviderClass\":\"IOService\",\"IOPropertyMatch\":{\"model\":\"echo\","
           "\"serial\":43}}",
           0, "serial");
    expect(f, f->sim, "{\"IOProviderClass\":\"IOService\",\"IOPropertyMatch\":{\"serial\":\"42\"}}",
           0, "serial");
    expect(f, f->sim, "{\"IOProviderClass\":\"IOService\",\"IOPropertyMatch\":{\"nope\":1}}", 0,
           "nope");
    expect(f, f->sim,
           "{\"IOProviderClass\":\"IOService\",\"IOPropertyMatch\":[{\"model\":\"x\"},"
           "{\"model\":\"echo\"}]}",
           1, NULL);
    expect(f, f->sim,
           "{\"IOProviderClass\":\"IOService\",\"IOPropertyMatch\":[{\"model\":\"x\"},"
           "{\"model\":\"y\"}]}",
           0, "IOPropertyMatch");
    expect(f, f->sim, "{\"IOProviderClass\":\"IOService\",\"IOPropertyMatch\":[3]}", 0,
           "IOPropertyMatch");
    expect(f, f->sim, "{\"IOProviderClass\":\"IOService\",\"IOPropertyMatch\":\"model\"}", 0,
           "IOPropertyMatch: expected");
}

static void test_resource_match(void **state)
{
    struct fx *f = *state;
    const char *r = "{\"IOProviderClass\":\"IOUserResources\",\"IOResourceMatch\":\"%s\"}";
    char p[256];
    snprintf(p, sizeof p, r, "IOKit");
    expect(f, f->res, p, 1, NULL);
    snprintf(p, sizeof p, r, "org.odk.sim");
    expect(f, f->res, p, 1, NULL);
    snprintf(p, sizeof p, r, "org.odk.none");
    expect(f, f->res, p, 0, "org.odk.none");
    expect(f, f->sim, "{\"IOProviderClass\":\"IOService\",\"IOResourceMatch\":\"IOKit\"}", 0,
           "IOResourceMatch");
    expect(f, f->res, "{\"IOProviderClass\":\"IOService\",\"IOResourceMatch\":1}", 0,
           "IOResourceMatch");
    /* "IOKit" exists even when the node does not list it. */
    reg_node *bare;
    registry_add(f->reg, registry_root(f->reg), "IOUserResources", NULL, &bare);
    snprintf(p, sizeof p, r, "IOKit");
    expect(f, bare, p, 1, NULL);
}

static void pci(const struct fx *f, const char *key, const char *str, int want,
                const char *want_why)
{
    char p[512];
    snprintf(p, sizeof p, "{\"IOProviderClass\":\"IOPCIDevice\",\"%s\":\"%s\"}", key, str);
    expect(f, f->pci, p, want, want_why);
}

static void test_pci_primary(void **state)
{
    struct fx *f = *state;
    pci(f, "IOPCIPrimaryMatch", "0x12348086", 1, NULL);
    pci(f, "IOPCIPrimaryMatch", "12348086", 1, NULL);
    pci(f, "IOPCIPrimaryMatch", "0X12348086", 1, NULL);
    pci(f, "IOPCIPrimaryMatch", "0x12358086", 0, "does not match");
    /* Masks: any device from vendor 8086, any vendor's device 1234. */
    pci(f, "IOPCIPrimaryMatch", "0x00008086&0x0000ffff", 1, NULL);
    pci(f, "IOPCIPrimaryMatch", "0x0000ffff&0x0000ffff", 0, "does not match");
    pci(f, "IOPCIPrimaryMatch", "0x12340000&0xffff0000", 1, NULL);
    pci(f, "IOPCIPrimaryMatch", "0x12300000&0xfff00000", 1, NULL);
    /* Several values: any one wins. */
    pci(f, "IOPCIPrimaryMatch", "0x11118086 0x12348086", 1, NULL);
    pci(f, "IOPCIPrimaryMatch", "0x11118086  0x22228086&0xffffffff\\t0x12348086", 1, NULL);
    pci(f, "IOPCIPrimaryMatch", "0x11118086 0x22228086", 0, "does not match");
    /* Malformed strings never match and say so. */
    pci(f, "IOPCIPrimaryMatch", "", 0, "malformed");
    pci(f, "IOPCIPrimaryMatch", "   ", 0, "malformed");
    pci(f, "IOPCIPrimaryMatch", "0xZZZZ", 0, "malformed");
    pci(f, "IOPCIPrimaryMatch", "0x", 0, "malformed");
    pci(f, "IOPCIPrimaryMatch", "0x12348086&", 0, "malformed");
    pci(f, "IOPCIPrimaryMatch", "0x12348086&0x", 0, "malformed");
    pci(f, "IOPCIPrimaryMatch", "0x123480861", 0, "malformed");
    pci(f, "IOPCIPrimaryMatch", "0x12348086,0x1", 0, "malformed");
    pci(f, "IOPCIPrimaryMatch", "0x11118086 junk", 0, "malformed");
    /* A wrong type is a reason, not a crash. */
    expect(f, f->pci, "{\"IOProviderClass\":\"IOPCIDevice\",\"IOPCIPrimaryMatch\":305430662}", 0,
           "expected string");
    /* A node without PCI ids. */
    expect(f, f->sim, "{\"IOProviderClass\":\"IOService\",\"IOPCIPrimaryMatch\":\"0x12348086\"}", 0,
           "vendor-id");
}

static void test_pci_secondary_and_either(void **state)
{
    struct fx *f = *state;
    pci(f, "IOPCISecondaryMatch", "0x11001af4", 1, NULL);
    pci(f, "IOPCISecondaryMatch", "0x00001af4&0x0000ffff", 1, NULL);
    pci(f, "IOPCISecondaryMatch", "0x12348086", 0, "does not match");
    pci(f, "IOPCIMatch", "0x12348086", 1, NULL);
    pci(f, "IOPCIMatch", "0x11001af4", 1, NULL);
    pci(f, "IOPCIMatch", "0x99998086", 0, "IOPCIMatch");
    pci(f, "IOPCIMatch", "0x9999", 0, "IOPCIMatch");
    pci(f, "IOPCIMatch", "zz", 0, "malformed");
}

static void test_pci_class(void **state)
{
    struct fx *f = *state;
    /* IOKit's form: class-code << 8 | revision, default mask 0xffffff00. */
    pci(f, "IOPCIClassMatch", "0x02000000&0xffff0000", 1, NULL);
    pci(f, "IOPCIClassMatch", "0x02000000", 1, NULL);
    pci(f, "IOPCIClassMatch", "0x02000003&0xffffffff", 1, NULL);
    pci(f, "IOPCIClassMatch", "0x02000004&0xffffffff", 0, "does not match");
    pci(f, "IOPCIClassMatch", "0x03000000&0xff000000", 0, "does not match");
    pci(f, "IOPCIClassMatch", "0x0c033000 0x02000000&0xff000000", 1, NULL);
    /* The 24-bit class code itself. */
    pci(f, "IOPCIClassMatch", "0x020000", 1, NULL);
    pci(f, "IOPCIClassMatch", "0x020000&0xff0000", 1, NULL);
    pci(f, "IOPCIClassMatch", "0x020100", 0, "does not match");
    pci(f, "IOPCIClassMatch", "0x02&0xff", 0, "does not match");
    pci(f, "IOPCIClassMatch", "0x02xx", 0, "malformed");
    expect(f, f->sim, "{\"IOProviderClass\":\"IOService\",\"IOPCIClassMatch\":\"0x020000\"}", 0,
           "class-code");
}

static void test_plain_keys(void **state)
{
    struct fx *f = *state;
    expect(f, f->usb,
           "{\"IOProviderClass\":\"IOUSBHostInterface\",\"idVendor\":1027,\"idProduct\":24577,"
           "\"bInterfaceNumber\":0}",
           1, NULL);
    expect(f, f->usb, "{\"IOProviderClass\":\"IOUSBHostInterface\",\"idVendor\":1028}", 0,
           "idVendor: node has 1027, personality wants 1028");
    expect(f, f->usb, "{\"IOProviderClass\":\"IOUSBHostInterface\",\"idVendor\":\"1027\"}", 0,
           "idVendor");
    expect(f, f->usb, "{\"IOProviderClass\":\"IOUSBHostInterface\",\"bcdDevice\":256}", 0,
           "bcdDevice: node has no property bcdDevice");
    expect(f, f->plain, "{\"IOProviderClass\":\"IOService\",\"model\":\"echo\"}", 0,
           "no property model");
    expect(f, f->sim, "{\"IOProviderClass\":\"IOService\",\"model\":\"echo\",\"serial\":42}", 1,
           NULL);
    expect(f, f->sim, "{\"IOProviderClass\":\"IOService\",\"flags\":[1,2]}", 1, NULL);
    expect(f, f->sim, "{\"IOProviderClass\":\"IOService\",\"flags\":[2,1]}", 0, "flags");
}

static void test_informational_keys(void **state)
{
    struct fx *f = *state;
    /* None of these is compared with the node, which has none of them. */
    expect(f, f->plain,
           "{\"IOProviderClass\":\"IOService\",\"IOClass\":\"IOUserService\","
           "\"IOUserClass\":\"Echo\",\"IOUserServerName\":\"org.odk.echo\",\"IOProbeScore\":5,"
           "\"IOMatchCategory\":\"C\",\"CFBundleIdentifier\":\"org.odk.echo\","
           "\"CFBundleIdentifierKernel\":\"com.apple.kpi.iokit\",\"IOUserServerCDHash\":\"ab\","
           "\"IOTTYBaseName\":\"echo\",\"IOTTYSuffix\":\"0\",\"UserClientProperties\":{},"
           "\"IOUserClientClass\":\"EchoClient\",\"IOKitDebug\":65535,\"IOMatchDefer\":true,"
           "\"OdkDeadlines\":{\"start\":1000},\"OdkDebug\":true,\"OdkAnythingNew\":1,"
           "\"IOKitWhatever\":\"x\"}",
           1, NULL);
    /* Keys that merely look similar are matched. */
    expect(f, f->plain, "{\"IOProviderClass\":\"IOService\",\"IOClassX\":1}", 0, "IOClassX");
    expect(f, f->plain, "{\"IOProviderClass\":\"IOService\",\"odkDebug\":1}", 0, "odkDebug");
}

static void test_score_and_category(void **state)
{
    odk_value *p = json("{\"IOProviderClass\":\"IOService\"}");
    assert_int_equal(match_probe_score(p), 0);
    assert_string_equal(match_category(p), "IODefaultMatchCategory");
    odk_value_free(p);
    p = json("{\"IOProbeScore\":-7,\"IOMatchCategory\":\"Serial\"}");
    assert_int_equal(match_probe_score(p), -7);
    assert_string_equal(match_category(p), "Serial");
    odk_value_free(p);
    p = json("{\"IOProbeScore\":\"9\",\"IOMatchCategory\":3}");
    assert_int_equal(match_probe_score(p), 0);
    assert_string_equal(match_category(p), "IODefaultMatchCategory");
    odk_value_free(p);
}

/* ---- ranking ---- */

static bundle *make_bundle(const char *id, const char *personalities)
{
    char text[4096];
    snprintf(text, sizeof text,
             "{\"bundle\":\"%s\",\"version\":\"1\",\"build\":\"b1\",\"executable\":\"x.so\","
             "\"personalities\":%s}",
             id, personalities);
    bundle *b = NULL;
    char err[512];
    if (bundle_parse_json(text, strlen(text), "test", &b, err, sizeof err) != ODK_OK)
        fail_msg("bad test bundle: %s", err);
    return b;
}

static void free_bundles(bundle **b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        bundle_free(b[i]);
}

#define P(score, extra)                                                                            \
    "{\"IOProviderClass\":\"IOService\",\"IOUserClass\":\"C\",\"IOProbeScore\":" #score extra "}"

static void test_rank_score(void **state)
{
    struct fx *f = *state;
    bundle *b[] = {
        make_bundle("org.b", "{\"Low\":" P(10, "") ",\"High\":" P(500, "") "}"),
        make_bundle("org.a", "{\"Mid\":" P(100, "") ",\"NoMatch\":" P(9999, ",\"model\":\"nope\"") "}"),
    };
    match_candidate *w;
    size_t n;
    assert_int_equal(match_rank(f->reg, f->sim, b, 2, NULL, 0, &w, &n), ODK_OK);
    assert_int_equal(n, 1);
    assert_string_equal(w[0].bundle->id, "org.b");
    assert_string_equal(w[0].name, "High");
    assert_int_equal(w[0].score, 500);
    assert_string_equal(w[0].category, "IODefaultMatchCategory");
    assert_ptr_equal(w[0].personality, odk_dict_get(b[0]->personalities, "High"));
    free(w);

    /* Nothing matches: no winners, not an error. */
    assert_int_equal(match_rank(f->reg, registry_root(f->reg), b, 2, NULL, 0, &w, &n), ODK_OK);
    assert_int_equal(n, 0);
    free(w);
    assert_int_equal(match_rank(f->reg, f->sim, NULL, 0, NULL, 0, &w, &n), ODK_OK);
    assert_int_equal(n, 0);
    free(w);
    free_bundles(b, 2);
}

static void test_rank_ties(void **state)
{
    struct fx *f = *state;
    /* Same score: the bundle id that sorts first wins, then the name. */
    bundle *b[] = {
        make_bundle("org.z", "{\"A\":" P(50, "") "}"),
        make_bundle("org.m", "{\"Zed\":" P(50, "") ",\"Bee\":" P(50, "") "}"),
        make_bundle("org.y", "{\"Aa\":" P(49, "") "}"),
    };
    match_candidate *w;
    size_t n;
    assert_int_equal(match_rank(f->reg, f->sim, b, 3, NULL, 0, &w, &n), ODK_OK);
    assert_int_equal(n, 1);
    assert_string_equal(w[0].bundle->id, "org.m");
    assert_string_equal(w[0].name, "Bee");
    free(w);
    /* The order of the bundle list does not change the outcome. */
    bundle *r[] = {b[2], b[1], b[0]};
    assert_int_equal(match_rank(f->reg, f->sim, r, 3, NULL, 0, &w, &n), ODK_OK);
    assert_string_equal(w[0].name, "Bee");
    free(w);
    free_bundles(b, 3);
}

static void test_rank_categories(void **state)
{
    struct fx *f = *state;
    bundle *b[] = {
        make_bundle(
            "org.serial",
            "{\"Serial\":" P(
                10, ",\"IOMatchCategory\":\"serial\"") ","
                                                       "\"Serial2\":" P(
                                                           5,
                                                           ",\"IOMatchCategory\":\"serial\"") "}"),
        make_bundle("org.hid", "{\"Hid\":" P(20, ",\"IOMatchCategory\":\"hid\"") "}"),
        make_bundle("org.default", "{\"Def\":" P(1, "") "}"),
    };
    match_candidate *w;
    size_t n;
    assert_int_equal(match_rank(f->reg, f->sim, b, 3, NULL, 0, &w, &n), ODK_OK);
    /* One winner per category, highest score first. */
    assert_int_equal(n, 3);
    assert_string_equal(w[0].name, "Hid");
    assert_string_equal(w[0].category, "hid");
    assert_string_equal(w[1].name, "Serial");
    assert_string_equal(w[1].category, "serial");
    assert_string_equal(w[2].name, "Def");
    free(w);

    /* Categories that already have a driver are skipped. */
    const char *taken[] = {"serial", "IODefaultMatchCategory"};
    assert_int_equal(match_rank(f->reg, f->sim, b, 3, taken, 2, &w, &n), ODK_OK);
    assert_int_equal(n, 1);
    assert_string_equal(w[0].name, "Hid");
    free(w);
    const char *all[] = {"serial", "IODefaultMatchCategory", "hid"};
    assert_int_equal(match_rank(f->reg, f->sim, b, 3, all, 3, &w, &n), ODK_OK);
    assert_int_equal(n, 0);
    free(w);
    free_bundles(b, 3);
}

static const odk_value *explain_entry(const odk_value *list, const char *bundle_id,
                                      const char *name)
{
    for (size_t i = 0; i < odk_array_count(list); i++) {
        const odk_value *e = odk_array_get(list, i);
        if (strcmp(odk_dict_get_string(e, "bundle", ""), bundle_id) == 0 &&
            strcmp(odk_dict_get_string(e, "personality", ""), name) == 0)
            return e;
    }
    fail_msg("no explain entry for %s/%s", bundle_id, name);
    return NULL;
}

static void test_explain(void **state)
{
    struct fx *f = *state;
    bundle *b[] = {
        make_bundle("org.a",
               "{\"Win\":" P(10, "") ",\"Lose\":" P(
                   5, "") ","
                          "\"Pci\":{\"IOProviderClass\":\"IOPCIDevice\",\"IOClass\":\"C\"}}"),
        make_bundle("org.b",
               "{\"Other\":" P(3, ",\"IOMatchCategory\":\"x\"") ","
                                                                "\"Wrong\":" P(
                                                                    99, ",\"model\":\"nope\"") "}"),
    };
    odk_value *list = match_explain(f->reg, f->sim, b, 2, NULL, 0);
    assert_non_null(list);
    assert_int_equal(odk_array_count(list), 5);

    const odk_value *e = explain_entry(list, "org.a", "Win");
    assert_true(odk_dict_get_bool(e, "matched", false));
    assert_true(odk_dict_get_bool(e, "winner", false));
    assert_null(odk_dict_get(e, "reason"));
    assert_int_equal(odk_dict_get_int(e, "score", -1), 10);
    assert_string_equal(odk_dict_get_string(e, "category", ""), "IODefaultMatchCategory");

    e = explain_entry(list, "org.a", "Lose");
    assert_true(odk_dict_get_bool(e, "matched", false));
    assert_false(odk_dict_get_bool(e, "winner", true));
    assert_null(odk_dict_get(e, "reason"));
    assert_string_equal(odk_dict_get_string(e, "outranked_by", ""), "org.a/Win");

    e = explain_entry(list, "org.a", "Pci");
    assert_false(odk_dict_get_bool(e, "matched", true));
    assert_false(odk_dict_get_bool(e, "winner", true));
    assert_non_null(strstr(odk_dict_get_string(e, "reason", ""), "IOProviderClass"));
    assert_int_equal(odk_dict_get_int(e, "score", -1), 0);

    e = explain_entry(list, "org.b", "Other");
    assert_true(odk_dict_get_bool(e, "winner", false));
    assert_string_equal(odk_dict_get_string(e, "category", ""), "x");

    e = explain_entry(list, "org.b", "Wrong");
    assert_false(odk_dict_get_bool(e, "matched", true));
    assert_non_null(strstr(odk_dict_get_string(e, "reason", ""), "model"));
    odk_value_free(list);

    /* A taken category: matched, but not a winner. */
    const char *taken[] = {"IODefaultMatchCategory"};
    list = match_explain(f->reg, f->sim, b, 2, taken, 1);
    e = explain_entry(list, "org.a", "Win");
    assert_true(odk_dict_get_bool(e, "matched", false));
    assert_false(odk_dict_get_bool(e, "winner", true));
    assert_true(odk_dict_get_bool(e, "taken", false));
    e = explain_entry(list, "org.b", "Other");
    assert_true(odk_dict_get_bool(e, "winner", false));
    odk_value_free(list);

    list = match_explain(f->reg, f->sim, NULL, 0, NULL, 0);
    assert_int_equal(odk_array_count(list), 0);
    odk_value_free(list);
    free_bundles(b, 2);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_provider_class),     T(test_name_match),
        T(test_property_match),     T(test_resource_match),
        T(test_pci_primary),        T(test_pci_secondary_and_either),
        T(test_pci_class),          T(test_plain_keys),
        T(test_informational_keys), cmocka_unit_test(test_score_and_category),
        T(test_rank_score),         T(test_rank_ties),
        T(test_rank_categories),    T(test_explain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
