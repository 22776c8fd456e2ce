/* SPDX-License-Identifier: MIT */
/* Unit tests for config.c: the checks odkd applies to a simulated PCI
 * function's configuration space and BAR sizes before publishing it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "buses/pci/config.h"

/* An edu-like function: PM at 0x40, MSI at 0x50, BAR 0 of 1 MiB. */
static void good(uint8_t *c, uint64_t *bars)
{
    memset(c, 0, 4096);
    memset(bars, 0, 6 * sizeof *bars);
    pci_cfg_put(c, PCI_VENDOR_ID, 2, 0x1234);
    pci_cfg_put(c, PCI_DEVICE_ID, 2, 0x11e8);
    pci_cfg_put(c, PCI_STATUS, 2, PCI_STATUS_CAP_LIST);
    c[PCI_CAPABILITY_LIST] = 0x40;
    c[0x40] = PCI_CAP_ID_PM;
    c[0x41] = 0x50;
    c[0x50] = PCI_CAP_ID_MSI;
    pci_cfg_put(c, 0x52, 2, 0x80);
    bars[0] = 1 << 20;
}

static int check(const uint8_t *c, const uint64_t *bars, char *why)
{
    return pci_config_check(c, bars, why, 200);
}

static void test_a_good_function_passes_and_its_capabilities_are_found(void **state)
{
    (void)state;
    uint8_t c[4096];
    uint64_t bars[6];
    char why[200] = "";
    good(c, bars);
    assert_int_equal(check(c, bars, why), 0);
    assert_int_equal(pci_cap_find(c, PCI_CAP_ID_PM), 0x40);
    assert_int_equal(pci_cap_find(c, PCI_CAP_ID_MSI), 0x50);
    assert_int_equal(pci_cap_find(c, PCI_CAP_ID_MSIX), 0);
}

static void test_a_capability_list_that_loops_is_refused(void **state)
{
    (void)state;
    uint8_t c[4096];
    uint64_t bars[6];
    char why[200] = "";
    good(c, bars);
    c[0x51] = 0x40;
    assert_int_equal(check(c, bars, why), -1);
    assert_non_null(strstr(why, "loops back to 0x40"));
    assert_int_equal(pci_cap_find(c, PCI_CAP_ID_MSIX), 0); /* and the walk ends */
}

static void test_pointers_into_the_header_misaligned_or_past_the_end_are_refused(void **state)
{
    (void)state;
    uint8_t c[4096];
    uint64_t bars[6];
    char why[200] = "";
    good(c, bars);
    c[PCI_CAPABILITY_LIST] = 0x20;
    assert_int_equal(check(c, bars, why), -1);
    assert_non_null(strstr(why, "into the header"));
    good(c, bars);
    c[0x41] = 0x52;
    assert_int_equal(check(c, bars, why), -1);
    assert_non_null(strstr(why, "not dword aligned"));
    good(c, bars);
    c[0x41] = 0xf8;
    c[0xf8] = PCI_CAP_ID_MSI;
    pci_cfg_put(c, 0xfa, 2, 0x180); /* 64-bit with masking: 24 bytes */
    assert_int_equal(check(c, bars, why), -1);
    assert_non_null(strstr(why, "past the end"));
}

static void test_impossible_bar_sizes_are_refused(void **state)
{
    (void)state;
    uint8_t c[4096];
    uint64_t bars[6];
    char why[200] = "";
    good(c, bars);
    bars[0] = 3 << 20;
    assert_int_equal(check(c, bars, why), -1);
    assert_non_null(strstr(why, "not a power of two"));
    good(c, bars);
    bars[1] = 8;
    assert_int_equal(check(c, bars, why), -1);
    assert_non_null(strstr(why, "outside 16 bytes"));
    good(c, bars);
    bars[2] = PCI_SIM_MAX_BAR * 2;
    assert_int_equal(check(c, bars, why), -1);
    good(c, bars);
    pci_cfg_put(c, PCI_BAR0 + 4 * 5, 4, PCI_BAR_MEM_64);
    bars[5] = 4096;
    assert_int_equal(check(c, bars, why), -1);
    assert_non_null(strstr(why, "upper half"));
}

static void test_an_msix_table_outside_its_bar_is_refused(void **state)
{
    (void)state;
    uint8_t c[4096];
    uint64_t bars[6];
    char why[200] = "";
    good(c, bars);
    c[0x51] = 0x60;
    c[0x60] = PCI_CAP_ID_MSIX;
    pci_cfg_put(c, 0x62, 2, 15);          /* 16 entries: 256 bytes */
    pci_cfg_put(c, 0x64, 4, 0x1000 | 2);  /* in BAR 2 */
    assert_int_equal(check(c, bars, why), -1);
    assert_non_null(strstr(why, "MSI-X table"));
    bars[2] = 0x1000 + 256;
    bars[2] = 8192;
    assert_int_equal(check(c, bars, why), 0);
}

static void test_a_missing_vendor_is_not_a_device(void **state)
{
    (void)state;
    uint8_t c[4096];
    uint64_t bars[6];
    char why[200] = "";
    good(c, bars);
    pci_cfg_put(c, PCI_VENDOR_ID, 2, 0xffff);
    assert_int_equal(check(c, bars, why), -1);
    assert_non_null(strstr(why, "vendor id 0xffff"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_good_function_passes_and_its_capabilities_are_found),
        cmocka_unit_test(test_a_capability_list_that_loops_is_refused),
        cmocka_unit_test(test_pointers_into_the_header_misaligned_or_past_the_end_are_refused),
        cmocka_unit_test(test_impossible_bar_sizes_are_refused),
        cmocka_unit_test(test_an_msix_table_outside_its_bar_is_refused),
        cmocka_unit_test(test_a_missing_vendor_is_not_a_device),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
