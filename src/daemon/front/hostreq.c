/* SPDX-License-Identifier: MIT */
/* Requests from driver hosts, in a table like the client socket's.  A
 * host is as untrusted as any other client: it may only touch nodes it
 * owns, and a bad request gets an error reply. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/trace.h"
#include "daemon/bookkeeping/instance.h"
#include "daemon/core/entitlements.h"
#include "daemon/core/msg.h"
#include "daemon/front/hostreq.h"
#include "daemon/odkd.h"
#include "daemon/policy/manager.h"
#include "odk/log.h"
#include "odk/status.h"

reg_node *hostreq_own_node(struct host_request *r)
{
    reg_node *n = registry_find(r->d->reg, (uint64_t)odk_dict_get_int(r->args, "node", 0));
    return n && n->owner == r->in ? n : NULL;
}

static int op_register_service(struct host_request *r)
{
    reg_node *n = hostreq_own_node(r);
    if (!n)
        return ODK_E_ACCESS;
    if (n->state == REG_INACTIVE)
        manager_register(r->d, n);
    return ODK_OK;
}

static int op_set_property(struct host_request *r)
{
    reg_node *n = hostreq_own_node(r);
    const char *key = odk_dict_get_string(r->args, "key", NULL);
    const odk_value *val = odk_dict_get(r->args, "value");
    if (!n)
        return ODK_E_ACCESS;
    if (!key || !*key || !val) {
        snprintf(r->err, sizeof r->err, "set-property needs a non-empty 'key' and a 'value'");
        return ODK_E_INVALID;
    }
    odk_value *copy = odk_value_copy(val);
    int st = copy ? odk_dict_set(n->props, key, copy) : ODK_E_NOMEM;
    if (st == ODK_OK && n->state != REG_INACTIVE)
        manager_publish(r->d, "property", n);
    return st;
}

/* Declares cls under super, or under IOService when super is unknown or
 * cls already has another superclass. */
static int define_class(registry *reg, const char *cls, const char *super)
{
    int st = registry_define_class(reg, cls, super);
    if (st == ODK_E_EXISTS || st == ODK_E_NOT_FOUND)
        st = registry_define_class(reg, cls, "IOService") == ODK_E_NOT_FOUND ? ODK_E_INVALID
                                                                              : ODK_OK;
    return st;
}

static int op_publish_node(struct host_request *r)
{
    reg_node *parent = registry_find(r->d->reg, (uint64_t)odk_dict_get_int(r->args, "parent", 0));
    const char *cls = odk_dict_get_string(r->args, "class", NULL);
    const char *super = odk_dict_get_string(r->args, "super", "IOService");
    const odk_value *props = odk_dict_get(r->args, "properties");
    if (!parent || parent->owner != r->in)
        return ODK_E_ACCESS;
    if (!cls || !*cls || (props && odk_value_type(props) != ODK_TYPE_DICT)) {
        snprintf(r->err, sizeof r->err,
                 "publish-node needs a non-empty 'class' and 'properties' as a dictionary");
        return ODK_E_INVALID;
    }
    int st = define_class(r->d->reg, cls, super);
    odk_value *copy = NULL;
    if (st == ODK_OK && props && !(copy = odk_value_copy(props)))
        st = ODK_E_NOMEM;
    reg_node *n = NULL;
    if (st == ODK_OK)
        st = registry_add(r->d->reg, parent, cls, copy, &n);
    if (st < 0)
        return st;
    n->owner = r->in;
    struct msg m = msg_begin();
    msg_int(&m, "node", (int64_t)n->id);
    st = msg_finish(&m, &r->out);
    if (st < 0) {
        registry_remove(r->d->reg, n);
        return st;
    }
    manager_register(r->d, n);
    return ODK_OK;
}

static int op_withdraw_node(struct host_request *r)
{
    reg_node *n = hostreq_own_node(r);
    if (!n || n->id == r->in->node_id)
        return ODK_E_ACCESS;
    manager_remove_now(r->d, n);
    return ODK_OK;
}

static const struct host_op host_ops[] = {
    {"register-service", op_register_service},
    {"set-property", op_set_property},
    {"publish-node", op_publish_node},
    {"withdraw-node", op_withdraw_node},
    {NULL, NULL},
};

static const struct host_op *own_op(const char *name)
{
    for (const struct host_op *op = host_ops; op->name; op++)
        if (strcmp(op->name, name) == 0)
            return op;
    return NULL;
}

static const struct host_op *find_op(const char *name)
{
    const struct host_op *op = own_op(name);
    return op ? op : module_host_op(name);
}

static void handle(struct odkd *d, struct instance *in, wire_msg *m)
{
    struct host_request r = {.d = d, .in = in};
    odk_value *args = NULL;
    int st = wire_msg_value(m, &args);
    const char *name = "";
    if (st == ODK_OK) {
        r.args = args;
        name = odk_dict_get_string(args, "op", "");
        trace_mark("odkd host-request %s", name);
        const struct host_op *op = find_op(name);
        const char *kind = op ? module_host_op_resource(name) : NULL;
        if (kind && !entitlements_allow_resource(in->bundle->entitlements, kind, r.err,
                                                 sizeof r.err))
            st = ODK_E_ACCESS; /* the driver and the log get r.err */
        else
            st = op ? op->fn(&r) : ODK_E_UNSUPPORTED;
    } else {
        st = ODK_E_PROTOCOL;
    }
    if (st < 0) {
        if (r.err[0])
            instance_event(in, ODK_LOG_ERROR, "%s#%u: %s: %s", in->bundle->id, in->id, name,
                           r.err); /* odkd's log and the bundle's */
        odk_value_free(r.out);
        /* The driver gets the reason too ({"error": ...}), so the family
         * can put it into its own error (a holder's name, a bad key). */
        r.out = NULL;
        if (r.err[0]) {
            struct msg e = msg_begin();
            msg_str(&e, "error", r.err);
            if (msg_finish(&e, &r.out) < 0)
                r.out = NULL;
        }
        for (size_t i = 0; i < r.n_fds; i++)
            close(r.fds[i]);
        r.n_fds = 0;
    }
    instance_reply(in, m->hdr.seq, st, r.out, r.fds, r.n_fds);
    for (size_t i = 0; i < r.n_fds; i++)
        close(r.fds[i]);
    odk_value_free(args);
}

int hostreq_init(struct odkd *d)
{
    /* A module request named like one of odkd's own would never be reached. */
    for (size_t i = 0; i < module_count(); i++) {
        const struct odkd_module *m = module_at(i);
        for (const struct host_op *op = m->host_ops; op && op->name; op++) {
            if (own_op(op->name)) {
                odk_error("%s %s: host request '%s' is one of odkd's own", m->kind, m->name,
                          op->name);
                return ODK_E_EXISTS;
            }
        }
    }
    d->host_request = handle;
    return ODK_OK;
}
