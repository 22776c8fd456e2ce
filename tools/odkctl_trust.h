/* SPDX-License-Identifier: MIT */
/* odkctl_trust.h — odkctl keygen, sign and verify (docs/trust.md): they
 * work on files alone and need no odkd. */
#ifndef ODK_ODKCTL_TRUST_H
#define ODK_ODKCTL_TRUST_H

#include <stdbool.h>

/* Runs `odkctl CMD ARGS...` when cmd is keygen, sign or verify: sets *rc
 * (0, 1 on failure, 2 on bad usage) and returns true; false for any other
 * command. */
bool odkctl_trust(const char *cmd, int argc, char **argv, int *rc);

#endif
