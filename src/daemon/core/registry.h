/* SPDX-License-Identifier: MIT */
/* registry.h — odkd's registry: a tree of nodes, each with a class (and
 * through the class table, a class ancestry), typed properties, a state and
 * an id.  Single-threaded: only odkd's event loop touches it.
 */
#ifndef ODK_DAEMON_REGISTRY_H
#define ODK_DAEMON_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "odk/value.h"

typedef enum reg_state {
    REG_INACTIVE = 0,   /* created, not yet registered (not matchable) */
    REG_REGISTERED = 1, /* registered: matchable, no driver yet */
    REG_MATCHED = 2,    /* a driver was chosen and is starting */
    REG_STARTED = 3,    /* its driver is running */
    REG_TERMINATING = 4,
} reg_state;

const char *reg_state_name(reg_state s); /* "registered", "matched", ... */

typedef struct reg_node reg_node;
typedef struct registry registry;

struct reg_node {
    uint64_t id;
    char *class_name;
    odk_value *props; /* dictionary, owned by the node */
    reg_state state;
    reg_node *parent;
    reg_node **children;
    size_t n_children, cap_children;
    void *owner; /* odkd: the driver instance that published this node, or NULL */
};

/* A registry with the root node (id 0, class "IORegistryRoot") and IOKit's
 * built-in classes: OSObject <- IOService <- IOUserResources,
 * IOUSBHostDevice, IOUSBHostInterface, IOPCIDevice, IOUserService,
 * IOUserClient.  Buses and families add theirs (module.h).  ODK_E_NOMEM. */
int registry_create(registry **out);
void registry_free(registry *reg);
reg_node *registry_root(registry *reg);

/* Declares cls with superclass super (which must be known).  Redeclaring a
 * class with the same super is ODK_OK; with another super ODK_E_EXISTS. */
int registry_define_class(registry *reg, const char *cls, const char *super);
/* True when cls is, or derives from, ancestor.  Unknown classes are only
 * themselves (and so only match their own name). */
bool registry_class_is_a(const registry *reg, const char *cls, const char *ancestor);
/* Array value of the ancestry, most derived first: ["OdkSimDevice",
 * "IOService", "OSObject"].  Caller owns. */
odk_value *registry_class_ancestry(const registry *reg, const char *cls);

/* Adds a node under parent in state REG_INACTIVE; takes ownership of props
 * (a dictionary, or NULL for empty).  Ids are never reused. */
int registry_add(registry *reg, reg_node *parent, const char *cls, odk_value *props,
                 reg_node **out);
reg_node *registry_find(registry *reg, uint64_t id);
/* Unlinks and frees node and all its descendants. */
void registry_remove(registry *reg, reg_node *node);

/* Calls fn on node and every descendant, depth-first, parents before
 * children.  Stops early when fn returns non-zero and returns that value. */
int registry_walk(reg_node *node, int (*fn)(reg_node *n, void *ctx), void *ctx);

/* A dictionary describing one node: id, class, ancestry, parent, state,
 * properties.  Caller owns. */
odk_value *registry_node_describe(const registry *reg, const reg_node *node);

#endif
