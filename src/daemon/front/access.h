/* SPDX-License-Identifier: MIT */
/* access.h — who is on the other end of odkd's socket, and what they may
 * do: the privileged operations (root or odkd's own user) and opening the
 * user clients of a personality (its OdkUserClientAccess).
 * docs/trust.md, "Who may open a user client", is the user's view.
 * Everything here runs on odkd's loop thread. */
#ifndef ODK_DAEMON_ACCESS_H
#define ODK_DAEMON_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "odk/value.h"

/* A client's credentials as the kernel gave them when it connected. */
struct peer {
    uid_t uid; /* (uid_t)-1 when the kernel would not say: then nothing is allowed */
    gid_t gid;
    pid_t pid;
    gid_t *groups; /* supplementary groups (owned), NULL when n_groups is 0 */
    size_t n_groups;
};

/* Reads the credentials of the process connected to fd: uid, gid and pid
 * from SO_PEERCRED, the supplementary groups from SO_PEERGROUPS (what the
 * process held when it connected), or, on kernels without it, from the
 * group database (getgrouplist for the uid's name).  Never fails: what
 * cannot be learned is left empty (uid (uid_t)-1 without SO_PEERCRED),
 * which allows less, never more.  Release with peer_release. */
void peer_read(int fd, struct peer *out);
/* Frees p's groups; p itself is the caller's. */
void peer_release(struct peer *p);

/* Root or odkd's own uid. */
bool access_privileged(const struct peer *p);

/* May p open user clients of personality pers_name (the matched
 * personality dictionary, borrowed) of bundle?  Privileged peers always
 * may; others when the personality's OdkUserClientAccess says "everyone",
 * lists p's uid (or user name) in "users", or lists p's primary or a
 * supplementary group (id or name) in "groups".  Names are looked up in
 * the user and group databases at each open (so a user added after the
 * install counts; the lookup may block on a slow NSS backend).  ODK_OK, or
 * ODK_E_ACCESS with a sentence for the app in why (cut to why_len). */
int access_user_client(const odk_value *personality, const char *pers_name, const char *bundle,
                       const struct peer *p, char *why, size_t why_len);

#endif
