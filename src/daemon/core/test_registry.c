/* SPDX-License-Identifier: MIT */
/* Unit tests for the registry: tree, ids, class table, describe. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "daemon/core/registry.h"
#include "daemon/core/test_fixture.h"
#include "odk/status.h"

static int setup(void **state)
{
    registry *reg;
    if (fixture_registry(&reg) != ODK_OK)
        return -1;
    *state = reg;
    return 0;
}

static int teardown(void **state)
{
    registry_free(*state);
    return 0;
}

static odk_value *props1(const char *key, const char *val)
{
    odk_value *d = odk_value_new_dict();
    odk_dict_set_string(d, key, val);
    return d;
}

static void test_root(void **state)
{
    registry *reg = *state;
    reg_node *root = registry_root(reg);
    assert_non_null(root);
    assert_int_equal(root->id, 0);
    assert_string_equal(root->class_name, "IORegistryRoot");
    assert_null(root->parent);
    assert_ptr_equal(registry_find(reg, 0), root);
    assert_null(registry_find(reg, 1));
}

static void test_add_find(void **state)
{
    registry *reg = *state;
    reg_node *a, *b, *c;
    assert_int_equal(registry_add(reg, registry_root(reg), "OdkSimBus", NULL, &a), ODK_OK);
    assert_int_equal(registry_add(reg, a, "OdkSimDevice", props1("model", "echo"), &b), ODK_OK);
    assert_int_equal(registry_add(reg, a, "OdkSimDevice", NULL, &c), ODK_OK);
    assert_true(a->id != b->id && b->id != c->id && a->id != 0);
    assert_int_equal(a->state, REG_INACTIVE);
    assert_ptr_equal(b->parent, a);
    assert_int_equal(a->n_children, 2);
    assert_ptr_equal(registry_find(reg, b->id), b);
    assert_string_equal(odk_dict_get_string(b->props, "model", ""), "echo");
    /* NULL props become an empty dictionary. */
    assert_non_null(c->props);
    assert_int_equal(odk_value_type(c->props), ODK_TYPE_DICT);
    assert_int_equal(odk_dict_count(c->props), 0);
}

static void test_add_invalid(void **state)
{
    registry *reg = *state;
    reg_node *n = (reg_node *)1;
    /* Props that are not a dictionary are refused (and freed). */
    assert_int_equal(registry_add(reg, registry_root(reg), "X", odk_value_new_int(3), &n),
                     ODK_E_INVALID);
    assert_null(n);
    assert_int_equal(registry_add(reg, NULL, "X", NULL, &n), ODK_E_INVALID);
    assert_int_equal(registry_add(reg, registry_root(reg), "", NULL, &n), ODK_E_INVALID);
}

static int count_fn(reg_node *n, void *ctx)
{
    (*(int *)ctx)++;
    return 0;
}

static int stop_at_3(reg_node *n, void *ctx)
{
    return ++(*(int *)ctx) == 3 ? 42 : 0;
}

static void test_remove_subtree_ids_not_reused(void **state)
{
    registry *reg = *state;
    reg_node *bus, *dev, *iface, *other;
    registry_add(reg, registry_root(reg), "OdkSimBus", NULL, &bus);
    registry_add(reg, bus, "IOUSBHostDevice", NULL, &dev);
    registry_add(reg, dev, "IOUSBHostInterface", NULL, &iface);
    registry_add(reg, bus, "OdkSimDevice", NULL, &other);
    uint64_t dev_id = dev->id, iface_id = iface->id, other_id = other->id;
    int count = 0;
    registry_walk(registry_root(reg), count_fn, &count);
    assert_int_equal(count, 5);

    registry_remove(reg, dev);
    assert_null(registry_find(reg, dev_id));
    assert_null(registry_find(reg, iface_id));
    assert_ptr_equal(registry_find(reg, other_id), other);
    assert_int_equal(bus->n_children, 1);
    assert_ptr_equal(bus->children[0], other);
    count = 0;
    registry_walk(registry_root(reg), count_fn, &count);
    assert_int_equal(count, 3);

    reg_node *again;
    registry_add(reg, bus, "IOUSBHostDevice", NULL, &again);
    assert_true(again->id > other_id);
    assert_true(again->id != dev_id && again->id != iface_id);

    /* The root cannot be removed. */
    registry_remove(reg, registry_root(reg));
    assert_non_null(registry_find(reg, 0));

    count = 0;
    assert_int_equal(registry_walk(registry_root(reg), stop_at_3, &count), 42);
    assert_int_equal(count, 3);
}

static void test_many_nodes(void **state)
{
    registry *reg = *state;
    reg_node *bus;
    registry_add(reg, registry_root(reg), "OdkSimBus", NULL, &bus);
    uint64_t ids[300];
    for (int i = 0; i < 300; i++) {
        reg_node *n;
        assert_int_equal(registry_add(reg, bus, "OdkSimDevice", NULL, &n), ODK_OK);
        ids[i] = n->id;
    }
    for (int i = 0; i < 300; i += 2)
        registry_remove(reg, registry_find(reg, ids[i]));
    for (int i = 0; i < 300; i++) {
        reg_node *n = registry_find(reg, ids[i]);
        if (i % 2)
            assert_true(n && n->id == ids[i]);
        else
            assert_null(n);
    }
    assert_int_equal(bus->n_children, 150);
}

static void test_class_ancestry(void **state)
{
    registry *reg = *state;
    assert_true(registry_class_is_a(reg, "OdkSimDevice", "IOService"));
    assert_true(registry_class_is_a(reg, "OdkSimDevice", "OSObject"));
    assert_true(registry_class_is_a(reg, "OdkSimDevice", "OdkSimDevice"));
    assert_false(registry_class_is_a(reg, "OdkSimDevice", "IOPCIDevice"));
    assert_false(registry_class_is_a(reg, "IOService", "OdkSimDevice"));
    static const char *const builtins[] = {"IOUserResources", "OdkSimBus",          "OdkSimDevice",
                                           "IOUSBHostDevice", "IOUSBHostInterface", "IOPCIDevice",
                                           "IOUserService",   "IOUserSerial",       "IOUserClient"};
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++)
        assert_true(registry_class_is_a(reg, builtins[i], "IOService"));
    /* Unknown classes are only themselves. */
    assert_true(registry_class_is_a(reg, "Mystery", "Mystery"));
    assert_false(registry_class_is_a(reg, "Mystery", "IOService"));

    odk_value *a = registry_class_ancestry(reg, "OdkSimDevice");
    assert_int_equal(odk_array_count(a), 3);
    assert_string_equal(odk_value_string(odk_array_get(a, 0)), "OdkSimDevice");
    assert_string_equal(odk_value_string(odk_array_get(a, 1)), "IOService");
    assert_string_equal(odk_value_string(odk_array_get(a, 2)), "OSObject");
    odk_value_free(a);
    a = registry_class_ancestry(reg, "Mystery");
    assert_int_equal(odk_array_count(a), 1);
    odk_value_free(a);
}

static void test_define_class(void **state)
{
    registry *reg = *state;
    assert_int_equal(registry_define_class(reg, "EchoDevice", "OdkSimDevice"), ODK_OK);
    assert_int_equal(registry_define_class(reg, "EchoDevice", "OdkSimDevice"), ODK_OK);
    assert_int_equal(registry_define_class(reg, "EchoDevice", "IOPCIDevice"), ODK_E_EXISTS);
    assert_int_equal(registry_define_class(reg, "IOService", "IOPCIDevice"), ODK_E_EXISTS);
    assert_int_equal(registry_define_class(reg, "OSObject", "IOService"), ODK_E_EXISTS);
    assert_int_equal(registry_define_class(reg, "Orphan", "NoSuchClass"), ODK_E_NOT_FOUND);
    assert_int_equal(registry_define_class(reg, "", "IOService"), ODK_E_INVALID);
    assert_true(registry_class_is_a(reg, "EchoDevice", "OdkSimDevice"));
    assert_true(registry_class_is_a(reg, "EchoDevice", "IOService"));
    assert_false(registry_class_is_a(reg, "Orphan", "IOService"));
    assert_int_equal(registry_define_class(reg, "EchoChild", "EchoDevice"), ODK_OK);
    odk_value *a = registry_class_ancestry(reg, "EchoChild");
    assert_int_equal(odk_array_count(a), 5);
    odk_value_free(a);
}

static void test_describe(void **state)
{
    registry *reg = *state;
    reg_node *bus, *dev;
    registry_add(reg, registry_root(reg), "OdkSimBus", NULL, &bus);
    registry_add(reg, bus, "OdkSimDevice", props1("model", "echo"), &dev);
    dev->state = REG_STARTED;
    odk_value *d = registry_node_describe(reg, dev);
    assert_non_null(d);
    assert_int_equal(odk_dict_get_int(d, "id", -1), (int64_t)dev->id);
    assert_string_equal(odk_dict_get_string(d, "class", ""), "OdkSimDevice");
    assert_int_equal(odk_dict_get_int(d, "parent", -1), (int64_t)bus->id);
    assert_string_equal(odk_dict_get_string(d, "state", ""), "started");
    const odk_value *anc = odk_dict_get(d, "ancestry");
    assert_int_equal(odk_array_count(anc), 3);
    assert_string_equal(odk_value_string(odk_array_get(anc, 1)), "IOService");
    const odk_value *props = odk_dict_get(d, "properties");
    assert_true(odk_value_equal(props, dev->props));
    assert_ptr_not_equal(props, dev->props);
    odk_value_free(d);

    d = registry_node_describe(reg, registry_root(reg));
    assert_null(odk_dict_get(d, "parent"));
    assert_int_equal(odk_dict_get_int(d, "id", -1), 0);
    odk_value_free(d);
}

static void test_state_names(void **state)
{
    assert_string_equal(reg_state_name(REG_INACTIVE), "inactive");
    assert_string_equal(reg_state_name(REG_REGISTERED), "registered");
    assert_string_equal(reg_state_name(REG_MATCHED), "matched");
    assert_string_equal(reg_state_name(REG_STARTED), "started");
    assert_string_equal(reg_state_name(REG_TERMINATING), "terminating");
    assert_string_equal(reg_state_name((reg_state)99), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_root, setup, teardown),
        cmocka_unit_test_setup_teardown(test_add_find, setup, teardown),
        cmocka_unit_test_setup_teardown(test_add_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_subtree_ids_not_reused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_nodes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_class_ancestry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_define_class, setup, teardown),
        cmocka_unit_test_setup_teardown(test_describe, setup, teardown),
        cmocka_unit_test(test_state_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
