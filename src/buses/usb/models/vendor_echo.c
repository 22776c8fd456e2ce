/* SPDX-License-Identifier: MIT */
/* vendor_echo.c — a vendor-class device (class 0xff) of the kind people
 * write their first USB driver for:
 *   interface 0: bulk OUT 0x01 and bulk IN 0x81 (512 bytes, high speed):
 *                every OUT transfer comes back whole on IN, as one
 *                transfer (a zero-length one included); interrupt IN 0x82
 *                reports each echo as {u32 sequence, u32 length};
 *   interface 1: alternate setting 0 without endpoints, alternate setting
 *                1 with isochronous IN 0x83 (a counting byte pattern) and
 *                isochronous OUT 0x03 (consumed).
 * Vendor requests (to the device): 0xc0/0x01 reads the counters
 * {u32 out transfers, u32 out bytes, u32 in transfers, u32 in bytes};
 * 0x40/0x02 raises an interrupt record {0xffffffff, wValue}.
 *
 * The echo holds up to ECHO_HOLD bytes of OUT data the host has not read
 * back; past that it NAKs OUT transfers until the host reads.  When an IN
 * transfer is already waiting, OUT data goes straight into it: one copy,
 * from the driver's OUT buffer to its IN buffer. */
#include <stdlib.h>
#include <string.h>

#include "buses/usb/model.h"
#include "odk/status.h"

#define EP_OUT 0x01
#define EP_IN 0x81
#define EP_EVENT 0x82
#define EP_ISO_IN 0x83
#define EP_ISO_OUT 0x03
#define ECHO_HOLD (8u * 1024u * 1024u)
#define EVENTS 64

struct message {
    uint8_t *bytes;
    uint32_t len, off; /* off: how much an earlier, smaller IN transfer took */
    struct message *next;
};

struct echo {
    struct message *head, *tail;
    size_t held;
    uint32_t events[EVENTS][2];
    unsigned n_events, first_event;
    uint32_t sequence;
    uint32_t counters[4];
    uint8_t iso_next;
};

/* clang-format off */
static const uint8_t device[] = {
    18, ODK_USB_DT_DEVICE, 0x00, 0x02, 0, 0, 0, 64,
    0x09, 0x12, 0x02, 0x00, /* 1209:0002 */
    0x00, 0x01, 1, 2, 3, 1,
};
/* clang-format on */

/* clang-format off */
static const uint8_t config[] = {
    9, ODK_USB_DT_CONFIG, 71, 0, 2, 1, 0, 0x80, 100,
    9, ODK_USB_DT_INTERFACE, 0, 0, 3, ODK_USB_CLASS_VENDOR, 0, 0, 0,
    7, ODK_USB_DT_ENDPOINT, EP_OUT, ODK_USB_TRANSFER_BULK, 0x00, 0x02, 0,
    7, ODK_USB_DT_ENDPOINT, EP_IN, ODK_USB_TRANSFER_BULK, 0x00, 0x02, 0,
    7, ODK_USB_DT_ENDPOINT, EP_EVENT, ODK_USB_TRANSFER_INTERRUPT, 64, 0, 4,
    9, ODK_USB_DT_INTERFACE, 1, 0, 0, ODK_USB_CLASS_VENDOR, 0, 0, 0,
    9, ODK_USB_DT_INTERFACE, 1, 1, 2, ODK_USB_CLASS_VENDOR, 0, 0, 0,
    7, ODK_USB_DT_ENDPOINT, EP_ISO_IN, ODK_USB_TRANSFER_ISOCHRONOUS, 192, 0, 1,
    7, ODK_USB_DT_ENDPOINT, EP_ISO_OUT, ODK_USB_TRANSFER_ISOCHRONOUS, 192, 0, 1,
};
/* clang-format on */

static int init(struct usb_model *m, const odk_value *args, char *err, size_t err_len)
{
    (void)err, (void)err_len;
    int st = usb_model_set_rom(m, device, sizeof device, ODK_USB_SPEED_HIGH, config, sizeof config,
                               "odk", "Simulated vendor echo",
                               odk_dict_get_string(args, "serial", "SIM-ECHO-1"));
    return st;
}

static void post_event(struct echo *e, uint32_t a, uint32_t b)
{
    if (e->n_events == EVENTS) { /* the oldest record is lost, as on a device */
        e->first_event = (e->first_event + 1) % EVENTS;
        e->n_events--;
    }
    unsigned i = (e->first_event + e->n_events++) % EVENTS;
    e->events[i][0] = a;
    e->events[i][1] = b;
}

static void le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}

static int control(struct usb_model *m, const struct usb_setup *s, uint8_t *data,
                   uint32_t *actual)
{
    struct echo *e = usb_model_state(m);
    if (s->bmRequestType == (USB_DIR_IN | USB_TYPE_VENDOR) && s->bRequest == 0x01) {
        uint8_t c[16];
        for (int i = 0; i < 4; i++)
            le32(c + 4 * i, e->counters[i]);
        *actual = s->wLength < sizeof c ? s->wLength : (uint32_t)sizeof c;
        memcpy(data, c, *actual);
        return ODK_OK;
    }
    if (s->bmRequestType == USB_TYPE_VENDOR && s->bRequest == 0x02) {
        post_event(e, 0xffffffffu, s->wValue);
        return ODK_OK;
    }
    return ODK_E_STALL;
}

static void forget(struct echo *e)
{
    while (e->head) {
        struct message *msg = e->head;
        e->head = msg->next;
        free(msg->bytes);
        free(msg);
    }
    e->tail = NULL;
    e->held = 0;
}

static void configured(struct usb_model *m, uint8_t value)
{
    (void)value;
    struct echo *e = usb_model_state(m);
    forget(e);
    e->n_events = 0;
}

static void echoed(struct echo *e, uint32_t len)
{
    e->counters[2]++;
    e->counters[3] += len;
    post_event(e, e->sequence++, len);
}

static bool move_out(struct usb_model *m, struct echo *e)
{
    struct usb_xfer *out = usb_model_peek(m, EP_OUT);
    if (!out)
        return false;
    struct usb_xfer *in = usb_model_peek(m, EP_IN);
    if (in && !e->head && out->length <= in->length) {
        /* Straight across: the driver's OUT buffer into its IN buffer. */
        memcpy(in->data, out->data, out->length);
        in->actual = out->length;
        out->actual = out->length;
        e->counters[0]++;
        e->counters[1] += out->length;
        echoed(e, out->length);
        usb_model_complete(m, EP_OUT, ODK_OK);
        usb_model_complete(m, EP_IN, ODK_OK);
        return true;
    }
    if (e->held + out->length > ECHO_HOLD && e->head)
        return false; /* NAK until the host reads */
    struct message *msg = calloc(1, sizeof *msg);
    uint8_t *copy = malloc(out->length ? out->length : 1);
    if (!msg || !copy) {
        free(msg);
        free(copy);
        return false; /* the model process is out of memory: NAK */
    }
    memcpy(copy, out->data, out->length);
    *msg = (struct message){.bytes = copy, .len = out->length};
    if (e->tail)
        e->tail->next = msg;
    else
        e->head = msg;
    e->tail = msg;
    e->held += out->length;
    out->actual = out->length;
    e->counters[0]++;
    e->counters[1] += out->length;
    usb_model_complete(m, EP_OUT, ODK_OK);
    return true;
}

static bool move_in(struct usb_model *m, struct echo *e)
{
    struct usb_xfer *in = usb_model_peek(m, EP_IN);
    struct message *msg = e->head;
    if (!in || !msg)
        return false;
    uint32_t n = msg->len - msg->off;
    if (n > in->length)
        n = in->length;
    memcpy(in->data, msg->bytes + msg->off, n);
    in->actual = n;
    msg->off += n;
    if (msg->off == msg->len) {
        echoed(e, msg->len);
        e->held -= msg->len;
        e->head = msg->next;
        if (!e->head)
            e->tail = NULL;
        free(msg->bytes);
        free(msg);
    }
    usb_model_complete(m, EP_IN, ODK_OK);
    return true;
}

static void pump(struct usb_model *m)
{
    struct echo *e = usb_model_state(m);
    for (bool moved = true; moved;) {
        moved = move_in(m, e);
        moved |= move_out(m, e);
        struct usb_xfer *x = usb_model_peek(m, EP_EVENT);
        if (x && e->n_events) {
            uint8_t rec[8];
            le32(rec, e->events[e->first_event][0]);
            le32(rec + 4, e->events[e->first_event][1]);
            x->actual = x->length < 8 ? x->length : 8;
            memcpy(x->data, rec, x->actual);
            e->first_event = (e->first_event + 1) % EVENTS;
            e->n_events--;
            usb_model_complete(m, EP_EVENT, ODK_OK);
            moved = true;
        }
        if ((x = usb_model_peek(m, EP_ISO_IN))) {
            for (uint32_t i = 0; i < x->length; i++)
                x->data[i] = e->iso_next++;
            x->actual = x->length;
            usb_model_complete(m, EP_ISO_IN, ODK_OK);
            moved = true;
        }
        if ((x = usb_model_peek(m, EP_ISO_OUT))) {
            x->actual = x->length;
            usb_model_complete(m, EP_ISO_OUT, ODK_OK);
            moved = true;
        }
    }
}

static void fini(struct usb_model *m)
{
    forget(usb_model_state(m));
}

const struct usb_model_ops usb_model_vendor_echo = {
    .name = "vendor-echo",
    .summary = "vendor-class device: bulk echo, interrupt records, isochronous pair",
    .state_size = sizeof(struct echo),
    .init = init,
    .control = control,
    .configured = configured,
    .pump = pump,
    .fini = fini,
};
