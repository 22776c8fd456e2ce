/* pty.h — odkd's side of the serial family (see pty.c). */
#ifndef ODK_FAMILIES_SERIAL_PTY_H
#define ODK_FAMILIES_SERIAL_PTY_H

#include "daemon/daemon.h"

/* Opens a pseudo-terminal for the port node, links DEVDIR/tty.BASE-SUFFIX
 * and DEVDIR/cu.BASE-SUFFIX to it and records them on the node.  fds gets
 * the master and a slave descriptor (caller owns); *info {"name", "tty",
 * "cu"} (caller owns).  Errors name the problem in err. */
int serial_pty_open(struct odkd *d, reg_node *node, const char *base, const char *suffix,
                    int fds[2], odk_value **info, char *err, size_t err_len);
/* Removes the links of node and every node below it. */
void serial_pty_forget(struct odkd *d, reg_node *node);
void serial_pty_forget_all(struct odkd *d);

#endif
