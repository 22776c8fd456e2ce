/* SPDX-License-Identifier: MIT */
/* vnet.h — checking the virtio-net header a driver puts before a received
 * frame (odk_net_rx_complete with offloads) before the family writes it to
 * the TAP queue.  No I/O, so the fuzz target can drive it. */
#ifndef ODK_NET_VNET_H
#define ODK_NET_VNET_H

#include <stddef.h>

#include "odk/net.h"

/* ODK_OK when h makes sense for a frame of frame_len bytes: known flags
 * and GSO type; with NEEDS_CSUM the checksum's 2 bytes lie inside the
 * frame, past the Ethernet header; with a GSO type, gso_size is not 0 and
 * hdr_len lies inside the frame; without one, gso_size and the ECN bit
 * are 0 and hdr_len (a hint) is inside the frame.  ODK_E_INVALID
 * otherwise. */
int net_vnet_check(const odk_net_vnet_header *h, size_t frame_len);

#endif
