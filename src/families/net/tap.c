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
 * frames never pass through it.
 *
 * The other way, odkd tells the driver what the system set on the
 * interface (up/down, promiscuous, all-multicast, the multicast list and
 * the address): a TAP queue hears of none of it, and the driver host lives
 * in a network namespace of its own.  odkd watches rtnetlink for link
 * events in every namespace that has an id in its own (the kernel gives the
 * namespace an interface moves to one), and, since multicast list changes
 * raise no event, reads the lists every POLL_MS.  Either way it reads the
 * interface's state in the interface's current namespace (TUNGETDEVNETNS;
 * setns there and back, odkd's loop being its only thread), and on a change
 * writes the eventfd it gave the driver with the queue; the driver then
 * asks (net-state).  The MTU the driver reports is set in that namespace
 * too, wherever the interface was moved. */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if_arp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/bookkeeping/instance.h"
#include "daemon/core/loop.h"
#include "daemon/core/msg.h"
#include "daemon/front/hostreq.h"
#include "daemon/odkd.h"
#include "families/net/filter.h"
#include "odk/log.h"
#include "odk/net.h"
#include "odk/status.h"

#define BASE_MAX 11 /* IFNAMSIZ (16) less a NUL and up to 4 digits of unit */
#define POLL_MS 500 /* how often the multicast lists are read (no event says they changed) */

struct tap_if {
    uint64_t provider_id; /* the device the interface belongs to */
    uint64_t node_id;     /* the interface node of the driver that has it now, 0 when none */
    char base[BASE_MAX + 1];
    char name[IFNAMSIZ]; /* as the kernel names it now (TUNGETIFF), in its namespace */
    int fd;
    int ev;                /* written when sys changes; the driver has a duplicate */
    struct net_filter sys; /* what the system set, as last read */
    bool sys_read;
    struct tap_if *next;
};

struct net {
    struct tap_if *ifs;
    int nl; /* rtnetlink link events of every namespace with an id, -1: none */
    struct watch nl_w;
    int self_ns;   /* odkd's network namespace, to come back to */
    uint64_t poll; /* the multicast poll's timer, 0: not armed */
    bool watching;
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

/* The interface's current name (it may have been renamed or moved). */
static void refresh_name(struct tap_if *t)
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    if (ioctl(t->fd, TUNGETIFF, &ifr) == 0 && ifr.ifr_name[0])
        snprintf(t->name, sizeof t->name, "%s", ifr.ifr_name);
}

/* Runs fn(t, arg) in the network namespace the interface is in now, where
 * its name means it: setns there and back (odkd's loop is its only thread,
 * and sockets made there stay there).  ODK_E_IO when the namespace cannot
 * be entered. */
static int in_dev_ns(struct net *n, struct tap_if *t, int (*fn)(struct tap_if *, void *), void *arg)
{
    refresh_name(t);
    int ns = ioctl(t->fd, TUNGETDEVNETNS);
    if (ns < 0 && errno == EBADFD)
        return ODK_E_NOT_FOUND; /* deleted with the namespace it was moved to */
    struct stat a, b;
    bool same = ns < 0 || n->self_ns < 0 || fstat(ns, &a) < 0 || fstat(n->self_ns, &b) < 0 ||
                (a.st_ino == b.st_ino && a.st_dev == b.st_dev);
    if (!same && setns(ns, CLONE_NEWNET) < 0) {
        odk_warn("net %s: cannot enter its network namespace: %s", t->name, strerror(errno));
        close(ns);
        return ODK_E_IO;
    }
    int st = fn(t, arg);
    if (!same && setns(n->self_ns, CLONE_NEWNET) < 0) {
        /* Sockets odkd makes from now on would be in the wrong namespace. */
        odk_error("net: cannot return to odkd's network namespace: %s", strerror(errno));
        abort();
    }
    if (ns >= 0)
        close(ns);
    return st;
}

/* The MTU has no TAP ioctl: it is set by name, in the interface's
 * namespace.  err has room for ODK_ERR... (MODULE_ERR_MAX). */
struct mtu_args {
    uint32_t mtu;
    char *err;
    size_t len;
};

static int set_mtu_here(struct tap_if *t, void *arg)
{
    struct mtu_args *a = arg;
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", t->name);
    ifr.ifr_mtu = (int)a->mtu;
    int r = s < 0 ? -1 : ioctl(s, SIOCSIFMTU, &ifr);
    int e = errno;
    if (s >= 0)
        close(s);
    if (r < 0) {
        snprintf(a->err, a->len, "%s: cannot set the MTU to %u: %s", t->name, a->mtu, strerror(e));
        return e == ENODEV ? ODK_E_NOT_FOUND : ODK_E_IO;
    }
    return ODK_OK;
}

static int set_mtu(struct net *n, struct tap_if *t, uint32_t mtu, char *err, size_t len)
{
    struct mtu_args a = {mtu, err, len};
    int st = in_dev_ns(n, t, set_mtu_here, &a);
    if (st == ODK_E_IO && !err[0])
        snprintf(err, len, "%s: cannot enter its network namespace", t->name);
    return st;
}

/* ---- what the system set: read, compared, told ------------------------------ */

/* Sends an RTM_GETLINK for t->name on a netlink socket of the current
 * namespace and reads flags, promiscuity, allmulti and address from the
 * answer. */
static int read_link(struct tap_if *t, struct net_filter *f)
{
    int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (s < 0)
        return ODK_E_IO;
    struct {
        struct nlmsghdr h;
        struct ifinfomsg i;
        char attrs[64];
    } req;
    memset(&req, 0, sizeof req);
    size_t name_len = strlen(t->name) + 1;
    struct rtattr *ra = (struct rtattr *)req.attrs;
    ra->rta_type = IFLA_IFNAME;
    ra->rta_len = (unsigned short)RTA_LENGTH(name_len);
    memcpy(RTA_DATA(ra), t->name, name_len);
    req.h.nlmsg_len = NLMSG_LENGTH(sizeof req.i) + RTA_ALIGN(ra->rta_len);
    req.h.nlmsg_type = RTM_GETLINK;
    req.h.nlmsg_flags = NLM_F_REQUEST;
    req.h.nlmsg_seq = 1;
    req.i.ifi_family = AF_UNSPEC;
    int st = ODK_E_IO;
    static char buf[16384];
    if (send(s, &req, req.h.nlmsg_len, 0) < 0)
        goto out;
    ssize_t got = recv(s, buf, sizeof buf, 0);
    if (got < 0)
        goto out;
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)got);
         h = NLMSG_NEXT(h, got)) {
        if (h->nlmsg_type == NLMSG_ERROR) {
            st = ODK_E_NOT_FOUND;
            break;
        }
        if (h->nlmsg_type != RTM_NEWLINK || h->nlmsg_len < NLMSG_LENGTH(sizeof(struct ifinfomsg)))
            continue;
        struct ifinfomsg *ifi = NLMSG_DATA(h);
        uint32_t promiscuity = 0, allmulti = 0;
        int len = (int)IFLA_PAYLOAD(h);
        for (struct rtattr *a = IFLA_RTA(ifi); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
            if (a->rta_type == IFLA_PROMISCUITY && RTA_PAYLOAD(a) >= 4)
                memcpy(&promiscuity, RTA_DATA(a), 4);
            else if (a->rta_type == IFLA_ALLMULTI && RTA_PAYLOAD(a) >= 4)
                memcpy(&allmulti, RTA_DATA(a), 4);
            else if (a->rta_type == IFLA_ADDRESS && RTA_PAYLOAD(a) == 6)
                memcpy(f->mac, RTA_DATA(a), 6);
        }
        /* The flags show only what was asked with `ip link`; the counts
         * also what packet sockets and bridges asked. */
        f->up = (ifi->ifi_flags & IFF_UP) != 0;
        f->promisc = (ifi->ifi_flags & IFF_PROMISC) || promiscuity > 0;
        f->allmulti = (ifi->ifi_flags & IFF_ALLMULTI) || allmulti > 0;
        st = ODK_OK;
        break;
    }
out:
    close(s);
    return st;
}

/* Parses "/proc/net/dev_mcast" of the current namespace for t->name's
 * link-layer multicast addresses ("index name users global address"). */
static void read_multicast(struct tap_if *t, struct net_filter *f)
{
    f->n_mc = 0;
    FILE *fp = fopen("/proc/thread-self/net/dev_mcast", "re");
    if (!fp)
        return;
    char line[256];
    while (fgets(line, sizeof line, fp)) {
        char name[IFNAMSIZ + 1], hex[64];
        int idx, users, global;
        if (sscanf(line, "%d %16s %d %d %63s", &idx, name, &users, &global, hex) != 5 ||
            strcmp(name, t->name) != 0 || strlen(hex) != 12)
            continue;
        if (f->n_mc == ODK_NET_MAX_MULTICAST) {
            f->allmulti = true; /* more than a filter holds: take all */
            continue;
        }
        uint8_t *m = f->mc[f->n_mc];
        if (sscanf(hex, "%2hhx%2hhx%2hhx%2hhx%2hhx%2hhx", &m[0], &m[1], &m[2], &m[3], &m[4],
                   &m[5]) == 6)
            f->n_mc++;
    }
    fclose(fp);
}

static int read_sys_here(struct tap_if *t, void *arg)
{
    struct net_filter *f = arg;
    int st = read_link(t, f);
    if (st == ODK_OK)
        read_multicast(t, f);
    return st;
}

static bool filter_same(const struct net_filter *a, const struct net_filter *b)
{
    return a->up == b->up && a->promisc == b->promisc && a->allmulti == b->allmulti &&
           memcmp(a->mac, b->mac, 6) == 0 && a->n_mc == b->n_mc &&
           memcmp(a->mc, b->mc, (size_t)a->n_mc * 6) == 0;
}

/* Reads what the system set on t; on a change, and when a driver has the
 * interface, writes its eventfd. */
static void refresh_sys(struct net *n, struct tap_if *t)
{
    static struct net_filter f;
    memset(&f, 0, sizeof f);
    if (in_dev_ns(n, t, read_sys_here, &f) < 0)
        return; /* gone with its namespace, or moving: the next event says */
    if (t->sys_read && filter_same(&f, &t->sys))
        return;
    bool first = !t->sys_read;
    t->sys = f;
    t->sys_read = true;
    if (!first || t->node_id)
        odk_info("net %s: %s%s%s, %u multicast address%s", t->name, f.up ? "up" : "down",
                 f.promisc ? ", promiscuous" : "", f.allmulti ? ", all-multicast" : "", f.n_mc,
                 f.n_mc == 1 ? "" : "es");
    uint64_t one = 1;
    if (t->node_id && write(t->ev, &one, sizeof one) < 0 && errno != EAGAIN)
        odk_warn("net %s: cannot tell the driver: %s", t->name, strerror(errno));
}

static void on_poll(struct odkd *d, void *ptr);

static void arm_poll(struct odkd *d)
{
    struct net *n = net_of(d);
    if (!n->poll && n->ifs)
        n->poll = loop_timer(d, POLL_MS, on_poll, NULL);
}

static void on_poll(struct odkd *d, void *ptr)
{
    (void)ptr;
    struct net *n = net_of(d);
    n->poll = 0;
    for (struct tap_if *t = n->ifs; t; t = t->next)
        if (t->node_id)
            refresh_sys(n, t);
    arm_poll(d);
}

/* Link events: the interface whose name an event carries is read again
 * (a name may repeat across namespaces; reading one more is harmless). */
static void on_netlink(struct odkd *d, void *ptr, uint32_t events)
{
    (void)ptr;
    (void)events;
    struct net *n = net_of(d);
    static char buf[32768];
    for (;;) {
        ssize_t got = recv(n->nl, buf, sizeof buf, MSG_DONTWAIT);
        if (got < 0) {
            if (errno == ENOBUFS) { /* events were lost: read everything */
                for (struct tap_if *t = n->ifs; t; t = t->next)
                    refresh_sys(n, t);
                continue;
            }
            return;
        }
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)got);
             h = NLMSG_NEXT(h, got)) {
            if ((h->nlmsg_type != RTM_NEWLINK && h->nlmsg_type != RTM_DELLINK) ||
                h->nlmsg_len < NLMSG_LENGTH(sizeof(struct ifinfomsg)))
                continue;
            const char *name = NULL;
            int len = (int)IFLA_PAYLOAD(h);
            for (struct rtattr *a = IFLA_RTA((struct ifinfomsg *)NLMSG_DATA(h)); RTA_OK(a, len);
                 a = RTA_NEXT(a, len))
                if (a->rta_type == IFLA_IFNAME && RTA_PAYLOAD(a) > 0 &&
                    memchr(RTA_DATA(a), 0, RTA_PAYLOAD(a)))
                    name = RTA_DATA(a);
            if (!name)
                continue;
            for (struct tap_if *t = n->ifs; t; t = t->next) {
                refresh_name(t);
                if (strcmp(t->name, name) == 0)
                    refresh_sys(n, t);
            }
        }
    }
}

/* Starts watching, when the first interface is made.  Without netlink the
 * poll still sees every change, only later. */
static void start_watching(struct odkd *d)
{
    struct net *n = net_of(d);
    if (n->watching)
        return;
    n->watching = true;
    n->self_ns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    n->nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
    int on = 1;
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK, .nl_groups = RTMGRP_LINK};
    if (n->nl < 0 || setsockopt(n->nl, SOL_NETLINK, NETLINK_LISTEN_ALL_NSID, &on, sizeof on) < 0 ||
        bind(n->nl, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        loop_add(d, &n->nl_w, n->nl, EPOLLIN, on_netlink, NULL) < 0) {
        odk_warn("net: no link events (%s): the system's changes reach drivers every %d ms",
                 strerror(errno), POLL_MS);
        if (n->nl >= 0)
            close(n->nl);
        n->nl = -1;
    }
}

/* The offloads the driver declared (ODK_NET_OFFLOAD_*), offered to the
 * kernel: it then hands the queue partial checksums and 64 KiB TCP frames,
 * and `ethtool -k` shows them.  Set on every hand-over, so a driver that
 * restarts without them stops getting such frames. */
static int set_offloads(struct tap_if *t, int64_t offloads, char *err, size_t len)
{
    unsigned long f = 0;
    if (offloads & ODK_NET_OFFLOAD_CSUM)
        f |= TUN_F_CSUM;
    if (offloads & ODK_NET_OFFLOAD_TSO4)
        f |= TUN_F_TSO4 | TUN_F_TSO_ECN;
    if (offloads & ODK_NET_OFFLOAD_TSO6)
        f |= TUN_F_TSO6 | TUN_F_TSO_ECN;
    if (ioctl(t->fd, TUNSETOFFLOAD, f) < 0) {
        snprintf(err, len, "%s: cannot set offloads %#lx: %s", t->name, f, strerror(errno));
        return ODK_E_IO;
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
    int64_t offloads = odk_dict_get_int(r->args, "offloads", 0);
    const int64_t known =
        ODK_NET_OFFLOAD_CSUM | ODK_NET_OFFLOAD_TSO4 | ODK_NET_OFFLOAD_TSO6 | ODK_NET_OFFLOAD_RX;
    if (!good_base(base) || !mac || mtu < 68 || mtu > ODK_NET_MAX_MTU || offloads < 0 ||
        (offloads & ~known) ||
        ((offloads & (ODK_NET_OFFLOAD_TSO4 | ODK_NET_OFFLOAD_TSO6)) &&
         !(offloads & ODK_NET_OFFLOAD_CSUM))) {
        snprintf(r->err, sizeof r->err,
                 "net-tap: base name '%s' must be 1-%d of a-z, 0-9, '_', '-'; the MAC a unicast "
                 "address; the MTU %d..%u; offloads known bits, TSO with CSUM",
                 base, BASE_MAX, 68, ODK_NET_MAX_MTU);
        return ODK_E_INVALID;
    }
    start_watching(r->d);
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
        t->ev = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        int st = t->ev < 0 ? ODK_E_IO : open_tap(t, r->err, sizeof r->err);
        if (st < 0) {
            if (t->ev >= 0)
                close(t->ev);
            else
                snprintf(r->err, sizeof r->err, "eventfd: %s", strerror(errno));
            free(t);
            return st;
        }
        set_carrier(t, false);
        t->next = n->ifs;
        n->ifs = t;
    }
    int st = set_mac(t, mac, r->err, sizeof r->err);
    if (st == ODK_OK)
        st = set_offloads(t, offloads, r->err, sizeof r->err);
    /* A new interface gets the driver's MTU; one handed over again keeps
     * the MTU the system has set meanwhile (`ip link set mtu` survives a
     * driver's restart). */
    if (st == ODK_OK && fresh && set_mtu(n, t, (uint32_t)mtu, r->err, sizeof r->err) < 0) {
        odk_warn("net %s: MTU %lld not set (%s)", t->name, (long long)mtu, r->err);
        r->err[0] = '\0';
    }
    int fd = st == ODK_OK ? fcntl(t->fd, F_DUPFD_CLOEXEC, 3) : -1;
    int ev = fd >= 0 ? fcntl(t->ev, F_DUPFD_CLOEXEC, 3) : -1;
    if (st == ODK_OK && ev < 0) {
        snprintf(r->err, sizeof r->err, "%s: cannot duplicate the queue: %s", t->name,
                 strerror(errno));
        if (fd >= 0)
            close(fd);
        st = ODK_E_IO;
    }
    if (st < 0)
        return st; /* a fresh interface stays with the provider; the next try reuses it */
    t->node_id = node->id;
    refresh_sys(n, t);
    arm_poll(r->d);
    char macs[18];
    format_mac(mac, macs);
    set_prop_str(node, "BSD Name", t->name);
    set_prop_str(node, "IOMACAddress", macs);
    set_prop_int(node, "IOMaxTransferUnit", mtu);
    odk_dict_set_bool(node->props, "IOLinkStatus", false);
    set_prop_int(node, "IOLinkSpeed", 0);
    set_prop_int(node, "Offloads", offloads);
    struct msg m = msg_begin();
    msg_str(&m, "name", t->name);
    st = msg_finish(&m, &r->out);
    if (st < 0) {
        close(fd);
        close(ev);
        return st;
    }
    r->fds[0] = fd;
    r->fds[1] = ev;
    r->n_fds = 2;
    odk_info("net %s: %s for node %llu (provider %llu), MAC %s", t->name,
             fresh ? "created" : "handed over again", (unsigned long long)node->id,
             (unsigned long long)provider, macs);
    return ODK_OK;
}

/* The interface of the request's node (one of the asking host's own), or
 * NULL with *st and r->err saying why. */
static struct tap_if *request_if(struct host_request *r, reg_node **node, int *st)
{
    *node = hostreq_own_node(r);
    if (!*node) {
        *st = ODK_E_ACCESS;
        return NULL;
    }
    struct tap_if *t = find_by_node(net_of(r->d), (*node)->id);
    if (!t) {
        snprintf(r->err, sizeof r->err, "node %llu has no network interface",
                 (unsigned long long)(*node)->id);
        *st = ODK_E_NOT_FOUND;
    }
    return t;
}

/* net-set {"node", "link"?, "speed"?, "mac"?, "mtu"?}: what the driver
 * reports, applied to its interface and noted on its node. */
static int op_net_set(struct host_request *r)
{
    reg_node *node;
    int st;
    struct tap_if *t = request_if(r, &node, &st);
    if (!t)
        return st;
    struct net *n = net_of(r->d);
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
        st = set_mac(t, mac, r->err, sizeof r->err);
        if (st < 0)
            return st;
        char macs[18];
        format_mac(mac, macs);
        set_prop_str(node, "IOMACAddress", macs);
    }
    if (mtu) {
        if (set_mtu(n, t, (uint32_t)odk_value_int(mtu), r->err, sizeof r->err) < 0) {
            odk_warn("net %s: MTU %lld only recorded (%s)", t->name, (long long)odk_value_int(mtu),
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

/* net-state {"node"}: what the system set on the driver's interface, read
 * now (net_filter_to_value's dictionary). */
static int op_net_state(struct host_request *r)
{
    reg_node *node;
    int st;
    struct tap_if *t = request_if(r, &node, &st);
    if (!t)
        return st;
    struct net *n = net_of(r->d);
    refresh_sys(n, t);
    return net_filter_to_value(&t->sys, &r->out);
}

static void free_if(struct tap_if *t)
{
    if (t->fd >= 0)
        close(t->fd);
    if (t->ev >= 0)
        close(t->ev);
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
    if (n->watching) {
        if (n->nl >= 0) {
            loop_del(d, &n->nl_w);
            close(n->nl);
        }
        if (n->self_ns >= 0)
            close(n->self_ns);
        loop_timer_cancel(d, n->poll);
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
    {"net-state", op_net_state},
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
