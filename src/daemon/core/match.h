/* SPDX-License-Identifier: MIT */
/* match.h — IOKit matching: does a personality match a registry node, and
 * which personalities win.
 *
 * IOKit's rule: only matching keys are compared with the node; every other
 * key of a personality is carried, unread by matching, into the matched
 * driver's service properties (bookkeeping/instance.c).  Matching keys are
 * the generic ones below and those a bus or family registers for the class
 * of the node (struct match_keys, through struct odkd_module.match_keys).
 *
 * Generic keys (IOKit's names):
 *   IOProviderClass     the node's class or one of its ancestors (required)
 *   IONameMatch         string or array of strings; compared with the node's
 *                       "IOName" property, else "name", else its class name
 *   IOPropertyMatch     dictionary (all its keys equal the node's), or array
 *                       of dictionaries (any one)
 *   IOPropertyExistsMatch  string, array of strings (all), or dictionary (all
 *                       its keys): the node has properties of those names
 *   IOResourceMatch     string: the node is IOUserResources and has a
 *                       property of that name ("IOKit" always exists)
 *   IOParentMatch       a matching dictionary (any of these keys, with
 *                       IOProviderClass optional) that the node's parent or
 *                       a further ancestor matches; nested at most
 *                       MATCH_PARENT_DEPTH deep, trying at most
 *                       MATCH_PARENT_BUDGET ancestors in all (match.c)
 *   IOPathMatch         string: the node's path equals it; the path is
 *                       "IOService:/" then, root excluded, each node from
 *                       the top down as its name (as for IONameMatch) with
 *                       "@" and its "IOLocation" property when it has one,
 *                       joined by "/" (match_node_path)
 *   IOLocationMatch     string, equal to the node's "IOLocation" property;
 *                       or dictionary, each key equal to the node's property
 *   IORegistryEntryIDMatch  integer: the node's id
 * Ranking keys, read by match_rank, not compared (so carried):
 *   IOProbeScore        integer, default 0; highest wins per category
 *   IOMatchCategory     string, default "IODefaultMatchCategory"
 * Bus keys for IOPCIDevice (src/buses/pci) and IOUSBHostDevice /
 * IOUSBHostInterface (src/buses/usb) are listed in those folders.
 */
#ifndef ODK_DAEMON_MATCH_H
#define ODK_DAEMON_MATCH_H

#include <stdbool.h>
#include <stddef.h>

#include "daemon/core/bundle.h"
#include "daemon/core/registry.h"

/* 1 when personality matches node; 0 when not, with the first reason why
 * not in why ("IOProviderClass: node class OdkSimDevice is not a
 * IOPCIDevice"); never fails on odd personality contents (a wrong type is a
 * reason, not an error). */
int match_personality(const registry *reg, const reg_node *node, const odk_value *personality,
                      char *why, size_t why_len);

/* The node's name as IONameMatch compares it: its "IOName" property, else
 * "name", else its class name.  Borrowed from the node. */
const char *match_node_name(const reg_node *node);

/* The node's path as IOPathMatch compares it, into buf (cut to len). */
const char *match_node_path(const reg_node *node, char *buf, size_t len);

/* ---- keys of a bus or family ---- */

/* Compares the personality's value want for key with node: 1 when equal
 * in the key's sense, 0 when not (a sentence starting with the key in why;
 * a wrong type is a reason, never an error).  personality is the whole
 * dictionary, for keys that read a companion (USB's idProductMask). */
typedef int (*match_compare_fn)(const reg_node *node, const odk_value *personality, const char *key,
                                const odk_value *want, char *why, size_t why_len);

struct match_key {
    const char *name;
    match_compare_fn compare;
};

/* The node's value of key that a personality's value must equal
 * (odk_value_equal) for the key's compare to say equal; NULL when the node
 * has none. */
typedef const odk_value *(*match_node_value_fn)(const reg_node *node, const char *key);

/* The match keys of nodes of one class (and its subclasses). */
struct match_keys {
    const char *provider_class;
    const struct match_key *keys; /* {NULL, NULL} ends */
    /* Optional: after each key compared equal, judges the set of this
     * table's keys the personality uses as a whole (USB's precedence):
     * 1 with *precedence set (higher is more specific), or 0 with the
     * reason in why.  Precedence breaks ties of IOProbeScore. */
    int (*rule)(const odk_value *personality, int *precedence, char *why, size_t why_len);
    /* Optional, for the match index (match_index.h): the keys (NULL-ended)
     * whose compare is plain equality with node_value(node, key) (USB's
     * idVendor; not idProduct, which has a mask), so personalities can be
     * filed under their value. */
    const char *const *equality_keys;
    match_node_value_fn node_value;
};

/* At most MATCH_KEYS_MAX tables in one process. */
#define MATCH_KEYS_MAX 32

/* Adds a table (borrowed: it must live as long as the process; tables are
 * static data).  Registering the same table twice is a no-op.  ODK_E_LIMIT
 * beyond MATCH_KEYS_MAX, ODK_E_INVALID for a NULL table or class.  Not
 * thread-safe: call at start (odkd registers its modules' tables from
 * module_register). */
int match_keys_register(const struct match_keys *keys);

/* For the match index: when nodes of class cls compare key with a
 * registered table's key that is one of its equality_keys, that table's
 * node_value; else NULL. */
match_node_value_fn match_equality_key(const registry *reg, const char *cls, const char *key);

/* Whether matching node compares key (a generic matching key or one of a
 * registered table for node's class); every other key is carried. */
bool match_key_compared(const registry *reg, const reg_node *node, const char *key);

/* The precedence the rule of node's table gives personality (0 without a
 * rule, or when the personality does not satisfy it). */
int match_precedence(const registry *reg, const reg_node *node, const odk_value *personality);

/* A new dictionary with the keys of personality that matching node does
 * not compare (NULL when out of memory).  Caller owns. */
odk_value *match_carried(const registry *reg, const reg_node *node, const odk_value *personality);

int64_t match_probe_score(const odk_value *personality);
const char *match_category(const odk_value *personality);

typedef struct match_candidate {
    const bundle *bundle;
    const char *name; /* personality name, borrowed from the bundle */
    const odk_value *personality;
    int64_t score;
    int precedence; /* from the bus's rule; breaks ties of score */
    const char *category;
} match_candidate;

/* Ranks every personality of every bundle against node (a personality
 * whose bundle is not entitled to node does not count): fills winners
 * (caller frees the array, not its contents) with the best candidate of
 * each match category, highest IOProbeScore first; ties go to the higher
 * precedence (match_keys.rule), then the bundle id, then the personality
 * name, that sorts first.  Categories listed in
 * taken (n_taken strings) already have a driver and are skipped. */
int match_rank(const registry *reg, const reg_node *node, bundle *const *bundles, size_t n_bundles,
               const char *const *taken, size_t n_taken, match_candidate **winners,
               size_t *n_winners);

/* One personality of a bundle: the index-th entry of its personalities. */
typedef struct match_ref {
    const bundle *bundle;
    size_t index;
} match_ref;

/* match_rank over the listed personalities only (the candidates of a
 * match_index): the same winners as match_rank over every bundle as long
 * as the others cannot match node. */
int match_rank_some(const registry *reg, const reg_node *node, const match_ref *refs, size_t n_refs,
                    const char *const *taken, size_t n_taken, match_candidate **winners,
                    size_t *n_winners);

/* For `odkctl match --explain`: an array with one dictionary per
 * personality of every bundle: {"bundle", "personality", "matched" (bool),
 * "reason" (string, absent when matched; names the key that failed),
 * "score", "category", "winner" (bool), "compared" (array of the keys
 * matching compared or would compare with this node), "carried" (array of
 * the other keys: not compared, carried into the driver's properties),
 * "entitlement": false when the personality matched but its bundle's
 * entitlements do not cover node (then "matched" is false and "reason"
 * starts "entitlement:"; entitlements.h)}.  Caller owns. */
odk_value *match_explain(const registry *reg, const reg_node *node, bundle *const *bundles,
                         size_t n_bundles, const char *const *taken, size_t n_taken);

#endif
