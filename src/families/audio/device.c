/* SPDX-License-Identifier: MIT */
/* The audio family, host side (odk/audio.h): a device's registry nodes and
 * properties, its shared memory (clock and rings, odk/audio_types.h) and
 * the user client apps open on the device node (start/stop, formats,
 * controls, and memory type 0).  Runs on the driver's default queue, but
 * for the data-path functions, which only touch the shared memory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "families/audio/device.h"
#include "families/audio/format.h"
#include "odk/audio.h"
#include "odk/log.h"
#include "odk/memory.h"
#include "odk/value.h"
#include "runtime/driver_internal.h"
#include "runtime/host_link.h"

#define RING_ALIGN 4096u
/* Every ring has room for the widest frame, so a format change never moves
 * a ring (memfd is sparse: untouched pages cost nothing). */
#define MAX_FRAME_BYTES (ODK_AUDIO_MAX_CHANNELS * 4u)

struct stream {
    uint32_t direction;
    odk_audio_format *formats;
    size_t n_formats;
    odk_audio_format format;
    uint32_t ring_frames;
    uint64_t ring_offset, ring_bytes;
    uint64_t node;
};

struct control {
    uint32_t kind, scope;
    char *name;
    int64_t value, min, max, min_db, max_db;
    odk_audio_selector_item *items; /* names owned */
    size_t n_items;
};

struct odk_audio_device {
    odk_driver *drv;
    const odk_audio_device_ops *ops;
    void *ctx;
    char *uid, *name, *manufacturer, *transport;
    uint32_t clock_domain, period;
    uint32_t rates[ODK_AUDIO_MAX_RATES];
    size_t n_rates;
    uint32_t rate;
    struct stream streams[ODK_AUDIO_MAX_STREAMS];
    size_t n_streams;
    struct control controls[ODK_AUDIO_MAX_CONTROLS];
    size_t n_controls;
    uint64_t node;
    odk_memory *mem;
    odk_audio_shm *shm;
    uint8_t *base;
    uint32_t n_started; /* connections that started I/O */
    bool running;
    uint32_t n_clients; /* open connections: the last one frees a destroyed device */
    bool dead;
};

struct client {
    odk_audio_device *dev;
    bool started;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- the shared memory ---------------------------------------------------- */

#define STORE(field, v) __atomic_store_n(&(field), (v), __ATOMIC_RELAXED)

static void clock_begin(odk_audio_shm *s)
{
    uint32_t seq = __atomic_load_n(&s->clock.seq, __ATOMIC_RELAXED);
    __atomic_store_n(&s->clock.seq, seq + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
}

static void clock_end(odk_audio_shm *s)
{
    uint32_t seq = __atomic_load_n(&s->clock.seq, __ATOMIC_RELAXED);
    __atomic_store_n(&s->clock.seq, seq + 1, __ATOMIC_RELEASE);
}

/* Writes every stream's geometry and the rate (I/O stopped). */
static void shm_geometry(odk_audio_device *dev)
{
    odk_audio_shm *s = dev->shm;
    clock_begin(s);
    STORE(s->clock.rate, dev->rate);
    STORE(s->clock.period_frames, (uint64_t)dev->period);
    for (size_t i = 0; i < dev->n_streams; i++) {
        struct stream *st = &dev->streams[i];
        odk_audio_shm_stream *ss = &s->streams[i];
        STORE(ss->direction, st->direction);
        STORE(ss->frame_bytes, odk_audio_frame_bytes(&st->format));
        STORE(ss->channels, st->format.channels);
        STORE(ss->sample_format, st->format.sample_format);
        STORE(ss->ring_offset, st->ring_offset);
        STORE(ss->ring_bytes, st->ring_bytes);
        STORE(ss->ring_frames, st->ring_frames);
    }
    clock_end(s);
}

static int shm_create(odk_audio_device *dev)
{
    uint64_t off = (sizeof(odk_audio_shm) + RING_ALIGN - 1) / RING_ALIGN * RING_ALIGN;
    for (size_t i = 0; i < dev->n_streams; i++) {
        struct stream *st = &dev->streams[i];
        st->ring_offset = off;
        st->ring_bytes = (uint64_t)st->ring_frames * MAX_FRAME_BYTES;
        off += (st->ring_bytes + RING_ALIGN - 1) / RING_ALIGN * RING_ALIGN;
    }
    int st = odk_memory_create(off, ODK_MEM_INOUT, &dev->mem);
    void *addr = NULL;
    if (st == ODK_OK)
        st = odk_memory_map(dev->mem, ODK_MAP_READ | ODK_MAP_WRITE, &addr);
    if (st < 0)
        return st;
    dev->base = addr;
    dev->shm = addr;
    dev->shm->magic = ODK_AUDIO_SHM_MAGIC;
    dev->shm->version = ODK_AUDIO_SHM_VERSION;
    dev->shm->n_streams = (uint32_t)dev->n_streams;
    shm_geometry(dev);
    return ODK_OK;
}

/* ---- properties ---------------------------------------------------------- */

static odk_value *format_value(const odk_audio_format *f)
{
    odk_value *v = odk_value_new_dict();
    const char *name = odk_audio_sample_format_name(f->sample_format);
    if (v && (odk_dict_set_int(v, "Channels", f->channels) < 0 ||
              odk_dict_set_string(v, "SampleFormat", name ? name : "?") < 0 ||
              odk_dict_set_int(v, "SampleRate", f->rate) < 0)) {
        odk_value_free(v);
        return NULL;
    }
    return v;
}

static odk_value *stream_value(const odk_audio_device *dev, size_t i)
{
    const struct stream *st = &dev->streams[i];
    odk_value *v = odk_value_new_dict(), *fmts = odk_value_new_array();
    int e = v && fmts ? ODK_OK : ODK_E_NOMEM;
    for (size_t k = 0; k < st->n_formats && e == ODK_OK; k++)
        e = odk_array_append(fmts, format_value(&st->formats[k]));
    if (e == ODK_OK)
        e = odk_dict_set(v, "AvailableFormats", fmts);
    else
        odk_value_free(fmts);
    if (e == ODK_OK)
        e = odk_dict_set(v, "Format", format_value(&st->format));
    if (e == ODK_OK)
        e = odk_dict_set_int(v, "Index", (int64_t)i);
    if (e == ODK_OK)
        e = odk_dict_set_string(v, "Direction",
                                st->direction == ODK_AUDIO_OUTPUT ? "output" : "input");
    if (e == ODK_OK)
        e = odk_dict_set_int(v, "RingFrames", st->ring_frames);
    if (e == ODK_OK)
        e = odk_dict_set_string(v, "DeviceUID", dev->uid);
    if (e < 0) {
        odk_value_free(v);
        return NULL;
    }
    return v;
}

static odk_value *streams_value(const odk_audio_device *dev)
{
    odk_value *a = odk_value_new_array();
    for (size_t i = 0; a && i < dev->n_streams; i++)
        if (odk_array_append(a, stream_value(dev, i)) < 0) {
            odk_value_free(a);
            return NULL;
        }
    return a;
}

static odk_value *controls_value(const odk_audio_device *dev)
{
    static const char *scopes[] = {"device", "output", "input"};
    odk_value *a = odk_value_new_array();
    int e = a ? ODK_OK : ODK_E_NOMEM;
    for (size_t i = 0; i < dev->n_controls && e == ODK_OK; i++) {
        const struct control *c = &dev->controls[i];
        odk_value *v = odk_value_new_dict();
        e = v ? ODK_OK : ODK_E_NOMEM;
        if (e == ODK_OK)
            e = odk_dict_set_int(v, "ID", (int64_t)i);
        if (e == ODK_OK)
            e = odk_dict_set_string(v, "Kind", audio_control_kind_name(c->kind));
        if (e == ODK_OK)
            e = odk_dict_set_string(v, "Name", c->name);
        if (e == ODK_OK)
            e = odk_dict_set_string(v, "Scope", scopes[c->scope]);
        if (e == ODK_OK)
            e = odk_dict_set_int(v, "Value", c->value);
        if (e == ODK_OK && c->kind == ODK_AUDIO_CONTROL_VOLUME) {
            e = odk_dict_set_int(v, "Min", c->min);
            if (e == ODK_OK)
                e = odk_dict_set_int(v, "Max", c->max);
            if (e == ODK_OK)
                e = odk_dict_set_int(v, "MinDB", c->min_db);
            if (e == ODK_OK)
                e = odk_dict_set_int(v, "MaxDB", c->max_db);
        }
        if (e == ODK_OK && c->kind == ODK_AUDIO_CONTROL_SELECTOR) {
            odk_value *items = odk_value_new_array();
            e = items ? ODK_OK : ODK_E_NOMEM;
            for (size_t k = 0; k < c->n_items && e == ODK_OK; k++) {
                odk_value *it = odk_value_new_dict();
                e = it ? ODK_OK : ODK_E_NOMEM;
                if (e == ODK_OK)
                    e = odk_dict_set_int(it, "ID", c->items[k].id);
                if (e == ODK_OK)
                    e = odk_dict_set_string(it, "Name", c->items[k].name);
                e = e == ODK_OK ? odk_array_append(items, it) : (odk_value_free(it), e);
            }
            e = e == ODK_OK ? odk_dict_set(v, "Items", items) : (odk_value_free(items), e);
        }
        e = e == ODK_OK ? odk_array_append(a, v) : (odk_value_free(v), e);
    }
    if (e < 0) {
        odk_value_free(a);
        return NULL;
    }
    return a;
}

static odk_value *rates_value(const odk_audio_device *dev)
{
    odk_value *a = odk_value_new_array();
    for (size_t i = 0; a && i < dev->n_rates; i++)
        if (odk_array_append(a, odk_value_new_int(dev->rates[i])) < 0) {
            odk_value_free(a);
            return NULL;
        }
    return a;
}

static odk_value *device_props(const odk_audio_device *dev)
{
    odk_value *v = odk_value_new_dict();
    int e = v ? ODK_OK : ODK_E_NOMEM;
    if (e == ODK_OK)
        e = odk_dict_set_string(v, "UID", dev->uid);
    if (e == ODK_OK)
        e = odk_dict_set_string(v, "Name", dev->name);
    if (e == ODK_OK)
        e = odk_dict_set_string(v, "Manufacturer", dev->manufacturer);
    if (e == ODK_OK)
        e = odk_dict_set_string(v, "TransportType", dev->transport);
    if (e == ODK_OK)
        e = odk_dict_set_int(v, "ClockDomain", dev->clock_domain);
    if (e == ODK_OK)
        e = odk_dict_set_int(v, "ZeroTimestampPeriod", dev->period);
    if (e == ODK_OK)
        e = odk_dict_set_int(v, "SampleRate", dev->rate);
    if (e == ODK_OK)
        e = odk_dict_set(v, "AvailableSampleRates", rates_value(dev));
    if (e == ODK_OK)
        e = odk_dict_set_bool(v, "Running", dev->running);
    if (e == ODK_OK)
        e = odk_dict_set(v, "Streams", streams_value(dev));
    if (e == ODK_OK)
        e = odk_dict_set(v, "Controls", controls_value(dev));
    if (e < 0) {
        odk_value_free(v);
        return NULL;
    }
    return v;
}

/* Every change is one set-property: odkd tells every watching client. */
static int set_prop(odk_audio_device *dev, const char *key, odk_value *v)
{
    if (!v)
        return ODK_E_NOMEM;
    return odk_driver_set_node_property(dev->drv, dev->node, key, v);
}

/* The Streams property and each changed stream node's Format and
 * AvailableFormats. */
static int publish_streams(odk_audio_device *dev)
{
    int st = ODK_OK;
    for (size_t i = 0; i < dev->n_streams && st == ODK_OK; i++) {
        odk_value *v = stream_value(dev, i);
        if (!v)
            return ODK_E_NOMEM;
        odk_value *f = odk_value_copy(odk_dict_get(v, "Format"));
        odk_value *fs = odk_value_copy(odk_dict_get(v, "AvailableFormats"));
        odk_value_free(v);
        st = odk_driver_set_node_property(dev->drv, dev->streams[i].node, "AvailableFormats", fs);
        if (st == ODK_OK)
            st = odk_driver_set_node_property(dev->drv, dev->streams[i].node, "Format", f);
        else
            odk_value_free(f);
    }
    return st == ODK_OK ? set_prop(dev, "Streams", streams_value(dev)) : st;
}

/* ---- I/O ------------------------------------------------------------------ */

/* Positions restart at 0 once I/O stops, so an app can prefill an output
 * before the next start. */
static void reset_positions(odk_audio_device *dev)
{
    odk_audio_shm *s = dev->shm;
    for (size_t i = 0; i < dev->n_streams; i++) {
        STORE(s->streams[i].driver_pos, 0);
        STORE(s->streams[i].app_pos, 0);
        STORE(s->streams[i].app_active, 0);
    }
}

static void io_stop(odk_audio_device *dev)
{
    if (!dev->running)
        return;
    dev->ops->stop_io(dev->ctx, dev);
    dev->running = false;
    reset_positions(dev);
    __atomic_store_n(&dev->shm->state, ODK_AUDIO_STATE_STOPPED, __ATOMIC_RELEASE);
    if (!dev->dead)
        set_prop(dev, "Running", odk_value_new_bool(false));
}

static int io_start(odk_audio_device *dev)
{
    odk_audio_shm *s = dev->shm;
    for (size_t i = 0; i < dev->n_streams; i++)
        STORE(s->streams[i].xruns, 0);
    clock_begin(s);
    STORE(s->clock.sample_time, 0);
    STORE(s->clock.host_time_ns, now_ns());
    STORE(s->clock.generation, s->clock.generation + 1);
    clock_end(s);
    __atomic_store_n(&s->state, ODK_AUDIO_STATE_RUNNING, __ATOMIC_RELEASE);
    dev->running = true;
    int st = dev->ops->start_io(dev->ctx, dev);
    if (st != ODK_OK) {
        dev->running = false;
        __atomic_store_n(&s->state, ODK_AUDIO_STATE_STOPPED, __ATOMIC_RELEASE);
        odk_error("audio %s: the driver refused to start I/O: %s", dev->uid, odk_strerror(st));
        return st > 0 ? ODK_E_DRIVER : st;
    }
    set_prop(dev, "Running", odk_value_new_bool(true));
    return ODK_OK;
}

/* ---- changes ------------------------------------------------------------- */

static struct stream *stream_of(odk_audio_device *dev, uint32_t i)
{
    return dev && i < dev->n_streams ? &dev->streams[i] : NULL;
}

/* The first available format at rate, preferring want's channels and sample
 * format. */
static bool format_at(const struct stream *st, const uint32_t *rates, size_t n_rates,
                      uint32_t rate, odk_audio_format *want)
{
    odk_audio_format f = *want;
    f.rate = rate;
    if (audio_format_available(st->formats, st->n_formats, rates, n_rates, &f)) {
        *want = f;
        return true;
    }
    for (size_t k = 0; k < st->n_formats; k++) {
        f = st->formats[k];
        f.rate = rate;
        if (audio_format_available(st->formats, st->n_formats, rates, n_rates, &f)) {
            *want = f;
            return true;
        }
    }
    return false;
}

static int apply_format(odk_audio_device *dev, uint32_t i, const odk_audio_format *f)
{
    odk_audio_format fmts[ODK_AUDIO_MAX_STREAMS];
    for (size_t k = 0; k < dev->n_streams; k++) {
        fmts[k] = k == i ? *f : dev->streams[k].format;
        if (k != i && f->rate != dev->rate &&
            !format_at(&dev->streams[k], dev->rates, dev->n_rates, f->rate, &fmts[k]))
            return ODK_E_UNSUPPORTED; /* another stream has nothing at that rate */
    }
    bool rate_changed = f->rate != dev->rate;
    dev->rate = f->rate;
    for (size_t k = 0; k < dev->n_streams; k++)
        dev->streams[k].format = fmts[k];
    shm_geometry(dev);
    int st = ODK_OK;
    if (rate_changed)
        st = set_prop(dev, "SampleRate", odk_value_new_int(dev->rate));
    return st == ODK_OK ? publish_streams(dev) : st;
}

static int control_value_ok(const struct control *c, int64_t v)
{
    switch (c->kind) {
    case ODK_AUDIO_CONTROL_VOLUME:
        return v >= c->min && v <= c->max;
    case ODK_AUDIO_CONTROL_MUTE:
        return v == 0 || v == 1;
    default:
        for (size_t k = 0; k < c->n_items; k++)
            if ((int64_t)c->items[k].id == v)
                return true;
        return false;
    }
}

/* ---- the device node's user client ---------------------------------------- */

static int m_start(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    (void)drv, (void)call;
    struct client *cl = odk_user_client_ctx(uc);
    odk_audio_device *dev = cl->dev;
    if (dev->dead)
        return ODK_E_GONE;
    if (cl->started)
        return ODK_OK;
    if (dev->n_started == 0) {
        int st = io_start(dev);
        if (st < 0)
            return st;
    }
    dev->n_started++;
    cl->started = true;
    return ODK_OK;
}

static void client_stop(struct client *cl)
{
    if (!cl->started)
        return;
    cl->started = false;
    if (--cl->dev->n_started == 0)
        io_stop(cl->dev);
}

static int m_stop(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    (void)drv, (void)call;
    struct client *cl = odk_user_client_ctx(uc);
    if (cl->dev->dead)
        return ODK_E_GONE;
    if (!cl->started)
        return ODK_E_STATE;
    client_stop(cl);
    return ODK_OK;
}

static int m_set_format(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    (void)drv;
    struct client *cl = odk_user_client_ctx(uc);
    odk_audio_device *dev = cl->dev;
    const uint64_t *in = call->scalar_in;
    if (dev->dead)
        return ODK_E_GONE;
    struct stream *st = in[0] <= UINT32_MAX ? stream_of(dev, (uint32_t)in[0]) : NULL;
    if (!st)
        return ODK_E_INVALID;
    if (in[1] > UINT32_MAX || in[2] > UINT32_MAX || in[3] > UINT32_MAX)
        return ODK_E_UNSUPPORTED;
    odk_audio_format f = {(uint32_t)in[1], (uint32_t)in[2], (uint32_t)in[3]};
    if (!audio_format_available(st->formats, st->n_formats, dev->rates, dev->n_rates, &f))
        return ODK_E_UNSUPPORTED;
    if (f.channels == st->format.channels && f.sample_format == st->format.sample_format &&
        f.rate == st->format.rate)
        return ODK_OK; /* what it has: fine even while another app streams */
    if (dev->running)
        return ODK_E_BUSY;
    if (dev->ops->set_format) {
        int s = dev->ops->set_format(dev->ctx, dev, (uint32_t)in[0], &f);
        if (s != ODK_OK)
            return s > 0 ? ODK_E_DRIVER : s;
    }
    return apply_format(dev, (uint32_t)in[0], &f);
}

static int m_set_control(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    (void)drv;
    struct client *cl = odk_user_client_ctx(uc);
    odk_audio_device *dev = cl->dev;
    if (dev->dead)
        return ODK_E_GONE;
    if (call->scalar_in[0] >= dev->n_controls)
        return ODK_E_INVALID;
    uint32_t id = (uint32_t)call->scalar_in[0];
    int64_t v = (int64_t)call->scalar_in[1];
    if (!control_value_ok(&dev->controls[id], v))
        return ODK_E_INVALID;
    if (dev->ops->set_control) {
        int s = dev->ops->set_control(dev->ctx, dev, id, v);
        if (s != ODK_OK)
            return s > 0 ? ODK_E_DRIVER : s;
    }
    dev->controls[id].value = v;
    return set_prop(dev, "Controls", controls_value(dev));
}

static const odk_method node_methods[] = {
    [ODK_AUDIO_SEL_START_IO] = {m_start, 0, 0, 0, 0, 0, 0},
    [ODK_AUDIO_SEL_STOP_IO] = {m_stop, 0, 0, 0, 0, 0, 0},
    [ODK_AUDIO_SEL_SET_FORMAT] = {m_set_format, 4, 0, 0, 0, 0, 0},
    [ODK_AUDIO_SEL_SET_CONTROL] = {m_set_control, 2, 0, 0, 0, 0, 0},
};

static void device_free(odk_audio_device *dev);

static int uc_open(void *ctx, odk_user_client *uc, uint32_t type)
{
    (void)type;
    odk_audio_device *dev = ctx;
    if (dev->dead)
        return ODK_E_GONE;
    struct client *cl = calloc(1, sizeof *cl);
    if (!cl)
        return ODK_E_NOMEM;
    cl->dev = dev;
    odk_user_client_set_ctx(uc, cl);
    dev->n_clients++;
    return ODK_OK;
}

static void uc_close(void *ctx, odk_user_client *uc)
{
    odk_audio_device *dev = ctx;
    struct client *cl = odk_user_client_ctx(uc);
    if (!cl)
        return;
    if (!dev->dead)
        client_stop(cl); /* an app that closed or died stops its I/O */
    free(cl);
    odk_user_client_set_ctx(uc, NULL);
    if (--dev->n_clients == 0 && dev->dead)
        device_free(dev);
}

static int uc_memory(void *ctx, odk_user_client *uc, uint32_t type, odk_memory **mem)
{
    (void)uc;
    odk_audio_device *dev = ctx;
    if (type != ODK_AUDIO_MEMORY_SHARED)
        return ODK_E_NOT_FOUND;
    if (dev->dead)
        return ODK_E_GONE;
    *mem = odk_retain(dev->mem);
    return ODK_OK;
}

/* ---- create and destroy --------------------------------------------------- */

static char *dup_or(const char *s, const char *dflt)
{
    return strdup(s ? s : dflt);
}

static void device_free(odk_audio_device *dev)
{
    for (size_t i = 0; i < dev->n_streams; i++)
        free(dev->streams[i].formats);
    for (size_t i = 0; i < dev->n_controls; i++) {
        free(dev->controls[i].name);
        for (size_t k = 0; k < dev->controls[i].n_items; k++)
            free((char *)dev->controls[i].items[k].name);
        free(dev->controls[i].items);
    }
    odk_release(dev->mem);
    free(dev->uid);
    free(dev->name);
    free(dev->manufacturer);
    free(dev->transport);
    free(dev);
}

static int copy_desc(odk_audio_device *dev, const odk_audio_device_desc *d)
{
    dev->uid = strdup(d->uid);
    dev->name = strdup(d->name);
    dev->manufacturer = dup_or(d->manufacturer, "");
    dev->transport = dup_or(d->transport, "Virtual");
    if (!dev->uid || !dev->name || !dev->manufacturer || !dev->transport)
        return ODK_E_NOMEM;
    dev->clock_domain = d->clock_domain;
    dev->period = d->zero_timestamp_period;
    memcpy(dev->rates, d->rates, d->n_rates * sizeof *d->rates);
    dev->n_rates = d->n_rates;
    dev->rate = d->rate;
    for (size_t i = 0; i < d->n_streams; i++) {
        const odk_audio_stream_desc *s = &d->streams[i];
        struct stream *st = &dev->streams[i];
        dev->n_streams = i + 1;
        st->direction = s->direction;
        st->format = s->format;
        st->ring_frames = s->ring_frames;
        st->formats = malloc(s->n_formats * sizeof *s->formats);
        if (!st->formats)
            return ODK_E_NOMEM;
        memcpy(st->formats, s->formats, s->n_formats * sizeof *s->formats);
        st->n_formats = s->n_formats;
    }
    for (size_t i = 0; i < d->n_controls; i++) {
        const odk_audio_control_desc *c = &d->controls[i];
        struct control *ct = &dev->controls[i];
        dev->n_controls = i + 1;
        *ct = (struct control){.kind = c->kind, .scope = c->scope, .value = c->value,
                               .min = c->min, .max = c->max, .min_db = c->min_db,
                               .max_db = c->max_db};
        ct->name = dup_or(c->name, audio_control_kind_name(c->kind));
        if (!ct->name)
            return ODK_E_NOMEM;
        if (c->kind == ODK_AUDIO_CONTROL_SELECTOR) {
            ct->items = calloc(c->n_items, sizeof *ct->items);
            if (!ct->items)
                return ODK_E_NOMEM;
            for (size_t k = 0; k < c->n_items; k++) {
                ct->n_items = k + 1;
                ct->items[k].id = c->items[k].id;
                ct->items[k].name = dup_or(c->items[k].name, "");
                if (!ct->items[k].name)
                    return ODK_E_NOMEM;
            }
        }
    }
    return ODK_OK;
}

static int publish_stream_node(odk_audio_device *dev, size_t i)
{
    odk_value *args = odk_value_new_dict(), *reply = NULL;
    odk_value *props = stream_value(dev, i);
    if (!args || !props || odk_dict_set_string(args, "class", "IOUserAudioStream") < 0 ||
        odk_dict_set_int(args, "parent", (int64_t)dev->node) < 0) {
        odk_value_free(args);
        odk_value_free(props);
        return ODK_E_NOMEM;
    }
    int st = odk_dict_set(args, "properties", props);
    if (st == ODK_OK)
        st = host_link_request("publish-node", args, &reply); /* takes args */
    else
        odk_value_free(args);
    if (st == ODK_OK)
        dev->streams[i].node = (uint64_t)odk_dict_get_int(reply, "node", 0);
    odk_value_free(reply);
    return st;
}

static int claim_uid(const char *uid, char *err, size_t len)
{
    odk_value *args = odk_value_new_dict(), *reply = NULL;
    if (!args || odk_dict_set_string(args, "uid", uid) < 0) {
        odk_value_free(args);
        return ODK_E_NOMEM;
    }
    int st = host_link_request("audio-claim-uid", args, &reply);
    if (st == ODK_E_EXISTS && err && len)
        snprintf(err, len, "UID '%s' belongs to another device", uid);
    odk_value_free(reply);
    return st;
}

ODK_PUBLIC int odk_audio_device_create(odk_driver *drv, const odk_audio_device_desc *desc,
                                       const odk_audio_device_ops *ops, void *ctx,
                                       odk_audio_device **out, char *err, size_t err_len)
{
    char why[256] = "";
    if (err && err_len)
        err[0] = 0;
    if (!drv || !ops || !ops->start_io || !ops->stop_io || !out) {
        if (err && err_len)
            snprintf(err, err_len, "a driver, ops with start_io and stop_io, and out are needed");
        return ODK_E_INVALID;
    }
    int st = audio_device_check(desc, why, sizeof why);
    if (st < 0) {
        odk_error("audio: device '%s' refused: %s", desc && desc->uid ? desc->uid : "?", why);
        if (err && err_len)
            snprintf(err, err_len, "%s", why);
        return st;
    }
    st = claim_uid(desc->uid, err, err_len);
    if (st < 0) {
        odk_error("audio: device '%s' refused: %s", desc->uid, odk_strerror(st));
        return st;
    }
    odk_audio_device *dev = calloc(1, sizeof *dev);
    if (!dev)
        return ODK_E_NOMEM;
    dev->drv = drv;
    dev->ops = ops;
    dev->ctx = ctx;
    st = copy_desc(dev, desc);
    if (st == ODK_OK)
        st = shm_create(dev);
    if (st == ODK_OK)
        st = odk_driver_publish_node(drv, "IOUserAudioDevice", "IOService", device_props(dev),
                                     &dev->node);
    for (size_t i = 0; i < dev->n_streams && st == ODK_OK; i++)
        st = publish_stream_node(dev, i);
    node_handler h = {.node_id = dev->node,
                      .methods = node_methods,
                      .n_methods = sizeof node_methods / sizeof node_methods[0],
                      .open = uc_open,
                      .close = uc_close,
                      .memory = uc_memory,
                      .ctx = dev};
    if (st == ODK_OK)
        st = driver_set_node_handler(drv, &h);
    if (st < 0) {
        if (dev->node)
            odk_driver_withdraw_node(drv, dev->node);
        device_free(dev);
        if (err && err_len && !err[0])
            snprintf(err, err_len, "%s", odk_strerror(st));
        return st;
    }
    *out = dev;
    return ODK_OK;
}

ODK_PUBLIC void odk_audio_device_destroy(odk_audio_device *dev)
{
    if (!dev)
        return;
    io_stop(dev);
    __atomic_store_n(&dev->shm->state, ODK_AUDIO_STATE_GONE, __ATOMIC_RELEASE);
    /* Apps see their connection close (ODK_E_GONE) and the node leave.  The
     * close hooks run here, before dead is set, so none of them frees dev
     * under us. */
    driver_close_node_clients(dev->drv, dev->node);
    dev->dead = true;
    node_handler h = {.node_id = dev->node};
    driver_set_node_handler(dev->drv, &h);
    odk_driver_withdraw_node(dev->drv, dev->node);
    /* Connections still closing keep the handler's ctx: the last frees. */
    if (dev->n_clients == 0)
        device_free(dev);
}

/* ---- the data path ------------------------------------------------------- */

ODK_PUBLIC int odk_audio_device_publish_timestamp(odk_audio_device *dev, uint64_t sample_time,
                                                  uint64_t host_time_ns)
{
    if (!dev)
        return ODK_E_INVALID;
    if (__atomic_load_n(&dev->shm->state, __ATOMIC_ACQUIRE) != ODK_AUDIO_STATE_RUNNING)
        return ODK_E_STATE;
    clock_begin(dev->shm);
    STORE(dev->shm->clock.sample_time, sample_time);
    STORE(dev->shm->clock.host_time_ns, host_time_ns);
    clock_end(dev->shm);
    return ODK_OK;
}

ODK_PUBLIC int odk_audio_device_ring(odk_audio_device *dev, uint32_t stream, uint8_t **base,
                                     uint32_t *ring_frames, uint32_t *frame_bytes)
{
    struct stream *st = stream_of(dev, stream);
    if (!st)
        return ODK_E_INVALID;
    if (base)
        *base = dev->base + st->ring_offset;
    if (ring_frames)
        *ring_frames = st->ring_frames;
    if (frame_bytes)
        *frame_bytes = odk_audio_frame_bytes(&st->format);
    return ODK_OK;
}

ODK_PUBLIC uint64_t odk_audio_device_app_position(odk_audio_device *dev, uint32_t stream,
                                                  bool *active)
{
    if (active)
        *active = false;
    if (!stream_of(dev, stream))
        return 0;
    odk_audio_shm_stream *s = &dev->shm->streams[stream];
    if (active)
        *active = __atomic_load_n(&s->app_active, __ATOMIC_ACQUIRE) == 1;
    return __atomic_load_n(&s->app_pos, __ATOMIC_ACQUIRE);
}

ODK_PUBLIC int odk_audio_device_set_position(odk_audio_device *dev, uint32_t stream, uint64_t pos)
{
    if (!stream_of(dev, stream))
        return ODK_E_INVALID;
    __atomic_store_n(&dev->shm->streams[stream].driver_pos, pos, __ATOMIC_RELEASE);
    return ODK_OK;
}

ODK_PUBLIC void odk_audio_device_count_xrun(odk_audio_device *dev, uint32_t stream)
{
    if (stream_of(dev, stream))
        __atomic_fetch_add(&dev->shm->streams[stream].xruns, 1, __ATOMIC_RELAXED);
}

ODK_PUBLIC int odk_audio_device_format(odk_audio_device *dev, uint32_t stream,
                                       odk_audio_format *format)
{
    struct stream *st = stream_of(dev, stream);
    if (!st || !format)
        return ODK_E_INVALID;
    *format = st->format;
    return ODK_OK;
}

/* ---- run-time changes ---------------------------------------------------- */

ODK_PUBLIC int odk_audio_device_set_rates(odk_audio_device *dev, const uint32_t *rates,
                                          size_t n_rates, uint32_t rate)
{
    char why[200];
    if (!dev)
        return ODK_E_INVALID;
    int st = audio_rates_check(rates, n_rates, rate, why, sizeof why);
    if (st < 0) {
        odk_error("audio %s: rates refused: %s", dev->uid, why);
        return st;
    }
    if (dev->running)
        return ODK_E_STATE;
    /* Each stream keeps the entries valid at the new rates. */
    odk_audio_format *kept[ODK_AUDIO_MAX_STREAMS] = {0};
    size_t n_kept[ODK_AUDIO_MAX_STREAMS] = {0};
    odk_audio_format cur[ODK_AUDIO_MAX_STREAMS];
    st = ODK_OK;
    for (size_t i = 0; i < dev->n_streams && st == ODK_OK; i++) {
        struct stream *s = &dev->streams[i];
        kept[i] = malloc(s->n_formats * sizeof *kept[i]);
        if (!kept[i]) {
            st = ODK_E_NOMEM;
            break;
        }
        for (size_t k = 0; k < s->n_formats; k++) {
            bool ok = s->formats[k].rate == 0;
            for (size_t r = 0; r < n_rates && !ok; r++)
                ok = rates[r] == s->formats[k].rate;
            if (ok)
                kept[i][n_kept[i]++] = s->formats[k];
        }
        struct stream tmp = *s;
        tmp.formats = kept[i];
        tmp.n_formats = n_kept[i];
        cur[i] = s->format;
        if (!format_at(&tmp, rates, n_rates, rate, &cur[i])) {
            odk_error("audio %s: stream %zu has no format at %u Hz", dev->uid, i, rate);
            st = ODK_E_INVALID;
        }
    }
    if (st < 0) {
        for (size_t i = 0; i < dev->n_streams; i++)
            free(kept[i]);
        return st;
    }
    for (size_t i = 0; i < dev->n_streams; i++) {
        free(dev->streams[i].formats);
        dev->streams[i].formats = kept[i];
        dev->streams[i].n_formats = n_kept[i];
        dev->streams[i].format = cur[i];
    }
    memcpy(dev->rates, rates, n_rates * sizeof *rates);
    dev->n_rates = n_rates;
    dev->rate = rate;
    shm_geometry(dev);
    st = set_prop(dev, "AvailableSampleRates", rates_value(dev));
    if (st == ODK_OK)
        st = set_prop(dev, "SampleRate", odk_value_new_int(rate));
    return st == ODK_OK ? publish_streams(dev) : st;
}

ODK_PUBLIC int odk_audio_device_set_formats(odk_audio_device *dev, uint32_t stream,
                                            const odk_audio_format *formats, size_t n_formats,
                                            const odk_audio_format *format)
{
    struct stream *s = stream_of(dev, stream);
    if (!s || !format)
        return ODK_E_INVALID;
    odk_audio_stream_desc d = {s->direction, formats, n_formats, *format, s->ring_frames};
    char why[200];
    int st = audio_stream_check(&d, dev->rates, dev->n_rates, dev->rate, dev->period, why,
                                sizeof why);
    if (st < 0) {
        odk_error("audio %s: stream %u's formats refused: %s", dev->uid, stream, why);
        return st;
    }
    if (dev->running)
        return ODK_E_STATE;
    odk_audio_format *copy = malloc(n_formats * sizeof *copy);
    if (!copy)
        return ODK_E_NOMEM;
    memcpy(copy, formats, n_formats * sizeof *copy);
    free(s->formats);
    s->formats = copy;
    s->n_formats = n_formats;
    s->format = *format;
    shm_geometry(dev);
    return publish_streams(dev);
}

ODK_PUBLIC int odk_audio_device_set_control(odk_audio_device *dev, uint32_t control, int64_t value)
{
    if (!dev || control >= dev->n_controls || !control_value_ok(&dev->controls[control], value))
        return ODK_E_INVALID;
    dev->controls[control].value = value;
    return set_prop(dev, "Controls", controls_value(dev));
}

ODK_PUBLIC int64_t odk_audio_device_control(const odk_audio_device *dev, uint32_t control)
{
    return dev && control < dev->n_controls ? dev->controls[control].value : 0;
}

ODK_PUBLIC uint64_t odk_audio_device_node_id(const odk_audio_device *dev)
{
    return dev ? dev->node : 0;
}

ODK_PUBLIC const char *odk_audio_device_uid(const odk_audio_device *dev)
{
    return dev ? dev->uid : NULL;
}

ODK_PUBLIC bool odk_audio_device_running(const odk_audio_device *dev)
{
    return dev && dev->running;
}

odk_driver *audio_device_driver(const odk_audio_device *dev)
{
    return dev->drv;
}

uint32_t audio_device_period(const odk_audio_device *dev)
{
    return dev->period;
}
