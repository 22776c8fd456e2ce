/* SPDX-License-Identifier: MIT */
/* Unit tests for what --vfio any reads (vfio_scan.c): a fake vfio-pci
 * folder like sysfs's (functions as links to their devices, beside bind,
 * new_id, module...), and uevents as the kernel sends them: a bind to
 * vfio-pci is heard (the bind into a group that has its /dev/vfio file
 * already, which makes no /dev/vfio event); other binds, other actions,
 * udev's messages and cut messages are not. */
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

#include "buses/pci/vfio_scan.h"

struct seen {
    char addr[8][32];
    int n;
};

static void note(void *ctx, const char *addr)
{
    struct seen *s = ctx;
    if (s->n < 8)
        snprintf(s->addr[s->n++], sizeof s->addr[0], "%s", addr);
}

static bool saw(const struct seen *s, const char *addr)
{
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->addr[i], addr))
            return true;
    return false;
}

static void test_the_bound_functions_are_found_in_a_fake_tree(void **state)
{
    (void)state;
    char root[] = "/tmp/odk-vfio-scan-XXXXXX", path[256];
    assert_non_null(mkdtemp(root));
    const char *files[] = {"bind", "unbind", "new_id", "remove_id", "uevent", "module"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(path, sizeof path, "%s/%s", root, files[i]);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fclose(f);
    }
    snprintf(path, sizeof path, "%s/0000:00:03.0", root);
    assert_int_equal(symlink("../../../../devices/pci0000:00/0000:00:03.0", path), 0);
    struct seen s = {0};
    assert_int_equal(vfio_scan_bound(root, note, &s), 1);
    assert_true(saw(&s, "0000:00:03.0"));
    /* a second function bound into the same group: found by the next scan */
    snprintf(path, sizeof path, "%s/0000:00:03.1", root);
    assert_int_equal(symlink("../../../../devices/pci0000:00/0000:00:03.1", path), 0);
    memset(&s, 0, sizeof s);
    assert_int_equal(vfio_scan_bound(root, note, &s), 2);
    assert_true(saw(&s, "0000:00:03.0") && saw(&s, "0000:00:03.1"));
    snprintf(path, sizeof path, "%s/nonexistent", root);
    assert_int_equal(vfio_scan_bound(path, note, &s), -1); /* vfio-pci not loaded */
    /* clean up */
    const char *all[] = {"bind", "unbind", "new_id", "remove_id", "uevent", "module",
                         "0000:00:03.0", "0000:00:03.1"};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
        snprintf(path, sizeof path, "%s/%s", root, all[i]);
        unlink(path);
    }
    rmdir(root);
}

static void test_pci_addresses(void **state)
{
    (void)state;
    assert_true(vfio_is_pci_address("0000:00:03.0"));
    assert_true(vfio_is_pci_address("0000:3b:1f.7"));
    assert_false(vfio_is_pci_address("bind"));
    assert_false(vfio_is_pci_address("0000:00:03"));
    assert_false(vfio_is_pci_address("0000:00:03.0x"));
    assert_false(vfio_is_pci_address("module"));
    assert_false(vfio_is_pci_address("0000:00:03.8"));
    assert_false(vfio_is_pci_address("0000:00:-3.0"));
    assert_false(vfio_is_pci_address(""));
}

/* A uevent as the kernel sends it: the strings joined, each NUL-ended. */
static size_t uevent(char *buf, size_t cap, const char *const *parts)
{
    size_t n = 0;
    for (; *parts; parts++) {
        size_t l = strlen(*parts) + 1;
        assert_true(n + l <= cap);
        memcpy(buf + n, *parts, l);
        n += l;
    }
    return n;
}

static void test_a_bind_to_vfio_pci_is_heard(void **state)
{
    (void)state;
    char buf[512];
    const char *bind[] = {"bind@/devices/pci0000:00/0000:00:03.0",
                          "ACTION=bind",
                          "DEVPATH=/devices/pci0000:00/0000:00:03.0",
                          "SUBSYSTEM=pci",
                          "DRIVER=vfio-pci",
                          "PCI_SLOT_NAME=0000:00:03.0",
                          "SEQNUM=1234",
                          NULL};
    size_t n = uevent(buf, sizeof buf, bind);
    assert_true(vfio_uevent_binds(buf, n));
    /* cut anywhere inside its last string: not trusted */
    assert_false(vfio_uevent_binds(buf, n - 1));
    const char *other_driver[] = {"bind@/devices/pci0000:00/0000:00:03.0", "ACTION=bind",
                                  "SUBSYSTEM=pci", "DRIVER=edu", NULL};
    n = uevent(buf, sizeof buf, other_driver);
    assert_false(vfio_uevent_binds(buf, n));
    const char *unbind[] = {"unbind@/devices/pci0000:00/0000:00:03.0", "ACTION=unbind",
                            "SUBSYSTEM=pci", "DRIVER=vfio-pci", NULL};
    n = uevent(buf, sizeof buf, unbind);
    assert_false(vfio_uevent_binds(buf, n));
    const char *other_bus[] = {"bind@/devices/platform/x", "ACTION=bind", "SUBSYSTEM=platform",
                               "DRIVER=vfio-pci", NULL};
    n = uevent(buf, sizeof buf, other_bus);
    assert_false(vfio_uevent_binds(buf, n));
    const char *udev[] = {"libudev", "ACTION=bind", "SUBSYSTEM=pci", "DRIVER=vfio-pci", NULL};
    n = uevent(buf, sizeof buf, udev);
    assert_false(vfio_uevent_binds(buf, n));
    assert_false(vfio_uevent_binds(buf, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_bound_functions_are_found_in_a_fake_tree),
        cmocka_unit_test(test_pci_addresses),
        cmocka_unit_test(test_a_bind_to_vfio_pci_is_heard),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
