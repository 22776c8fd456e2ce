/* SPDX-License-Identifier: MIT */
/* The module table: buses and families that registered with ODKD_MODULE,
 * and the hooks through which the core reaches them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/core/module.h"
#include "daemon/odkd.h"
#include "odk/log.h"
#include "odk/status.h"

static const struct odkd_module *modules[MODULE_MAX];
static size_t n_modules;

/* Two modules offering one name is a build mistake: say so at start
 * rather than let the first one win silently. */
static void refuse_duplicates(const struct odkd_module *m)
{
    const char *clash = NULL;
    for (const struct client_op *op = m->client_ops; op && op->name && !clash; op++)
        clash = module_client_op(op->name) ? op->name : NULL;
    for (const struct host_op *op = m->host_ops; op && op->name && !clash; op++)
        clash = module_host_op(op->name) ? op->name : NULL;
    for (const struct module_option *o = m->options; o && o->name && !clash; o++)
        clash = module_by_option(o->name) ? o->name : NULL;
    if (clash) {
        fprintf(stderr, "odkd: %s %s offers '%s', which another module already offers\n",
                m->kind, m->name, clash);
        abort();
    }
}

void module_register(const struct odkd_module *m)
{
    refuse_duplicates(m);
    if (n_modules == MODULE_MAX) {
        fprintf(stderr, "odkd: more than %d modules (MODULE_MAX); cannot add %s\n", MODULE_MAX,
                m->name);
        abort();
    }
    modules[n_modules++] = m;
    for (const struct match_keys *const *k = m->match_keys; k && *k; k++)
        if (match_keys_register(*k) < 0) {
            fprintf(stderr, "odkd: %s %s: cannot register the match keys of %s (%d tables at most)\n",
                    m->kind, m->name, (*k)->provider_class, MATCH_KEYS_MAX);
            abort();
        }
}

size_t module_count(void)
{
    return n_modules;
}

const struct odkd_module *module_at(size_t i)
{
    return i < n_modules ? modules[i] : NULL;
}

static size_t index_of(const struct odkd_module *m)
{
    for (size_t i = 0; i < n_modules; i++)
        if (modules[i] == m)
            return i;
    return MODULE_MAX;
}

void *module_state(struct odkd *d, const struct odkd_module *m)
{
    size_t i = index_of(m);
    return i < MODULE_MAX ? d->module_state[i] : NULL;
}

int modules_alloc_state(struct odkd *d)
{
    for (size_t i = 0; i < n_modules; i++)
        if (modules[i]->state_size && !(d->module_state[i] = calloc(1, modules[i]->state_size)))
            return ODK_E_NOMEM;
    return ODK_OK;
}

void modules_free_state(struct odkd *d)
{
    for (size_t i = 0; i < n_modules; i++) {
        free(d->module_state[i]);
        d->module_state[i] = NULL;
    }
}

const struct client_op *module_client_op(const char *name)
{
    for (size_t i = 0; i < n_modules; i++)
        for (const struct client_op *op = modules[i]->client_ops; op && op->name; op++)
            if (strcmp(op->name, name) == 0)
                return op;
    return NULL;
}

const char *module_host_op_resource(const char *name)
{
    for (size_t i = 0; i < n_modules; i++)
        for (const struct resource_op *r = modules[i]->resource_ops; r && r->op; r++)
            if (strcmp(r->op, name) == 0)
                return r->kind;
    return NULL;
}

const struct host_op *module_host_op(const char *name)
{
    for (size_t i = 0; i < n_modules; i++)
        for (const struct host_op *op = modules[i]->host_ops; op && op->name; op++)
            if (strcmp(op->name, name) == 0)
                return op;
    return NULL;
}

const struct odkd_module *module_by_option(const char *name)
{
    for (size_t i = 0; i < n_modules; i++)
        for (const struct module_option *o = modules[i]->options; o && o->name; o++)
            if (strcmp(o->name, name) == 0)
                return modules[i];
    return NULL;
}

int modules_define_classes(registry *reg, char *err, size_t len)
{
    for (size_t i = 0; i < n_modules; i++) {
        for (const struct class_def *c = modules[i]->classes; c && c->name; c++) {
            int st = registry_define_class(reg, c->name, c->super);
            if (st < 0) {
                snprintf(err, len, "module %s: class %s (superclass %s): %s", modules[i]->name,
                         c->name, c->super, odk_strerror(st));
                return st;
            }
        }
    }
    return ODK_OK;
}

static int check(const struct odkd_module *m, const char *what, int st)
{
    if (st < 0)
        odk_error("%s %s: %s failed: %s", m->kind, m->name, what, odk_strerror(st));
    return st;
}

int modules_init(struct odkd *d)
{
    for (size_t i = 0; i < n_modules; i++) {
        int st = modules[i]->init ? check(modules[i], "init", modules[i]->init(d)) : ODK_OK;
        if (st < 0)
            return st;
    }
    return ODK_OK;
}

int modules_start(struct odkd *d)
{
    for (size_t i = 0; i < n_modules; i++) {
        int st = modules[i]->start ? check(modules[i], "start", modules[i]->start(d)) : ODK_OK;
        if (st < 0)
            return st;
    }
    return ODK_OK;
}

void modules_node_gone(struct odkd *d, reg_node *node)
{
    for (size_t i = 0; i < n_modules; i++)
        if (modules[i]->node_gone)
            modules[i]->node_gone(d, node);
}

void modules_fini(struct odkd *d)
{
    for (size_t i = n_modules; i-- > 0;)
        if (modules[i]->fini)
            modules[i]->fini(d);
}
