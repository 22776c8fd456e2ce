/* SPDX-License-Identifier: MIT */
/* module.h — how a bus or a family plugs into odkd.
 *
 * A module is one structure (struct odkd_module) in its own folder
 * (src/buses/NAME/, src/families/NAME/) that registers itself with
 * ODKD_MODULE().  Through it a module adds node classes to the registry,
 * command-line options to odkd, operations to odkd's client socket and to
 * the driver hosts' control channel, and hears about nodes going away.
 * The core calls modules only through these pointers; it never names one.
 * See docs/adding-a-module.md.
 *
 * Every hook runs on odkd's single loop thread and must not block.
 */
#ifndef ODK_DAEMON_MODULE_H
#define ODK_DAEMON_MODULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "daemon/core/match.h"
#include "daemon/core/registry.h"
#include "odk/value.h"

struct odkd;
struct instance;

#define MODULE_ERR_MAX 1024
#define MODULE_MAX 32 /* modules in one odkd (ODKD_MODULE beyond this aborts at start) */

/* A request from odkd's socket (odkctl, libodk), as a module sees it. */
struct client_request {
    struct odkd *d;
    const odk_value *args; /* the request dictionary (borrowed) */
    uint64_t conn_id;      /* for server_reply_later */
    uint32_t seq;
    uid_t uid;
    pid_t pid;
    odk_value *out; /* the reply body, set by the operation (odkd frees it) */
    int reply_fd;   /* a descriptor to pass with the reply (odkd closes it), or -1 */
    struct wire_msg *msg; /* the request's message: descriptors it came with (wire_msg_take_fd) */
    bool later;     /* the operation replies later with server_reply_later */
    char err[MODULE_ERR_MAX]; /* the sentence sent with a failure */
};

struct client_op {
    const char *name; /* the request's "op" */
    int (*fn)(struct client_request *r);
    bool needs_privilege; /* root or odkd's own user only */
};

/* A request from a driver host on its control channel. */
struct host_request {
    struct odkd *d;
    struct instance *in;   /* who asked */
    const odk_value *args; /* borrowed */
    odk_value *out;        /* the reply body, or NULL */
    int fds[2];            /* descriptors to pass with the reply (odkd closes them) */
    size_t n_fds;
    char err[MODULE_ERR_MAX]; /* logged with a failure */
};

struct host_op {
    const char *name;
    int (*fn)(struct host_request *r);
};

/* A host op that creates a family resource, and the resource's kind
 * ("serial", "network", "block", "block-tcp", "audio", "hid": entitlements.h).  odkd
 * refuses the op with ODK_E_ACCESS, before the module sees it, when the
 * asking bundle is not entitled to that kind. */
struct resource_op {
    const char *op, *kind;
};

struct module_option {
    const char *name; /* the long option, without "--" */
    const char *arg;  /* its argument's name in --help ("FILE"), NULL for a flag */
    const char *help; /* one line for odkd --help */
};

struct class_def {
    const char *name, *super;
};

struct odkd_module {
    const char *name; /* "sim", "serial" */
    const char *kind; /* "bus" or "family" */
    size_t state_size; /* bytes of zeroed state odkd keeps for it (module_state) */
    const struct class_def *classes;      /* added to the registry; {NULL} ends */
    const struct module_option *options;  /* odkd's command line; {NULL} ends */
    const struct client_op *client_ops;   /* {NULL} ends */
    const struct host_op *host_ops;       /* {NULL} ends */
    const struct resource_op *resource_ops; /* which host_ops create resources; {NULL} ends */
    /* The match keys of the provider classes this module owns (match.h),
     * registered with the matcher when the module registers; {NULL} ends.
     * Keys of a personality that no table of the node's class and no
     * generic key names are not compared but carried. */
    const struct match_keys *const *match_keys;
    /* An option of this module was given (value NULL for a flag); a
     * negative status stops odkd with the message in err. */
    int (*option)(struct odkd *d, const char *name, const char *value, char *err, size_t len);
    /* After the registry exists, before bundles load. */
    int (*init)(struct odkd *d);
    /* After odkd listens and matching runs: a bus plugs its devices. */
    int (*start)(struct odkd *d);
    /* node leaves the registry (called for it and every node below it). */
    void (*node_gone)(struct odkd *d, reg_node *node);
    /* At exit, after every driver stopped. */
    void (*fini)(struct odkd *d);
};

/* Called by ODKD_MODULE at program start. */
void module_register(const struct odkd_module *m);
#define ODKD_MODULE(m)                                                                             \
    __attribute__((constructor)) static void module_register_##m(void)                            \
    {                                                                                              \
        module_register(&(m));                                                                     \
    }

/* The registered modules, in registration order (borrowed). */
size_t module_count(void);
const struct odkd_module *module_at(size_t i);

/* A module's private state in this odkd: state_size zeroed bytes, from
 * modules_alloc_state until modules_free_state (NULL for state_size 0). */
void *module_state(struct odkd *d, const struct odkd_module *m);
/* ODK_E_NOMEM. */
int modules_alloc_state(struct odkd *d);
void modules_free_state(struct odkd *d);

/* The operation of that name any module offers, or NULL. */
const struct client_op *module_client_op(const char *name);
const struct host_op *module_host_op(const char *name);
/* The resource kind host op name creates (struct resource_op), or NULL. */
const char *module_host_op_resource(const char *name);
/* The module that declared a command-line option, or NULL. */
const struct odkd_module *module_by_option(const char *name);

/* Adds every module's classes to reg; the first failure names the class. */
int modules_define_classes(registry *reg, char *err, size_t len);
/* Runs every module's init (or start) hook; stops at the first failure. */
int modules_init(struct odkd *d);
int modules_start(struct odkd *d);
/* Tells every module that node (only that node) leaves the registry. */
void modules_node_gone(struct odkd *d, reg_node *node);
void modules_fini(struct odkd *d);

#endif
