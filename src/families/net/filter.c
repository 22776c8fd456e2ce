/* SPDX-License-Identifier: MIT */
/* The receive filter and the net-state reply (filter.h). */
#include "families/net/filter.h"

#include <string.h>

#include "odk/status.h"

bool net_filter_accepts(const struct net_filter *f, const uint8_t *frame, size_t len)
{
    if (!frame || len < ODK_NET_ETHER_HEADER || !f->up)
        return false;
    if (f->promisc)
        return true;
    if (!(frame[0] & 1))
        return memcmp(frame, f->mac, 6) == 0;
    static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    if (f->allmulti || memcmp(frame, bcast, 6) == 0)
        return true;
    for (uint32_t i = 0; i < f->n_mc && i < ODK_NET_MAX_MULTICAST; i++)
        if (memcmp(frame, f->mc[i], 6) == 0)
            return true;
    return false;
}

static bool get_bool(const odk_value *v, const char *key, bool *out)
{
    const odk_value *b = odk_dict_get(v, key);
    if (!b || odk_value_type(b) != ODK_TYPE_BOOL)
        return false;
    *out = odk_value_bool(b);
    return true;
}

int net_filter_from_value(const odk_value *v, struct net_filter *f)
{
    bool up, promisc, allmulti;
    const odk_value *mac = v ? odk_dict_get(v, "mac") : NULL;
    const odk_value *mc = v ? odk_dict_get(v, "multicast") : NULL;
    size_t mac_len = 0, mc_len = 0;
    const uint8_t *m =
        mac && odk_value_type(mac) == ODK_TYPE_DATA ? odk_value_data(mac, &mac_len) : NULL;
    const uint8_t *l =
        mc && odk_value_type(mc) == ODK_TYPE_DATA ? odk_value_data(mc, &mc_len) : NULL;
    if (!v || !get_bool(v, "up", &up) || !get_bool(v, "promiscuous", &promisc) ||
        !get_bool(v, "all_multicast", &allmulti) || !m || mac_len != 6 || !mc || (mc_len && !l) ||
        mc_len % 6)
        return ODK_E_PROTOCOL;
    size_t n = mc_len / 6;
    f->up = up;
    f->promisc = promisc;
    f->allmulti = allmulti || n > ODK_NET_MAX_MULTICAST;
    memcpy(f->mac, m, 6);
    f->n_mc = (uint32_t)(n > ODK_NET_MAX_MULTICAST ? ODK_NET_MAX_MULTICAST : n);
    if (f->n_mc)
        memcpy(f->mc, l, (size_t)f->n_mc * 6);
    return ODK_OK;
}

int net_filter_to_value(const struct net_filter *f, odk_value **out)
{
    /* odk_dict_set takes its item whatever happens, a NULL one too. */
    odk_value *v = odk_value_new_dict();
    if (!v || odk_dict_set(v, "mac", odk_value_new_data(f->mac, 6)) < 0 ||
        odk_dict_set(v, "multicast", odk_value_new_data(f->mc, (size_t)f->n_mc * 6)) < 0 ||
        odk_dict_set_bool(v, "up", f->up) < 0 ||
        odk_dict_set_bool(v, "promiscuous", f->promisc) < 0 ||
        odk_dict_set_bool(v, "all_multicast", f->allmulti) < 0) {
        odk_value_free(v);
        return ODK_E_NOMEM;
    }
    *out = v;
    return ODK_OK;
}
