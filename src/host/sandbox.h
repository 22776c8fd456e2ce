/* SPDX-License-Identifier: MIT */
/* sandbox.h — locking a driver host down before the driver's code loads.
 *
 * odkd's start request carries a "sandbox" dictionary (built by
 * daemon/bookkeeping/host.c, host_sandbox_args):
 *   enabled      bool    false only under odkd --no-sandbox
 *   network      bool    the bundle holds the network-client entitlement
 *   uid, gid     int     the bundle's own unprivileged ids (only when odkd
 *                        runs as root; absent otherwise)
 *   bundle_dir   string  read-only for the host
 *   runtime_dir  string  the only folder the host may write
 *   read_dirs    array   more read-only folders (the build tree's lib/)
 * docs/trust.md ("The sandbox") says what each step allows and why. */
#ifndef ODK_HOST_SANDBOX_H
#define ODK_HOST_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>

#include "odk/value.h"

/* Does ahead what does not depend on the bundle (joining odkd's empty
 * network namespace, empty_netns_fd, when it is >= 0 and Landlock can
 * scope abstract Unix sockets; the seccomp programs, taken from odkd's
 * programs_fd when it is >= 0 and valid, else generated; the names of
 * system calls; with will_sandbox, which odkd says unless --no-sandbox,
 * emptying the capability bounding set), so that the spare host has done
 * it before a driver waits for it.  Closes both descriptors.  Optional:
 * sandbox_apply does what was not done.
 * Main thread, before sandbox_apply; an allocation failure only leaves
 * the work to sandbox_apply. */
void sandbox_prepare(int empty_netns_fd, int programs_fd, bool will_sandbox);

/* sandbox_prepare in two halves, for the zygote (zygote.h): the shared
 * half (the namespace, the programs' bytes, the names) once in the
 * zygote; the own half (what names the process: its /proc entry in the
 * Landlock rules, its pid in the seccomp programs) in each child it
 * forks.  Same threads and rules as sandbox_prepare. */
void sandbox_prepare_shared(int empty_netns_fd, int programs_fd, bool will_sandbox);
void sandbox_prepare_own(void);

/* odk-driver-host --seccomp-programs: writes to fd the seccomp programs
 * that a host's sandbox_prepare takes from programs_fd (odkd keeps them in
 * a memfd and hands it to every host), instead of generating its own.
 * 0, or a negative errno (odkd then hands none out). */
int sandbox_write_programs(int fd);

/* Applies, in this order and for good (nothing undoes it): a network
 * namespace with no interfaces unless "network"; the bundle's uid and gid;
 * no capabilities (bounding and ambient sets cleared); no new privileges;
 * Landlock (a kernel without it is logged and skipped); the seccomp filter.
 * Blocks only briefly; main thread only, before any other thread of the
 * host exists that could run driver code.  ODK_OK, or ODK_E_IO with the
 * step that failed in err (the host must then refuse to start the
 * driver).  With "enabled" false: logs loudly and returns ODK_OK. */
int sandbox_apply(const odk_value *cfg, char *err, size_t err_len);

#endif
