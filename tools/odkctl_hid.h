/* SPDX-License-Identifier: MIT */
/* odkctl hid: HID devices, their report descriptors, and their events. */
#ifndef ODKCTL_HID_H
#define ODKCTL_HID_H

#include <stdbool.h>

#include "odk/client.h"

/* argv: what follows "hid".  Returns odkctl's exit status. */
int odkctl_hid(odk_client *c, int argc, char **argv, bool json);

#endif
