/* SPDX-License-Identifier: MIT */
/* msg.h — building a message dictionary with every step checked.
 *
 * A reply or event is built field by field; any failed step (out of
 * memory) is remembered, later steps do nothing, and msg_finish reports
 * the first failure, so a message goes out complete or not at all:
 *
 *     struct msg m = msg_begin();
 *     msg_str(&m, "op", "stop");
 *     msg_int(&m, "instance", in->id);
 *     odk_value *v;
 *     int st = msg_finish(&m, &v);    // ODK_OK, or ODK_E_NOMEM and v == NULL
 */
#ifndef ODK_DAEMON_MSG_H
#define ODK_DAEMON_MSG_H

#include <stdbool.h>
#include <stdint.h>

#include "odk/status.h"
#include "odk/value.h"

struct msg {
    odk_value *dict;
    int status; /* the first failure, or ODK_OK */
};

static inline struct msg msg_begin(void)
{
    odk_value *v = odk_value_new_dict();
    return (struct msg){v, v ? ODK_OK : ODK_E_NOMEM};
}

/* Takes ownership of value (freed if the message already failed). */
static inline void msg_take(struct msg *m, const char *key, odk_value *value)
{
    if (m->status == ODK_OK && !value)
        m->status = ODK_E_NOMEM;
    if (m->status != ODK_OK) {
        odk_value_free(value);
        return;
    }
    m->status = odk_dict_set(m->dict, key, value);
}

static inline void msg_str(struct msg *m, const char *key, const char *s)
{
    if (m->status == ODK_OK)
        m->status = odk_dict_set_string(m->dict, key, s ? s : "");
}

static inline void msg_int(struct msg *m, const char *key, int64_t v)
{
    if (m->status == ODK_OK)
        m->status = odk_dict_set_int(m->dict, key, v);
}

static inline void msg_bool(struct msg *m, const char *key, bool v)
{
    if (m->status == ODK_OK)
        m->status = odk_dict_set_bool(m->dict, key, v);
}

/* A deep copy of value (NULL copies as an empty dictionary). */
static inline void msg_copy(struct msg *m, const char *key, const odk_value *value)
{
    msg_take(m, key, value ? odk_value_copy(value) : odk_value_new_dict());
}

/* Hands the dictionary to *out (caller owns) or frees it and returns the
 * first failure with *out = NULL. */
static inline int msg_finish(struct msg *m, odk_value **out)
{
    if (m->status != ODK_OK) {
        odk_value_free(m->dict);
        *out = NULL;
        return m->status;
    }
    *out = m->dict;
    return ODK_OK;
}

/* For a message that must go out even if incomplete is not an option:
 * returns the dictionary or NULL (the caller treats NULL as out of memory). */
static inline odk_value *msg_done(struct msg *m)
{
    odk_value *v;
    msg_finish(m, &v);
    return v;
}

#endif
