/* SPDX-License-Identifier: MIT */
/* match_index.h — which personalities could match a node, without comparing
 * every one.
 *
 * Matching is per pair (match.c), so a node plugged into a catalog of P
 * personalities costs P comparisons.  The index cuts that to the few that
 * could match, and match_rank_some ranks those exactly as match_rank ranks
 * all: the index only ever leaves out personalities that cannot match.
 *
 * How: personalities are grouped by their IOProviderClass string (a node
 * looks in every group whose class it is).  Within a group, each
 * personality is filed under one equality it requires of every node it
 * matches, the rarest among:
 *   - one pair of IOPropertyMatch (when it is a single dictionary whose
 *     value is a string, integer or boolean): the node's own property of
 *     that name must be equal;
 *   - its IONameMatch (a string, or each string of an array): the node's
 *     name (match_node_name) must be one of them;
 *   - a bus key whose struct match_key has node_value (USB's idVendor,
 *     bDeviceClass, ...), when the group's class is one of that table's:
 *     the node's value must be equal.
 * A personality with none of these is filed as "always compare".  Values
 * are filed by a 64-bit hash of (key, type, value); a collision only adds
 * candidates, which the full comparison then refuses.
 *
 * The index borrows the bundles and their personalities: rebuild it
 * whenever the catalog changes (the catalog does: catalog_index). */
#ifndef ODK_DAEMON_MATCH_INDEX_H
#define ODK_DAEMON_MATCH_INDEX_H

#include "daemon/core/match.h"

typedef struct match_index match_index;

/* An index of every personality of bundles[0..n) (borrowed), for nodes of
 * reg (class hierarchy and bus keys as registered now).  NULL when out of
 * memory. */
match_index *match_index_build(const registry *reg, bundle *const *bundles, size_t n);
void match_index_free(match_index *ix);

/* The personalities that could match node, into *refs (caller frees; in
 * no particular order, each at most once).  ODK_E_NOMEM. */
int match_index_candidates(const match_index *ix, const registry *reg, const reg_node *node,
                           match_ref **refs, size_t *n_refs);

/* For benchmarks and logs: personalities indexed in all, and those filed
 * as "always compare". */
void match_index_counts(const match_index *ix, size_t *total, size_t *unfiled);

#endif
