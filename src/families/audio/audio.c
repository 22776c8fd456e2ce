/* SPDX-License-Identifier: MIT */
/* The audio family, odkd side (docs/audio.md): the classes
 * IOUserAudioDevice and IOUserAudioStream, and the one rule that needs the
 * whole registry: a device UID names one device on the machine.  Before a
 * driver host publishes a device it asks "audio-claim-uid"; odkd refuses a
 * UID that an IOUserAudioDevice in the registry already carries (a
 * restarted driver's old nodes left with its old host).  Samples never pass here: the host shares its rings
 * with apps directly. */
#include <stdio.h>
#include <string.h>

#include "daemon/front/hostreq.h"
#include "daemon/odkd.h"
#include "odk/audio_types.h"
#include "odk/status.h"

struct claim {
    const char *uid;
    reg_node *found;
};

static int find_uid(reg_node *n, void *ctx)
{
    struct claim *c = ctx;
    if (strcmp(n->class_name, "IOUserAudioDevice") != 0)
        return 0;
    const char *uid = odk_dict_get_string(n->props, "UID", NULL);
    if (uid && strcmp(uid, c->uid) == 0) {
        c->found = n;
        return 1; /* stops the walk */
    }
    return 0;
}

/* {"uid": UID} -> ODK_OK, or ODK_E_EXISTS naming the node that has it. */
static int op_claim_uid(struct host_request *r)
{
    const char *uid = odk_dict_get_string(r->args, "uid", NULL);
    if (!uid || !*uid || strlen(uid) > ODK_AUDIO_MAX_UID) {
        snprintf(r->err, sizeof r->err, "audio-claim-uid needs a 'uid' of 1 to %u bytes",
                 ODK_AUDIO_MAX_UID);
        return ODK_E_INVALID;
    }
    struct claim c = {uid, NULL};
    registry_walk(registry_root(r->d->reg), find_uid, &c);
    if (c.found) {
        snprintf(r->err, sizeof r->err, "audio device UID '%s' is node %llu's already", uid,
                 (unsigned long long)c.found->id);
        return ODK_E_EXISTS;
    }
    return ODK_OK;
}

static const struct class_def classes[] = {{"IOUserAudioDevice", "IOService"},
                                           {"IOUserAudioStream", "IOService"},
                                           {NULL, NULL}};
/* A device's UID is the resource: claiming one needs the "audio" entitlement. */
static const struct resource_op resource_ops[] = {{"audio-claim-uid", "audio"}, {NULL, NULL}};
static const struct host_op host_ops[] = {{"audio-claim-uid", op_claim_uid}, {NULL, NULL}};

static const struct odkd_module audio_family = {
    .name = "audio",
    .kind = "family",
    .classes = classes,
    .host_ops = host_ops,
    .resource_ops = resource_ops,
};
ODKD_MODULE(audio_family)
