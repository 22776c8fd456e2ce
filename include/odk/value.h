/* SPDX-License-Identifier: MIT */
/* odk/value.h — typed property values: string, integer, boolean, data,
 * array and dictionary.  Registry properties, personalities, matching
 * dictionaries and control messages are all odk_values.
 *
 * Ownership: constructors return a new value the caller owns and frees with
 * odk_value_free().  Containers take ownership of values added to them
 * (also on failure: the added value is freed).  Getters borrow: the
 * returned pointer lives as long as its container is not modified or freed.
 *
 * Threads: a value is not locked.  Any number of threads may read one value
 * at once; a thread that modifies it (set, append, remove, free) must be
 * its only user meanwhile.  Nothing here blocks.  Functions that return a
 * pointer or a scalar never fail in other ways than documented; getters
 * given NULL or the wrong type return their "nothing" (NULL, 0, false).
 */
#ifndef ODK_VALUE_H
#define ODK_VALUE_H

#include "odk/export.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum odk_type {
    ODK_TYPE_STRING = 1,
    ODK_TYPE_INT = 2, /* signed 64-bit */
    ODK_TYPE_BOOL = 3,
    ODK_TYPE_DATA = 4, /* bytes */
    ODK_TYPE_ARRAY = 5,
    ODK_TYPE_DICT = 6, /* string keys, insertion order kept, keys unique */
} odk_type;

typedef struct odk_value odk_value;

/* Constructors: a new value, or NULL when out of memory.  new_string also
 * gives NULL for str NULL; new_stringn copies at most len bytes and stops at
 * the first NUL (strings never hold one), NULL for str NULL; new_data copies
 * len bytes, NULL for bytes NULL with len > 0. */
ODK_PUBLIC odk_value *odk_value_new_string(const char *str);
ODK_PUBLIC odk_value *odk_value_new_stringn(const char *str, size_t len);
ODK_PUBLIC odk_value *odk_value_new_int(int64_t v);
ODK_PUBLIC odk_value *odk_value_new_bool(bool v);
ODK_PUBLIC odk_value *odk_value_new_data(const void *bytes, size_t len);
ODK_PUBLIC odk_value *odk_value_new_array(void);
ODK_PUBLIC odk_value *odk_value_new_dict(void);

/* Frees v and everything it contains.  NULL is allowed. */
ODK_PUBLIC void odk_value_free(odk_value *v);
/* A new deep copy; NULL when out of memory or v is NULL. */
ODK_PUBLIC odk_value *odk_value_copy(const odk_value *v);
/* Deep equality: same type and same contents (dict order does not matter).
 * Two NULLs are equal; NULL and a value are not. */
ODK_PUBLIC bool odk_value_equal(const odk_value *a, const odk_value *b);

/* v's type; 0 (no odk_type) for NULL. */
ODK_PUBLIC odk_type odk_value_type(const odk_value *v);
/* "string", "integer", "boolean", "data", "array", "dictionary"; "unknown"
 * for anything else.  Static storage. */
ODK_PUBLIC const char *odk_type_name(odk_type t);

/* Scalar getters (borrowed).  Wrong type or NULL: string -> NULL, int -> 0,
 * bool -> false, data -> NULL with *len = 0 (len may be NULL).  Empty data
 * gives a valid non-NULL pointer. */
ODK_PUBLIC const char *odk_value_string(const odk_value *v);
ODK_PUBLIC int64_t odk_value_int(const odk_value *v);
ODK_PUBLIC bool odk_value_bool(const odk_value *v);
ODK_PUBLIC const void *odk_value_data(const odk_value *v, size_t *len);

/* Arrays.  count is 0 and get NULL (borrowed) for a non-array or an index
 * past the end.  append takes item, whatever it returns.  Errors:
 * ODK_E_NOMEM (out of memory, or item NULL: what a failed constructor gives),
 * ODK_E_INVALID (a not an array, or item == a). */
ODK_PUBLIC size_t odk_array_count(const odk_value *a);
ODK_PUBLIC const odk_value *odk_array_get(const odk_value *a, size_t i);
ODK_PUBLIC int odk_array_append(odk_value *a, odk_value *item);

/* Dictionaries.  count is 0, get / key_at / value_at NULL (borrowed) for a
 * non-dictionary, a missing key or an index past the end.  set takes item,
 * whatever it returns, and replaces (frees) the value of an existing key;
 * key is copied.  Errors: ODK_E_NOMEM (out of memory, or item NULL),
 * ODK_E_INVALID (d not a dictionary, key NULL, item == d). */
ODK_PUBLIC size_t odk_dict_count(const odk_value *d);
ODK_PUBLIC const odk_value *odk_dict_get(const odk_value *d, const char *key);
ODK_PUBLIC const char *odk_dict_key_at(const odk_value *d, size_t i);
ODK_PUBLIC const odk_value *odk_dict_value_at(const odk_value *d, size_t i);
ODK_PUBLIC int odk_dict_set(odk_value *d, const char *key, odk_value *item);
/* Removes and frees key's value.  Errors: ODK_E_INVALID (d not a dictionary,
 * key NULL), ODK_E_NOT_FOUND (key absent). */
ODK_PUBLIC int odk_dict_remove(odk_value *d, const char *key);

/* Shorthands for odk_dict_set with a new string (s copied), integer or
 * boolean.  Errors: ODK_E_NOMEM, ODK_E_INVALID (d not a dictionary, key
 * NULL, s NULL). */
ODK_PUBLIC int odk_dict_set_string(odk_value *d, const char *key, const char *s);
ODK_PUBLIC int odk_dict_set_int(odk_value *d, const char *key, int64_t v);
ODK_PUBLIC int odk_dict_set_bool(odk_value *d, const char *key, bool v);
/* Typed lookups: the value (a string is borrowed from d) when key exists with
 * that type, else dflt (also for NULL d or key). */
ODK_PUBLIC const char *odk_dict_get_string(const odk_value *d, const char *key, const char *dflt);
ODK_PUBLIC int64_t odk_dict_get_int(const odk_value *d, const char *key, int64_t dflt);
ODK_PUBLIC bool odk_dict_get_bool(const odk_value *d, const char *key, bool dflt);

/* Binary encoding, used on the wire.  encode sets *out to a new malloc'd
 * buffer (the caller frees it) and *out_len to its length.  Errors:
 * ODK_E_INVALID (a NULL), ODK_E_LIMIT (a length or count over 2^32 - 1, or
 * nesting over ODK_VALUE_MAX_DEPTH), ODK_E_NOMEM.  decode treats buf as
 * untrusted and sets *out to a new value.  Errors: ODK_E_INVALID (out NULL,
 * buf NULL with len > 0), ODK_E_PROTOCOL (malformed, duplicate keys, NUL in
 * a string or key, deeper than ODK_VALUE_MAX_DEPTH, trailing bytes),
 * ODK_E_NOMEM. */
#define ODK_VALUE_MAX_DEPTH 64
ODK_PUBLIC int odk_value_encode(const odk_value *v, void **out, size_t *out_len);
ODK_PUBLIC int odk_value_decode(const void *buf, size_t len, odk_value **out);

/* JSON text.  Integers are JSON integers; data is {"$data": "hex"}.
 * from_json sets *out to a new value.  Errors: ODK_E_INVALID (out or text
 * NULL; text not JSON, or holding null, reals, integers out of range,
 * duplicate keys, bad $data hex, nesting over ODK_VALUE_MAX_DEPTH),
 * ODK_E_NOMEM.  err (may be NULL) receives a sentence with the path
 * ("$.a[2]: null is not supported"), cut to err_len; "" on success.
 * to_json returns a new malloc'd string the caller frees; NULL when v is
 * NULL, a string or key is not UTF-8, or out of memory.  flags:
 * ODK_JSON_PRETTY (2-space indent), else compact. */
#define ODK_JSON_PRETTY 1
ODK_PUBLIC int odk_value_from_json(const char *text, odk_value **out, char *err, size_t err_len);
ODK_PUBLIC char *odk_value_to_json(const odk_value *v, int flags);

#ifdef __cplusplus
}
#endif
#endif
