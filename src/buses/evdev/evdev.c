/* SPDX-License-Identifier: MIT */
/* The evdev bus: the machine's own input devices (/dev/input/event*) as
 * registry nodes, so a personality can match "the built-in keyboard"
 * (IOPropertyMatch {"OdkEvdevKeyboard": true, "OdkEvdevPhys": "isa0060/serio0/input0"}).
 * Off unless odkd runs with --evdev (tests here have no input devices;
 * the guest suite has).  Each event node found at start, and each that
 * appears later (inotify on the folder), becomes an OdkEvdevDevice with its
 * name, ids, phys, uniq and capabilities (libevdev reads them); a node that
 * goes takes its registry node and the drivers on it along.  On "evdev-open" from the driver whose provider
 * it is, odkd opens the node, grabs it (EVIOCGRAB: only that descriptor
 * sees its events) and hands the descriptor over; the grab ends when the
 * driver's host closes it or dies.
 *
 * odk's own virtual devices (uinput or uhid, phys "odk/..." or ending in
 * "/odk") are skipped, so a remapper never matches its own output. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libevdev/libevdev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "daemon/bookkeeping/instance.h"
#include "daemon/core/loop.h"
#include "daemon/core/msg.h"
#include "daemon/front/hostreq.h"
#include "daemon/odkd.h"
#include "daemon/policy/manager.h"
#include "odk/log.h"
#include "odk/status.h"

struct evdev {
    bool on;   /* --evdev */
    char *dir; /* --evdev-dir (default /dev/input) */
    reg_node *bus;
    int inotify; /* the folder's comings and goings, or -1 */
    struct watch inotify_w;
};

static const struct odkd_module evdev_bus;

static struct evdev *evdev_of(struct odkd *d)
{
    return module_state(d, &evdev_bus);
}

static int option(struct odkd *d, const char *name, const char *value, char *err, size_t len)
{
    struct evdev *e = evdev_of(d);
    if (strcmp(name, "evdev") == 0) {
        e->on = true;
        return ODK_OK;
    }
    free(e->dir);
    e->dir = strdup(value);
    e->on = true;
    if (!e->dir) {
        snprintf(err, len, "out of memory");
        return ODK_E_NOMEM;
    }
    return ODK_OK;
}

static bool ours(const char *phys)
{
    size_t n = phys ? strlen(phys) : 0;
    return n && (strncmp(phys, "odk/", 4) == 0 || (n >= 4 && strcmp(phys + n - 4, "/odk") == 0));
}

/* A keyboard has letters and Enter, as libinput and udev's input_id decide. */
static bool is_keyboard(const struct libevdev *ev)
{
    return libevdev_has_event_code(ev, EV_KEY, KEY_A) && libevdev_has_event_code(ev, EV_KEY, KEY_Z) &&
           libevdev_has_event_code(ev, EV_KEY, KEY_ENTER);
}

static reg_node *node_of_path(struct evdev *e, const char *path)
{
    for (size_t i = 0; e->bus && i < e->bus->n_children; i++) {
        reg_node *n = e->bus->children[i];
        if (n->state != REG_TERMINATING &&
            strcmp(odk_dict_get_string(n->props, "OdkEvdevPath", ""), path) == 0)
            return n;
    }
    return NULL;
}

static void plug(struct odkd *d, const char *path)
{
    struct evdev *e = evdev_of(d);
    if (node_of_path(e, path))
        return; /* seen already (a second inotify event for the same node) */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        odk_warn("evdev: %s: %s", path, strerror(errno));
        return;
    }
    struct libevdev *ev = NULL;
    int r = libevdev_new_from_fd(fd, &ev);
    if (r < 0) {
        odk_warn("evdev: %s: %s", path, strerror(-r));
        close(fd);
        return;
    }
    const char *phys = libevdev_get_phys(ev);
    if (ours(phys)) {
        libevdev_free(ev);
        close(fd);
        return;
    }
    struct msg m = msg_begin();
    const char *name = libevdev_get_name(ev);
    msg_str(&m, "IOName", name ? name : "input");
    msg_str(&m, "OdkEvdevPath", path);
    msg_str(&m, "OdkEvdevName", name ? name : "");
    msg_str(&m, "OdkEvdevPhys", phys ? phys : "");
    msg_str(&m, "OdkEvdevUniq", libevdev_get_uniq(ev) ? libevdev_get_uniq(ev) : "");
    msg_int(&m, "OdkEvdevBus", libevdev_get_id_bustype(ev));
    msg_int(&m, "OdkEvdevVendor", libevdev_get_id_vendor(ev));
    msg_int(&m, "OdkEvdevProduct", libevdev_get_id_product(ev));
    msg_int(&m, "OdkEvdevVersion", libevdev_get_id_version(ev));
    msg_bool(&m, "OdkEvdevKeyboard", is_keyboard(ev));
    msg_bool(&m, "OdkEvdevPointer", libevdev_has_event_code(ev, EV_REL, REL_X) &&
                                        libevdev_has_event_code(ev, EV_REL, REL_Y));
    odk_value *caps = odk_value_new_array();
    for (unsigned t = 1; t < EV_CNT; t++)
        if (libevdev_has_event_type(ev, t) && libevdev_event_type_get_name(t))
            odk_array_append(caps, odk_value_new_string(libevdev_event_type_get_name(t)));
    msg_take(&m, "OdkEvdevCapabilities", caps);
    libevdev_free(ev);
    close(fd);
    odk_value *props;
    reg_node *n;
    if (msg_finish(&m, &props) == ODK_OK &&
        registry_add(d->reg, e->bus, "OdkEvdevDevice", props, &n) == ODK_OK) {
        odk_info("evdev: %s \"%s\", node %llu", path, name ? name : "",
                 (unsigned long long)n->id);
        manager_register(d, n);
    }
}

static int init(struct odkd *d)
{
    struct evdev *e = evdev_of(d);
    e->inotify = -1;
    if (!e->on)
        return ODK_OK;
    struct msg m = msg_begin();
    msg_str(&m, "IOName", "evdev");
    odk_value *props;
    int st = msg_finish(&m, &props);
    if (st == ODK_OK)
        st = registry_add(d->reg, registry_root(d->reg), "OdkEvdevBus", props, &e->bus);
    if (st == ODK_OK)
        e->bus->state = REG_REGISTERED;
    return st;
}

static const char *dir_of(struct evdev *e)
{
    return e->dir ? e->dir : "/dev/input";
}

/* An event node came (created, or its permissions set by udev after it
 * was created) or went. */
static void on_inotify(struct odkd *d, void *ptr, uint32_t events)
{
    (void)ptr, (void)events;
    struct evdev *e = evdev_of(d);
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t len;
    while ((len = read(e->inotify, buf, sizeof buf)) > 0) {
        for (char *p = buf; p < buf + len;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            p += sizeof *ev + ev->len;
            if (!ev->len || strncmp(ev->name, "event", 5) != 0)
                continue;
            char path[512];
            snprintf(path, sizeof path, "%s/%s", dir_of(e), ev->name);
            if (ev->mask & (IN_DELETE | IN_MOVED_FROM)) {
                reg_node *n = node_of_path(e, path);
                if (n) {
                    odk_info("evdev: %s went, node %llu", path, (unsigned long long)n->id);
                    manager_remove_tree(d, n, NULL, NULL);
                }
            } else {
                plug(d, path);
            }
        }
    }
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strverscmp((*a)->d_name, (*b)->d_name);
}

static int start(struct odkd *d)
{
    struct evdev *e = evdev_of(d);
    if (!e->on)
        return ODK_OK;
    const char *dir = dir_of(e);
    /* Watched before the scan: a node made in between is seen twice at
     * worst (plug skips a path it has). */
    e->inotify = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (e->inotify < 0 ||
        inotify_add_watch(e->inotify, dir,
                          IN_CREATE | IN_ATTRIB | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM) < 0 ||
        loop_add(d, &e->inotify_w, e->inotify, EPOLLIN, on_inotify, NULL) < 0) {
        odk_warn("evdev: %s: no hotplug (%s)", dir, strerror(errno));
        if (e->inotify >= 0)
            close(e->inotify);
        e->inotify = -1;
    }
    struct dirent **names;
    int n = scandir(dir, &names, NULL, by_name);
    if (n < 0) {
        odk_warn("evdev: %s: %s", dir, strerror(errno));
        return ODK_OK; /* no input devices: an empty bus */
    }
    for (int i = 0; i < n; i++) {
        if (strncmp(names[i]->d_name, "event", 5) == 0) {
            char path[512];
            snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
            plug(d, path);
        }
        free(names[i]);
    }
    free(names);
    return ODK_OK;
}

/* {"node": N}, N the asking driver's provider: the node opened and
 * grabbed, its descriptor in the reply. */
static int op_evdev_open(struct host_request *r)
{
    uint64_t id = (uint64_t)odk_dict_get_int(r->args, "node", 0);
    reg_node *n = registry_find(r->d->reg, id);
    if (!n || id != r->in->provider_id || strcmp(n->class_name, "OdkEvdevDevice") != 0)
        return ODK_E_ACCESS;
    const char *path = odk_dict_get_string(n->props, "OdkEvdevPath", NULL);
    int fd = path ? open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC) : -1;
    if (fd < 0 && path)
        fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC); /* no LEDs then */
    if (fd < 0) {
        snprintf(r->err, sizeof r->err, "%s: %s", path ? path : "?", strerror(errno));
        return ODK_E_IO;
    }
    if (ioctl(fd, EVIOCGRAB, (void *)1) < 0) {
        snprintf(r->err, sizeof r->err, "EVIOCGRAB %s: %s", path, strerror(errno));
        close(fd);
        return errno == EBUSY ? ODK_E_BUSY : ODK_E_IO;
    }
    r->fds[0] = fd;
    r->n_fds = 1;
    struct msg m = msg_begin();
    msg_str(&m, "path", path);
    return msg_finish(&m, &r->out);
}

static void fini(struct odkd *d)
{
    struct evdev *e = evdev_of(d);
    if (e->inotify >= 0) {
        loop_del(d, &e->inotify_w);
        close(e->inotify);
    }
    free(e->dir);
}

static const struct class_def classes[] = {
    {"OdkEvdevBus", "IOService"}, {"OdkEvdevDevice", "IOService"}, {NULL, NULL}};
static const struct module_option options[] = {
    {"evdev", NULL, "publish the input devices of /dev/input (evdev), for drivers to take"},
    {"evdev-dir", "DIR", "the same from another folder of event nodes (implies --evdev)"},
    {NULL, NULL, NULL},
};
static const struct host_op host_ops[] = {{"evdev-open", op_evdev_open}, {NULL, NULL}};

static const struct odkd_module evdev_bus = {
    .name = "evdev",
    .kind = "bus",
    .state_size = sizeof(struct evdev),
    .classes = classes,
    .options = options,
    .host_ops = host_ops,
    .option = option,
    .init = init,
    .start = start,
    .fini = fini,
};
ODKD_MODULE(evdev_bus)
