/* SPDX-License-Identifier: MIT */
/* hid-remap: a keyboard remapper as a driver (keyd, kanata and Karabiner's
 * job).  It takes a keyboard (a USB HID interface, or an evdev node: the
 * HID family's source), remaps its keys, and types the result on a virtual
 * keyboard of its own that carries the source's identity.
 *
 * The remap, from the personality's "OdkHIDRemap" or from an app at run
 * time (selector 0, the same JSON as text):
 *   {"map":      {"a": "b", ...},                       one key to another
 *    "tap_hold": {"capslock": {"tap": "esc", "hold": "leftctrl", "timeout_ms": 200}},
 *    "layers":   {"space": {"h": "left", "j": "down", ...}}}   a layer while a key is held
 * Keys are short names ("a", "esc", "leftctrl", "f1"), HID usage names
 * ("Keyboard Caps Lock"), or keyboard-page usage numbers.
 *
 * What stays right:
 *  - a key's release releases what its press produced, whatever the remap
 *    says by then (each source key remembers its output);
 *  - a new remap first releases every key it produced; keys still held
 *    are then ignored until released;
 *  - a tap-hold key is decided by the first of: its release (tap), another
 *    key pressed (hold), its timeout (hold);
 *  - a layer key alone taps itself; with another key, that key comes from
 *    the layer;
 *  - repeat is the system's: the virtual keyboard holds the key down, as a
 *    real one does;
 *  - a restarted driver starts with every key up, and the system's side of
 *    the old virtual keyboard went with the old process.
 *
 * Selectors: 0 set remap (struct in: JSON text); 1 the virtual keyboard's
 * node id (scalar out). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "odk/driver.h"
#include "odk/hid.h"

#define NKEYS 256
#define DEFAULT_TAP_MS 200

/* The boot keyboard (HID 1.11 appendix B.1): what the virtual keyboard is. */
static const uint8_t boot_keyboard[] = {
    0x05, 0x01, 0x09, 0x06, 0xa1, 0x01, 0x05, 0x07, 0x19, 0xe0, 0x29, 0xe7, 0x15, 0x00,
    0x25, 0x01, 0x75, 0x01, 0x95, 0x08, 0x81, 0x02, 0x95, 0x01, 0x75, 0x08, 0x81, 0x01,
    0x95, 0x05, 0x75, 0x01, 0x05, 0x08, 0x19, 0x01, 0x29, 0x05, 0x91, 0x02, 0x95, 0x01,
    0x75, 0x03, 0x91, 0x01, 0x95, 0x06, 0x75, 0x08, 0x15, 0x00, 0x26, 0xff, 0x00, 0x05,
    0x07, 0x19, 0x00, 0x2a, 0xff, 0x00, 0x81, 0x00, 0xc0,
};

struct tap_hold {
    uint8_t tap, hold;
    uint32_t timeout_ms;
};

struct remap {
    uint8_t map[NKEYS];             /* 0: the key itself */
    struct tap_hold th[NKEYS];      /* tap == 0: not a tap-hold key */
    uint8_t layer_of[NKEYS];        /* 0 or 1 + index into layers */
    uint8_t layers[8][NKEYS];       /* per layer: 0 = fall through to map */
    unsigned n_layers;
};

struct rm {
    odk_driver *drv;
    odk_hid_source *src;
    odk_hid_device *out;
    struct remap r;
    uint8_t produced[NKEYS]; /* source key -> output key it holds down (0: none) */
    bool ignore[NKEYS];      /* held across a remap change: ignored until released */
    unsigned out_count[NKEYS];
    uint8_t order[6];        /* non-modifier output keys, in press order */
    /* A tap-hold or layer key not decided yet. */
    uint8_t pending;
    uint64_t pending_ts;
    odk_timer *timer;
    odk_action *timer_action;
    int active_layer; /* -1: none */
    uint8_t layer_key;
    bool layer_used;
};

/* ---- key names ------------------------------------------------------------- */

static const struct {
    const char *name;
    uint8_t usage;
} names[] = {
    {"enter", 0x28},     {"esc", 0x29},        {"escape", 0x29},     {"backspace", 0x2a},
    {"tab", 0x2b},       {"space", 0x2c},      {"minus", 0x2d},      {"equal", 0x2e},
    {"leftbrace", 0x2f}, {"rightbrace", 0x30}, {"backslash", 0x31},  {"semicolon", 0x33},
    {"apostrophe", 0x34}, {"grave", 0x35},     {"comma", 0x36},      {"dot", 0x37},
    {"slash", 0x38},     {"capslock", 0x39},   {"right", 0x4f},      {"left", 0x50},
    {"down", 0x51},      {"up", 0x52},         {"home", 0x4a},       {"pageup", 0x4b},
    {"delete", 0x4c},    {"end", 0x4d},        {"pagedown", 0x4e},   {"insert", 0x49},
    {"leftctrl", 0xe0},  {"leftshift", 0xe1},  {"leftalt", 0xe2},    {"leftmeta", 0xe3},
    {"rightctrl", 0xe4}, {"rightshift", 0xe5}, {"rightalt", 0xe6},   {"rightmeta", 0xe7},
};

static int key_of(const odk_value *v, uint8_t *out)
{
    if (odk_value_type(v) == ODK_TYPE_INT) {
        int64_t u = odk_value_int(v);
        if (u <= 0 || u >= NKEYS)
            return ODK_E_INVALID;
        *out = (uint8_t)u;
        return ODK_OK;
    }
    const char *s = odk_value_string(v);
    return s ? (*out = 0, ODK_OK) : ODK_E_INVALID;
}

static int name_to_key(const char *s, uint8_t *out)
{
    size_t n = strlen(s);
    if (n == 1 && s[0] >= 'a' && s[0] <= 'z')
        return *out = (uint8_t)(0x04 + s[0] - 'a'), ODK_OK;
    if (n == 1 && s[0] >= '1' && s[0] <= '9')
        return *out = (uint8_t)(0x1e + s[0] - '1'), ODK_OK;
    if (n == 1 && s[0] == '0')
        return *out = 0x27, ODK_OK;
    if ((n == 2 || n == 3) && (s[0] == 'f' || s[0] == 'F')) {
        int f = atoi(s + 1);
        if (f >= 1 && f <= 12)
            return *out = (uint8_t)(0x3a + f - 1), ODK_OK;
    }
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(s, names[i].name) == 0)
            return *out = names[i].usage, ODK_OK;
    uint32_t u;
    if (odk_hid_usage_lookup(s, &u) == ODK_OK && ODK_HID_USAGE_PAGE(u) == ODK_HID_PAGE_KEYBOARD &&
        ODK_HID_USAGE_ID(u) > 0 && ODK_HID_USAGE_ID(u) < NKEYS)
        return *out = (uint8_t)ODK_HID_USAGE_ID(u), ODK_OK;
    return ODK_E_INVALID;
}

static int key(const odk_value *v, uint8_t *out)
{
    int st = v ? key_of(v, out) : ODK_E_INVALID;
    if (st == ODK_OK && *out == 0)
        st = name_to_key(odk_value_string(v), out);
    return st;
}

static int key_name(const char *s, uint8_t *out)
{
    odk_value *v = odk_value_new_string(s);
    int st = key(v, out);
    odk_value_free(v);
    return st;
}

/* Parses a remap; the reason of a refusal goes to the log. */
static int parse_remap(const odk_value *cfg, struct remap *r)
{
    memset(r, 0, sizeof *r);
    if (!cfg)
        return ODK_OK;
    if (odk_value_type(cfg) != ODK_TYPE_DICT)
        return ODK_E_INVALID;
    const odk_value *map = odk_dict_get(cfg, "map"), *th = odk_dict_get(cfg, "tap_hold"),
                    *layers = odk_dict_get(cfg, "layers");
    uint8_t a, b;
    for (size_t i = 0; map && i < odk_dict_count(map); i++) {
        if (key_name(odk_dict_key_at(map, i), &a) < 0 || key(odk_dict_value_at(map, i), &b) < 0) {
            odk_error("remap: map: unknown key %s", odk_dict_key_at(map, i));
            return ODK_E_INVALID;
        }
        r->map[a] = b;
    }
    for (size_t i = 0; th && i < odk_dict_count(th); i++) {
        const odk_value *e = odk_dict_value_at(th, i);
        uint8_t tap, hold;
        if (key_name(odk_dict_key_at(th, i), &a) < 0 || key(odk_dict_get(e, "tap"), &tap) < 0 ||
            key(odk_dict_get(e, "hold"), &hold) < 0) {
            odk_error("remap: tap_hold: %s needs a known key, \"tap\" and \"hold\"",
                      odk_dict_key_at(th, i));
            return ODK_E_INVALID;
        }
        int64_t ms = odk_dict_get_int(e, "timeout_ms", DEFAULT_TAP_MS);
        r->th[a] = (struct tap_hold){tap, hold, ms < 1 ? 1 : ms > 60000 ? 60000 : (uint32_t)ms};
    }
    for (size_t i = 0; layers && i < odk_dict_count(layers); i++) {
        if (r->n_layers == 8 || key_name(odk_dict_key_at(layers, i), &a) < 0) {
            odk_error("remap: layers: at most 8, on known keys");
            return ODK_E_INVALID;
        }
        const odk_value *l = odk_dict_value_at(layers, i);
        for (size_t k = 0; k < odk_dict_count(l); k++) {
            if (key_name(odk_dict_key_at(l, k), &b) < 0 ||
                key(odk_dict_value_at(l, k), &r->layers[r->n_layers][b]) < 0) {
                odk_error("remap: layer %s: unknown key %s", odk_dict_key_at(layers, i),
                          odk_dict_key_at(l, k));
                return ODK_E_INVALID;
            }
        }
        r->layer_of[a] = (uint8_t)(++r->n_layers);
    }
    return ODK_OK;
}

/* ---- output: the virtual keyboard ------------------------------------------ */

static void send(struct rm *m, uint64_t ts)
{
    uint8_t rep[8] = {0};
    for (int k = 0; k < 8; k++)
        if (m->out_count[0xe0 + k])
            rep[0] |= (uint8_t)(1u << k);
    memcpy(rep + 2, m->order, 6);
    int st = odk_hid_device_handle_report(m->out, ts, rep, sizeof rep);
    if (st < 0)
        odk_warn("remap: report: %s", odk_strerror(st));
}

static void out_press(struct rm *m, uint8_t k, uint64_t ts)
{
    if (m->out_count[k]++ > 0)
        return;
    if (k < 0xe0)
        for (int i = 0; i < 6; i++)
            if (!m->order[i]) {
                m->order[i] = k;
                break;
            } /* a seventh key is not sent: the boot report holds six */
    send(m, ts);
}

static void out_release(struct rm *m, uint8_t k, uint64_t ts)
{
    if (!m->out_count[k] || --m->out_count[k] > 0)
        return;
    for (int i = 0; i < 6; i++)
        if (m->order[i] == k) {
            memmove(m->order + i, m->order + i + 1, (size_t)(5 - i));
            m->order[5] = 0;
            break;
        }
    send(m, ts);
}

/* Source key src goes down as output key k. */
static void produce(struct rm *m, uint8_t src, uint8_t k, uint64_t ts)
{
    m->produced[src] = k;
    out_press(m, k, ts);
}

static void release_all(struct rm *m, uint64_t ts)
{
    for (int s = 0; s < NKEYS; s++)
        if (m->produced[s]) {
            out_release(m, m->produced[s], ts);
            m->produced[s] = 0;
        }
}

/* ---- the remap --------------------------------------------------------------- */

static uint8_t mapped(struct rm *m, uint8_t k)
{
    if (m->active_layer >= 0 && m->r.layers[m->active_layer][k])
        return m->r.layers[m->active_layer][k];
    return m->r.map[k] ? m->r.map[k] : k;
}

/* A pending tap-hold key becomes its hold key. */
static void decide_hold(struct rm *m, uint64_t ts)
{
    uint8_t p = m->pending;
    m->pending = 0;
    odk_timer_disarm(m->timer);
    produce(m, p, m->r.th[p].hold, ts);
}

static void on_timer(void *ctx, odk_action *a)
{
    (void)a;
    struct rm *m = ctx;
    if (m->pending)
        decide_hold(m, 0);
}

static void key_down(struct rm *m, uint8_t k, uint64_t ts)
{
    if (m->pending && m->pending != k)
        decide_hold(m, ts); /* another key while undecided: it was a hold */
    if (m->layer_key && m->layer_key != k)
        m->layer_used = true;
    if (m->r.th[k].tap) {
        m->pending = k;
        m->pending_ts = ts;
        odk_timer_arm(m->timer, (uint64_t)m->r.th[k].timeout_ms * 1000000u, 0);
        return;
    }
    if (m->r.layer_of[k] && m->active_layer < 0) {
        m->active_layer = m->r.layer_of[k] - 1;
        m->layer_key = k;
        m->layer_used = false;
        return;
    }
    produce(m, k, mapped(m, k), ts);
}

static void key_up(struct rm *m, uint8_t k, uint64_t ts)
{
    if (m->ignore[k]) {
        m->ignore[k] = false;
        return;
    }
    if (m->pending == k) { /* released before anything decided it: a tap */
        m->pending = 0;
        odk_timer_disarm(m->timer);
        out_press(m, m->r.th[k].tap, ts);
        out_release(m, m->r.th[k].tap, ts);
        return;
    }
    if (m->layer_key == k) {
        m->active_layer = -1;
        m->layer_key = 0;
        if (!m->layer_used) { /* alone: the key itself */
            uint8_t o = m->r.map[k] ? m->r.map[k] : k;
            out_press(m, o, ts);
            out_release(m, o, ts);
        }
        return;
    }
    if (m->produced[k]) {
        out_release(m, m->produced[k], ts);
        m->produced[k] = 0;
    }
}

static void on_event(void *ctx, const odk_hid_input_event *ev)
{
    struct rm *m = ctx;
    if (ev->type != ODK_HID_INPUT_KEYBOARD || ev->usage == 0 || ev->usage >= NKEYS ||
        (ev->flags & ODK_HID_INPUT_REPEAT))
        return; /* repeats: the virtual keyboard's system repeats the held key itself */
    if (ev->value)
        key_down(m, (uint8_t)ev->usage, ev->timestamp_ns);
    else
        key_up(m, (uint8_t)ev->usage, ev->timestamp_ns);
}

static void on_gone(void *ctx, int status)
{
    struct rm *m = ctx;
    odk_warn("remap: the keyboard went away (%s)", odk_strerror(status));
    m->pending = 0;
    release_all(m, 0);
}

/* Replaces the remap: releases what the old one holds down first. */
static void set_remap(struct rm *m, const struct remap *r)
{
    if (m->pending) {
        m->ignore[m->pending] = true;
        m->pending = 0;
        odk_timer_disarm(m->timer);
    }
    for (int s = 0; s < NKEYS; s++)
        if (m->produced[s])
            m->ignore[s] = true;
    if (m->layer_key)
        m->ignore[m->layer_key] = true;
    release_all(m, 0);
    m->active_layer = -1;
    m->layer_key = 0;
    m->r = *r;
}

/* LEDs the system set on the virtual keyboard go to the real one. */
static int set_report(void *ctx, odk_hid_report_type type, uint8_t id, const uint8_t *data,
                      size_t len)
{
    struct rm *m = ctx;
    if (type != ODK_HID_REPORT_OUTPUT || len < 1)
        return ODK_E_UNSUPPORTED;
    return odk_hid_source_set_leds(m->src, data[0] & 0x1f);
}

static const odk_hid_device_ops out_ops = {.set_report = set_report};
static const odk_hid_source_ops src_ops = {.event = on_event, .gone = on_gone};

static int rm_start(odk_driver *drv)
{
    struct rm *m = odk_driver_state(drv);
    m->drv = drv;
    m->active_layer = -1;
    int st = parse_remap(odk_dict_get(odk_driver_personality(drv), "OdkHIDRemap"), &m->r);
    if (st < 0)
        return st;
    if ((st = odk_timer_create(odk_driver_queue(drv), &m->timer)) < 0 ||
        (st = odk_action_create(odk_driver_queue(drv), on_timer, m, &m->timer_action)) < 0 ||
        (st = odk_timer_set_handler(m->timer, m->timer_action)) < 0)
        return st;
    if ((st = odk_hid_source_open(drv, &src_ops, m, &m->src)) < 0)
        return st;
    /* The virtual keyboard looks like the source, so desktop settings for
     * that keyboard apply to it. */
    odk_hid_device_description d = *odk_hid_source_description(m->src);
    d.report_descriptor = boot_keyboard;
    d.report_descriptor_len = sizeof boot_keyboard;
    d.primary_usage_page = 0x01;
    d.primary_usage = 0x06;
    if ((st = odk_hid_device_create(drv, &d, &out_ops, m, &m->out)) < 0)
        return st;
    odk_driver_set_property(drv, "OdkHIDRemapDevice",
                            odk_value_new_int((int64_t)odk_hid_device_node_id(m->out)));
    return odk_driver_register_service(drv);
}

static void rm_stop(odk_driver *drv)
{
    struct rm *m = odk_driver_state(drv);
    odk_hid_source_close(m->src);
    m->src = NULL;
    if (m->out) {
        m->pending = 0;
        release_all(m, 0);
        odk_hid_device_destroy(m->out);
        m->out = NULL;
    }
    if (m->timer) {
        odk_timer_cancel(m->timer, NULL, NULL);
        odk_release(m->timer);
        odk_release(m->timer_action);
        m->timer = NULL;
    }
}

static int m_set_remap(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct rm *m = odk_driver_state(drv);
    char *text = strndup(call->struct_in, call->struct_in_len);
    odk_value *v = NULL;
    char err[160];
    int st = text ? odk_value_from_json(text, &v, err, sizeof err) : ODK_E_NOMEM;
    free(text);
    if (st < 0)
        return st;
    struct remap r;
    st = parse_remap(v, &r);
    odk_value_free(v);
    if (st == ODK_OK)
        set_remap(m, &r);
    return st;
}

static int m_device(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct rm *m = odk_driver_state(drv);
    call->scalar_out[0] = m->out ? odk_hid_device_node_id(m->out) : 0;
    return ODK_OK;
}

static const odk_method rm_methods[] = {
    [0] = {m_set_remap, .struct_in = ODK_VARIABLE_SIZE},
    [1] = {m_device, .scalar_out = 1},
};

static const odk_driver_class rm_class = {
    .name = "HidRemap",
    .state_size = sizeof(struct rm),
    .start = rm_start,
    .stop = rm_stop,
    .methods = rm_methods,
    .n_methods = sizeof rm_methods / sizeof rm_methods[0],
};

ODK_DRIVER_CLASS(rm_class);
