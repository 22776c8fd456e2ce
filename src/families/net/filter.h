/* SPDX-License-Identifier: MIT */
/* filter.h — what the system set on an interface (up, promiscuous,
 * all-multicast, the multicast list, its address), as odkd reports it to
 * the host in its net-state reply, and the receive filter a NIC applies
 * from it (odk_net_if_accepts).  No I/O, so the unit tests and the fuzz
 * target can drive it. */
#ifndef ODK_NET_FILTER_H
#define ODK_NET_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "odk/net.h"
#include "odk/value.h"

struct net_filter {
    bool up, promisc, allmulti;
    uint8_t mac[6];
    uint32_t n_mc;
    uint8_t mc[ODK_NET_MAX_MULTICAST][6];
};

/* The filter of frame (len bytes), as odk_net_if_accepts documents. */
bool net_filter_accepts(const struct net_filter *f, const uint8_t *frame, size_t len);
/* Reads a net-state reply {"up", "promiscuous", "all_multicast", "mac" (6
 * bytes), "multicast" (6 bytes per address)} into f.  ODK_E_PROTOCOL when
 * a key is missing or of the wrong type or size (f is then unchanged);
 * more than ODK_NET_MAX_MULTICAST addresses keep the first ones and turn
 * all-multicast on. */
int net_filter_from_value(const odk_value *v, struct net_filter *f);
/* Writes f as a net-state reply (the caller owns *out).  ODK_E_NOMEM. */
int net_filter_to_value(const struct net_filter *f, odk_value **out);

#endif
