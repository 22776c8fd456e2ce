/* SPDX-License-Identifier: MIT */
/* Memory descriptors: memfd-backed, direction-checked, shared by mapping. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "odk/log.h"
#include "odk/memory.h"

struct odk_memory {
    odk_object obj;
    int fd;
    uint64_t len;
    uint32_t direction;
    pthread_mutex_t lock;
    void *map;
    uint32_t map_access;
};

static void memory_free(odk_object *o)
{
    odk_memory *m = (odk_memory *)o;
    if (m->map)
        munmap(m->map, m->len);
    if (m->fd >= 0)
        close(m->fd);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static bool good_direction(uint32_t d)
{
    return d == ODK_MEM_OUT || d == ODK_MEM_IN || d == ODK_MEM_INOUT;
}

static int wrap(int fd, uint64_t len, uint32_t direction, odk_memory **out)
{
    odk_memory *m = calloc(1, sizeof *m);
    if (!m) {
        close(fd);
        return ODK_E_NOMEM;
    }
    odk_object_init(&m->obj, memory_free);
    m->fd = fd;
    m->len = len;
    m->direction = direction;
    pthread_mutex_init(&m->lock, NULL);
    *out = m;
    return ODK_OK;
}

int odk_memory_create(uint64_t len, uint32_t direction, odk_memory **out)
{
    if (out)
        *out = NULL;
    if (!out || len == 0 || len > (uint64_t)INT64_MAX || !good_direction(direction))
        return ODK_E_INVALID;
    int fd = memfd_create("odk-memory", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return ODK_E_IO;
    if (ftruncate(fd, (off_t)len) < 0) {
        close(fd);
        return errno == EFBIG || errno == ENOSPC ? ODK_E_NOMEM : ODK_E_IO;
    }
    /* Whoever we share it with must not shrink it under us, nor we under them. */
    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK);
    return wrap(fd, len, direction, out);
}

int odk_memory_from_fd(int fd, uint64_t len, uint32_t direction, odk_memory **out)
{
    struct stat st;
    if (out)
        *out = NULL;
    if (fd < 0 || !out || len == 0 || !good_direction(direction)) {
        if (fd >= 0)
            close(fd);
        return ODK_E_INVALID;
    }
    int seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0 || !(seals & F_SEAL_SHRINK)) {
        close(fd);
        return ODK_E_ACCESS;
    }
    if (fstat(fd, &st) < 0 || (uint64_t)st.st_size < len) {
        close(fd);
        return ODK_E_INVALID;
    }
    return wrap(fd, len, direction, out);
}

uint64_t odk_memory_length(const odk_memory *m)
{
    return m ? m->len : 0;
}

uint32_t odk_memory_direction(const odk_memory *m)
{
    return m ? m->direction : 0;
}

int odk_memory_fd(const odk_memory *m)
{
    return m ? m->fd : -1;
}

int odk_memory_map(odk_memory *m, uint32_t access, void **addr)
{
    if (addr)
        *addr = NULL;
    if (!m || !addr || !(access & ODK_MAP_READ) || (access & ~(ODK_MAP_READ | ODK_MAP_WRITE)))
        return ODK_E_INVALID;
    if ((access & ODK_MAP_WRITE) && m->direction == ODK_MEM_OUT) {
        odk_warn("memory %p: a writable mapping of an OUT (read-only) descriptor is refused",
                 (void *)m);
        return ODK_E_ACCESS;
    }
    int st = ODK_OK;
    pthread_mutex_lock(&m->lock);
    if (!m->map) {
        /* Map with the widest access the direction allows, once. */
        int prot = m->direction == ODK_MEM_OUT ? PROT_READ : PROT_READ | PROT_WRITE;
        void *p = mmap(NULL, m->len, prot, MAP_SHARED, m->fd, 0);
        if (p == MAP_FAILED)
            /* EACCES/EPERM: the fd refuses this mapping (a write seal). */
            st = errno == EACCES || errno == EPERM ? ODK_E_ACCESS : ODK_E_NOMEM;
        else
            m->map = p;
    }
    if (st == ODK_OK)
        *addr = m->map;
    pthread_mutex_unlock(&m->lock);
    return st;
}

static int check_range(const odk_memory *m, uint64_t offset, uint64_t len)
{
    return offset <= m->len && len <= m->len - offset ? ODK_OK : ODK_E_INVALID;
}

int odk_memory_read(odk_memory *m, uint64_t offset, void *dst, uint64_t len)
{
    if (!m || (len && !dst) || check_range(m, offset, len) < 0)
        return ODK_E_INVALID;
    void *p;
    int st = odk_memory_map(m, ODK_MAP_READ, &p);
    if (st == ODK_OK && len)
        memcpy(dst, (uint8_t *)p + offset, len);
    return st;
}

int odk_memory_write(odk_memory *m, uint64_t offset, const void *src, uint64_t len)
{
    if (!m || (len && !src) || check_range(m, offset, len) < 0)
        return ODK_E_INVALID;
    if (m->direction == ODK_MEM_OUT) {
        odk_warn("memory %p: write of %llu bytes into an OUT (read-only) descriptor refused",
                 (void *)m, (unsigned long long)len);
        return ODK_E_ACCESS;
    }
    void *p;
    int st = odk_memory_map(m, ODK_MAP_READ | ODK_MAP_WRITE, &p);
    if (st == ODK_OK && len)
        memcpy((uint8_t *)p + offset, src, len);
    return st;
}
