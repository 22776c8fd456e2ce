/* SPDX-License-Identifier: MIT */
/* IOUserHIDDevice, host side: a driver's HID device made visible.
 *  - the registry: an IOUserHIDDevice node with HIDDriverKit's device
 *    description keys and the report descriptor;
 *  - apps: every user client of that node gets its own event stream (a
 *    data queue of odk_hid_input_event records) and may set the LEDs;
 *  - the system: odkd hands over /dev/uhid (the kernel parses the reports:
 *    hidraw and evdev) or /dev/uinput (odk translates the events), or
 *    nothing on a kernel without them.
 * Everything runs on the driver's default queue. */
#include <errno.h>
#include <linux/input.h>
#include <linux/uhid.h>
#include <linux/uinput.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "common/data_queue_internal.h"
#include "common/trace.h"
#include "families/hid/hid_internal.h"
#include "odk/hid_client.h"
#include "runtime/driver_internal.h"
#include "runtime/host_link.h"

#define STREAM_RING (64u * 1024) /* one app's events not yet read: ~2700 */

enum backend { NONE, UHID, UINPUT };

struct stream {
    odk_data_queue *q;
    bool dropped; /* events were lost: tell the app before the next one */
    struct stream *next;
};

struct odk_hid_device {
    odk_driver *drv;
    const odk_hid_device_ops *ops;
    void *ctx;
    uint64_t node;
    odk_hid_event_service *svc;
    enum backend backend;
    int sysfd;
    odk_fd_source *src;
    struct stream *streams;
    uint32_t leds, uinput_leds;
    uint8_t has_pages; /* 1: keyboard, 2: buttons/pointer, 4: consumer, 8: LEDs,
                          16: absolute X/Y/Z, 32: relative axes or a wheel */
    struct {
        bool on;
        int32_t min, max;
    } abs[3];         /* generic desktop X, Y, Z when absolute: uinput's ABS ranges */
    uint8_t rel_axes; /* relative ones: 1 X, 2 Y, 4 Z, 8 wheel, 16 AC Pan */
    bool dead;         /* destroyed, waiting for its last connection to close */
};

static const char *backend_names[] = {"none", "uhid", "uinput"};

/* ---- events out: apps and uinput ------------------------------------------- */

static void stream_push(struct stream *s, const odk_hid_input_event *ev)
{
    if (s->dropped) {
        odk_hid_input_event d = {.timestamp_ns = ev->timestamp_ns, .type = ODK_HID_INPUT_DROPPED};
        if (odk_data_queue_enqueue(s->q, &d, sizeof d) < 0)
            return;
        s->dropped = false;
    }
    /* Marked before: the enqueue's kick may run the app before it returns. */
    if (trace_on())
        trace_mark("hid event publish (enqueue and kick) cpu %d", sched_getcpu());
    if (odk_data_queue_enqueue(s->q, ev, sizeof *ev) < 0)
        s->dropped = true;
}

static void uinput_write(odk_hid_device *dev, uint16_t type, uint16_t code, int32_t value)
{
    struct input_event ie = {.type = type, .code = code, .value = value};
    if (write(dev->sysfd, &ie, sizeof ie) != (ssize_t)sizeof ie)
        odk_warn("hid: uinput write: %s", strerror(errno));
}

static void deliver(odk_hid_device *dev, const odk_hid_input_event *ev)
{
    for (struct stream *s = dev->streams; s; s = s->next)
        stream_push(s, ev);
    if (dev->backend != UINPUT)
        return;
    uint16_t type, code;
    if (hid_to_evdev(ev, &type, &code))
        uinput_write(dev, type, code, ev->value);
    if (ev->flags & ODK_HID_INPUT_END_OF_REPORT)
        uinput_write(dev, EV_SYN, SYN_REPORT, 0);
}

static void on_input(void *ctx, const odk_hid_input_event *ev)
{
    deliver(ctx, ev);
}

/* LED changes reach every app's stream as LED events. */
static void leds_changed(odk_hid_device *dev, uint32_t leds)
{
    uint32_t diff = dev->leds ^ leds;
    dev->leds = leds;
    uint64_t now = hid_now_ns();
    for (uint16_t u = 1; u <= 5; u++)
        if (diff & (1u << (u - 1))) {
            diff &= ~(1u << (u - 1));
            odk_hid_input_event ev = {.timestamp_ns = now,
                                      .type = ODK_HID_INPUT_LED,
                                      .usage_page = ODK_HID_PAGE_LED,
                                      .usage = u,
                                      .value = (int32_t)((leds >> (u - 1)) & 1),
                                      .flags = diff ? 0 : ODK_HID_INPUT_END_OF_REPORT};
            for (struct stream *s = dev->streams; s; s = s->next)
                stream_push(s, &ev);
        }
}

static int set_report(odk_hid_device *dev, odk_hid_report_type type, const uint8_t *data,
                      size_t len)
{
    if (dev->dead)
        return ODK_E_GONE;
    if (!dev->ops || !dev->ops->set_report)
        return ODK_E_UNSUPPORTED;
    uint8_t id = 0;
    if (len && odk_hid_descriptor_uses_report_ids(hid_event_service_descriptor(dev->svc)))
        id = data[0];
    int st = dev->ops->set_report(dev->ctx, type, id, data, len);
    uint32_t leds;
    if (st == ODK_OK && type == ODK_HID_REPORT_OUTPUT &&
        hid_event_service_leds_of(dev->svc, data, len, &leds) == ODK_OK)
        leds_changed(dev, leds);
    return st;
}

static int set_leds(odk_hid_device *dev, uint32_t leds)
{
    if (dev->dead)
        return ODK_E_GONE;
    uint8_t buf[ODK_HID_MAX_REPORT];
    size_t len = 0;
    int st = odk_hid_event_service_led_report(dev->svc, leds, buf, sizeof buf, &len, NULL);
    return st < 0 ? st : set_report(dev, ODK_HID_REPORT_OUTPUT, buf, len);
}

/* ---- the system's side ------------------------------------------------------ */

static void uhid_reply(odk_hid_device *dev, const struct uhid_event *ev)
{
    if (write(dev->sysfd, ev, sizeof *ev) != (ssize_t)sizeof *ev)
        odk_warn("hid: uhid write: %s", strerror(errno));
}

static odk_hid_report_type report_type(uint8_t rtype)
{
    return rtype == UHID_FEATURE_REPORT ? ODK_HID_REPORT_FEATURE
           : rtype == UHID_OUTPUT_REPORT ? ODK_HID_REPORT_OUTPUT
                                         : ODK_HID_REPORT_INPUT;
}

static void uhid_event(odk_hid_device *dev, struct uhid_event *ev)
{
    struct uhid_event r = {0};
    switch (ev->type) {
    case UHID_OUTPUT:
        if (ev->u.output.size <= UHID_DATA_MAX)
            set_report(dev, report_type(ev->u.output.rtype), ev->u.output.data, ev->u.output.size);
        break;
    case UHID_SET_REPORT:
        r.type = UHID_SET_REPORT_REPLY;
        r.u.set_report_reply.id = ev->u.set_report.id;
        r.u.set_report_reply.err =
            ev->u.set_report.size > UHID_DATA_MAX ||
                    set_report(dev, report_type(ev->u.set_report.rtype), ev->u.set_report.data,
                               ev->u.set_report.size) < 0
                ? EIO
                : 0;
        uhid_reply(dev, &r);
        break;
    case UHID_GET_REPORT: {
        r.type = UHID_GET_REPORT_REPLY;
        r.u.get_report_reply.id = ev->u.get_report.id;
        size_t len = 0;
        int st = dev->ops && dev->ops->get_report
                     ? dev->ops->get_report(dev->ctx, report_type(ev->u.get_report.rtype),
                                            ev->u.get_report.rnum, r.u.get_report_reply.data,
                                            UHID_DATA_MAX, &len)
                     : ODK_E_UNSUPPORTED;
        r.u.get_report_reply.err = st < 0 ? EIO : 0;
        r.u.get_report_reply.size = st < 0 ? 0 : (uint16_t)len;
        uhid_reply(dev, &r);
        break;
    }
    default: /* START, STOP, OPEN, CLOSE: nothing to do */
        break;
    }
}

/* uinput gives the LEDs the system set as EV_LED events: the input core
 * passes no SYN_REPORT to the device, so they apply once a batch is read. */
static void uinput_event(odk_hid_device *dev, const struct input_event *ie)
{
    if (ie->type == EV_LED && ie->code <= LED_KANA) {
        if (ie->value)
            dev->uinput_leds |= 1u << ie->code;
        else
            dev->uinput_leds &= ~(1u << ie->code);
    }
}

static void on_system(void *ctx, uint32_t revents)
{
    odk_hid_device *dev = ctx;
    for (int i = 0; i < 16; i++) {
        if (dev->backend == UHID) {
            struct uhid_event ev;
            ssize_t n = read(dev->sysfd, &ev, sizeof ev);
            if (n <= 0)
                break;
            uhid_event(dev, &ev);
        } else {
            struct input_event ie;
            if (read(dev->sysfd, &ie, sizeof ie) != (ssize_t)sizeof ie)
                break;
            uinput_event(dev, &ie);
        }
    }
    if (dev->backend == UINPUT && dev->uinput_leds != dev->leds) {
        int st = set_leds(dev, dev->uinput_leds);
        if (st < 0)
            odk_warn("hid: LEDs from the system: %s", odk_strerror(st));
    }
    if (revents & (EPOLLERR | EPOLLHUP))
        odk_fd_source_set_enabled(dev->src, false);
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

static void device_name(const odk_hid_device_description *d, char *buf, size_t cap)
{
    if (d->manufacturer && *d->manufacturer && d->product && *d->product)
        snprintf(buf, cap, "%s %s", d->manufacturer, d->product);
    else
        copy_str(buf, cap, d->product && *d->product ? d->product : "odk HID device");
}

static int uhid_create(odk_hid_device *dev, const odk_hid_device_description *d, const char *phys)
{
    struct uhid_event *ev = calloc(1, sizeof *ev);
    if (!ev)
        return ODK_E_NOMEM;
    ev->type = UHID_CREATE2;
    struct uhid_create2_req *c = &ev->u.create2;
    device_name(d, (char *)c->name, sizeof c->name);
    copy_str((char *)c->phys, sizeof c->phys, phys);
    copy_str((char *)c->uniq, sizeof c->uniq, d->serial_number);
    c->rd_size = (uint16_t)d->report_descriptor_len;
    c->bus = (uint16_t)(d->bus_type ? d->bus_type : BUS_VIRTUAL);
    c->vendor = d->vendor_id;
    c->product = d->product_id;
    c->version = d->version;
    c->country = d->country_code;
    memcpy(c->rd_data, d->report_descriptor, d->report_descriptor_len);
    ssize_t n = write(dev->sysfd, ev, sizeof *ev);
    int e = errno;
    free(ev);
    if (n != (ssize_t)sizeof *ev) {
        odk_error("hid: UHID_CREATE2: %s", n < 0 ? strerror(e) : "short write");
        return ODK_E_IO;
    }
    return ODK_OK;
}

struct caps {
    odk_hid_device *dev;
    int fails;
};

static void set_code(void *ctx, uint16_t type, uint16_t code)
{
    struct caps *c = ctx;
    if (type == EV_REL) {
        uint8_t bit = code == REL_X       ? 1
                      : code == REL_Y     ? 2
                      : code == REL_Z     ? 4
                      : code == REL_WHEEL ? 8
                                          : 16;
        if ((c->dev->rel_axes & bit) && ioctl(c->dev->sysfd, UI_SET_RELBIT, code) < 0)
            c->fails++;
        return;
    }
    uint8_t need = code >= BTN_MISC && code < KEY_OK ? 2 : 0;
    if (!need) {
        uint16_t page, usage;
        uint32_t t;
        if (!evdev_key_to_hid(code, &page, &usage, &t))
            return;
        need = page == 0x0c ? 4 : 1;
    }
    if (!(c->dev->has_pages & need))
        return;
    if (ioctl(c->dev->sysfd, UI_SET_KEYBIT, code) < 0)
        c->fails++;
}

static int uinput_create(odk_hid_device *dev, const odk_hid_device_description *d, const char *phys)
{
    struct caps c = {dev, 0};
    int fd = dev->sysfd;
    if (ioctl(fd, UI_SET_EVBIT, EV_SYN) < 0)
        c.fails++;
    if (dev->has_pages & 5) {
        if (ioctl(fd, UI_SET_EVBIT, EV_KEY) < 0 || ioctl(fd, UI_SET_EVBIT, EV_REP) < 0)
            c.fails++;
    }
    if ((dev->has_pages & 2) && ioctl(fd, UI_SET_EVBIT, EV_KEY) < 0)
        c.fails++;
    if ((dev->has_pages & 32) && ioctl(fd, UI_SET_EVBIT, EV_REL) < 0)
        c.fails++;
    if (dev->has_pages & 16) {
        /* An absolute pointer (a tablet, a touch screen's mouse report):
         * the descriptor's logical range is the axis's range. */
        if (ioctl(fd, UI_SET_EVBIT, EV_ABS) < 0)
            c.fails++;
        for (int a = 0; a < 3; a++) {
            if (!dev->abs[a].on)
                continue;
            struct uinput_abs_setup as = {.code = (uint16_t)(ABS_X + a)};
            as.absinfo.minimum = dev->abs[a].min;
            as.absinfo.maximum = dev->abs[a].max;
            if (ioctl(fd, UI_SET_ABSBIT, ABS_X + a) < 0 || ioctl(fd, UI_ABS_SETUP, &as) < 0)
                c.fails++;
        }
    }
    if (dev->has_pages & 8) {
        if (ioctl(fd, UI_SET_EVBIT, EV_LED) < 0)
            c.fails++;
        for (int l = LED_NUML; l <= LED_KANA; l++)
            if (ioctl(fd, UI_SET_LEDBIT, l) < 0)
                c.fails++;
    }
    hid_evdev_codes(set_code, &c);
    struct uinput_setup s = {0};
    s.id.bustype = (uint16_t)(d->bus_type ? d->bus_type : BUS_VIRTUAL);
    s.id.vendor = (uint16_t)d->vendor_id;
    s.id.product = (uint16_t)d->product_id;
    s.id.version = (uint16_t)d->version;
    device_name(d, s.name, sizeof s.name);
    if (c.fails || ioctl(fd, UI_SET_PHYS, phys) < 0 || ioctl(fd, UI_DEV_SETUP, &s) < 0 ||
        ioctl(fd, UI_DEV_CREATE) < 0) {
        odk_error("hid: uinput set-up: %s", strerror(errno));
        return ODK_E_IO;
    }
    return ODK_OK;
}

/* Which kinds of input the descriptor has, for uinput's capabilities, and
 * the ranges of its absolute axes. */
static uint8_t pages_of(odk_hid_device *dev, const odk_hid_descriptor *desc)
{
    uint8_t p = 0;
    for (size_t i = 0; i < odk_hid_descriptor_element_count(desc); i++) {
        const odk_hid_element *el = odk_hid_descriptor_element(desc, i);
        for (uint32_t u = 0; u < el->n_usages; u++) {
            uint16_t page = ODK_HID_USAGE_PAGE(el->usages[u].min);
            if (el->type == ODK_HID_REPORT_INPUT && page == ODK_HID_PAGE_GENERIC_DESKTOP &&
                (el->flags & ODK_HID_VARIABLE)) {
                bool rel = el->flags & ODK_HID_RELATIVE;
                for (uint32_t x = el->usages[u].min; x <= el->usages[u].max; x++) {
                    uint16_t id = (uint16_t)x;
                    if (rel && ((id >= 0x30 && id <= 0x32) || id == 0x38)) {
                        p |= 32;
                        dev->rel_axes |= id == 0x38 ? 8 : (uint8_t)(1u << (id - 0x30));
                    }
                    else if (!rel && id >= 0x30 && id <= 0x32) {
                        p |= 16;
                        dev->abs[id - 0x30].on = true;
                        dev->abs[id - 0x30].min = (int32_t)el->logical_min;
                        dev->abs[id - 0x30].max = (int32_t)el->logical_max;
                    }
                    if (x == el->usages[u].max) /* (max may be 0xffffffff) */
                        break;
                }
            }
            if (el->type == ODK_HID_REPORT_INPUT && page == ODK_HID_PAGE_CONSUMER &&
                (el->flags & ODK_HID_RELATIVE) && ODK_HID_USAGE_ID(el->usages[u].min) <= 0x238 &&
                ODK_HID_USAGE_ID(el->usages[u].max) >= 0x238) {
                p |= 32; /* AC Pan: the horizontal wheel */
                dev->rel_axes |= 16;
            }
            if (el->type == ODK_HID_REPORT_INPUT)
                p |= page == ODK_HID_PAGE_KEYBOARD           ? 1
                     : page == ODK_HID_PAGE_BUTTON           ? 2
                     : page == ODK_HID_PAGE_GENERIC_DESKTOP ? 2
                     : page == ODK_HID_PAGE_CONSUMER         ? 4
                                                             : 0;
            else if (el->type == ODK_HID_REPORT_OUTPUT && page == ODK_HID_PAGE_LED)
                p |= 8;
        }
    }
    return p;
}

static int open_system(odk_hid_device *dev, const odk_hid_device_description *d)
{
    odk_value *args = odk_value_new_dict();
    odk_dict_set_int(args, "node", (int64_t)dev->node);
    odk_value *reply = NULL;
    int fds[2] = {-1, -1};
    size_t n_fds = 2;
    int st = host_link_request_fds("hid-open", args, &reply, fds, &n_fds);
    const char *b = st == ODK_OK ? odk_dict_get_string(reply, "backend", "none") : "none";
    dev->backend = strcmp(b, "uhid") == 0 ? UHID : strcmp(b, "uinput") == 0 ? UINPUT : NONE;
    odk_value_free(reply);
    if (st < 0)
        return st;
    if (dev->backend != NONE && n_fds != 1) {
        for (size_t i = 0; i < n_fds; i++)
            close(fds[i]);
        return ODK_E_PROTOCOL;
    }
    if (dev->backend == NONE)
        return ODK_OK;
    dev->sysfd = fds[0];
    char phys[64];
    if (d->phys && *d->phys)
        copy_str(phys, sizeof phys, d->phys);
    else
        snprintf(phys, sizeof phys, "odk/%s/%llu", odk_driver_bundle_id(dev->drv),
                 (unsigned long long)dev->node);
    st = dev->backend == UHID ? uhid_create(dev, d, phys) : uinput_create(dev, d, phys);
    if (st == ODK_OK)
        st = odk_fd_source_create(odk_driver_queue(dev->drv), dev->sysfd, EPOLLIN, on_system, dev,
                                  &dev->src);
    return st;
}

/* ---- the node's user client ------------------------------------------------- */

static int m_set_leds(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    (void)drv;
    return set_leds(*(odk_hid_device **)odk_user_client_ctx(uc), (uint32_t)call->scalar_in[0]);
}

static int m_get_leds(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    (void)drv;
    call->scalar_out[0] = (*(odk_hid_device **)odk_user_client_ctx(uc))->leds;
    return ODK_OK;
}

static int m_set_report(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    (void)drv;
    uint64_t t = call->scalar_in[0];
    if ((t != ODK_HID_REPORT_OUTPUT && t != ODK_HID_REPORT_FEATURE) || !call->struct_in_len ||
        call->struct_in_len > ODK_HID_MAX_REPORT)
        return ODK_E_INVALID;
    uint8_t buf[ODK_HID_MAX_REPORT]; /* copied: the app may change it while we look */
    memcpy(buf, call->struct_in, call->struct_in_len);
    return set_report(*(odk_hid_device **)odk_user_client_ctx(uc), (odk_hid_report_type)t, buf,
                      call->struct_in_len);
}

static int m_get_report(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    (void)drv;
    odk_hid_device *dev = *(odk_hid_device **)odk_user_client_ctx(uc);
    uint64_t t = call->scalar_in[0];
    if (t > ODK_HID_REPORT_FEATURE || call->scalar_in[1] > 255)
        return ODK_E_INVALID;
    if (dev->dead)
        return ODK_E_GONE;
    if (!dev->ops || !dev->ops->get_report)
        return ODK_E_UNSUPPORTED;
    size_t len = 0;
    int st = dev->ops->get_report(dev->ctx, (odk_hid_report_type)t, (uint8_t)call->scalar_in[1],
                                  call->struct_out, call->struct_out_cap, &len);
    if (st == ODK_OK)
        call->struct_out_len = len > call->struct_out_cap ? call->struct_out_cap : len;
    return st;
}

static const odk_method node_methods[] = {
    [ODK_HID_SEL_SET_LEDS] = {m_set_leds, .scalar_in = 1},
    [ODK_HID_SEL_GET_LEDS] = {m_get_leds, .scalar_out = 1},
    [ODK_HID_SEL_SET_REPORT] = {m_set_report, .scalar_in = 1, .struct_in = ODK_VARIABLE_SIZE},
    [ODK_HID_SEL_GET_REPORT] = {m_get_report, .scalar_in = 2, .struct_out = ODK_VARIABLE_SIZE},
};

/* A connection's context: the device first (what the methods need), then
 * its stream. */
struct conn {
    odk_hid_device *dev;
    struct stream stream;
};

static int uc_open(void *ctx, odk_user_client *uc, uint32_t type)
{
    (void)type;
    odk_hid_device *dev = ctx;
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        return ODK_E_NOMEM;
    int st = data_queue_create_wake(STREAM_RING, DATA_QUEUE_WAKE_SOCKET, &c->stream.q);
    if (st < 0) {
        free(c);
        return st;
    }
    c->dev = dev;
    c->stream.next = dev->streams;
    dev->streams = &c->stream;
    odk_user_client_set_ctx(uc, c);
    return ODK_OK;
}

static void uc_close(void *ctx, odk_user_client *uc)
{
    odk_hid_device *dev = ctx;
    struct conn *c = odk_user_client_ctx(uc);
    if (!c)
        return;
    for (struct stream **p = &dev->streams; *p; p = &(*p)->next)
        if (*p == &c->stream) {
            *p = c->stream.next;
            break;
        }
    odk_data_queue_free(c->stream.q);
    free(c);
    if (dev->dead && !dev->streams)
        free(dev);
}

static int uc_queue(void *ctx, odk_user_client *uc, uint32_t type, odk_data_queue **q)
{
    (void)ctx;
    struct conn *c = odk_user_client_ctx(uc);
    if (type != ODK_HID_STREAM_QUEUE || !c)
        return ODK_E_INVALID;
    *q = c->stream.q;
    return ODK_OK;
}

/* ---- create, report, destroy ----------------------------------------------- */

static odk_value *describe(const odk_hid_device_description *d, uint32_t page, uint32_t usage,
                           size_t max_input)
{
    odk_value *p = odk_value_new_dict();
    odk_dict_set_int(p, "VendorID", d->vendor_id);
    odk_dict_set_int(p, "ProductID", d->product_id);
    odk_dict_set_int(p, "VersionNumber", d->version);
    odk_dict_set_int(p, "CountryCode", d->country_code);
    if (d->manufacturer)
        odk_dict_set_string(p, "Manufacturer", d->manufacturer);
    if (d->product)
        odk_dict_set_string(p, "Product", d->product);
    if (d->serial_number)
        odk_dict_set_string(p, "SerialNumber", d->serial_number);
    odk_dict_set_string(p, "Transport", d->transport ? d->transport : "Virtual");
    odk_dict_set_int(p, "PrimaryUsagePage", page);
    odk_dict_set_int(p, "PrimaryUsage", usage);
    odk_dict_set_int(p, "MaxInputReportSize", (int64_t)max_input);
    odk_dict_set(p, "ReportDescriptor",
                 odk_value_new_data(d->report_descriptor, d->report_descriptor_len));
    return p;
}

int odk_hid_device_create(odk_driver *drv, const odk_hid_device_description *d,
                          const odk_hid_device_ops *ops, void *ctx, odk_hid_device **out)
{
    if (!drv || !d || !out || !d->report_descriptor || !d->report_descriptor_len)
        return ODK_E_INVALID;
    if (d->report_descriptor_len > ODK_HID_MAX_DESCRIPTOR)
        return ODK_E_LIMIT;
    odk_hid_device *dev = calloc(1, sizeof *dev);
    if (!dev)
        return ODK_E_NOMEM;
    dev->drv = drv;
    dev->ops = ops;
    dev->ctx = ctx;
    dev->sysfd = -1;
    char err[200] = "";
    int st = odk_hid_event_service_create(d->report_descriptor, d->report_descriptor_len, on_input,
                                          dev, &dev->svc, err, sizeof err);
    if (st < 0) {
        odk_error("hid: report descriptor refused: %s", err[0] ? err : odk_strerror(st));
        free(dev);
        return st;
    }
    const odk_hid_descriptor *desc = hid_event_service_descriptor(dev->svc);
    dev->has_pages = pages_of(dev, desc);
    uint32_t primary = odk_hid_descriptor_primary_usage(desc);
    uint32_t page = d->primary_usage_page ? d->primary_usage_page : ODK_HID_USAGE_PAGE(primary);
    uint32_t usage = d->primary_usage ? d->primary_usage : ODK_HID_USAGE_ID(primary);
    st = odk_driver_publish_node(
        drv, "IOUserHIDDevice", "IOHIDDevice",
        describe(d, page, usage, odk_hid_descriptor_max_report_length(desc, ODK_HID_REPORT_INPUT)),
        &dev->node);
    node_handler h = {.node_id = dev->node,
                      .methods = node_methods,
                      .n_methods = sizeof node_methods / sizeof node_methods[0],
                      .open = uc_open,
                      .close = uc_close,
                      .data_queue = uc_queue,
                      .ctx = dev};
    if (st == ODK_OK)
        st = driver_set_node_handler(drv, &h);
    if (st == ODK_OK)
        st = open_system(dev, d);
    if (st == ODK_OK)
        st = odk_driver_set_node_property(drv, dev->node, "OdkHIDBackend",
                                          odk_value_new_string(backend_names[dev->backend]));
    if (st < 0) {
        odk_error("hid: device: %s", odk_strerror(st));
        odk_hid_device_destroy(dev);
        return st;
    }
    odk_info("hid device %llu ready (%s)", (unsigned long long)dev->node,
             backend_names[dev->backend]);
    *out = dev;
    return ODK_OK;
}

int odk_hid_device_handle_report(odk_hid_device *dev, uint64_t ts, const uint8_t *report,
                                 size_t len)
{
    if (!dev || !report || !len)
        return ODK_E_INVALID;
    if (len > ODK_HID_MAX_REPORT)
        return ODK_E_LIMIT;
    if (!ts)
        ts = hid_now_ns();
    int st = ODK_OK;
    if (dev->backend == UHID) {
        struct uhid_event ev;
        ev.type = UHID_INPUT2;
        ev.u.input2.size = (uint16_t)len;
        memcpy(ev.u.input2.data, report, len);
        size_t n = offsetof(struct uhid_event, u.input2.data) + len;
        if (write(dev->sysfd, &ev, n) != (ssize_t)n) {
            odk_warn("hid: UHID_INPUT2: %s", strerror(errno));
            st = ODK_E_IO;
        }
    }
    int dst = odk_hid_event_service_handle_report(dev->svc, ts, report, len);
    return dst < 0 ? dst : st;
}

const char *odk_hid_device_backend(const odk_hid_device *dev)
{
    return backend_names[dev->backend];
}

uint64_t odk_hid_device_node_id(const odk_hid_device *dev)
{
    return dev->node;
}

uint32_t odk_hid_device_leds(const odk_hid_device *dev)
{
    return dev->leds;
}

void odk_hid_device_destroy(odk_hid_device *dev)
{
    if (!dev)
        return;
    if (dev->src) {
        odk_fd_source_cancel(dev->src, NULL, NULL);
        odk_release(dev->src);
    }
    if (dev->sysfd >= 0) {
        if (dev->backend == UHID) {
            struct uhid_event ev = {.type = UHID_DESTROY};
            uhid_reply(dev, &ev);
        } else if (dev->backend == UINPUT) {
            ioctl(dev->sysfd, UI_DEV_DESTROY);
        }
        close(dev->sysfd);
    }
    if (dev->node) {
        /* Apps reading the device see their connection close (ODK_E_GONE). */
        driver_close_node_clients(dev->drv, dev->node);
        node_handler h = {.node_id = dev->node};
        driver_set_node_handler(dev->drv, &h);
        odk_driver_withdraw_node(dev->drv, dev->node);
    }
    odk_hid_event_service_destroy(dev->svc);
    dev->svc = NULL;
    dev->dead = true;
    /* Connections still open keep their copy of the handler: the last one
     * to close frees the device (uc_close). */
    if (!dev->streams)
        free(dev);
}
