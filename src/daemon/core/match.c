/* SPDX-License-Identifier: MIT */
/* match.c — IOKit matching of personalities against registry nodes. */
#include "daemon/core/match.h"
#include "daemon/core/entitlements.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "odk/status.h"

#define DEFAULT_CATEGORY "IODefaultMatchCategory"

/* How deep IOParentMatch may nest inside IOParentMatch, and how many
 * ancestors one match may try in all: each level walks every ancestor, and
 * an app's matching dictionary (find, watch) is untrusted, so nesting must
 * not multiply without end.  Past either, the match fails and says so. */
#define MATCH_PARENT_DEPTH 8
#define MATCH_PARENT_BUDGET 4096

/* One top-level match: how deep in IOParentMatch, and the ancestors it
 * may still try. */
struct walk {
    int depth;
    unsigned *budget;
};

/* The keys IOKit's IOService compares for every node. */
static const char *const generic_keys[] = {
    "IOProviderClass",       "IONameMatch",     "IOPropertyMatch",
    "IOPropertyExistsMatch", "IOResourceMatch", "IOParentMatch",
    "IOPathMatch",           "IOLocationMatch", "IORegistryEntryIDMatch",
};

static const struct match_keys *tables[MATCH_KEYS_MAX];
static size_t n_tables;

int match_keys_register(const struct match_keys *keys)
{
    if (!keys || !keys->provider_class || !keys->keys)
        return ODK_E_INVALID;
    for (size_t i = 0; i < n_tables; i++)
        if (tables[i] == keys)
            return ODK_OK;
    if (n_tables == MATCH_KEYS_MAX)
        return ODK_E_LIMIT;
    tables[n_tables++] = keys;
    return ODK_OK;
}

static bool is_generic(const char *key)
{
    for (size_t i = 0; i < sizeof generic_keys / sizeof generic_keys[0]; i++)
        if (strcmp(key, generic_keys[i]) == 0)
            return true;
    return false;
}

/* The first table for nodes of class cls with key, and its entry. */
static const struct match_keys *table_of(const registry *reg, const char *cls, const char *key,
                                         const struct match_key **entry)
{
    for (size_t t = 0; t < n_tables; t++) {
        if (!registry_class_is_a(reg, cls, tables[t]->provider_class))
            continue;
        for (const struct match_key *k = tables[t]->keys; k->name; k++)
            if (strcmp(k->name, key) == 0) {
                *entry = k;
                return tables[t];
            }
    }
    return NULL;
}

/* The key of a table registered for node's class, or NULL. */
static const struct match_key *family_key(const registry *reg, const reg_node *node,
                                          const char *key)
{
    const struct match_key *k = NULL;
    return table_of(reg, node->class_name, key, &k) ? k : NULL;
}

match_node_value_fn match_equality_key(const registry *reg, const char *cls, const char *key)
{
    const struct match_key *k = NULL;
    const struct match_keys *t = table_of(reg, cls, key, &k);
    if (!t || !t->node_value || !t->equality_keys)
        return NULL;
    for (const char *const *e = t->equality_keys; *e; e++)
        if (strcmp(*e, key) == 0)
            return t->node_value;
    return NULL;
}

bool match_key_compared(const registry *reg, const reg_node *node, const char *key)
{
    return key && (is_generic(key) || (reg && node && family_key(reg, node, key)));
}

static int no(char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int no(char *why, size_t why_len, const char *fmt, ...)
{
    if (why && why_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, why_len, fmt, ap);
        va_end(ap);
    }
    return 0;
}

/* ---- the other keys ---- */

const char *match_node_name(const reg_node *node)
{
    const char *s = node->props ? odk_dict_get_string(node->props, "IOName", NULL) : NULL;
    if (!s && node->props)
        s = odk_dict_get_string(node->props, "name", NULL);
    return s ? s : node->class_name;
}

static int match_name(const reg_node *node, const odk_value *want, char *why, size_t why_len)
{
    const char *name = match_node_name(node);
    if (odk_value_type(want) == ODK_TYPE_STRING)
        return strcmp(odk_value_string(want), name) == 0
                   ? 1
                   : no(why, why_len, "IONameMatch: node name \"%s\" is not \"%s\"", name,
                        odk_value_string(want));
    if (odk_value_type(want) != ODK_TYPE_ARRAY)
        return no(why, why_len, "IONameMatch: expected string or array of strings, got %s",
                  odk_type_name(odk_value_type(want)));
    for (size_t i = 0; i < odk_array_count(want); i++) {
        const char *s = odk_value_string(odk_array_get(want, i));
        if (s && strcmp(s, name) == 0)
            return 1;
    }
    return no(why, why_len, "IONameMatch: node name \"%s\" is not in the list", name);
}

/* Every key of dict equals the node's property; the key of the first
 * difference goes into *bad. */
static bool props_contain(const reg_node *node, const odk_value *dict, const char **bad)
{
    for (size_t i = 0; i < odk_dict_count(dict); i++) {
        const char *k = odk_dict_key_at(dict, i);
        const odk_value *have = node->props ? odk_dict_get(node->props, k) : NULL;
        if (!have || !odk_value_equal(have, odk_dict_value_at(dict, i))) {
            *bad = k;
            return false;
        }
    }
    return true;
}

static int match_property(const reg_node *node, const odk_value *want, char *why, size_t why_len)
{
    const char *bad = "";
    if (odk_value_type(want) == ODK_TYPE_DICT) {
        if (props_contain(node, want, &bad))
            return 1;
        return no(why, why_len, "IOPropertyMatch: node property %s differs or is missing", bad);
    }
    if (odk_value_type(want) != ODK_TYPE_ARRAY)
        return no(why, why_len, "IOPropertyMatch: expected dictionary or array, got %s",
                  odk_type_name(odk_value_type(want)));
    for (size_t i = 0; i < odk_array_count(want); i++) {
        const odk_value *d = odk_array_get(want, i);
        if (odk_value_type(d) == ODK_TYPE_DICT && props_contain(node, d, &bad))
            return 1;
    }
    return no(why, why_len, "IOPropertyMatch: none of the %zu dictionaries matches",
              odk_array_count(want));
}

static int match_resource(const registry *reg, const reg_node *node, const odk_value *want,
                          char *why, size_t why_len)
{
    const char *res = odk_value_string(want);
    if (!res)
        return no(why, why_len, "IOResourceMatch: expected string, got %s",
                  odk_type_name(odk_value_type(want)));
    if (!registry_class_is_a(reg, node->class_name, "IOUserResources"))
        return no(why, why_len, "IOResourceMatch: node class %s is not IOUserResources",
                  node->class_name);
    if (strcmp(res, "IOKit") != 0 && !(node->props && odk_dict_get(node->props, res)))
        return no(why, why_len, "IOResourceMatch: resource %s is not published", res);
    return 1;
}

static bool has_prop(const reg_node *node, const char *key)
{
    return key && node->props && odk_dict_get(node->props, key);
}

static int match_exists(const reg_node *node, const odk_value *want, char *why, size_t why_len)
{
    switch (odk_value_type(want)) {
    case ODK_TYPE_STRING:
        if (has_prop(node, odk_value_string(want)))
            return 1;
        return no(why, why_len, "IOPropertyExistsMatch: node has no property %s",
                  odk_value_string(want));
    case ODK_TYPE_ARRAY:
        for (size_t i = 0; i < odk_array_count(want); i++) {
            const char *k = odk_value_string(odk_array_get(want, i));
            if (!k)
                return no(why, why_len, "IOPropertyExistsMatch: item %zu is not a string", i);
            if (!has_prop(node, k))
                return no(why, why_len, "IOPropertyExistsMatch: node has no property %s", k);
        }
        return 1;
    case ODK_TYPE_DICT:
        for (size_t i = 0; i < odk_dict_count(want); i++)
            if (!has_prop(node, odk_dict_key_at(want, i)))
                return no(why, why_len, "IOPropertyExistsMatch: node has no property %s",
                          odk_dict_key_at(want, i));
        return 1;
    default:
        return no(why, why_len,
                  "IOPropertyExistsMatch: expected string, array or dictionary, got %s",
                  odk_type_name(odk_value_type(want)));
    }
}

const char *match_node_path(const reg_node *node, char *buf, size_t len)
{
    if (!buf || !len)
        return buf;
    /* Collect the chain below the root, then write it top down. */
    size_t depth = 0;
    for (const reg_node *n = node; n && n->parent; n = n->parent)
        depth++;
    size_t at = (size_t)snprintf(buf, len, "IOService:");
    for (size_t level = depth; level > 0 && at < len; level--) {
        const reg_node *n = node;
        for (size_t k = 1; k < level; k++)
            n = n->parent;
        const char *loc = n->props ? odk_dict_get_string(n->props, "IOLocation", NULL) : NULL;
        at += (size_t)snprintf(buf + at, len - at, "/%s%s%s", match_node_name(n), loc ? "@" : "",
                               loc ? loc : "");
    }
    if (depth == 0 && at < len)
        snprintf(buf + at, len - at, "/");
    return buf;
}

static int match_path(const reg_node *node, const odk_value *want, char *why, size_t why_len)
{
    const char *p = odk_value_string(want);
    if (!p)
        return no(why, why_len, "IOPathMatch: expected string, got %s",
                  odk_type_name(odk_value_type(want)));
    char path[1024];
    match_node_path(node, path, sizeof path);
    if (strcmp(p, path) == 0)
        return 1;
    return no(why, why_len, "IOPathMatch: node path \"%.200s\" is not \"%.200s\"", path, p);
}

static int match_location(const reg_node *node, const odk_value *want, char *why, size_t why_len)
{
    const char *bad = "";
    if (odk_value_type(want) == ODK_TYPE_DICT)
        return props_contain(node, want, &bad)
                   ? 1
                   : no(why, why_len, "IOLocationMatch: node property %s differs or is missing",
                        bad);
    const char *loc = odk_value_string(want);
    if (!loc)
        return no(why, why_len, "IOLocationMatch: expected string or dictionary, got %s",
                  odk_type_name(odk_value_type(want)));
    const char *have = node->props ? odk_dict_get_string(node->props, "IOLocation", NULL) : NULL;
    if (!have)
        return no(why, why_len, "IOLocationMatch: node has no IOLocation");
    if (strcmp(have, loc) != 0)
        return no(why, why_len, "IOLocationMatch: node location \"%.100s\" is not \"%.100s\"", have,
                  loc);
    return 1;
}

static int match_entry_id(const reg_node *node, const odk_value *want, char *why, size_t why_len)
{
    if (odk_value_type(want) != ODK_TYPE_INT)
        return no(why, why_len, "IORegistryEntryIDMatch: expected integer, got %s",
                  odk_type_name(odk_value_type(want)));
    if ((uint64_t)odk_value_int(want) == node->id)
        return 1;
    return no(why, why_len, "IORegistryEntryIDMatch: node id is %" PRIu64 ", not %" PRId64,
              node->id, odk_value_int(want));
}

static int match_dict(const registry *reg, const reg_node *node, const odk_value *dict,
                      bool need_provider, struct walk w, char *why, size_t why_len);

static int match_parent(const registry *reg, const reg_node *node, const odk_value *want,
                        struct walk w, char *why, size_t why_len)
{
    if (odk_value_type(want) != ODK_TYPE_DICT)
        return no(why, why_len, "IOParentMatch: expected dictionary, got %s",
                  odk_type_name(odk_value_type(want)));
    if (w.depth >= MATCH_PARENT_DEPTH)
        return no(why, why_len, "IOParentMatch: nested deeper than %d (MATCH_PARENT_DEPTH)",
                  MATCH_PARENT_DEPTH);
    char first[256] = ""; /* why the parent itself does not match */
    for (const reg_node *p = node->parent; p && p->parent; p = p->parent) {
        if (*w.budget == 0)
            return no(why, why_len,
                      "IOParentMatch: tries more than %d ancestors in all (MATCH_PARENT_BUDGET)",
                      MATCH_PARENT_BUDGET);
        --*w.budget;
        char sub[256] = "";
        int r =
            match_dict(reg, p, want, false, (struct walk){w.depth + 1, w.budget}, sub, sizeof sub);
        if (r == 1)
            return 1;
        if (*w.budget == 0 && strstr(sub, "MATCH_PARENT_BUDGET"))
            return no(why, why_len, "%s", sub);
        if (p == node->parent)
            snprintf(first, sizeof first, "%s", sub);
    }
    return no(why, why_len, "IOParentMatch: no ancestor matches%s%s%s", *first ? " (parent: " : "",
              first, *first ? ")" : "");
}

static int match_generic(const registry *reg, const reg_node *node, const char *key,
                         const odk_value *want, struct walk w, char *why, size_t why_len)
{
    if (strcmp(key, "IONameMatch") == 0)
        return match_name(node, want, why, why_len);
    if (strcmp(key, "IOPropertyMatch") == 0)
        return match_property(node, want, why, why_len);
    if (strcmp(key, "IOPropertyExistsMatch") == 0)
        return match_exists(node, want, why, why_len);
    if (strcmp(key, "IOResourceMatch") == 0)
        return match_resource(reg, node, want, why, why_len);
    if (strcmp(key, "IOParentMatch") == 0)
        return match_parent(reg, node, want, w, why, why_len);
    if (strcmp(key, "IOPathMatch") == 0)
        return match_path(node, want, why, why_len);
    if (strcmp(key, "IOLocationMatch") == 0)
        return match_location(node, want, why, why_len);
    if (strcmp(key, "IORegistryEntryIDMatch") == 0)
        return match_entry_id(node, want, why, why_len);
    return 1; /* IOProviderClass: checked first */
}

/* The rules of node's tables; *precedence gets the highest. */
static int match_rules(const registry *reg, const reg_node *node, const odk_value *dict,
                       int *precedence, char *why, size_t why_len)
{
    *precedence = 0;
    for (size_t t = 0; t < n_tables; t++) {
        if (!tables[t]->rule ||
            !registry_class_is_a(reg, node->class_name, tables[t]->provider_class))
            continue;
        int p = 0;
        if (tables[t]->rule(dict, &p, why, why_len) != 1)
            return 0;
        if (p > *precedence)
            *precedence = p;
    }
    return 1;
}

static int match_dict(const registry *reg, const reg_node *node, const odk_value *dict,
                      bool need_provider, struct walk w, char *why, size_t why_len)
{
    if (!dict || odk_value_type(dict) != ODK_TYPE_DICT)
        return no(why, why_len, "personality is not a dictionary");
    const odk_value *prov = odk_dict_get(dict, "IOProviderClass");
    if (!prov && need_provider)
        return no(why, why_len, "IOProviderClass: missing");
    if (prov && odk_value_type(prov) != ODK_TYPE_STRING)
        return no(why, why_len, "IOProviderClass: expected string, got %s",
                  odk_type_name(odk_value_type(prov)));
    const char *cls = prov ? odk_value_string(prov) : "IOService";
    if (!registry_class_is_a(reg, node->class_name, cls))
        return no(why, why_len, "IOProviderClass: node class %s is not a %s", node->class_name,
                  cls);

    for (size_t i = 0; i < odk_dict_count(dict); i++) {
        const char *key = odk_dict_key_at(dict, i);
        const odk_value *want = odk_dict_value_at(dict, i);
        int r = 1;
        const struct match_key *k;
        if (is_generic(key))
            r = match_generic(reg, node, key, want, w, why, why_len);
        else if ((k = family_key(reg, node, key)))
            r = k->compare(node, dict, key, want, why, why_len);
        if (r != 1) {
            /* A compare that forgot its reason still names its key. */
            if (why && why_len && !*why)
                no(why, why_len, "%s: does not match the node", key);
            return 0;
        }
    }
    int precedence;
    return match_rules(reg, node, dict, &precedence, why, why_len);
}

int match_personality(const registry *reg, const reg_node *node, const odk_value *personality,
                      char *why, size_t why_len)
{
    if (why && why_len)
        why[0] = '\0';
    if (!reg || !node)
        return no(why, why_len, "no node");
    unsigned budget = MATCH_PARENT_BUDGET;
    return match_dict(reg, node, personality, true, (struct walk){0, &budget}, why, why_len);
}

int match_precedence(const registry *reg, const reg_node *node, const odk_value *personality)
{
    int p = 0;
    if (!reg || !node || odk_value_type(personality) != ODK_TYPE_DICT ||
        match_rules(reg, node, personality, &p, NULL, 0) != 1)
        return 0;
    return p;
}

odk_value *match_carried(const registry *reg, const reg_node *node, const odk_value *personality)
{
    odk_value *out = odk_value_new_dict();
    for (size_t i = 0; out && i < odk_dict_count(personality); i++) {
        const char *key = odk_dict_key_at(personality, i);
        if (match_key_compared(reg, node, key))
            continue;
        if (odk_dict_set(out, key, odk_value_copy(odk_dict_value_at(personality, i))) < 0) {
            odk_value_free(out);
            return NULL;
        }
    }
    return out;
}

int64_t match_probe_score(const odk_value *personality)
{
    return odk_dict_get_int(personality, "IOProbeScore", 0);
}

const char *match_category(const odk_value *personality)
{
    return odk_dict_get_string(personality, "IOMatchCategory", DEFAULT_CATEGORY);
}

/* ---- ranking ---- */

/* < 0 when a should win over b. */
static int candidate_cmp(const match_candidate *a, const match_candidate *b)
{
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    if (a->precedence != b->precedence)
        return a->precedence > b->precedence ? -1 : 1;
    int c = strcmp(a->bundle->id ? a->bundle->id : "", b->bundle->id ? b->bundle->id : "");
    return c ? c : strcmp(a->name, b->name);
}

static int candidate_qsort_cmp(const void *a, const void *b)
{
    return candidate_cmp(a, b);
}

static bool is_taken(const char *cat, const char *const *taken, size_t n_taken)
{
    for (size_t i = 0; i < n_taken; i++)
        if (taken[i] && strcmp(taken[i], cat) == 0)
            return true;
    return false;
}

/* The winners so far, one per category. */
struct ranking {
    const registry *reg;
    const reg_node *node;
    const char *const *taken;
    size_t n_taken;
    match_candidate *w;
    size_t n, cap;
};

static int consider(struct ranking *r, const bundle *b, size_t pi)
{
    const odk_value *p = odk_dict_value_at(b->personalities, pi);
    match_candidate c = {b, odk_dict_key_at(b->personalities, pi), p, match_probe_score(p), 0,
                         match_category(p)};
    if (is_taken(c.category, r->taken, r->n_taken) ||
        !match_personality(r->reg, r->node, p, NULL, 0) ||
        !entitlements_cover_node(r->reg, r->node, b->entitlements, NULL, 0))
        return ODK_OK;
    c.precedence = match_precedence(r->reg, r->node, p);
    size_t k = 0;
    while (k < r->n && strcmp(r->w[k].category, c.category) != 0)
        k++;
    if (k < r->n) {
        if (candidate_cmp(&c, &r->w[k]) < 0)
            r->w[k] = c;
        return ODK_OK;
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 4;
        match_candidate *nw = realloc(r->w, cap * sizeof *nw);
        if (!nw)
            return ODK_E_NOMEM;
        r->w = nw;
        r->cap = cap;
    }
    r->w[r->n++] = c;
    return ODK_OK;
}

static int ranked(struct ranking *r, int st, match_candidate **winners, size_t *n_winners)
{
    if (st < 0) {
        free(r->w);
        return st;
    }
    if (r->n > 1)
        qsort(r->w, r->n, sizeof *r->w, candidate_qsort_cmp);
    *winners = r->w;
    *n_winners = r->n;
    return ODK_OK;
}

int match_rank(const registry *reg, const reg_node *node, bundle *const *bundles, size_t n_bundles,
               const char *const *taken, size_t n_taken, match_candidate **winners,
               size_t *n_winners)
{
    if (!winners || !n_winners)
        return ODK_E_INVALID;
    *winners = NULL;
    *n_winners = 0;
    if (!reg || !node || (n_bundles && !bundles))
        return ODK_E_INVALID;
    struct ranking r = {reg, node, taken, n_taken, NULL, 0, 0};
    int st = ODK_OK;
    for (size_t bi = 0; st == ODK_OK && bi < n_bundles; bi++) {
        const bundle *b = bundles[bi];
        if (!b || !b->personalities)
            continue;
        for (size_t pi = 0; st == ODK_OK && pi < odk_dict_count(b->personalities); pi++)
            st = consider(&r, b, pi);
    }
    return ranked(&r, st, winners, n_winners);
}

int match_rank_some(const registry *reg, const reg_node *node, const match_ref *refs, size_t n_refs,
                    const char *const *taken, size_t n_taken, match_candidate **winners,
                    size_t *n_winners)
{
    if (!winners || !n_winners)
        return ODK_E_INVALID;
    *winners = NULL;
    *n_winners = 0;
    if (!reg || !node || (n_refs && !refs))
        return ODK_E_INVALID;
    struct ranking r = {reg, node, taken, n_taken, NULL, 0, 0};
    int st = ODK_OK;
    for (size_t i = 0; st == ODK_OK && i < n_refs; i++)
        if (refs[i].bundle && refs[i].bundle->personalities &&
            refs[i].index < odk_dict_count(refs[i].bundle->personalities))
            st = consider(&r, refs[i].bundle, refs[i].index);
    return ranked(&r, st, winners, n_winners);
}

/* "compared" and "carried": the personality's keys, split as matching
 * node splits them. */
static int explain_keys(const registry *reg, const reg_node *node, const odk_value *p, odk_value *e)
{
    odk_value *cmp = odk_value_new_array(), *car = odk_value_new_array();
    int st = cmp && car ? ODK_OK : ODK_E_NOMEM;
    for (size_t i = 0; st == ODK_OK && i < odk_dict_count(p); i++) {
        const char *key = odk_dict_key_at(p, i);
        st = odk_array_append(match_key_compared(reg, node, key) ? cmp : car,
                              odk_value_new_string(key));
    }
    if (st == ODK_OK) {
        st = odk_dict_set(e, "compared", cmp);
        cmp = NULL;
    }
    if (st == ODK_OK) {
        st = odk_dict_set(e, "carried", car);
        car = NULL;
    }
    odk_value_free(cmp);
    odk_value_free(car);
    return st;
}

odk_value *match_explain(const registry *reg, const reg_node *node, bundle *const *bundles,
                         size_t n_bundles, const char *const *taken, size_t n_taken)
{
    match_candidate *w = NULL;
    size_t nw = 0;
    if (match_rank(reg, node, bundles, n_bundles, taken, n_taken, &w, &nw) < 0)
        return NULL;
    odk_value *list = odk_value_new_array();
    if (!list)
        goto fail;
    for (size_t bi = 0; bi < n_bundles; bi++) {
        const bundle *b = bundles[bi];
        if (!b || !b->personalities)
            continue;
        for (size_t pi = 0; pi < odk_dict_count(b->personalities); pi++) {
            const char *name = odk_dict_key_at(b->personalities, pi);
            const odk_value *p = odk_dict_value_at(b->personalities, pi);
            const char *cat = match_category(p);
            char why[512];
            int matched = match_personality(reg, node, p, why, sizeof why);
            /* A personality that matches but whose bundle is not entitled
             * to the node does not match; the reason names the entitlement. */
            bool entitled = matched != 1 ||
                            entitlements_cover_node(reg, node, b->entitlements, why, sizeof why);
            if (!entitled)
                matched = 0;
            bool winner = false;
            const match_candidate *best = NULL;
            for (size_t k = 0; k < nw; k++) {
                if (strcmp(w[k].category, cat) == 0)
                    best = &w[k];
                if (w[k].personality == p)
                    winner = true;
            }
            odk_value *e = odk_value_new_dict();
            int st = e ? ODK_OK : ODK_E_NOMEM;
            if (st == ODK_OK)
                st = odk_dict_set_string(e, "bundle", b->id ? b->id : "");
            if (st == ODK_OK)
                st = odk_dict_set_string(e, "personality", name);
            if (st == ODK_OK)
                st = odk_dict_set_bool(e, "matched", matched == 1);
            if (st == ODK_OK && matched != 1)
                st = odk_dict_set_string(e, "reason", why);
            if (st == ODK_OK && !entitled)
                st = odk_dict_set_bool(e, "entitlement", false);
            if (st == ODK_OK)
                st = odk_dict_set_int(e, "score", match_probe_score(p));
            if (st == ODK_OK)
                st = odk_dict_set_string(e, "category", cat);
            if (st == ODK_OK)
                st = odk_dict_set_bool(e, "winner", winner);
            if (st == ODK_OK)
                st = explain_keys(reg, node, p, e);
            /* Why a matching personality does not run: its category already
             * has a driver, or another personality outranks it. */
            if (st == ODK_OK && matched == 1 && is_taken(cat, taken, n_taken))
                st = odk_dict_set_bool(e, "taken", true);
            if (st == ODK_OK && matched == 1 && !winner && best) {
                char by[512];
                snprintf(by, sizeof by, "%s/%s", best->bundle->id ? best->bundle->id : "",
                         best->name);
                st = odk_dict_set_string(e, "outranked_by", by);
            }
            if (st == ODK_OK)
                st = odk_array_append(list, e);
            else
                odk_value_free(e);
            if (st != ODK_OK)
                goto fail;
        }
    }
    free(w);
    return list;
fail:
    free(w);
    odk_value_free(list);
    return NULL;
}
