/* SPDX-License-Identifier: MIT */
/* odkctl — the command line for odkd.  Every listing prints as JSON with
 * --json.  Errors print the status name and odkd's sentence, exit 1. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/defaults.h"
#include "odk/client.h"
#include "odk/usb_descriptors.h"
#include "odkctl_net.h"
#include "odkctl_hid.h"
#include "odkctl_audio.h"
#include "odkctl_storage.h"
#include "odkctl_trust.h"
#include "skeleton.h"



#define CALL_SCALARS_OUT 16                /* default room for scalar outputs */
#define CALL_STRUCT_OUT (1024 * 1024)      /* default room for the output structure */

static bool json_out;

int odkctl_pci(odk_client *c, int argc, char **argv, bool json); /* odkctl_pci.c */
int odkctl_scsi(odk_client *c, int argc, char **argv);            /* odkctl_scsi.c */

static int usage(void)
{
    fprintf(stderr,
            "usage: odkctl [--state-dir DIR] [--json] COMMAND\n"
            "       odkctl --version\n"
            "  list                      driver instances (bundle, version, build, pid, ...)\n"
            "  hosts                     the driver host processes: zygote, spares, primed, instances\n"
            "  tree                      the registry\n"
            "  find JSON                 registry nodes matching a dictionary\n"
            "  match --explain ID        why each personality matched node ID or not\n"
            "  sim plug JSON             plug a simulated device, print its node ids (device first)\n"
            "  sim unplug ID             unplug it (waits until its drivers stopped)\n"
            "  hid                       HID devices with their report descriptors decoded\n"
            "  hid follow ID [COUNT]     print a HID device's events as they come\n"
            "  hid leds ID [BITS]        read or set a HID device's LEDs\n"
            "  storage                   the storage family's NBD exports (docs/storage.md)\n"
            "  storage plug N [JSON]     plug a simulated HBA with N disks ({\"size_mb\": 64,\n"
            "                            \"properties\": {\"OdkRAIDLevel\": 0}})\n"
            "  storage unplug ID         unplug a simulated HBA\n"
            "  scsi LUN inquiry [--vpd P]|capacity|sense|raw [--unchecked] [--in N] [--out HEX] HEX\n"
            "                            CDBs to a LUN node through scsi-inquiry\n"
            "  storage fault ID SLOT KIND [LBA [BLOCKS]]  medium-error|not-ready|remove|insert|swallow|hang|no-abort|clear\n"
            "  usb [-v]                  USB devices, like lsusb (-v: their descriptors)\n"
            "  usb plug MODEL [JSON]     plug a simulated USB device (cdc-acm, ftdi, vendor-echo,\n"
            "                            hid-keyboard, hid-mouse, broken), print its node id\n"
            "  usb unplug ID             unplug a simulated USB device\n"
            "  usb fault ID KIND [EP]    make it misbehave: stall|short|babble EP, disconnect\n"
            "  pci [-v]                  PCI functions, like lspci -nn (-v: BARs, capabilities)\n"
            "  pci plug MODEL [JSON]     plug a simulated PCI function (edu)\n"
            "  pci unplug [--surprise] ID  remove a simulated PCI function\n"
            "  usb input ID HEX [US]     input for the device model (a HID report: 8 bytes for\n"
            "                            hid-keyboard, 4 for hid-mouse), applied US later\n"
            "  audio                     audio devices: streams, formats, controls, clock\n"
            "  audio watch [UID] [COUNT] print a device's property changes as they come\n"
            "  audio control UID ID VALUE  set a control (volume, mute, clock source)\n"
            "  net                       network interfaces: name, MAC, link, MTU, counters\n"
            "  net cable [NAME [plug|unplug] [loss PPM] [delay US] [rate BPS]]\n"
            "                            show or set the simulated cables between net-sim NICs\n"
            "  install PATH              install or upgrade a bundle folder\n"
            "  uninstall BUNDLE-ID       stop and remove a bundle\n"
            "  restart BUNDLE-ID         restart a bundle's instances (also failed ones)\n"
            "  log BUNDLE-ID             a bundle's log\n"
            "  crashes                   crash reports\n"
            "  power sleep|wake          take every driver through a power change, in tree order\n"
            "  debug BUNDLE-ID           the gdb command line for each of its hosts\n"
            "  call ID SELECTOR [SCALAR...] [--struct HEX] [--scalars-out N] [--struct-out N]\n"
            "                            call a user-client method of node ID\n"
            "  new NAME                  write a driver bundle skeleton into ./NAME (no odkd needed)\n"
            "  keygen NAME               make a signing key: NAME.key (secret) and NAME.pub\n"
            "  sign BUNDLE --key KEY     sign a bundle folder (writes BUNDLE/odk.sig)\n"
            "  verify BUNDLE [--trust DIR] [--dev]\n"
            "                            check a bundle's signature (docs/trust.md)\n");
    return 2;
}

static int fail(int st, const odk_value *reply)
{
    /* One line: the status's name, then odkd's sentence if it sent one,
     * else the status's own. */
    const char *why = reply ? odk_dict_get_string(reply, "error", NULL) : NULL;
    if (why)
        fprintf(stderr, "odkctl: %s: %s\n", odk_status_name(st), why);
    else
        fprintf(stderr, "odkctl: %s\n", odk_strerror(st)); /* "ODK_E_X: sentence" */
    return 1;
}

/* A failure of a libodk call that asked odkd (opening a user client):
 * odkd's sentence when it sent one. */
static int fail_client(odk_client *c, int st)
{
    const char *why = odk_client_error(c);
    if (why)
        fprintf(stderr, "odkctl: %s: %s\n", odk_status_name(st), why);
    else
        fprintf(stderr, "odkctl: %s\n", odk_strerror(st));
    return 1;
}

static void print_json(const odk_value *v)
{
    char *s = odk_value_to_json(v, ODK_JSON_PRETTY);
    printf("%s\n", s ? s : "null");
    free(s);
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || !*s || *end || *s == '-')
        return false;
    *out = v;
    return true;
}

static int request(odk_client *c, const char *op, odk_value *args, odk_value **reply)
{
    int st = odk_client_request(c, op, args, reply);
    if (st < 0) {
        fail(st, *reply);
        odk_value_free(*reply);
        *reply = NULL;
    }
    return st;
}

static int cmd_list(odk_client *c)
{
    odk_value *r;
    if (request(c, "list", NULL, &r) < 0)
        return 1;
    const odk_value *a = odk_dict_get(r, "instances");
    if (json_out) {
        print_json(a);
    } else {
        /* Columns as wide as their longest entry, so long names never push
         * the others out of line. */
        int wb = 6, wv = 7, wc = 5;
        for (size_t i = 0; i < odk_array_count(a); i++) {
            const odk_value *x = odk_array_get(a, i);
            int nb = (int)strlen(odk_dict_get_string(x, "bundle", ""));
            int nv = (int)strlen(odk_dict_get_string(x, "version", ""));
            int nc = (int)strlen(odk_dict_get_string(x, "class", ""));
            wb = nb > wb ? nb : wb;
            wv = nv > wv ? nv : wv;
            wc = nc > wc ? nc : wc;
        }
        /* REASON comes last: it says why an instance is failed or backing
         * off, and a long sentence there pushes nothing out of line. */
        printf("%-4s %-*s %-*s %-16s %-*s %-7s %-9s %-8s %-8s %s\n", "INST", wb, "BUNDLE", wv,
               "VERSION", "BUILD", wc, "CLASS", "PID", "STATE", "RESTARTS", "PROVIDER", "REASON");
        for (size_t i = 0; i < odk_array_count(a); i++) {
            const odk_value *x = odk_array_get(a, i);
            const char *reason = odk_dict_get_string(x, "reason", "");
            printf("%-4" PRId64 " %-*s %-*s %-16s %-*s %-7" PRId64 " %-9s %-8" PRId64
                   " %-8" PRId64 " %s\n",
                   odk_dict_get_int(x, "instance", 0), wb, odk_dict_get_string(x, "bundle", ""),
                   wv, odk_dict_get_string(x, "version", ""),
                   odk_dict_get_string(x, "build", ""), wc, odk_dict_get_string(x, "class", ""),
                   odk_dict_get_int(x, "pid", 0), odk_dict_get_string(x, "state", ""),
                   odk_dict_get_int(x, "restarts", 0), odk_dict_get_int(x, "provider", 0),
                   reason[0] ? reason : "-");
        }
        odkctl_net_list_brief(c);
    }
    odk_value_free(r);
    return 0;
}

static odk_value *host_row(odk_value *rows, int64_t pid, const char *role, const char *bundle,
                           const char *state)
{
    odk_value *x = odk_value_new_dict();
    if (!x || odk_array_append(rows, x) < 0) {
        odk_value_free(x);
        return NULL;
    }
    odk_dict_set_int(x, "pid", pid);
    odk_dict_set_string(x, "role", role);
    if (bundle)
        odk_dict_set_string(x, "bundle", bundle);
    if (state)
        odk_dict_set_string(x, "state", state);
    return x;
}

/* The driver hosts odkd keeps: the zygote that forks them, the spares
 * waiting for an instance, the hosts primed for a bundle (docs/architecture.md,
 * "primed hosts"), and each instance's. */
static int cmd_hosts(odk_client *c)
{
    odk_value *ping, *list;
    if (request(c, "ping", NULL, &ping) < 0)
        return 1;
    if (request(c, "list", NULL, &list) < 0) {
        odk_value_free(ping);
        return 1;
    }
    odk_value *rows = odk_value_new_array();
    if (rows && odk_dict_get_int(ping, "zygote", 0) > 0)
        host_row(rows, odk_dict_get_int(ping, "zygote", 0), "zygote", NULL, NULL);
    const odk_value *a = odk_dict_get(ping, "spare_hosts");
    for (size_t i = 0; rows && i < odk_array_count(a); i++)
        host_row(rows, odk_value_int(odk_array_get(a, i)), "spare", NULL, NULL);
    a = odk_dict_get(ping, "primed");
    for (size_t i = 0; rows && i < odk_array_count(a); i++) {
        const odk_value *p = odk_array_get(a, i);
        host_row(rows, odk_dict_get_int(p, "pid", 0), "primed",
                 odk_dict_get_string(p, "bundle", NULL), odk_dict_get_string(p, "state", NULL));
    }
    a = odk_dict_get(list, "instances");
    for (size_t i = 0; rows && i < odk_array_count(a); i++) {
        const odk_value *p = odk_array_get(a, i);
        if (odk_dict_get_int(p, "pid", 0) <= 0)
            continue; /* not running: no host */
        odk_value *x = host_row(rows, odk_dict_get_int(p, "pid", 0), "instance",
                                odk_dict_get_string(p, "bundle", NULL),
                                odk_dict_get_string(p, "state", NULL));
        if (x)
            odk_dict_set_int(x, "instance", odk_dict_get_int(p, "instance", 0));
    }
    if (json_out) {
        print_json(rows);
    } else {
        int wb = 6;
        for (size_t i = 0; i < odk_array_count(rows); i++) {
            int n = (int)strlen(odk_dict_get_string(odk_array_get(rows, i), "bundle", "-"));
            wb = n > wb ? n : wb;
        }
        printf("%-7s %-8s %-*s %s\n", "PID", "ROLE", wb, "BUNDLE", "STATE");
        for (size_t i = 0; i < odk_array_count(rows); i++) {
            const odk_value *x = odk_array_get(rows, i);
            char inst[40] = "";
            if (odk_dict_get(x, "instance"))
                snprintf(inst, sizeof inst, " (instance %" PRId64 ")",
                         odk_dict_get_int(x, "instance", 0));
            printf("%-7" PRId64 " %-8s %-*s %s%s\n", odk_dict_get_int(x, "pid", 0),
                   odk_dict_get_string(x, "role", ""), wb, odk_dict_get_string(x, "bundle", "-"),
                   odk_dict_get_string(x, "state", "-"), inst);
        }
    }
    odk_value_free(rows);
    odk_value_free(ping);
    odk_value_free(list);
    return 0;
}

static void print_tree_node(const odk_value *nodes, int64_t id, int depth)
{
    for (size_t i = 0; i < odk_array_count(nodes); i++) {
        const odk_value *n = odk_array_get(nodes, i);
        if (odk_dict_get_int(n, "id", -1) != id)
            continue;
        char *props = odk_value_to_json(odk_dict_get(n, "properties"), 0);
        printf("%*s+-o %s  <id %" PRId64 ", %s> %s\n", depth * 2, "",
               odk_dict_get_string(n, "class", "?"), id, odk_dict_get_string(n, "state", "?"),
               props ? props : "");
        free(props);
    }
    for (size_t i = 0; i < odk_array_count(nodes); i++) {
        const odk_value *n = odk_array_get(nodes, i);
        const odk_value *parent = odk_dict_get(n, "parent");
        if (parent && odk_value_int(parent) == id)
            print_tree_node(nodes, odk_dict_get_int(n, "id", 0), depth + 1);
    }
}

static int cmd_tree(odk_client *c)
{
    odk_value *r;
    if (request(c, "tree", NULL, &r) < 0)
        return 1;
    const odk_value *nodes = odk_dict_get(r, "nodes");
    if (json_out)
        print_json(nodes);
    else
        print_tree_node(nodes, 0, 0);
    odk_value_free(r);
    return 0;
}

static odk_value *json_arg(const char *text, const char *what)
{
    odk_value *v = NULL;
    char err[512];
    if (odk_value_from_json(text, &v, err, sizeof err) < 0) {
        fprintf(stderr, "odkctl: %s is not valid JSON: %s\n", what, err);
        return NULL;
    }
    if (odk_value_type(v) != ODK_TYPE_DICT) {
        fprintf(stderr, "odkctl: %s must be a JSON object\n", what);
        odk_value_free(v);
        return NULL;
    }
    return v;
}

static int cmd_find(odk_client *c, const char *text)
{
    odk_value *m = json_arg(text, "the matching dictionary");
    if (!m)
        return 2;
    odk_value *nodes = NULL;
    int st = odk_find_services(c, m, &nodes);
    odk_value_free(m);
    if (st < 0)
        return fail(st, NULL);
    if (json_out) {
        print_json(nodes);
    } else {
        for (size_t i = 0; i < odk_array_count(nodes); i++) {
            const odk_value *n = odk_array_get(nodes, i);
            printf("%" PRId64 " %s\n", odk_dict_get_int(n, "id", 0),
                   odk_dict_get_string(n, "class", ""));
        }
    }
    odk_value_free(nodes);
    return 0;
}

/* "    compared: IOProviderClass, idVendor" (nothing for an empty list). */
static void print_key_list(const char *label, const odk_value *keys)
{
    if (!odk_array_count(keys))
        return;
    printf("           %s:", label);
    for (size_t i = 0; i < odk_array_count(keys); i++)
        printf("%s %s", i ? "," : "", odk_value_string(odk_array_get(keys, i)) ?: "?");
    printf("\n");
}

static int cmd_explain(odk_client *c, uint64_t id)
{
    odk_value *args = odk_value_new_dict(), *r;
    odk_dict_set_int(args, "node", (int64_t)id);
    if (request(c, "explain", args, &r) < 0)
        return 1;
    const odk_value *p = odk_dict_get(r, "personalities");
    if (json_out) {
        print_json(p);
    } else {
        const odk_value *n = odk_dict_get(r, "node");
        printf("node %" PRIu64 " (%s):\n", id, odk_dict_get_string(n, "class", "?"));
        for (size_t i = 0; i < odk_array_count(p); i++) {
            const odk_value *x = odk_array_get(p, i);
            bool m = odk_dict_get_bool(x, "matched", false);
            bool w = odk_dict_get_bool(x, "winner", false);
            /* Why a personality that matched does not run: outranked in
             * its category, or the category held by a driver already. */
            char why[700] = "";
            const char *by = odk_dict_get_string(x, "outranked_by", NULL);
            const char *held = odk_dict_get_string(x, "held_by", NULL);
            const char *as = odk_dict_get_string(x, "running_as", NULL);
            if (!m)
                snprintf(why, sizeof why, ": %s", odk_dict_get_string(x, "reason", ""));
            else if (as)
                snprintf(why, sizeof why, ": running as %s", as);
            else if (held)
                snprintf(why, sizeof why, ": not running: the category is held by %s%s%s", held,
                         by ? "; outranked by " : "", by ? by : "");
            else if (by)
                snprintf(why, sizeof why, ": outranked by %s", by);
            printf("  %-8s %s/%s (score %" PRId64 ", category %s)%s\n",
                   w ? "WINNER" : m ? "matched" : "no", odk_dict_get_string(x, "bundle", "?"),
                   odk_dict_get_string(x, "personality", "?"), odk_dict_get_int(x, "score", 0),
                   odk_dict_get_string(x, "category", "?"), why);
            print_key_list("compared", odk_dict_get(x, "compared"));
            print_key_list("carried", odk_dict_get(x, "carried"));
        }
    }
    odk_value_free(r);
    return 0;
}

static int simple(odk_client *c, const char *op, const char *key, const char *val)
{
    odk_value *args = odk_value_new_dict(), *r;
    odk_dict_set_string(args, key, val);
    if (request(c, op, args, &r) < 0)
        return 1;
    if (strcmp(op, "install") == 0)
        printf("%s\n", odk_dict_get_bool(r, "changed", false) ? "installed" : "unchanged");
    if (strcmp(op, "log") == 0)
        fputs(odk_dict_get_string(r, "text", ""), stdout);
    odk_value_free(r);
    return 0;
}

static int cmd_sim(odk_client *c, int argc, char **argv)
{
    if (argc < 2)
        return usage();
    odk_value *args = odk_value_new_dict(), *r;
    if (strcmp(argv[0], "plug") == 0) {
        odk_value *dev = json_arg(argv[1], "the device");
        if (!dev) {
            odk_value_free(args);
            return 2;
        }
        odk_dict_set(args, "device", dev);
        if (request(c, "sim-plug", args, &r) < 0)
            return 1;
        printf("%" PRId64 "\n", odk_dict_get_int(r, "node", 0));
        /* Then the ids of its children, depth first, one a line. */
        const odk_value *ch = odk_dict_get(r, "children");
        for (size_t i = 0; i < odk_array_count(ch); i++)
            printf("%" PRId64 "\n", odk_value_int(odk_array_get(ch, i)));
    } else if (strcmp(argv[0], "unplug") == 0) {
        uint64_t id;
        if (!parse_u64(argv[1], &id)) {
            odk_value_free(args);
            fprintf(stderr, "odkctl: '%s' is not a node id\n", argv[1]);
            return 2;
        }
        odk_dict_set_int(args, "node", (int64_t)id);
        if (request(c, "sim-unplug", args, &r) < 0)
            return 1;
    } else {
        odk_value_free(args);
        return usage();
    }
    odk_value_free(r);
    return 0;
}

/* ---- odkctl usb ---------------------------------------------------------- */

static void print_endpoints(const odk_usb_config_descriptor *c,
                            const odk_usb_interface_descriptor *in)
{
    static const char *const types[] = {"control", "isochronous", "bulk", "interrupt"};
    for (const odk_usb_endpoint_descriptor *e = NULL; (e = odk_usb_next_endpoint(c, in, e));)
        printf("        Endpoint 0x%02x %-3s %-11s maxpacket %u interval %u\n", e->bEndpointAddress,
               odk_usb_endpoint_is_in(e) ? "IN" : "OUT", types[odk_usb_endpoint_type(e)],
               odk_usb_endpoint_max_packet_size(e), e->bInterval);
}

static void print_descriptors(const odk_value *dev)
{
    size_t len = 0;
    const odk_usb_device_descriptor *d =
        odk_value_data(odk_dict_get(dev, "device_descriptor"), &len);
    if (d && len >= sizeof *d)
        printf("  Device: bcdUSB %x.%02x class 0x%02x/0x%02x/0x%02x maxpacket0 %u bcdDevice %x.%02x "
               "configurations %u\n",
               odk_usb_le16(d->bcdUSB) >> 8, odk_usb_le16(d->bcdUSB) & 0xff, d->bDeviceClass,
               d->bDeviceSubClass, d->bDeviceProtocol, d->bMaxPacketSize0,
               odk_usb_le16(d->bcdDevice) >> 8, odk_usb_le16(d->bcdDevice) & 0xff,
               d->bNumConfigurations);
    const odk_value *cfgs = odk_dict_get(dev, "configurations");
    for (size_t i = 0; i < odk_array_count(cfgs); i++) {
        const odk_usb_config_descriptor *c = odk_value_data(odk_array_get(cfgs, i), &len);
        if (!c || odk_usb_config_check(c, len, ODK_USB_SPEED_UNKNOWN, NULL, 0) < 0)
            continue; /* odkd checked it; a mismatch is not ours to print */
        printf("    Configuration %u: %u interface%s, attributes 0x%02x, %u mA\n",
               c->bConfigurationValue, c->bNumInterfaces, c->bNumInterfaces == 1 ? "" : "s",
               c->bmAttributes, 2u * c->bMaxPower);
        for (const odk_usb_interface_descriptor *in = NULL; (in = odk_usb_next_interface(c, in));) {
            printf("      Interface %u alternate %u: class 0x%02x/0x%02x/0x%02x, %u endpoint%s\n",
                   in->bInterfaceNumber, in->bAlternateSetting, in->bInterfaceClass,
                   in->bInterfaceSubClass, in->bInterfaceProtocol, in->bNumEndpoints,
                   in->bNumEndpoints == 1 ? "" : "s");
            print_endpoints(c, in);
        }
    }
}

static int cmd_usb_list(odk_client *c, bool verbose)
{
    odk_value *args = odk_value_new_dict(), *r;
    odk_dict_set_bool(args, "verbose", verbose);
    if (request(c, "usb-list", args, &r) < 0)
        return 1;
    const odk_value *devs = odk_dict_get(r, "devices");
    if (json_out)
        print_json(devs);
    static const char *const speeds[] = {"?", "low", "full", "high", "super", "super+"};
    for (size_t i = 0; !json_out && i < odk_array_count(devs); i++) {
        const odk_value *d = odk_array_get(devs, i);
        int64_t sp = odk_dict_get_int(d, "speed", 0);
        printf("Port %03" PRId64 " Node %" PRId64 ": ID %04" PRIx64 ":%04" PRIx64 " %s %s "
               "(%s speed, model %s)%s%s\n",
               odk_dict_get_int(d, "port", 0), odk_dict_get_int(d, "node", 0),
               (uint64_t)odk_dict_get_int(d, "idVendor", 0),
               (uint64_t)odk_dict_get_int(d, "idProduct", 0),
               odk_dict_get_string(d, "manufacturer", ""), odk_dict_get_string(d, "product", ""),
               speeds[sp >= 0 && sp <= 5 ? sp : 0], odk_dict_get_string(d, "model", "?"),
               odk_dict_get(d, "error") ? " ERROR: " : "", odk_dict_get_string(d, "error", ""));
        if (verbose)
            print_descriptors(d);
    }
    odk_value_free(r);
    return 0;
}

static int cmd_usb(odk_client *c, int argc, char **argv)
{
    if (argc == 0 || (argc == 1 && strcmp(argv[0], "-v") == 0))
        return cmd_usb_list(c, argc == 1);
    odk_value *args = odk_value_new_dict(), *r = NULL;
    uint64_t id = 0;
    const char *op = NULL;
    if (strcmp(argv[0], "plug") == 0 && (argc == 2 || argc == 3)) {
        odk_dict_set_string(args, "model", argv[1]);
        if (argc == 3) {
            odk_value *a = json_arg(argv[2], "the model's arguments");
            if (!a) {
                odk_value_free(args);
                return 2;
            }
            odk_dict_set(args, "args", a);
        }
        op = "usb-plug";
    } else if ((strcmp(argv[0], "unplug") == 0 && argc == 2) ||
               (strcmp(argv[0], "input") == 0 && (argc == 3 || argc == 4)) ||
               (strcmp(argv[0], "fault") == 0 && (argc == 3 || argc == 4))) {
        if (!parse_u64(argv[1], &id)) {
            odk_value_free(args);
            fprintf(stderr, "odkctl: '%s' is not a node id\n", argv[1]);
            return 2;
        }
        odk_dict_set_int(args, "node", (int64_t)id);
        op = argv[0][0] == 'u' ? "usb-unplug" : argv[0][0] == 'i' ? "usb-input" : "usb-fault";
        if (argc >= 3)
            odk_dict_set_string(args, argv[0][0] == 'i' ? "data" : "fault", argv[2]);
        if (argc == 4)
            odk_dict_set_int(args, argv[0][0] == 'i' ? "delay_us" : "endpoint",
                             strtol(argv[3], NULL, 0));
    } else {
        odk_value_free(args);
        return usage();
    }
    if (request(c, op, args, &r) < 0)
        return 1;
    int rc = 0;
    if (strcmp(op, "usb-plug") == 0) {
        printf("%" PRId64 "\n", odk_dict_get_int(r, "node", 0));
        const char *error = odk_dict_get_string(r, "error", NULL);
        if (error) {
            fprintf(stderr, "odkctl: the device's descriptors are bad: %s\n", error);
            rc = 1;
        }
    }
    odk_value_free(r);
    return rc;
}

static int parse_hex(const char *hex, uint8_t **out, size_t *len)
{
    size_t n = strlen(hex);
    if (n % 2)
        return -1;
    uint8_t *b = malloc(n / 2 + 1);
    if (!b)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1) {
            free(b);
            return -1;
        }
        b[i] = (uint8_t)v;
    }
    *out = b;
    *len = n / 2;
    return 0;
}

static int cmd_call(odk_client *c, int argc, char **argv)
{
    uint64_t node, sel, in[256], v;
    uint32_t n_in = 0, n_out = CALL_SCALARS_OUT;
    size_t out_cap = CALL_STRUCT_OUT, sin_len = 0;
    uint8_t *sin = NULL;
    if (argc < 2 || !parse_u64(argv[0], &node) || !parse_u64(argv[1], &sel) || sel > UINT32_MAX)
        return usage();
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--struct") == 0 && i + 1 < argc) {
            free(sin);
            if (parse_hex(argv[++i], &sin, &sin_len) < 0) {
                fprintf(stderr, "odkctl: --struct wants an even number of hex digits\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--scalars-out") == 0 && i + 1 < argc &&
                   parse_u64(argv[i + 1], &v) && v <= 256) {
            n_out = (uint32_t)v;
            i++;
        } else if (strcmp(argv[i], "--struct-out") == 0 && i + 1 < argc &&
                   parse_u64(argv[i + 1], &v)) {
            out_cap = (size_t)v;
            i++;
        } else if (n_in < 256 && parse_u64(argv[i], &v)) {
            in[n_in++] = v;
        } else {
            fprintf(stderr, "odkctl: bad call argument '%s'\n", argv[i]);
            free(sin);
            return 2;
        }
    }
    odk_connection *conn;
    int st = odk_connection_open(c, node, 0, &conn);
    if (st < 0) {
        free(sin);
        return fail_client(c, st);
    }
    uint64_t out[256];
    uint8_t *sout = malloc(out_cap ? out_cap : 1);
    st = odk_connection_call(conn, (uint32_t)sel, in, n_in, sin, sin_len, out, &n_out, sout,
                             &out_cap);
    /* The host's check says what was wrong with a refused call. */
    const char *why = st < 0 ? odk_connection_error(conn) : NULL;
    if (why)
        fprintf(stderr, "odkctl: %s: %s\n", odk_status_name(st), why);
    odk_connection_close(conn);
    free(sin);
    if (st < 0) {
        free(sout);
        return why ? 1 : fail(st, NULL);
    }
    for (uint32_t i = 0; i < n_out; i++)
        printf("%" PRIu64 "\n", out[i]);
    if (out_cap) {
        for (size_t i = 0; i < out_cap; i++)
            printf("%02x", sout[i]);
        printf("\n");
    }
    free(sout);
    return 0;
}

static int cmd_power(odk_client *c, const char *state)
{
    odk_value *args = odk_value_new_dict(), *r;
    odk_dict_set_string(args, "state", state);
    if (request(c, "power", args, &r) < 0)
        return 1;
    const odk_value *res = odk_dict_get(r, "results");
    if (json_out) {
        print_json(res);
    } else {
        for (size_t i = 0; i < odk_array_count(res); i++) {
            const odk_value *x = odk_array_get(res, i);
            printf("%s#%" PRId64 " %s: %s in %" PRId64 " ms%s\n",
                   odk_dict_get_string(x, "bundle", "?"), odk_dict_get_int(x, "instance", 0),
                   odk_dict_get_string(x, "state", "?"), odk_dict_get_string(x, "status_name", "?"),
                   odk_dict_get_int(x, "elapsed_ms", 0),
                   odk_dict_get_bool(x, "missed_deadline", false) ? " (missed its deadline: killed)"
                                                                   : "");
        }
    }
    odk_value_free(r);
    return 0;
}

static int cmd_debug(odk_client *c, const char *bundle)
{
    odk_value *args = odk_value_new_dict(), *r;
    odk_dict_set_string(args, "bundle", bundle);
    if (request(c, "debug", args, &r) < 0)
        return 1;
    const odk_value *a = odk_dict_get(r, "instances");
    if (json_out)
        print_json(a);
    for (size_t i = 0; !json_out && i < odk_array_count(a); i++) {
        const odk_value *x = odk_array_get(a, i);
        printf("gdb -p %" PRId64 "    # %s#%" PRId64 ", %s%s\n", odk_dict_get_int(x, "pid", 0),
               bundle, odk_dict_get_int(x, "instance", 0), odk_dict_get_string(x, "state", "?"),
               strcmp(odk_dict_get_string(x, "state", ""), "debug-wait") == 0
                   ? ": stopped before init; 'continue' in gdb starts it"
                   : "");
    }
    if (!json_out && odk_array_count(a) == 0)
        printf("no running instance of %s (odkd --debug %s starts them stopped)\n", bundle,
               bundle);
    odk_value_free(r);
    return 0;
}

int main(int argc, char **argv)
{
    const char *state_dir = getenv("ODK_STATE_DIR");
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--version") == 0) {
            printf("odkctl %s\n", ODK_VERSION_STRING);
            return 0;
        } else if (strcmp(argv[i], "--json") == 0)
            json_out = true;
        else if (strcmp(argv[i], "--state-dir") == 0 && i + 1 < argc)
            state_dir = argv[++i];
        else
            return usage();
    }
    if (i >= argc)
        return usage();
    const char *cmd = argv[i++];
    int rest = argc - i;
    char **args = argv + i;
    /* Options may also follow the command (odkctl list --json). */
    for (int k = 0; k < rest; k++) {
        if (strcmp(args[k], "--json") == 0) {
            json_out = true;
            memmove(args + k, args + k + 1, sizeof(char *) * (size_t)(rest - k - 1));
            rest--;
            k--;
        }
    }
    if (strcmp(cmd, "new") == 0)
        return rest == 1 ? (skeleton_write(args[0]) < 0 ? 1 : 0) : usage();
    int trust_rc;
    if (odkctl_trust(cmd, rest, args, &trust_rc))
        return trust_rc;
    odk_client *c;
    int st = odk_client_open(state_dir, &c);
    if (st < 0) {
        const char *dir = state_dir ? state_dir : getenv("ODK_STATE_DIR");
        fprintf(stderr, "odkctl: cannot reach odkd in %s: %s\n", dir ? dir : ODK_DEFAULT_RUN_DIR,
                odk_strerror(st));
        return 1;
    }
    int rc;
    uint64_t id;
    if (strcmp(cmd, "list") == 0)
        rc = cmd_list(c);
    else if (strcmp(cmd, "hosts") == 0 && rest == 0)
        rc = cmd_hosts(c);
    else if (strcmp(cmd, "tree") == 0)
        rc = cmd_tree(c);
    else if (strcmp(cmd, "find") == 0 && rest == 1)
        rc = cmd_find(c, args[0]);
    else if (strcmp(cmd, "match") == 0 && rest == 2 && strcmp(args[0], "--explain") == 0 &&
             parse_u64(args[1], &id))
        rc = cmd_explain(c, id);
    else if (strcmp(cmd, "sim") == 0)
        rc = cmd_sim(c, rest, args);
    else if (strcmp(cmd, "net") == 0)
        rc = odkctl_net(c, rest, args, json_out);
    else if (strcmp(cmd, "usb") == 0)
        rc = cmd_usb(c, rest, args);
    else if (strcmp(cmd, "pci") == 0)
        rc = odkctl_pci(c, rest, args, json_out);
    else if (strcmp(cmd, "hid") == 0)
        rc = odkctl_hid(c, rest, args, json_out);
    else if (strcmp(cmd, "audio") == 0)
        rc = odkctl_audio(state_dir, rest, args, json_out);
    else if (strcmp(cmd, "storage") == 0)
        rc = odkctl_storage(c, rest, args);
    else if (strcmp(cmd, "scsi") == 0)
        rc = odkctl_scsi(c, rest, args);
    else if (strcmp(cmd, "install") == 0 && rest == 1) {
        char *abs = realpath(args[0], NULL);
        rc = simple(c, "install", "path", abs ? abs : args[0]);
        free(abs);
    } else if (strcmp(cmd, "uninstall") == 0 && rest == 1)
        rc = simple(c, "uninstall", "bundle", args[0]);
    else if (strcmp(cmd, "restart") == 0 && rest == 1)
        rc = simple(c, "restart", "bundle", args[0]);
    else if (strcmp(cmd, "log") == 0 && rest == 1)
        rc = simple(c, "log", "bundle", args[0]);
    else if (strcmp(cmd, "crashes") == 0) {
        odk_value *r;
        rc = request(c, "crashes", NULL, &r) < 0;
        if (!rc) {
            const odk_value *a = odk_dict_get(r, "crashes");
            if (json_out)
                print_json(a);
            else
                for (size_t k = 0; k < odk_array_count(a); k++)
                    printf("%s\n", odk_value_string(odk_array_get(a, k)));
        }
        odk_value_free(r);
    } else if (strcmp(cmd, "call") == 0)
        rc = cmd_call(c, rest, args);
    else if (strcmp(cmd, "power") == 0 && rest == 1 &&
             (strcmp(args[0], "sleep") == 0 || strcmp(args[0], "wake") == 0))
        rc = cmd_power(c, args[0]);
    else if (strcmp(cmd, "debug") == 0 && rest == 1)
        rc = cmd_debug(c, args[0]);
    else
        rc = usage();
    odk_client_close(c);
    return rc;
}
