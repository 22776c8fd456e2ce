/* SPDX-License-Identifier: MIT */
/* value.c — odk_value: typed values, containers, copy, equality and the
 * binary encoding used on the wire.
 *
 * Dictionaries keep their entries in insertion order in one array.  Small
 * dictionaries are searched linearly; from DICT_INDEX_MIN entries on, an
 * open-addressing hash index over the array keeps lookup, decode (which
 * must reject duplicate keys) and equality linear in the total size rather
 * than quadratic, since dictionaries can arrive from untrusted peers.
 */
#include "odk/value.h"

#include <stdlib.h>
#include <string.h>

#include "odk/status.h"

#define DICT_INDEX_MIN 8

struct dict_entry {
    char *key;
    size_t klen;
    uint32_t hash;
    odk_value *val;
};

struct odk_value {
    odk_type type;
    union {
        struct {
            char *s;
            size_t len;
        } str;
        int64_t i;
        bool b;
        struct {
            unsigned char *p;
            size_t len;
        } data;
        struct {
            odk_value **items;
            size_t count, cap;
        } arr;
        struct {
            struct dict_entry *entries;
            size_t count, cap;
            size_t *slots; /* entry index + 1; 0 = empty; NULL = no index */
            size_t nslots; /* power of two */
        } dict;
    } u;
};

/* ---- constructors ---------------------------------------------------- */

static odk_value *value_new(odk_type type)
{
    odk_value *v = calloc(1, sizeof(*v));
    if (v)
        v->type = type;
    return v;
}

/* Copies at most len bytes and stops at the first NUL, like strndup(), so a
 * string value never holds an embedded NUL. */
odk_value *odk_value_new_stringn(const char *str, size_t len)
{
    if (!str)
        return NULL;
    len = strnlen(str, len);
    odk_value *v = value_new(ODK_TYPE_STRING);
    if (!v)
        return NULL;
    v->u.str.s = malloc(len + 1);
    if (!v->u.str.s) {
        free(v);
        return NULL;
    }
    memcpy(v->u.str.s, str, len);
    v->u.str.s[len] = '\0';
    v->u.str.len = len;
    return v;
}

odk_value *odk_value_new_string(const char *str)
{
    return str ? odk_value_new_stringn(str, strlen(str)) : NULL;
}

odk_value *odk_value_new_int(int64_t i)
{
    odk_value *v = value_new(ODK_TYPE_INT);
    if (v)
        v->u.i = i;
    return v;
}

odk_value *odk_value_new_bool(bool b)
{
    odk_value *v = value_new(ODK_TYPE_BOOL);
    if (v)
        v->u.b = b;
    return v;
}

odk_value *odk_value_new_data(const void *bytes, size_t len)
{
    if (!bytes && len)
        return NULL;
    odk_value *v = value_new(ODK_TYPE_DATA);
    if (!v)
        return NULL;
    /* malloc(0) may return NULL; always allocate at least one byte so that
     * odk_value_data() of empty data is a valid pointer. */
    v->u.data.p = malloc(len ? len : 1);
    if (!v->u.data.p) {
        free(v);
        return NULL;
    }
    if (len)
        memcpy(v->u.data.p, bytes, len);
    v->u.data.len = len;
    return v;
}

odk_value *odk_value_new_array(void)
{
    return value_new(ODK_TYPE_ARRAY);
}

odk_value *odk_value_new_dict(void)
{
    return value_new(ODK_TYPE_DICT);
}

void odk_value_free(odk_value *v)
{
    if (!v)
        return;
    switch (v->type) {
    case ODK_TYPE_STRING:
        free(v->u.str.s);
        break;
    case ODK_TYPE_DATA:
        free(v->u.data.p);
        break;
    case ODK_TYPE_ARRAY:
        for (size_t i = 0; i < v->u.arr.count; i++)
            odk_value_free(v->u.arr.items[i]);
        free(v->u.arr.items);
        break;
    case ODK_TYPE_DICT:
        for (size_t i = 0; i < v->u.dict.count; i++) {
            free(v->u.dict.entries[i].key);
            odk_value_free(v->u.dict.entries[i].val);
        }
        free(v->u.dict.entries);
        free(v->u.dict.slots);
        break;
    case ODK_TYPE_INT:
    case ODK_TYPE_BOOL:
        break;
    }
    free(v);
}

/* ---- type and scalar getters ----------------------------------------- */

odk_type odk_value_type(const odk_value *v)
{
    return v ? v->type : (odk_type)0;
}

const char *odk_type_name(odk_type t)
{
    switch (t) {
    case ODK_TYPE_STRING:
        return "string";
    case ODK_TYPE_INT:
        return "integer";
    case ODK_TYPE_BOOL:
        return "boolean";
    case ODK_TYPE_DATA:
        return "data";
    case ODK_TYPE_ARRAY:
        return "array";
    case ODK_TYPE_DICT:
        return "dictionary";
    }
    return "unknown";
}

const char *odk_value_string(const odk_value *v)
{
    return v && v->type == ODK_TYPE_STRING ? v->u.str.s : NULL;
}

int64_t odk_value_int(const odk_value *v)
{
    return v && v->type == ODK_TYPE_INT ? v->u.i : 0;
}

bool odk_value_bool(const odk_value *v)
{
    return v && v->type == ODK_TYPE_BOOL ? v->u.b : false;
}

const void *odk_value_data(const odk_value *v, size_t *len)
{
    if (!v || v->type != ODK_TYPE_DATA) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = v->u.data.len;
    return v->u.data.p;
}

/* ---- arrays ------------------------------------------------------------ */

static bool grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return true;
    size_t ncap = *cap ? *cap : 4;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2 / elem)
            return false;
        ncap *= 2;
    }
    void *np = realloc(*p, ncap * elem);
    if (!np)
        return false;
    *p = np;
    *cap = ncap;
    return true;
}

size_t odk_array_count(const odk_value *a)
{
    return a && a->type == ODK_TYPE_ARRAY ? a->u.arr.count : 0;
}

const odk_value *odk_array_get(const odk_value *a, size_t i)
{
    if (!a || a->type != ODK_TYPE_ARRAY || i >= a->u.arr.count)
        return NULL;
    return a->u.arr.items[i];
}

/* A NULL item is what a failed constructor returns, hence ODK_E_NOMEM. */
int odk_array_append(odk_value *a, odk_value *item)
{
    if (!item)
        return ODK_E_NOMEM;
    if (!a || a->type != ODK_TYPE_ARRAY || item == a) {
        odk_value_free(item);
        return ODK_E_INVALID;
    }
    if (!grow((void **)&a->u.arr.items, &a->u.arr.cap, a->u.arr.count + 1, sizeof(odk_value *))) {
        odk_value_free(item);
        return ODK_E_NOMEM;
    }
    a->u.arr.items[a->u.arr.count++] = item;
    return ODK_OK;
}

/* ---- dictionaries ------------------------------------------------------ */

/* FNV-1a. */
static uint32_t key_hash(const char *key, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)key[i];
        h *= 16777619u;
    }
    return h;
}

static void dict_drop_index(odk_value *d)
{
    free(d->u.dict.slots);
    d->u.dict.slots = NULL;
    d->u.dict.nslots = 0;
}

static void slot_insert(odk_value *d, size_t idx)
{
    size_t mask = d->u.dict.nslots - 1;
    size_t s = d->u.dict.entries[idx].hash & mask;
    while (d->u.dict.slots[s])
        s = (s + 1) & mask;
    d->u.dict.slots[s] = idx + 1;
}

/* Rebuilds the index for the current entries.  Out of memory only costs
 * speed: without an index, lookup is linear. */
static void dict_reindex(odk_value *d)
{
    dict_drop_index(d);
    size_t count = d->u.dict.count;
    if (count < DICT_INDEX_MIN)
        return;
    size_t n = 16;
    while (n < count * 4) {
        if (n > SIZE_MAX / 2 / sizeof(size_t))
            return;
        n *= 2;
    }
    d->u.dict.slots = calloc(n, sizeof(size_t));
    if (!d->u.dict.slots)
        return;
    d->u.dict.nslots = n;
    for (size_t i = 0; i < count; i++)
        slot_insert(d, i);
}

static bool entry_is(const struct dict_entry *e, const char *key, size_t klen, uint32_t hash)
{
    return e->hash == hash && e->klen == klen && memcmp(e->key, key, klen) == 0;
}

/* Index of key in d, or SIZE_MAX. */
static size_t dict_find(const odk_value *d, const char *key, size_t klen, uint32_t hash)
{
    const struct dict_entry *ents = d->u.dict.entries;
    if (!d->u.dict.slots) {
        for (size_t i = 0; i < d->u.dict.count; i++)
            if (entry_is(&ents[i], key, klen, hash))
                return i;
        return SIZE_MAX;
    }
    size_t mask = d->u.dict.nslots - 1;
    for (size_t s = hash & mask; d->u.dict.slots[s]; s = (s + 1) & mask) {
        size_t i = d->u.dict.slots[s] - 1;
        if (entry_is(&ents[i], key, klen, hash))
            return i;
    }
    return SIZE_MAX;
}

/* Appends a key known to be absent; takes ownership of key and val (frees
 * both on failure). */
static int dict_append(odk_value *d, char *key, size_t klen, uint32_t hash, odk_value *val)
{
    if (!grow((void **)&d->u.dict.entries, &d->u.dict.cap, d->u.dict.count + 1,
              sizeof(struct dict_entry))) {
        free(key);
        odk_value_free(val);
        return ODK_E_NOMEM;
    }
    size_t idx = d->u.dict.count++;
    d->u.dict.entries[idx] = (struct dict_entry){key, klen, hash, val};
    if (d->u.dict.count >= DICT_INDEX_MIN) {
        if (!d->u.dict.slots || d->u.dict.count * 2 > d->u.dict.nslots)
            dict_reindex(d);
        else
            slot_insert(d, idx);
    }
    return ODK_OK;
}

static const odk_value *dict_lookup(const odk_value *d, const char *key)
{
    if (!d || d->type != ODK_TYPE_DICT || !key)
        return NULL;
    size_t klen = strlen(key);
    size_t i = dict_find(d, key, klen, key_hash(key, klen));
    return i == SIZE_MAX ? NULL : d->u.dict.entries[i].val;
}

size_t odk_dict_count(const odk_value *d)
{
    return d && d->type == ODK_TYPE_DICT ? d->u.dict.count : 0;
}

const odk_value *odk_dict_get(const odk_value *d, const char *key)
{
    return dict_lookup(d, key);
}

const char *odk_dict_key_at(const odk_value *d, size_t i)
{
    if (!d || d->type != ODK_TYPE_DICT || i >= d->u.dict.count)
        return NULL;
    return d->u.dict.entries[i].key;
}

const odk_value *odk_dict_value_at(const odk_value *d, size_t i)
{
    if (!d || d->type != ODK_TYPE_DICT || i >= d->u.dict.count)
        return NULL;
    return d->u.dict.entries[i].val;
}

/* A NULL item is what a failed constructor returns, hence ODK_E_NOMEM. */
int odk_dict_set(odk_value *d, const char *key, odk_value *item)
{
    if (!item)
        return ODK_E_NOMEM;
    if (!d || d->type != ODK_TYPE_DICT || !key || item == d) {
        odk_value_free(item);
        return ODK_E_INVALID;
    }
    size_t klen = strlen(key);
    uint32_t hash = key_hash(key, klen);
    size_t i = dict_find(d, key, klen, hash);
    if (i != SIZE_MAX) {
        odk_value_free(d->u.dict.entries[i].val);
        d->u.dict.entries[i].val = item;
        return ODK_OK;
    }
    char *k = malloc(klen + 1);
    if (!k) {
        odk_value_free(item);
        return ODK_E_NOMEM;
    }
    memcpy(k, key, klen + 1);
    return dict_append(d, k, klen, hash, item);
}

int odk_dict_remove(odk_value *d, const char *key)
{
    if (!d || d->type != ODK_TYPE_DICT || !key)
        return ODK_E_INVALID;
    size_t klen = strlen(key);
    size_t i = dict_find(d, key, klen, key_hash(key, klen));
    if (i == SIZE_MAX)
        return ODK_E_NOT_FOUND;
    struct dict_entry *e = d->u.dict.entries;
    free(e[i].key);
    odk_value_free(e[i].val);
    memmove(&e[i], &e[i + 1], (d->u.dict.count - i - 1) * sizeof(*e));
    d->u.dict.count--;
    if (d->u.dict.slots)
        dict_reindex(d);
    return ODK_OK;
}

int odk_dict_set_string(odk_value *d, const char *key, const char *s)
{
    if (!s)
        return ODK_E_INVALID; /* not out of memory, which a NULL item means */
    return odk_dict_set(d, key, odk_value_new_string(s));
}

int odk_dict_set_int(odk_value *d, const char *key, int64_t v)
{
    return odk_dict_set(d, key, odk_value_new_int(v));
}

int odk_dict_set_bool(odk_value *d, const char *key, bool v)
{
    return odk_dict_set(d, key, odk_value_new_bool(v));
}

const char *odk_dict_get_string(const odk_value *d, const char *key, const char *dflt)
{
    const odk_value *v = dict_lookup(d, key);
    return v && v->type == ODK_TYPE_STRING ? v->u.str.s : dflt;
}

int64_t odk_dict_get_int(const odk_value *d, const char *key, int64_t dflt)
{
    const odk_value *v = dict_lookup(d, key);
    return v && v->type == ODK_TYPE_INT ? v->u.i : dflt;
}

bool odk_dict_get_bool(const odk_value *d, const char *key, bool dflt)
{
    const odk_value *v = dict_lookup(d, key);
    return v && v->type == ODK_TYPE_BOOL ? v->u.b : dflt;
}

/* ---- copy and equality ------------------------------------------------- */

odk_value *odk_value_copy(const odk_value *v)
{
    if (!v)
        return NULL;
    switch (v->type) {
    case ODK_TYPE_STRING:
        return odk_value_new_stringn(v->u.str.s, v->u.str.len);
    case ODK_TYPE_INT:
        return odk_value_new_int(v->u.i);
    case ODK_TYPE_BOOL:
        return odk_value_new_bool(v->u.b);
    case ODK_TYPE_DATA:
        return odk_value_new_data(v->u.data.p, v->u.data.len);
    case ODK_TYPE_ARRAY: {
        odk_value *c = odk_value_new_array();
        if (!c)
            return NULL;
        for (size_t i = 0; i < v->u.arr.count; i++) {
            if (odk_array_append(c, odk_value_copy(v->u.arr.items[i])) != ODK_OK) {
                odk_value_free(c);
                return NULL;
            }
        }
        return c;
    }
    case ODK_TYPE_DICT: {
        odk_value *c = odk_value_new_dict();
        if (!c)
            return NULL;
        for (size_t i = 0; i < v->u.dict.count; i++) {
            const struct dict_entry *e = &v->u.dict.entries[i];
            odk_value *item = odk_value_copy(e->val);
            char *k = item ? malloc(e->klen + 1) : NULL;
            if (k)
                memcpy(k, e->key, e->klen + 1);
            else {
                odk_value_free(item);
                item = NULL;
            }
            /* The source's keys are unique, so append without a lookup. */
            if (!item || dict_append(c, k, e->klen, e->hash, item) != ODK_OK) {
                odk_value_free(c);
                return NULL;
            }
        }
        return c;
    }
    }
    return NULL;
}

bool odk_value_equal(const odk_value *a, const odk_value *b)
{
    if (a == b)
        return true;
    if (!a || !b || a->type != b->type)
        return false;
    switch (a->type) {
    case ODK_TYPE_STRING:
        return a->u.str.len == b->u.str.len && memcmp(a->u.str.s, b->u.str.s, a->u.str.len) == 0;
    case ODK_TYPE_INT:
        return a->u.i == b->u.i;
    case ODK_TYPE_BOOL:
        return a->u.b == b->u.b;
    case ODK_TYPE_DATA:
        return a->u.data.len == b->u.data.len &&
               (a->u.data.len == 0 || memcmp(a->u.data.p, b->u.data.p, a->u.data.len) == 0);
    case ODK_TYPE_ARRAY:
        if (a->u.arr.count != b->u.arr.count)
            return false;
        for (size_t i = 0; i < a->u.arr.count; i++)
            if (!odk_value_equal(a->u.arr.items[i], b->u.arr.items[i]))
                return false;
        return true;
    case ODK_TYPE_DICT:
        /* Keys are unique in both, so same count + every key of a found in
         * b with an equal value means the same set of pairs. */
        if (a->u.dict.count != b->u.dict.count)
            return false;
        for (size_t i = 0; i < a->u.dict.count; i++) {
            const struct dict_entry *e = &a->u.dict.entries[i];
            size_t j = dict_find(b, e->key, e->klen, e->hash);
            if (j == SIZE_MAX || !odk_value_equal(e->val, b->u.dict.entries[j].val))
                return false;
        }
        return true;
    }
    return false;
}

/* ---- binary encoding --------------------------------------------------- */
/* value  := type:u8 body
 * STRING := len:u32 bytes      DATA := len:u32 bytes
 * INT    := i64                BOOL := u8 (0 or 1)
 * ARRAY  := count:u32 value*   DICT := count:u32 (klen:u32 kbytes value)*
 * All integers little-endian.  Containers nest at most ODK_VALUE_MAX_DEPTH
 * deep (the outermost container is depth 1). */

/* Smallest encodings, used to reject lying counts before allocating. */
#define MIN_VALUE_SIZE 2                    /* BOOL */
#define MIN_ENTRY_SIZE (4 + MIN_VALUE_SIZE) /* empty key + BOOL */

/* Size of v's encoding, or 0 when it cannot be encoded (a length or count
 * beyond u32, nesting beyond ODK_VALUE_MAX_DEPTH, size_t overflow). */
static size_t encoded_size(const odk_value *v, int depth)
{
    size_t n;
    switch (v->type) {
    case ODK_TYPE_STRING:
        return v->u.str.len > UINT32_MAX ? 0 : 5 + v->u.str.len;
    case ODK_TYPE_DATA:
        return v->u.data.len > UINT32_MAX ? 0 : 5 + v->u.data.len;
    case ODK_TYPE_INT:
        return 9;
    case ODK_TYPE_BOOL:
        return 2;
    case ODK_TYPE_ARRAY:
        if (depth >= ODK_VALUE_MAX_DEPTH || v->u.arr.count > UINT32_MAX)
            return 0;
        n = 5;
        for (size_t i = 0; i < v->u.arr.count; i++) {
            size_t s = encoded_size(v->u.arr.items[i], depth + 1);
            if (!s || s > SIZE_MAX - n)
                return 0;
            n += s;
        }
        return n;
    case ODK_TYPE_DICT:
        if (depth >= ODK_VALUE_MAX_DEPTH || v->u.dict.count > UINT32_MAX)
            return 0;
        n = 5;
        for (size_t i = 0; i < v->u.dict.count; i++) {
            const struct dict_entry *e = &v->u.dict.entries[i];
            size_t s = encoded_size(e->val, depth + 1);
            if (!s || e->klen > UINT32_MAX || s > SIZE_MAX - n || 4 + e->klen > SIZE_MAX - n - s)
                return 0;
            n += 4 + e->klen + s;
        }
        return n;
    }
    return 0;
}

static unsigned char *put_u32(unsigned char *p, size_t x)
{
    for (int i = 0; i < 4; i++)
        *p++ = (unsigned char)(x >> (8 * i));
    return p;
}

static unsigned char *put_bytes(unsigned char *p, const void *b, size_t len)
{
    p = put_u32(p, len);
    if (len)
        memcpy(p, b, len);
    return p + len;
}

static unsigned char *encode_into(const odk_value *v, unsigned char *p)
{
    *p++ = (unsigned char)v->type;
    switch (v->type) {
    case ODK_TYPE_STRING:
        return put_bytes(p, v->u.str.s, v->u.str.len);
    case ODK_TYPE_DATA:
        return put_bytes(p, v->u.data.p, v->u.data.len);
    case ODK_TYPE_INT: {
        uint64_t x = (uint64_t)v->u.i;
        for (int i = 0; i < 8; i++)
            *p++ = (unsigned char)(x >> (8 * i));
        return p;
    }
    case ODK_TYPE_BOOL:
        *p++ = v->u.b ? 1 : 0;
        return p;
    case ODK_TYPE_ARRAY:
        p = put_u32(p, v->u.arr.count);
        for (size_t i = 0; i < v->u.arr.count; i++)
            p = encode_into(v->u.arr.items[i], p);
        return p;
    case ODK_TYPE_DICT:
        p = put_u32(p, v->u.dict.count);
        for (size_t i = 0; i < v->u.dict.count; i++) {
            p = put_bytes(p, v->u.dict.entries[i].key, v->u.dict.entries[i].klen);
            p = encode_into(v->u.dict.entries[i].val, p);
        }
        return p;
    }
    return p;
}

int odk_value_encode(const odk_value *v, void **out, size_t *out_len)
{
    if (out)
        *out = NULL; /* out_len is left alone on failure (status.h) */
    if (!v || !out || !out_len)
        return ODK_E_INVALID;
    size_t n = encoded_size(v, 0);
    if (!n)
        return ODK_E_LIMIT;
    unsigned char *buf = malloc(n);
    if (!buf)
        return ODK_E_NOMEM;
    encode_into(v, buf);
    *out = buf;
    *out_len = n;
    return ODK_OK;
}

struct reader {
    const unsigned char *p;
    size_t left;
};

static bool get_u8(struct reader *r, unsigned *x)
{
    if (r->left < 1)
        return false;
    *x = *r->p++;
    r->left--;
    return true;
}

static bool get_u32(struct reader *r, uint32_t *x)
{
    if (r->left < 4)
        return false;
    *x = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 |
         (uint32_t)r->p[3] << 24;
    r->p += 4;
    r->left -= 4;
    return true;
}

/* A u32 length, then that many bytes, which must be present and, for
 * strings and keys (nul_free), hold no NUL.  Borrows from the buffer. */
static bool get_bytes(struct reader *r, const unsigned char **b, size_t *len, bool nul_free)
{
    uint32_t n;
    if (!get_u32(r, &n) || n > r->left)
        return false;
    if (nul_free && memchr(r->p, '\0', n))
        return false;
    *b = r->p;
    *len = n;
    r->p += n;
    r->left -= n;
    return true;
}

static int decode_value(struct reader *r, int depth, odk_value **out);

static int decode_array(struct reader *r, int depth, odk_value **out)
{
    uint32_t count;
    if (!get_u32(r, &count) || count > r->left / MIN_VALUE_SIZE)
        return ODK_E_PROTOCOL;
    odk_value *a = odk_value_new_array();
    if (!a || !grow((void **)&a->u.arr.items, &a->u.arr.cap, count, sizeof(odk_value *))) {
        odk_value_free(a);
        return ODK_E_NOMEM;
    }
    for (uint32_t i = 0; i < count; i++) {
        odk_value *item;
        int rc = decode_value(r, depth, &item);
        if (rc != ODK_OK) {
            odk_value_free(a);
            return rc;
        }
        a->u.arr.items[a->u.arr.count++] = item;
    }
    *out = a;
    return ODK_OK;
}

static int decode_dict(struct reader *r, int depth, odk_value **out)
{
    uint32_t count;
    if (!get_u32(r, &count) || count > r->left / MIN_ENTRY_SIZE)
        return ODK_E_PROTOCOL;
    odk_value *d = odk_value_new_dict();
    if (!d ||
        !grow((void **)&d->u.dict.entries, &d->u.dict.cap, count, sizeof(struct dict_entry))) {
        odk_value_free(d);
        return ODK_E_NOMEM;
    }
    for (uint32_t i = 0; i < count; i++) {
        const unsigned char *kb;
        size_t klen;
        if (!get_bytes(r, &kb, &klen, true)) {
            odk_value_free(d);
            return ODK_E_PROTOCOL;
        }
        uint32_t hash = key_hash((const char *)kb, klen);
        if (dict_find(d, (const char *)kb, klen, hash) != SIZE_MAX) {
            odk_value_free(d);
            return ODK_E_PROTOCOL;
        }
        odk_value *item;
        int rc = decode_value(r, depth, &item);
        if (rc != ODK_OK) {
            odk_value_free(d);
            return rc;
        }
        char *k = malloc(klen + 1);
        if (!k) {
            odk_value_free(item);
            odk_value_free(d);
            return ODK_E_NOMEM;
        }
        memcpy(k, kb, klen);
        k[klen] = '\0';
        rc = dict_append(d, k, klen, hash, item);
        if (rc != ODK_OK) {
            odk_value_free(d);
            return rc;
        }
    }
    *out = d;
    return ODK_OK;
}

/* depth: how many containers enclose this value. */
static int decode_value(struct reader *r, int depth, odk_value **out)
{
    unsigned type;
    const unsigned char *b;
    size_t len;
    *out = NULL;
    if (!get_u8(r, &type))
        return ODK_E_PROTOCOL;
    switch (type) {
    case ODK_TYPE_STRING:
        if (!get_bytes(r, &b, &len, true))
            return ODK_E_PROTOCOL;
        *out = odk_value_new_stringn((const char *)b, len);
        return *out ? ODK_OK : ODK_E_NOMEM;
    case ODK_TYPE_DATA:
        if (!get_bytes(r, &b, &len, false))
            return ODK_E_PROTOCOL;
        *out = odk_value_new_data(b, len);
        return *out ? ODK_OK : ODK_E_NOMEM;
    case ODK_TYPE_INT: {
        if (r->left < 8)
            return ODK_E_PROTOCOL;
        uint64_t x = 0;
        for (int i = 0; i < 8; i++)
            x |= (uint64_t)r->p[i] << (8 * i);
        r->p += 8;
        r->left -= 8;
        *out = odk_value_new_int((int64_t)x);
        return *out ? ODK_OK : ODK_E_NOMEM;
    }
    case ODK_TYPE_BOOL: {
        unsigned x;
        if (!get_u8(r, &x) || x > 1)
            return ODK_E_PROTOCOL;
        *out = odk_value_new_bool(x);
        return *out ? ODK_OK : ODK_E_NOMEM;
    }
    case ODK_TYPE_ARRAY:
        if (depth >= ODK_VALUE_MAX_DEPTH)
            return ODK_E_PROTOCOL;
        return decode_array(r, depth + 1, out);
    case ODK_TYPE_DICT:
        if (depth >= ODK_VALUE_MAX_DEPTH)
            return ODK_E_PROTOCOL;
        return decode_dict(r, depth + 1, out);
    }
    return ODK_E_PROTOCOL;
}

int odk_value_decode(const void *buf, size_t len, odk_value **out)
{
    if (!out)
        return ODK_E_INVALID;
    *out = NULL;
    if (!buf && len)
        return ODK_E_INVALID;
    struct reader r = {buf, len};
    odk_value *v;
    int rc = decode_value(&r, 0, &v);
    if (rc != ODK_OK)
        return rc;
    if (r.left) {
        odk_value_free(v);
        return ODK_E_PROTOCOL;
    }
    *out = v;
    return ODK_OK;
}
