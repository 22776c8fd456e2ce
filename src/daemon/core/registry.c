/* SPDX-License-Identifier: MIT */
/* registry.c — the registry tree, its id index and the class table. */
#include "daemon/core/registry.h"

#include <stdlib.h>
#include <string.h>

#include "odk/status.h"

struct reg_class {
    char *name;
    char *super; /* NULL for the root class OSObject */
};

struct registry {
    reg_node *root;
    uint64_t next_id;
    /* Every live node, sorted by id: ids only grow, so adding appends and
     * lookups are a binary search. */
    reg_node **index;
    size_t n_index, cap_index;
    struct reg_class *classes;
    size_t n_classes, cap_classes;
};

const char *reg_state_name(reg_state s)
{
    switch (s) {
    case REG_INACTIVE:
        return "inactive";
    case REG_REGISTERED:
        return "registered";
    case REG_MATCHED:
        return "matched";
    case REG_STARTED:
        return "started";
    case REG_TERMINATING:
        return "terminating";
    }
    return "unknown";
}

/* ---- class table ---- */

static const struct reg_class *class_find(const registry *reg, const char *cls)
{
    for (size_t i = 0; i < reg->n_classes; i++)
        if (strcmp(reg->classes[i].name, cls) == 0)
            return &reg->classes[i];
    return NULL;
}

static int class_add(registry *reg, const char *cls, const char *super)
{
    if (reg->n_classes == reg->cap_classes) {
        size_t cap = reg->cap_classes ? reg->cap_classes * 2 : 16;
        struct reg_class *c = realloc(reg->classes, cap * sizeof *c);
        if (!c)
            return ODK_E_NOMEM;
        reg->classes = c;
        reg->cap_classes = cap;
    }
    char *n = strdup(cls);
    char *s = super ? strdup(super) : NULL;
    if (!n || (super && !s)) {
        free(n);
        free(s);
        return ODK_E_NOMEM;
    }
    reg->classes[reg->n_classes++] = (struct reg_class){n, s};
    return ODK_OK;
}

int registry_define_class(registry *reg, const char *cls, const char *super)
{
    if (!reg || !cls || !*cls || !super || !*super)
        return ODK_E_INVALID;
    const struct reg_class *c = class_find(reg, cls);
    if (c)
        return c->super && strcmp(c->super, super) == 0 ? ODK_OK : ODK_E_EXISTS;
    if (!class_find(reg, super))
        return ODK_E_NOT_FOUND;
    /* super is known and cls is not, so no cycle can form. */
    return class_add(reg, cls, super);
}

bool registry_class_is_a(const registry *reg, const char *cls, const char *ancestor)
{
    if (!cls || !ancestor)
        return false;
    const char *cur = cls;
    /* The table is acyclic (a class is only added under a known super), so
     * this walk ends; the bound is a guard against a corrupted table. */
    for (size_t steps = 0; cur && steps <= reg->n_classes; steps++) {
        if (strcmp(cur, ancestor) == 0)
            return true;
        const struct reg_class *c = class_find(reg, cur);
        cur = c ? c->super : NULL;
    }
    return false;
}

odk_value *registry_class_ancestry(const registry *reg, const char *cls)
{
    odk_value *a = odk_value_new_array();
    if (!a || !cls)
        return a;
    const char *cur = cls;
    for (size_t steps = 0; cur && steps <= reg->n_classes; steps++) {
        if (odk_array_append(a, odk_value_new_string(cur)) < 0) {
            odk_value_free(a);
            return NULL;
        }
        const struct reg_class *c = class_find(reg, cur);
        cur = c ? c->super : NULL;
    }
    return a;
}

/* ---- nodes ---- */

static void node_free(reg_node *n)
{
    if (!n)
        return;
    free(n->class_name);
    odk_value_free(n->props);
    free(n->children);
    free(n);
}

static size_t index_lower_bound(const registry *reg, uint64_t id)
{
    size_t lo = 0, hi = reg->n_index;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (reg->index[mid]->id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int index_append(registry *reg, reg_node *n)
{
    if (reg->n_index == reg->cap_index) {
        size_t cap = reg->cap_index ? reg->cap_index * 2 : 64;
        reg_node **idx = realloc(reg->index, cap * sizeof *idx);
        if (!idx)
            return ODK_E_NOMEM;
        reg->index = idx;
        reg->cap_index = cap;
    }
    reg->index[reg->n_index++] = n;
    return ODK_OK;
}

static void index_remove(registry *reg, uint64_t id)
{
    size_t i = index_lower_bound(reg, id);
    if (i < reg->n_index && reg->index[i]->id == id) {
        memmove(&reg->index[i], &reg->index[i + 1], (reg->n_index - i - 1) * sizeof *reg->index);
        reg->n_index--;
    }
}

static reg_node *node_new(registry *reg, const char *cls, odk_value *props)
{
    reg_node *n = calloc(1, sizeof *n);
    if (!n) {
        odk_value_free(props);
        return NULL;
    }
    n->class_name = strdup(cls);
    n->props = props ? props : odk_value_new_dict();
    if (!n->class_name || !n->props) {
        node_free(n);
        return NULL;
    }
    n->id = reg->next_id;
    n->state = REG_INACTIVE;
    return n;
}

int registry_create(registry **out)
{
    static const char *const builtin[][2] = {
        {"IOService", "OSObject"},           {"IORegistryRoot", "OSObject"},
        {"IOUserResources", "IOService"},    {"IOUSBHostDevice", "IOService"},
        {"IOUSBHostInterface", "IOService"}, {"IOPCIDevice", "IOService"},
        {"IOUserService", "IOService"},      {"IOUserClient", "IOService"},
    };
    *out = NULL;
    registry *reg = calloc(1, sizeof *reg);
    if (!reg)
        return ODK_E_NOMEM;
    int st = class_add(reg, "OSObject", NULL);
    for (size_t i = 0; st == ODK_OK && i < sizeof builtin / sizeof builtin[0]; i++)
        st = registry_define_class(reg, builtin[i][0], builtin[i][1]);
    if (st == ODK_OK) {
        reg->root = node_new(reg, "IORegistryRoot", NULL);
        if (!reg->root || index_append(reg, reg->root) < 0)
            st = ODK_E_NOMEM;
    }
    if (st != ODK_OK) {
        registry_free(reg);
        return st;
    }
    reg->root->state = REG_REGISTERED;
    reg->next_id = 1;
    *out = reg;
    return ODK_OK;
}

static void subtree_free(registry *reg, reg_node *n)
{
    for (size_t i = 0; i < n->n_children; i++)
        subtree_free(reg, n->children[i]);
    if (reg)
        index_remove(reg, n->id);
    node_free(n);
}

void registry_free(registry *reg)
{
    if (!reg)
        return;
    if (reg->root)
        subtree_free(NULL, reg->root);
    free(reg->index);
    for (size_t i = 0; i < reg->n_classes; i++) {
        free(reg->classes[i].name);
        free(reg->classes[i].super);
    }
    free(reg->classes);
    free(reg);
}

reg_node *registry_root(registry *reg)
{
    return reg ? reg->root : NULL;
}

int registry_add(registry *reg, reg_node *parent, const char *cls, odk_value *props, reg_node **out)
{
    if (out)
        *out = NULL;
    if (!reg || !parent || !cls || !*cls || (props && odk_value_type(props) != ODK_TYPE_DICT)) {
        odk_value_free(props);
        return ODK_E_INVALID;
    }
    if (parent->n_children == parent->cap_children) {
        size_t cap = parent->cap_children ? parent->cap_children * 2 : 4;
        reg_node **c = realloc(parent->children, cap * sizeof *c);
        if (!c) {
            odk_value_free(props);
            return ODK_E_NOMEM;
        }
        parent->children = c;
        parent->cap_children = cap;
    }
    reg_node *n = node_new(reg, cls, props);
    if (!n)
        return ODK_E_NOMEM;
    if (index_append(reg, n) < 0) {
        node_free(n);
        return ODK_E_NOMEM;
    }
    reg->next_id++;
    n->parent = parent;
    parent->children[parent->n_children++] = n;
    if (out)
        *out = n;
    return ODK_OK;
}

reg_node *registry_find(registry *reg, uint64_t id)
{
    if (!reg)
        return NULL;
    size_t i = index_lower_bound(reg, id);
    return i < reg->n_index && reg->index[i]->id == id ? reg->index[i] : NULL;
}

void registry_remove(registry *reg, reg_node *node)
{
    /* The root stays for the registry's whole life. */
    if (!reg || !node || node == reg->root)
        return;
    reg_node *p = node->parent;
    if (p) {
        for (size_t i = 0; i < p->n_children; i++) {
            if (p->children[i] == node) {
                memmove(&p->children[i], &p->children[i + 1],
                        (p->n_children - i - 1) * sizeof *p->children);
                p->n_children--;
                break;
            }
        }
    }
    subtree_free(reg, node);
}

int registry_walk(reg_node *node, int (*fn)(reg_node *n, void *ctx), void *ctx)
{
    if (!node)
        return 0;
    int r = fn(node, ctx);
    if (r)
        return r;
    for (size_t i = 0; i < node->n_children; i++) {
        r = registry_walk(node->children[i], fn, ctx);
        if (r)
            return r;
    }
    return 0;
}

odk_value *registry_node_describe(const registry *reg, const reg_node *node)
{
    if (!reg || !node)
        return NULL;
    odk_value *d = odk_value_new_dict();
    if (!d)
        return NULL;
    int st = odk_dict_set_int(d, "id", (int64_t)node->id);
    if (st == ODK_OK)
        st = odk_dict_set_string(d, "class", node->class_name);
    if (st == ODK_OK) {
        odk_value *anc = registry_class_ancestry(reg, node->class_name);
        st = anc ? odk_dict_set(d, "ancestry", anc) : ODK_E_NOMEM;
    }
    if (st == ODK_OK && node->parent)
        st = odk_dict_set_int(d, "parent", (int64_t)node->parent->id);
    if (st == ODK_OK)
        st = odk_dict_set_string(d, "state", reg_state_name(node->state));
    if (st == ODK_OK) {
        odk_value *props = node->props ? odk_value_copy(node->props) : odk_value_new_dict();
        st = props ? odk_dict_set(d, "properties", props) : ODK_E_NOMEM;
    }
    if (st != ODK_OK) {
        odk_value_free(d);
        return NULL;
    }
    return d;
}
