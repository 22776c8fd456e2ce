/* SPDX-License-Identifier: MIT */
/* vfio_scan.c — the functions bound to vfio-pci, from sysfs and from the
 * kernel's uevents (vfio_scan.h). */
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <string.h>

#include "buses/pci/vfio_scan.h"

/* DDDD:BB:SS.F as sysfs names functions: hex digits, then a function 0-7
 * (sscanf's %x took "0x" and signs too). */
bool vfio_is_pci_address(const char *s)
{
    static const char form[] = "hhhh:hh:hh.f";
    for (size_t i = 0; i < sizeof form - 1; i++) {
        char c = s[i];
        if (form[i] == 'h' ? !isxdigit((unsigned char)c)
                           : form[i] == 'f' ? c < '0' || c > '7' : c != form[i])
            return false;
    }
    return s[sizeof form - 1] == '\0';
}

int vfio_scan_bound(const char *dir, void (*fn)(void *ctx, const char *addr), void *ctx)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (!vfio_is_pci_address(e->d_name))
            continue;
        fn(ctx, e->d_name);
        n++;
    }
    closedir(d);
    return n;
}

bool vfio_uevent_binds(const char *msg, size_t n)
{
    const char *action = NULL, *subsystem = NULL, *driver = NULL;
    /* Each string must end inside the message; the first is the header. */
    for (size_t at = 0; at < n;) {
        const char *p = msg + at;
        const char *nul = memchr(p, '\0', n - at);
        if (!nul)
            return false;
        if (at > 0) {
            if (!strncmp(p, "ACTION=", 7))
                action = p + 7;
            else if (!strncmp(p, "SUBSYSTEM=", 10))
                subsystem = p + 10;
            else if (!strncmp(p, "DRIVER=", 7))
                driver = p + 7;
        } else if (!strchr(p, '@')) {
            return false; /* not a kernel uevent (udev's start with "libudev") */
        }
        at = (size_t)(nul - msg) + 1;
    }
    return action && subsystem && driver && !strcmp(action, "bind") && !strcmp(subsystem, "pci") &&
           !strcmp(driver, "vfio-pci");
}
