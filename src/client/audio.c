/* SPDX-License-Identifier: MIT */
/* The audio client API (odk/audio_client.h): a device's properties through
 * a watch on its IOUserAudioDevice node (every change is an odkd "property"
 * event, turned here into one event per changed key), its controls through
 * a user client of the node, and its clock and rings through the memory the
 * driver's host shares (no odkd, no call on the data path). */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "odk/audio_client.h"
#include "odk/client.h"

#define MAX_QUEUED 256 /* changed keys waiting for odk_audio_read_event */
#define GONE_CHECK_MS 250

struct odk_audio {
    odk_client *client;
    odk_connection *conn;
    odk_buffer *mem;
    odk_audio_shm *shm;
    uint64_t len;
    uint64_t node;
    char *uid;
    odk_value *props;
    uint32_t watch;
    bool started;
    bool gone;          /* the device left or its driver died */
    bool gone_reported; /* the GONE event was handed out */
    char (*queue)[64];  /* changed keys, in order */
    size_t q_head, q_len;
};

/* ---- finding -------------------------------------------------------------- */

static odk_value *matching_for(const char *cls, const char *key, const char *val)
{
    odk_value *m = odk_value_new_dict();
    if (!m || odk_dict_set_string(m, "IOProviderClass", cls) < 0)
        goto fail;
    if (key) {
        odk_value *pm = odk_value_new_dict();
        if (!pm || odk_dict_set_string(pm, key, val) < 0 ||
            odk_dict_set(m, "IOPropertyMatch", pm) < 0) {
            odk_value_free(pm);
            goto fail;
        }
    }
    return m;
fail:
    odk_value_free(m);
    return NULL;
}

static int find(odk_client *c, const char *cls, const char *key, const char *val,
                odk_value **nodes)
{
    odk_value *m = matching_for(cls, key, val);
    if (!m)
        return ODK_E_NOMEM;
    int st = odk_find_services(c, m, nodes);
    odk_value_free(m);
    return st;
}

ODK_PUBLIC int odk_audio_list(const char *state_dir, odk_value **devices)
{
    if (!devices)
        return ODK_E_INVALID;
    *devices = NULL;
    odk_client *c = NULL;
    int st = odk_client_open(state_dir, &c);
    odk_value *devs = NULL, *streams = NULL, *out = odk_value_new_array();
    if (st == ODK_OK && !out)
        st = ODK_E_NOMEM;
    if (st == ODK_OK)
        st = find(c, "IOUserAudioDevice", NULL, NULL, &devs);
    if (st == ODK_OK)
        st = find(c, "IOUserAudioStream", NULL, NULL, &streams);
    for (size_t i = 0; st == ODK_OK && i < odk_array_count(devs); i++) {
        const odk_value *n = odk_array_get(devs, i);
        const odk_value *props = odk_dict_get(n, "properties");
        const char *uid = odk_dict_get_string(props, "UID", "");
        odk_value *d = odk_value_new_dict(), *ss = odk_value_new_array();
        st = d && ss ? ODK_OK : ODK_E_NOMEM;
        for (size_t k = 0; st == ODK_OK && k < odk_array_count(streams); k++) {
            const odk_value *sp = odk_dict_get(odk_array_get(streams, k), "properties");
            if (strcmp(odk_dict_get_string(sp, "DeviceUID", ""), uid) == 0)
                st = odk_array_append(ss, odk_value_copy(sp));
        }
        if (st == ODK_OK)
            st = odk_dict_set_int(d, "id", odk_dict_get_int(n, "id", 0));
        if (st == ODK_OK)
            st = odk_dict_set(d, "properties", odk_value_copy(props));
        if (st == ODK_OK) {
            st = odk_dict_set(d, "streams", ss);
            ss = NULL;
        }
        if (st == ODK_OK) {
            st = odk_array_append(out, d);
            d = NULL;
        }
        odk_value_free(d);
        odk_value_free(ss);
    }
    odk_value_free(devs);
    odk_value_free(streams);
    odk_client_close(c);
    if (st < 0) {
        odk_value_free(out);
        return st;
    }
    *devices = out;
    return ODK_OK;
}

/* ---- events --------------------------------------------------------------- */

static void queue_key(odk_audio *a, const char *key)
{
    if (a->q_len == MAX_QUEUED) { /* the app does not read: keep the newest */
        a->q_head = (a->q_head + 1) % MAX_QUEUED;
        a->q_len--;
    }
    char *slot = a->queue[(a->q_head + a->q_len) % MAX_QUEUED];
    snprintf(slot, 64, "%s", key);
    a->q_len++;
}

static void on_event(void *ctx, const char *event, const odk_value *node)
{
    odk_audio *a = ctx;
    if ((uint64_t)odk_dict_get_int(node, "id", 0) != a->node)
        return; /* another device with the UID (a restarted driver's) */
    if (strcmp(event, "terminated") == 0) {
        a->gone = true;
        return;
    }
    if (strcmp(event, "property") != 0)
        return;
    const odk_value *props = odk_dict_get(node, "properties");
    if (!props || odk_value_type(props) != ODK_TYPE_DICT)
        return;
    for (size_t i = 0; i < odk_dict_count(props); i++) {
        const char *key = odk_dict_key_at(props, i);
        const odk_value *old = a->props ? odk_dict_get(a->props, key) : NULL;
        if (!old || !odk_value_equal(old, odk_dict_value_at(props, i)))
            queue_key(a, key);
    }
    odk_value *copy = odk_value_copy(props);
    if (copy) {
        odk_value_free(a->props);
        a->props = copy;
    }
}

/* Whether the driver's side of the user client hung up. */
static bool conn_hung_up(odk_audio *a)
{
    struct pollfd p = {.fd = odk_connection_fd(a->conn), .events = POLLIN};
    return poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR));
}

static void mark_gone(odk_audio *a)
{
    a->gone = true;
    if (a->shm)
        __atomic_store_n(&a->shm->state, ODK_AUDIO_STATE_GONE, __ATOMIC_RELEASE);
}

ODK_PUBLIC int odk_audio_event_fd(const odk_audio *a)
{
    return a ? odk_client_fd(a->client) : -1;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

ODK_PUBLIC int odk_audio_read_event(odk_audio *a, odk_audio_event *ev, int timeout_ms)
{
    if (!a || !ev)
        return ODK_E_INVALID;
    uint64_t deadline = timeout_ms > 0 ? mono_ms() + (uint64_t)timeout_ms : 0;
    for (;;) {
        if (a->q_len) {
            memset(ev, 0, sizeof *ev);
            ev->kind = ODK_AUDIO_EVENT_PROPERTY;
            memcpy(ev->key, a->queue[a->q_head], sizeof ev->key);
            a->q_head = (a->q_head + 1) % MAX_QUEUED;
            a->q_len--;
            return ODK_OK;
        }
        if (a->gone || conn_hung_up(a)) {
            mark_gone(a);
            if (a->gone_reported)
                return ODK_E_GONE;
            a->gone_reported = true;
            memset(ev, 0, sizeof *ev);
            ev->kind = ODK_AUDIO_EVENT_GONE;
            return ODK_OK;
        }
        int wait = GONE_CHECK_MS;
        if (timeout_ms == 0) {
            wait = 0;
        } else if (timeout_ms > 0) {
            uint64_t now = mono_ms();
            if (now >= deadline)
                wait = 0;
            else if (deadline - now < (uint64_t)wait)
                wait = (int)(deadline - now);
        }
        int n = odk_client_dispatch(a->client, wait);
        if (n == ODK_E_DISCONNECTED) {
            mark_gone(a); /* odkd itself went away */
            continue;
        }
        if (n < 0)
            return n;
        if (n == 0 && !a->q_len && !a->gone && wait == 0 && !conn_hung_up(a))
            return timeout_ms == 0 ? ODK_E_AGAIN : ODK_E_TIMEOUT;
    }
}

/* ---- opening -------------------------------------------------------------- */

static int map_shared(odk_audio *a)
{
    int st = odk_connection_map_memory(a->conn, ODK_AUDIO_MEMORY_SHARED, &a->mem);
    if (st < 0)
        return st;
    a->len = odk_buffer_length(a->mem);
    a->shm = odk_buffer_data(a->mem);
    if (a->len < sizeof *a->shm || a->shm->magic != ODK_AUDIO_SHM_MAGIC ||
        a->shm->version != ODK_AUDIO_SHM_VERSION || a->shm->n_streams > ODK_AUDIO_MAX_STREAMS)
        return ODK_E_PROTOCOL;
    return ODK_OK;
}

ODK_PUBLIC int odk_audio_open(const char *state_dir, const char *uid, odk_audio **out)
{
    if (!out)
        return ODK_E_INVALID;
    *out = NULL;
    odk_audio *a = calloc(1, sizeof *a);
    if (!a)
        return ODK_E_NOMEM;
    a->queue = calloc(MAX_QUEUED, sizeof *a->queue);
    int st = a->queue ? odk_client_open(state_dir, &a->client) : ODK_E_NOMEM;
    odk_value *nodes = NULL;
    bool by_uid = uid && *uid;
    if (st == ODK_OK)
        st = find(a->client, "IOUserAudioDevice", by_uid ? "UID" : NULL, uid, &nodes);
    if (st == ODK_OK && odk_array_count(nodes) == 0)
        st = ODK_E_NOT_FOUND;
    if (st == ODK_OK) {
        /* The default device: the first in registry order (lowest id). */
        const odk_value *best = NULL;
        for (size_t i = 0; i < odk_array_count(nodes); i++) {
            const odk_value *n = odk_array_get(nodes, i);
            if (!best || odk_dict_get_int(n, "id", 0) < odk_dict_get_int(best, "id", 0))
                best = n;
        }
        a->node = (uint64_t)odk_dict_get_int(best, "id", 0);
        a->props = odk_value_copy(odk_dict_get(best, "properties"));
        a->uid = strdup(odk_dict_get_string(a->props, "UID", ""));
        if (!a->props || !a->uid)
            st = ODK_E_NOMEM;
    }
    odk_value_free(nodes);
    if (st == ODK_OK) {
        odk_value *m = matching_for("IOUserAudioDevice", "UID", a->uid);
        st = m ? odk_watch_services(a->client, m, on_event, a, &a->watch) : ODK_E_NOMEM;
        odk_value_free(m);
    }
    if (st == ODK_OK)
        st = odk_connection_open(a->client, a->node, 0, &a->conn);
    if (st == ODK_OK)
        st = map_shared(a);
    if (st < 0) {
        odk_audio_close(a);
        return st;
    }
    *out = a;
    return ODK_OK;
}

ODK_PUBLIC void odk_audio_close(odk_audio *a)
{
    if (!a)
        return;
    if (a->started && !a->gone)
        odk_connection_call(a->conn, ODK_AUDIO_SEL_STOP_IO, NULL, 0, NULL, 0, NULL, NULL, NULL,
                            NULL);
    odk_buffer_free(a->mem);
    odk_connection_close(a->conn);
    odk_client_close(a->client);
    odk_value_free(a->props);
    free(a->uid);
    free(a->queue);
    free(a);
}

/* ---- properties ----------------------------------------------------------- */

ODK_PUBLIC const odk_value *odk_audio_properties(const odk_audio *a)
{
    return a ? a->props : NULL;
}

ODK_PUBLIC const char *odk_audio_uid(const odk_audio *a)
{
    return a ? a->uid : NULL;
}

ODK_PUBLIC uint64_t odk_audio_node_id(const odk_audio *a)
{
    return a ? a->node : 0;
}

ODK_PUBLIC uint32_t odk_audio_rate(const odk_audio *a)
{
    return a ? (uint32_t)odk_dict_get_int(a->props, "SampleRate", 0) : 0;
}

ODK_PUBLIC int odk_audio_rates(const odk_audio *a, uint32_t *rates, size_t cap, size_t *n)
{
    if (!a || !n)
        return ODK_E_INVALID;
    const odk_value *arr = odk_dict_get(a->props, "AvailableSampleRates");
    *n = odk_array_count(arr);
    for (size_t i = 0; i < *n && i < cap && rates; i++)
        rates[i] = (uint32_t)odk_value_int(odk_array_get(arr, i));
    return ODK_OK;
}

ODK_PUBLIC uint32_t odk_audio_stream_count(const odk_audio *a)
{
    return a ? (uint32_t)odk_array_count(odk_dict_get(a->props, "Streams")) : 0;
}

static const odk_value *stream_props(const odk_audio *a, uint32_t i)
{
    const odk_value *arr = a ? odk_dict_get(a->props, "Streams") : NULL;
    return i < odk_array_count(arr) ? odk_array_get(arr, i) : NULL;
}

static uint32_t sample_format_of(const char *name)
{
    static const char *names[] = {NULL, "S16_LE", "S24_3LE", "S32_LE", "FLOAT_LE"};
    for (uint32_t i = 1; i < 5 && name; i++)
        if (strcmp(names[i], name) == 0)
            return i;
    return 0;
}

static odk_audio_format format_of(const odk_value *v)
{
    return (odk_audio_format){
        (uint32_t)odk_dict_get_int(v, "Channels", 0),
        sample_format_of(odk_dict_get_string(v, "SampleFormat", NULL)),
        (uint32_t)odk_dict_get_int(v, "SampleRate", 0),
    };
}

ODK_PUBLIC int odk_audio_stream_format(const odk_audio *a, uint32_t stream, uint32_t *direction,
                                       odk_audio_format *format)
{
    const odk_value *s = stream_props(a, stream);
    if (!s)
        return ODK_E_INVALID;
    if (direction)
        *direction = strcmp(odk_dict_get_string(s, "Direction", ""), "output") == 0
                         ? ODK_AUDIO_OUTPUT
                         : ODK_AUDIO_INPUT;
    if (format)
        *format = format_of(odk_dict_get(s, "Format"));
    return ODK_OK;
}

ODK_PUBLIC int odk_audio_stream_formats(const odk_audio *a, uint32_t stream,
                                        odk_audio_format *formats, size_t cap, size_t *n)
{
    const odk_value *s = stream_props(a, stream);
    if (!s || !n)
        return ODK_E_INVALID;
    const odk_value *arr = odk_dict_get(s, "AvailableFormats");
    *n = odk_array_count(arr);
    for (size_t i = 0; i < *n && i < cap && formats; i++)
        formats[i] = format_of(odk_array_get(arr, i));
    return ODK_OK;
}

ODK_PUBLIC int odk_audio_find_stream(const odk_audio *a, uint32_t direction, uint32_t *stream)
{
    uint32_t n = odk_audio_stream_count(a), dir = 0;
    for (uint32_t i = 0; i < n; i++)
        if (odk_audio_stream_format(a, i, &dir, NULL) == ODK_OK && dir == direction) {
            if (stream)
                *stream = i;
            return ODK_OK;
        }
    return ODK_E_NOT_FOUND;
}

ODK_PUBLIC bool odk_audio_format_available(const odk_audio *a, uint32_t stream,
                                           const odk_audio_format *f)
{
    const odk_value *s = stream_props(a, stream);
    if (!s || !f || f->rate == 0)
        return false;
    bool rate_ok = false;
    const odk_value *rates = odk_dict_get(a->props, "AvailableSampleRates");
    for (size_t i = 0; i < odk_array_count(rates); i++)
        rate_ok |= (uint32_t)odk_value_int(odk_array_get(rates, i)) == f->rate;
    if (!rate_ok)
        return false;
    const odk_value *arr = odk_dict_get(s, "AvailableFormats");
    for (size_t i = 0; i < odk_array_count(arr); i++) {
        odk_audio_format e = format_of(odk_array_get(arr, i));
        if (e.channels == f->channels && e.sample_format == f->sample_format &&
            (e.rate == 0 || e.rate == f->rate))
            return true;
    }
    return false;
}

/* ---- calls ---------------------------------------------------------------- */

static int call(odk_audio *a, uint32_t sel, const uint64_t *in, uint32_t n_in)
{
    if (a->gone)
        return ODK_E_GONE;
    int st = odk_connection_call(a->conn, sel, in, n_in, NULL, 0, NULL, NULL, NULL, NULL);
    if (st == ODK_E_GONE)
        mark_gone(a);
    return st;
}

ODK_PUBLIC int odk_audio_set_format(odk_audio *a, uint32_t stream, const odk_audio_format *f)
{
    if (!a || !f)
        return ODK_E_INVALID;
    uint64_t in[4] = {stream, f->channels, f->sample_format, f->rate};
    return call(a, ODK_AUDIO_SEL_SET_FORMAT, in, 4);
}

ODK_PUBLIC int odk_audio_set_control(odk_audio *a, uint32_t control, int64_t value)
{
    if (!a)
        return ODK_E_INVALID;
    uint64_t in[2] = {control, (uint64_t)value};
    return call(a, ODK_AUDIO_SEL_SET_CONTROL, in, 2);
}

ODK_PUBLIC int odk_audio_start(odk_audio *a)
{
    if (!a)
        return ODK_E_INVALID;
    int st = call(a, ODK_AUDIO_SEL_START_IO, NULL, 0);
    if (st == ODK_OK)
        a->started = true;
    return st;
}

ODK_PUBLIC int odk_audio_stop(odk_audio *a)
{
    if (!a)
        return ODK_E_INVALID;
    if (!a->started)
        return ODK_E_STATE;
    int st = call(a, ODK_AUDIO_SEL_STOP_IO, NULL, 0);
    if (st == ODK_OK)
        a->started = false;
    return st;
}

/* ---- the data path -------------------------------------------------------- */

#define LOAD(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

ODK_PUBLIC odk_audio_shm *odk_audio_shared(odk_audio *a)
{
    return a ? a->shm : NULL;
}

ODK_PUBLIC int odk_audio_ring(odk_audio *a, uint32_t stream, uint8_t **base,
                              uint32_t *ring_frames, uint32_t *frame_bytes)
{
    if (!a || stream >= a->shm->n_streams || stream >= ODK_AUDIO_MAX_STREAMS)
        return ODK_E_INVALID;
    odk_audio_shm_stream *s = &a->shm->streams[stream];
    uint64_t off = LOAD(s->ring_offset), bytes = LOAD(s->ring_bytes);
    uint32_t frames = LOAD(s->ring_frames), fb = LOAD(s->frame_bytes);
    /* The driver's numbers are checked before the app trusts them. */
    if (off > a->len || bytes > a->len - off || fb == 0 || frames == 0 ||
        (uint64_t)frames * fb > bytes)
        return ODK_E_PROTOCOL;
    if (base)
        *base = (uint8_t *)a->shm + off;
    if (ring_frames)
        *ring_frames = frames;
    if (frame_bytes)
        *frame_bytes = fb;
    return ODK_OK;
}

ODK_PUBLIC int odk_audio_get_timestamp(odk_audio *a, odk_audio_timestamp *ts)
{
    if (!a || !ts)
        return ODK_E_INVALID;
    odk_audio_shm_clock *c = &a->shm->clock;
    for (int tries = 0; tries < 1000; tries++) {
        uint32_t s1 = __atomic_load_n(&c->seq, __ATOMIC_ACQUIRE);
        if (s1 & 1)
            continue;
        ts->sample_time = LOAD(c->sample_time);
        ts->host_time_ns = LOAD(c->host_time_ns);
        ts->rate = LOAD(c->rate);
        ts->generation = LOAD(c->generation);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&c->seq, __ATOMIC_RELAXED) == s1) {
            ts->state = odk_audio_state(a);
            return ODK_OK;
        }
    }
    return ODK_E_AGAIN;
}

ODK_PUBLIC uint64_t odk_audio_driver_position(odk_audio *a, uint32_t stream)
{
    if (!a || stream >= a->shm->n_streams || stream >= ODK_AUDIO_MAX_STREAMS)
        return 0;
    return __atomic_load_n(&a->shm->streams[stream].driver_pos, __ATOMIC_ACQUIRE);
}

ODK_PUBLIC int odk_audio_set_app_position(odk_audio *a, uint32_t stream, uint64_t pos,
                                          bool active)
{
    if (!a || stream >= a->shm->n_streams || stream >= ODK_AUDIO_MAX_STREAMS)
        return ODK_E_INVALID;
    odk_audio_shm_stream *s = &a->shm->streams[stream];
    __atomic_store_n(&s->app_pos, pos, __ATOMIC_RELEASE);
    __atomic_store_n(&s->app_active, active ? 1u : 0u, __ATOMIC_RELEASE);
    return ODK_OK;
}

ODK_PUBLIC uint32_t odk_audio_state(odk_audio *a)
{
    if (!a)
        return ODK_AUDIO_STATE_GONE;
    if (!a->gone && conn_hung_up(a))
        mark_gone(a);
    return a->gone ? ODK_AUDIO_STATE_GONE : __atomic_load_n(&a->shm->state, __ATOMIC_ACQUIRE);
}

/* Copies n frames between buf and the ring at frame position pos. */
static void ring_copy(uint8_t *ring, uint32_t frames, uint32_t fb, uint64_t pos, uint8_t *buf,
                      uint32_t n, bool to_ring)
{
    uint32_t at = (uint32_t)(pos % frames);
    uint32_t first = n < frames - at ? n : frames - at;
    uint8_t *r1 = ring + (size_t)at * fb;
    size_t b1 = (size_t)first * fb, b2 = (size_t)(n - first) * fb;
    if (to_ring) {
        memcpy(r1, buf, b1);
        memcpy(ring, buf + b1, b2);
    } else {
        memcpy(buf, r1, b1);
        memcpy(buf + b1, ring, b2);
    }
}

static int stream_ring(odk_audio *a, uint32_t stream, uint32_t direction, uint32_t n,
                       uint8_t **ring, uint32_t *frames, uint32_t *fb)
{
    int st = odk_audio_ring(a, stream, ring, frames, fb);
    if (st < 0)
        return st;
    if (__atomic_load_n(&a->shm->streams[stream].direction, __ATOMIC_RELAXED) != direction ||
        n > *frames)
        return ODK_E_INVALID;
    return ODK_OK;
}

ODK_PUBLIC int odk_audio_write_frames(odk_audio *a, uint32_t stream, uint64_t pos,
                                      const void *src, uint32_t n)
{
    uint8_t *ring;
    uint32_t frames, fb;
    if (!src && n)
        return ODK_E_INVALID;
    int st = stream_ring(a, stream, ODK_AUDIO_OUTPUT, n, &ring, &frames, &fb);
    if (st < 0)
        return st;
    if (pos + n > odk_audio_driver_position(a, stream) + frames)
        return ODK_E_AGAIN;
    ring_copy(ring, frames, fb, pos, (uint8_t *)src, n, true);
    return odk_audio_set_app_position(a, stream, pos + n, true);
}

ODK_PUBLIC int odk_audio_read_frames(odk_audio *a, uint32_t stream, uint64_t pos, void *dst,
                                     uint32_t n)
{
    uint8_t *ring;
    uint32_t frames, fb;
    if (!dst && n)
        return ODK_E_INVALID;
    int st = stream_ring(a, stream, ODK_AUDIO_INPUT, n, &ring, &frames, &fb);
    if (st < 0)
        return st;
    uint64_t dp = odk_audio_driver_position(a, stream);
    if (pos + n > dp)
        return ODK_E_AGAIN;
    if (dp - pos > frames)
        return ODK_E_OVERRUN;
    ring_copy(ring, frames, fb, pos, dst, n, false);
    /* The driver may have overwritten them while we copied. */
    if (odk_audio_driver_position(a, stream) - pos > frames)
        return ODK_E_OVERRUN;
    return odk_audio_set_app_position(a, stream, pos + n, true);
}
