/* SPDX-License-Identifier: MIT */
/* odkctl net: the network interfaces drivers made (the IOEthernetInterface
 * nodes of the registry) and the simulated cables between sim NICs. */
#include "odkctl_net.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_json(const odk_value *v)
{
    char *s = odk_value_to_json(v, ODK_JSON_PRETTY);
    printf("%s\n", s ? s : "null");
    free(s);
}

static int request(odk_client *c, const char *op, odk_value *args, odk_value **reply)
{
    int st = odk_client_request(c, op, args, reply);
    if (st < 0) {
        const char *why = *reply ? odk_dict_get_string(*reply, "error", NULL) : NULL;
        if (why)
            fprintf(stderr, "odkctl: %s: %s\n", odk_status_name(st), why);
        else
            fprintf(stderr, "odkctl: %s\n", odk_strerror(st));
        odk_value_free(*reply);
        *reply = NULL;
    }
    return st;
}

/* One line per interface: name, MAC, link, MTU, then the counters
 * (unless brief); brief prints nothing when there is no interface. */
static int list_interfaces(odk_client *c, bool json, bool brief)
{
    odk_value *r;
    if (request(c, "tree", NULL, &r) < 0)
        return 1;
    const odk_value *nodes = odk_dict_get(r, "nodes");
    odk_value *out = odk_value_new_array();
    int shown = 0;
    for (size_t i = 0; i < odk_array_count(nodes); i++) {
        const odk_value *n = odk_array_get(nodes, i);
        const odk_value *p = odk_dict_get(n, "properties");
        if (strcmp(odk_dict_get_string(n, "class", ""), "IOEthernetInterface") != 0 ||
            !odk_dict_get(p, "BSD Name"))
            continue;
        if (json) {
            odk_value *e = odk_value_copy(p);
            if (e)
                odk_dict_set_int(e, "node", odk_dict_get_int(n, "id", 0));
            odk_array_append(out, e);
            continue;
        }
        const odk_value *cn = odk_dict_get(p, "Counters");
        if (brief && !shown++)
            printf("\nNETWORK INTERFACES\n");
        int64_t speed = odk_dict_get_int(p, "IOLinkSpeed", 0);
        printf("%-12s node %-4" PRId64 " %s  link %s", odk_dict_get_string(p, "BSD Name", "?"),
               odk_dict_get_int(n, "id", 0), odk_dict_get_string(p, "IOMACAddress", "?"),
               odk_dict_get_bool(p, "IOLinkStatus", false) ? "up" : "down");
        if (speed > 0)
            printf(" %" PRId64 " Mb/s", speed / 1000000);
        printf("  mtu %" PRId64 "\n", odk_dict_get_int(p, "IOMaxTransferUnit", 0));
        if (brief)
            continue;
        printf("    tx %" PRId64 " packets %" PRId64 " bytes %" PRId64 " errors %" PRId64
               " drops   rx %" PRId64 " packets %" PRId64 " bytes %" PRId64 " errors %" PRId64
               " drops\n",
               odk_dict_get_int(cn, "TxPackets", 0), odk_dict_get_int(cn, "TxBytes", 0),
               odk_dict_get_int(cn, "TxErrors", 0), odk_dict_get_int(cn, "TxDrops", 0),
               odk_dict_get_int(cn, "RxPackets", 0), odk_dict_get_int(cn, "RxBytes", 0),
               odk_dict_get_int(cn, "RxErrors", 0), odk_dict_get_int(cn, "RxDrops", 0));
    }
    if (json)
        print_json(out);
    odk_value_free(out);
    odk_value_free(r);
    return 0;
}

static void print_cable(const odk_value *v)
{
    printf("%-12s %-9s loss %" PRId64 " ppm  delay %" PRId64 " us  rate %" PRId64
           " bit/s  devices %" PRId64 " %" PRId64 "\n",
           odk_dict_get_string(v, "cable", "?"),
           odk_dict_get_bool(v, "plugged", false) ? "plugged" : "unplugged",
           odk_dict_get_int(v, "loss_ppm", 0), odk_dict_get_int(v, "delay_us", 0),
           odk_dict_get_int(v, "rate_bps", 0), odk_dict_get_int(v, "end0", 0),
           odk_dict_get_int(v, "end1", 0));
}

static int cable(odk_client *c, int argc, char **argv, bool json)
{
    odk_value *args = odk_value_new_dict(), *r = NULL;
    if (argc >= 1)
        odk_dict_set_string(args, "cable", argv[0]);
    for (int i = 1; i < argc; i++) {
        const char *w = argv[i];
        if (strcmp(w, "plug") == 0 || strcmp(w, "unplug") == 0) {
            odk_dict_set_bool(args, "plugged", w[0] == 'p');
            continue;
        }
        const char *key = strcmp(w, "loss") == 0    ? "loss_ppm"
                          : strcmp(w, "delay") == 0 ? "delay_us"
                          : strcmp(w, "rate") == 0  ? "rate_bps"
                                                    : NULL;
        char *end = NULL;
        errno = 0;
        long long v = key && i + 1 < argc ? strtoll(argv[i + 1], &end, 0) : -1;
        if (!key || i + 1 >= argc || errno || !end || *end || v < 0) {
            fprintf(stderr, "odkctl: net cable NAME [plug|unplug] [loss PPM] [delay US] "
                            "[rate BPS]\n");
            odk_value_free(args);
            return 2;
        }
        odk_dict_set_int(args, key, v);
        i++;
    }
    if (request(c, "net-cable", args, &r) < 0)
        return 1;
    const odk_value *list = odk_dict_get(r, "cables");
    if (json)
        print_json(list ? list : r);
    else if (list)
        for (size_t i = 0; i < odk_array_count(list); i++)
            print_cable(odk_array_get(list, i));
    else
        print_cable(r);
    odk_value_free(r);
    return 0;
}

int odkctl_net(odk_client *c, int argc, char **argv, bool json)
{
    if (argc == 0)
        return list_interfaces(c, json, false);
    if (strcmp(argv[0], "cable") == 0)
        return cable(c, argc - 1, argv + 1, json);
    fprintf(stderr, "odkctl: net [cable [NAME [plug|unplug] [loss PPM] [delay US] [rate BPS]]]\n");
    return 2;
}

void odkctl_net_list_brief(odk_client *c)
{
    list_interfaces(c, false, true);
}
