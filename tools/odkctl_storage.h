/* SPDX-License-Identifier: MIT */
/* odkctl's storage commands (odkctl_storage.c). */
#ifndef ODK_TOOLS_ODKCTL_STORAGE_H
#define ODK_TOOLS_ODKCTL_STORAGE_H

#include "odk/client.h"

/* odkctl storage [plug|unplug|fault ...]: returns the exit status. */
int odkctl_storage(odk_client *c, int argc, char **argv);

#endif
