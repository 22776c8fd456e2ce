/* SPDX-License-Identifier: MIT */
/* odkctl hid                    HID devices, each with its report descriptor decoded
 * odkctl hid follow ID [COUNT]  its events as they come (COUNT: stop after that many)
 * odkctl hid leds ID [BITS]     read, or set as the host would, its LEDs
 * --json: one JSON document (the list), or one JSON object per event. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "odk/hid_client.h"
#include "odk/hid_descriptor.h"
#include "odkctl_hid.h"

static bool parse_id(const char *s, uint64_t *v)
{
    char *end;
    *v = strtoull(s, &end, 0);
    return *s && !*end;
}

static int list(odk_client *c, bool json)
{
    odk_value *m = odk_value_new_dict();
    odk_dict_set_string(m, "IOProviderClass", "IOHIDDevice");
    odk_value *nodes = NULL;
    int st = odk_find_services(c, m, &nodes);
    odk_value_free(m);
    if (st < 0) {
        fprintf(stderr, "odkctl: %s\n", odk_strerror(st));
        return 1;
    }
    if (json)
        printf("[");
    for (size_t i = 0; i < odk_array_count(nodes); i++) {
        const odk_value *n = odk_array_get(nodes, i);
        const odk_value *p = odk_dict_get(n, "properties");
        size_t len = 0;
        const void *rd = odk_value_data(odk_dict_get(p, "ReportDescriptor"), &len);
        char *text = NULL;
        if (json) {
            odk_dict_get(p, "ReportDescriptor");
            char *node = odk_value_to_json(n, 0);
            odk_hid_descriptor_format_json(rd, len, &text);
            /* The node as odkd describes it, plus the decoded descriptor. */
            size_t nl = node ? strlen(node) : 0;
            if (node && nl > 1 && node[nl - 1] == '}')
                node[nl - 1] = 0;
            printf("%s%s, \"descriptor\": %s}", i ? ",\n " : "", node ? node : "{",
                   text ? text : "null");
            free(node);
        } else {
            printf("%" PRId64 "  %04" PRIx64 ":%04" PRIx64 "  %s%s%s  (%s, %s, usage %" PRId64
                   ":%" PRId64 ")\n",
                   odk_dict_get_int(n, "id", 0), odk_dict_get_int(p, "VendorID", 0),
                   odk_dict_get_int(p, "ProductID", 0), odk_dict_get_string(p, "Manufacturer", ""),
                   odk_dict_get_string(p, "Manufacturer", "")[0] ? " " : "",
                   odk_dict_get_string(p, "Product", "?"), odk_dict_get_string(p, "Transport", "?"),
                   odk_dict_get_string(p, "OdkHIDBackend", "?"),
                   odk_dict_get_int(p, "PrimaryUsagePage", 0), odk_dict_get_int(p, "PrimaryUsage", 0));
            odk_hid_descriptor_format(rd, len, &text);
            for (char *line = text, *nx; line && *line; line = nx) {
                nx = strchr(line, '\n');
                if (nx)
                    *nx++ = 0;
                printf("    %s\n", line);
                if (!nx)
                    break;
            }
        }
        free(text);
    }
    if (json)
        printf("]\n");
    odk_value_free(nodes);
    return 0;
}

static int follow(odk_client *c, uint64_t id, long count, bool json)
{
    odk_hid *h;
    int st = odk_hid_open(c, id, &h);
    if (st < 0) {
        fprintf(stderr, "odkctl: HID device %" PRIu64 ": %s\n", id, odk_strerror(st));
        return 1;
    }
    /* The caller knows we are reading once this line is out. */
    fprintf(stderr, "following HID device %" PRIu64 "\n", id);
    for (long n = 0; count <= 0 || n < count;) {
        odk_hid_input_event ev;
        st = odk_hid_read(h, &ev, 1000);
        if (st == ODK_E_TIMEOUT)
            continue;
        if (st < 0)
            break;
        n++;
        char name[96];
        odk_hid_usage_name(ODK_HID_USAGE(ev.usage_page, ev.usage), name, sizeof name);
        if (json)
            printf("{\"time_ns\": %" PRIu64 ", \"type\": \"%s\", \"page\": %u, \"usage\": %u, "
                   "\"value\": %d, \"end\": %s, \"name\": \"%s\"}\n",
                   ev.timestamp_ns, odk_hid_input_type_name(ev.type), ev.usage_page, ev.usage,
                   ev.value, ev.flags & ODK_HID_INPUT_END_OF_REPORT ? "true" : "false", name);
        else
            printf("%" PRIu64 ".%06" PRIu64 "  %-11s 0x%02x:0x%04x %-28s %d%s\n",
                   ev.timestamp_ns / 1000000000u, ev.timestamp_ns % 1000000000u / 1000,
                   odk_hid_input_type_name(ev.type), ev.usage_page, ev.usage, name, ev.value,
                   ev.flags & ODK_HID_INPUT_END_OF_REPORT ? "  --" : "");
        fflush(stdout);
    }
    odk_hid_close(h);
    if (st < 0 && st != ODK_E_TIMEOUT) {
        fprintf(stderr, "odkctl: HID device %" PRIu64 ": %s\n", id, odk_strerror(st));
        return 1;
    }
    return 0;
}

static int leds(odk_client *c, uint64_t id, const char *set)
{
    odk_hid *h;
    int st = odk_hid_open(c, id, &h);
    uint64_t bits = 0;
    if (st == ODK_OK && set) {
        if (!parse_id(set, &bits) || bits > 0x1f) {
            fprintf(stderr, "odkctl: LED bits 0..0x1f (1 num, 2 caps, 4 scroll, 8 compose, 16 kana)\n");
            odk_hid_close(h);
            return 2;
        }
        st = odk_hid_set_leds(h, (uint32_t)bits);
    } else if (st == ODK_OK) {
        uint32_t l = 0;
        st = odk_hid_get_leds(h, &l);
        if (st == ODK_OK)
            printf("0x%02x\n", l);
    }
    odk_hid_close(h);
    if (st < 0) {
        fprintf(stderr, "odkctl: HID device %" PRIu64 ": %s\n", id, odk_strerror(st));
        return 1;
    }
    return 0;
}

int odkctl_hid(odk_client *c, int argc, char **argv, bool json)
{
    uint64_t id;
    if (argc == 0)
        return list(c, json);
    if (strcmp(argv[0], "follow") == 0 && (argc == 2 || argc == 3) && parse_id(argv[1], &id))
        return follow(c, id, argc == 3 ? strtol(argv[2], NULL, 0) : 0, json);
    if (strcmp(argv[0], "leds") == 0 && (argc == 2 || argc == 3) && parse_id(argv[1], &id))
        return leds(c, id, argc == 3 ? argv[2] : NULL);
    fprintf(stderr, "usage: odkctl hid [--json] | hid follow ID [COUNT] | hid leds ID [BITS]\n");
    return 2;
}
