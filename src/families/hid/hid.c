/* SPDX-License-Identifier: MIT */
/* The HID family, odkd side: the class IOHIDDevice, and the system's side
 * of each HID device a driver publishes.  On "hid-open" odkd opens
 * /dev/uhid (the kernel parses the reports: hidraw and evdev both appear)
 * or else /dev/uinput (the host translates events) and hands the
 * descriptor to the driver host, which needs no /dev access of its own.
 * Without either, the device is still read by apps through libodk. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "daemon/core/msg.h"
#include "daemon/front/hostreq.h"
#include "daemon/odkd.h"
#include "odk/log.h"
#include "odk/status.h"

enum backend { AUTO, UHID, UINPUT, NONE };

struct hid {
    enum backend backend; /* --hid-backend */
};

static const struct odkd_module hid_family;

static struct hid *hid_of(struct odkd *d)
{
    return module_state(d, &hid_family);
}

static int option(struct odkd *d, const char *name, const char *value, char *err, size_t len)
{
    (void)name;
    static const char *names[] = {"auto", "uhid", "uinput", "none"};
    for (int i = 0; i < 4; i++)
        if (strcmp(value, names[i]) == 0) {
            hid_of(d)->backend = (enum backend)i;
            return ODK_OK;
        }
    snprintf(err, len, "--hid-backend %s: expected auto, uhid, uinput or none", value);
    return ODK_E_INVALID;
}

static int open_dev(const char *path, int *fd)
{
    *fd = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK);
    return *fd < 0 ? -errno : 0;
}

/* {"node": N} for an IOHIDDevice node the driver published: replies
 * {"backend": "uhid" | "uinput" | "none"} with the device's descriptor
 * for the first two. */
static int op_hid_open(struct host_request *r)
{
    reg_node *n = hostreq_own_node(r);
    if (!n)
        return ODK_E_ACCESS;
    enum backend want = hid_of(r->d)->backend;
    const char *got = "none";
    int fd = -1, e = 0;
    if (want == AUTO || want == UHID) {
        e = open_dev("/dev/uhid", &fd);
        if (fd >= 0)
            got = "uhid";
    }
    if (fd < 0 && (want == AUTO || want == UINPUT)) {
        e = open_dev("/dev/uinput", &fd);
        if (fd >= 0)
            got = "uinput";
    }
    if (fd < 0 && want != AUTO && want != NONE) {
        snprintf(r->err, sizeof r->err, "--hid-backend %s: %s",
                 want == UHID ? "uhid" : "uinput", strerror(-e));
        return ODK_E_IO;
    }
    struct msg m = msg_begin();
    msg_str(&m, "backend", got);
    int st = msg_finish(&m, &r->out);
    if (st < 0) {
        if (fd >= 0)
            close(fd);
        return st;
    }
    if (fd >= 0) {
        r->fds[0] = fd;
        r->n_fds = 1;
    }
    return ODK_OK;
}

static const struct class_def classes[] = {{"IOHIDDevice", "IOService"},
                                           {"IOUserHIDDevice", "IOHIDDevice"},
                                           {NULL, NULL}};
static const struct module_option options[] = {
    {"hid-backend", "auto|uhid|uinput|none",
     "what HID devices become for the system (auto: uhid, else uinput, else only libodk)"},
    {NULL, NULL, NULL},
};
/* The op that creates this family's resource: entitlements decide. */
static const struct resource_op resource_ops[] = {{"hid-open", "hid"}, {NULL, NULL}};
static const struct host_op host_ops[] = {{"hid-open", op_hid_open}, {NULL, NULL}};

static const struct odkd_module hid_family = {
    .name = "hid",
    .kind = "family",
    .state_size = sizeof(struct hid),
    .classes = classes,
    .options = options,
    .host_ops = host_ops,
    .resource_ops = resource_ops,
    .option = option,
};
ODKD_MODULE(hid_family)
