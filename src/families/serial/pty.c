/* The serial family, odkd side: a pseudo-terminal per port, with
 * DEVDIR/tty.NAME and DEVDIR/cu.NAME links that go away with the port.
 * odkd opens the terminal and hands both ends to the driver host as file
 * descriptors, so the host itself never needs to open /dev. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "families/serial/pty.h"
#include "odk/log.h"
#include "odk/status.h"

#define NAME_MAX_LEN 64

struct pty_link {
    uint64_t node_id;
    char *tty, *cu; /* link paths */
    struct pty_link *next;
};

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

static bool ours(struct odkd *d, const char *path)
{
    for (struct pty_link *l = d->pty_links; l; l = l->next)
        if (strcmp(l->tty, path) == 0 || strcmp(l->cu, path) == 0)
            return true;
    return false;
}

/* Makes link -> target, replacing a stale symlink left by an earlier odkd. */
static int make_link(struct odkd *d, const char *target, const char *link, char *err,
                     size_t err_len)
{
    struct stat st;
    if (lstat(link, &st) == 0) {
        if (ours(d, link) || !S_ISLNK(st.st_mode)) {
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

int serial_pty_open(struct odkd *d, reg_node *node, const char *base, const char *suffix,
                    int fds[2], odk_value **info, char *err, size_t err_len)
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
    snprintf(tty, sizeof tty, "%s/tty.%s", d->dev_dir, name);
    snprintf(cu, sizeof cu, "%s/cu.%s", d->dev_dir, name);

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

    int st = make_link(d, slave_path, tty, err, err_len);
    if (st == ODK_OK && (st = make_link(d, slave_path, cu, err, err_len)) < 0)
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
    if (st < 0) {
        close(master);
        close(slave);
        return st;
    }
    l->node_id = node->id;
    l->next = d->pty_links;
    d->pty_links = l;

    odk_dict_set_string(node->props, "IOTTYDevice", name);
    odk_dict_set_string(node->props, "IODialinDevice", tty);
    odk_dict_set_string(node->props, "IOCalloutDevice", cu);
    odk_dict_set_string(node->props, "OdkPseudoTerminal", slave_path);
    *info = odk_value_new_dict();
    odk_dict_set_string(*info, "name", name);
    odk_dict_set_string(*info, "tty", tty);
    odk_dict_set_string(*info, "cu", cu);
    fds[0] = master;
    fds[1] = slave;
    odk_info("serial port %s: %s -> %s", name, tty, slave_path);
    return ODK_OK;
}

static int forget_one(reg_node *n, void *ctx)
{
    struct odkd *d = ctx;
    for (struct pty_link **p = &d->pty_links; *p;) {
        struct pty_link *l = *p;
        if (l->node_id != n->id) {
            p = &l->next;
            continue;
        }
        unlink(l->tty);
        unlink(l->cu);
        *p = l->next;
        free(l->tty);
        free(l->cu);
        free(l);
    }
    return 0;
}

void serial_pty_forget(struct odkd *d, reg_node *node)
{
    registry_walk(node, forget_one, d);
}

void serial_pty_forget_all(struct odkd *d)
{
    while (d->pty_links) {
        struct pty_link *l = d->pty_links;
        d->pty_links = l->next;
        unlink(l->tty);
        unlink(l->cu);
        free(l->tty);
        free(l->cu);
        free(l);
    }
}
