/* SPDX-License-Identifier: MIT */
/* match.h — IOKit matching: does a personality match a registry node, and
 * which personalities win.
 *
 * Keys (IOKit's names):
 *   IOProviderClass     the node's class or one of its ancestors
 *   IONameMatch         string or array of strings; compared with the node's
 *                       "IOName" property, else "name", else its class name
 *   IOPropertyMatch     dictionary (all its keys equal the node's), or array
 *                       of dictionaries (any one)
 *   IOResourceMatch     string: the node is IOUserResources and has a
 *                       property of that name ("IOKit" always exists)
 *   IOPCIPrimaryMatch   "0xDDDDVVVV[&0xMASK] ..." against device<<16|vendor
 *   IOPCISecondaryMatch against subsystem-id<<16|subsystem-vendor-id
 *   IOPCIMatch          primary or secondary
 *   IOPCIClassMatch     against "class-code" (24-bit)
 *   IOProbeScore        integer, default 0; highest wins per category
 *   IOMatchCategory     string, default "IODefaultMatchCategory"
 *   any other key       plain equality with the node's property of that name,
 *                       except the informational keys listed in match.c
 *                       (IOClass, IOUserClass, IOUserServerName, CFBundle*,
 *                       IOTTYBaseName, ...), which are not matched.
 * PCI node properties: "vendor-id", "device-id", "subsystem-vendor-id",
 * "subsystem-id", "class-code", integers.
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

int64_t match_probe_score(const odk_value *personality);
const char *match_category(const odk_value *personality);

typedef struct match_candidate {
    const bundle *bundle;
    const char *name; /* personality name, borrowed from the bundle */
    const odk_value *personality;
    int64_t score;
    const char *category;
} match_candidate;

/* Ranks every personality of every bundle against node: fills winners
 * (caller frees the array, not its contents) with the best candidate of
 * each match category, highest IOProbeScore first; ties go to the bundle
 * id, then personality name, that sorts first.  Categories listed in
 * taken (n_taken strings) already have a driver and are skipped. */
int match_rank(const registry *reg, const reg_node *node, bundle *const *bundles,
               size_t n_bundles, const char *const *taken, size_t n_taken,
               match_candidate **winners, size_t *n_winners);

/* For `odkctl match --explain`: an array with one dictionary per
 * personality of every bundle: {"bundle", "personality", "matched" (bool),
 * "reason" (string, absent when matched), "score", "category",
 * "winner" (bool)}.  Caller owns. */
odk_value *match_explain(const registry *reg, const reg_node *node, bundle *const *bundles,
                         size_t n_bundles, const char *const *taken, size_t n_taken);

#endif
