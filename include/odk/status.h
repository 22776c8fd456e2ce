/* SPDX-License-Identifier: MIT */
/* odk/status.h — the one status enum every odk function returns.
 *
 * 0 is success, every error is negative.  odk_strerror() names each status
 * and says in one sentence what it means; it never returns NULL.
 *
 * The rules every public header relies on (and does not repeat):
 *
 * - Out-parameters on failure.  A function that returns an error sets each
 *   pointer out-parameter (a T ** such as odk_queue **out, odk_value
 *   **reply, void **addr) to NULL, provided the pointer itself is not NULL,
 *   and leaves every other out-parameter (counts, ids, lengths) untouched,
 *   unless its comment says otherwise.  So a caller never frees or reads a
 *   stale pointer after an error.
 * - Ownership.  "New reference" / "new object" means the caller owns the
 *   result and releases it (odk_release, or the type's free/close function);
 *   "borrowed" means the caller must not free it and may use it only as long
 *   as the comment says.  An argument a function "takes" is owned by the
 *   function from the call on, whatever it returns.
 * - Errors.  Every function lists the statuses it can return.  NULL where
 *   an object is expected is ODK_E_INVALID only where a function lists
 *   it; elsewhere (accessors, and functions that do not list it) it is a
 *   bug in the caller.
 * - Threads.  Unless a header says otherwise, a function may be called from
 *   any thread.  "Blocks" means the call waits for another process (odkd, a
 *   driver, an app) or another thread; every other call returns without
 *   waiting on anything but short internal locks.
 */
#ifndef ODK_STATUS_H
#define ODK_STATUS_H

#include "odk/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum odk_status {
    ODK_OK = 0,
    ODK_E_INVALID = -1,       /* an argument is out of range or malformed */
    ODK_E_NOMEM = -2,         /* out of memory */
    ODK_E_NOT_FOUND = -3,     /* no such node, bundle, selector target, key */
    ODK_E_EXISTS = -4,        /* already exists */
    ODK_E_IO = -5,            /* a system call failed (errno is logged) */
    ODK_E_PROTOCOL = -6,      /* a message was malformed or truncated */
    ODK_E_BAD_SELECTOR = -7,  /* the method selector is not in the table */
    ODK_E_BAD_ARGUMENTS = -8, /* scalar count or structure size does not match the method table */
    ODK_E_ACCESS = -9,        /* not allowed by access policy or buffer direction */
    ODK_E_GONE = -10,         /* the service or device was terminated */
    ODK_E_TIMEOUT = -11,      /* a deadline passed */
    ODK_E_CANCELLED = -12,    /* the operation or object was cancelled */
    ODK_E_BUSY = -13,         /* the resource is held by someone else */
    ODK_E_UNSUPPORTED = -14,  /* not supported by this object or backend */
    ODK_E_STATE = -15,        /* the object is in the wrong state for this */
    ODK_E_LIMIT = -16,        /* a documented limit was exceeded */
    ODK_E_MANIFEST = -17,     /* a bundle manifest or Info.plist is invalid */
    ODK_E_LOAD = -18,         /* a driver's shared object or class could not be loaded */
    ODK_E_DISCONNECTED = -19, /* the peer closed the connection */
    ODK_E_AGAIN = -20,        /* would block; try again */
    ODK_E_DRIVER = -21,       /* the driver failed the request without a more precise status */
    ODK_E_STALL = -22,        /* the device refused the request or halted the endpoint (USB STALL) */
    ODK_E_OVERRUN = -23,      /* the device sent more than the buffer holds (USB babble) */
} odk_status;

#define ODK_STATUS_MIN ODK_E_OVERRUN

/* "ODK_E_BAD_ARGUMENTS: scalar count or structure size does not match the
 * method table".  Static storage, never NULL; unknown values give a generic
 * text.  Any thread; never fails. */
ODK_PUBLIC const char *odk_strerror(int status);

/* Just the name, "ODK_E_BAD_ARGUMENTS".  Static storage, never NULL
 * (unknown values give a generic name).  Any thread; never fails. */
ODK_PUBLIC const char *odk_status_name(int status);

#ifdef __cplusplus
}
#endif
#endif
