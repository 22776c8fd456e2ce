/* SPDX-License-Identifier: MIT */
/* odkctl storage ... — the simulated HBA and the storage family's NBD
 * exports (docs/storage.md). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "odk/client.h"
#include "odk/status.h"
#include "odk/value.h"
#include "odkctl_storage.h"

static int report(int st, odk_value *reply)
{
    const char *why = reply ? odk_dict_get_string(reply, "error", NULL) : NULL;
    fprintf(stderr, "odkctl: %s: %s\n", odk_status_name(st), why ? why : odk_strerror(st));
    odk_value_free(reply);
    return 1;
}

static int node_arg(const char *s, int64_t *out)
{
    char *end;
    long long v = strtoll(s, &end, 0);
    if (!*s || *end || v < 0) {
        fprintf(stderr, "odkctl: '%s' is not a node id\n", s);
        return -1;
    }
    *out = v;
    return 0;
}

static int list(odk_client *c)
{
    odk_value *r = NULL;
    int st = odk_client_request(c, "storage-list", odk_value_new_dict(), &r);
    if (st < 0)
        return report(st, r);
    const odk_value *arr = odk_dict_get(r, "exports");
    for (size_t i = 0; arr && i < odk_array_count(arr); i++) {
        const odk_value *e = odk_array_get(arr, i);
        const char *name = odk_dict_get_string(e, "name", "");
        printf("%-24s nbd+unix:///%s?socket=%s  (provider %" PRId64 ", pid %" PRId64 ")\n", name,
               name, odk_dict_get_string(e, "socket", ""), odk_dict_get_int(e, "provider", 0),
               odk_dict_get_int(e, "pid", 0));
        if (odk_dict_get_int(e, "tcp_port", 0) > 0)
            printf("%-24s nbd://127.0.0.1:%" PRId64 "/%s\n", "", odk_dict_get_int(e, "tcp_port", 0),
                   name);
    }
    odk_value_free(r);
    return 0;
}

int odkctl_storage(odk_client *c, int argc, char **argv)
{
    if (argc == 0)
        return list(c);
    odk_value *args = odk_value_new_dict(), *r = NULL;
    const char *op;
    int64_t v;
    if (strcmp(argv[0], "plug") == 0 && (argc == 2 || argc == 3)) {
        op = "storage-plug";
        if (node_arg(argv[1], &v) < 0)
            goto usage;
        odk_dict_set_int(args, "disks", v);
        if (argc == 3) {
            odk_value *opts = NULL;
            if (odk_value_from_json(argv[2], &opts, NULL, 0) < 0 ||
                odk_value_type(opts) != ODK_TYPE_DICT) {
                odk_value_free(opts);
                fprintf(stderr, "odkctl: the HBA's options must be a JSON object\n");
                goto usage;
            }
            for (size_t i = 0; i < odk_dict_count(opts); i++)
                odk_dict_set(args, odk_dict_key_at(opts, i),
                             odk_value_copy(odk_dict_value_at(opts, i)));
            odk_value_free(opts);
        }
    } else if (strcmp(argv[0], "unplug") == 0 && argc == 2) {
        op = "storage-unplug";
        if (node_arg(argv[1], &v) < 0)
            goto usage;
        odk_dict_set_int(args, "node", v);
    } else if (strcmp(argv[0], "fault") == 0 && argc >= 4 && argc <= 6) {
        op = "storage-fault";
        if (node_arg(argv[1], &v) < 0)
            goto usage;
        odk_dict_set_int(args, "node", v);
        if (node_arg(argv[2], &v) < 0)
            goto usage;
        odk_dict_set_int(args, "slot", v);
        odk_dict_set_string(args, "fault", argv[3]);
        if (argc >= 5 && node_arg(argv[4], &v) == 0)
            odk_dict_set_int(args, "lba", v);
        if (argc == 6 && node_arg(argv[5], &v) == 0)
            odk_dict_set_int(args, "blocks", v);
    } else {
        goto usage;
    }
    int st = odk_client_request(c, op, args, &r);
    if (st < 0)
        return report(st, r);
    if (strcmp(op, "storage-plug") == 0)
        printf("%" PRId64 "\n", odk_dict_get_int(r, "node", 0));
    odk_value_free(r);
    return 0;
usage:
    odk_value_free(args);
    fprintf(stderr, "usage: odkctl storage [plug DISKS [JSON] | unplug ID |\n"
                    "                       fault ID SLOT "
                    "medium-error|not-ready|remove|insert|swallow|hang|no-abort|clear"
                    " [LBA [BLOCKS]]]\n");
    return 2;
}
