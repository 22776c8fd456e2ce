/* SPDX-License-Identifier: MIT */
/* Unit tests of driver.c's requests to odkd: every value a request takes is
 * freed on every path, including each allocation failing in turn. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "odk/driver.h"
#include "runtime/driver_internal.h"
#include "runtime/host_link.h"

/* Allocation accounting through -Wl,--wrap (meson.build): live counts the
 * blocks this program's objects hold; fail_at makes the Nth allocation from
 * now fail (0: none). */
void *__real_malloc(size_t n);
void *__real_calloc(size_t k, size_t n);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t k, size_t n);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);

static long live;
static int fail_at;

static bool fail_now(void)
{
    return fail_at > 0 && --fail_at == 0;
}

void *__wrap_malloc(size_t n)
{
    void *p = fail_now() ? NULL : __real_malloc(n);
    live += p != NULL;
    return p;
}

void *__wrap_calloc(size_t k, size_t n)
{
    void *p = fail_now() ? NULL : __real_calloc(k, n);
    live += p != NULL;
    return p;
}

void *__wrap_realloc(void *p, size_t n)
{
    if (fail_now())
        return NULL;
    void *q = __real_realloc(p, n);
    live += !p && q;
    return q;
}

void __wrap_free(void *p)
{
    live -= p != NULL;
    __real_free(p);
}

static int requests;

static int fake_odkd(void *ctx, const char *op, odk_value *args, odk_value **reply, int *fds,
                     size_t *n_fds)
{
    (void)ctx, (void)op, (void)fds, (void)n_fds;
    requests++;
    odk_value_free(args);
    return ODK_OK;
}

static odk_value *some_props(void)
{
    odk_value *v = odk_value_new_dict();
    assert_non_null(v);
    assert_int_equal(odk_dict_set_string(v, "name", "port"), ODK_OK);
    return v;
}

/* Runs request(drv, props) with the 1st, 2nd, ... allocation failing until
 * one run needs no failing allocation; after each, nothing may be left, not
 * even the props the request took. */
static void every_allocation_fails_in_turn(int (*request)(odk_driver *drv, odk_value *props),
                                           bool with_props)
{
    host_link_set(fake_odkd, NULL);
    odk_driver drv = {.service_id = 7};
    for (int n = 1;; n++) {
        long before = live;
        odk_value *props = with_props ? some_props() : NULL;
        requests = 0;
        fail_at = n;
        int st = request(&drv, props);
        bool exhausted = fail_at > 0; /* the Nth allocation never came */
        fail_at = 0;
        assert_int_equal(live, before);
        if (exhausted) {
            assert_int_equal(st, ODK_OK);
            assert_int_equal(requests, 1);
            break;
        }
        assert_int_equal(st, ODK_E_NOMEM);
    }
    host_link_set(NULL, NULL);
}

static int publish(odk_driver *drv, odk_value *props)
{
    uint64_t id = 99;
    return odk_driver_publish_node(drv, "Port", NULL, props, &id);
}

static int set_property(odk_driver *drv, odk_value *props)
{
    return odk_driver_set_property(drv, "key", props);
}

static int register_service(odk_driver *drv, odk_value *props)
{
    (void)props;
    return odk_driver_register_service(drv);
}

static void test_publish_node_frees_props_on_every_failure(void **state)
{
    (void)state;
    every_allocation_fails_in_turn(publish, true);
    every_allocation_fails_in_turn(publish, false); /* props NULL: publish makes an empty one */
}

static void test_set_property_frees_value_on_every_failure(void **state)
{
    (void)state;
    every_allocation_fails_in_turn(set_property, true);
    every_allocation_fails_in_turn(register_service, false);
}

static void test_invalid_arguments_still_take_the_value(void **state)
{
    (void)state;
    host_link_set(NULL, NULL);
    odk_driver drv = {.service_id = 7};
    long before = live;
    assert_int_equal(odk_driver_publish_node(&drv, "", NULL, some_props(), NULL), ODK_E_INVALID);
    assert_int_equal(odk_driver_publish_node(&drv, NULL, NULL, some_props(), NULL), ODK_E_INVALID);
    assert_int_equal(odk_driver_set_property(&drv, "", some_props()), ODK_E_INVALID);
    assert_int_equal(odk_driver_set_property(&drv, NULL, some_props()), ODK_E_INVALID);
    /* No host link: ODK_E_DISCONNECTED, and the request's values are freed. */
    assert_int_equal(odk_driver_set_property(&drv, "k", some_props()), ODK_E_DISCONNECTED);
    assert_int_equal(odk_driver_publish_node(&drv, "P", NULL, some_props(), NULL),
                     ODK_E_DISCONNECTED);
    assert_int_equal(live, before);
}

/* Which way set-property went: waited for (requested) or posted. */
static int requested, posted;

static int count_request(void *ctx, const char *op, odk_value *args, odk_value **reply, int *fds,
                         size_t *n_fds)
{
    (void)ctx, (void)op, (void)reply, (void)fds, (void)n_fds;
    requested++;
    odk_value_free(args);
    return ODK_OK;
}

static int count_post(void *ctx, const char *op, odk_value *args)
{
    (void)ctx, (void)op;
    posted++;
    odk_value_free(args);
    return ODK_OK;
}

/* Only in the start does register-service, and set-property only on the
 * service node, go without waiting for odkd (host_link_post). */
static void test_requests_in_start_do_not_wait(void **state)
{
    (void)state;
    host_link_set(count_request, NULL);
    host_link_set_post(count_post);
    odk_driver drv = {.service_id = 7};
    long before = live;
    requested = posted = 0;
    assert_int_equal(odk_driver_set_property(&drv, "k", some_props()), ODK_OK);
    assert_int_equal(requested, 1);
    assert_int_equal(posted, 0);
    drv.in_start = true;
    assert_int_equal(odk_driver_set_property(&drv, "k", some_props()), ODK_OK);
    assert_int_equal(posted, 1);
    assert_int_equal(odk_driver_set_node_property(&drv, 8, "k", some_props()), ODK_OK);
    assert_int_equal(requested, 2);
    assert_int_equal(posted, 1);
    assert_int_equal(odk_driver_register_service(&drv), ODK_OK);
    assert_int_equal(posted, 2);
    drv.in_start = false;
    assert_int_equal(odk_driver_register_service(&drv), ODK_OK);
    assert_int_equal(requested, 3);
    drv.in_start = true;
    /* Without a post function (a test's link), posting waits. */
    host_link_set_post(NULL);
    assert_int_equal(odk_driver_set_property(&drv, "k", some_props()), ODK_OK);
    assert_int_equal(requested, 4);
    host_link_set(NULL, NULL);
    assert_int_equal(live, before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publish_node_frees_props_on_every_failure),
        cmocka_unit_test(test_set_property_frees_value_on_every_failure),
        cmocka_unit_test(test_invalid_arguments_still_take_the_value),
        cmocka_unit_test(test_requests_in_start_do_not_wait),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
