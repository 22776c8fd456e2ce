/* SPDX-License-Identifier: MIT */
/* cdc_ecm.c — a USB Ethernet adapter of the CDC Ethernet Control Model
 * (USB CDC 1.2 and its ECM 1.2 subclass): a communication interface with
 * the header, union and Ethernet networking functional descriptors and a
 * notification endpoint; a data interface whose alternate setting 0 has no
 * endpoints (the function is idle) and whose setting 1 has the bulk pair
 * that carries the frames, one frame per transfer.  The MAC address is
 * string iMACAddress, twelve hex digits.
 *
 * Its Ethernet side is a "cable": two adapters plugged with the same
 * "cable" argument are joined, each frame the host sends on one's bulk OUT
 * comes out of the other's bulk IN.  The cable is a pair of abstract
 * datagram sockets (the first adapter takes end 0, the second end 1), so
 * it joins model processes without odkd.  A frame sent while the other end
 * is not plugged, or whose end is not reading, is lost, as on a wire.
 *
 * The link: NETWORK_CONNECTION and CONNECTION_SPEED_CHANGE notifications
 * tell the host it is up once it selects the data interface's setting 1;
 * `odkctl usb input ID down` (or up) pulls the cable's plug of this end.
 *
 * Plug arguments: "cable" (none: the adapter is joined to nothing), "mac"
 * (twelve hex digits, default 02:6f:64:HASH:HASH:END+1), "serial"
 * (default SIM-ECM-1), "rndis_first" (true: the device is shaped like
 * QEMU's usb-net and Linux's g_ether with RNDIS — NetChip's ids
 * 0525:a4a2, configuration 2 an RNDIS function listed first, CDC-ECM as
 * configuration 1; no odk driver drives the RNDIS one). */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "buses/usb/model.h"
#include "odk/status.h"

/* Class requests (ECM 1.2 6.2) and notifications (6.3). */
enum {
    SET_ETHERNET_MULTICAST_FILTERS = 0x40,
    SET_ETHERNET_PM_FILTER = 0x41,
    GET_ETHERNET_PM_FILTER = 0x42,
    SET_ETHERNET_PACKET_FILTER = 0x43,
    GET_ETHERNET_STATISTIC = 0x44,
};
#define NETWORK_CONNECTION 0x00
#define CONNECTION_SPEED_CHANGE 0x2a

#define EP_NOTIFY 0x83
#define EP_OUT 0x02
#define EP_IN 0x81
#define COMM_IF 0
#define DATA_IF 1
#define MAC_STRING 4
#define MAX_SEGMENT 1514u        /* wMaxSegmentSize: a frame without FCS */
#define SPEED_BPS 480000000u     /* what a high-speed adapter reports */

struct ecm {
    int sock;
    struct sockaddr_un peer;
    socklen_t peer_len;
    unsigned end;
    bool plugged;         /* this end's plug (odkctl usb input down/up) */
    bool link_reported;   /* the host was last told "connected" */
    unsigned notify_due;  /* 0, or which notification comes next: 1 connection, 2 speed */
    uint16_t filter;
};

/* clang-format off */
static const uint8_t device[] = {
    18, ODK_USB_DT_DEVICE, 0x00, 0x02, /* USB 2.0 */
    ODK_USB_CLASS_CDC, 0x00, 0x00,     /* communications device */
    64, 0x09, 0x12, 0x20, 0x00,        /* pid.codes test VID 0x1209, PID 0x0020 */
    0x00, 0x01,                        /* bcdDevice 1.00 */
    1, 2, 3, 1,
};

static const uint8_t config[] = {
    9, ODK_USB_DT_CONFIG, 80, 0, 2, 1, 0, 0x80, 50,
    /* communication interface, Ethernet networking control model */
    9, ODK_USB_DT_INTERFACE, COMM_IF, 0, 1, ODK_USB_CLASS_CDC, 0x06, 0x00, 0,
    5, ODK_USB_DT_CS_INTERFACE, 0x00, 0x20, 0x01,       /* header, CDC 1.20 */
    5, ODK_USB_DT_CS_INTERFACE, 0x06, COMM_IF, DATA_IF, /* union: 0 controls 1 */
    13, ODK_USB_DT_CS_INTERFACE, 0x0f, MAC_STRING,      /* Ethernet networking */
        0, 0, 0, 0,                                     /* bmEthernetStatistics: none */
        MAX_SEGMENT & 0xff, MAX_SEGMENT >> 8,           /* wMaxSegmentSize */
        0, 0,                                           /* wNumberMCFilters: none */
        0,                                              /* bNumberPowerFilters */
    7, ODK_USB_DT_ENDPOINT, EP_NOTIFY, ODK_USB_TRANSFER_INTERRUPT, 16, 0, 8,
    /* data interface: setting 0 idle, setting 1 moves frames */
    9, ODK_USB_DT_INTERFACE, DATA_IF, 0, 0, ODK_USB_CLASS_CDC_DATA, 0, 0, 0,
    9, ODK_USB_DT_INTERFACE, DATA_IF, 1, 2, ODK_USB_CLASS_CDC_DATA, 0, 0, 0,
    7, ODK_USB_DT_ENDPOINT, EP_OUT, ODK_USB_TRANSFER_BULK, 0x00, 0x02, 0,
    7, ODK_USB_DT_ENDPOINT, EP_IN, ODK_USB_TRANSFER_BULK, 0x00, 0x02, 0,
};
/* The RNDIS-first shape: an RNDIS control interface (CDC class, ACM
 * subclass, vendor protocol) and its data interface, as configuration 2. */
static const uint8_t rndis_config[] = {
    9, ODK_USB_DT_CONFIG, 67, 0, 2, 2, 0, 0x80, 50,
    9, ODK_USB_DT_INTERFACE, COMM_IF, 0, 1, ODK_USB_CLASS_CDC, 0x02, 0xff, 0,
    5, ODK_USB_DT_CS_INTERFACE, 0x00, 0x10, 0x01,       /* header, CDC 1.10 */
    5, ODK_USB_DT_CS_INTERFACE, 0x01, 0x00, DATA_IF,    /* call management */
    4, ODK_USB_DT_CS_INTERFACE, 0x02, 0x00,             /* ACM */
    5, ODK_USB_DT_CS_INTERFACE, 0x06, COMM_IF, DATA_IF, /* union */
    7, ODK_USB_DT_ENDPOINT, EP_NOTIFY, ODK_USB_TRANSFER_INTERRUPT, 16, 0, 8,
    9, ODK_USB_DT_INTERFACE, DATA_IF, 0, 2, ODK_USB_CLASS_CDC_DATA, 0, 0, 0,
    7, ODK_USB_DT_ENDPOINT, EP_OUT, ODK_USB_TRANSFER_BULK, 0x00, 0x02, 0,
    7, ODK_USB_DT_ENDPOINT, EP_IN, ODK_USB_TRANSFER_BULK, 0x00, 0x02, 0,
};
/* clang-format on */

static socklen_t end_address(struct sockaddr_un *a, const char *cable, unsigned end)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    /* abstract: sun_path[0] stays 0 */
    int n = snprintf(a->sun_path + 1, sizeof a->sun_path - 1, "odk-usb-cdc-ecm/%s/%u", cable, end);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

static bool link_up(const struct usb_model *m, const struct ecm *e)
{
    return e->plugged && usb_model_alt(m, DATA_IF) == 1;
}

static void report(struct usb_model *m, const struct ecm *e)
{
    usb_model_report_int(m, "end", e->end);
    usb_model_report_bool(m, "plugged", e->plugged);
    usb_model_report_int(m, "packet_filter", e->filter);
}

/* Binds this end of the cable: end 0 when free, else end 1.  No cable:
 * an address of its own (autobind), and nothing to send to. */
static int plug_cable(struct ecm *e, const char *cable, char *err, size_t err_len)
{
    e->sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (e->sock < 0) {
        snprintf(err, err_len, "socket: %s", strerror(errno));
        return ODK_E_IO;
    }
    struct sockaddr_un self = {.sun_family = AF_UNIX};
    if (!cable) {
        if (bind(e->sock, (struct sockaddr *)&self, sizeof(sa_family_t)) < 0) {
            snprintf(err, err_len, "bind: %s", strerror(errno));
            return ODK_E_IO;
        }
        return ODK_OK;
    }
    int rc = -1;
    for (e->end = 0; e->end < 2 && rc < 0; e->end++)
        rc = bind(e->sock, (struct sockaddr *)&self, end_address(&self, cable, e->end));
    e->end--;
    if (rc < 0) {
        snprintf(err, err_len, "cable %s: %s", cable,
                 errno == EADDRINUSE ? "both ends are plugged already" : strerror(errno));
        return ODK_E_BUSY;
    }
    e->peer_len = end_address(&e->peer, cable, 1 - e->end);
    return ODK_OK;
}

static int init(struct usb_model *m, const odk_value *args, char *err, size_t err_len)
{
    struct ecm *e = usb_model_state(m);
    e->sock = -1;
    e->plugged = true;
    const char *cable = odk_dict_get_string(args, "cable", NULL);
    const char *given = odk_dict_get_string(args, "mac", NULL);
    size_t hex = 0;
    while (given && given[hex] && strchr("0123456789abcdefABCDEF", given[hex]))
        hex++;
    if (cable && (!*cable || strlen(cable) > 64 || strchr(cable, '/'))) {
        snprintf(err, err_len, "cable: 1 to 64 characters, no '/'");
        return ODK_E_INVALID;
    }
    if (given && (hex != 12 || given[12])) {
        snprintf(err, err_len, "mac: twelve hex digits");
        return ODK_E_INVALID;
    }
    int st = plug_cable(e, cable, err, err_len);
    if (st < 0) {
        if (e->sock >= 0)
            close(e->sock); /* fini does not run after a failed init */
        e->sock = -1;
        return st;
    }

    char mac[13];
    if (given) {
        snprintf(mac, sizeof mac, "%s", given);
    } else {
        /* FNV-1a of the cable (or of the process when there is none):
         * each cable its own addresses. */
        char seed[80];
        if (cable)
            snprintf(seed, sizeof seed, "%s", cable);
        else
            snprintf(seed, sizeof seed, "pid %d", (int)getpid());
        uint32_t h = 2166136261u;
        for (const char *p = seed; *p; p++)
            h = (h ^ (uint8_t)*p) * 16777619u;
        snprintf(mac, sizeof mac, "026F64%02X%02X%02X", (h >> 8) & 0xff, h & 0xff, e->end + 1);
    }
    const char *serial = odk_dict_get_string(args, "serial", "SIM-ECM-1");
    if (odk_dict_get_bool(args, "rndis_first", false)) {
        uint8_t dev[sizeof device];
        memcpy(dev, device, sizeof dev);
        dev[8] = 0x25, dev[9] = 0x05, dev[10] = 0xa2, dev[11] = 0xa4, dev[17] = 2;
        st = usb_model_set_device(m, dev, sizeof dev, ODK_USB_SPEED_HIGH);
        if (st == ODK_OK)
            st = usb_model_add_config(m, rndis_config, sizeof rndis_config);
        if (st == ODK_OK)
            st = usb_model_add_config(m, config, sizeof config);
        const char *strings[3] = {"odk", "Simulated RNDIS/CDC-ECM Ethernet", serial};
        for (uint8_t i = 0; i < 3 && st == ODK_OK; i++)
            st = usb_model_add_string(m, (uint8_t)(i + 1), strings[i]);
    } else {
        st = usb_model_set_rom(m, device, sizeof device, ODK_USB_SPEED_HIGH, config,
                               sizeof config, "odk", "Simulated CDC-ECM Ethernet", serial);
    }
    if (st == ODK_OK)
        st = usb_model_add_string(m, MAC_STRING, mac);
    usb_model_report_string(m, "mac", mac);
    usb_model_report_string(m, "cable", cable ? cable : "");
    report(m, e);
    return st;
}

static void fini(struct usb_model *m)
{
    struct ecm *e = usb_model_state(m);
    usb_model_watch(m, -1, 0);
    if (e->sock >= 0)
        close(e->sock);
}

static int control(struct usb_model *m, const struct usb_setup *s, uint8_t *data,
                   uint32_t *actual)
{
    (void)data, (void)actual;
    struct ecm *e = usb_model_state(m);
    if ((s->bmRequestType & (USB_TYPE_MASK | USB_RECIP_MASK)) !=
            (USB_TYPE_CLASS | USB_RECIP_INTERFACE) ||
        (s->wIndex & 0xff) != COMM_IF || (s->bmRequestType & USB_DIR_IN))
        return ODK_E_STALL;
    switch (s->bRequest) {
    case SET_ETHERNET_PACKET_FILTER:
        /* bit 0 promiscuous, 1 all multicast, 2 directed, 3 broadcast,
         * 4 multicast: the cable carries every frame, so this is recorded. */
        if (s->wLength != 0)
            return ODK_E_STALL;
        e->filter = s->wValue;
        report(m, e);
        return ODK_OK;
    case SET_ETHERNET_MULTICAST_FILTERS: /* wNumberMCFilters is 0 */
    default:
        return ODK_E_STALL;
    }
}

/* The frames waiting on the cable before the host listened are stale. */
static void drain_wire(struct ecm *e)
{
    char b[1];
    while (recv(e->sock, b, sizeof b, MSG_DONTWAIT | MSG_TRUNC) >= 0)
        ;
}

static void link_changed(struct usb_model *m, struct ecm *e)
{
    if (link_up(m, e) != e->link_reported)
        e->notify_due = 1;
}

static void configured(struct usb_model *m, uint8_t value)
{
    (void)value;
    struct ecm *e = usb_model_state(m);
    e->link_reported = false;
    e->notify_due = 0;
    drain_wire(e);
    usb_model_watch(m, e->sock, 0);
}

static void alt_set(struct usb_model *m, uint8_t interface, uint8_t alt)
{
    (void)alt;
    struct ecm *e = usb_model_state(m);
    if (interface == DATA_IF) {
        drain_wire(e);
        link_changed(m, e);
    }
}

static void send_notification(struct usb_model *m, struct ecm *e, struct usb_xfer *x)
{
    bool up = link_up(m, e);
    uint8_t n[16] = {0xa1, NETWORK_CONNECTION, up, 0, COMM_IF, 0, 0, 0};
    uint32_t len = 8;
    if (e->notify_due == 2) {
        n[1] = CONNECTION_SPEED_CHANGE;
        n[2] = 0;
        n[6] = 8; /* wLength: DLBitRate, ULBitRate */
        for (int i = 0; i < 2; i++)
            for (int k = 0; k < 4; k++)
                n[8 + 4 * i + k] = (uint8_t)(SPEED_BPS >> (8 * k));
        len = 16;
    }
    x->actual = x->length < len ? x->length : len;
    memcpy(x->data, n, x->actual);
    if (e->notify_due == 1) {
        e->link_reported = up;
        e->notify_due = up ? 2 : 0; /* the speed follows a connection */
    } else {
        e->notify_due = 0;
    }
    usb_model_complete(m, EP_NOTIFY, ODK_OK);
}

static void pump(struct usb_model *m)
{
    struct ecm *e = usb_model_state(m);
    struct usb_xfer *x;
    /* Host to cable: one transfer is one frame. */
    while ((x = usb_model_peek(m, EP_OUT))) {
        /* Lost, as on a wire, when the other end is unplugged or full. */
        if (x->length && e->plugged && e->peer_len)
            (void)sendto(e->sock, x->data, x->length, MSG_DONTWAIT | MSG_NOSIGNAL,
                         (struct sockaddr *)&e->peer, e->peer_len);
        x->actual = x->length;
        usb_model_complete(m, EP_OUT, ODK_OK);
    }
    /* Cable to host: a frame into each waiting transfer. */
    while ((x = usb_model_peek(m, EP_IN))) {
        ssize_t n = recv(e->sock, x->data, x->length, MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0)
            break;
        if (!e->plugged || (size_t)n > x->length)
            continue; /* unplugged, or longer than the host's transfer: lost */
        x->actual = (uint32_t)n;
        usb_model_complete(m, EP_IN, ODK_OK);
    }
    usb_model_watch(m, e->sock, usb_model_peek(m, EP_IN) ? POLLIN : 0);
    if (e->notify_due && (x = usb_model_peek(m, EP_NOTIFY)))
        send_notification(m, e, x);
}

/* "down" / "up": pull or push this end's plug. */
static int input(struct usb_model *m, const uint8_t *data, size_t len)
{
    struct ecm *e = usb_model_state(m);
    if (len == 4 && memcmp(data, "down", 4) == 0)
        e->plugged = false;
    else if (len == 2 && memcmp(data, "up", 2) == 0)
        e->plugged = true;
    else
        return ODK_E_INVALID;
    link_changed(m, e);
    report(m, e);
    return ODK_OK;
}

const struct usb_model_ops usb_model_cdc_ecm = {
    .name = "cdc-ecm",
    .summary = "CDC-ECM Ethernet adapter; two on one \"cable\" are joined",
    .state_size = sizeof(struct ecm),
    .init = init,
    .fini = fini,
    .control = control,
    .configured = configured,
    .alt_set = alt_set,
    .pump = pump,
    .input = input,
};
