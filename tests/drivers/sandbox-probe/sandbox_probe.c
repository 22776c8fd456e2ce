/* SPDX-License-Identifier: MIT */
/* sandbox-probe: a test driver that tries, on request, what the host's
 * sandbox must refuse (sandbox_probe_selectors.h lists the attempts) and
 * answers with the errno it got, so tests/integration/test_sandbox.py can
 * check each denial and that the driver is still running after it.  The
 * attempts the seccomp filter answers by killing the host never return. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "odk/driver.h"

#include "sandbox_probe_selectors.h"

static int errno_of(int r)
{
    return r < 0 ? errno : 0;
}

static int open_close(const char *path, int flags)
{
    int fd = open(path, flags | O_CLOEXEC, 0600);
    if (fd < 0)
        return errno;
    close(fd);
    return 0;
}

static int connect_loopback(uint64_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int e = errno_of(connect(fd, (struct sockaddr *)&a, sizeof a));
    close(fd);
    return e;
}

/* An abstract Unix socket address: a zero byte, then the name. */
static socklen_t abstract_addr(struct sockaddr_un *a, const char *name)
{
    *a = (struct sockaddr_un){.sun_family = AF_UNIX};
    size_t n = strnlen(name, sizeof a->sun_path - 1);
    memcpy(a->sun_path + 1, name, n);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

static int abstract_socket(const char *name, bool listen_on)
{
    if (!name[0])
        return EINVAL;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno;
    struct sockaddr_un a;
    socklen_t len = abstract_addr(&a, name);
    int e = listen_on ? errno_of(bind(fd, (struct sockaddr *)&a, len))
                      : errno_of(connect(fd, (struct sockaddr *)&a, len));
    if (listen_on && !e)
        e = errno_of(listen(fd, 4));
    if (!listen_on || e)
        close(fd); /* a listener stays open: the host's exit closes it */
    return e;
}

static int probe_try(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    (void)uc;
    char path[512] = "";
    if (call->struct_in_len) {
        if (call->struct_in_len >= sizeof path)
            return ODK_E_BAD_ARGUMENTS;
        memcpy(path, call->struct_in, call->struct_in_len);
        path[call->struct_in_len] = 0;
    }
    uint64_t arg = call->scalar_in[1];
    int e;
    switch (call->scalar_in[0]) {
    case PROBE_OPEN_SHADOW:
        e = open_close("/etc/shadow", O_RDONLY);
        break;
    case PROBE_OPEN_PASSWD:
        e = open_close("/etc/passwd", O_RDONLY);
        break;
    case PROBE_WRITE_PATH:
        e = path[0] ? open_close(path, O_WRONLY | O_CREAT | O_TRUNC) : EINVAL;
        break;
    case PROBE_WRITE_RUNTIME:
        e = open_close("probe-was-here", O_WRONLY | O_CREAT | O_TRUNC);
        break;
    case PROBE_INET_SOCKET: {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        e = errno_of(fd);
        if (fd >= 0)
            close(fd);
        break;
    }
    case PROBE_CONNECT_LOOPBACK:
        e = connect_loopback(arg);
        break;
    case PROBE_SETUID_ROOT:
        e = errno_of(setuid(0));
        break;
    case PROBE_MOUNT:
        e = errno_of(mount("none", ".", "tmpfs", 0, NULL));
        break;
    case PROBE_EXEC_SHELL: {
        char *const argv[] = {"sh", "-c", "true", NULL};
        execv("/bin/sh", argv);
        e = errno;
        break;
    }
    case PROBE_PTRACE:
        e = errno_of((int)ptrace(PTRACE_ATTACH, (pid_t)arg, NULL, NULL));
        break;
    case PROBE_INIT_MODULE:
        e = errno_of((int)syscall(SYS_init_module, NULL, 0UL, ""));
        break;
    case PROBE_NETLINK_SOCKET: {
        int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, 0);
        e = errno_of(fd);
        if (fd >= 0)
            close(fd);
        break;
    }
    case PROBE_ABSTRACT_LISTEN:
        e = abstract_socket(path, true);
        break;
    case PROBE_ABSTRACT_CONNECT:
        e = abstract_socket(path, false);
        break;
    default:
        return ODK_E_BAD_ARGUMENTS;
    }
    odk_info("attempt %llu: %s", (unsigned long long)call->scalar_in[0],
             e ? strerror(e) : "allowed");
    call->scalar_out[0] = (uint64_t)e;
    (void)drv;
    return ODK_OK;
}

static int probe_start(odk_driver *drv)
{
    return odk_driver_register_service(drv);
}

static const odk_method probe_methods[] = {
    [PROBE_TRY] = {probe_try, .scalar_in = 2, .scalar_out = 1,
                   .struct_in = ODK_VARIABLE_SIZE},
};

static const odk_driver_class probe_class = {
    .name = "SandboxProbe",
    .start = probe_start,
    .methods = probe_methods,
    .n_methods = sizeof probe_methods / sizeof probe_methods[0],
};

ODK_DRIVER_CLASS(probe_class);
