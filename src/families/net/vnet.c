/* SPDX-License-Identifier: MIT */
/* The virtio-net header a driver hands with a received frame (vnet.h). */
#include "families/net/vnet.h"

#include "odk/status.h"

int net_vnet_check(const odk_net_vnet_header *h, size_t frame_len)
{
    if (h->flags & ~(ODK_NET_VNET_F_NEEDS_CSUM | ODK_NET_VNET_F_DATA_VALID))
        return ODK_E_INVALID;
    if (h->flags & ODK_NET_VNET_F_NEEDS_CSUM) {
        if (h->csum_start < ODK_NET_ETHER_HEADER ||
            (size_t)h->csum_start + h->csum_offset + 2 > frame_len)
            return ODK_E_INVALID;
    }
    unsigned type = h->gso_type & ~ODK_NET_GSO_ECN;
    if (type == ODK_NET_GSO_NONE)
        return h->gso_type == 0 && h->gso_size == 0 && h->hdr_len <= frame_len ? ODK_OK
                                                                               : ODK_E_INVALID;
    if (type != ODK_NET_GSO_TCPV4 && type != ODK_NET_GSO_TCPV6)
        return ODK_E_INVALID;
    if (h->gso_size == 0 || h->hdr_len < ODK_NET_ETHER_HEADER || h->hdr_len > frame_len)
        return ODK_E_INVALID;
    return ODK_OK;
}
