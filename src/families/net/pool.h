/* SPDX-License-Identifier: MIT */
/* pool.h — the network family's packet buffer bookkeeping and descriptor
 * rings, without any I/O, so the unit tests can drive them.
 *
 * The pool knows, for every buffer, who holds it: the family (free, or being
 * filled from the TAP queue), or the driver for TX or for RX.  A descriptor
 * coming back from the driver is checked against that before its buffer is
 * reused, so a driver that completes a buffer twice, or one it never got,
 * is told and nothing else is disturbed.
 *
 * The descriptor rings are odk/ring.h byte rings carrying 8-byte
 * odk_net_packet records. */
#ifndef ODK_NET_POOL_H
#define ODK_NET_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "odk/net.h"
#include "odk/ring.h"

enum net_owner { NET_FAMILY = 0, NET_DRIVER_TX = 1, NET_DRIVER_RX = 2 };

struct net_pool {
    uint32_t count, size; /* buffers, bytes each */
    uint8_t *owner;       /* enum net_owner per buffer */
    uint32_t *free;       /* stack of free buffer indices */
    uint32_t n_free;
};

/* count buffers of size bytes (the memory is the caller's); all free.
 * ODK_E_INVALID (count 0), ODK_E_NOMEM. */
int net_pool_init(struct net_pool *p, uint32_t count, uint32_t size);
void net_pool_fini(struct net_pool *p);
/* A free buffer into *buf: ODK_OK, or ODK_E_AGAIN when none is free. */
int net_pool_get(struct net_pool *p, uint32_t *buf);
/* Back to the free stack (the family's own buffer). */
void net_pool_put(struct net_pool *p, uint32_t buf);
/* Marks buf as held by the driver (NET_DRIVER_TX or NET_DRIVER_RX). */
void net_pool_lend(struct net_pool *p, uint32_t buf, enum net_owner to);
/* Checks a descriptor the driver completed as `as` (NET_DRIVER_TX or
 * NET_DRIVER_RX) and takes the buffer back from it: ODK_E_NOT_FOUND (index
 * out of range, or the driver does not hold it that way: nothing changes),
 * ODK_E_INVALID (length outside min_len..size: the buffer is taken back all
 * the same), ODK_OK. */
int net_pool_take_back(struct net_pool *p, const odk_net_packet *pkt, enum net_owner as,
                       uint32_t min_len);

/* The bytes of ring data for n descriptors (a power of two, at least
 * ODK_RING_MIN_SIZE). */
uint32_t net_ring_size(uint32_t n);
/* One record in / out.  push: ODK_OK, ODK_E_AGAIN (full), ODK_E_PROTOCOL;
 * pop: ODK_OK, ODK_E_AGAIN (empty), ODK_E_PROTOCOL. */
int net_ring_push(odk_ring *r, const odk_net_packet *pkt);
int net_ring_pop(odk_ring *r, odk_net_packet *pkt);

#endif
