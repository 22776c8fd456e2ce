/* SPDX-License-Identifier: MIT */
/* libfuse3, loaded by the serial family's CUSE ports at their first call
 * (cuse.c: cuse_lowlevel_new), not linked into every host
 * (families/lazy_lib.h).  Each function the host calls is defined here
 * and calls the library's, bound to the symbol version the headers
 * describe (FUSE_3.0, as the link would have); until the library is
 * loaded, or when it cannot be, each returns an error (-ENOSYS, NULL) or
 * does nothing.  A function cuse.c starts calling must be added to
 * FUSE_FUNCTIONS (the link fails otherwise: the host does not link
 * libfuse3). */
#define FUSE_USE_VERSION 35 /* as cuse.c */
#include <cuse_lowlevel.h>
#include <errno.h>
#include <stddef.h>

#include "families/lazy_lib.h"

/* F(return type, name, parameters, arguments, value when not loaded);
 * V(name, parameters, arguments) for those returning nothing. */
#define FUSE_FUNCTIONS(F, V)                                                                       \
    F(struct fuse_session *, cuse_lowlevel_new,                                                    \
      (struct fuse_args * args, const struct cuse_info *ci, const struct cuse_lowlevel_ops *clop,  \
       void *userdata),                                                                            \
      (args, ci, clop, userdata), NULL)                                                            \
    F(int, fuse_lowlevel_notify_poll, (struct fuse_pollhandle * ph), (ph), -ENOSYS)                \
    V(fuse_pollhandle_destroy, (struct fuse_pollhandle * ph), (ph))                                \
    F(int, fuse_reply_buf, (fuse_req_t req, const char *buf, size_t size), (req, buf, size),       \
      -ENOSYS)                                                                                     \
    F(int, fuse_reply_err, (fuse_req_t req, int err), (req, err), -ENOSYS)                         \
    F(int, fuse_reply_ioctl, (fuse_req_t req, int result, const void *buf, size_t size),           \
      (req, result, buf, size), -ENOSYS)                                                           \
    F(int, fuse_reply_ioctl_retry,                                                                 \
      (fuse_req_t req, const struct iovec *in_iov, size_t in_count, const struct iovec *out_iov,   \
       size_t out_count),                                                                          \
      (req, in_iov, in_count, out_iov, out_count), -ENOSYS)                                        \
    F(int, fuse_reply_open, (fuse_req_t req, const struct fuse_file_info *fi), (req, fi), -ENOSYS) \
    F(int, fuse_reply_poll, (fuse_req_t req, unsigned revents), (req, revents), -ENOSYS)           \
    F(int, fuse_reply_write, (fuse_req_t req, size_t count), (req, count), -ENOSYS)                \
    F(const struct fuse_ctx *, fuse_req_ctx, (fuse_req_t req), (req), NULL)                        \
    V(fuse_req_interrupt_func, (fuse_req_t req, fuse_interrupt_func_t func, void *data),           \
      (req, func, data))                                                                           \
    F(void *, fuse_req_userdata, (fuse_req_t req), (req), NULL)                                    \
    V(fuse_session_destroy, (struct fuse_session * se), (se))                                      \
    F(int, fuse_session_mount, (struct fuse_session * se, const char *mountpoint),                 \
      (se, mountpoint), -ENOSYS)                                                                   \
    V(fuse_session_process_buf, (struct fuse_session * se, const struct fuse_buf *buf), (se, buf))

enum { FUSE_FUNCTIONS(LAZY_INDEX_F, LAZY_INDEX_V) N_FUNCTIONS };

static const char *const names[N_FUNCTIONS] = {FUSE_FUNCTIONS(LAZY_NAME_F, LAZY_NAME_V)};
static void *fns[N_FUNCTIONS];
static struct lazy_lib libfuse = {"libfuse3.so.3", "FUSE_3.0",  names, fns,
                                  N_FUNCTIONS,     LAZY_UNTRIED};

#define LAZY_LIB libfuse
#define LAZY_FNS fns
#define LAZY_CALL
FUSE_FUNCTIONS(LAZY_WRAP_F, LAZY_WRAP_V)
