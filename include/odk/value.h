/* odk/value.h — typed property values: string, integer, boolean, data,
 * array and dictionary.  Registry properties, personalities, matching
 * dictionaries and control messages are all odk_values.
 *
 * Ownership: constructors return a new value the caller owns and frees with
 * odk_value_free().  Containers take ownership of values added to them
 * (also on failure: the added value is freed).  Getters borrow: the
 * returned pointer lives as long as its container is not modified or freed.
 */
#ifndef ODK_VALUE_H
#define ODK_VALUE_H

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

/* Constructors; NULL only when out of memory (or str == NULL). */
odk_value *odk_value_new_string(const char *str);
odk_value *odk_value_new_stringn(const char *str, size_t len);
odk_value *odk_value_new_int(int64_t v);
odk_value *odk_value_new_bool(bool v);
odk_value *odk_value_new_data(const void *bytes, size_t len);
odk_value *odk_value_new_array(void);
odk_value *odk_value_new_dict(void);

/* Frees v and everything it contains.  NULL is allowed. */
void odk_value_free(odk_value *v);
/* Deep copy; NULL when out of memory. */
odk_value *odk_value_copy(const odk_value *v);
/* Deep equality: same type and same contents (dict order does not matter). */
bool odk_value_equal(const odk_value *a, const odk_value *b);

odk_type odk_value_type(const odk_value *v);
/* "string", "integer", "boolean", "data", "array", "dictionary". */
const char *odk_type_name(odk_type t);

/* Scalar getters.  Wrong type: string → NULL, int → 0, bool → false,
 * data → NULL with *len = 0. */
const char *odk_value_string(const odk_value *v);
int64_t odk_value_int(const odk_value *v);
bool odk_value_bool(const odk_value *v);
const void *odk_value_data(const odk_value *v, size_t *len);

/* Arrays.  append takes ownership of item. */
size_t odk_array_count(const odk_value *a);
const odk_value *odk_array_get(const odk_value *a, size_t i);
int odk_array_append(odk_value *a, odk_value *item);

/* Dictionaries.  set takes ownership of item and replaces an existing key. */
size_t odk_dict_count(const odk_value *d);
const odk_value *odk_dict_get(const odk_value *d, const char *key);
const char *odk_dict_key_at(const odk_value *d, size_t i);
const odk_value *odk_dict_value_at(const odk_value *d, size_t i);
int odk_dict_set(odk_value *d, const char *key, odk_value *item);
/* ODK_E_NOT_FOUND when the key is absent. */
int odk_dict_remove(odk_value *d, const char *key);

/* Shorthands for dictionaries; each returns ODK_E_NOMEM or ODK_OK. */
int odk_dict_set_string(odk_value *d, const char *key, const char *s);
int odk_dict_set_int(odk_value *d, const char *key, int64_t v);
int odk_dict_set_bool(odk_value *d, const char *key, bool v);
/* Typed lookups: the value when key exists with that type, else the default. */
const char *odk_dict_get_string(const odk_value *d, const char *key, const char *dflt);
int64_t odk_dict_get_int(const odk_value *d, const char *key, int64_t dflt);
bool odk_dict_get_bool(const odk_value *d, const char *key, bool dflt);

/* Binary encoding, used on the wire.  encode returns a malloc'd buffer the
 * caller frees.  decode treats its input as untrusted: it checks every
 * length and nesting depth (ODK_VALUE_MAX_DEPTH) and answers ODK_E_PROTOCOL
 * for anything malformed or with trailing bytes. */
#define ODK_VALUE_MAX_DEPTH 64
int odk_value_encode(const odk_value *v, void **out, size_t *out_len);
int odk_value_decode(const void *buf, size_t len, odk_value **out);

/* JSON text.  Integers are JSON integers; data is {"$data": "hex"}.
 * from_json returns ODK_E_INVALID with a message in err (may be NULL) for
 * text that is not JSON or holds null, reals or integers out of range.
 * to_json returns a malloc'd string; flags: ODK_JSON_PRETTY. */
#define ODK_JSON_PRETTY 1
int odk_value_from_json(const char *text, odk_value **out, char *err, size_t err_len);
char *odk_value_to_json(const odk_value *v, int flags);

#ifdef __cplusplus
}
#endif
#endif
