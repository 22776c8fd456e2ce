/* SPDX-License-Identifier: MIT */
/* odk/net.h — the network family: an Ethernet driver whose interface is a
 * real Linux network interface (a TAP device that ip, ping and iperf3 use).
 *
 * Shaped after NetworkingDriverKit's IOUserNetworkEthernet (docs/net.md has
 * the table).  A driver creates an interface in its start; the family then
 *   - publishes an interface node (class IOEthernetInterface) under the
 *     driver, with its name, MAC, MTU, link and counters as properties,
 *   - gets the TAP queue's descriptor from odkd.  odkd creates the TAP
 *     interface (named from the personality's OdkNetBaseName, default
 *     "odknet", plus the kernel's lowest free unit number) and keeps it for
 *     as long as the provider device exists: when the driver crashes and
 *     restarts, the interface, its addresses and its routes stay; only the
 *     carrier drops until the new driver reports link up again,
 *   - moves frames between the TAP queue and four rings of packet
 *     descriptors over a pool of packet buffers, all in one shared-memory
 *     block:
 *
 *   TX submission  system -> driver: frames to send.  odk_net_tx_dequeue.
 *   TX completion  driver -> family: sent (or dropped) frames whose buffers
 *                  go back to the pool.  odk_net_tx_complete.
 *   RX submission  family -> driver: empty buffers.  odk_net_rx_dequeue.
 *   RX completion  driver -> system: filled buffers.  odk_net_rx_complete.
 *
 * Work is batched: the family reads up to a batch of frames from the TAP
 * queue before it calls tx_available once, and a driver completes many
 * packets in one call.  While the driver keeps up, nobody is woken per
 * packet.
 *
 * Every callback runs on the driver's default queue, as do the functions
 * here: call them only from there.  Only create, destroy and the odk_net_set_*
 * functions block (on odkd).
 */
#ifndef ODK_NET_H
#define ODK_NET_H

#include "odk/export.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "odk/driver.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ODK_NET_ETHER_HEADER 14u /* destination, source, type */
#define ODK_NET_MIN_FRAME 14u    /* the shortest frame the family passes on */
#define ODK_NET_MAX_MTU 65521u   /* largest MTU a driver may declare */

typedef struct odk_net_if odk_net_if;

/* A packet descriptor: a buffer of the pool and the bytes of frame in it
 * (destination MAC first, no FCS). */
typedef struct odk_net_packet {
    uint32_t buffer; /* index in the pool, < odk_net_buffer_count() */
    uint32_t length;
} odk_net_packet;

/* Counters, as the registry shows them (node property "Counters"). */
typedef struct odk_net_counters {
    uint64_t tx_packets, tx_bytes, tx_errors, tx_drops;
    uint64_t rx_packets, rx_bytes, rx_errors, rx_drops;
} odk_net_counters;

/* What the driver implements.  tx_available and rx_available are required. */
typedef struct odk_net_ops {
    /* The interface comes up (after create) / goes down (in destroy).  The
     * driver starts its hardware in enable and reports the link with
     * odk_net_set_link when it knows it. */
    int (*enable)(odk_net_if *nif);
    void (*disable)(odk_net_if *nif);
    /* The TX submission ring has frames: take them with odk_net_tx_dequeue,
     * send them, give the buffers back with odk_net_tx_complete.  A driver
     * that cannot send now (its hardware queue is full) may leave frames in
     * the ring, or keep dequeued ones, and go on when it has room: nothing
     * calls it again for frames it already saw. */
    void (*tx_available)(odk_net_if *nif);
    /* The RX submission ring got empty buffers after a odk_net_rx_dequeue
     * that found none.  A driver that stopped receiving for lack of buffers
     * resumes here. */
    void (*rx_available)(odk_net_if *nif);
    /* What the system sets on the interface, as NetworkingDriverKit's
     * SetInterfaceEnable, SetPromiscuousModeEnable, SetAllMulticastModeEnable
     * and SetMulticastAddresses deliver it: `ip link set up/down`, `promisc`
     * (also a packet socket's or a bridge's promiscuity), `allmulti`, and
     * the link-layer multicast list (`ip maddr`, groups the stack joins).
     * Each is called once after enable with the state then, and again when
     * it changes (up/down, promisc and allmulti within moments; multicast
     * list changes raise no kernel event, odkd reads them twice a second).
     * All optional.  A driver with hardware filters programs them here; one
     * without may filter in software with odk_net_if_accepts.  More than
     * ODK_NET_MAX_MULTICAST addresses arrive as all-multicast on. */
    void (*set_interface_up)(odk_net_if *nif, bool up);
    void (*set_promiscuous)(odk_net_if *nif, bool on);
    void (*set_all_multicast)(odk_net_if *nif, bool on);
    /* list: n addresses of 6 bytes, borrowed for the call. */
    void (*set_multicast_list)(odk_net_if *nif, const uint8_t (*list)[6], size_t n);
} odk_net_ops;

#define ODK_NET_MAX_MULTICAST 256u /* multicast addresses passed to set_multicast_list */

typedef struct odk_net_config {
    uint8_t mac[6];        /* the permanent address; all zero: a random local one */
    uint32_t mtu;          /* 0: 1500 */
    uint32_t max_mtu;      /* largest MTU the hardware takes (buffer size); 0: mtu */
    uint32_t buffers;      /* packet buffers in the pool, power of two; 0: 512 */
    const char *base_name; /* NULL: the personality's OdkNetBaseName, else "odknet" */
    uint32_t offloads;     /* ODK_NET_OFFLOAD_* the driver (its hardware) does; 0: none */
} odk_net_config;

/* ---- offloads ------------------------------------------------------------- */

/* What a driver may declare in odk_net_config.offloads.  The system then
 * hands it work it would do itself otherwise (`ethtool -k` shows them on):
 *   CSUM  frames to send may carry a partial TCP/UDP checksum for the driver
 *         to complete (ODK_NET_VNET_F_NEEDS_CSUM),
 *   TSO4, TSO6  TCP frames to send may be up to 64 KiB, for the driver to cut
 *         into segments of gso_size payload bytes (both need CSUM),
 *   RX    received frames carry a header the driver fills (zero: nothing
 *         done; ODK_NET_VNET_F_DATA_VALID: checksums verified; a GSO type:
 *         segments it coalesced).
 * With any of them, every buffer of the pool begins with an
 * odk_net_vnet_header, the frame follows it, and a packet's length counts
 * both (TX and RX, both ways).  Buffers are then ODK_NET_VNET_HEADER bytes
 * larger, and with TSO large enough for a 64 KiB frame. */
#define ODK_NET_OFFLOAD_CSUM 0x1u
#define ODK_NET_OFFLOAD_TSO4 0x2u
#define ODK_NET_OFFLOAD_TSO6 0x4u
#define ODK_NET_OFFLOAD_RX 0x8u

/* The virtio-net header (struct virtio_net_hdr), in the machine's byte
 * order.  Offsets count from the frame's first byte (after this header). */
typedef struct odk_net_vnet_header {
    uint8_t flags;        /* ODK_NET_VNET_F_* */
    uint8_t gso_type;     /* ODK_NET_GSO_*, with ODK_NET_GSO_ECN when the frame carries CWR */
    uint16_t hdr_len;     /* bytes of Ethernet, IP and TCP headers of a GSO frame */
    uint16_t gso_size;    /* payload bytes per segment of a GSO frame */
    uint16_t csum_start;  /* the checksum covers csum_start to the frame's end ... */
    uint16_t csum_offset; /* ... and goes at csum_start + csum_offset */
} odk_net_vnet_header;

#define ODK_NET_VNET_HEADER 10u /* sizeof(odk_net_vnet_header) */
#define ODK_NET_VNET_F_NEEDS_CSUM 1u
#define ODK_NET_VNET_F_DATA_VALID 2u
#define ODK_NET_GSO_NONE 0u
#define ODK_NET_GSO_TCPV4 1u
#define ODK_NET_GSO_TCPV6 4u
#define ODK_NET_GSO_ECN 0x80u

/* Creates the interface for drv (call in start): publishes its node, gets
 * the TAP queue from odkd, then calls ops->enable.  BLOCKS on odkd.  The
 * carrier is down until odk_net_set_link says otherwise.  drv, ops, ctx and
 * cfg's strings are borrowed (ops and ctx for the interface's life); cfg may
 * be NULL.  *out is owned by the driver, who destroys it in stop.  Errors:
 * ODK_E_INVALID (a NULL argument or required op; buffers not a power of two
 * in 16..65536; mtu < 68 or mtu > max_mtu > ODK_NET_MAX_MTU; odkd refused the
 * base name), ODK_E_NOMEM, ODK_E_IO (memfd, mmap or the TAP device failed),
 * ODK_E_DISCONNECTED, ODK_E_ACCESS, ODK_E_BUSY (another driver holds the
 * interface of this provider), ODK_E_PROTOCOL, or what enable returned. */
ODK_PUBLIC int odk_net_if_create(odk_driver *drv, const odk_net_ops *ops, void *ctx,
                                 const odk_net_config *cfg, odk_net_if **out);
/* Disables the interface, withdraws its node (the carrier drops; the TAP
 * interface itself stays with odkd until the provider goes) and frees it.
 * Buffers the driver still holds are forgotten.  BLOCKS on odkd.  NULL is
 * allowed. */
ODK_PUBLIC void odk_net_if_destroy(odk_net_if *nif);

/* Accessors: never fail, never block; nif must not be NULL.  Strings are
 * borrowed until destroy. */
ODK_PUBLIC void *odk_net_if_ctx(const odk_net_if *nif);
ODK_PUBLIC odk_driver *odk_net_if_driver(const odk_net_if *nif);
ODK_PUBLIC uint64_t odk_net_if_node(const odk_net_if *nif);
ODK_PUBLIC const char *odk_net_if_name(const odk_net_if *nif); /* "odksim0" */
ODK_PUBLIC uint32_t odk_net_if_mtu(const odk_net_if *nif);
ODK_PUBLIC void odk_net_if_counters(const odk_net_if *nif, odk_net_counters *out);

/* What the driver reports; each tells odkd, which changes the interface
 * (carrier, address, MTU) and the node's properties.  BLOCKS on odkd; call
 * on changes, not per packet.  Errors: ODK_E_INVALID (mtu outside 68..the
 * configured max_mtu; a multicast or all-zero mac), ODK_E_IO (the kernel
 * refused), ODK_E_DISCONNECTED, ODK_E_NOMEM. */
ODK_PUBLIC int odk_net_set_link(odk_net_if *nif, bool up, uint64_t speed_bps);
ODK_PUBLIC int odk_net_set_mac(odk_net_if *nif, const uint8_t mac[6]);
ODK_PUBLIC int odk_net_set_mtu(odk_net_if *nif, uint32_t mtu);

/* Whether a NIC filtering as the system asked would take frame (len bytes,
 * destination MAC first): false while the interface is down; true in
 * promiscuous mode, for the interface's address (the system's current one,
 * which `ip link set address` may have changed), broadcast, and multicast
 * in the list or with all-multicast on.  For drivers whose hardware has no
 * filter.  Never blocks; false for a NULL frame or one shorter than a
 * header. */
ODK_PUBLIC bool odk_net_if_accepts(const odk_net_if *nif, const uint8_t *frame, size_t len);

/* ---- the data path ------------------------------------------------------ */

/* The pool: buffer i's bytes (borrowed until destroy), the size of every
 * buffer (max_mtu + ODK_NET_ETHER_HEADER + 4 for a VLAN tag; with offloads
 * ODK_NET_VNET_HEADER more, and with TSO at least that for a 65536-byte
 * frame), and their count.  A buffer index that is out of range gives
 * NULL. */
ODK_PUBLIC uint8_t *odk_net_buffer(odk_net_if *nif, uint32_t buffer);
ODK_PUBLIC uint32_t odk_net_buffer_size(const odk_net_if *nif);
ODK_PUBLIC uint32_t odk_net_buffer_count(const odk_net_if *nif);
/* The offloads in force (odk_net_config.offloads); buffers begin with an
 * odk_net_vnet_header when it is not 0. */
ODK_PUBLIC uint32_t odk_net_if_offloads(const odk_net_if *nif);

/* Takes up to max frames to send from the TX submission ring into pkts;
 * returns how many (0: none now).  The driver owns their buffers until it
 * completes them. */
ODK_PUBLIC size_t odk_net_tx_dequeue(odk_net_if *nif, odk_net_packet *pkts, size_t max);
/* Gives n sent frames' buffers back (a length of 0 counts the frame as
 * dropped, else it is counted as sent).  Never blocks.  Every descriptor is
 * checked: one naming a buffer the driver does not hold for TX is skipped
 * and counted as a TX error, and the call answers ODK_E_INVALID after
 * handling the rest; ODK_E_PROTOCOL when the shared ring is corrupt. */
ODK_PUBLIC int odk_net_tx_complete(odk_net_if *nif, const odk_net_packet *pkts, size_t n);

/* Takes up to max empty buffers from the RX submission ring into bufs
 * (length = odk_net_buffer_size); returns how many.  When it returns 0, the
 * family calls rx_available once buffers are back. */
ODK_PUBLIC size_t odk_net_rx_dequeue(odk_net_if *nif, odk_net_packet *bufs, size_t max);
/* Hands n received frames to the system (the TAP queue) and takes their
 * buffers back.  Never blocks.  Every descriptor is checked: an unknown
 * buffer (out of range, or not one the driver holds for RX), a bad length
 * (< ODK_NET_MIN_FRAME or > odk_net_buffer_size; with offloads, header
 * included) or, with offloads, a header the frame contradicts (unknown
 * flags or GSO type, a checksum or header length past the frame's end, a
 * GSO type without gso_size) drops that frame, counts it
 * as an RX error, logs it, and the call answers ODK_E_INVALID after handling
 * the rest (a bad-length frame's buffer is still taken back).  A frame the
 * system would not take (the interface is down) counts as an RX drop. */
ODK_PUBLIC int odk_net_rx_complete(odk_net_if *nif, const odk_net_packet *pkts, size_t n);

/* ---- the simulated cable (drivers/net-sim) -------------------------------- */

/* The cable of drv's provider (a sim device whose "cable" property names
 * it; docs/net.md): *sock receives this end's SOCK_SEQPACKET socket (one
 * frame per packet), *event an eventfd odkd writes when the cable's settings
 * change, *settings a dictionary {"end", "plugged", "loss_ppm", "delay_us",
 * "rate_bps"}; all owned by the caller.  BLOCKS on odkd; call in start.
 * Errors: ODK_E_INVALID (a NULL argument; the provider names no cable),
 * ODK_E_BUSY (two other devices hold the cable's ends), ODK_E_IO,
 * ODK_E_DISCONNECTED, ODK_E_NOMEM, ODK_E_PROTOCOL. */
ODK_PUBLIC int odk_net_sim_cable_open(odk_driver *drv, int *sock, int *event, odk_value **settings);
/* The cable's settings now (after its eventfd fired), as above.  BLOCKS on
 * odkd.  Errors: ODK_E_INVALID, ODK_E_NOT_FOUND, ODK_E_DISCONNECTED. */
ODK_PUBLIC int odk_net_sim_cable_settings(odk_driver *drv, odk_value **settings);

#ifdef __cplusplus
}
#endif
#endif
