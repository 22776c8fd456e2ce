/* SPDX-License-Identifier: MIT */
/* Unit tests for the PCI bus's match keys (pci_match.c): IOKit's match
 * strings with masks, the secondary and class forms, and how they join the
 * generic keys in match_personality. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buses/pci/pci_match.h"
#include "daemon/core/test_fixture.h"
#include "odk/status.h"

struct fx {
    registry *reg;
    reg_node *pci; /* IOPCIDevice 8086:1234, subsystem 1af4:1100, class 020000 rev 3 */
    reg_node *sim; /* OdkSimDevice: model=echo */
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
    if (!f || fixture_registry(&f->reg) != ODK_OK || match_keys_register(&pci_match_keys) < 0)
        return -1;
    reg_node *root = registry_root(f->reg);
    registry_add(f->reg, root, "IOPCIDevice",
                 json("{\"vendor-id\":32902,\"device-id\":4660,\"subsystem-vendor-id\":6900,"
                      "\"subsystem-id\":4352,\"class-code\":131072,\"revision-id\":3}"),
                 &f->pci);
    registry_add(f->reg, root, "OdkSimDevice", json("{\"model\":\"echo\"}"), &f->sim);
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
    /* A PCI node without ids. */
    reg_node *bare;
    registry_add(f->reg, registry_root(f->reg), "IOPCIDevice", NULL, &bare);
    expect(f, bare, "{\"IOProviderClass\":\"IOService\",\"IOPCIPrimaryMatch\":\"0x12348086\"}", 0,
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
    reg_node *bare;
    registry_add(f->reg, registry_root(f->reg), "IOPCIDevice", NULL, &bare);
    expect(f, bare, "{\"IOProviderClass\":\"IOService\",\"IOPCIClassMatch\":\"0x020000\"}", 0,
           "class-code");
}

static void test_keys_belong_to_pci_nodes(void **state)
{
    struct fx *f = *state;
    /* On a PCI node the IOPCI keys are compared; elsewhere they are carried
     * like any unknown key, so they neither match nor fail there. */
    assert_true(match_key_compared(f->reg, f->pci, "IOPCIPrimaryMatch"));
    assert_true(match_key_compared(f->reg, f->pci, "IOPCIClassMatch"));
    assert_false(match_key_compared(f->reg, f->sim, "IOPCIPrimaryMatch"));
    assert_false(match_key_compared(f->reg, f->pci, "vendor-id"));
    expect(f, f->sim, "{\"IOProviderClass\":\"IOService\",\"IOPCIPrimaryMatch\":\"0x0\"}", 1, NULL);
    /* A subclass of IOPCIDevice uses the same keys. */
    assert_int_equal(registry_define_class(f->reg, "OdkSimPCIDevice", "IOPCIDevice"), ODK_OK);
    reg_node *n;
    registry_add(f->reg, registry_root(f->reg), "OdkSimPCIDevice",
                 json("{\"vendor-id\":4318,\"device-id\":7}"), &n);
    expect(f, n, "{\"IOProviderClass\":\"IOPCIDevice\",\"IOPCIPrimaryMatch\":\"0x000710de\"}", 1,
           NULL);
    expect(f, n, "{\"IOProviderClass\":\"IOPCIDevice\",\"IOPCIPrimaryMatch\":\"0x000810de\"}", 0,
           "IOPCIPrimaryMatch");
    /* With generic keys: all must hold. */
    expect(f, f->pci,
           "{\"IOProviderClass\":\"IOPCIDevice\",\"IOPCIPrimaryMatch\":\"0x12348086\","
           "\"IOPropertyMatch\":{\"revision-id\":4}}",
           0, "IOPropertyMatch");
    assert_int_equal(match_keys_register(&pci_match_keys), ODK_OK); /* twice: no-op */
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_pci_primary),
        T(test_pci_secondary_and_either),
        T(test_pci_class),
        T(test_keys_belong_to_pci_nodes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
