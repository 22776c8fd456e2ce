/* SPDX-License-Identifier: MIT */
/* The network family, odkd side: one TAP interface per provider device.
 *
 * odkd creates the interface (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR) when the
 * driver's family code first asks for it, keeps its own descriptor of the
 * queue, and hands the host a duplicate.  The interface therefore outlives
 * the driver: when the host dies, its copy closes, odkd's keeps the
 * interface with its addresses and routes, and only the carrier drops
 * (node_gone on the interface node).  The next driver on the same provider
 * gets the same interface back.  It goes when the provider goes.
 *
 * odkd only sets the interface up as the driver reports (carrier, MAC, MTU);
 * frames never pass through it. */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <net/if_arp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/bookkeeping/instance.h"
#include "daemon/core/msg.h"
#include "daemon/front/hostreq.h"
#include "daemon/odkd.h"
#include "odk/log.h"
#include "odk/net.h"
#include "odk/status.h"

#define BASE_MAX 11 /* IFNAMSIZ (16) less a NUL and up to 4 digits of unit */

struct tap_if {
    uint64_t provider_id; /* the device the interface belongs to */
    uint64_t node_id;     /* the interface node of the driver that has it now, 0 when none */
    char base[BASE_MAX + 1];
    char name[IFNAMSIZ];
    int fd;
    struct tap_if *next;
};

struct net {
    struct tap_if *ifs;
};

static const struct odkd_module net_family;

static struct net *net_of(struct odkd *d)
{
    return module_state(d, &net_family);
}

static bool good_base(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > BASE_MAX)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
            return false;
    return true;
}

static void format_mac(const uint8_t m[6], char out[18])
{
    snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

static const uint8_t *mac_arg(const odk_value *args)
{
    const odk_value *v = odk_dict_get(args, "mac");
    size_t len = 0;
    const uint8_t *m = v && odk_value_type(v) == ODK_TYPE_DATA ? odk_value_data(v, &len) : NULL;
    static const uint8_t zero[6];
    if (!m || len != 6 || (m[0] & 1) || memcmp(m, zero, 6) == 0)
        return NULL;
    return m;
}

static int set_carrier(struct tap_if *t, bool on)
{
    int v = on;
    return ioctl(t->fd, TUNSETCARRIER, &v) < 0 ? ODK_E_IO : ODK_OK;
}

static int set_mac(struct tap_if *t, const uint8_t mac[6], char *err, size_t len)
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
    memcpy(ifr.ifr_hwaddr.sa_data, mac, 6);
    if (ioctl(t->fd, SIOCSIFHWADDR, &ifr) < 0) {
        snprintf(err, len, "%s: cannot set the MAC address: %s", t->name, strerror(errno));
        return ODK_E_IO;
    }
    return ODK_OK;
}

/* The MTU has no TAP ioctl: it is set by name, which works while the
 * interface is in odkd's network namespace.  Once someone moved it to
 * another, the driver's MTU is only recorded (and logged). */
static int set_mtu(struct tap_if *t, uint32_t mtu, char *err, size_t len)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", t->name);
    ifr.ifr_mtu = (int)mtu;
    int r = s < 0 ? -1 : ioctl(s, SIOCSIFMTU, &ifr);
    int e = errno;
    if (s >= 0)
        close(s);
    if (r < 0) {
        snprintf(err, len, "%s: cannot set the MTU to %u: %s", t->name, mtu, strerror(e));
        return e == ENODEV ? ODK_E_NOT_FOUND : ODK_E_IO;
    }
    return ODK_OK;
}

static int open_tap(struct tap_if *t, char *err, size_t len)
{
    t->fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (t->fd < 0) {
        snprintf(err, len, "cannot open /dev/net/tun: %s", strerror(errno));
        return errno == EACCES || errno == EPERM ? ODK_E_ACCESS : ODK_E_IO;
    }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    /* "%d": the kernel picks the lowest free unit, which gives stable,
     * familiar numbering (odksim0, odksim1) and never clashes with another
     * odkd's interfaces. */
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s%%d", t->base);
    if (ioctl(t->fd, TUNSETIFF, &ifr) < 0) {
        snprintf(err, len, "cannot create a TAP interface %s%%d: %s", t->base, strerror(errno));
        close(t->fd);
        t->fd = -1;
        return errno == EPERM ? ODK_E_ACCESS : ODK_E_IO;
    }
    snprintf(t->name, sizeof t->name, "%s", ifr.ifr_name);
    return ODK_OK;
}

static struct tap_if *find_by_node(struct net *n, uint64_t node_id)
{
    for (struct tap_if *t = n->ifs; t; t = t->next)
        if (t->node_id == node_id)
            return t;
    return NULL;
}

static void set_prop_str(reg_node *node, const char *key, const char *val)
{
    if (odk_dict_set_string(node->props, key, val) < 0)
        odk_warn("net: out of memory noting %s on node %llu", key, (unsigned long long)node->id);
}

static void set_prop_int(reg_node *node, const char *key, int64_t val)
{
    if (odk_dict_set_int(node->props, key, val) < 0)
        odk_warn("net: out of memory noting %s on node %llu", key, (unsigned long long)node->id);
}

/* net-tap {"node", "base", "mac", "mtu"}: the TAP interface of the asking
 * driver's provider (created on first use), for the interface node it
 * published.  The reply carries {"name"} and the queue's descriptor. */
static int op_net_tap(struct host_request *r)
{
    reg_node *node = hostreq_own_node(r);
    if (!node)
        return ODK_E_ACCESS;
    struct net *n = net_of(r->d);
    const char *base = odk_dict_get_string(r->args, "base", "odknet");
    const uint8_t *mac = mac_arg(r->args);
    int64_t mtu = odk_dict_get_int(r->args, "mtu", 1500);
    if (!good_base(base) || !mac || mtu < 68 || mtu > ODK_NET_MAX_MTU) {
        snprintf(r->err, sizeof r->err,
                 "net-tap: base name '%s' must be 1-%d of a-z, 0-9, '_', '-'; the MAC a unicast "
                 "address; the MTU %d..%u",
                 base, BASE_MAX, 68, ODK_NET_MAX_MTU);
        return ODK_E_INVALID;
    }
    uint64_t provider = r->in->provider_id;
    struct tap_if *t = n->ifs;
    while (t && !(t->provider_id == provider && strcmp(t->base, base) == 0))
        t = t->next;
    bool fresh = !t;
    if (t && t->node_id && t->node_id != node->id) {
        snprintf(r->err, sizeof r->err, "%s is held by node %llu", t->name,
                 (unsigned long long)t->node_id);
        return ODK_E_BUSY;
    }
    if (fresh) {
        if (!(t = calloc(1, sizeof *t)))
            return ODK_E_NOMEM;
        t->provider_id = provider;
        snprintf(t->base, sizeof t->base, "%s", base);
        int st = open_tap(t, r->err, sizeof r->err);
        if (st < 0) {
            free(t);
            return st;
        }
        set_carrier(t, false);
        t->next = n->ifs;
        n->ifs = t;
    }
    int st = set_mac(t, mac, r->err, sizeof r->err);
    if (st == ODK_OK && set_mtu(t, (uint32_t)mtu, r->err, sizeof r->err) < 0) {
        odk_info("net %s: MTU %lld only recorded (%s)", t->name, (long long)mtu, r->err);
        r->err[0] = '\0';
    }
    int fd = st == ODK_OK ? fcntl(t->fd, F_DUPFD_CLOEXEC, 3) : -1;
    if (st == ODK_OK && fd < 0) {
        snprintf(r->err, sizeof r->err, "%s: cannot duplicate the queue: %s", t->name,
                 strerror(errno));
        st = ODK_E_IO;
    }
    if (st < 0)
        return st; /* a fresh interface stays with the provider; the next try reuses it */
    t->node_id = node->id;
    char macs[18];
    format_mac(mac, macs);
    set_prop_str(node, "BSD Name", t->name);
    set_prop_str(node, "IOMACAddress", macs);
    set_prop_int(node, "IOMaxTransferUnit", mtu);
    odk_dict_set_bool(node->props, "IOLinkStatus", false);
    set_prop_int(node, "IOLinkSpeed", 0);
    struct msg m = msg_begin();
    msg_str(&m, "name", t->name);
    st = msg_finish(&m, &r->out);
    if (st < 0) {
        close(fd);
        return st;
    }
    r->fds[0] = fd;
    r->n_fds = 1;
    odk_info("net %s: %s for node %llu (provider %llu), MAC %s", t->name,
             fresh ? "created" : "handed over again", (unsigned long long)node->id,
             (unsigned long long)provider, macs);
    return ODK_OK;
}

/* net-set {"node", "link"?, "speed"?, "mac"?, "mtu"?}: what the driver
 * reports, applied to its interface and noted on its node. */
static int op_net_set(struct host_request *r)
{
    reg_node *node = hostreq_own_node(r);
    if (!node)
        return ODK_E_ACCESS;
    struct tap_if *t = find_by_node(net_of(r->d), node->id);
    if (!t) {
        snprintf(r->err, sizeof r->err, "node %llu has no network interface",
                 (unsigned long long)node->id);
        return ODK_E_NOT_FOUND;
    }
    const odk_value *link = odk_dict_get(r->args, "link");
    const odk_value *mtu = odk_dict_get(r->args, "mtu");
    const odk_value *macv = odk_dict_get(r->args, "mac");
    const uint8_t *mac = macv ? mac_arg(r->args) : NULL;
    if ((link && odk_value_type(link) != ODK_TYPE_BOOL) ||
        (mtu && (odk_value_type(mtu) != ODK_TYPE_INT || odk_value_int(mtu) < 68 ||
                 odk_value_int(mtu) > ODK_NET_MAX_MTU)) ||
        (macv && !mac)) {
        snprintf(r->err, sizeof r->err,
                 "net-set: 'link' must be a boolean, 'mtu' 68..%u, 'mac' a "
                 "unicast address",
                 ODK_NET_MAX_MTU);
        return ODK_E_INVALID;
    }
    if (mac) {
        int st = set_mac(t, mac, r->err, sizeof r->err);
        if (st < 0)
            return st;
        char macs[18];
        format_mac(mac, macs);
        set_prop_str(node, "IOMACAddress", macs);
    }
    if (mtu) {
        if (set_mtu(t, (uint32_t)odk_value_int(mtu), r->err, sizeof r->err) < 0) {
            odk_info("net %s: MTU %lld only recorded (%s)", t->name, (long long)odk_value_int(mtu),
                     r->err);
            r->err[0] = '\0';
        }
        set_prop_int(node, "IOMaxTransferUnit", odk_value_int(mtu));
    }
    if (link) {
        bool up = odk_value_bool(link);
        if (set_carrier(t, up) < 0) {
            snprintf(r->err, sizeof r->err, "%s: cannot set the carrier: %s", t->name,
                     strerror(errno));
            return ODK_E_IO;
        }
        int64_t speed = odk_dict_get_int(r->args, "speed", 0);
        odk_dict_set_bool(node->props, "IOLinkStatus", up);
        set_prop_int(node, "IOLinkSpeed", up && speed > 0 ? speed : 0);
        odk_info("net %s: link %s", t->name, up ? "up" : "down");
    }
    return ODK_OK;
}

static void free_if(struct tap_if *t)
{
    if (t->fd >= 0)
        close(t->fd);
    free(t);
}

static void node_gone(struct odkd *d, reg_node *node)
{
    struct net *n = net_of(d);
    for (struct tap_if **p = &n->ifs; *p;) {
        struct tap_if *t = *p;
        if (t->node_id == node->id) {
            /* The driver is gone (stopped or crashed): the interface stays,
             * without carrier, for the next driver on this provider. */
            t->node_id = 0;
            set_carrier(t, false);
            odk_info("net %s: no driver, carrier off", t->name);
        }
        if (t->provider_id == node->id) {
            *p = t->next;
            odk_info("net %s: device gone, interface removed", t->name);
            free_if(t);
            continue;
        }
        p = &t->next;
    }
}

static void fini(struct odkd *d)
{
    struct net *n = net_of(d);
    while (n->ifs) {
        struct tap_if *t = n->ifs;
        n->ifs = t->next;
        free_if(t);
    }
}

static const struct class_def classes[] = {
    {"IOUserNetworkEthernet", "IOService"},
    {"IOEthernetInterface", "IOService"},
    {NULL, NULL},
};
/* The op that creates this family's resource: entitlements decide. */
static const struct resource_op resource_ops[] = {{"net-tap", "network"}, {NULL, NULL}};
static const struct host_op host_ops[] = {
    {"net-tap", op_net_tap},
    {"net-set", op_net_set},
    {NULL, NULL},
};

static const struct odkd_module net_family = {
    .name = "net",
    .kind = "family",
    .state_size = sizeof(struct net),
    .classes = classes,
    .host_ops = host_ops,
    .resource_ops = resource_ops,
    .node_gone = node_gone,
    .fini = fini,
};
ODKD_MODULE(net_family)
