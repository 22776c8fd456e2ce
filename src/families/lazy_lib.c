/* SPDX-License-Identifier: MIT */
/* A library loaded at a family's first use (lazy_lib.h). */
#include "families/lazy_lib.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>

#include "odk/log.h"

static pthread_mutex_t lazy_lock = PTHREAD_MUTEX_INITIALIZER;

bool lazy_lib_load(struct lazy_lib *lib)
{
    /* Acquire: the functions' addresses, written before LAZY_LOADED. */
    int state = atomic_load_explicit(&lib->state, memory_order_acquire);
    if (state != LAZY_UNTRIED)
        return state == LAZY_LOADED;
    pthread_mutex_lock(&lazy_lock);
    state = atomic_load_explicit(&lib->state, memory_order_relaxed);
    if (state == LAZY_UNTRIED) {
        void *h = dlopen(lib->soname, RTLD_NOW | RTLD_LOCAL);
        const char *missing = NULL;
        for (size_t i = 0; h && i < lib->n && !missing; i++) {
            lib->fns[i] = lib->version ? dlvsym(h, lib->names[i], lib->version)
                                       : dlsym(h, lib->names[i]);
            if (!lib->fns[i])
                missing = lib->names[i];
        }
        /* A failure is said once; the wrappers give their errors after. */
        if (!h)
            odk_error("cannot load %s: %s", lib->soname, dlerror());
        else if (missing)
            odk_error("cannot load %s: it has no %s%s%s", lib->soname, missing,
                      lib->version ? "@" : "", lib->version ? lib->version : "");
        state = h && !missing ? LAZY_LOADED : LAZY_FAILED;
        atomic_store_explicit(&lib->state, state, memory_order_release);
    }
    pthread_mutex_unlock(&lazy_lock);
    return state == LAZY_LOADED;
}
