/* SPDX-License-Identifier: MIT */
/* lazy_lib.h — a system library the host loads when it first needs it,
 * not at its exec: libusb-1.0 for the USB family's link to real devices
 * (usb/libusb_loaded.c), libfuse3 for the serial family's CUSE ports
 * (serial/fuse_loaded.c), libjansson for a driver's JSON conversions
 * (src/host/jansson_loaded.c).  Most drivers use none, and every
 * library the host links is mapped into every host: the zygote's fork
 * copies its mappings, every exit unmaps them, and a dlopen searches it
 * (docs/testing.md, "Where a plug's time goes", session 11).
 *
 * The load may happen inside the sandbox: its Landlock rules let a host
 * read and map the system's library folders, and seccomp allows what the
 * dynamic linker calls.  The library's own constructors then run
 * sandboxed, as a driver's do. */
#ifndef ODK_FAMILIES_LAZY_LIB_H
#define ODK_FAMILIES_LAZY_LIB_H

#include <stdbool.h>
#include <stddef.h>

struct lazy_lib {
    const char *soname;       /* "libusb-1.0.so.0" */
    const char *version;      /* symbol version to bind ("FUSE_3.0"), or NULL */
    const char *const *names; /* the functions, in the order of fns */
    void **fns;               /* filled with their addresses */
    size_t n;
    _Atomic int state; /* LAZY_UNTRIED, LAZY_LOADED or LAZY_FAILED */
};

enum { LAZY_UNTRIED, LAZY_LOADED, LAZY_FAILED };

/* Loads lib and looks up every one of its functions, once (later calls
 * return the first answer, without a lock once loaded; any thread).  False, after one log line
 * naming the library and what failed, when the library or any function cannot be found: then none
 * of its wrappers calls it. */
bool lazy_lib_load(struct lazy_lib *lib);

/* For the *_loaded.c files.  Each lists its functions in an X-macro as
 * F(return type, name, parameters, arguments, value when not loaded) and
 * V(name, parameters, arguments) for those returning nothing, expands it
 * with LAZY_INDEX_* into its enum of I_name and with LAZY_NAME_* into its
 * table of names, defines LAZY_LIB (its struct lazy_lib), LAZY_FNS (the
 * addresses) and LAZY_CALL (a calling convention, or nothing), then
 * expands it with LAZY_WRAP_*: each wrapper loads the library on its
 * first call and calls the library's function, or returns the F's value
 * when the library cannot be had. */
#define LAZY_INDEX_F(ret, name, params, args, fail) I_##name,
#define LAZY_INDEX_V(name, params, args) I_##name,
#define LAZY_NAME_F(ret, name, params, args, fail) #name,
#define LAZY_NAME_V(name, params, args) #name,
#define LAZY_WRAP_F(ret, name, params, args, fail)                                                 \
    ret LAZY_CALL name params                                                                      \
    {                                                                                              \
        if (!lazy_lib_load(&LAZY_LIB))                                                             \
            return fail;                                                                           \
        ret(LAZY_CALL *fn) params = (ret(LAZY_CALL *) params)LAZY_FNS[I_##name];                   \
        return fn args;                                                                            \
    }
#define LAZY_WRAP_V(name, params, args)                                                            \
    void LAZY_CALL name params                                                                     \
    {                                                                                              \
        if (!lazy_lib_load(&LAZY_LIB))                                                             \
            return;                                                                                \
        void(LAZY_CALL * fn) params = (void(LAZY_CALL *) params)LAZY_FNS[I_##name];                \
        fn args;                                                                                   \
    }

#endif
