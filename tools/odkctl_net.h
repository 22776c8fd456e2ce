/* SPDX-License-Identifier: MIT */
/* odkctl net: network interfaces and simulated cables (odkctl_net.c). */
#ifndef ODKCTL_NET_H
#define ODKCTL_NET_H

#include <stdbool.h>

#include "odk/client.h"

/* `odkctl net [cable [NAME [plug|unplug] [loss PPM] [delay US] [rate BPS]]]`.
 * Returns the exit status (0, 1 on an error from odkd, 2 on bad usage). */
int odkctl_net(odk_client *c, int argc, char **argv, bool json);

/* For `odkctl list`: after the instances, one line per network interface
 * (name, node, MAC, link, MTU); nothing when there is none. */
void odkctl_net_list_brief(odk_client *c);

#endif
