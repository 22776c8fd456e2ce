/* SPDX-License-Identifier: MIT */
/* Memory shared with a driver: zero-copy buffers (odk_buffer_*, memfds
 * sealed against shrinking), registering them on a connection so calls can
 * name ranges of them, and mapping what the driver offers in return (its
 * memory, its data queues). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/client_internal.h"
#include "common/wire.h"
#include "odk/client.h"
#include "odk/memory.h"

struct odk_buffer {
    void *data;
    uint64_t len;
    int fd;
};

/* Maps fd (taken, also on failure) as a new buffer. */
static int map_fd(int fd, uint64_t len, bool writable, odk_buffer **out)
{
    odk_buffer *b = calloc(1, sizeof *b);
    if (!b) {
        close(fd);
        return ODK_E_NOMEM;
    }
    b->data = mmap(NULL, len, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd, 0);
    if (b->data == MAP_FAILED) {
        close(fd);
        free(b);
        return ODK_E_NOMEM;
    }
    b->len = len;
    b->fd = fd;
    *out = b;
    return ODK_OK;
}

int buffer_memfd(const char *name, uint64_t len)
{
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -1;
    if (ftruncate(fd, (off_t)len) < 0 || fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* ---- buffers ------------------------------------------------------------ */

int odk_buffer_create(uint64_t len, odk_buffer **out)
{
    if (out)
        *out = NULL;
    if (!out || len == 0 || len > (uint64_t)INT64_MAX)
        return ODK_E_INVALID;
    int fd = buffer_memfd("odk-buffer", len);
    if (fd < 0)
        return errno == EFBIG || errno == ENOSPC ? ODK_E_NOMEM : ODK_E_IO;
    return map_fd(fd, len, true, out);
}

void *odk_buffer_data(const odk_buffer *b)
{
    return b ? b->data : NULL;
}

uint64_t odk_buffer_length(const odk_buffer *b)
{
    return b ? b->len : 0;
}

void odk_buffer_free(odk_buffer *b)
{
    if (!b)
        return;
    munmap(b->data, b->len);
    close(b->fd);
    free(b);
}

/* ---- buffers on a connection -------------------------------------------- */

int odk_connection_register_buffer(odk_connection *conn, odk_buffer *buf, uint32_t direction,
                                   uint32_t *id)
{
    if (!conn || !buf || !id)
        return ODK_E_INVALID;
    struct wire_buffer b = {.id = ++conn->next_buffer, .direction = direction, .length = buf->len};
    int st = connection_request(conn, WIRE_MAP_BUFFER, &b, sizeof b, &buf->fd, 1);
    if (st == ODK_OK)
        *id = b.id;
    return st;
}

int odk_connection_unregister_buffer(odk_connection *conn, uint32_t id)
{
    struct wire_buffer b = {.id = id};
    return connection_request(conn, WIRE_UNMAP_BUFFER, &b, sizeof b, NULL, 0);
}

/* ---- what the driver offers ---------------------------------------------- */

int odk_connection_map_memory(odk_connection *conn, uint32_t type, odk_buffer **out)
{
    if (out)
        *out = NULL;
    if (!conn || !out)
        return ODK_E_INVALID;
    int st = connection_request(conn, WIRE_CLIENT_MEMORY, &type, sizeof type, NULL, 0);
    if (st < 0)
        return st;
    struct wire_buffer b;
    int fd = wire_msg_take_fd(&conn->msg, 0);
    if (conn->msg.body_len != sizeof b || fd < 0) {
        if (fd >= 0)
            close(fd);
        return ODK_E_PROTOCOL;
    }
    memcpy(&b, conn->msg.body, sizeof b);
    struct stat sb;
    int seals = fcntl(fd, F_GET_SEALS);
    /* A driver that could shrink the file under us could SIGBUS the app. */
    if (fstat(fd, &sb) < 0 || (uint64_t)sb.st_size < b.length || b.length == 0 || seals < 0 ||
        !(seals & F_SEAL_SHRINK)) {
        close(fd);
        return ODK_E_PROTOCOL;
    }
    return map_fd(fd, b.length, b.direction != ODK_MEM_IN, out);
}

int odk_connection_map_data_queue(odk_connection *conn, uint32_t type, odk_data_queue **out)
{
    if (out)
        *out = NULL;
    if (!conn || !out)
        return ODK_E_INVALID;
    int st = connection_request(conn, WIRE_CLIENT_DATA_QUEUE, &type, sizeof type, NULL, 0);
    if (st < 0)
        return st;
    uint32_t size;
    if (conn->msg.body_len != sizeof size || conn->msg.n_fds != 3)
        return ODK_E_PROTOCOL;
    memcpy(&size, conn->msg.body, sizeof size);
    int fds[3];
    for (int i = 0; i < 3; i++)
        fds[i] = wire_msg_take_fd(&conn->msg, (size_t)i);
    return odk_data_queue_attach(fds, size, out);
}
