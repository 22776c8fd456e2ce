/* SPDX-License-Identifier: MIT */
/* odk/object.h — reference-counted objects.
 *
 * Every runtime type (queue, action, timer, fd source, and later user
 * clients, services, memory descriptors) starts with an odk_object, so one
 * pair of functions, odk_retain() and odk_release(), manages them all.  The
 * count is atomic: retaining and releasing is legal from any thread.
 */
#ifndef ODK_OBJECT_H
#define ODK_OBJECT_H

#include "odk/export.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct odk_object odk_object;

/* The header a runtime type embeds at offset 0.  Touch the fields only
 * through the functions below (the count is accessed atomically). */
struct odk_object {
    uint32_t refs;                    /* references held; atomic */
    void (*free_fn)(odk_object *obj); /* called once, when refs drops to 0 */
};

/* Sets the count to 1 (the creator's reference) and the function that frees
 * the object when the last reference goes.  For implementers of types; call
 * before the object is shared.  Never fails. */
ODK_PUBLIC void odk_object_init(odk_object *obj, void (*free_fn)(odk_object *obj));

/* Adds a reference to obj (any odk type, or NULL) and returns obj: the
 * caller owns the new reference.  Retaining an object whose count already
 * reached 0 is a bug the runtime cannot see.  Any thread; never blocks. */
ODK_PUBLIC void *odk_retain(void *obj);

/* Drops a reference (NULL is ignored); the last one frees the object, on the
 * calling thread (so the type's free function runs there: a queue's last
 * release does not wait for its thread).  A release without a matching
 * reference is logged.  Any thread. */
ODK_PUBLIC void odk_release(void *obj);

#ifdef __cplusplus
}
#endif
#endif
