/* SPDX-License-Identifier: MIT */
/* storage.c — the storage family inside odkd: the simulated HBA's device
 * models and the disks' NBD export processes.  odkd starts both kinds of
 * process and hands out their descriptors; it is never on the data path.
 *
 * - `odkctl storage plug N [JSON]` starts odk-storage-model (one process
 *   per HBA, its disks in sparse files under STATE/storage/hba-P/) with a
 *   SOCK_SEQPACKET connection on its fd 3, and adds an OdkStorageHBA node
 *   under the OdkStorageBus node.  A controller driver matched to it asks
 *   for `storage-hba-open`: odkd makes a socket pair, gives one end to the
 *   model and the other to the driver, which then programs the model
 *   directly (sim_hba.c).  `storage-fault` passes a fault to the model.
 * - A driver's LUN with an export asks for `storage-export`: odkd starts
 *   (once per provider and export name) odk-nbd-export listening on
 *   STATE/storage/NAME.sock, and hands the driver a fresh stream socket
 *   to it.  The export process belongs to odkd, not to the driver: when the
 *   driver crashes only its end closes, the export fails the requests in
 *   flight and waits for the restarted driver's `storage-export`.  When
 *   the provider node goes (the HBA is unplugged), odkd ends the export:
 *   its clients are told and disconnected. */
#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "buses/storage_sim/hba_wire.h"
#include "daemon/bookkeeping/instance.h"
#include "daemon/core/loop.h"
#include "daemon/core/module.h"
#include "daemon/core/msg.h"
#include "daemon/core/registry.h"
#include "daemon/front/hostreq.h"
#include "daemon/front/requests.h"
#include "daemon/bookkeeping/host.h"
#include "daemon/odkd.h"
#include "daemon/policy/manager.h"
#include "odk/log.h"
#include "odk/status.h"

#define MAX_DISKS HBA_MAX_SLOTS
#define MAX_DISK_MB (1u << 20) /* 1 TiB per simulated disk (sparse) */
#define EXPORT_NAME_MAX 64

struct hba {
    uint64_t node;
    unsigned port;
    pid_t pid;
    int fd;
    char *dir;
    struct hba *next;
};

struct export
{
    uint64_t provider;
    char name[EXPORT_NAME_MAX + 1];
    char *path;
    pid_t pid;
    int fd;
    uint16_t tcp_port; /* its loopback TCP listener's, 0 when none */
    struct export *next;
};

/* A LUN's door for peripheral drivers: odkd keeps one end, the
 * controller's host serves the other (peripheral.c). */
struct door {
    uint64_t node;
    int fd;     /* odkd's end */
    int ctl_fd; /* the controller's end until it takes it, then -1 */
    struct door *next;
};

struct storage {
    struct door *doors;
    reg_node *bus;
    struct hba *hbas;
    struct export *exports;
    unsigned ports;
};

static const struct odkd_module storage_family;

static struct storage *storage_of(struct odkd *d)
{
    return module_state(d, &storage_family);
}

static int send_fd(int sock, const void *msg, size_t len, int fd)
{
    char cbuf[CMSG_SPACE(sizeof(int))] = {0};
    struct iovec iov = {(void *)msg, len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (fd >= 0) {
        mh.msg_control = cbuf;
        mh.msg_controllen = sizeof cbuf;
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd, sizeof fd);
    }
    return sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 ? -1 : 0;
}

static void rm_tree(const char *dir)
{
    /* Only the files the model made: disk-*.img. */
    for (unsigned i = 0; i < MAX_DISKS; i++)
        for (unsigned g = 0; g < 64; g++) {
            char p[4096];
            snprintf(p, sizeof p, "%s/disk-%u.%u.img", dir, i, g);
            unlink(p);
        }
    rmdir(dir);
}

/* ---- HBAs ----------------------------------------------------------------- */

static struct hba *hba_by_node(struct storage *s, uint64_t node)
{
    for (struct hba *h = s->hbas; h; h = h->next)
        if (h->node == node)
            return h;
    return NULL;
}

static void hba_destroy(struct storage *s, struct hba *h)
{
    for (struct hba **pp = &s->hbas; *pp; pp = &(*pp)->next)
        if (*pp == h) {
            *pp = h->next;
            break;
        }
    if (h->fd >= 0)
        close(h->fd);
    if (h->pid > 0)
        kill(h->pid, SIGKILL); /* reaped by odkd's SIGCHLD handler */
    if (h->dir)
        rm_tree(h->dir);
    free(h->dir);
    free(h);
}

static int op_plug(struct client_request *r)
{
    struct storage *s = storage_of(r->d);
    int64_t disks = odk_dict_get_int(r->args, "disks", 0);
    int64_t size_mb = odk_dict_get_int(r->args, "size_mb", 64);
    int64_t block = odk_dict_get_int(r->args, "block_size", 512);
    const odk_value *props = odk_dict_get(r->args, "properties");
    const char *backing = odk_dict_get_string(r->args, "backing", "file");
    if (strcmp(backing, "file") != 0 && strcmp(backing, "memory") != 0) {
        snprintf(r->err, sizeof r->err,
                 "storage-plug: 'backing' is \"file\" (sparse files, the default) or "
                 "\"memory\" (memfds), not \"%.64s\"",
                 backing);
        return ODK_E_INVALID;
    }
    if (disks < 1 || disks > MAX_DISKS || size_mb < 1 || size_mb > MAX_DISK_MB ||
        (block != 512 && block != 4096)) {
        snprintf(r->err, sizeof r->err,
                 "storage-plug needs 1..%u disks of 1..%u MiB, block size 512 or 4096", MAX_DISKS,
                 MAX_DISK_MB);
        return ODK_E_INVALID;
    }
    if (props && odk_value_type(props) != ODK_TYPE_DICT) {
        snprintf(r->err, sizeof r->err, "'properties' must be a dictionary");
        return ODK_E_INVALID;
    }
    struct hba *h = calloc(1, sizeof *h);
    if (!h)
        return ODK_E_NOMEM;
    h->fd = -1;
    h->port = ++s->ports;
    char base[4096];
    snprintf(base, sizeof base, "%s/storage", r->d->state_dir);
    mkdir(base, 0700);
    if (asprintf(&h->dir, "%s/hba-%u", base, h->port) < 0) {
        h->dir = NULL;
        free(h);
        return ODK_E_NOMEM;
    }
    mkdir(h->dir, 0700);
    char *path = host_sibling_path(r->d, "ODK_STORAGE_MODEL", "odk-storage-model");
    char nd[16], sz[32], bs[16];
    snprintf(nd, sizeof nd, "%d", (int)disks);
    snprintf(sz, sizeof sz, "%lld", (long long)size_mb);
    snprintf(bs, sizeof bs, "%d", (int)block);
    char *argv[] = {path, h->dir, nd, sz, bs, (char *)backing, NULL};
    h->pid = path ? host_spawn_with_channel(path, argv, -1, &h->fd, r->err, sizeof r->err) : -1;
    free(path);
    if (h->pid < 0) {
        rmdir(h->dir);
        free(h->dir);
        free(h);
        return ODK_E_IO;
    }
    struct msg m = msg_begin();
    char name[32];
    snprintf(name, sizeof name, "hba-%u", h->port);
    msg_str(&m, "IOName", name);
    msg_int(&m, "OdkStorageSlots", disks);
    msg_int(&m, "OdkStorageDiskSizeMB", size_mb);
    msg_int(&m, "OdkStorageBlockSize", block);
    msg_str(&m, "OdkStorageBacking", backing);
    msg_int(&m, "OdkStorageModelPID", h->pid);
    odk_value *v = NULL;
    int st = msg_finish(&m, &v);
    if (st == ODK_OK && props) {
        for (size_t i = 0; i < odk_dict_count(props); i++) {
            odk_dict_set(v, odk_dict_key_at(props, i), odk_value_copy(odk_dict_value_at(props, i)));
        }
    }
    reg_node *n = NULL;
    if (st == ODK_OK)
        st = registry_add(r->d->reg, s->bus, "OdkStorageHBA", v, &n);
    if (st < 0) {
        kill(h->pid, SIGKILL);
        close(h->fd);
        rmdir(h->dir);
        free(h->dir);
        free(h);
        return st;
    }
    h->node = n->id;
    h->next = s->hbas;
    s->hbas = h;
    manager_register(r->d, n);
    struct msg out = msg_begin();
    msg_int(&out, "node", (int64_t)n->id);
    return msg_finish(&out, &r->out);
}

static struct hba *request_hba(struct client_request *r)
{
    reg_node *n = request_node(r);
    struct hba *h = n ? hba_by_node(storage_of(r->d), n->id) : NULL;
    if (!h && n)
        snprintf(r->err, sizeof r->err, "node %llu is not a simulated HBA",
                 (unsigned long long)n->id);
    return h;
}

static int op_unplug(struct client_request *r)
{
    struct hba *h = request_hba(r);
    if (!h)
        return ODK_E_NOT_FOUND;
    reg_node *n = registry_find(r->d->reg, h->node);
    if (n->state == REG_TERMINATING) {
        snprintf(r->err, sizeof r->err, "node %llu is already being unplugged",
                 (unsigned long long)n->id);
        return ODK_E_STATE;
    }
    manager_remove_tree(r->d, n, NULL, NULL);
    return ODK_OK;
}

static int op_fault(struct client_request *r)
{
    static const char *const names[] = {"",      "medium-error", "not-ready", "remove",  "insert",
                                        "clear", "swallow",      "hang",      "no-abort"};
    struct hba *h = request_hba(r);
    if (!h)
        return ODK_E_NOT_FOUND;
    const char *fault = odk_dict_get_string(r->args, "fault", "");
    struct hba_ctl c = {.type = HBA_CTL_FAULT};
    for (uint32_t i = 1; i < sizeof names / sizeof *names; i++)
        if (strcmp(fault, names[i]) == 0)
            c.fault = i;
    int64_t slot = odk_dict_get_int(r->args, "slot", -1);
    if (!c.fault || slot < 0 || slot >= MAX_DISKS) {
        snprintf(r->err, sizeof r->err,
                 "storage-fault needs a slot and a fault: medium-error, not-ready, remove, insert, "
                 "swallow, hang, no-abort, clear");
        return ODK_E_INVALID;
    }
    c.slot = (uint32_t)slot;
    c.lba = (uint64_t)odk_dict_get_int(r->args, "lba", 0);
    c.blocks = (uint64_t)odk_dict_get_int(r->args, "blocks", 1);
    if (send_fd(h->fd, &c, sizeof c, -1) < 0) {
        snprintf(r->err, sizeof r->err, "the HBA model does not answer: %s", strerror(errno));
        return ODK_E_IO;
    }
    return ODK_OK;
}

static int op_list(struct client_request *r)
{
    struct storage *s = storage_of(r->d);
    odk_value *arr = odk_value_new_array();
    for (struct export *e = s->exports; e && arr; e = e->next) {
        struct msg m = msg_begin();
        msg_str(&m, "name", e->name);
        msg_str(&m, "socket", e->path);
        msg_int(&m, "provider", (int64_t)e->provider);
        msg_int(&m, "pid", e->pid);
        if (e->tcp_port)
            msg_int(&m, "tcp_port", e->tcp_port);
        odk_value *v = msg_done(&m);
        if (v)
            odk_array_append(arr, v);
    }
    struct msg m = msg_begin();
    msg_take(&m, "exports", arr);
    return msg_finish(&m, &r->out);
}

static int op_hba_open(struct host_request *r)
{
    struct hba *h = hba_by_node(storage_of(r->d), r->in->provider_id);
    if (!h) {
        snprintf(r->err, sizeof r->err, "the driver's provider is not a simulated HBA");
        return ODK_E_ACCESS;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return ODK_E_IO;
    struct hba_ctl c = {.type = HBA_CTL_ATTACH};
    if (send_fd(h->fd, &c, sizeof c, sv[1]) < 0) {
        snprintf(r->err, sizeof r->err, "the HBA model does not answer: %s", strerror(errno));
        close(sv[0]);
        close(sv[1]);
        return ODK_E_GONE;
    }
    close(sv[1]);
    r->fds[0] = sv[0];
    r->n_fds = 1;
    return ODK_OK;
}

/* ---- exports ---------------------------------------------------------------- */

static void export_destroy(struct storage *s, struct export *e)
{
    for (struct export **pp = &s->exports; *pp; pp = &(*pp)->next)
        if (*pp == e) {
            *pp = e->next;
            break;
        }
    /* Closing fd 3 tells the export its disk is gone: it answers what is
     * in flight with ESHUTDOWN, disconnects its clients and exits. */
    if (e->fd >= 0)
        close(e->fd);
    free(e->path);
    free(e);
}

/* The export's socket, bound here so that it listens before the driver
 * publishes its URI, and handed to the export process as its fd 4. */
static int listen_unix(const char *path, char *err, size_t err_len)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        snprintf(err, err_len, "the export's socket path is too long for sun_path: %s", path);
        return -1;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    unlink(path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 64) < 0) {
        snprintf(err, err_len, "cannot listen on %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static bool name_ok(const char *n)
{
    if (!*n || strlen(n) > EXPORT_NAME_MAX)
        return false;
    for (const char *p = n; *p; p++)
        if (!(*p == '-' || *p == '_' || *p == '.' || (*p >= '0' && *p <= '9') ||
              (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
            return false;
    return *n != '.';
}

static int op_export(struct host_request *r)
{
    struct storage *s = storage_of(r->d);
    const char *name = odk_dict_get_string(r->args, "name", "");
    int64_t size = odk_dict_get_int(r->args, "size", 0);
    int64_t block = odk_dict_get_int(r->args, "block_size", 512);
    if (!name_ok(name) || size <= 0 || block <= 0 || block > 65536) {
        snprintf(r->err, sizeof r->err, "storage-export: bad name, size or block size");
        return ODK_E_INVALID;
    }
    uint64_t provider = r->in->provider_id;
    struct export *e = s->exports;
    while (e && !(e->provider == provider && strcmp(e->name, name) == 0))
        e = e->next;
    if (e && kill(e->pid, 0) < 0) {
        export_destroy(s, e);
        e = NULL;
    }
    if (!e) {
        e = calloc(1, sizeof *e);
        if (!e)
            return ODK_E_NOMEM;
        e->fd = -1;
        snprintf(e->name, sizeof e->name, "%s", name);
        e->provider = provider;
        char base[4096];
        snprintf(base, sizeof base, "%s/storage", r->d->state_dir);
        mkdir(base, 0700);
        if (asprintf(&e->path, "%s/%s.sock", base, name) < 0) {
            free(e);
            return ODK_E_NOMEM;
        }
        char *exe = host_sibling_path(r->d, "ODK_NBD_EXPORT", "odk-nbd-export");
        char sz[32], bs[16];
        snprintf(sz, sizeof sz, "%lld", (long long)size);
        snprintf(bs, sizeof bs, "%lld", (long long)block);
        char *argv[] = {exe, e->path, sz, bs, e->name, NULL};
        int lfd = listen_unix(e->path, r->err, sizeof r->err);
        e->pid = exe && lfd >= 0
                     ? host_spawn_with_channel(exe, argv, lfd, &e->fd, r->err, sizeof r->err)
                     : -1;
        free(exe);
        if (lfd >= 0)
            close(lfd);
        if (e->pid < 0) {
            unlink(e->path);
            free(e->path);
            free(e);
            return ODK_E_IO;
        }
        e->next = s->exports;
        s->exports = e;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return ODK_E_IO;
    /* Room for several maximum-size requests each way: fewer wake-ups on
     * the data path (the kernel caps it at wmem_max/rmem_max). */
    int buf = 8 << 20;
    for (int i = 0; i < 2; i++) {
        setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
        setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    }
    char one = 'a';
    if (send_fd(e->fd, &one, 1, sv[1]) < 0) {
        close(sv[0]);
        close(sv[1]);
        snprintf(r->err, sizeof r->err, "the export process does not answer");
        export_destroy(s, e);
        return ODK_E_GONE;
    }
    close(sv[1]);
    r->fds[0] = sv[0];
    r->n_fds = 1;
    struct msg m = msg_begin();
    msg_str(&m, "socket", e->path);
    char *uri = NULL;
    if (asprintf(&uri, "nbd+unix:///%s?socket=%s", e->name, e->path) < 0)
        uri = NULL;
    msg_str(&m, "uri", uri ? uri : "");
    free(uri);
    return msg_finish(&m, &r->out);
}

/* ---- peripheral drivers' doors ------------------------------------------------ */

/* A LUN node's door, made by whichever comes first: the controller's
 * storage-lun-door or a peripheral's storage-lun-open (a LUN node is
 * matched as soon as it is published, before its controller asks for the
 * door: connections wait in the socket until the controller serves it). */
static struct door *door_get(struct storage *s, uint64_t node)
{
    for (struct door *d = s->doors; d; d = d->next)
        if (d->node == node)
            return d;
    struct door *d = calloc(1, sizeof *d);
    int sv[2];
    if (!d || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        free(d);
        return NULL;
    }
    d->node = node;
    d->fd = sv[1];
    d->ctl_fd = sv[0];
    d->next = s->doors;
    s->doors = d;
    return d;
}

static struct door *door_find(struct storage *s, uint64_t node)
{
    for (struct door *d = s->doors; d; d = d->next)
        if (d->node == node)
            return d;
    return NULL;
}

static void door_destroy(struct storage *s, struct door *d)
{
    for (struct door **pp = &s->doors; *pp; pp = &(*pp)->next)
        if (*pp == d) {
            *pp = d->next;
            break;
        }
    close(d->fd);
    if (d->ctl_fd >= 0)
        close(d->ctl_fd);
    free(d);
}

/* The controller's host takes its end of a LUN node's door (once). */
static int op_lun_door(struct host_request *r)
{
    reg_node *n = hostreq_own_node(r);
    if (!n || !registry_class_is_a(r->d->reg, n->class_name, "OdkSCSILUN")) {
        snprintf(r->err, sizeof r->err, "storage-lun-door: not a LUN node of this driver");
        return ODK_E_ACCESS;
    }
    struct door *d = door_get(storage_of(r->d), n->id);
    if (!d)
        return ODK_E_NOMEM;
    if (d->ctl_fd < 0)
        return ODK_E_EXISTS;
    r->fds[0] = d->ctl_fd; /* odkd closes it after sending */
    r->n_fds = 1;
    d->ctl_fd = -1;
    return ODK_OK;
}

/* A peripheral driver matched to a LUN node opens it: a fresh socket pair,
 * one end through the door to the controller's host, the other back. */
static int op_lun_open(struct host_request *r)
{
    reg_node *n = registry_find(r->d->reg, r->in->provider_id);
    if (!n || !registry_class_is_a(r->d->reg, n->class_name, "OdkSCSILUN")) {
        snprintf(r->err, sizeof r->err, "storage-lun-open: the driver's provider is not a LUN");
        return ODK_E_NOT_FOUND;
    }
    struct door *d = door_get(storage_of(r->d), n->id);
    int sv[2];
    if (!d || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return ODK_E_NOMEM;
    char one = 'p';
    if (send_fd(d->fd, &one, 1, sv[1]) < 0) {
        snprintf(r->err, sizeof r->err, "the LUN's controller does not answer: %s",
                 strerror(errno));
        close(sv[0]);
        close(sv[1]);
        return ODK_E_GONE;
    }
    close(sv[1]);
    r->fds[0] = sv[0];
    r->n_fds = 1;
    return ODK_OK;
}

/* ---- the module --------------------------------------------------------------- */

static int init(struct odkd *d)
{
    struct storage *s = storage_of(d);
    struct msg m = msg_begin();
    msg_str(&m, "IOName", "storage-sim");
    odk_value *props;
    int st = msg_finish(&m, &props);
    if (st == ODK_OK)
        st = registry_add(d->reg, registry_root(d->reg), "OdkStorageBus", props, &s->bus);
    if (st == ODK_OK)
        s->bus->state = REG_REGISTERED;
    return st;
}

static void node_gone(struct odkd *d, reg_node *node)
{
    struct storage *s = storage_of(d);
    for (struct export *e = s->exports, *next; e; e = next) {
        next = e->next;
        if (e->provider == node->id) {
            odk_info("storage: export %s ends: its device is gone", e->name);
            export_destroy(s, e);
        }
    }
    struct door *dr = door_find(s, node->id);
    if (dr)
        door_destroy(s, dr);
    struct hba *h = hba_by_node(s, node->id);
    if (h)
        hba_destroy(s, h);
}

static void fini(struct odkd *d)
{
    struct storage *s = storage_of(d);
    while (s->exports)
        export_destroy(s, s->exports);
    while (s->doors)
        door_destroy(s, s->doors);
    while (s->hbas)
        hba_destroy(s, s->hbas);
}

/* The export also listens on 127.0.0.1:port (0: a free port), a listener
 * odkd binds, so a port taken or refused is the driver's error, and hands
 * to the export process.  Once per export: the restarted driver asking
 * again gets the same port. */
static int op_export_tcp(struct host_request *r)
{
    struct storage *s = storage_of(r->d);
    const char *name = odk_dict_get_string(r->args, "name", "");
    int64_t port = odk_dict_get_int(r->args, "port", -1);
    if (port != 0 && (port < 1024 || port > 65535)) {
        snprintf(r->err, sizeof r->err,
                 "port %lld: 0 (any free port) or 1024-65535",
                 (long long)port);
        return ODK_E_INVALID;
    }
    struct export *e = s->exports;
    while (e && !(e->provider == r->in->provider_id && strcmp(e->name, name) == 0))
        e = e->next;
    if (!e) {
        snprintf(r->err, sizeof r->err, "no export named \"%s\" of yours",
                 name);
        return ODK_E_NOT_FOUND;
    }
    if (e->tcp_port && port && port != e->tcp_port) {
        snprintf(r->err, sizeof r->err,
                 "%s already listens on 127.0.0.1:%u, not %lld", e->name,
                 e->tcp_port, (long long)port);
        return ODK_E_EXISTS;
    }
    if (!e->tcp_port) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int one = 1;
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof sa;
        if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
            bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 64) < 0 ||
            getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
            int err = errno;
            snprintf(r->err, sizeof r->err, "cannot listen on 127.0.0.1:%lld: %s",
                     (long long)port, strerror(err));
            if (fd >= 0)
                close(fd);
            return err == EADDRINUSE || err == EACCES ? ODK_E_BUSY : ODK_E_IO;
        }
        char t = 't';
        int st = send_fd(e->fd, &t, 1, fd);
        close(fd);
        if (st < 0) {
            snprintf(r->err, sizeof r->err, "the export process does not answer");
            return ODK_E_GONE;
        }
        e->tcp_port = ntohs(sa.sin_port);
    }
    struct msg m = msg_begin();
    msg_int(&m, "port", e->tcp_port);
    char *uri = NULL;
    if (asprintf(&uri, "nbd://127.0.0.1:%u/%s", e->tcp_port, e->name) < 0)
        uri = NULL;
    msg_str(&m, "uri", uri ? uri : "");
    free(uri);
    return msg_finish(&m, &r->out);
}

static const struct class_def classes[] = {
    {"OdkStorageBus", "IOService"},
    {"OdkStorageHBA", "IOService"},
    {"OdkSCSILUN", "IOService"},
    {"OdkBlockDisk", "IOService"},
    {NULL, NULL},
};

static const struct client_op client_ops[] = {
    {"storage-plug", op_plug, true},
    {"storage-unplug", op_unplug, true},
    {"storage-fault", op_fault, true},
    {"storage-list", op_list, false},
    {NULL, NULL, false},
};

/* The ops that create this family's resources: entitlements decide.  A
 * TCP listener is a resource of its own: any local user reaches it. */
static const struct resource_op resource_ops[] = {
    {"storage-export", "block"}, {"storage-export-tcp", "block-tcp"}, {NULL, NULL}};
static const struct host_op host_ops[] = {
    {"storage-hba-open", op_hba_open},
    {"storage-export", op_export},
    {"storage-export-tcp", op_export_tcp},
    {"storage-lun-door", op_lun_door},
    {"storage-lun-open", op_lun_open},
    {NULL, NULL},
};

static const struct odkd_module storage_family = {
    .name = "storage",
    .kind = "family",
    .state_size = sizeof(struct storage),
    .classes = classes,
    .client_ops = client_ops,
    .host_ops = host_ops,
    .resource_ops = resource_ops,
    .init = init,
    .node_gone = node_gone,
    .fini = fini,
};
ODKD_MODULE(storage_family)
