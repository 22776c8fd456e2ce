/* SPDX-License-Identifier: MIT */
/* Who is calling, and may they: peer credentials from the kernel, the
 * privileged check, and a personality's OdkUserClientAccess.  The
 * manifest loader (core/bundle_manifest.c) has already checked the key's
 * shape, so a malformed value here only ever denies. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/front/access.h"
#include "odk/status.h"

#define ACCESS_KEY "OdkUserClientAccess"
#define GROUPS_MAX 65536 /* NGROUPS_MAX on Linux */

/* ---- credentials -------------------------------------------------------- */

static bool peer_groups_from_socket(int fd, struct peer *p)
{
#ifdef SO_PEERGROUPS
    socklen_t len = 64 * sizeof(gid_t);
    for (int tries = 0; tries < 3; tries++) {
        gid_t *g = malloc(len ? len : sizeof(gid_t));
        if (!g)
            return false;
        socklen_t got = len;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &got) == 0) {
            p->groups = g;
            p->n_groups = got / sizeof(gid_t);
            return true;
        }
        int e = errno;
        free(g);
        /* ERANGE tells the size needed in got. */
        if (e != ERANGE || got <= len || got > GROUPS_MAX * sizeof(gid_t))
            return false;
        len = got;
    }
#else
    (void)fd;
    (void)p;
#endif
    return false;
}

static void peer_groups_from_database(struct peer *p)
{
    char buf[4096];
    struct passwd pw, *res = NULL;
    if (getpwuid_r(p->uid, &pw, buf, sizeof buf, &res) != 0 || !res)
        return;
    int n = 64;
    for (int tries = 0; tries < 3; tries++) {
        gid_t *g = malloc((size_t)n * sizeof *g);
        if (!g)
            return;
        int want = n;
        if (getgrouplist(pw.pw_name, p->gid, g, &want) >= 0) {
            p->groups = g;
            p->n_groups = (size_t)want;
            return;
        }
        free(g);
        if (want <= n || want > GROUPS_MAX)
            return;
        n = want;
    }
}

void peer_read(int fd, struct peer *out)
{
    *out = (struct peer){.uid = (uid_t)-1, .gid = (gid_t)-1};
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        return;
    out->uid = cred.uid;
    out->gid = cred.gid;
    out->pid = cred.pid;
    if (!peer_groups_from_socket(fd, out))
        peer_groups_from_database(out);
}

void peer_release(struct peer *p)
{
    free(p->groups);
    p->groups = NULL;
    p->n_groups = 0;
}

bool access_privileged(const struct peer *p)
{
    return p->uid != (uid_t)-1 && (p->uid == 0 || p->uid == getuid());
}

/* ---- OdkUserClientAccess ------------------------------------------------ */

static bool name_to_uid(const char *name, uid_t *out)
{
    char buf[4096];
    struct passwd pw, *res = NULL;
    if (getpwnam_r(name, &pw, buf, sizeof buf, &res) != 0 || !res)
        return false;
    *out = pw.pw_uid;
    return true;
}

static bool name_to_gid(const char *name, gid_t *out)
{
    /* Groups with many members need a large buffer. */
    size_t size = 16384;
    for (int tries = 0; tries < 4; tries++, size *= 4) {
        char *buf = malloc(size);
        if (!buf)
            return false;
        struct group gr, *res = NULL;
        int e = getgrnam_r(name, &gr, buf, size, &res);
        if (e == 0 && res)
            *out = gr.gr_gid;
        free(buf);
        if (e != ERANGE)
            return e == 0 && res;
    }
    return false;
}

static bool peer_in_group(const struct peer *p, gid_t g)
{
    if (p->gid == g)
        return true;
    for (size_t i = 0; i < p->n_groups; i++)
        if (p->groups[i] == g)
            return true;
    return false;
}

/* Does one entry of "users" (want_group false) or "groups" name p? */
static bool entry_names_peer(const odk_value *e, bool want_group, const struct peer *p)
{
    if (odk_value_type(e) == ODK_TYPE_INT) {
        int64_t id = odk_value_int(e);
        if (id < 0 || id >= (int64_t)UINT32_MAX)
            return false;
        return want_group ? peer_in_group(p, (gid_t)id) : p->uid == (uid_t)id;
    }
    if (odk_value_type(e) != ODK_TYPE_STRING)
        return false;
    const char *name = odk_value_string(e);
    if (want_group) {
        gid_t g;
        if (name_to_gid(name, &g))
            return peer_in_group(p, g);
    } else {
        uid_t u;
        if (name_to_uid(name, &u))
            return p->uid == u;
    }
    /* A name this machine does not know names nobody (not logged: any
     * user could fill odkd's log by opening again and again). */
    return false;
}

static bool list_names_peer(const odk_value *access, const char *key, bool want_group,
                            const struct peer *p)
{
    const odk_value *list = odk_dict_get(access, key);
    if (!list || odk_value_type(list) != ODK_TYPE_ARRAY)
        return false;
    for (size_t i = 0; i < odk_array_count(list); i++)
        if (entry_names_peer(odk_array_get(list, i), want_group, p))
            return true;
    return false;
}

static bool personality_allows(const odk_value *access, const struct peer *p)
{
    if (!access || p->uid == (uid_t)-1)
        return false;
    if (odk_value_type(access) == ODK_TYPE_STRING)
        return strcmp(odk_value_string(access), "everyone") == 0;
    if (odk_value_type(access) != ODK_TYPE_DICT)
        return false;
    return list_names_peer(access, "users", false, p) ||
           list_names_peer(access, "groups", true, p);
}

int access_user_client(const odk_value *personality, const char *pers_name, const char *bundle,
                       const struct peer *p, char *why, size_t why_len)
{
    if (access_privileged(p) ||
        personality_allows(odk_dict_get(personality, ACCESS_KEY), p))
        return ODK_OK;
    snprintf(why, why_len,
             "not allowed to open user clients of %s (bundle %s): uid %ld is not root, "
             "odkd's user, or a user or group its %s names",
             pers_name, bundle, p->uid == (uid_t)-1 ? -1L : (long)p->uid, ACCESS_KEY);
    return ODK_E_ACCESS;
}
