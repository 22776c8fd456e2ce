/* SPDX-License-Identifier: MIT */
/* Unit tests for the USB bus's match keys and IOKit's USB matching rules
 * (usb_match.c): each key, idProductArray and idProductMask, device-level
 * keys read from the parent, the device and interface rule sets with their
 * precedence, and how precedence ranks personalities of equal score. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buses/usb/usb_match.h"
#include "daemon/core/test_fixture.h"
#include "odk/status.h"

struct fx {
    registry *reg;
    reg_node *dev;    /* IOUSBHostDevice 0403:6001 bcd 0600, class 0/0/0 */
    reg_node *serial; /* its interface 0 of configuration 1, class ff/ff/ff */
    reg_node *hid;    /* its interface 1: HID boot keyboard 3/1/1, no ids of its own */
    reg_node *sim;    /* OdkSimDevice with USB-looking properties */
};

static odk_value *json(const char *text)
{
    odk_value *v = NULL;
    char err[256];
    if (odk_value_from_json(text, &v, err, sizeof err) != ODK_OK)
        fail_msg("bad test JSON: %s: %s", err, text);
    return v;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    if (!f || fixture_registry(&f->reg) != ODK_OK ||
        match_keys_register(&usb_device_match_keys) < 0 ||
        match_keys_register(&usb_interface_match_keys) < 0)
        return -1;
    registry_add(f->reg, registry_root(f->reg), "IOUSBHostDevice",
                 json("{\"idVendor\":1027,\"idProduct\":24577,\"bcdDevice\":1536,"
                      "\"bDeviceClass\":0,\"bDeviceSubClass\":0,\"bDeviceProtocol\":0,"
                      "\"bConfigurationValue\":1}"),
                 &f->dev);
    registry_add(f->reg, f->dev, "IOUSBHostInterface",
                 json("{\"idVendor\":1027,\"idProduct\":24577,\"bcdDevice\":1536,"
                      "\"bConfigurationValue\":1,\"bInterfaceNumber\":0,\"bInterfaceClass\":255,"
                      "\"bInterfaceSubClass\":255,\"bInterfaceProtocol\":255}"),
                 &f->serial);
    registry_add(f->reg, f->dev, "IOUSBHostInterface",
                 json("{\"bConfigurationValue\":1,\"bInterfaceNumber\":1,\"bInterfaceClass\":3,"
                      "\"bInterfaceSubClass\":1,\"bInterfaceProtocol\":1}"),
                 &f->hid);
    registry_add(f->reg, registry_root(f->reg), "OdkSimDevice",
                 json("{\"idVendor\":1027,\"idProduct\":24577}"), &f->sim);
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

/* Matches "{IOProviderClass: cls, <keys>}" against n. */
static void expect(const struct fx *f, const reg_node *n, const char *cls, const char *keys,
                   int want, const char *want_why)
{
    char text[1024];
    snprintf(text, sizeof text, "{\"IOProviderClass\":\"%s\"%s%s}", cls, *keys ? "," : "", keys);
    odk_value *p = json(text);
    char why[512] = "unset";
    int r = match_personality(f->reg, n, p, why, sizeof why);
    odk_value_free(p);
    if (r != want)
        fail_msg("%s: expected %d, got %d (%s)", text, want, r, why);
    if (want == 0 && want_why && !strstr(why, want_why))
        fail_msg("%s: reason \"%s\" does not mention \"%s\"", text, why, want_why);
}

static int precedence(const struct fx *f, const reg_node *n, const char *keys)
{
    char text[1024];
    snprintf(text, sizeof text, "{\"IOProviderClass\":\"IOService\",%s}", keys);
    odk_value *p = json(text);
    int r = match_precedence(f->reg, n, p);
    odk_value_free(p);
    return r;
}

#define IF "IOUSBHostInterface"
#define DEV "IOUSBHostDevice"
#define SERIAL5                                                                                    \
    "\"idVendor\":1027,\"idProduct\":24577,\"bConfigurationValue\":1,\"bInterfaceNumber\":0"

static void test_interface_keys(void **state)
{
    struct fx *f = *state;
    expect(f, f->serial, IF, SERIAL5, 1, NULL);
    expect(f, f->serial, IF, SERIAL5 ",\"bcdDevice\":1536", 1, NULL);
    /* Each key that differs is named. */
    expect(f, f->serial, IF,
           "\"idVendor\":1028,\"idProduct\":24577,\"bConfigurationValue\":1,"
           "\"bInterfaceNumber\":0",
           0, "idVendor: node has 1027, personality wants 1028");
    expect(f, f->serial, IF,
           "\"idVendor\":1027,\"idProduct\":24578,\"bConfigurationValue\":1,"
           "\"bInterfaceNumber\":0",
           0, "idProduct: node has 24577");
    expect(f, f->serial, IF, SERIAL5 ",\"bcdDevice\":1537", 0, "bcdDevice");
    expect(f, f->serial, IF,
           "\"idVendor\":1027,\"idProduct\":24577,\"bConfigurationValue\":2,"
           "\"bInterfaceNumber\":0",
           0, "bConfigurationValue");
    expect(f, f->serial, IF,
           "\"idVendor\":1027,\"idProduct\":24577,\"bConfigurationValue\":1,"
           "\"bInterfaceNumber\":1",
           0, "bInterfaceNumber: node has 0, personality wants 1");
    expect(f, f->serial, IF,
           "\"idVendor\":\"1027\",\"idProduct\":24577,\"bConfigurationValue\":1,"
           "\"bInterfaceNumber\":0",
           0, "idVendor: expected integer, got string");
    /* A key the node lacks. */
    expect(f, f->hid, IF, "\"bInterfaceClass\":3,\"bInterfaceSubClass\":1,\"bcdDevice\":0", 0,
           "bcdDevice");
}

static void test_ids_from_the_device(void **state)
{
    struct fx *f = *state;
    /* The HID interface has no ids: they come from its device. */
    expect(f, f->hid, IF,
           "\"idVendor\":1027,\"idProduct\":24577,\"bConfigurationValue\":1,"
           "\"bInterfaceNumber\":1",
           1, NULL);
    expect(f, f->hid, IF,
           "\"idVendor\":1026,\"idProduct\":24577,\"bConfigurationValue\":1,"
           "\"bInterfaceNumber\":1",
           0, "idVendor");
    /* Interface-level keys never come from the parent. */
    reg_node *bare;
    registry_add(f->reg, f->dev, "IOUSBHostInterface", NULL, &bare);
    expect(f, bare, IF, "\"bInterfaceClass\":3,\"bInterfaceSubClass\":1", 0,
           "bInterfaceClass: node has no property bInterfaceClass");
    expect(f, bare, IF, "\"idVendor\":1027,\"bInterfaceSubClass\":1", 0, "bInterfaceSubClass");
}

static void test_product_array_and_mask(void **state)
{
    struct fx *f = *state;
    const char *rest = ",\"bConfigurationValue\":1,\"bInterfaceNumber\":0";
    char k[512];
    snprintf(k, sizeof k, "\"idVendor\":1027,\"idProductArray\":[1,24577,3]%s", rest);
    expect(f, f->serial, IF, k, 1, NULL);
    snprintf(k, sizeof k, "\"idVendor\":1027,\"idProductArray\":[1,2]%s", rest);
    expect(f, f->serial, IF, k, 0, "idProductArray: node's idProduct 24577 is not in the list");
    snprintf(k, sizeof k, "\"idVendor\":1027,\"idProductArray\":[1,\"x\"]%s", rest);
    expect(f, f->serial, IF, k, 0, "idProductArray: item 1");
    snprintf(k, sizeof k, "\"idVendor\":1027,\"idProductArray\":24577%s", rest);
    expect(f, f->serial, IF, k, 0, "idProductArray: expected array");
    /* 0x6001 under mask 0xff00 equals 0x60ff. */
    snprintf(k, sizeof k, "\"idVendor\":1027,\"idProduct\":24831,\"idProductMask\":65280%s", rest);
    expect(f, f->serial, IF, k, 1, NULL);
    snprintf(k, sizeof k, "\"idVendor\":1027,\"idProduct\":24831%s", rest);
    expect(f, f->serial, IF, k, 0, "idProduct");
    snprintf(k, sizeof k, "\"idVendor\":1027,\"idProduct\":28672,\"idProductMask\":65280%s", rest);
    expect(f, f->serial, IF, k, 0, "under idProductMask");
    snprintf(k, sizeof k,
             "\"idVendor\":1027,\"idProductArray\":[9,24831],\"idProductMask\":65280%s", rest);
    expect(f, f->serial, IF, k, 1, NULL);
    snprintf(k, sizeof k, "\"idVendor\":1027,\"idProduct\":24577,\"idProductMask\":\"ff00\"%s",
             rest);
    expect(f, f->serial, IF, k, 0, "idProductMask: expected integer");
}

static void test_interface_rules(void **state)
{
    struct fx *f = *state;
    /* Class rules on the HID interface. */
    expect(f, f->hid, IF, "\"bInterfaceClass\":3,\"bInterfaceSubClass\":1,\"bInterfaceProtocol\":1",
           1, NULL);
    expect(f, f->hid, IF, "\"bInterfaceClass\":3,\"bInterfaceSubClass\":1", 1, NULL);
    expect(f, f->hid, IF, "\"bInterfaceClass\":3,\"bInterfaceSubClass\":1,\"bInterfaceProtocol\":2",
           0, "bInterfaceProtocol: node has 1, personality wants 2");
    /* Vendor-specific class: vendor + subclass (+ protocol). */
    expect(f, f->serial, IF, "\"idVendor\":1027,\"bInterfaceSubClass\":255", 1, NULL);
    expect(f, f->serial, IF,
           "\"idVendor\":1027,\"bInterfaceSubClass\":255,\"bInterfaceProtocol\":255", 1, NULL);
    /* Sets that form no rule are refused, naming the keys used. */
    expect(f, f->serial, IF, "\"idVendor\":1027", 0,
           "idVendor: these USB keys form none of IOKit's interface matching rules");
    expect(f, f->serial, IF, "\"idVendor\":1027,\"idProduct\":24577", 0,
           "idVendor+idProduct: these USB keys");
    expect(f, f->hid, IF, "\"bInterfaceClass\":3", 0, "bInterfaceClass: these USB keys");
    expect(f, f->serial, IF, "\"bInterfaceNumber\":0", 0, "interface matching rules");
    /* No USB key at all: the other keys decide. */
    expect(f, f->serial, IF, "\"IOPropertyMatch\":{\"bInterfaceNumber\":0}", 1, NULL);
    expect(f, f->serial, IF, "", 1, NULL);
    /* Precedence: most specific first. */
    assert_int_equal(precedence(f, f->serial, SERIAL5 ",\"bcdDevice\":1536"), 6);
    assert_int_equal(precedence(f, f->serial, SERIAL5), 5);
    assert_int_equal(precedence(f, f->serial,
                                "\"idVendor\":1,\"bInterfaceSubClass\":1,"
                                "\"bInterfaceProtocol\":1"),
                     4);
    assert_int_equal(precedence(f, f->serial, "\"idVendor\":1,\"bInterfaceSubClass\":1"), 3);
    assert_int_equal(precedence(f, f->serial,
                                "\"bInterfaceClass\":1,\"bInterfaceSubClass\":1,"
                                "\"bInterfaceProtocol\":1"),
                     2);
    assert_int_equal(precedence(f, f->serial, "\"bInterfaceClass\":1,\"bInterfaceSubClass\":1"), 1);
    assert_int_equal(precedence(f, f->serial, "\"idVendor\":1"), 0);
    assert_int_equal(precedence(f, f->serial, "\"model\":1"), 0);
    assert_int_equal(precedence(f, f->serial,
                                "\"idVendor\":1027,\"idProductArray\":[1],"
                                "\"bConfigurationValue\":1,\"bInterfaceNumber\":0"),
                     5);
}

static void test_device_rules(void **state)
{
    struct fx *f = *state;
    expect(f, f->dev, DEV, "\"idVendor\":1027,\"idProduct\":24577", 1, NULL);
    expect(f, f->dev, DEV, "\"idVendor\":1027,\"idProduct\":24577,\"bcdDevice\":1536", 1, NULL);
    expect(f, f->dev, DEV, "\"bDeviceClass\":0,\"bDeviceSubClass\":0", 1, NULL);
    expect(f, f->dev, DEV, "\"idVendor\":1027,\"bDeviceSubClass\":0,\"bDeviceProtocol\":0", 1,
           NULL);
    expect(f, f->dev, DEV, "\"idVendor\":1027", 0,
           "idVendor: these USB keys form none of IOKit's device matching rules");
    expect(f, f->dev, DEV, "\"bDeviceClass\":9,\"bDeviceSubClass\":0", 0, "bDeviceClass");
    assert_int_equal(precedence(f, f->dev, "\"idVendor\":1027,\"idProduct\":1,\"bcdDevice\":1"), 6);
    assert_int_equal(precedence(f, f->dev, "\"idVendor\":1027,\"idProduct\":1"), 5);
    assert_int_equal(precedence(f, f->dev,
                                "\"idVendor\":1,\"bDeviceSubClass\":1,"
                                "\"bDeviceProtocol\":1"),
                     4);
    assert_int_equal(precedence(f, f->dev, "\"idVendor\":1,\"bDeviceSubClass\":1"), 3);
    assert_int_equal(precedence(f, f->dev,
                                "\"bDeviceClass\":1,\"bDeviceSubClass\":1,"
                                "\"bDeviceProtocol\":1"),
                     2);
    assert_int_equal(precedence(f, f->dev, "\"bDeviceClass\":1,\"bDeviceSubClass\":1"), 1);
    /* Interface keys are not a device's: carried there, as on other nodes. */
    assert_true(match_key_compared(f->reg, f->dev, "bDeviceClass"));
    assert_false(match_key_compared(f->reg, f->dev, "bInterfaceNumber"));
    assert_true(match_key_compared(f->reg, f->serial, "bInterfaceNumber"));
    assert_false(match_key_compared(f->reg, f->serial, "bDeviceClass"));
    assert_false(match_key_compared(f->reg, f->sim, "idVendor"));
    expect(f, f->sim, "IOService", "\"idVendor\":1,\"idProduct\":2", 1, NULL);
    expect(f, f->dev, DEV, "\"idVendor\":1027,\"idProduct\":24577,\"bInterfaceNumber\":7", 1, NULL);
}

static bundle *make_bundle(const char *id, const char *personalities)
{
    char text[4096];
    snprintf(text, sizeof text,
             "{\"bundle\":\"%s\",\"version\":\"1\",\"build\":\"b1\",\"executable\":\"x.so\","
             "\"entitlements\":{\"usb\":\"*\"},\"personalities\":%s}",
             id, personalities);
    bundle *b = NULL;
    char err[512];
    if (bundle_parse_json(text, strlen(text), "test", &b, err, sizeof err) != ODK_OK)
        fail_msg("bad test bundle: %s", err);
    return b;
}

static void test_precedence_ranks_equal_scores(void **state)
{
    struct fx *f = *state;
    /* A class driver and a vendor driver for the same interface, same
     * score: the vendor's more specific rule wins, whatever the ids sort. */
    bundle *b[] = {
        make_bundle("com.a.class", "{\"Class\":{\"IOProviderClass\":\"" IF
                                   "\",\"IOUserClass\":\"U\",\"IOProbeScore\":1,"
                                   "\"bInterfaceClass\":255,\"bInterfaceSubClass\":255}}"),
        make_bundle("com.z.vendor", "{\"Vendor\":{\"IOProviderClass\":\"" IF
                                    "\",\"IOUserClass\":\"U\",\"IOProbeScore\":1," SERIAL5 "}}"),
    };
    match_candidate *w;
    size_t n;
    assert_int_equal(match_rank(f->reg, f->serial, b, 2, NULL, 0, &w, &n), ODK_OK);
    assert_int_equal(n, 1);
    assert_string_equal(w[0].name, "Vendor");
    assert_int_equal(w[0].precedence, 5);
    assert_int_equal(w[0].score, 1);
    free(w);
    bundle_free(b[0]);
    bundle_free(b[1]);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_interface_keys),  T(test_ids_from_the_device), T(test_product_array_and_mask),
        T(test_interface_rules), T(test_device_rules),        T(test_precedence_ranks_equal_scores),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
