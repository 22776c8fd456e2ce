/* Glue between the registry, the catalog and the instances: when a node is
 * registered or a bundle arrives, rank personalities and launch winners. */
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon.h"
#include "daemon/match.h"
#include "families/serial/pty.h"
#include "odk/log.h"
#include "odk/status.h"

/* Match categories that can have a driver on one node at once; a node
 * with more drivers attached is matched as if the extra ones were absent
 * (and logged). */
#define MAX_CATEGORIES_PER_NODE 64

/* Match categories that already have a driver on node. */
static size_t taken_categories(struct odkd *d, const reg_node *node, const char **taken,
                               size_t cap)
{
    size_t n = 0;
    for (struct instance *in = d->instances; in && n < cap; in = in->next)
        if (in->provider_id == node->id && !in->terminate)
            taken[n++] = in->category;
    return n;
}

void matcher_run_node(struct odkd *d, reg_node *node)
{
    if (node->state == REG_INACTIVE || node->state == REG_TERMINATING || node->state == REG_GONE)
        return;
    size_t n_bundles = 0;
    odk_bundle **bundles = catalog_bundles(d, &n_bundles);
    if (!bundles && n_bundles)
        return;
    const char *taken[MAX_CATEGORIES_PER_NODE];
    size_t n_taken = taken_categories(d, node, taken, MAX_CATEGORIES_PER_NODE);
    if (n_taken == MAX_CATEGORIES_PER_NODE)
        odk_warn("node %llu has %d or more drivers attached (MAX_CATEGORIES_PER_NODE)",
                 (unsigned long long)node->id, MAX_CATEGORIES_PER_NODE);
    match_candidate *winners = NULL;
    size_t n_winners = 0;
    if (match_rank(d->reg, node, bundles, n_bundles, taken, n_taken, &winners, &n_winners) ==
        ODK_OK) {
        for (size_t i = 0; i < n_winners; i++) {
            struct catalog_entry *e = catalog_find(d, winners[i].bundle->id);
            if (e)
                instance_launch(d, e, winners[i].name, winners[i].personality, node);
        }
    }
    free(winners);
    free(bundles);
}

static int run_one(reg_node *n, void *ctx)
{
    matcher_run_node(ctx, n);
    return 0;
}

void matcher_run_all(struct odkd *d)
{
    registry_walk(registry_root(d->reg), run_one, d);
}

void matcher_register(struct odkd *d, reg_node *node)
{
    node->state = REG_REGISTERED;
    server_notify(d, "registered", node);
    matcher_run_node(d, node);
}

static int notify_gone(reg_node *n, void *ctx)
{
    if (n->state != REG_INACTIVE)
        server_notify(ctx, "terminated", n);
    return 0;
}

void matcher_remove_node(struct odkd *d, reg_node *node)
{
    registry_walk(node, notify_gone, d);
    serial_pty_forget(d, node);
    registry_remove(d->reg, node);
}
