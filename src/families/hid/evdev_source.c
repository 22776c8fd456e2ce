/* SPDX-License-Identifier: MIT */
/* An evdev input node as a source (the bus in src/buses/evdev): odkd opens
 * the node and grabs it (EVIOCGRAB) and hands the descriptor over, so the
 * driver alone sees its keys, as keyd and interception-tools take a
 * laptop's keyboard.  Key codes become HID usages (keymap.c); the grab ends
 * when the descriptor closes, with the driver or its process. */
#include <errno.h>
#include <linux/input.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "families/hid/hid_internal.h"
#include "runtime/host_link.h"

struct evdev_source {
    struct odk_hid_source base;
    int fd;
    odk_fd_source *src;
    odk_hid_input_event held; /* one event back, to flag the end of a report */
    bool have_held, gone;
    uint8_t down[KEY_CNT / 8 + 1]; /* keys down, released if the node goes */
};

static void emit(struct evdev_source *e, const odk_hid_input_event *ev)
{
    if (e->base.ops->event)
        e->base.ops->event(e->base.ctx, ev);
}

static void flush(struct evdev_source *e)
{
    if (e->have_held) {
        e->have_held = false;
        e->held.flags |= ODK_HID_INPUT_END_OF_REPORT;
        emit(e, &e->held);
    }
}

static void hold(struct evdev_source *e, const odk_hid_input_event *ev)
{
    if (e->have_held)
        emit(e, &e->held);
    e->held = *ev;
    e->have_held = true;
}

static void release_all(struct evdev_source *e)
{
    for (unsigned code = 0; code < KEY_CNT; code++)
        if (e->down[code / 8] & (1u << (code % 8))) {
            odk_hid_input_event ev = {.timestamp_ns = hid_now_ns()};
            uint16_t page, usage;
            uint32_t t;
            if (evdev_key_to_hid((uint16_t)code, &page, &usage, &t)) {
                ev.type = t, ev.usage_page = page, ev.usage = usage;
                hold(e, &ev);
            }
            e->down[code / 8] &= (uint8_t) ~(1u << (code % 8));
        }
    flush(e);
}

static void on_input(struct evdev_source *e, const struct input_event *ie)
{
    uint64_t ts = (uint64_t)ie->input_event_sec * 1000000000u + (uint64_t)ie->input_event_usec * 1000u;
    odk_hid_input_event ev = {.timestamp_ns = ts};
    if (ie->type == EV_SYN && ie->code == SYN_REPORT) {
        flush(e);
    } else if (ie->type == EV_KEY && ie->code < KEY_CNT) {
        uint16_t page, usage;
        uint32_t t;
        if (!evdev_key_to_hid(ie->code, &page, &usage, &t))
            return;
        if (ie->value)
            e->down[ie->code / 8] |= (uint8_t)(1u << (ie->code % 8));
        else
            e->down[ie->code / 8] &= (uint8_t) ~(1u << (ie->code % 8));
        ev.type = t, ev.usage_page = page, ev.usage = usage;
        ev.value = ie->value ? 1 : 0;
        ev.flags = ie->value == 2 ? ODK_HID_INPUT_REPEAT : 0;
        hold(e, &ev);
    } else if (ie->type == EV_REL) {
        ev.type = ie->code == REL_WHEEL || ie->code == REL_HWHEEL ? ODK_HID_INPUT_SCROLL
                                                                  : ODK_HID_INPUT_POINTER_REL;
        ev.usage_page = ie->code == REL_HWHEEL ? 0x0c : 0x01;
        ev.usage = ie->code == REL_HWHEEL ? 0x238 : ie->code == REL_WHEEL ? 0x38 : (uint16_t)(0x30 + ie->code);
        ev.value = ie->value;
        if (ie->code <= REL_Z || ie->code == REL_WHEEL || ie->code == REL_HWHEEL)
            hold(e, &ev);
    }
}

static void on_readable(void *ctx, uint32_t revents)
{
    struct evdev_source *e = ctx;
    struct input_event ie[32];
    ssize_t n = read(e->fd, ie, sizeof ie);
    for (ssize_t i = 0; n > 0 && i < n / (ssize_t)sizeof ie[0]; i++)
        on_input(e, &ie[i]);
    if ((n < 0 && errno != EAGAIN && errno != EINTR) || n == 0 ||
        (n < 0 && (revents & (EPOLLERR | EPOLLHUP)))) {
        odk_fd_source_set_enabled(e->src, false);
        if (!e->gone) {
            e->gone = true;
            release_all(e);
            if (e->base.ops->gone)
                e->base.ops->gone(e->base.ctx, ODK_E_GONE);
        }
    }
}

static int evdev_set_leds(odk_hid_source *base, uint32_t leds)
{
    struct evdev_source *e = (struct evdev_source *)base;
    struct input_event ie[LED_KANA + 2];
    memset(ie, 0, sizeof ie);
    for (int l = LED_NUML; l <= LED_KANA; l++)
        ie[l] = (struct input_event){.type = EV_LED, .code = (uint16_t)l, .value = (leds >> l) & 1};
    ie[LED_KANA + 1] = (struct input_event){.type = EV_SYN, .code = SYN_REPORT};
    return write(e->fd, ie, sizeof ie) == (ssize_t)sizeof ie ? ODK_OK : ODK_E_IO;
}

static void evdev_close(odk_hid_source *base)
{
    struct evdev_source *e = (struct evdev_source *)base;
    if (e->src) {
        odk_fd_source_cancel(e->src, NULL, NULL);
        odk_release(e->src);
    }
    if (e->fd >= 0)
        close(e->fd); /* ends the grab */
    free((char *)e->base.desc.product);
    free((char *)e->base.desc.phys);
    free((char *)e->base.desc.serial_number);
    free(e);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

int hid_evdev_source_open(odk_driver *drv, const odk_hid_source_ops *ops, void *ctx,
                          odk_hid_source **out)
{
    struct evdev_source *e = calloc(1, sizeof *e);
    if (!e)
        return ODK_E_NOMEM;
    e->fd = -1;
    e->base.ops = ops;
    e->base.ctx = ctx;
    e->base.set_leds = evdev_set_leds;
    e->base.close = evdev_close;
    odk_value *args = odk_value_new_dict();
    odk_dict_set_int(args, "node", (int64_t)odk_driver_provider_id(drv));
    odk_value *reply = NULL;
    int fds[2] = {-1, -1};
    size_t n_fds = 2;
    int st = host_link_request_fds("evdev-open", args, &reply, fds, &n_fds);
    odk_value_free(reply);
    if (st == ODK_OK && n_fds != 1)
        st = ODK_E_PROTOCOL;
    if (st == ODK_OK)
        e->fd = fds[0];
    const odk_value *p = odk_driver_provider_properties(drv);
    odk_hid_device_description *d = &e->base.desc;
    d->vendor_id = (uint32_t)odk_dict_get_int(p, "OdkEvdevVendor", 0);
    d->product_id = (uint32_t)odk_dict_get_int(p, "OdkEvdevProduct", 0);
    d->version = (uint32_t)odk_dict_get_int(p, "OdkEvdevVersion", 0);
    d->bus_type = (uint32_t)odk_dict_get_int(p, "OdkEvdevBus", 0);
    d->product = dup_or_null(odk_dict_get_string(p, "OdkEvdevName", NULL));
    /* The source's phys, marked as odk's: the evdev bus skips it, so a
     * remapper never takes its own output. */
    const char *phys = odk_dict_get_string(p, "OdkEvdevPhys", "");
    char *mine = malloc(strlen(phys) + 5);
    if (mine)
        strcat(strcpy(mine, phys), "/odk");
    d->phys = mine;
    d->serial_number = dup_or_null(odk_dict_get_string(p, "OdkEvdevUniq", NULL));
    d->transport = "evdev";
    d->primary_usage_page = 0x01;
    d->primary_usage = odk_dict_get_bool(p, "OdkEvdevKeyboard", false) ? 0x06 : 0x02;
    if (st == ODK_OK)
        st = odk_fd_source_create(odk_driver_queue(drv), e->fd, EPOLLIN, on_readable, e, &e->src);
    if (st < 0) {
        evdev_close(&e->base);
        return st;
    }
    *out = &e->base;
    return ODK_OK;
}
