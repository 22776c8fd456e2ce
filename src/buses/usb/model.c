/* SPDX-License-Identifier: MIT */
/* model.c — the device-model framework: standard requests answered from
 * the model's descriptors (USB 2.0 9.4), one queue of pending transfers per
 * endpoint, halts, and injected faults. */
#include "buses/usb/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "odk/status.h"

struct ep_queue {
    struct usb_xfer *head, *tail;
    bool halted;
    enum usb_fault fault; /* USB_FAULT_SHORT or _BABBLE, for the next IN completion */
};

struct rom {
    uint8_t *bytes;
    size_t len;
};

struct usb_model {
    const struct usb_model_ops *ops;
    void *state;
    usb_model_done_fn *done;
    void *ctx;

    uint8_t device[sizeof(odk_usb_device_descriptor)];
    odk_usb_speed speed;
    struct rom configs[USB_MODEL_MAX_CONFIGS];
    bool config_ok[USB_MODEL_MAX_CONFIGS]; /* passed odk_usb_config_check */
    size_t n_configs;
    struct rom bos;
    struct rom strings[USB_MODEL_MAX_STRINGS];

    uint8_t config; /* bConfigurationValue in use, 0: unconfigured */
    uint8_t alts[256];
    struct ep_queue eps[32]; /* number | 16 for IN */
    bool disconnected;

    odk_value *report;
    bool report_changed;
    bool failed_init;

    int wire_fd; /* usb_model_watch: -1 none */
    short wire_events;
};

static struct ep_queue *queue_of(struct usb_model *m, uint8_t endpoint)
{
    return &m->eps[(endpoint & ODK_USB_ENDPOINT_NUMBER) | ((endpoint & ODK_USB_ENDPOINT_IN) >> 3)];
}

static uint8_t address_of(unsigned index)
{
    return (uint8_t)((index & 15) | ((index & 16) << 3));
}

/* The checked configuration whose value is value, or NULL. */
static const odk_usb_config_descriptor *config_by_value(const struct usb_model *m, uint8_t value)
{
    for (size_t i = 0; i < m->n_configs; i++) {
        const odk_usb_config_descriptor *c = (const void *)m->configs[i].bytes;
        if (m->config_ok[i] && c->bConfigurationValue == value)
            return c;
    }
    return NULL;
}

static const odk_usb_config_descriptor *active_config(const struct usb_model *m)
{
    return m->config ? config_by_value(m, m->config) : NULL;
}

/* The endpoint with address in the current alternate setting of any
 * interface of the active configuration; its interface number in *iface. */
static const odk_usb_endpoint_descriptor *active_endpoint(const struct usb_model *m,
                                                          uint8_t address, uint8_t *iface)
{
    const odk_usb_config_descriptor *c = active_config(m);
    if (!c)
        return NULL;
    for (const odk_usb_interface_descriptor *in = NULL; (in = odk_usb_next_interface(c, in));) {
        if (in->bAlternateSetting != m->alts[in->bInterfaceNumber])
            continue;
        for (const odk_usb_endpoint_descriptor *e = NULL; (e = odk_usb_next_endpoint(c, in, e));)
            if (e->bEndpointAddress == address) {
                if (iface)
                    *iface = in->bInterfaceNumber;
                return e;
            }
    }
    return NULL;
}

static void finish(struct usb_model *m, struct usb_xfer *x, int status)
{
    x->status = status;
    x->next = NULL;
    m->done(m, x, m->ctx);
}

/* Completes every pending transfer of queue q that owner submitted (NULL:
 * all) and, when id is not 0, whose id is id, with status. */
static void drain_some(struct usb_model *m, struct ep_queue *q, void *owner, uint32_t id,
                       int status)
{
    struct usb_xfer *keep = NULL, **tail = &keep, *done = NULL, **dtail = &done;
    for (struct usb_xfer *x = q->head, *next; x; x = next) {
        next = x->next;
        x->next = NULL;
        if ((!owner || x->owner == owner) && (!id || x->id == id)) {
            *dtail = x;
            dtail = &x->next;
        } else {
            *tail = x;
            tail = &x->next;
        }
    }
    q->head = keep;
    q->tail = NULL;
    for (struct usb_xfer *x = keep; x; x = x->next)
        q->tail = x;
    /* Callbacks last: one may submit again. */
    for (struct usb_xfer *x = done, *next; x; x = next) {
        next = x->next;
        finish(m, x, status);
    }
}

static void drain(struct usb_model *m, struct ep_queue *q, void *owner, int status)
{
    drain_some(m, q, owner, 0, status);
}

static void drain_all(struct usb_model *m, void *owner, uint32_t id, int status)
{
    for (unsigned i = 0; i < 32; i++)
        drain_some(m, &m->eps[i], owner, id, status);
}

static void pump(struct usb_model *m)
{
    if (!m->disconnected && m->config && m->ops->pump)
        m->ops->pump(m);
}

void usb_model_watch(struct usb_model *m, int fd, short events)
{
    m->wire_fd = fd;
    m->wire_events = events;
}

int usb_model_watched(const struct usb_model *m, short *events)
{
    *events = m->wire_events;
    return m->wire_fd;
}

void usb_model_wire_ready(struct usb_model *m)
{
    pump(m);
}

/* ---- life ---------------------------------------------------------------- */

int usb_model_create(const struct usb_model_ops *ops, const odk_value *args,
                     usb_model_done_fn *done, void *ctx, struct usb_model **out, char *err,
                     size_t err_len)
{
    struct usb_model *m = calloc(1, sizeof *m);
    if (!m)
        return ODK_E_NOMEM;
    m->ops = ops;
    m->wire_fd = -1;
    m->done = done;
    m->ctx = ctx;
    if (ops->state_size && !(m->state = calloc(1, ops->state_size))) {
        free(m);
        return ODK_E_NOMEM;
    }
    char dummy[1];
    if (!err || !err_len)
        err = dummy, err_len = sizeof dummy;
    err[0] = '\0';
    int st = ops->init ? ops->init(m, args, err, err_len) : ODK_OK;
    if (st == ODK_OK && !m->device[0]) {
        snprintf(err, err_len, "model %s set no device descriptor", ops->name);
        st = ODK_E_INVALID;
    }
    if (st < 0) {
        m->failed_init = true; /* no fini for a failed init */
        usb_model_destroy(m);
        return st;
    }
    *out = m;
    return ODK_OK;
}

void usb_model_destroy(struct usb_model *m)
{
    if (!m)
        return;
    drain_all(m, NULL, 0, ODK_E_GONE);
    if (!m->failed_init && m->ops->fini)
        m->ops->fini(m);
    for (size_t i = 0; i < m->n_configs; i++)
        free(m->configs[i].bytes);
    free(m->bos.bytes);
    for (size_t i = 0; i < USB_MODEL_MAX_STRINGS; i++)
        free(m->strings[i].bytes);
    odk_value_free(m->report);
    free(m->state);
    free(m);
}

/* ---- descriptors --------------------------------------------------------- */

void *usb_model_state(struct usb_model *m)
{
    return m->state;
}

static int keep(struct rom *r, const void *bytes, size_t len)
{
    uint8_t *b = malloc(len ? len : 1);
    if (!b)
        return ODK_E_NOMEM;
    memcpy(b, bytes, len);
    free(r->bytes);
    r->bytes = b;
    r->len = len;
    return ODK_OK;
}

int usb_model_set_device(struct usb_model *m, const void *desc, size_t len, odk_usb_speed speed)
{
    if (len > sizeof m->device)
        len = sizeof m->device;
    memset(m->device, 0, sizeof m->device);
    memcpy(m->device, desc, len);
    m->speed = speed;
    return ODK_OK;
}

int usb_model_add_config(struct usb_model *m, const void *desc, size_t len)
{
    if (m->n_configs == USB_MODEL_MAX_CONFIGS)
        return ODK_E_LIMIT;
    int st = keep(&m->configs[m->n_configs], desc, len);
    if (st < 0)
        return st;
    /* A configuration that fails the check (a model of a broken device)
     * is served as it is, but never becomes active. */
    m->config_ok[m->n_configs] = odk_usb_config_check(desc, len, m->speed, NULL, 0) == ODK_OK;
    m->n_configs++;
    return ODK_OK;
}

int usb_model_set_bos(struct usb_model *m, const void *desc, size_t len)
{
    return keep(&m->bos, desc, len);
}

int usb_model_add_string(struct usb_model *m, uint8_t index, const char *utf8)
{
    if (index == 0 || index >= USB_MODEL_MAX_STRINGS)
        return ODK_E_INVALID;
    uint8_t d[255] = {0, ODK_USB_DT_STRING};
    size_t n = 2;
    for (const unsigned char *s = (const void *)utf8; *s && n + 2 <= sizeof d - 1;) {
        uint32_t cp = *s++;
        int more = cp >= 0xf0 ? 3 : cp >= 0xe0 ? 2 : cp >= 0xc0 ? 1 : 0;
        cp &= more == 3 ? 0x07 : more == 2 ? 0x0f : more == 1 ? 0x1f : 0x7f;
        for (; more && (*s & 0xc0) == 0x80; more--)
            cp = cp << 6 | (*s++ & 0x3f);
        if (cp >= 0x10000) {
            if (n + 4 > sizeof d - 1)
                break;
            cp -= 0x10000;
            uint32_t hi = 0xd800 + (cp >> 10), lo = 0xdc00 + (cp & 0x3ff);
            d[n++] = (uint8_t)hi, d[n++] = (uint8_t)(hi >> 8);
            d[n++] = (uint8_t)lo, d[n++] = (uint8_t)(lo >> 8);
        } else {
            d[n++] = (uint8_t)cp, d[n++] = (uint8_t)(cp >> 8);
        }
    }
    d[0] = (uint8_t)n;
    return keep(&m->strings[index], d, n);
}

int usb_model_set_rom(struct usb_model *m, const void *device, size_t device_len,
                      odk_usb_speed speed, const void *config, size_t config_len,
                      const char *vendor, const char *product, const char *serial)
{
    int st = usb_model_set_device(m, device, device_len, speed);
    if (st == ODK_OK)
        st = usb_model_add_config(m, config, config_len);
    const char *strings[3] = {vendor, product, serial};
    for (uint8_t i = 0; i < 3 && st == ODK_OK; i++)
        if (strings[i])
            st = usb_model_add_string(m, (uint8_t)(i + 1), strings[i]);
    return st;
}

const odk_usb_device_descriptor *usb_model_device(const struct usb_model *m)
{
    return (const void *)m->device;
}

odk_usb_speed usb_model_speed(const struct usb_model *m)
{
    return m->speed;
}

uint8_t usb_model_configuration(const struct usb_model *m)
{
    return m->config;
}

uint8_t usb_model_alt(const struct usb_model *m, uint8_t interface)
{
    return m->alts[interface];
}

/* ---- control ------------------------------------------------------------- */

static int reply(const void *src, size_t len, const struct usb_setup *s, uint8_t *data,
                 uint32_t *actual)
{
    size_t n = len < s->wLength ? len : s->wLength;
    memcpy(data, src, n);
    *actual = (uint32_t)n;
    return ODK_OK;
}

static int get_descriptor(struct usb_model *m, const struct usb_setup *s, uint8_t *data,
                          uint32_t *actual)
{
    unsigned type = s->wValue >> 8, index = s->wValue & 0xff;
    switch (type) {
    case ODK_USB_DT_DEVICE:
        return reply(m->device, sizeof m->device, s, data, actual);
    case ODK_USB_DT_CONFIG:
        if (index >= m->n_configs)
            return ODK_E_STALL;
        return reply(m->configs[index].bytes, m->configs[index].len, s, data, actual);
    case ODK_USB_DT_STRING:
        if (index == 0) {
            static const uint8_t langids[] = {4, ODK_USB_DT_STRING, 0x09, 0x04}; /* en-US */
            return reply(langids, sizeof langids, s, data, actual);
        }
        if (index >= USB_MODEL_MAX_STRINGS || !m->strings[index].bytes)
            return ODK_E_STALL;
        return reply(m->strings[index].bytes, m->strings[index].len, s, data, actual);
    case ODK_USB_DT_BOS:
        if (!m->bos.bytes)
            return ODK_E_STALL;
        return reply(m->bos.bytes, m->bos.len, s, data, actual);
    default: /* a device qualifier: the models run at one speed only */
        return ODK_E_STALL;
    }
}

static bool interface_exists(const struct usb_model *m, uint8_t number, uint8_t alt)
{
    const odk_usb_config_descriptor *c = active_config(m);
    return c && odk_usb_find_interface(c, number, alt);
}

static void cancel_interface(struct usb_model *m, uint8_t number)
{
    for (unsigned i = 0; i < 32; i++) {
        uint8_t iface;
        if (m->eps[i].head && active_endpoint(m, address_of(i), &iface) && iface == number)
            drain(m, &m->eps[i], NULL, ODK_E_CANCELLED);
    }
}

static void halt(struct usb_model *m, uint8_t endpoint)
{
    struct ep_queue *q = queue_of(m, endpoint);
    q->halted = true;
    drain(m, q, NULL, ODK_E_STALL);
}

static int standard(struct usb_model *m, const struct usb_setup *s, uint8_t *data,
                    uint32_t *actual)
{
    unsigned recip = s->bmRequestType & USB_RECIP_MASK;
    bool in = s->bmRequestType & USB_DIR_IN;
    *actual = 0;
    switch (s->bRequest) {
    case USB_REQ_GET_DESCRIPTOR:
        if (recip != USB_RECIP_DEVICE)
            break; /* class descriptors of an interface (HID report): the model's */
        return in ? get_descriptor(m, s, data, actual) : ODK_E_STALL;
    case USB_REQ_SET_ADDRESS:
        return ODK_OK;
    case USB_REQ_GET_CONFIGURATION:
        return reply(&m->config, 1, s, data, actual);
    case USB_REQ_SET_CONFIGURATION: {
        uint8_t v = (uint8_t)s->wValue;
        if (v && !config_by_value(m, v))
            return ODK_E_STALL;
        drain_all(m, NULL, 0, ODK_E_CANCELLED);
        for (unsigned i = 0; i < 32; i++)
            m->eps[i] = (struct ep_queue){0};
        memset(m->alts, 0, sizeof m->alts);
        m->config = v;
        if (m->ops->configured)
            m->ops->configured(m, v);
        pump(m);
        return ODK_OK;
    }
    case USB_REQ_GET_INTERFACE: {
        uint8_t number = (uint8_t)s->wIndex;
        if (!interface_exists(m, number, 0))
            return ODK_E_STALL;
        return reply(&m->alts[number], 1, s, data, actual);
    }
    case USB_REQ_SET_INTERFACE: {
        uint8_t number = (uint8_t)s->wIndex, alt = (uint8_t)s->wValue;
        if (!interface_exists(m, number, alt))
            return ODK_E_STALL;
        cancel_interface(m, number);
        m->alts[number] = alt;
        if (m->ops->alt_set)
            m->ops->alt_set(m, number, alt);
        pump(m);
        return ODK_OK;
    }
    case USB_REQ_GET_STATUS: {
        uint8_t st[2] = {0, 0};
        if (recip == USB_RECIP_DEVICE) {
            const odk_usb_config_descriptor *c = active_config(m);
            st[0] = c && (c->bmAttributes & 0x40) ? 1 : 0; /* self-powered */
        } else if (recip == USB_RECIP_ENDPOINT) {
            uint8_t ep = (uint8_t)s->wIndex;
            if ((ep & ODK_USB_ENDPOINT_NUMBER) && !active_endpoint(m, ep, NULL))
                return ODK_E_STALL;
            st[0] = (ep & ODK_USB_ENDPOINT_NUMBER) && queue_of(m, ep)->halted;
        } else if (!interface_exists(m, (uint8_t)s->wIndex, 0)) {
            return ODK_E_STALL;
        }
        return reply(st, 2, s, data, actual);
    }
    case USB_REQ_CLEAR_FEATURE:
    case USB_REQ_SET_FEATURE: {
        if (recip != USB_RECIP_ENDPOINT)
            return recip == USB_RECIP_DEVICE ? ODK_OK : ODK_E_STALL; /* remote wake-up */
        uint8_t ep = (uint8_t)s->wIndex;
        if (s->wValue != USB_FEATURE_ENDPOINT_HALT || !(ep & ODK_USB_ENDPOINT_NUMBER) ||
            !active_endpoint(m, ep, NULL))
            return ODK_E_STALL;
        if (s->bRequest == USB_REQ_SET_FEATURE) {
            halt(m, ep);
        } else {
            struct ep_queue *q = queue_of(m, ep);
            q->halted = false;
            q->fault = USB_FAULT_NONE;
            pump(m);
        }
        return ODK_OK;
    }
    default:
        break;
    }
    if (recip == USB_RECIP_DEVICE)
        return ODK_E_STALL;
    return m->ops->control ? m->ops->control(m, s, data, actual) : ODK_E_STALL;
}

int usb_model_control(struct usb_model *m, const struct usb_setup *s, uint8_t *data,
                      uint32_t *actual)
{
    *actual = 0;
    if (m->disconnected)
        return ODK_E_GONE;
    int st;
    if ((s->bmRequestType & USB_TYPE_MASK) == USB_TYPE_STANDARD)
        st = standard(m, s, data, actual);
    else
        st = m->ops->control ? m->ops->control(m, s, data, actual) : ODK_E_STALL;
    if (st == ODK_OK && !(s->bmRequestType & USB_DIR_IN))
        *actual = s->wLength;
    if (*actual > s->wLength)
        *actual = s->wLength;
    pump(m);
    return st;
}

/* ---- transfers ----------------------------------------------------------- */

int usb_model_submit(struct usb_model *m, struct usb_xfer *x)
{
    if (m->disconnected)
        return ODK_E_GONE;
    if (!m->config)
        return ODK_E_STATE;
    if (!(x->endpoint & ODK_USB_ENDPOINT_NUMBER) || !active_endpoint(m, x->endpoint, NULL))
        return ODK_E_NOT_FOUND;
    x->actual = 0;
    x->status = ODK_OK;
    x->next = NULL;
    struct ep_queue *q = queue_of(m, x->endpoint);
    if (q->halted) {
        finish(m, x, ODK_E_STALL);
        return ODK_OK;
    }
    if (q->tail)
        q->tail->next = x;
    else
        q->head = x;
    q->tail = x;
    pump(m);
    return ODK_OK;
}

struct usb_xfer *usb_model_peek(struct usb_model *m, uint8_t endpoint)
{
    struct ep_queue *q = queue_of(m, endpoint);
    return q->halted ? NULL : q->head;
}

void usb_model_complete(struct usb_model *m, uint8_t endpoint, int status)
{
    struct ep_queue *q = queue_of(m, endpoint);
    struct usb_xfer *x = q->head;
    if (!x)
        return;
    q->head = x->next;
    if (!q->head)
        q->tail = NULL;
    if (status == ODK_OK && (endpoint & ODK_USB_ENDPOINT_IN) && q->fault != USB_FAULT_NONE) {
        if (q->fault == USB_FAULT_SHORT)
            x->actual /= 2;
        else
            status = ODK_E_OVERRUN;
        q->fault = USB_FAULT_NONE;
    }
    if (x->actual > x->length)
        x->actual = x->length;
    finish(m, x, status);
}

void usb_model_abort(struct usb_model *m, uint8_t endpoint, void *owner, uint32_t id)
{
    if (endpoint == 0xff)
        drain_all(m, owner, id, ODK_E_CANCELLED);
    else
        drain_some(m, queue_of(m, endpoint), owner, id, ODK_E_CANCELLED);
}

void usb_model_inject(struct usb_model *m, enum usb_fault fault, uint8_t endpoint)
{
    switch (fault) {
    case USB_FAULT_STALL:
        halt(m, endpoint);
        break;
    case USB_FAULT_SHORT:
    case USB_FAULT_BABBLE:
        queue_of(m, endpoint)->fault = fault;
        pump(m);
        break;
    case USB_FAULT_DISCONNECT:
        m->disconnected = true;
        drain_all(m, NULL, 0, ODK_E_GONE);
        break;
    default:
        break;
    }
}

int usb_model_input(struct usb_model *m, const uint8_t *data, size_t len)
{
    if (m->disconnected)
        return ODK_E_GONE;
    if (!m->ops->input)
        return ODK_E_UNSUPPORTED;
    int st = m->ops->input(m, data, len);
    pump(m);
    return st;
}

bool usb_model_disconnected(const struct usb_model *m)
{
    return m->disconnected;
}

/* ---- report -------------------------------------------------------------- */

static odk_value *report_dict(struct usb_model *m)
{
    if (!m->report)
        m->report = odk_value_new_dict();
    m->report_changed = true;
    return m->report;
}

void usb_model_report_int(struct usb_model *m, const char *key, int64_t v)
{
    odk_value *r = report_dict(m);
    if (r)
        odk_dict_set_int(r, key, v);
}

void usb_model_report_string(struct usb_model *m, const char *key, const char *v)
{
    odk_value *r = report_dict(m);
    if (r)
        odk_dict_set_string(r, key, v);
}

void usb_model_report_bool(struct usb_model *m, const char *key, bool v)
{
    odk_value *r = report_dict(m);
    if (r)
        odk_dict_set_bool(r, key, v);
}

odk_value *usb_model_report(struct usb_model *m)
{
    return m->report ? odk_value_copy(m->report) : NULL;
}

bool usb_model_report_changed(struct usb_model *m)
{
    bool c = m->report_changed;
    m->report_changed = false;
    return c;
}

const struct usb_model_ops *usb_model_find(const char *name)
{
    for (size_t i = 0; usb_models[i]; i++)
        if (strcmp(usb_models[i]->name, name) == 0)
            return usb_models[i];
    return NULL;
}
