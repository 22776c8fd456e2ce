/* SPDX-License-Identifier: MIT */
/* odkctl pci — simulated PCI functions, listed like `lspci -nn`:
 *
 *   odkctl pci [-v] [--json]          the functions (-v: BARs, capabilities,
 *                                     interrupts, the model's state)
 *   odkctl pci plug MODEL [JSON]      plug a simulated function (edu)
 *   odkctl pci unplug [--surprise] ID remove it (--surprise: its model dies
 *                                     first, as a card pulled mid-transfer)
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "odk/client.h"
#include "odk/status.h"
#include "odk/value.h"

int odkctl_pci(odk_client *c, int argc, char **argv, bool json);

static int pci_request(odk_client *c, const char *op, odk_value *args, odk_value **reply)
{
    int st = odk_client_request(c, op, args, reply);
    if (st < 0) {
        const char *why = *reply ? odk_dict_get_string(*reply, "error", NULL) : NULL;
        fprintf(stderr, "odkctl: %s%s%s\n", why ? odk_status_name(st) : odk_strerror(st), why ? ": " : "", why ? why : "");
        odk_value_free(*reply);
        *reply = NULL;
    }
    return st;
}

static const char *class_name(uint32_t class_code)
{
    switch (class_code >> 8) {
    case 0x0000:
        return "Non-VGA unclassified device";
    case 0x00ff:
        return "Unclassified device";
    case 0x0200:
        return "Ethernet controller";
    case 0x0400:
        return "Multimedia video controller";
    case 0x0480:
        return "Multimedia controller";
    default:
        return "Device";
    }
}

static void print_verbose(const odk_value *d)
{
    const odk_value *bars = odk_dict_get(d, "bars");
    for (size_t i = 0; i < odk_array_count(bars); i++) {
        const odk_value *b = odk_array_get(bars, i);
        int64_t size = odk_dict_get_int(b, "size", 0);
        printf("\tRegion %" PRId64 ": Memory (%s-bit, %sprefetchable) [size=%" PRId64 "%s]\n",
               odk_dict_get_int(b, "index", 0), odk_dict_get_bool(b, "64bit", false) ? "64" : "32",
               odk_dict_get_bool(b, "prefetchable", false) ? "" : "non-",
               size >= 1 << 20 ? size >> 20 : size >= 1024 ? size >> 10 : size,
               size >= 1 << 20 ? "M" : size >= 1024 ? "K" : "");
    }
    const odk_value *caps = odk_dict_get(d, "capabilities");
    for (size_t i = 0; i < odk_array_count(caps); i++) {
        const odk_value *cap = odk_array_get(caps, i);
        printf("\tCapabilities: [%02" PRIx64 "] %s", (uint64_t)odk_dict_get_int(cap, "offset", 0),
               odk_dict_get_string(cap, "name", "?"));
        if (odk_dict_get(cap, "vectors"))
            printf(": %" PRId64 " vector(s)", odk_dict_get_int(cap, "vectors", 0));
        printf("\n");
    }
    const odk_value *irq = odk_dict_get(d, "interrupts");
    if (irq)
        printf("\tInterrupts: pin %s, MSI %" PRId64 ", MSI-X %" PRId64 "\n",
               odk_dict_get_int(irq, "pin", 0) ? "A" : "none", odk_dict_get_int(irq, "msi", 0),
               odk_dict_get_int(irq, "msix", 0));
    const odk_value *state = odk_dict_get(d, "state");
    if (state) {
        char *s = odk_value_to_json(state, 0);
        printf("\tModel state: %s\n", s ? s : "?");
        free(s);
    }
    const char *drv = odk_dict_get_string(d, "driver", NULL);
    if (drv)
        printf("\tKernel driver in use: %s\n", drv);
}

static int list(odk_client *c, bool verbose, bool json)
{
    odk_value *args = odk_value_new_dict(), *r = NULL;
    odk_dict_set_bool(args, "verbose", verbose);
    if (pci_request(c, "pci-list", args, &r) < 0)
        return 1;
    const odk_value *fns = odk_dict_get(r, "devices");
    if (json) {
        char *s = odk_value_to_json(fns, ODK_JSON_PRETTY);
        printf("%s\n", s ? s : "[]");
        free(s);
    }
    for (size_t i = 0; !json && i < odk_array_count(fns); i++) {
        const odk_value *d = odk_array_get(fns, i);
        uint32_t cls = (uint32_t)odk_dict_get_int(d, "class-code", 0);
        printf("%s %s [%04x]: Device [%04" PRIx64 ":%04" PRIx64 "] (rev %02" PRIx64
               ") (node %" PRId64 ", model %s)",
               odk_dict_get_string(d, "location", "?") + 5, class_name(cls), cls >> 8,
               (uint64_t)odk_dict_get_int(d, "vendor-id", 0),
               (uint64_t)odk_dict_get_int(d, "device-id", 0),
               (uint64_t)odk_dict_get_int(d, "revision-id", 0), odk_dict_get_int(d, "node", 0),
               odk_dict_get_string(d, "model", "?"));
        const char *error = odk_dict_get_string(d, "error", NULL);
        if (error)
            printf(" ERROR: %s", error);
        printf("\n");
        if (verbose) {
            printf("\tSubsystem: [%04" PRIx64 ":%04" PRIx64 "]\n",
                   (uint64_t)odk_dict_get_int(d, "subsystem-vendor-id", 0),
                   (uint64_t)odk_dict_get_int(d, "subsystem-id", 0));
            print_verbose(d);
        }
    }
    odk_value_free(r);
    return 0;
}

int odkctl_pci(odk_client *c, int argc, char **argv, bool json)
{
    if (argc == 0 || (argc == 1 && strcmp(argv[0], "-v") == 0))
        return list(c, argc == 1, json);
    odk_value *args = odk_value_new_dict(), *r = NULL;
    const char *op = NULL;
    if (strcmp(argv[0], "plug") == 0 && (argc == 2 || argc == 3)) {
        odk_dict_set_string(args, "model", argv[1]);
        if (argc == 3) {
            odk_value *a = NULL;
            char err[256];
            if (odk_value_from_json(argv[2], &a, err, sizeof err) < 0 ||
                odk_value_type(a) != ODK_TYPE_DICT) {
                fprintf(stderr, "odkctl: the model's arguments must be a JSON object%s%s\n",
                        a ? "" : ": ", a ? "" : err);
                odk_value_free(a);
                odk_value_free(args);
                return 2;
            }
            odk_dict_set(args, "args", a);
        }
        op = "pci-plug";
    } else if (strcmp(argv[0], "unplug") == 0 && (argc == 2 || argc == 3)) {
        bool surprise = argc == 3 && strcmp(argv[1], "--surprise") == 0;
        char *end;
        unsigned long long id = strtoull(argv[argc - 1], &end, 0);
        if ((argc == 3 && !surprise) || *end || !*argv[argc - 1]) {
            odk_value_free(args);
            fprintf(stderr, "odkctl: usage: odkctl pci unplug [--surprise] ID\n");
            return 2;
        }
        odk_dict_set_int(args, "node", (int64_t)id);
        odk_dict_set_bool(args, "surprise", surprise);
        op = "pci-unplug";
    } else {
        odk_value_free(args);
        fprintf(stderr, "usage: odkctl pci [-v] [--json] | pci plug MODEL [JSON] | "
                        "pci unplug [--surprise] ID\n");
        return 2;
    }
    if (pci_request(c, op, args, &r) < 0)
        return 1;
    int rc = 0;
    if (strcmp(op, "pci-plug") == 0) {
        printf("%" PRId64 "\n", odk_dict_get_int(r, "node", 0));
        const char *error = odk_dict_get_string(r, "error", NULL);
        if (error) {
            fprintf(stderr, "odkctl: the function is broken: %s\n", error);
            rc = 1;
        }
    }
    odk_value_free(r);
    return rc;
}
