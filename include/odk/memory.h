/* SPDX-License-Identifier: MIT */
/* odk/memory.h — memory descriptors: buffers backed by memfd that can be
 * shared, without copying, between an app, odkd, drivers and device models.
 *
 * Every descriptor has a direction, named as IOKit's (kIOMemoryDirectionIn,
 * Out, InOut): the way data moves with respect to the memory itself.
 *   ODK_MEM_IN     data comes into this memory: the driver and the device
 *                  write it (and may read it back), the app reads it (a
 *                  read's buffer, an IN transfer's)
 *   ODK_MEM_OUT    data goes out of this memory: the app writes it, the
 *                  driver and the device only read it (a write's buffer)
 *   ODK_MEM_INOUT  both
 * Mapping honours it: a writable mapping of an OUT descriptor, or
 * odk_memory_write into one, is refused with ODK_E_ACCESS (never silently
 * dropped).  A driver's writes into an IN or INOUT descriptor are in the
 * app's pages when the call returns: both map the same memfd.
 *
 * Size: any length the machine can address (64-bit lengths and offsets
 * throughout; memfd is sparse, so a 5 GiB descriptor costs only the pages
 * touched).
 *
 * Descriptors are odk_objects: odk_retain / odk_release; the last release
 * unmaps and closes.  Every function may be called from any thread and none
 * blocks (odk_memory_map takes a short lock).  Concurrent writes to the same
 * bytes are the callers' to order.
 */
#ifndef ODK_MEMORY_H
#define ODK_MEMORY_H

#include "odk/export.h"

#include <stddef.h>
#include <stdint.h>

#include "odk/object.h"
#include "odk/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct odk_memory odk_memory;

#define ODK_MEM_IN 1u
#define ODK_MEM_OUT 2u
#define ODK_MEM_INOUT 3u

/* Mapping access requested by odk_memory_map. */
#define ODK_MAP_READ 1u
#define ODK_MAP_WRITE 2u

/* A new zero-filled descriptor of len bytes (0 < len <= INT64_MAX), sealed
 * against shrinking.  *out is a new reference.  Errors: ODK_E_INVALID (len,
 * direction not ODK_MEM_*, out NULL), ODK_E_NOMEM (also when the memfd cannot
 * grow to len), ODK_E_IO (memfd_create or ftruncate failed otherwise). */
ODK_PUBLIC int odk_memory_create(uint64_t len, uint32_t direction, odk_memory **out);
/* Wraps a memfd someone passed us.  Takes fd: it is closed on failure.  The
 * memfd must be sealed against shrinking (a shrink would turn our accesses
 * into SIGBUS).  *out is a new reference.  Errors: ODK_E_INVALID (fd < 0,
 * len 0, bad direction, out NULL, file smaller than len), ODK_E_ACCESS (not
 * a memfd sealed with F_SEAL_SHRINK), ODK_E_NOMEM. */
ODK_PUBLIC int odk_memory_from_fd(int fd, uint64_t len, uint32_t direction, odk_memory **out);

/* Accessors: never fail, never block (0, 0 and -1 for NULL).  The fd is
 * borrowed (m keeps it open until its last release), e.g. to pass to another
 * process. */
ODK_PUBLIC uint64_t odk_memory_length(const odk_memory *m);
ODK_PUBLIC uint32_t odk_memory_direction(const odk_memory *m);
ODK_PUBLIC int odk_memory_fd(const odk_memory *m);

/* Maps the whole descriptor; *addr is borrowed and lives until m's last
 * release.  The first call mmaps, later ones return the same address (so an
 * IN/INOUT mapping asked for READ is still writable).  access is
 * ODK_MAP_READ, optionally | ODK_MAP_WRITE.  Errors: ODK_E_INVALID (m or addr
 * NULL, bad access bits), ODK_E_ACCESS (WRITE on an OUT descriptor, or the
 * memfd refuses the mapping, e.g. write-sealed), ODK_E_NOMEM (mmap failed). */
ODK_PUBLIC int odk_memory_map(odk_memory *m, uint32_t access, void **addr);

/* Copy len bytes out of / into m at offset (mapping m on first use); dst /
 * src are borrowed for the call.  Errors: ODK_E_INVALID (m NULL, NULL buffer
 * with len > 0, [offset, offset + len) not inside m), ODK_E_ACCESS (write
 * into an OUT descriptor; logged), ODK_E_NOMEM (as odk_memory_map).  Nothing
 * is copied on error. */
ODK_PUBLIC int odk_memory_read(odk_memory *m, uint64_t offset, void *dst, uint64_t len);
ODK_PUBLIC int odk_memory_write(odk_memory *m, uint64_t offset, const void *src, uint64_t len);

/* A range of a descriptor, as a method receives it. */
typedef struct odk_memory_range {
    odk_memory *memory; /* borrowed for the call */
    uint64_t offset;
    uint64_t length;
} odk_memory_range;

#ifdef __cplusplus
}
#endif
#endif
