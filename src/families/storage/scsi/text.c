/* SPDX-License-Identifier: MIT */
/* Text into a caller's buffer, for the describers and formatters. */
#include <stdio.h>

#include "odk/status.h"
#include "scsi_internal.h"

void scsi_text_init(scsi_text *t, char *buf, size_t cap)
{
    t->buf = buf;
    t->cap = buf ? cap : 0;
    t->len = 0;
    t->truncated = 0;
    if (t->cap)
        buf[0] = 0;
}

void scsi_text_add(scsi_text *t, const char *fmt, ...)
{
    if (t->truncated)
        return;
    size_t room = t->cap > t->len ? t->cap - t->len : 0;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(room ? t->buf + t->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= room) {
        t->truncated = 1;
        t->len = room ? t->cap - 1 : t->len;
        return;
    }
    t->len += (size_t)n;
}

int scsi_text_status(const scsi_text *t)
{
    return t->truncated ? ODK_E_LIMIT : ODK_OK;
}
