/* SPDX-License-Identifier: MIT */
/* match_index.c — the personalities that could match a node
 * (match_index.h). */
#include "daemon/core/match_index.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "odk/status.h"

/* The key under which IONameMatch equalities are filed. */
#define NAME_KEY "IONameMatch"

/* One equality: a key the node is asked for, with how the node gives it. */
struct ix_key {
    const char *name; /* borrowed from a personality (or NAME_KEY) */
    match_node_value_fn node_value; /* NULL: the node's own property; */
    bool is_name;                   /* or its name */
};

struct ix_bucket {
    uint64_t hash; /* 0: empty slot */
    size_t count;  /* personalities that could be filed here */
    match_ref *refs;
    size_t n, cap;
};

struct ix_group {
    const char *cls; /* IOProviderClass; borrowed */
    struct ix_key *keys;
    size_t n_keys;
    struct ix_bucket *tab; /* open addressing, power-of-two size */
    size_t tab_size, used;
    match_ref *rest; /* always compared */
    size_t n_rest, cap_rest;
};

struct match_index {
    struct ix_group *groups;
    size_t n_groups;
    size_t total, unfiled;
};

/* ---- hashing (FNV-1a, then a final mix; never 0) ---- */

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

/* How the node gives the value of a key. */
enum { BY_PROPERTY, BY_NAME, BY_BUS_KEY };

/* 0 when v is not a scalar (never filed). */
static uint64_t value_hash(int how, const char *key, const odk_value *v)
{
    unsigned char kind = (unsigned char)how;
    uint64_t h = fnv(0xcbf29ce484222325ULL, &kind, 1);
    h = fnv(h, key, strlen(key) + 1);
    unsigned char t = (unsigned char)odk_value_type(v);
    h = fnv(h, &t, 1);
    switch (odk_value_type(v)) {
    case ODK_TYPE_STRING: {
        const char *s = odk_value_string(v);
        h = fnv(h, s, strlen(s));
        break;
    }
    case ODK_TYPE_INT: {
        int64_t i = odk_value_int(v);
        h = fnv(h, &i, sizeof i);
        break;
    }
    case ODK_TYPE_BOOL: {
        unsigned char b = odk_value_bool(v);
        h = fnv(h, &b, 1);
        break;
    }
    default:
        return 0;
    }
    h ^= h >> 31;
    h *= 0x7fb5d329728ea185ULL;
    h ^= h >> 27;
    return h ? h : 1;
}

static uint64_t name_hash(const char *name)
{
    odk_value *v = odk_value_new_string(name);
    uint64_t h = v ? value_hash(BY_NAME, NAME_KEY, v) : 0;
    odk_value_free(v);
    return h;
}

/* ---- the bucket table ---- */

static struct ix_bucket *slot(const struct ix_group *g, uint64_t hash)
{
    if (!g->tab_size)
        return NULL;
    size_t mask = g->tab_size - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask)
        if (g->tab[i].hash == hash || g->tab[i].hash == 0)
            return &g->tab[i];
}

static int grow(struct ix_group *g)
{
    size_t size = g->tab_size ? g->tab_size * 2 : 64;
    struct ix_bucket *old = g->tab, *tab = calloc(size, sizeof *tab);
    if (!tab)
        return ODK_E_NOMEM;
    size_t old_size = g->tab_size;
    g->tab = tab;
    g->tab_size = size;
    for (size_t i = 0; i < old_size; i++)
        if (old[i].hash)
            *slot(g, old[i].hash) = old[i];
    free(old);
    return ODK_OK;
}

static struct ix_bucket *bucket(struct ix_group *g, uint64_t hash)
{
    if ((g->used + 1) * 4 > g->tab_size * 3 && grow(g) < 0)
        return NULL;
    struct ix_bucket *b = slot(g, hash);
    if (!b->hash) {
        b->hash = hash;
        g->used++;
    }
    return b;
}

static int push(match_ref **refs, size_t *n, size_t *cap, match_ref r)
{
    if (*n && (*refs)[*n - 1].bundle == r.bundle && (*refs)[*n - 1].index == r.index)
        return ODK_OK; /* an IONameMatch array naming a string twice */
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 4;
        match_ref *nr = realloc(*refs, c * sizeof *nr);
        if (!nr)
            return ODK_E_NOMEM;
        *refs = nr;
        *cap = c;
    }
    (*refs)[(*n)++] = r;
    return ODK_OK;
}

/* ---- what a personality could be filed under ---- */

static struct ix_group *group_of(match_index *ix, const char *cls)
{
    for (size_t i = 0; i < ix->n_groups; i++)
        if (strcmp(ix->groups[i].cls, cls) == 0)
            return &ix->groups[i];
    struct ix_group *g = realloc(ix->groups, (ix->n_groups + 1) * sizeof *g);
    if (!g)
        return NULL;
    ix->groups = g;
    g = &ix->groups[ix->n_groups++];
    *g = (struct ix_group){.cls = cls};
    return g;
}

static const char *provider_class(const odk_value *p)
{
    const odk_value *prov = odk_dict_get(p, "IOProviderClass");
    return odk_value_type(prov) == ODK_TYPE_STRING ? odk_value_string(prov) : NULL;
}

/* Calls fn for every single equality p requires (the IONameMatch strings
 * count as one choice, visited with their hashes one by one, name set). */
typedef int (*choice_fn)(void *ctx, const struct ix_key *key, uint64_t hash, int choice);

static int choices(const registry *reg, const char *cls, const odk_value *p, choice_fn fn,
                   void *ctx)
{
    int choice = 0, st;
    const odk_value *pm = odk_dict_get(p, "IOPropertyMatch");
    if (odk_value_type(pm) == ODK_TYPE_DICT)
        for (size_t i = 0; i < odk_dict_count(pm); i++) {
            struct ix_key k = {odk_dict_key_at(pm, i), NULL, false};
            uint64_t h = value_hash(BY_PROPERTY, k.name, odk_dict_value_at(pm, i));
            if (h && (st = fn(ctx, &k, h, choice++)) < 0)
                return st;
        }
    const odk_value *nm = odk_dict_get(p, NAME_KEY);
    struct ix_key name = {NAME_KEY, NULL, true};
    if (odk_value_type(nm) == ODK_TYPE_STRING) {
        if ((st = fn(ctx, &name, name_hash(odk_value_string(nm)), choice++)) < 0)
            return st;
    } else if (odk_value_type(nm) == ODK_TYPE_ARRAY && odk_array_count(nm)) {
        bool all_strings = true;
        for (size_t i = 0; i < odk_array_count(nm); i++)
            all_strings &= odk_value_type(odk_array_get(nm, i)) == ODK_TYPE_STRING;
        /* An entry that is not a string never matches, so only strings. */
        for (size_t i = 0; all_strings && i < odk_array_count(nm); i++)
            if ((st = fn(ctx, &name, name_hash(odk_value_string(odk_array_get(nm, i))), choice)) <
                0)
                return st;
        choice += all_strings;
    }
    for (size_t i = 0; i < odk_dict_count(p); i++) {
        const char *key = odk_dict_key_at(p, i);
        if (match_key_compared(reg, NULL, key)) /* a generic key */
            continue;
        match_node_value_fn value = match_equality_key(reg, cls, key);
        if (!value)
            continue;
        struct ix_key k = {key, value, false};
        uint64_t h = value_hash(BY_BUS_KEY, key, odk_dict_value_at(p, i));
        if (h && (st = fn(ctx, &k, h, choice++)) < 0)
            return st;
    }
    return choice;
}

struct count_ctx {
    struct ix_group *g;
};

static int count_one(void *ctx, const struct ix_key *key, uint64_t hash, int choice)
{
    (void)key;
    (void)choice;
    struct ix_bucket *b = bucket(((struct count_ctx *)ctx)->g, hash);
    if (!b)
        return ODK_E_NOMEM;
    b->count++;
    return ODK_OK;
}

/* Finds the choice with the fewest personalities in its buckets. */
struct best_ctx {
    struct ix_group *g;
    int best;
    size_t best_cost, cost;
    int current;
};

static int weigh_one(void *ctx, const struct ix_key *key, uint64_t hash, int choice)
{
    (void)key;
    struct best_ctx *c = ctx;
    if (choice != c->current) {
        c->current = choice;
        c->cost = 0;
    }
    c->cost += slot(c->g, hash)->count;
    if (c->best < 0 || c->best == choice || c->cost < c->best_cost) {
        c->best = choice;
        c->best_cost = c->cost;
    }
    return ODK_OK;
}

struct file_ctx {
    struct ix_group *g;
    int choice;
    match_ref ref;
};

static int add_key(struct ix_group *g, const struct ix_key *key)
{
    for (size_t i = 0; i < g->n_keys; i++)
        if (g->keys[i].is_name == key->is_name && g->keys[i].node_value == key->node_value &&
            strcmp(g->keys[i].name, key->name) == 0)
            return ODK_OK;
    struct ix_key *k = realloc(g->keys, (g->n_keys + 1) * sizeof *k);
    if (!k)
        return ODK_E_NOMEM;
    g->keys = k;
    g->keys[g->n_keys++] = *key;
    return ODK_OK;
}

static int file_one(void *ctx, const struct ix_key *key, uint64_t hash, int choice)
{
    struct file_ctx *c = ctx;
    if (choice != c->choice)
        return ODK_OK;
    struct ix_bucket *b = slot(c->g, hash);
    int st = add_key(c->g, key);
    return st < 0 ? st : push(&b->refs, &b->n, &b->cap, c->ref);
}

/* ---- building ---- */

void match_index_free(match_index *ix)
{
    if (!ix)
        return;
    for (size_t i = 0; i < ix->n_groups; i++) {
        struct ix_group *g = &ix->groups[i];
        for (size_t j = 0; j < g->tab_size; j++)
            free(g->tab[j].refs);
        free(g->tab);
        free(g->keys);
        free(g->rest);
    }
    free(ix->groups);
    free(ix);
}

/* Calls fn(p's group, ref) for every personality. */
static int each(match_index *ix, bundle *const *bundles, size_t n,
                int (*fn)(match_index *, struct ix_group *, match_ref, void *), void *ctx)
{
    for (size_t bi = 0; bi < n; bi++) {
        const bundle *b = bundles[bi];
        if (!b || !b->personalities)
            continue;
        for (size_t pi = 0; pi < odk_dict_count(b->personalities); pi++) {
            const odk_value *p = odk_dict_value_at(b->personalities, pi);
            const char *cls = odk_value_type(p) == ODK_TYPE_DICT ? provider_class(p) : NULL;
            /* No usable IOProviderClass: never matches, but compare it so
             * that nothing depends on the index being right about that. */
            struct ix_group *g = group_of(ix, cls ? cls : "");
            if (!g)
                return ODK_E_NOMEM;
            int st = fn(ix, g, (match_ref){b, pi}, ctx);
            if (st < 0)
                return st;
        }
    }
    return ODK_OK;
}

static int count_pass(match_index *ix, struct ix_group *g, match_ref r, void *reg)
{
    (void)ix;
    const odk_value *p = odk_dict_value_at(r.bundle->personalities, r.index);
    if (!*g->cls)
        return ODK_OK;
    struct count_ctx c = {g};
    int st = choices(reg, g->cls, p, count_one, &c);
    return st < 0 ? st : ODK_OK;
}

static int file_pass(match_index *ix, struct ix_group *g, match_ref r, void *reg)
{
    const odk_value *p = odk_dict_value_at(r.bundle->personalities, r.index);
    ix->total++;
    struct best_ctx b = {g, -1, 0, 0, -1};
    if (*g->cls) {
        int st = choices(reg, g->cls, p, weigh_one, &b);
        if (st < 0)
            return st;
    }
    if (b.best < 0) {
        ix->unfiled++;
        return push(&g->rest, &g->n_rest, &g->cap_rest, r);
    }
    struct file_ctx f = {g, b.best, r};
    int st = choices(reg, g->cls, p, file_one, &f);
    return st < 0 ? st : ODK_OK;
}

match_index *match_index_build(const registry *reg, bundle *const *bundles, size_t n)
{
    match_index *ix = calloc(1, sizeof *ix);
    if (!ix)
        return NULL;
    /* Two passes: how many personalities could be filed under each value,
     * then each filed under its rarest choice. */
    if (each(ix, bundles, n, count_pass, (void *)reg) < 0 ||
        each(ix, bundles, n, file_pass, (void *)reg) < 0) {
        match_index_free(ix);
        return NULL;
    }
    return ix;
}

void match_index_counts(const match_index *ix, size_t *total, size_t *unfiled)
{
    *total = ix ? ix->total : 0;
    *unfiled = ix ? ix->unfiled : 0;
}

/* ---- looking up ---- */

static int add_all(match_ref **out, size_t *n, size_t *cap, const match_ref *refs, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        if (*n == *cap) {
            size_t c = *cap ? *cap * 2 : 16;
            match_ref *nr = realloc(*out, c * sizeof *nr);
            if (!nr)
                return ODK_E_NOMEM;
            *out = nr;
            *cap = c;
        }
        (*out)[(*n)++] = refs[i];
    }
    return ODK_OK;
}

int match_index_candidates(const match_index *ix, const registry *reg, const reg_node *node,
                           match_ref **refs, size_t *n_refs)
{
    *refs = NULL;
    *n_refs = 0;
    if (!ix || !reg || !node)
        return ODK_E_INVALID;
    size_t cap = 0;
    int st = ODK_OK;
    for (size_t gi = 0; st == ODK_OK && gi < ix->n_groups; gi++) {
        const struct ix_group *g = &ix->groups[gi];
        if (*g->cls && !registry_class_is_a(reg, node->class_name, g->cls))
            continue;
        st = add_all(refs, n_refs, &cap, g->rest, g->n_rest);
        /* A personality is filed under one value of one key, so each
         * lookup below finds different personalities. */
        for (size_t k = 0; st == ODK_OK && k < g->n_keys; k++) {
            const struct ix_key *key = &g->keys[k];
            uint64_t h;
            if (key->is_name) {
                h = name_hash(match_node_name(node));
            } else {
                const odk_value *v =
                    key->node_value ? key->node_value(node, key->name)
                                    : (node->props ? odk_dict_get(node->props, key->name) : NULL);
                h = v ? value_hash(key->node_value ? BY_BUS_KEY : BY_PROPERTY, key->name, v) : 0;
            }
            if (!h)
                continue;
            const struct ix_bucket *b = slot(g, h);
            if (b && b->hash)
                st = add_all(refs, n_refs, &cap, b->refs, b->n);
        }
    }
    if (st < 0) {
        free(*refs);
        *refs = NULL;
        *n_refs = 0;
    }
    return st;
}
