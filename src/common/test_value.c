/* SPDX-License-Identifier: MIT */
/* test_value.c — odk_value: types, containers, copy/equal, the binary
 * encoding (with hostile input) and JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "odk/status.h"
#include "odk/value.h"

/* ---- helpers ------------------------------------------------------------ */

/* A nested value touching every type, including empty containers, empty
 * strings and data, and the integer extremes. */
static odk_value *sample(void)
{
    odk_value *d = odk_value_new_dict();
    assert_non_null(d);
    assert_int_equal(odk_dict_set_string(d, "name", "Echo"), ODK_OK);
    assert_int_equal(odk_dict_set_string(d, "empty", ""), ODK_OK);
    assert_int_equal(odk_dict_set_int(d, "min", INT64_MIN), ODK_OK);
    assert_int_equal(odk_dict_set_int(d, "max", INT64_MAX), ODK_OK);
    assert_int_equal(odk_dict_set_int(d, "neg", -5), ODK_OK);
    assert_int_equal(odk_dict_set_bool(d, "yes", true), ODK_OK);
    assert_int_equal(odk_dict_set_bool(d, "no", false), ODK_OK);
    assert_int_equal(odk_dict_set(d, "bytes", odk_value_new_data("\x00\x01\xfe\xff", 4)), ODK_OK);
    assert_int_equal(odk_dict_set(d, "nobytes", odk_value_new_data(NULL, 0)), ODK_OK);
    assert_int_equal(odk_dict_set(d, "", odk_value_new_string("empty key")), ODK_OK);

    odk_value *arr = odk_value_new_array();
    assert_int_equal(odk_array_append(arr, odk_value_new_int(1)), ODK_OK);
    assert_int_equal(odk_array_append(arr, odk_value_new_string("two")), ODK_OK);
    assert_int_equal(odk_array_append(arr, odk_value_new_array()), ODK_OK);
    assert_int_equal(odk_array_append(arr, odk_value_new_dict()), ODK_OK);
    odk_value *inner = odk_value_new_dict();
    assert_int_equal(odk_dict_set_int(inner, "IOProbeScore", 1000), ODK_OK);
    assert_int_equal(odk_dict_set_string(inner, "IOClass", "EchoDriver"), ODK_OK);
    assert_int_equal(odk_array_append(arr, inner), ODK_OK);
    assert_int_equal(odk_dict_set(d, "list", arr), ODK_OK);
    return d;
}

static odk_value *nested_arrays(int levels)
{
    odk_value *v = odk_value_new_array();
    for (int i = 1; i < levels; i++) {
        odk_value *outer = odk_value_new_array();
        assert_int_equal(odk_array_append(outer, v), ODK_OK);
        v = outer;
    }
    return v;
}

static void encode_ok(const odk_value *v, unsigned char **buf, size_t *len)
{
    void *p;
    assert_int_equal(odk_value_encode(v, &p, len), ODK_OK);
    *buf = p;
}

static int decode(const void *buf, size_t len)
{
    odk_value *v = (odk_value *)1;
    int rc = odk_value_decode(buf, len, &v);
    if (rc != ODK_OK)
        assert_null(v);
    odk_value_free(v);
    return rc;
}

/* Little-endian writers for hand-made encodings. */
static size_t put_u32(unsigned char *p, uint32_t x)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(x >> (8 * i));
    return 4;
}

/* ---- constructors and getters ------------------------------------------ */

static void test_scalars(void **state)
{
    (void)state;
    odk_value *s = odk_value_new_string("hello");
    assert_int_equal(odk_value_type(s), ODK_TYPE_STRING);
    assert_string_equal(odk_value_string(s), "hello");
    assert_int_equal(odk_value_int(s), 0);
    assert_false(odk_value_bool(s));
    size_t len = 99;
    assert_null(odk_value_data(s, &len));
    assert_int_equal(len, 0);
    odk_value_free(s);

    s = odk_value_new_stringn("hello", 3);
    assert_string_equal(odk_value_string(s), "hel");
    odk_value_free(s);
    /* stringn stops at a NUL like strndup: strings never hold one. */
    s = odk_value_new_stringn("ab\0cd", 5);
    assert_string_equal(odk_value_string(s), "ab");
    odk_value_free(s);
    assert_null(odk_value_new_string(NULL));
    assert_null(odk_value_new_stringn(NULL, 3));

    odk_value *i = odk_value_new_int(INT64_MIN);
    assert_int_equal(odk_value_type(i), ODK_TYPE_INT);
    assert_true(odk_value_int(i) == INT64_MIN);
    assert_null(odk_value_string(i));
    odk_value_free(i);

    odk_value *b = odk_value_new_bool(true);
    assert_int_equal(odk_value_type(b), ODK_TYPE_BOOL);
    assert_true(odk_value_bool(b));
    assert_int_equal(odk_value_int(b), 0);
    odk_value_free(b);

    odk_value *d = odk_value_new_data("\x00\x01\x02", 3);
    assert_int_equal(odk_value_type(d), ODK_TYPE_DATA);
    const unsigned char *p = odk_value_data(d, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(p, "\x00\x01\x02", 3);
    assert_null(odk_value_string(d));
    odk_value_free(d);

    d = odk_value_new_data(NULL, 0);
    assert_non_null(odk_value_data(d, &len));
    assert_int_equal(len, 0);
    odk_value_free(d);
    assert_null(odk_value_new_data(NULL, 1));

    odk_value_free(NULL);
    assert_null(odk_value_string(NULL));
    assert_null(odk_value_data(NULL, NULL));
}

static void test_type_names(void **state)
{
    (void)state;
    assert_string_equal(odk_type_name(ODK_TYPE_STRING), "string");
    assert_string_equal(odk_type_name(ODK_TYPE_INT), "integer");
    assert_string_equal(odk_type_name(ODK_TYPE_BOOL), "boolean");
    assert_string_equal(odk_type_name(ODK_TYPE_DATA), "data");
    assert_string_equal(odk_type_name(ODK_TYPE_ARRAY), "array");
    assert_string_equal(odk_type_name(ODK_TYPE_DICT), "dictionary");
    assert_non_null(odk_type_name((odk_type)0));
}

/* ---- containers --------------------------------------------------------- */

static void test_array(void **state)
{
    (void)state;
    odk_value *a = odk_value_new_array();
    assert_int_equal(odk_value_type(a), ODK_TYPE_ARRAY);
    assert_int_equal(odk_array_count(a), 0);
    assert_null(odk_array_get(a, 0));
    for (int i = 0; i < 100; i++)
        assert_int_equal(odk_array_append(a, odk_value_new_int(i)), ODK_OK);
    assert_int_equal(odk_array_count(a), 100);
    for (int i = 0; i < 100; i++)
        assert_int_equal(odk_value_int(odk_array_get(a, (size_t)i)), i);
    assert_null(odk_array_get(a, 100));
    assert_int_equal(odk_dict_count(a), 0);
    assert_null(odk_dict_get(a, "x"));
    odk_value_free(a);
    assert_int_equal(odk_array_count(NULL), 0);
}

static void test_dict(void **state)
{
    (void)state;
    odk_value *d = odk_value_new_dict();
    assert_int_equal(odk_value_type(d), ODK_TYPE_DICT);
    assert_int_equal(odk_dict_set_string(d, "b", "1"), ODK_OK);
    assert_int_equal(odk_dict_set_int(d, "a", 2), ODK_OK);
    assert_int_equal(odk_dict_set_bool(d, "c", true), ODK_OK);
    assert_int_equal(odk_dict_count(d), 3);
    assert_string_equal(odk_dict_key_at(d, 0), "b");
    assert_string_equal(odk_dict_key_at(d, 1), "a");
    assert_string_equal(odk_dict_key_at(d, 2), "c");
    assert_null(odk_dict_key_at(d, 3));
    assert_null(odk_dict_value_at(d, 3));
    assert_int_equal(odk_value_int(odk_dict_value_at(d, 1)), 2);

    /* Replacing keeps the key's position and the count. */
    assert_int_equal(odk_dict_set_int(d, "b", 7), ODK_OK);
    assert_int_equal(odk_dict_count(d), 3);
    assert_string_equal(odk_dict_key_at(d, 0), "b");
    assert_int_equal(odk_dict_get_int(d, "b", -1), 7);

    /* Typed lookups fall back to the default on absence or wrong type. */
    assert_string_equal(odk_dict_get_string(d, "x", "dflt"), "dflt");
    assert_string_equal(odk_dict_get_string(d, "a", "dflt"), "dflt");
    assert_int_equal(odk_dict_get_int(d, "c", 42), 42);
    assert_true(odk_dict_get_bool(d, "c", false));
    assert_true(odk_dict_get_bool(d, "a", true));
    assert_null(odk_dict_get(d, NULL));
    assert_null(odk_dict_get(NULL, "a"));

    assert_int_equal(odk_dict_remove(d, "a"), ODK_OK);
    assert_int_equal(odk_dict_remove(d, "a"), ODK_E_NOT_FOUND);
    assert_int_equal(odk_dict_count(d), 2);
    assert_string_equal(odk_dict_key_at(d, 0), "b");
    assert_string_equal(odk_dict_key_at(d, 1), "c");
    assert_null(odk_dict_get(d, "a"));
    assert_int_equal(odk_array_count(d), 0);
    odk_value_free(d);
}

/* Enough keys to go past the linear-search size, with removals in the
 * middle, so indexed lookup agrees with insertion order. */
static void test_dict_large(void **state)
{
    (void)state;
    enum { N = 2000 };
    char key[32];
    odk_value *d = odk_value_new_dict();
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "key%d", i);
        assert_int_equal(odk_dict_set_int(d, key, i), ODK_OK);
    }
    assert_int_equal(odk_dict_count(d), N);
    for (int i = 0; i < N; i += 3) {
        snprintf(key, sizeof(key), "key%d", i);
        assert_int_equal(odk_dict_remove(d, key), ODK_OK);
    }
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "key%d", i);
        if (i % 3 == 0) {
            assert_null(odk_dict_get(d, key));
        } else {
            assert_int_equal(odk_dict_get_int(d, key, -1), i);
        }
    }
    size_t pos = 0;
    for (int i = 0; i < N; i++) {
        if (i % 3 == 0)
            continue;
        snprintf(key, sizeof(key), "key%d", i);
        assert_string_equal(odk_dict_key_at(d, pos), key);
        pos++;
    }
    assert_int_equal(odk_dict_count(d), pos);
    /* Remove down to empty and refill: the index must follow. */
    while (odk_dict_count(d))
        assert_int_equal(odk_dict_remove(d, odk_dict_key_at(d, odk_dict_count(d) / 2)), ODK_OK);
    for (int i = 0; i < 50; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(odk_dict_set_int(d, key, i), ODK_OK);
        assert_int_equal(odk_dict_set_int(d, key, i + 1), ODK_OK);
    }
    assert_int_equal(odk_dict_count(d), 50);
    assert_int_equal(odk_dict_get_int(d, "k49", 0), 50);
    odk_value_free(d);
}

/* Containers own what is handed to them even when they refuse it;
 * LeakSanitizer catches a leak here. */
static void test_ownership_on_failure(void **state)
{
    (void)state;
    odk_value *d = odk_value_new_dict();
    odk_value *a = odk_value_new_array();
    odk_value *s = odk_value_new_string("x");

    assert_int_equal(odk_array_append(d, odk_value_new_string("x")), ODK_E_INVALID);
    assert_int_equal(odk_array_append(s, odk_value_new_int(1)), ODK_E_INVALID);
    assert_int_equal(odk_array_append(NULL, odk_value_new_int(1)), ODK_E_INVALID);
    assert_int_equal(odk_dict_set(a, "k", odk_value_new_string("x")), ODK_E_INVALID);
    assert_int_equal(odk_dict_set(NULL, "k", odk_value_new_dict()), ODK_E_INVALID);
    assert_int_equal(odk_dict_set(d, NULL, odk_value_new_array()), ODK_E_INVALID);
    assert_int_equal(odk_dict_set_int(a, "k", 1), ODK_E_INVALID);
    /* A NULL item is what a failed constructor gives. */
    assert_int_equal(odk_array_append(a, NULL), ODK_E_NOMEM);
    assert_int_equal(odk_dict_set(d, "k", NULL), ODK_E_NOMEM);
    assert_int_equal(odk_dict_set_string(d, "k", NULL), ODK_E_INVALID);
    assert_int_equal(odk_dict_remove(a, "k"), ODK_E_INVALID);
    assert_int_equal(odk_dict_count(d), 0);
    assert_int_equal(odk_array_count(a), 0);

    /* Replacing a key frees the old value. */
    assert_int_equal(odk_dict_set(d, "k", odk_value_new_string("old")), ODK_OK);
    assert_int_equal(odk_dict_set(d, "k", odk_value_new_string("new")), ODK_OK);
    assert_string_equal(odk_dict_get_string(d, "k", NULL), "new");

    odk_value_free(s);
    odk_value_free(a);
    odk_value_free(d);
}

/* ---- copy and equality --------------------------------------------------- */

static void test_copy_equal(void **state)
{
    (void)state;
    odk_value *v = sample();
    odk_value *c = odk_value_copy(v);
    assert_non_null(c);
    assert_ptr_not_equal(c, v);
    assert_true(odk_value_equal(v, c));
    assert_true(odk_value_equal(c, v));
    /* The copy is deep: changing it leaves the original alone. */
    assert_int_equal(odk_dict_set_int(c, "neg", -6), ODK_OK);
    assert_false(odk_value_equal(v, c));
    assert_int_equal(odk_dict_get_int(v, "neg", 0), -5);
    odk_value_free(c);
    odk_value_free(v);

    assert_true(odk_value_equal(NULL, NULL));
    odk_value *one = odk_value_new_int(1);
    odk_value *t = odk_value_new_bool(true);
    odk_value *s = odk_value_new_string("ab");
    odk_value *data = odk_value_new_data("ab", 2);
    assert_false(odk_value_equal(one, NULL));
    assert_false(odk_value_equal(NULL, one));
    assert_false(odk_value_equal(one, t));
    assert_false(odk_value_equal(s, data));
    odk_value_free(one);
    odk_value_free(t);
    odk_value_free(s);
    odk_value_free(data);
    assert_null(odk_value_copy(NULL));
}

static void test_equal_dict_order(void **state)
{
    (void)state;
    odk_value *a = odk_value_new_dict();
    odk_value *b = odk_value_new_dict();
    char key[16];
    for (int i = 0; i < 40; i++) {
        snprintf(key, sizeof(key), "%d", i);
        odk_dict_set_int(a, key, i);
        snprintf(key, sizeof(key), "%d", 39 - i);
        odk_dict_set_int(b, key, 39 - i);
    }
    assert_true(odk_value_equal(a, b));
    odk_dict_set_int(b, "0", 1);
    assert_false(odk_value_equal(a, b));
    odk_dict_set_int(b, "0", 0);
    odk_dict_set_int(b, "extra", 0);
    assert_false(odk_value_equal(a, b));
    assert_false(odk_value_equal(b, a));
    /* Same count, different keys. */
    odk_dict_remove(b, "5");
    assert_false(odk_value_equal(a, b));
    odk_value_free(a);
    odk_value_free(b);

    /* Arrays are ordered. */
    a = odk_value_new_array();
    b = odk_value_new_array();
    odk_array_append(a, odk_value_new_int(1));
    odk_array_append(a, odk_value_new_int(2));
    odk_array_append(b, odk_value_new_int(2));
    odk_array_append(b, odk_value_new_int(1));
    assert_false(odk_value_equal(a, b));
    odk_value_free(a);
    odk_value_free(b);
}

/* ---- binary encoding ------------------------------------------------------ */

static void test_encode_layout(void **state)
{
    (void)state;
    unsigned char *buf;
    size_t len;

    odk_value *v = odk_value_new_int(-2);
    encode_ok(v, &buf, &len);
    assert_int_equal(len, 9);
    assert_memory_equal(buf, "\x02\xfe\xff\xff\xff\xff\xff\xff\xff", 9);
    free(buf);
    odk_value_free(v);

    v = odk_value_new_dict();
    odk_dict_set_string(v, "k", "ab");
    odk_dict_set_bool(v, "t", true);
    encode_ok(v, &buf, &len);
    static const unsigned char want[] = {6,   2,   0, 0, 0, /* dict, 2 */
                                         1,   0,   0, 0, 'k', 1, 2,   0, 0, 0,
                                         'a', 'b', 1, 0, 0,   0, 't', 3, 1};
    assert_int_equal(len, sizeof(want));
    assert_memory_equal(buf, want, sizeof(want));
    free(buf);
    odk_value_free(v);

    v = odk_value_new_data("\x00\xff", 2);
    encode_ok(v, &buf, &len);
    assert_int_equal(len, 7);
    assert_memory_equal(buf, "\x04\x02\x00\x00\x00\x00\xff", 7);
    free(buf);
    odk_value_free(v);

    /* status.h: a failed call sets the pointer out-parameter to NULL and
     * leaves the length alone. */
    buf = (unsigned char *)&len;
    len = 42;
    assert_int_equal(odk_value_encode(NULL, (void **)&buf, &len), ODK_E_INVALID);
    assert_null(buf);
    assert_int_equal(len, 42);
}

static void test_round_trip(void **state)
{
    (void)state;
    odk_value *v = sample();
    /* Put the sample inside itself a few times for depth. */
    for (int i = 0; i < 3; i++) {
        odk_value *outer = odk_value_new_dict();
        odk_dict_set(outer, "copy", odk_value_copy(v));
        odk_dict_set(outer, "orig", v);
        v = outer;
    }
    unsigned char *buf;
    size_t len;
    encode_ok(v, &buf, &len);
    odk_value *back;
    assert_int_equal(odk_value_decode(buf, len, &back), ODK_OK);
    assert_true(odk_value_equal(v, back));
    /* Insertion order survives too. */
    assert_string_equal(odk_dict_key_at(back, 0), "copy");
    const odk_value *innermost = back;
    for (int i = 0; i < 3; i++)
        innermost = odk_dict_get(innermost, "orig");
    assert_string_equal(odk_dict_key_at(innermost, 2), "min");
    odk_value_free(back);
    free(buf);
    odk_value_free(v);

    /* Every scalar at top level. */
    odk_value *tops[] = {odk_value_new_string(""),  odk_value_new_int(0),
                         odk_value_new_bool(false), odk_value_new_data(NULL, 0),
                         odk_value_new_array(),     odk_value_new_dict()};
    for (size_t i = 0; i < sizeof(tops) / sizeof(tops[0]); i++) {
        encode_ok(tops[i], &buf, &len);
        assert_int_equal(odk_value_decode(buf, len, &back), ODK_OK);
        assert_true(odk_value_equal(tops[i], back));
        odk_value_free(back);
        free(buf);
        odk_value_free(tops[i]);
    }
}

static void test_decode_every_prefix(void **state)
{
    (void)state;
    odk_value *v = sample();
    unsigned char *buf;
    size_t len;
    encode_ok(v, &buf, &len);
    for (size_t n = 0; n < len; n++) {
        /* A heap copy of exactly n bytes, so ASan sees any over-read. */
        unsigned char *prefix = malloc(n ? n : 1);
        memcpy(prefix, buf, n);
        assert_int_equal(decode(prefix, n), ODK_E_PROTOCOL);
        free(prefix);
    }
    assert_int_equal(decode(buf, len), ODK_OK);
    free(buf);
    odk_value_free(v);
    assert_int_equal(decode(NULL, 0), ODK_E_PROTOCOL);
}

static void test_decode_trailing(void **state)
{
    (void)state;
    odk_value *v = sample();
    unsigned char *buf;
    size_t len;
    encode_ok(v, &buf, &len);
    unsigned char *more = malloc(len + 1);
    memcpy(more, buf, len);
    more[len] = 0;
    assert_int_equal(decode(more, len + 1), ODK_E_PROTOCOL);
    free(more);
    free(buf);
    odk_value_free(v);

    /* Two values back to back are not one value. */
    static const unsigned char two[] = {3, 1, 3, 0};
    assert_int_equal(decode(two, sizeof(two)), ODK_E_PROTOCOL);
    assert_int_equal(decode(two, 2), ODK_OK);
}

/* Lengths and counts that promise more than the buffer holds must be
 * rejected before anything that size is allocated. */
static void test_decode_lying_lengths(void **state)
{
    (void)state;
    unsigned char b[32];
    const uint32_t lies[] = {0xffffffffu, 0x80000000u, 0x10000000u, 100, 5};
    for (size_t i = 0; i < sizeof(lies) / sizeof(lies[0]); i++) {
        /* string / data: length beyond the 4 bytes that follow */
        for (unsigned type = ODK_TYPE_STRING; type <= ODK_TYPE_DATA; type += 3) {
            b[0] = (unsigned char)type;
            put_u32(b + 1, lies[i]);
            memcpy(b + 5, "abcd", 4);
            assert_int_equal(decode(b, 9), ODK_E_PROTOCOL);
        }
        /* array / dict: count beyond what the bytes could hold */
        for (unsigned type = ODK_TYPE_ARRAY; type <= ODK_TYPE_DICT; type++) {
            b[0] = (unsigned char)type;
            put_u32(b + 1, lies[i]);
            memset(b + 5, 0, 8);
            b[5] = ODK_TYPE_BOOL;
            assert_int_equal(decode(b, 13), ODK_E_PROTOCOL);
        }
        /* dict key length lie */
        b[0] = ODK_TYPE_DICT;
        put_u32(b + 1, 1);
        put_u32(b + 5, lies[i]);
        b[9] = ODK_TYPE_BOOL;
        b[10] = 1;
        assert_int_equal(decode(b, 11), ODK_E_PROTOCOL);
    }
    /* A length that is right by one byte short. */
    b[0] = ODK_TYPE_STRING;
    put_u32(b + 1, 3);
    memcpy(b + 5, "ab", 2);
    assert_int_equal(decode(b, 7), ODK_E_PROTOCOL);
    memcpy(b + 5, "abc", 3);
    assert_int_equal(decode(b, 8), ODK_OK);
}

static void test_decode_bad_content(void **state)
{
    (void)state;
    /* Unknown type bytes. */
    const unsigned char types[] = {0, 7, 8, 0x80, 0xff};
    for (size_t i = 0; i < sizeof(types); i++) {
        unsigned char b[9] = {types[i]};
        for (size_t n = 1; n <= sizeof(b); n++)
            assert_int_equal(decode(b, n), ODK_E_PROTOCOL);
    }
    /* Booleans are 0 or 1. */
    assert_int_equal(decode("\x03\x02", 2), ODK_E_PROTOCOL);
    assert_int_equal(decode("\x03\xff", 2), ODK_E_PROTOCOL);
    /* Embedded NUL in a string or a key; data may hold NULs. */
    assert_int_equal(decode("\x01\x03\x00\x00\x00"
                            "a\0b",
                            8),
                     ODK_E_PROTOCOL);
    assert_int_equal(decode("\x04\x03\x00\x00\x00"
                            "a\0b",
                            8),
                     ODK_OK);
    assert_int_equal(decode("\x06\x01\x00\x00\x00\x02\x00\x00\x00"
                            "a\0"
                            "\x03\x01",
                            13),
                     ODK_E_PROTOCOL);
    assert_int_equal(decode("\x06\x01\x00\x00\x00\x02\x00\x00\x00"
                            "ab"
                            "\x03\x01",
                            13),
                     ODK_OK);
}

static void test_decode_dup_keys(void **state)
{
    (void)state;
    assert_int_equal(decode("\x06\x02\x00\x00\x00"
                            "\x01\x00\x00\x00k\x03\x01"
                            "\x01\x00\x00\x00k\x03\x00",
                            19),
                     ODK_E_PROTOCOL);
    assert_int_equal(decode("\x06\x02\x00\x00\x00"
                            "\x01\x00\x00\x00k\x03\x01"
                            "\x01\x00\x00\x00K\x03\x00",
                            19),
                     ODK_OK);

    /* A large dictionary with one duplicate at the end. */
    enum { N = 500 };
    unsigned char *b = malloc(5 + (size_t)(N + 1) * 16);
    size_t n = 0;
    b[n++] = ODK_TYPE_DICT;
    n += put_u32(b + n, N + 1);
    for (int i = 0; i <= N; i++) {
        char key[8];
        snprintf(key, sizeof(key), "%05d", i == N ? 123 : i);
        n += put_u32(b + n, 5);
        memcpy(b + n, key, 5);
        n += 5;
        b[n++] = ODK_TYPE_BOOL;
        b[n++] = 1;
    }
    assert_int_equal(decode(b, n), ODK_E_PROTOCOL);
    /* Same with the last key unique. */
    memcpy(b + n - 7, "99999", 5);
    odk_value *v;
    assert_int_equal(odk_value_decode(b, n, &v), ODK_OK);
    assert_int_equal(odk_dict_count(v), N + 1);
    assert_true(odk_dict_get_bool(v, "99999", false));
    odk_value_free(v);
    free(b);
}

static void test_depth(void **state)
{
    (void)state;
    unsigned char *buf;
    size_t len;
    odk_value *ok = nested_arrays(ODK_VALUE_MAX_DEPTH);
    encode_ok(ok, &buf, &len);
    odk_value *back;
    assert_int_equal(odk_value_decode(buf, len, &back), ODK_OK);
    assert_true(odk_value_equal(ok, back));
    odk_value_free(back);
    free(buf);
    odk_value_free(ok);

    /* One more level: encode refuses it, and so does decode of a
     * hand-made encoding. */
    odk_value *deep = nested_arrays(ODK_VALUE_MAX_DEPTH + 1);
    void *p = (void *)1;
    assert_int_equal(odk_value_encode(deep, &p, &len), ODK_E_LIMIT);
    assert_null(p);
    odk_value_free(deep);

    /* Far deeper than the limit, with dictionaries, so a recursive decoder
     * without the check would blow the stack. */
    enum { LEVELS = 100000 };
    unsigned char *b = malloc((size_t)LEVELS * 10 + 5);
    size_t n = 0;
    for (int i = 0; i < LEVELS; i++) {
        b[n++] = (unsigned char)(i % 2 ? ODK_TYPE_ARRAY : ODK_TYPE_DICT);
        n += put_u32(b + n, 1);
        if (i % 2 == 0) {
            n += put_u32(b + n, 1);
            b[n++] = 'k';
        }
    }
    b[n++] = ODK_TYPE_BOOL;
    b[n++] = 0;
    assert_int_equal(decode(b, n), ODK_E_PROTOCOL);

    /* Exactly at the limit and one past, hand-made. */
    n = 0;
    for (int i = 0; i < ODK_VALUE_MAX_DEPTH; i++) {
        b[n++] = ODK_TYPE_ARRAY;
        n += put_u32(b + n, 1);
    }
    b[n++] = ODK_TYPE_INT;
    memset(b + n, 0, 8);
    n += 8;
    assert_int_equal(decode(b, n), ODK_OK);
    memmove(b + 5, b, n);
    b[0] = ODK_TYPE_ARRAY;
    put_u32(b + 1, 1);
    assert_int_equal(decode(b, n + 5), ODK_E_PROTOCOL);
    free(b);
}

/* xorshift64*: deterministic, so a failure reproduces. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

/* Whatever decode accepts must encode back to the same bytes (the encoding
 * is canonical) and decode again to an equal value. */
static void check_garbage(const unsigned char *b, size_t n)
{
    odk_value *v = (odk_value *)1;
    int rc = odk_value_decode(b, n, &v);
    if (rc != ODK_OK) {
        assert_int_equal(rc, ODK_E_PROTOCOL);
        assert_null(v);
        return;
    }
    unsigned char *re;
    size_t relen;
    encode_ok(v, &re, &relen);
    assert_int_equal(relen, n);
    assert_memory_equal(re, b, n);
    free(re);
    odk_value_free(v);
}

static void test_decode_garbage(void **state)
{
    (void)state;
    /* Pure noise, with type bytes biased towards valid ones. */
    for (int iter = 0; iter < 200000; iter++) {
        size_t n = rnd() % 48;
        unsigned char *b = malloc(n ? n : 1);
        for (size_t i = 0; i < n; i++) {
            uint64_t r = rnd();
            b[i] = (unsigned char)(r % 4 == 0   ? 1 + (r >> 8) % 6
                                   : r % 4 == 1 ? (r >> 8) % 3
                                                : r >> 8);
        }
        check_garbage(b, n);
        free(b);
    }
    /* Mutations of a valid encoding: flipped bits, overwritten bytes. */
    odk_value *v = sample();
    unsigned char *good;
    size_t len;
    encode_ok(v, &good, &len);
    unsigned char *b = malloc(len);
    for (int iter = 0; iter < 50000; iter++) {
        memcpy(b, good, len);
        int edits = 1 + (int)(rnd() % 4);
        for (int e = 0; e < edits; e++) {
            size_t at = rnd() % len;
            if (rnd() % 2)
                b[at] ^= (unsigned char)(1u << (rnd() % 8));
            else
                b[at] = (unsigned char)rnd();
        }
        check_garbage(b, len - rnd() % 3);
    }
    free(b);
    free(good);
    odk_value_free(v);
}

/* ---- JSON ----------------------------------------------------------------- */

static odk_value *json_ok(const char *text)
{
    char err[256] = "";
    odk_value *v = NULL;
    int rc = odk_value_from_json(text, &v, err, sizeof(err));
    if (rc != ODK_OK)
        fail_msg("from_json(%s): %s", text, err);
    return v;
}

static void json_fails(const char *text, const char *want_err)
{
    char err[256] = "";
    odk_value *v = (odk_value *)1;
    assert_int_equal(odk_value_from_json(text, &v, err, sizeof(err)), ODK_E_INVALID);
    assert_null(v);
    if (!strstr(err, want_err))
        fail_msg("from_json(%s): error \"%s\" lacks \"%s\"", text, err, want_err);
    /* err is optional. */
    v = (odk_value *)1;
    assert_int_equal(odk_value_from_json(text, &v, NULL, 0), ODK_E_INVALID);
    assert_null(v);
}

static void test_json_types(void **state)
{
    (void)state;
    odk_value *v = json_ok("{\"s\": \"x\\u00e9\", \"i\": -9223372036854775808, \"big\": "
                           "9223372036854775807, \"t\": true, \"f\": false, "
                           "\"a\": [1, [], {}], \"d\": {\"$data\": \"00ff7F\"}}");
    assert_int_equal(odk_value_type(v), ODK_TYPE_DICT);
    assert_string_equal(odk_dict_get_string(v, "s", NULL), "x\xc3\xa9");
    assert_true(odk_dict_get_int(v, "i", 0) == INT64_MIN);
    assert_true(odk_dict_get_int(v, "big", 0) == INT64_MAX);
    assert_true(odk_dict_get_bool(v, "t", false));
    assert_false(odk_dict_get_bool(v, "f", true));
    const odk_value *a = odk_dict_get(v, "a");
    assert_int_equal(odk_value_type(a), ODK_TYPE_ARRAY);
    assert_int_equal(odk_array_count(a), 3);
    assert_int_equal(odk_value_type(odk_array_get(a, 2)), ODK_TYPE_DICT);
    size_t len;
    const void *p = odk_value_data(odk_dict_get(v, "d"), &len);
    assert_int_equal(len, 3);
    assert_memory_equal(p, "\x00\xff\x7f", 3);
    /* Key order is the text's. */
    assert_string_equal(odk_dict_key_at(v, 0), "s");
    assert_string_equal(odk_dict_key_at(v, 6), "d");
    odk_value_free(v);

    /* Scalars at top level, and an empty $data. */
    v = json_ok("42");
    assert_int_equal(odk_value_int(v), 42);
    odk_value_free(v);
    v = json_ok("{\"$data\": \"\"}");
    assert_int_equal(odk_value_type(v), ODK_TYPE_DATA);
    odk_value_free(v);
    /* "$data" beside other keys is an ordinary key. */
    v = json_ok("{\"$data\": \"zz\", \"other\": 1}");
    assert_int_equal(odk_value_type(v), ODK_TYPE_DICT);
    assert_string_equal(odk_dict_get_string(v, "$data", NULL), "zz");
    odk_value_free(v);
}

static void test_json_round_trip(void **state)
{
    (void)state;
    odk_value *v = sample();
    for (int flags = 0; flags <= ODK_JSON_PRETTY; flags++) {
        char *text = odk_value_to_json(v, flags);
        assert_non_null(text);
        assert_true((strchr(text, '\n') != NULL) == (flags == ODK_JSON_PRETTY));
        odk_value *back = json_ok(text);
        assert_true(odk_value_equal(v, back));
        for (size_t i = 0; i < odk_dict_count(v); i++)
            assert_string_equal(odk_dict_key_at(v, i), odk_dict_key_at(back, i));
        odk_value_free(back);
        free(text);
    }
    odk_value_free(v);

    v = json_ok("{\"b\":1,\"a\":[true,\"x\"],\"d\":{\"$data\":\"0aff\"}}");
    char *text = odk_value_to_json(v, 0);
    assert_string_equal(text, "{\"b\":1,\"a\":[true,\"x\"],\"d\":{\"$data\":\"0aff\"}}");
    free(text);
    text = odk_value_to_json(v, ODK_JSON_PRETTY);
    assert_string_equal(text, "{\n  \"b\": 1,\n  \"a\": [\n    true,\n    \"x\"\n  ],\n"
                              "  \"d\": {\n    \"$data\": \"0aff\"\n  }\n}");
    free(text);
    odk_value_free(v);

    v = odk_value_new_string("plain");
    text = odk_value_to_json(v, 0);
    assert_string_equal(text, "\"plain\"");
    free(text);
    odk_value_free(v);

    /* JSON cannot carry a string that is not UTF-8. */
    v = odk_value_new_string("\xff\xfe");
    assert_null(odk_value_to_json(v, 0));
    odk_value_free(v);
    assert_null(odk_value_to_json(NULL, 0));
}

static void test_json_errors(void **state)
{
    (void)state;
    json_fails("{\"personalities\": {\"Echo\": {\"IOProbeScore\": 1.5}}}",
               "$.personalities.Echo.IOProbeScore: real numbers are not supported");
    json_fails("{\"a\": [1, 2, null]}", "$.a[2]: null is not supported");
    json_fails("null", "$: null is not supported");
    json_fails("[[0, [1e3]]]", "$[0][1][0]: real numbers are not supported");
    json_fails("{\"d\": {\"$data\": \"abc\"}}", "$.d.$data: ");
    json_fails("{\"d\": {\"$data\": \"zz\"}}", "$.d.$data: ");
    json_fails("{\"d\": {\"$data\": 12}}", "$.d.$data: ");
    /* Parse errors carry jansson's position. */
    json_fails("{\n  \"a\": 1,\n  \"b\": }", "line 3 column");
    json_fails("", "line 1");
    json_fails("[1, 2", "line 1");
    json_fails("99999999999999999999", "too big");
    json_fails("{\"a\": 1, \"a\": 2}", "duplicate");
    json_fails("\"a\\u0000b\"", "line 1");
    json_fails("{\"a\\u0000b\": 1}", "line 1");

    /* Nesting beyond the binary encoding's limit. */
    char deep[2 * ODK_VALUE_MAX_DEPTH + 3];
    memset(deep, '[', ODK_VALUE_MAX_DEPTH + 1);
    memset(deep + ODK_VALUE_MAX_DEPTH + 1, ']', ODK_VALUE_MAX_DEPTH + 1);
    deep[2 * ODK_VALUE_MAX_DEPTH + 2] = '\0';
    json_fails(deep, "nested deeper");
    deep[ODK_VALUE_MAX_DEPTH] = ' ';
    deep[ODK_VALUE_MAX_DEPTH + 1] = ' ';
    odk_value *v = json_ok(deep);
    odk_value_free(v);

    /* A tiny err buffer is truncated, not overrun. */
    char err[8];
    memset(err, 'x', sizeof(err));
    v = NULL;
    assert_int_equal(odk_value_from_json("{\"long_key_name\": null}", &v, err, sizeof(err)),
                     ODK_E_INVALID);
    assert_int_equal(strlen(err), sizeof(err) - 1);
    assert_int_equal(odk_value_from_json("1.0", &v, err, 1), ODK_E_INVALID);
    assert_string_equal(err, "");
    assert_int_equal(odk_value_from_json(NULL, &v, err, sizeof(err)), ODK_E_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalars),
        cmocka_unit_test(test_type_names),
        cmocka_unit_test(test_array),
        cmocka_unit_test(test_dict),
        cmocka_unit_test(test_dict_large),
        cmocka_unit_test(test_ownership_on_failure),
        cmocka_unit_test(test_copy_equal),
        cmocka_unit_test(test_equal_dict_order),
        cmocka_unit_test(test_encode_layout),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_decode_every_prefix),
        cmocka_unit_test(test_decode_trailing),
        cmocka_unit_test(test_decode_lying_lengths),
        cmocka_unit_test(test_decode_bad_content),
        cmocka_unit_test(test_decode_dup_keys),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_decode_garbage),
        cmocka_unit_test(test_json_types),
        cmocka_unit_test(test_json_round_trip),
        cmocka_unit_test(test_json_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
