/* SPDX-License-Identifier: MIT */
/* Memory descriptors against the contract in odk/memory.h: every error it
 * lists, out-pointers NULL after an error, fds taken even on failure, and a
 * mapping the memfd refuses reported as ODK_E_ACCESS, not out of memory. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "odk/memory.h"

static int sealed_memfd(uint64_t len, unsigned seals)
{
    int fd = memfd_create("test-memory", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)len), 0);
    assert_int_equal(fcntl(fd, F_ADD_SEALS, seals), 0);
    return fd;
}

static bool is_closed(int fd)
{
    return fcntl(fd, F_GETFD) == -1;
}

static void test_create_errors(void **state)
{
    (void)state;
    odk_memory *m = (odk_memory *)&m;
    assert_int_equal(odk_memory_create(0, ODK_MEM_OUT, &m), ODK_E_INVALID);
    assert_null(m);
    m = (odk_memory *)&m;
    assert_int_equal(odk_memory_create(4096, 7, &m), ODK_E_INVALID);
    assert_null(m);
    assert_int_equal(odk_memory_create((uint64_t)INT64_MAX + 1, ODK_MEM_OUT, &m), ODK_E_INVALID);
    assert_int_equal(odk_memory_create(4096, ODK_MEM_OUT, NULL), ODK_E_INVALID);
    assert_int_equal(odk_memory_length(NULL), 0);
    assert_int_equal(odk_memory_direction(NULL), 0);
    assert_int_equal(odk_memory_fd(NULL), -1);
}

static void test_from_fd_takes_fd(void **state)
{
    (void)state;
    odk_memory *m = (odk_memory *)&m;
    int fd = memfd_create("unsealed", MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 4096), 0);
    assert_int_equal(odk_memory_from_fd(fd, 4096, ODK_MEM_OUT, &m), ODK_E_ACCESS);
    assert_null(m);
    assert_true(is_closed(fd));

    fd = sealed_memfd(4096, F_SEAL_SHRINK);
    m = (odk_memory *)&m;
    assert_int_equal(odk_memory_from_fd(fd, 8192, ODK_MEM_OUT, &m), ODK_E_INVALID);
    assert_null(m);
    assert_true(is_closed(fd));

    fd = sealed_memfd(4096, F_SEAL_SHRINK);
    assert_int_equal(odk_memory_from_fd(fd, 4096, ODK_MEM_OUT, NULL), ODK_E_INVALID);
    assert_true(is_closed(fd));

    fd = sealed_memfd(4096, F_SEAL_SHRINK);
    assert_int_equal(odk_memory_from_fd(fd, 4096, ODK_MEM_INOUT, &m), ODK_OK);
    assert_int_equal(odk_memory_fd(m), fd);
    odk_release(m);
    assert_true(is_closed(fd));
}

/* A write-sealed memfd refuses a shared writable mapping (EPERM): that is an
 * access problem, and it used to come back as ODK_E_NOMEM. */
static void test_refused_mapping_is_access(void **state)
{
    (void)state;
    odk_memory *m;
    int fd = sealed_memfd(4096, F_SEAL_SHRINK | F_SEAL_WRITE);
    assert_int_equal(odk_memory_from_fd(fd, 4096, ODK_MEM_IN, &m), ODK_OK);
    void *addr = &addr;
    assert_int_equal(odk_memory_map(m, ODK_MAP_READ | ODK_MAP_WRITE, &addr), ODK_E_ACCESS);
    assert_null(addr);
    assert_int_equal(odk_memory_write(m, 0, "x", 1), ODK_E_ACCESS);
    odk_release(m);

    /* The same memfd as an OUT descriptor maps read-only, which the seal allows. */
    fd = sealed_memfd(4096, F_SEAL_SHRINK | F_SEAL_WRITE);
    assert_int_equal(odk_memory_from_fd(fd, 4096, ODK_MEM_OUT, &m), ODK_OK);
    char byte = 1;
    assert_int_equal(odk_memory_read(m, 4095, &byte, 1), ODK_OK);
    assert_int_equal(byte, 0);
    odk_release(m);
}

static void test_map_and_copy_errors(void **state)
{
    (void)state;
    odk_memory *m;
    assert_int_equal(odk_memory_create(4096, ODK_MEM_OUT, &m), ODK_OK);
    void *addr = &addr;
    assert_int_equal(odk_memory_map(m, ODK_MAP_WRITE, &addr), ODK_E_INVALID); /* no READ */
    assert_null(addr);
    addr = &addr;
    assert_int_equal(odk_memory_map(m, ODK_MAP_READ | ODK_MAP_WRITE, &addr), ODK_E_ACCESS);
    assert_null(addr);
    assert_int_equal(odk_memory_map(NULL, ODK_MAP_READ, &addr), ODK_E_INVALID);
    assert_int_equal(odk_memory_map(m, ODK_MAP_READ, NULL), ODK_E_INVALID);
    char buf[8];
    assert_int_equal(odk_memory_read(m, 4090, buf, sizeof buf), ODK_E_INVALID);
    assert_int_equal(odk_memory_read(m, UINT64_MAX, buf, 1), ODK_E_INVALID);
    assert_int_equal(odk_memory_read(m, 0, NULL, 1), ODK_E_INVALID);
    assert_int_equal(odk_memory_read(NULL, 0, buf, 1), ODK_E_INVALID);
    assert_int_equal(odk_memory_write(m, 0, buf, 1), ODK_E_ACCESS);
    assert_int_equal(odk_memory_read(m, 4096, NULL, 0), ODK_OK);
    void *a1, *a2;
    assert_int_equal(odk_memory_map(m, ODK_MAP_READ, &a1), ODK_OK);
    assert_int_equal(odk_memory_map(m, ODK_MAP_READ, &a2), ODK_OK);
    assert_ptr_equal(a1, a2);
    odk_release(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_errors),
        cmocka_unit_test(test_from_fd_takes_fd),
        cmocka_unit_test(test_refused_mapping_is_access),
        cmocka_unit_test(test_map_and_copy_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
