/* SPDX-License-Identifier: MIT */
/* Unit tests for front/access.c: which peers a personality's
 * OdkUserClientAccess admits.  Ids far from any real account (4000000001
 * and up) keep the tests independent of the machine's users, except where
 * "root" (uid 0, group 0, present everywhere) is looked up by name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon/front/access.h"
#include "odk/status.h"

#define U 4000000001u /* an unprivileged peer's uid */
#define G 4000000002u /* its primary group */
#define S 4000000003u /* a supplementary group it holds */

static odk_value *personality(const char *access_json)
{
    char json[1024], err[256];
    snprintf(json, sizeof json, "{\"IOUserClass\": \"X\"%s%s}",
             access_json ? ", \"OdkUserClientAccess\": " : "", access_json ? access_json : "");
    odk_value *v = NULL;
    assert_int_equal(odk_value_from_json(json, &v, err, sizeof err), ODK_OK);
    return v;
}

static int check(const char *access_json, struct peer *p)
{
    odk_value *v = personality(access_json);
    char why[512] = "";
    int st = access_user_client(v, "P", "b", p, why, sizeof why);
    if (st < 0)
        assert_non_null(strstr(why, "not allowed to open user clients of P (bundle b)"));
    odk_value_free(v);
    return st;
}

static void test_default_admits_only_the_privileged(void **state)
{
    (void)state;
    gid_t groups[] = {S};
    struct peer p = {.uid = U, .gid = G, .pid = 1, .groups = groups, .n_groups = 1};
    assert_int_equal(check(NULL, &p), ODK_E_ACCESS);
    struct peer root = {.uid = 0, .gid = 0, .pid = 1};
    assert_int_equal(check(NULL, &root), ODK_OK);
    struct peer self = {.uid = getuid(), .gid = getgid(), .pid = 1};
    assert_int_equal(check(NULL, &self), ODK_OK);
}

static void test_users_by_id_and_name(void **state)
{
    (void)state;
    struct peer p = {.uid = U, .gid = G, .pid = 1};
    assert_int_equal(check("{\"users\": [4000000001]}", &p), ODK_OK);
    assert_int_equal(check("{\"users\": [4000000009, \"root\"]}", &p), ODK_E_ACCESS);
    /* A name resolves to its uid (nobody exists on Debian and most systems). */
    struct passwd *pw = getpwnam("nobody");
    if (pw && pw->pw_uid != 0 && pw->pw_uid != getuid()) {
        struct peer nobody = {.uid = pw->pw_uid, .gid = G, .pid = 1};
        assert_int_equal(check("{\"users\": [\"nobody\"]}", &nobody), ODK_OK);
        assert_int_equal(check("{\"users\": [\"nobody\"]}", &p), ODK_E_ACCESS);
    }
    /* A name the machine does not know admits nobody. */
    assert_int_equal(check("{\"users\": [\"no-such-user-odk\"]}", &p), ODK_E_ACCESS);
}

static void test_groups_primary_and_supplementary(void **state)
{
    (void)state;
    gid_t groups[] = {S, 0};
    struct peer p = {.uid = U, .gid = G, .pid = 1, .groups = groups, .n_groups = 1};
    assert_int_equal(check("{\"groups\": [4000000002]}", &p), ODK_OK); /* primary */
    assert_int_equal(check("{\"groups\": [4000000003]}", &p), ODK_OK); /* supplementary */
    assert_int_equal(check("{\"groups\": [4000000004]}", &p), ODK_E_ACCESS);
    assert_int_equal(check("{\"groups\": [\"root\"]}", &p), ODK_E_ACCESS);
    p.n_groups = 2; /* now holds gid 0 too: "root" by name resolves to it */
    assert_int_equal(check("{\"groups\": [\"root\"]}", &p), ODK_OK);
    /* Users do not match groups, nor groups users. */
    assert_int_equal(check("{\"users\": [4000000003]}", &p), ODK_E_ACCESS);
}

static void test_everyone_and_malformed_values(void **state)
{
    (void)state;
    struct peer p = {.uid = U, .gid = G, .pid = 1};
    assert_int_equal(check("\"everyone\"", &p), ODK_OK);
    /* The manifest loader refuses these; here they only ever deny. */
    assert_int_equal(check("\"owner\"", &p), ODK_E_ACCESS);
    assert_int_equal(check("true", &p), ODK_E_ACCESS);
    assert_int_equal(check("{\"users\": 4000000001}", &p), ODK_E_ACCESS);
    assert_int_equal(check("{\"users\": [-1]}", &p), ODK_E_ACCESS);
    assert_int_equal(check("{\"users\": [[4000000001]]}", &p), ODK_E_ACCESS);
}

static void test_unknown_credentials_admit_nothing(void **state)
{
    (void)state;
    struct peer p = {.uid = (uid_t)-1, .gid = (gid_t)-1};
    assert_false(access_privileged(&p));
    assert_int_equal(check("\"everyone\"", &p), ODK_E_ACCESS);
    assert_int_equal(check("{\"users\": [4294967295]}", &p), ODK_E_ACCESS);
}

static void test_peer_read_reports_this_process(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    struct peer p;
    peer_read(sv[0], &p);
    assert_int_equal(p.uid, getuid());
    assert_int_equal(p.gid, getgid());
    assert_int_equal(p.pid, getpid());
    gid_t mine[256];
    int n = getgroups(256, mine);
    assert_true(n >= 0);
    assert_int_equal(p.n_groups, (size_t)n);
    for (int i = 0; i < n; i++)
        assert_int_equal(p.groups[i], mine[i]);
    peer_release(&p);
    close(sv[0]);
    close(sv[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_admits_only_the_privileged),
        cmocka_unit_test(test_users_by_id_and_name),
        cmocka_unit_test(test_groups_primary_and_supplementary),
        cmocka_unit_test(test_everyone_and_malformed_values),
        cmocka_unit_test(test_unknown_credentials_admit_nothing),
        cmocka_unit_test(test_peer_read_reports_this_process),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
