/* SPDX-License-Identifier: MIT */
/* Reference counting shared by every runtime type. */
#include "odk/object.h"

#include "odk/log.h"

void odk_object_init(odk_object *obj, void (*free_fn)(odk_object *obj))
{
    __atomic_store_n(&obj->refs, 1, __ATOMIC_RELAXED);
    obj->free_fn = free_fn;
}

void *odk_retain(void *obj)
{
    if (obj)
        __atomic_fetch_add(&((odk_object *)obj)->refs, 1, __ATOMIC_RELAXED);
    return obj;
}

void odk_release(void *obj)
{
    if (!obj)
        return;
    odk_object *o = obj;
    /* acq_rel: every write made under a reference happens before the free. */
    uint32_t old = __atomic_fetch_sub(&o->refs, 1, __ATOMIC_ACQ_REL);
    if (old == 1) {
        if (o->free_fn)
            o->free_fn(o);
    } else if (old == 0) {
        __atomic_fetch_add(&o->refs, 1, __ATOMIC_RELAXED);
        odk_error("object %p: released more often than retained", obj);
    }
}
