/* SPDX-License-Identifier: MIT */
/* fuzz_match — IOKit matching with an untrusted personality.  The input
 * is JSON (odk_value_from_json, as odkctl and manifests write values);
 * the value is matched against every node of a small registry with
 * match_personality, the way odkd matches an app's matching dictionary
 * (server.c app_match) and, as a one-personality bundle next to a fixed
 * one (plus, when the input is a dictionary, a bundle of its dictionary
 * values), through match_explain.  The USB and PCI buses' match keys are
 * registered as odkd registers them.  Checks: results are 0 or 1, reasons
 * fit their buffer, explain agrees with match_personality, and its
 * compared and carried keys split the personality's keys as
 * match_key_compared and match_carried do. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buses/pci/pci_match.h"
#include "buses/usb/usb_match.h"
#include "daemon/core/bundle.h"
#include "daemon/core/match.h"
#include "daemon/core/registry.h"
#include "daemon/core/test_fixture.h"
#include "odk/status.h"
#include "odk/value.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static registry *reg;
static reg_node *nodes[12];
static size_t n_nodes;
/* Entitled to every node: matching, not entitlements, is under test here
 * (test_entitlements covers those). */
static odk_value *all_entitlements;
static odk_value *fixed_personalities;

static void die(const char *what)
{
    fprintf(stderr, "fuzz_match: %s\n", what);
    abort();
}

static odk_value *json(const char *text)
{
    odk_value *v = NULL;
    char err[256];
    if (odk_value_from_json(text, &v, err, sizeof err) != ODK_OK) {
        fprintf(stderr, "fuzz_match: bad harness JSON: %s\n", err);
        abort();
    }
    return v;
}

static void add(reg_node *parent, const char *cls, const char *props)
{
    reg_node *n = NULL;
    if (registry_add(reg, parent, cls, props ? json(props) : NULL, &n) != ODK_OK)
        die("registry_add failed");
    nodes[n_nodes++] = n;
}

static void setup(void)
{
    if (reg)
        return;
    if (fixture_registry(&reg) != ODK_OK)
        die("registry_create failed");
    if (match_keys_register(&pci_match_keys) < 0 ||
        match_keys_register(&usb_device_match_keys) < 0 ||
        match_keys_register(&usb_interface_match_keys) < 0)
        die("match_keys_register failed");
    reg_node *root = registry_root(reg);
    registry_define_class(reg, "FuzzBus", "IOService");
    add(root, "IOUserResources", "{\"IOKit\":true,\"org.odk.sim\":true}");
    add(root, "OdkSimBus", NULL);
    reg_node *bus = nodes[n_nodes - 1];
    add(bus, "OdkSimDevice",
        "{\"model\":\"echo\",\"IOName\":\"echo0\",\"serial\":42,"
        "\"blob\":{\"$data\":\"0102\"},\"flags\":[1,2],\"nested\":{\"a\":{\"b\":true}}}");
    add(root, "IOPCIDevice",
        "{\"vendor-id\":32902,\"device-id\":4660,\"subsystem-vendor-id\":6900,"
        "\"subsystem-id\":4352,\"class-code\":131072,\"revision-id\":3,\"name\":\"pci8086,1234\"}");
    /* Out-of-range and wrongly typed PCI registers. */
    add(root, "IOPCIDevice",
        "{\"vendor-id\":-1,\"device-id\":9223372036854775807,\"subsystem-vendor-id\":\"x\","
        "\"class-code\":-9223372036854775808,\"revision-id\":[3],\"IOName\":7}");
    add(root, "IOUSBHostInterface",
        "{\"idVendor\":1027,\"idProduct\":24577,\"bInterfaceNumber\":0,\"name\":\"usb-serial\"}");
    add(bus, "IOUSBHostDevice",
        "{\"idVendor\":1452,\"idProduct\":34304,\"bcdDevice\":256,\"bDeviceClass\":0,"
        "\"bDeviceSubClass\":0,\"bDeviceProtocol\":0,\"IOLocation\":\"14100000\"}");
    reg_node *usbdev = nodes[n_nodes - 1];
    add(usbdev, "IOUSBHostInterface",
        "{\"bConfigurationValue\":1,\"bInterfaceNumber\":1,\"bInterfaceClass\":3,"
        "\"bInterfaceSubClass\":1,\"bInterfaceProtocol\":1,\"IOLocation\":\"14100000/1\"}");
    add(root, "FuzzBus", "{}");
    add(root, "UnknownClass", NULL);
    all_entitlements = json("{\"usb\":\"*\",\"pci\":\"*\",\"sim\":true,\"evdev\":true}");
    fixed_personalities =
        json("{\"Echo\":{\"IOProviderClass\":\"OdkSimDevice\",\"IOUserClass\":\"Echo\","
             "\"IOPropertyMatch\":{\"model\":\"echo\"},\"IOProbeScore\":1000},"
             "\"Pci\":{\"IOProviderClass\":\"IOPCIDevice\",\"IOUserClass\":\"Pci\","
             "\"IOPCIPrimaryMatch\":\"0x12348086&0xffffffff\",\"IOMatchCategory\":\"taken-cat\"}}");
}

static void check_why(const char *why, size_t len)
{
    if (!memchr(why, '\0', len))
        die("reason not NUL-terminated within its buffer");
}

static bool is_dict_of_dicts_entry(const odk_value *v)
{
    return odk_value_type(v) == ODK_TYPE_DICT;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    odk_value *p = NULL;
    char err[64];
    int st = odk_value_from_json(text, &p, err, sizeof err);
    free(text);
    if (st != ODK_OK) {
        if (p)
            die("from_json failed but set *out");
        check_why(err, sizeof err);
        return 0;
    }

    /* app_match: the dictionary as given, or with IOProviderClass IOService. */
    odk_value *app = NULL;
    if (odk_value_type(p) == ODK_TYPE_DICT) {
        app = odk_value_copy(p);
        if (!app)
            return 0;
        if (!odk_dict_get(app, "IOProviderClass"))
            odk_dict_set_string(app, "IOProviderClass", "IOService");
    }

    /* Bundles as odkd holds them; only dictionaries can be personalities
     * (bundle.c rejects anything else). */
    bundle b1 = {.id = "org.fuzz.one", .personalities = odk_value_new_dict(),
                 .entitlements = all_entitlements};
    bundle b2 = {.id = "org.fuzz.fixed", .personalities = fixed_personalities,
                 .entitlements = all_entitlements};
    bundle b3 = {.id = "org.fuzz.many", .personalities = odk_value_new_dict(),
                 .entitlements = all_entitlements};
    if (!b1.personalities || !b3.personalities)
        die("out of memory");
    if (odk_value_type(p) == ODK_TYPE_DICT)
        odk_dict_set(b1.personalities, "Fuzz", odk_value_copy(p));
    for (size_t i = 0; i < odk_dict_count(p); i++)
        if (is_dict_of_dicts_entry(odk_dict_value_at(p, i)))
            odk_dict_set(b3.personalities, odk_dict_key_at(p, i),
                         odk_value_copy(odk_dict_value_at(p, i)));
    bundle *bundles[] = {&b1, &b2, &b3};
    const char *taken[] = {"taken-cat", NULL};
    size_t n_pers = odk_dict_count(b1.personalities) + odk_dict_count(b2.personalities) +
                    odk_dict_count(b3.personalities);

    for (size_t i = 0; i < n_nodes; i++) {
        const reg_node *n = nodes[i];
        char why[512];
        char small[5];
        int r = match_personality(reg, n, p, why, sizeof why);
        if (r != 0 && r != 1)
            die("match_personality returned neither 0 nor 1");
        check_why(why, sizeof why);
        if (match_personality(reg, n, p, small, sizeof small) != r)
            die("match result depends on the size of the reason buffer");
        check_why(small, sizeof small);
        if (match_personality(reg, n, p, NULL, 0) != r)
            die("match result depends on whether a reason is asked for");
        if (app) {
            r = match_personality(reg, n, app, why, sizeof why);
            if (r != 0 && r != 1)
                die("match_personality returned neither 0 nor 1");
            check_why(why, sizeof why);
        }

        match_candidate *w = NULL;
        size_t nw = 0;
        if (match_rank(reg, n, bundles, 3, taken, 2, &w, &nw) != ODK_OK)
            die("match_rank failed");
        for (size_t k = 0; k < nw; k++)
            for (size_t j = k + 1; j < nw; j++)
                if (strcmp(w[k].category, w[j].category) == 0)
                    die("two winners in one match category");
        free(w);

        odk_value *ex = match_explain(reg, n, bundles, 3, taken, 2);
        if (!ex)
            die("match_explain failed");
        if (odk_array_count(ex) != n_pers)
            die("match_explain does not list every personality once");
        /* Explain's "matched" is match_personality's answer. */
        size_t k = 0;
        for (size_t bi = 0; bi < 3; bi++) {
            const odk_value *ps = bundles[bi]->personalities;
            for (size_t pi = 0; pi < odk_dict_count(ps); pi++, k++) {
                const odk_value *e = odk_array_get(ex, k);
                int m = match_personality(reg, n, odk_dict_value_at(ps, pi), NULL, 0);
                if (odk_dict_get_bool(e, "matched", !m) != (m == 1))
                    die("match_explain's matched differs from match_personality");
            }
        }
        /* compared + carried is every key, and carried is match_carried. */
        k = 0;
        for (size_t bi = 0; bi < 3; bi++) {
            const odk_value *ps = bundles[bi]->personalities;
            for (size_t pi = 0; pi < odk_dict_count(ps); pi++, k++) {
                const odk_value *e = odk_array_get(ex, k), *pers = odk_dict_value_at(ps, pi);
                const odk_value *car = odk_dict_get(e, "carried");
                if (odk_array_count(odk_dict_get(e, "compared")) + odk_array_count(car) !=
                    odk_dict_count(pers))
                    die("compared and carried do not list every key once");
                odk_value *c = match_carried(reg, n, pers);
                if (!c)
                    die("match_carried failed");
                if (odk_dict_count(c) != odk_array_count(car))
                    die("match_carried differs from explain's carried");
                for (size_t j = 0; j < odk_array_count(car); j++)
                    if (!odk_dict_get(c, odk_value_string(odk_array_get(car, j))))
                        die("a carried key is missing from match_carried");
                odk_value_free(c);
            }
        }
        char path[64];
        check_why(match_node_path(n, path, sizeof path), sizeof path);
        char *js = odk_value_to_json(ex, 0);
        free(js);
        odk_value_free(ex);
    }

    odk_value_free(b1.personalities);
    odk_value_free(b3.personalities);
    odk_value_free(app);
    odk_value_free(p);
    return 0;
}
