/* SPDX-License-Identifier: MIT */
/* Unit tests for IOKit matching: every generic key, carry-not-compare,
 * keys registered by a bus (a test table here; the real USB and PCI tables
 * are tested in src/buses/), ranking, match categories and --explain. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "daemon/core/match.h"
#include "daemon/core/match_index.h"
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

static bundle *make_bundle(const char *id, const char *personalities);
static void free_bundles(bundle **b, size_t n);
static const odk_value *explain_entry(const odk_value *list, const char *bundle_id,
                                      const char *name);

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

static void test_exists_match(void **state)
{
    struct fx *f = *state;
    const char *base = "{\"IOProviderClass\":\"IOService\",\"IOPropertyExistsMatch\":%s}";
    char p[512];
    static const struct {
        const char *value;
        int want;
        const char *why;
    } cases[] = {
        {"\"model\"", 1, NULL},
        {"\"colour\"", 0, "IOPropertyExistsMatch: node has no property colour"},
        {"[\"model\",\"serial\",\"blob\"]", 1, NULL},
        {"[\"model\",\"colour\"]", 0, "no property colour"},
        {"[]", 1, NULL},
        {"[\"model\",3]", 0, "item 1 is not a string"},
        {"{\"model\":false,\"flags\":0}", 1, NULL},
        {"{\"model\":1,\"colour\":1}", 0, "no property colour"},
        {"7", 0, "expected string, array or dictionary"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(p, sizeof p, base, cases[i].value);
        expect(f, f->sim, p, cases[i].want, cases[i].why);
    }
    /* A node with no properties has none of them. */
    snprintf(p, sizeof p, base, "\"model\"");
    expect(f, f->plain, p, 0, "no property model");
}

static void test_parent_match(void **state)
{
    struct fx *f = *state;
    /* bus (OdkSimBus, IOName sim) <- dev (OdkSimDevice model=d) <- leaf */
    reg_node *bus, *dev, *leaf;
    registry_add(f->reg, registry_root(f->reg), "OdkSimBus", json("{\"IOName\":\"sim\"}"), &bus);
    registry_add(f->reg, bus, "OdkSimDevice", json("{\"model\":\"d\"}"), &dev);
    registry_add(f->reg, dev, "OdkSimDevice", json("{\"model\":\"leaf\"}"), &leaf);
    /* The parent or any further ancestor; IOProviderClass is optional. */
    expect(f, leaf,
           "{\"IOProviderClass\":\"IOService\",\"IOParentMatch\":{\"IOPropertyMatch\":{\"model\":"
           "\"d\"}}}",
           1, NULL);
    expect(
        f, leaf,
        "{\"IOProviderClass\":\"IOService\",\"IOParentMatch\":{\"IOProviderClass\":\"OdkSimBus\"}}",
        1, NULL);
    expect(f, leaf,
           "{\"IOProviderClass\":\"IOService\",\"IOParentMatch\":{\"IONameMatch\":\"sim\"}}", 1,
           NULL);
    /* The node itself is not its own parent. */
    expect(f, leaf,
           "{\"IOProviderClass\":\"IOService\",\"IOParentMatch\":{\"IOPropertyMatch\":{\"model\":"
           "\"leaf\"}}}",
           0, "IOParentMatch: no ancestor matches");
    expect(f, dev,
           "{\"IOProviderClass\":\"IOService\",\"IOParentMatch\":{\"IOPropertyMatch\":{\"model\":"
           "\"d\"}}}",
           0, "IOParentMatch");
    /* Nested: the parent's parent matches through the parent. */
    expect(f, leaf,
           "{\"IOProviderClass\":\"IOService\",\"IOParentMatch\":{\"IOParentMatch\":{"
           "\"IONameMatch\":\"sim\"}}}",
           1, NULL);
    expect(f, dev,
           "{\"IOProviderClass\":\"IOService\",\"IOParentMatch\":{\"IOParentMatch\":{"
           "\"IONameMatch\":\"sim\"}}}",
           0, "IOParentMatch");
    /* The root is no ancestor to match; wrong types are reasons. */
    expect(f, f->sim, "{\"IOProviderClass\":\"IOService\",\"IOParentMatch\":{}}", 0,
           "IOParentMatch");
    expect(f, leaf, "{\"IOProviderClass\":\"IOService\",\"IOParentMatch\":{}}", 1, NULL);
    expect(f, leaf, "{\"IOProviderClass\":\"IOService\",\"IOParentMatch\":\"sim\"}", 0,
           "expected dictionary");
    expect(f, leaf, "{\"IOProviderClass\":\"IOService\",\"IOParentMatch\":{\"IOProviderClass\":7}}",
           0, "IOParentMatch");
    /* Nesting is bounded (MATCH_PARENT_DEPTH). */
    char p[1024] = "{\"IONameMatch\":\"sim\"}";
    for (int i = 0; i < 12; i++) {
        char q[1024];
        snprintf(q, sizeof q, "{\"IOParentMatch\":%s}", p);
        snprintf(p, sizeof p, "%s", q);
    }
    char full[1200];
    snprintf(full, sizeof full, "{\"IOProviderClass\":\"IOService\",\"IOParentMatch\":%s}", p);
    expect(f, leaf, full, 0, "IOParentMatch");
    /* The parent's own reason is given. */
    expect(f, leaf, "{\"IOProviderClass\":\"IOService\",\"IOParentMatch\":{\"IONameMatch\":\"x\"}}",
           0, "(parent: IONameMatch: node name");

    /* A deep chain with nested IOParentMatch that never matches would try
     * 30^8 ancestors; the budget ends it (MATCH_PARENT_BUDGET). */
    reg_node *deep = leaf;
    for (int i = 0; i < 30; i++)
        registry_add(f->reg, deep, "OdkSimDevice", NULL, &deep);
    snprintf(p, sizeof p, "{\"IONameMatch\":\"none\"}");
    for (int i = 0; i < 7; i++) {
        char q[1024];
        snprintf(q, sizeof q, "{\"IOParentMatch\":%s}", p);
        snprintf(p, sizeof p, "%s", q);
    }
    snprintf(full, sizeof full, "{\"IOProviderClass\":\"IOService\",\"IOParentMatch\":%s}", p);
    expect(f, deep, full, 0, "MATCH_PARENT_BUDGET");
}

static void test_path_location_and_id(void **state)
{
    struct fx *f = *state;
    reg_node *bus, *dev;
    registry_add(f->reg, registry_root(f->reg), "OdkSimBus", json("{\"IOName\":\"sim\"}"), &bus);
    registry_add(f->reg, bus, "IOUSBHostInterface",
                 json("{\"IOLocation\":\"14100000\",\"bInterfaceNumber\":1}"), &dev);
    char path[256];
    assert_string_equal(match_node_path(dev, path, sizeof path),
                        "IOService:/sim/IOUSBHostInterface@14100000");
    assert_string_equal(match_node_path(registry_root(f->reg), path, sizeof path), "IOService:/");
    assert_string_equal(match_node_path(dev, path, 12), "IOService:/");
    expect(f, dev,
           "{\"IOProviderClass\":\"IOService\",\"IOPathMatch\":\"IOService:/sim/"
           "IOUSBHostInterface@14100000\"}",
           1, NULL);
    expect(f, dev, "{\"IOProviderClass\":\"IOService\",\"IOPathMatch\":\"IOService:/sim\"}", 0,
           "IOPathMatch: node path \"IOService:/sim/IOUSBHostInterface@14100000\"");
    expect(f, dev, "{\"IOProviderClass\":\"IOService\",\"IOPathMatch\":1}", 0,
           "IOPathMatch: expected string");

    expect(f, dev, "{\"IOProviderClass\":\"IOService\",\"IOLocationMatch\":\"14100000\"}", 1, NULL);
    expect(f, dev, "{\"IOProviderClass\":\"IOService\",\"IOLocationMatch\":\"14200000\"}", 0,
           "IOLocationMatch: node location");
    expect(f, f->sim, "{\"IOProviderClass\":\"IOService\",\"IOLocationMatch\":\"1\"}", 0,
           "IOLocationMatch: node has no IOLocation");
    expect(f, dev,
           "{\"IOProviderClass\":\"IOService\",\"IOLocationMatch\":{\"bInterfaceNumber\":1}}", 1,
           NULL);
    expect(f, dev,
           "{\"IOProviderClass\":\"IOService\",\"IOLocationMatch\":{\"bInterfaceNumber\":2}}", 0,
           "IOLocationMatch: node property bInterfaceNumber");
    expect(f, dev, "{\"IOProviderClass\":\"IOService\",\"IOLocationMatch\":[1]}", 0,
           "IOLocationMatch: expected string or dictionary");

    char p[256];
    snprintf(p, sizeof p, "{\"IOProviderClass\":\"IOService\",\"IORegistryEntryIDMatch\":%llu}",
             (unsigned long long)f->sim->id);
    expect(f, f->sim, p, 1, NULL);
    expect(f, f->plain, p, 0, "IORegistryEntryIDMatch: node id is");
    expect(f, f->sim, "{\"IOProviderClass\":\"IOService\",\"IORegistryEntryIDMatch\":\"1\"}", 0,
           "expected integer");
}

static void test_carry_not_compare(void **state)
{
    struct fx *f = *state;
    /* A personality as DriverKit projects ship it: only IOProviderClass and
     * IOPropertyMatch are compared; the node has none of the other keys. */
    const char *real =
        "{\"IOProviderClass\":\"IOService\",\"IOClass\":\"IOUserService\","
        "\"IOUserClass\":\"Echo\",\"IOUserServerName\":\"org.odk.echo\",\"IOProbeScore\":5,"
        "\"IOMatchCategory\":\"C\",\"CFBundleIdentifier\":\"org.odk.echo\","
        "\"CFBundleIdentifierKernel\":\"com.apple.kpi.iokit\",\"IOUserServerCDHash\":\"ab\","
        "\"IOPersonalityPublisher\":\"com.example.driver\",\"IOTTYBaseName\":\"echo\","
        "\"IOTTYSuffix\":\"0\",\"UserClientProperties\":{},\"IOUserClientClass\":\"EchoClient\","
        "\"IOKitDebug\":65535,\"IOMatchDefer\":true,\"IOServiceDEXTEntitlements\":[[\"x\"]],"
        "\"IOProviderMergeProperties\":{\"a\":1},\"OdkDeadlines\":{\"start\":1000},"
        "\"VendorTuning\":{\"gain\":3},\"model\":\"not-the-node-model\",\"serial\":7,"
        "\"idVendor\":1,\"IOPCIPrimaryMatch\":\"0x0\",\"IOPropertyMatch\":{\"model\":\"echo\"}}";
    expect(f, f->sim, real, 1, NULL);
    /* The same with a compared key that differs fails on that key. */
    expect(f, f->plain, real, 0, "IOPropertyMatch: node property model");
    assert_true(match_key_compared(f->reg, f->sim, "IOProviderClass"));
    assert_true(match_key_compared(f->reg, f->sim, "IOPropertyMatch"));
    assert_true(match_key_compared(f->reg, f->sim, "IOPropertyExistsMatch"));
    assert_true(match_key_compared(f->reg, f->sim, "IORegistryEntryIDMatch"));
    assert_false(match_key_compared(f->reg, f->sim, "IOProbeScore"));
    assert_false(match_key_compared(f->reg, f->sim, "model"));
    assert_false(match_key_compared(f->reg, f->sim, "IOPersonalityPublisher"));
    assert_false(match_key_compared(f->reg, f->sim, NULL));
    /* No table is registered in this test for USB: its keys are carried. */
    assert_false(match_key_compared(f->reg, f->usb, "idVendor"));
}

static void test_carried_dictionary(void **state)
{
    struct fx *f = *state;
    odk_value *p =
        json("{\"IOProviderClass\":\"IOService\",\"IOPropertyMatch\":{\"model\":\"echo\"},"
             "\"IOUserClass\":\"E\",\"IOTTYBaseName\":\"usbserial\",\"Tuning\":{\"x\":[1]}}");
    odk_value *c = match_carried(f->reg, f->sim, p);
    assert_non_null(c);
    assert_int_equal(odk_dict_count(c), 3);
    assert_null(odk_dict_get(c, "IOProviderClass"));
    assert_null(odk_dict_get(c, "IOPropertyMatch"));
    assert_string_equal(odk_dict_get_string(c, "IOTTYBaseName", ""), "usbserial");
    assert_true(odk_value_equal(odk_dict_get(c, "Tuning"), odk_dict_get(p, "Tuning")));
    odk_value_free(c);
    odk_value_free(p);
}

/* A bus's table as a module registers it: "widget" compares exactly, on
 * TestWidget nodes; the rule wants "widget" with "rev" or "widget" alone. */
static int compare_widget(const reg_node *node, const odk_value *personality, const char *key,
                          const odk_value *want, char *why, size_t why_len)
{
    (void)personality;
    const odk_value *have = node->props ? odk_dict_get(node->props, key) : NULL;
    if (have && odk_value_equal(have, want))
        return 1;
    if (why)
        snprintf(why, why_len, "%s: differs", key);
    return 0;
}

static int compare_silent(const reg_node *node, const odk_value *personality, const char *key,
                          const odk_value *want, char *why, size_t why_len)
{
    (void)node;
    (void)personality;
    (void)key;
    (void)why;
    (void)why_len;
    return odk_value_type(want) == ODK_TYPE_BOOL && odk_value_bool(want);
}

static int widget_rule(const odk_value *personality, int *precedence, char *why, size_t why_len)
{
    bool w = odk_dict_get(personality, "widget"), r = odk_dict_get(personality, "rev");
    if (r && !w) {
        snprintf(why, why_len, "rev: needs widget");
        return 0;
    }
    *precedence = w && r ? 2 : w ? 1 : 0;
    return 1;
}

/* "widget" is plain equality with the node's own property, so the match
 * index may file personalities under it. */
static const odk_value *widget_value(const reg_node *node, const char *key)
{
    return node->props ? odk_dict_get(node->props, key) : NULL;
}

static const char *const widget_equality[] = {"widget", NULL};

static const struct match_key widget_keys[] = {
    {"widget", compare_widget},
    {"rev", compare_widget},
    {"quiet", compare_silent},
    {NULL, NULL},
};
static const struct match_keys widget_table = {"TestWidget", widget_keys, widget_rule,
                                               widget_equality, widget_value};

static reg_node *widget(const struct fx *f)
{
    if (!registry_class_is_a(f->reg, "TestWidget", "IOService"))
        assert_int_equal(registry_define_class(f->reg, "TestWidget", "IOService"), ODK_OK);
    assert_int_equal(match_keys_register(&widget_table), ODK_OK);
    reg_node *n;
    registry_add(f->reg, registry_root(f->reg), "TestWidget", json("{\"widget\":\"w1\",\"rev\":2}"),
                 &n);
    return n;
}

static void test_family_keys(void **state)
{
    struct fx *f = *state;
    reg_node *w = widget(f);
    assert_int_equal(match_keys_register(NULL), ODK_E_INVALID);
    /* On its class, the table's keys are compared. */
    assert_true(match_key_compared(f->reg, w, "widget"));
    assert_false(match_key_compared(f->reg, f->sim, "widget"));
    expect(f, w, "{\"IOProviderClass\":\"TestWidget\",\"widget\":\"w1\",\"colour\":\"red\"}", 1,
           NULL);
    expect(f, w, "{\"IOProviderClass\":\"TestWidget\",\"widget\":\"w2\"}", 0, "widget: differs");
    expect(f, w, "{\"IOProviderClass\":\"IOService\",\"widget\":\"w1\",\"rev\":2}", 1, NULL);
    /* The rule judges the set. */
    expect(f, w, "{\"IOProviderClass\":\"TestWidget\",\"rev\":2}", 0, "rev: needs widget");
    /* A compare that gives no reason still names its key. */
    expect(f, w, "{\"IOProviderClass\":\"TestWidget\",\"quiet\":false}", 0, "quiet");
    /* On other classes the same keys are carried. */
    expect(f, f->sim, "{\"IOProviderClass\":\"IOService\",\"widget\":\"w2\",\"rev\":1}", 1, NULL);
    odk_value *p = json("{\"IOProviderClass\":\"TestWidget\",\"widget\":\"w1\",\"rev\":2}");
    assert_int_equal(match_precedence(f->reg, w, p), 2);
    assert_int_equal(match_precedence(f->reg, f->sim, p), 0);
    odk_value_free(p);
    p = json("{\"IOProviderClass\":\"TestWidget\",\"widget\":\"w1\",\"colour\":1}");
    odk_value *c = match_carried(f->reg, w, p);
    assert_int_equal(odk_dict_count(c), 1);
    assert_non_null(odk_dict_get(c, "colour"));
    odk_value_free(c);
    odk_value_free(p);
}

static void test_family_precedence(void **state)
{
    struct fx *f = *state;
    reg_node *w = widget(f);
    /* Equal scores: the more specific rule wins, whatever the names. */
    bundle *b[] = {
        make_bundle("org.a", "{\"Broad\":{\"IOProviderClass\":\"TestWidget\",\"IOUserClass\":\"W\","
                             "\"IOProbeScore\":5,"
                             "\"widget\":\"w1\"}}"),
        make_bundle("org.z", "{\"Narrow\":{\"IOProviderClass\":\"TestWidget\",\"IOUserClass\":"
                             "\"W\",\"IOProbeScore\":5,"
                             "\"widget\":\"w1\",\"rev\":2}}"),
        make_bundle("org.b", "{\"None\":{\"IOProviderClass\":\"TestWidget\",\"IOUserClass\":\"W\","
                             "\"IOProbeScore\":5}}"),
    };
    match_candidate *win;
    size_t n;
    assert_int_equal(match_rank(f->reg, w, b, 3, NULL, 0, &win, &n), ODK_OK);
    assert_int_equal(n, 1);
    assert_string_equal(win[0].name, "Narrow");
    assert_int_equal(win[0].precedence, 2);
    free(win);
    /* A higher IOProbeScore still beats precedence. */
    bundle *c[] = {b[0], b[1],
                   make_bundle("org.c", "{\"Top\":{\"IOProviderClass\":\"TestWidget\","
                                        "\"IOUserClass\":\"W\",\"IOProbeScore\":6}}")};
    assert_int_equal(match_rank(f->reg, w, c, 3, NULL, 0, &win, &n), ODK_OK);
    assert_string_equal(win[0].name, "Top");
    free(win);
    /* --explain lists the table's keys as compared on this node. */
    odk_value *list = match_explain(f->reg, w, b, 3, NULL, 0);
    const odk_value *e = explain_entry(list, "org.z", "Narrow");
    const odk_value *cmp = odk_dict_get(e, "compared");
    assert_int_equal(odk_array_count(cmp), 3);
    assert_string_equal(odk_value_string(odk_array_get(cmp, 0)), "IOProviderClass");
    const odk_value *car = odk_dict_get(e, "carried");
    assert_int_equal(odk_array_count(car), 2);
    assert_string_equal(odk_value_string(odk_array_get(car, 0)), "IOUserClass");
    assert_string_equal(odk_value_string(odk_array_get(car, 1)), "IOProbeScore");
    odk_value_free(list);
    bundle_free(c[2]);
    free_bundles(b, 3);
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

/* A bundle entitled to ent (JSON). */
static bundle *make_bundle_ent(const char *id, const char *personalities, const char *ent)
{
    char text[4096];
    snprintf(text, sizeof text,
             "{\"bundle\":\"%s\",\"version\":\"1\",\"build\":\"b1\",\"executable\":\"x.so\","
             "\"entitlements\":%s,\"personalities\":%s}",
             id, ent, personalities);
    bundle *b = NULL;
    char err[512];
    if (bundle_parse_json(text, strlen(text), "test", &b, err, sizeof err) != ODK_OK)
        fail_msg("bad test bundle: %s", err);
    return b;
}

/* The fixture's nodes are simulated devices. */
static bundle *make_bundle(const char *id, const char *personalities)
{
    return make_bundle_ent(id, personalities, "{\"sim\":true}");
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
        make_bundle("org.a", "{\"Mid\":" P(100, "") ",\"NoMatch\":" P(
                                 9999, ",\"IOPropertyMatch\":{\"model\":\"nope\"}") "}"),
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

/* A personality that matches a node its bundle is not entitled to does
 * not match, and explain says it was the entitlement. */
static void test_rank_needs_entitlement(void **state)
{
    struct fx *f = *state;
    bundle *b[] = {
        make_bundle_ent("org.none", "{\"High\":" P(500, "") "}", "{}"),
        make_bundle_ent("org.usb", "{\"Mid\":" P(100, "") "}", "{\"usb\":[{\"vendor\":1}]}"),
        make_bundle("org.sim", "{\"Low\":" P(10, "") "}"),
    };
    match_candidate *w;
    size_t n;
    assert_int_equal(match_rank(f->reg, f->sim, b, 3, NULL, 0, &w, &n), ODK_OK);
    assert_int_equal(n, 1);
    assert_string_equal(w[0].bundle->id, "org.sim");
    free(w);
    odk_value *list = match_explain(f->reg, f->sim, b, 3, NULL, 0);
    assert_non_null(list);
    for (size_t i = 0; i < 2; i++) {
        const odk_value *e = odk_array_get(list, i);
        assert_false(odk_dict_get_bool(e, "matched", true));
        assert_false(odk_dict_get_bool(e, "entitlement", true));
        assert_non_null(strstr(odk_dict_get_string(e, "reason", ""), "entitlement"));
        assert_non_null(strstr(odk_dict_get_string(e, "reason", ""), "\"sim\": true"));
    }
    assert_true(odk_dict_get_bool(odk_array_get(list, 2), "matched", false));
    assert_null(odk_dict_get(odk_array_get(list, 2), "entitlement"));
    odk_value_free(list);
    free_bundles(b, 3);
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
        make_bundle(
            "org.b",
            "{\"Other\":" P(
                3,
                ",\"IOMatchCategory\":\"x\"") ","
                                              "\"Wrong\":" P(
                                                  99,
                                                  ",\"IOPropertyMatch\":{\"model\":\"nope\"}") "}"),
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
    assert_non_null(strstr(odk_dict_get_string(e, "reason", ""), "IOPropertyMatch"));
    assert_non_null(strstr(odk_dict_get_string(e, "reason", ""), "model"));
    /* Compared and carried keys, in the personality's order. */
    const odk_value *cmp = odk_dict_get(e, "compared"), *car = odk_dict_get(e, "carried");
    assert_int_equal(odk_array_count(cmp), 2);
    assert_string_equal(odk_value_string(odk_array_get(cmp, 0)), "IOProviderClass");
    assert_string_equal(odk_value_string(odk_array_get(cmp, 1)), "IOPropertyMatch");
    assert_int_equal(odk_array_count(car), 2);
    assert_string_equal(odk_value_string(odk_array_get(car, 0)), "IOUserClass");
    assert_string_equal(odk_value_string(odk_array_get(car, 1)), "IOProbeScore");
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

/* ---- the match index ---- */

static unsigned rnd_state = 12345;
static unsigned rnd(unsigned n)
{
    rnd_state = rnd_state * 1103515245u + 12345u;
    return (rnd_state >> 16) % n;
}

/* One random personality body, as JSON, into buf. */
static void random_personality(char *buf, size_t len)
{
    static const char *const classes[] = {"\"IOService\"", "\"OdkSimDevice\"", "\"TestWidget\"",
                                          "\"SubWidget\"", "\"Nope\""};
    static const char *const props[] = {
        "{\"model\":\"a\"}", "{\"model\":\"b\",\"slot\":1}", "{\"slot\":2}",
        "{\"slot\":\"2\"}", "{\"on\":true}", "{}", "[{\"model\":\"a\"},{\"slot\":3}]",
        "{\"model\":[1]}", "{\"IOName\":\"n1\"}"};
    static const char *const names[] = {"\"n1\"", "[\"n1\",\"n2\"]", "[\"n2\",\"n2\"]",
                                        "[\"n1\",\"n3\"]", "[]", "\"TestWidget\""};
    static const char *const widgets[] = {"\"w1\"", "\"w2\"", "3"};
    size_t at = (size_t)snprintf(buf, len, "{\"IOProviderClass\":%s,\"IOUserClass\":\"X\"",
                                 classes[rnd(5)]);
    if (rnd(3))
        at += (size_t)snprintf(buf + at, len - at, ",\"IOPropertyMatch\":%s", props[rnd(9)]);
    if (!rnd(3))
        at += (size_t)snprintf(buf + at, len - at, ",\"IONameMatch\":%s", names[rnd(6)]);
    if (!rnd(3))
        at += (size_t)snprintf(buf + at, len - at, ",\"widget\":%s", widgets[rnd(3)]);
    if (!rnd(4))
        at += (size_t)snprintf(buf + at, len - at, ",\"rev\":%u", rnd(3));
    if (!rnd(3))
        at += (size_t)snprintf(buf + at, len - at, ",\"IOProbeScore\":%u", rnd(3));
    if (!rnd(4))
        at += (size_t)snprintf(buf + at, len - at, ",\"IOMatchCategory\":\"C%u\"", rnd(2));
    snprintf(buf + at, len - at, "}");
}

/* Ranking the index's candidates gives what ranking every personality
 * gives, on random personalities and nodes; and the index does leave
 * some out (it is not "every personality"). */
static void test_index_agrees_with_full_rank(void **state)
{
    struct fx *f = *state;
    assert_int_equal(match_keys_register(&widget_table), ODK_OK);
    (void)widget(f);
    assert_int_equal(registry_define_class(f->reg, "SubWidget", "TestWidget"), ODK_OK);
    enum { BUNDLES = 40, PER = 5, NODES = 60 };
    bundle *b[BUNDLES];
    for (int i = 0; i < BUNDLES; i++) {
        char text[PER * 512] = "{", id[32], one[480];
        size_t at = 1;
        for (int j = 0; j < PER; j++) {
            random_personality(one, sizeof one);
            at += (size_t)snprintf(text + at, sizeof text - at, "%s\"P%d\":%s", j ? "," : "", j,
                                   one);
        }
        snprintf(text + at, sizeof text - at, "}");
        snprintf(id, sizeof id, "org.ix.b%02d", i);
        b[i] = make_bundle(id, text);
    }
    match_index *ix = match_index_build(f->reg, b, BUNDLES);
    assert_non_null(ix);
    size_t total, unfiled, candidates = 0, pairs = 0, matched = 0;
    match_index_counts(ix, &total, &unfiled);
    assert_int_equal(total, BUNDLES * PER);
    assert_true(unfiled < total);
    static const char *const classes[] = {"OdkSimDevice", "TestWidget", "SubWidget",
                                          "IOUserSerial"};
    static const char *const models[] = {"\"a\"", "\"b\"", "1"};
    for (int i = 0; i < NODES; i++) {
        char props[256];
        snprintf(props, sizeof props,
                 "{\"model\":%s,\"slot\":%u,\"on\":%s,\"widget\":\"w%u\",\"rev\":%u%s}",
                 models[rnd(3)], rnd(4), rnd(2) ? "true" : "false", rnd(3), rnd(3),
                 rnd(2) ? ",\"IOName\":\"n1\"" : rnd(2) ? ",\"name\":\"n2\"" : "");
        reg_node *n;
        assert_int_equal(registry_add(f->reg, registry_root(f->reg), classes[rnd(4)], json(props), &n),
                         ODK_OK);
        const char *taken[] = {"C1"};
        size_t n_taken = rnd(2);
        match_candidate *all, *some;
        size_t n_all, n_some, n_refs;
        match_ref *refs;
        assert_int_equal(match_rank(f->reg, n, b, BUNDLES, taken, n_taken, &all, &n_all), ODK_OK);
        assert_int_equal(match_index_candidates(ix, f->reg, n, &refs, &n_refs), ODK_OK);
        assert_int_equal(match_rank_some(f->reg, n, refs, n_refs, taken, n_taken, &some, &n_some),
                         ODK_OK);
        if (n_all != n_some)
            fail_msg("node %s %s: %zu winners from all, %zu from the index", classes[0], props,
                     n_all, n_some);
        for (size_t k = 0; k < n_all; k++) {
            assert_ptr_equal(all[k].bundle, some[k].bundle);
            assert_string_equal(all[k].name, some[k].name);
        }
        candidates += n_refs;
        pairs += BUNDLES * PER;
        matched += n_all;
        free(all);
        free(some);
        free(refs);
    }
    assert_true(candidates < pairs / 2);
    assert_true(matched > NODES); /* the comparison above was not of empty lists */
    match_index_free(ix);
    free_bundles(b, BUNDLES);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_provider_class),       T(test_name_match),
        T(test_property_match),       T(test_resource_match),
        T(test_exists_match),         T(test_parent_match),
        T(test_path_location_and_id), T(test_carry_not_compare),
        T(test_carried_dictionary),   T(test_family_keys),
        T(test_family_precedence),    T(test_rank_needs_entitlement),    cmocka_unit_test(test_score_and_category),
        T(test_rank_score),           T(test_rank_ties),
        T(test_rank_categories),      T(test_explain),
        T(test_index_agrees_with_full_rank),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
