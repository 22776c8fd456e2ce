/* SPDX-License-Identifier: MIT */
#include "odk/status.h"

/* One row per status: the name, and "NAME: sentence" built at compile time. */
#define STATUSES(X)                                                                                \
    X(ODK_OK, "success")                                                                           \
    X(ODK_E_INVALID, "an argument is out of range or malformed")                                   \
    X(ODK_E_NOMEM, "out of memory")                                                                \
    X(ODK_E_NOT_FOUND, "no such object")                                                           \
    X(ODK_E_EXISTS, "already exists")                                                              \
    X(ODK_E_IO, "a system call failed")                                                            \
    X(ODK_E_PROTOCOL, "a message was malformed or truncated")                                      \
    X(ODK_E_BAD_SELECTOR, "the method selector is not in the method table")                        \
    X(ODK_E_BAD_ARGUMENTS, "scalar count or structure size does not match the method table")       \
    X(ODK_E_ACCESS, "access denied")                                                               \
    X(ODK_E_GONE, "the service or device was terminated")                                          \
    X(ODK_E_TIMEOUT, "a deadline passed")                                                          \
    X(ODK_E_CANCELLED, "the operation was cancelled")                                              \
    X(ODK_E_BUSY, "the resource is held by someone else")                                          \
    X(ODK_E_UNSUPPORTED, "not supported")                                                          \
    X(ODK_E_STATE, "the object is in the wrong state for this operation")                          \
    X(ODK_E_LIMIT, "a documented limit was exceeded")                                              \
    X(ODK_E_MANIFEST, "a bundle manifest is invalid")                                              \
    X(ODK_E_LOAD, "a driver could not be loaded")                                                  \
    X(ODK_E_DISCONNECTED, "the peer closed the connection")                                        \
    X(ODK_E_AGAIN, "the operation would block")                                                    \
    X(ODK_E_DRIVER, "the driver failed the request")                                            \
    X(ODK_E_STALL, "the device stalled: it refused the request or halted the endpoint")          \
    X(ODK_E_OVERRUN, "the device sent more data than the buffer holds")

struct status_text {
    const char *name;
    const char *full;
};

#define ROW(code, text) [-(code)] = {#code, #code ": " text},
static const struct status_text texts[] = {STATUSES(ROW)};
#undef ROW

static const struct status_text *lookup(int status)
{
    if (status > 0 || status < ODK_STATUS_MIN)
        return 0;
    return &texts[-status];
}

const char *odk_status_name(int status)
{
    const struct status_text *t = lookup(status);
    return t ? t->name : "ODK_E_UNKNOWN";
}

const char *odk_strerror(int status)
{
    const struct status_text *t = lookup(status);
    return t ? t->full : "ODK_E_UNKNOWN: unknown status";
}
