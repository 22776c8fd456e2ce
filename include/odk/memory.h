/* odk/memory.h — memory descriptors: buffers backed by memfd that can be
 * shared, without copying, between an app, odkd, drivers and device models.
 *
 * Every descriptor has a direction, named from the driver's side of a call:
 *   ODK_MEM_IN     data flows into the driver: it may read, never write
 *   ODK_MEM_OUT    data flows out of the driver: it writes, the app reads
 *   ODK_MEM_INOUT  both
 * Mapping honours it: a writable mapping of an IN descriptor, or
 * odk_memory_write into one, is refused with ODK_E_ACCESS (never silently
 * dropped).  A driver's writes into an OUT or INOUT descriptor are in the
 * app's pages when the call returns: both map the same memfd.
 *
 * Size: any length the machine can address (64-bit lengths and offsets
 * throughout; memfd is sparse, so a 5 GiB descriptor costs only the pages
 * touched).
 *
 * Descriptors are odk_objects: odk_retain / odk_release; the last release
 * unmaps and closes.  Thread-safe to read and map from any thread.
 */
#ifndef ODK_MEMORY_H
#define ODK_MEMORY_H

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

/* A new zero-filled descriptor of len bytes (len > 0).  *out is a new
 * reference.  ODK_E_INVALID (len 0, bad direction), ODK_E_NOMEM, ODK_E_IO. */
int odk_memory_create(uint64_t len, uint32_t direction, odk_memory **out);
/* Wraps a memfd someone passed us (takes fd; sealed against shrinking or
 * refused with ODK_E_ACCESS, since a shrink would turn our accesses into
 * SIGBUS).  ODK_E_INVALID when the file is smaller than len. */
int odk_memory_from_fd(int fd, uint64_t len, uint32_t direction, odk_memory **out);

uint64_t odk_memory_length(const odk_memory *m);
uint32_t odk_memory_direction(const odk_memory *m);
/* The memfd (borrowed), e.g. to pass to another process. */
int odk_memory_fd(const odk_memory *m);

/* Maps the whole descriptor (once; later calls return the same address).
 * access is ODK_MAP_READ, optionally | ODK_MAP_WRITE; writing an IN
 * descriptor is ODK_E_ACCESS.  The mapping lives until the last release. */
int odk_memory_map(odk_memory *m, uint32_t access, void **addr);

/* Copy in / out with bounds and direction checks: ODK_E_INVALID when
 * [offset, offset + len) is not inside, ODK_E_ACCESS for a write into IN. */
int odk_memory_read(odk_memory *m, uint64_t offset, void *dst, uint64_t len);
int odk_memory_write(odk_memory *m, uint64_t offset, const void *src, uint64_t len);

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
