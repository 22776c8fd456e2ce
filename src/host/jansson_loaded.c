/* SPDX-License-Identifier: MIT */
/* libjansson, loaded by the host at the first JSON conversion a driver
 * asks for (odk_value_from_json, odk_value_to_json: src/common/value_json.c),
 * not linked into every host (families/lazy_lib.h): the runtime itself
 * converts no JSON, so most hosts never load it.  odkd and odkctl link it
 * as before.  Until the library is loaded, or when it cannot be, each
 * function returns an error (NULL, -1, 0) or does nothing; json_loads
 * says why in its error.  A function value_json.c starts calling must be
 * added to JANSSON_FUNCTIONS (the host's link fails otherwise). */
#include <jansson.h>
#include <stdio.h>

#include "families/lazy_lib.h"

/* F(return type, name, parameters, arguments, value when not loaded);
 * V(name, parameters, arguments) for those returning nothing. */
#define JANSSON_FUNCTIONS(F, V)                                                                    \
    F(json_t *, json_array, (void), (), NULL)                                                      \
    F(int, json_array_append_new, (json_t * array, json_t * value), (array, value), -1)            \
    F(json_t *, json_array_get, (const json_t *array, size_t index), (array, index), NULL)         \
    F(size_t, json_array_size, (const json_t *array), (array), 0)                                  \
    V(json_delete, (json_t * json), (json))                                                        \
    F(char *, json_dumps, (const json_t *json, size_t flags), (json, flags), NULL)                 \
    F(json_t *, json_false, (void), (), NULL)                                                      \
    F(json_t *, json_integer, (json_int_t value), (value), NULL)                                   \
    F(json_int_t, json_integer_value, (const json_t *integer), (integer), 0)                       \
    F(json_t *, json_object, (void), (), NULL)                                                     \
    F(json_t *, json_object_get, (const json_t *object, const char *key), (object, key), NULL)     \
    F(void *, json_object_iter, (json_t * object), (object), NULL)                                 \
    F(const char *, json_object_iter_key, (void *iter), (iter), NULL)                              \
    F(void *, json_object_iter_next, (json_t * object, void *iter), (object, iter), NULL)          \
    F(json_t *, json_object_iter_value, (void *iter), (iter), NULL)                                \
    F(void *, json_object_key_to_iter, (const char *key), (key), NULL)                             \
    F(int, json_object_set_new, (json_t * object, const char *key, json_t *value),                 \
      (object, key, value), -1)                                                                    \
    F(size_t, json_object_size, (const json_t *object), (object), 0)                               \
    F(json_t *, json_string, (const char *value), (value), NULL)                                   \
    F(size_t, json_string_length, (const json_t *string), (string), 0)                             \
    F(const char *, json_string_value, (const json_t *string), (string), NULL)                     \
    F(json_t *, json_stringn, (const char *value, size_t len), (value, len), NULL)                 \
    F(json_t *, json_true, (void), (), NULL)

enum { JANSSON_FUNCTIONS(LAZY_INDEX_F, LAZY_INDEX_V) I_json_loads, N_FUNCTIONS };

static const char *const names[N_FUNCTIONS] = {
    JANSSON_FUNCTIONS(LAZY_NAME_F, LAZY_NAME_V) "json_loads"};
static void *fns[N_FUNCTIONS];
static struct lazy_lib libjansson = {"libjansson.so.4", "libjansson.so.4", names, fns,
                                     N_FUNCTIONS,       LAZY_UNTRIED};

#define LAZY_LIB libjansson
#define LAZY_FNS fns
#define LAZY_CALL
JANSSON_FUNCTIONS(LAZY_WRAP_F, LAZY_WRAP_V)

json_t *json_loads(const char *input, size_t flags, json_error_t *error)
{
    if (!lazy_lib_load(&libjansson)) {
        if (error) {
            *error = (json_error_t){.line = -1, .column = -1, .position = 0};
            snprintf(error->text, sizeof error->text, "libjansson.so.4 could not be loaded");
        }
        return NULL;
    }
    json_t *(*fn)(const char *, size_t, json_error_t *) =
        (json_t * (*)(const char *, size_t, json_error_t *)) fns[I_json_loads];
    return fn(input, flags, error);
}
