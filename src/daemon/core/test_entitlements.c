/* SPDX-License-Identifier: MIT */
/* Unit tests for entitlements: the schema's checks (wrong types, PCI
 * strings, wildcards only in development mode) and coverage of USB, PCI,
 * sim and evdev nodes and of family resources. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "daemon/core/entitlements.h"
#include "daemon/core/test_fixture.h"
#include "odk/status.h"

static odk_value *json(const char *text)
{
    odk_value *v = NULL;
    if (odk_value_from_json(text, &v, NULL, 0) < 0)
        fail_msg("bad JSON in the test: %s", text);
    return v;
}

static int check(const char *text, bool dev, char *err, size_t len)
{
    odk_value *v = json(text);
    int st = entitlements_check(v, dev, err, len);
    odk_value_free(v);
    return st;
}

static void schema(void **state)
{
    char err[512];
    assert_int_equal(check("{}", false, err, sizeof err), ODK_OK);
    assert_int_equal(check("{\"usb\": [{\"vendor\": 1027, \"product\": 24577}], \"sim\": true, "
                           "\"evdev\": false, \"pci\": [\"0x11e81234&0xffffffff\", \"0x1234\"], "
                           "\"resources\": [\"serial\", \"hid\"], \"network-client\": true, "
                           "\"other\": 1}",
                           false, err, sizeof err),
                     ODK_OK);
    assert_int_equal(check("{\"usb\": {\"vendor\": 1}}", false, err, sizeof err), ODK_E_MANIFEST);
    assert_non_null(strstr(err, "entitlements.usb"));
    assert_int_equal(check("{\"usb\": [{\"product\": 1}]}", false, err, sizeof err),
                     ODK_E_MANIFEST);
    assert_non_null(strstr(err, "usb[0].vendor: missing"));
    assert_int_equal(check("{\"usb\": [{\"vendor\": 70000}]}", false, err, sizeof err),
                     ODK_E_MANIFEST);
    assert_int_equal(check("{\"pci\": [\"0xzz\"]}", false, err, sizeof err), ODK_E_MANIFEST);
    assert_non_null(strstr(err, "pci[0]"));
    assert_int_equal(check("{\"sim\": 1}", false, err, sizeof err), ODK_E_MANIFEST);
    assert_int_equal(check("{\"resources\": [\"printer\"]}", false, err, sizeof err),
                     ODK_E_MANIFEST);
    assert_non_null(strstr(err, "resources[0]"));
}

static void wildcards_need_dev(void **state)
{
    static const char *const wild[] = {
        "{\"usb\": \"*\"}",
        "{\"usb\": [{\"vendor\": \"*\"}]}",
        "{\"usb\": [{\"vendor\": 1027, \"product\": \"*\"}]}",
        "{\"com.apple.developer.driverkit.transport.usb\": [{\"idVendor\": \"*\"}]}",
        "{\"pci\": \"*\"}",
        "{\"pci\": [\"0x0&0x0\"]}", /* a mask that leaves the vendor open */
        "{\"resources\": \"*\"}",
    };
    for (size_t i = 0; i < sizeof wild / sizeof wild[0]; i++) {
        char err[512] = "";
        assert_int_equal(check(wild[i], false, err, sizeof err), ODK_E_ACCESS);
        assert_non_null(strstr(err, "--dev"));
        assert_int_equal(check(wild[i], true, err, sizeof err), ODK_OK);
    }
}

struct fx {
    registry *reg;
    reg_node *usb, *pci, *sim, *evdev, *other, *published;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_int_equal(fixture_registry(&f->reg), ODK_OK);
    assert_int_equal(registry_define_class(f->reg, "OdkEvdevDevice", "IOService"), ODK_OK);
    assert_int_equal(registry_define_class(f->reg, "MySim", "OdkSimDevice"), ODK_OK);
    reg_node *root = registry_root(f->reg);
    reg_node *dev;
    assert_int_equal(registry_add(f->reg, root, "IOUSBHostDevice",
                                  json("{\"idVendor\": 1027, \"idProduct\": 24577}"), &dev),
                     ODK_OK);
    /* An interface without ids of its own: its device's count. */
    assert_int_equal(registry_add(f->reg, dev, "IOUSBHostInterface", json("{}"), &f->usb), ODK_OK);
    assert_int_equal(registry_add(f->reg, root, "IOPCIDevice",
                                  json("{\"vendor-id\": 4660, \"device-id\": 4584}"), &f->pci),
                     ODK_OK);
    assert_int_equal(registry_add(f->reg, root, "MySim", json("{}"), &f->sim), ODK_OK);
    assert_int_equal(registry_add(f->reg, root, "OdkEvdevDevice", json("{}"), &f->evdev), ODK_OK);
    assert_int_equal(registry_add(f->reg, root, "IOService", json("{}"), &f->other), ODK_OK);
    assert_int_equal(registry_add(f->reg, f->sim, "IOUSBHostInterface", json("{}"), &f->published),
                     ODK_OK);
    f->published->owner = f; /* published by a driver */
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

static int covers(struct fx *f, reg_node *n, const char *ent, char *why, size_t len)
{
    odk_value *v = json(ent);
    int r = entitlements_cover_node(f->reg, n, v, why, len);
    odk_value_free(v);
    return r;
}

static void coverage(void **state)
{
    struct fx *f = *state;
    char why[512];
    assert_int_equal(covers(f, f->usb, "{\"usb\": [{\"vendor\": 1027}]}", why, sizeof why), 1);
    assert_int_equal(
        covers(f, f->usb, "{\"usb\": [{\"vendor\": 1027, \"product\": 24577}]}", why, sizeof why), 1);
    assert_int_equal(
        covers(f, f->usb, "{\"com.apple.developer.driverkit.transport.usb\": [{\"idVendor\": 1027}]}",
               why, sizeof why),
        1);
    assert_int_equal(covers(f, f->usb, "{\"usb\": \"*\"}", why, sizeof why), 1);
    assert_int_equal(
        covers(f, f->usb, "{\"usb\": [{\"vendor\": 1027, \"product\": 1}]}", why, sizeof why), 0);
    assert_non_null(strstr(why, "USB vendor 0x0403 product 0x6001"));
    assert_int_equal(covers(f, f->usb, "{\"sim\": true}", why, sizeof why), 0);

    assert_int_equal(covers(f, f->pci, "{\"pci\": [\"0x11e81234\"]}", why, sizeof why), 1);
    assert_int_equal(covers(f, f->pci, "{\"pci\": [\"0x00001234&0x0000ffff\"]}", why, sizeof why), 1);
    assert_int_equal(covers(f, f->pci, "{\"pci\": [\"0x11e91234\"]}", why, sizeof why), 0);
    assert_non_null(strstr(why, "PCI 0x11e81234"));

    assert_int_equal(covers(f, f->sim, "{\"sim\": true}", why, sizeof why), 1);
    assert_int_equal(covers(f, f->sim, "{\"sim\": false}", why, sizeof why), 0);
    assert_non_null(strstr(why, "\"sim\": true"));
    assert_int_equal(covers(f, f->evdev, "{\"evdev\": true}", why, sizeof why), 1);
    assert_int_equal(covers(f, f->evdev, "{}", why, sizeof why), 0);
    /* No transport, or a node a driver published: nothing to entitle. */
    assert_int_equal(covers(f, f->other, "{}", why, sizeof why), 1);
    assert_int_equal(covers(f, f->published, "{}", why, sizeof why), 1);
}

static void resources(void **state)
{
    char why[512];
    odk_value *v = json("{\"resources\": [\"serial\"]}");
    assert_int_equal(entitlements_allow_resource(v, "serial", why, sizeof why), 1);
    assert_int_equal(entitlements_allow_resource(v, "network", why, sizeof why), 0);
    assert_non_null(strstr(why, "not entitled to create a network resource"));
    odk_value_free(v);
    v = json("{\"resources\": \"*\"}");
    assert_int_equal(entitlements_allow_resource(v, "block", why, sizeof why), 1);
    odk_value_free(v);
    v = json("{}");
    assert_int_equal(entitlements_allow_resource(v, "hid", why, sizeof why), 0);
    odk_value_free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(schema),
        cmocka_unit_test(wildcards_need_dev),
        cmocka_unit_test_setup_teardown(coverage, setup, teardown),
        cmocka_unit_test(resources),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
