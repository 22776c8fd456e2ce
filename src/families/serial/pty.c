/* SPDX-License-Identifier: MIT */
/* The serial family, odkd side: a terminal per port, with DEVDIR/tty.NAME
 * and DEVDIR/cu.NAME links that go away with the port.  The terminal is a
 * pseudo-terminal, or a CUSE character device /dev/odk-NAME (kind "cuse",
 * or "auto" where /dev/cuse opens).  odkd opens the pty or /dev/cuse and
 * hands the descriptors to the driver host, so the host itself never needs
 * to open /dev; the host runs the CUSE session (cuse.c). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "daemon/core/msg.h"
#include "daemon/front/hostreq.h"
#include "daemon/odkd.h"
#include "odk/log.h"
#include "odk/status.h"

#define NAME_MAX_LEN 64

struct pty_link {
    uint64_t node_id;
    char *tty, *cu; /* link paths */
    struct pty_link *next;
};

struct serial {
    char *dev_dir; /* where tty./cu. links go (--dev-dir, default /dev) */
    struct pty_link *links;
};

static const struct odkd_module serial_family;

static struct serial *serial_of(struct odkd *d)
{
    return module_state(d, &serial_family);
}

static bool good_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > NAME_MAX_LEN || s[0] == '.')
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-' || *s == '.'))
            return false;
    return true;
}

static bool ours(struct serial *s, const char *path)
{
    for (struct pty_link *l = s->links; l; l = l->next)
        if (strcmp(l->tty, path) == 0 || strcmp(l->cu, path) == 0)
            return true;
    return false;
}

/* Makes link -> target, replacing a stale symlink left by an earlier odkd. */
static int make_link(struct serial *s, const char *target, const char *link, char *err,
                     size_t err_len)
{
    struct stat st;
    if (lstat(link, &st) == 0) {
        if (ours(s, link) || !S_ISLNK(st.st_mode)) {
            snprintf(err, err_len, "%s already exists (another port has that name)", link);
            return ODK_E_EXISTS;
        }
        unlink(link);
    }
    if (symlink(target, link) < 0) {
        snprintf(err, err_len, "cannot create %s: %s", link, strerror(errno));
        return ODK_E_IO;
    }
    return ODK_OK;
}

/* Links DEVDIR/tty.NAME and DEVDIR/cu.NAME to target, for node. */
static int add_links(struct serial *s, reg_node *node, const char *target, const char *tty,
                     const char *cu, char *err, size_t err_len)
{
    int st = make_link(s, target, tty, err, err_len);
    if (st == ODK_OK && (st = make_link(s, target, cu, err, err_len)) < 0)
        unlink(tty);
    struct pty_link *l = st == ODK_OK ? calloc(1, sizeof *l) : NULL;
    if (st == ODK_OK && (!l || !(l->tty = strdup(tty)) || !(l->cu = strdup(cu)))) {
        st = ODK_E_NOMEM;
        unlink(tty);
        unlink(cu);
        if (l)
            free(l->tty);
        free(l);
    }
    if (st < 0)
        return st;
    l->node_id = node->id;
    l->next = s->links;
    s->links = l;
    return ODK_OK;
}

/* The reply {"name", "tty", "cu", "kind"} and the node's properties. */
static int describe(reg_node *node, const char *name, const char *tty, const char *cu,
                    const char *kind, const char *dev_key, const char *dev, odk_value **info,
                    char *err, size_t err_len)
{
    struct msg m = msg_begin();
    msg_str(&m, "name", name);
    msg_str(&m, "tty", tty);
    msg_str(&m, "cu", cu);
    msg_str(&m, "kind", kind);
    int st = msg_finish(&m, info);
    const char *keys[] = {"IOTTYDevice", "IODialinDevice", "IOCalloutDevice", "OdkSerialKind",
                          dev_key};
    const char *vals[] = {name, tty, cu, kind, dev};
    for (size_t i = 0; i < 5 && st == ODK_OK; i++)
        st = odk_dict_set_string(node->props, keys[i], vals[i]);
    if (st < 0) {
        snprintf(err, err_len, "out of memory describing serial port %s", name);
        odk_value_free(*info);
        *info = NULL;
    }
    return st;
}

/* Opens the port's terminal; returns the number of descriptors in fds (2
 * for a pty: master and slave; 1 for CUSE: /dev/cuse) or an error. */
static int pty_open(struct serial *s, reg_node *node, const char *base, const char *suffix,
                    const char *kind, int fds[2], odk_value **info, char *err, size_t err_len)
{
    if (!good_name(base) || !good_name(suffix)) {
        snprintf(err, err_len,
                 "IOTTYBaseName '%s' and IOTTYSuffix '%s' must be 1-%d letters, digits, '_', '-' "
                 "or '.'",
                 base, suffix, NAME_MAX_LEN);
        return ODK_E_INVALID;
    }
    char name[2 * NAME_MAX_LEN + 2], tty[4096], cu[4096];
    snprintf(name, sizeof name, "%s-%s", base, suffix);
    snprintf(tty, sizeof tty, "%s/tty.%s", s->dev_dir, name);
    snprintf(cu, sizeof cu, "%s/cu.%s", s->dev_dir, name);

    /* CUSE: the device node appears once the host answered CUSE_INIT; the
     * links point at where devtmpfs puts it. */
    char devname[2 * NAME_MAX_LEN + 8], cuse_node[sizeof devname + 8];
    int cuse = -1;
    if (strcmp(kind, "cuse") == 0 || strcmp(kind, "auto") == 0) {
        cuse = open("/dev/cuse", O_RDWR | O_CLOEXEC);
        if (cuse < 0 && strcmp(kind, "cuse") == 0) {
            snprintf(err, err_len, "kind cuse: cannot open /dev/cuse: %s (modprobe cuse?)",
                     strerror(errno));
            return errno == EACCES || errno == EPERM ? ODK_E_ACCESS : ODK_E_UNSUPPORTED;
        }
    }
    snprintf(devname, sizeof devname, "odk-%s", name);
    snprintf(cuse_node, sizeof cuse_node, "/dev/%s", devname);
    if (cuse >= 0) {
        int st = add_links(s, node, cuse_node, tty, cu, err, err_len);
        if (st == ODK_OK)
            st = describe(node, name, tty, cu, "cuse", "OdkCharacterDevice", cuse_node, info,
                          err, err_len);
        if (st == ODK_OK && (st = odk_dict_set_string(*info, "devname", devname)) < 0) {
            odk_value_free(*info);
            *info = NULL;
        }
        if (st < 0) {
            close(cuse);
            return st;
        }
        fds[0] = cuse;
        odk_info("serial port %s: %s -> %s (CUSE)", name, tty, cuse_node);
        return 1; /* one descriptor */
    }

    int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0) {
        snprintf(err, err_len, "cannot open a pseudo-terminal: %s", strerror(errno));
        if (master >= 0)
            close(master);
        return ODK_E_IO;
    }
    char *slave_path = ptsname(master);
    int slave = slave_path ? open(slave_path, O_RDWR | O_NOCTTY | O_CLOEXEC) : -1;
    if (slave < 0) {
        snprintf(err, err_len, "cannot open %s: %s", slave_path ? slave_path : "the pty slave",
                 strerror(errno));
        close(master);
        return ODK_E_IO;
    }
    /* A serial line starts raw at 9600 baud, like a fresh UART; EXTPROC
     * makes the kernel tell the master about every settings change. */
    struct termios t;
    tcgetattr(slave, &t);
    cfmakeraw(&t);
    cfsetspeed(&t, B9600);
    t.c_lflag |= EXTPROC;
    tcsetattr(slave, TCSANOW, &t);

    int st = add_links(s, node, slave_path, tty, cu, err, err_len);
    if (st == ODK_OK)
        st = describe(node, name, tty, cu, "pty", "OdkPseudoTerminal", slave_path, info, err,
                      err_len);
    if (st < 0) {
        close(master);
        close(slave);
        return st; /* links already made go with the node (node_gone) */
    }
    fds[0] = master;
    fds[1] = slave;
    odk_info("serial port %s: %s -> %s", name, tty, slave_path);
    return 2; /* two descriptors */
}

static void free_link(struct pty_link *l)
{
    unlink(l->tty);
    unlink(l->cu);
    free(l->tty);
    free(l->cu);
    free(l);
}

/* ---- the module --------------------------------------------------------- */

/* serial-pty {"node", "base", "suffix", "kind"}: a terminal for a port
 * node the driver published.  Kind "pty" (the default): the reply carries
 * {"name", "tty", "cu", "kind": "pty"} and the master and a slave
 * descriptor.  Kind "cuse", or "auto" where /dev/cuse opens: {..., "kind":
 * "cuse", "devname"} and a /dev/cuse descriptor. */
static int op_serial_pty(struct host_request *r)
{
    reg_node *n = hostreq_own_node(r);
    if (!n)
        return ODK_E_ACCESS;
    const char *kind = odk_dict_get_string(r->args, "kind", "pty");
    if (strcmp(kind, "pty") != 0 && strcmp(kind, "cuse") != 0 && strcmp(kind, "auto") != 0) {
        snprintf(r->err, sizeof r->err, "serial kind '%s': must be pty, cuse or auto", kind);
        return ODK_E_INVALID;
    }
    int st = pty_open(serial_of(r->d), n, odk_dict_get_string(r->args, "base", "serial"),
                      odk_dict_get_string(r->args, "suffix", "0"), kind, r->fds, &r->out, r->err,
                      sizeof r->err);
    if (st > 0) {
        r->n_fds = (size_t)st;
        st = ODK_OK;
    }
    return st;
}

static void node_gone(struct odkd *d, reg_node *n)
{
    struct serial *s = serial_of(d);
    for (struct pty_link **p = &s->links; *p;) {
        struct pty_link *l = *p;
        if (l->node_id != n->id) {
            p = &l->next;
            continue;
        }
        *p = l->next;
        free_link(l);
    }
}

static int option(struct odkd *d, const char *name, const char *value, char *err, size_t len)
{
    (void)name;
    struct serial *s = serial_of(d);
    char *dir = realpath(value, NULL);
    if (!dir) {
        snprintf(err, len, "--dev-dir %s: %s", value, strerror(errno));
        return ODK_E_INVALID;
    }
    free(s->dev_dir);
    s->dev_dir = dir;
    return ODK_OK;
}

static int init(struct odkd *d)
{
    struct serial *s = serial_of(d);
    if (!s->dev_dir && !(s->dev_dir = strdup("/dev")))
        return ODK_E_NOMEM;
    return ODK_OK;
}

static void fini(struct odkd *d)
{
    struct serial *s = serial_of(d);
    while (s->links) {
        struct pty_link *l = s->links;
        s->links = l->next;
        free_link(l);
    }
    free(s->dev_dir);
    s->dev_dir = NULL;
}

static const struct class_def classes[] = {{"IOUserSerial", "IOService"}, {NULL, NULL}};
static const struct module_option options[] = {
    {"dev-dir", "DIR", "where serial ports get their tty./cu. links (default /dev)"},
    {NULL, NULL, NULL},
};
/* The op that creates this family's resource: entitlements decide. */
static const struct resource_op resource_ops[] = {{"serial-pty", "serial"}, {NULL, NULL}};
static const struct host_op host_ops[] = {{"serial-pty", op_serial_pty}, {NULL, NULL}};

static const struct odkd_module serial_family = {
    .name = "serial",
    .kind = "family",
    .state_size = sizeof(struct serial),
    .classes = classes,
    .options = options,
    .host_ops = host_ops,
    .resource_ops = resource_ops,
    .option = option,
    .init = init,
    .node_gone = node_gone,
    .fini = fini,
};
ODKD_MODULE(serial_family)
