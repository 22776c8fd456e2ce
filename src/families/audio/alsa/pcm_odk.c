/* SPDX-License-Identifier: MIT */
/* The odk ALSA PCM plugin (libasound's external I/O plugin API): every
 * ALSA application opens an odk audio device as `odk:UID` (or `odk`, the
 * first device that has a stream of the asked direction).
 *
 * Samples go straight between the application's buffer and the stream's
 * ring in the device's shared memory (odk/audio_types.h): the transfer
 * callback copies into or out of the ring, nothing passes through odkd or
 * a call.  Positions come from the device: the clock's zero timestamps
 * (playback: how far the converter is) and the driver's published
 * driver_pos (capture: what has been written).
 *
 * ALSA frame 0 of a run is device frame `base`.  Playback frames go
 * straight into the ring, except those the ring cannot take yet, which
 * wait in a staging FIFO of the plugin's: before start (the device clock
 * runs on, and where frame 0 lands is known only at start: base = the
 * device position + one period), and when the application's ALSA buffer is
 * longer than the ring holds ahead of the driver (the ring's length is
 * fixed in frames; ALSA can only bound the buffer in bytes).  Capture
 * starts at the driver's current driver_pos and reads straight from the
 * ring; it is an xrun once the application is a whole buffer behind, or
 * the ring's length less one driver period.
 *
 * The poll descriptors are a timerfd that fires once a period while
 * running and the handle's event descriptor (odk_audio_event_fd), which
 * wakes the application when the device is withdrawn or its driver dies;
 * then every call answers -ENODEV and the PCM is DISCONNECTED.
 */
#include <alsa/asoundlib.h>
#include <alsa/pcm_external.h>
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "odk/audio_client.h"

typedef struct odk_pcm {
    snd_pcm_ioplug_t io;
    odk_audio *a;
    uint32_t stream; /* index of our stream in the device */
    int timer_fd;
    /* The stream in the shared memory, and its ring as of hw_params. */
    volatile odk_audio_shm_stream *st;
    uint8_t *ring;
    uint32_t ring_frames;
    uint32_t frame_bytes;
    uint64_t chunk; /* the driver's period (frames between zero timestamps) */
    /* The run. */
    bool io_started;    /* we asked the device to start I/O */
    bool running;       /* base is valid, frames go to the ring */
    uint64_t generation; /* of the device clock when the run started */
    uint64_t base;      /* device frame of ALSA frame 0 */
    uint64_t app_frames; /* frames the application wrote / read since prepare */
    uint64_t written;   /* playback: of those, frames placed in the ring */
    uint8_t *stage;     /* playback: frames [written, app_frames), a FIFO of */
    snd_pcm_uframes_t stage_len; /* stage_len frames: frame f at slot f % stage_len */
    snd_pcm_uframes_t avail_min;
    int gone;           /* 0, or the negative errno every call answers */
    bool debug;         /* $ODK_ALSA_DEBUG: say why at every xrun */
    uint64_t started_ns;
} odk_pcm;

/* An odk status as the negative errno ALSA callers expect. */
static int errno_of(int status)
{
    switch (status) {
    case ODK_OK:
        return 0;
    case ODK_E_GONE:
    case ODK_E_DISCONNECTED:
        return -ENODEV;
    case ODK_E_NOT_FOUND:
        return -ENOENT;
    case ODK_E_ACCESS:
        return -EACCES;
    case ODK_E_BUSY:
    case ODK_E_STATE:
        return -EBUSY;
    case ODK_E_INVALID:
    case ODK_E_UNSUPPORTED:
        return -EINVAL;
    case ODK_E_NOMEM:
        return -ENOMEM;
    default:
        return -EIO;
    }
}

#define UID(p) odk_audio_uid((p)->a)

/* ---- the device clock ---------------------------------------------------- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The device frame at the converter now, from the last zero timestamp.
 * false while the clock has not started (no timestamp yet). */
static bool clock_position(odk_pcm *p, uint64_t *pos, uint64_t *generation)
{
    odk_audio_timestamp ts;
    int r = ODK_E_AGAIN;
    for (int tries = 0; tries < 100 && r == ODK_E_AGAIN; tries++)
        r = odk_audio_get_timestamp(p->a, &ts);
    if (r != ODK_OK || ts.rate == 0 || ts.state != ODK_AUDIO_STATE_RUNNING)
        return false;
    uint64_t now = now_ns();
    uint64_t pos_now = ts.sample_time;
    if (now > ts.host_time_ns)
        pos_now += (uint64_t)((unsigned __int128)(now - ts.host_time_ns) * ts.rate / 1000000000u);
    *pos = pos_now;
    if (generation)
        *generation = ts.generation;
    return true;
}

static uint64_t load64(volatile uint64_t *v)
{
    return __atomic_load_n(v, __ATOMIC_ACQUIRE);
}

static void store64(volatile uint64_t *v, uint64_t x)
{
    __atomic_store_n(v, x, __ATOMIC_RELEASE);
}

static void store32(volatile uint32_t *v, uint32_t x)
{
    __atomic_store_n(v, x, __ATOMIC_RELEASE);
}

/* ---- liveness ------------------------------------------------------------ */

static int mark_gone(odk_pcm *p, int err)
{
    if (!p->gone) {
        p->gone = err;
        if (p->st)
            store32(&p->st->app_active, 0);
        snd_pcm_ioplug_set_state(&p->io, SND_PCM_STATE_DISCONNECTED);
    }
    return p->gone;
}

/* 0 while the device is there; -ENODEV once it was withdrawn or its driver
 * went away (checked without blocking). */
static int check_alive(odk_pcm *p)
{
    if (p->gone)
        return p->gone;
    /* Events keep the handle's properties current and carry GONE; a
     * driver killed outright shows as the connection's end (GONE too). */
    odk_audio_event ev;
    int r;
    while ((r = odk_audio_read_event(p->a, &ev, 0)) == ODK_OK)
        if (ev.kind == ODK_AUDIO_EVENT_GONE)
            break;
    if (r == ODK_OK || r == ODK_E_GONE || odk_audio_state(p->a) == ODK_AUDIO_STATE_GONE) {
        SNDERR("odk: device %s is gone", UID(p));
        return mark_gone(p, -ENODEV);
    }
    return 0;
}

/* ---- ring copies --------------------------------------------------------- */

/* Channel areas describing `frames` interleaved frames at mem. */
static void interleaved_areas(odk_pcm *p, void *mem, snd_pcm_channel_area_t *areas)
{
    unsigned bits = snd_pcm_format_physical_width(p->io.format);
    for (unsigned c = 0; c < p->io.channels; c++) {
        areas[c].addr = mem;
        areas[c].first = c * bits;
        areas[c].step = p->frame_bytes * 8;
    }
}

/* Copies size frames between the application's areas (at offset) and the
 * ring at device frame pos, wrapping at the ring's end. */
static void ring_copy(odk_pcm *p, const snd_pcm_channel_area_t *app, snd_pcm_uframes_t offset,
                      uint64_t pos, snd_pcm_uframes_t size, bool to_ring)
{
    snd_pcm_channel_area_t ring[ODK_AUDIO_MAX_CHANNELS];
    while (size > 0) {
        uint32_t idx = (uint32_t)(pos % p->ring_frames);
        snd_pcm_uframes_t n = p->ring_frames - idx;
        if (n > size)
            n = size;
        interleaved_areas(p, p->ring + (size_t)idx * p->frame_bytes, ring);
        if (to_ring)
            snd_pcm_areas_copy(ring, 0, app, offset, p->io.channels, n, p->io.format);
        else
            snd_pcm_areas_copy(app, offset, ring, 0, p->io.channels, n, p->io.format);
        offset += n;
        pos += n;
        size -= n;
    }
}

/* Silences n frames of the ring from device frame pos. */
static void ring_silence(odk_pcm *p, uint64_t pos, uint64_t n)
{
    snd_pcm_channel_area_t ring[ODK_AUDIO_MAX_CHANNELS];
    while (n > 0) {
        uint32_t idx = (uint32_t)(pos % p->ring_frames);
        uint64_t k = p->ring_frames - idx;
        if (k > n)
            k = n;
        interleaved_areas(p, p->ring + (size_t)idx * p->frame_bytes, ring);
        snd_pcm_areas_silence(ring, 0, p->io.channels, (snd_pcm_uframes_t)k, p->io.format);
        pos += k;
        n -= k;
    }
}

/* ---- callbacks ----------------------------------------------------------- */

static int timer_arm(odk_pcm *p, bool on)
{
    struct itimerspec it = {0};
    if (on) {
        /* Once a period, or more often when the ring holds less than four
         * periods ahead: a playback refills it from the staging FIFO at
         * these wakeups. */
        uint64_t frames = p->io.period_size;
        uint64_t keep = p->ring_frames > p->chunk ? p->ring_frames - p->chunk : 0;
        if (frames > keep / 4 && keep >= 4)
            frames = keep / 4;
        uint64_t ns = frames * 1000000000u / p->io.rate;
        if (ns == 0)
            ns = 1;
        it.it_value.tv_sec = (time_t)(ns / 1000000000u);
        it.it_value.tv_nsec = (long)(ns % 1000000000u);
        it.it_interval = it.it_value;
    }
    return timerfd_settime(p->timer_fd, 0, &it, NULL) < 0 ? -errno : 0;
}

static void run_end(odk_pcm *p)
{
    if (p->st)
        store32(&p->st->app_active, 0);
    p->running = false;
    timer_arm(p, false);
    if (p->io_started && !p->gone)
        odk_audio_stop(p->a);
    p->io_started = false;
}

/* Playback: the first frame (counted from base) the ring cannot take yet:
 * frame p may be written while p < driver_pos + ring_frames. */
static uint64_t ring_room_end(odk_pcm *p)
{
    uint64_t end = load64(&p->st->driver_pos) + p->ring_frames;
    return end > p->base ? end - p->base : 0;
}

/* Copies n frames between the staging FIFO (from frame f) and areas at
 * offset, wrapping at the FIFO's end. */
static void stage_copy(odk_pcm *p, const snd_pcm_channel_area_t *areas, snd_pcm_uframes_t offset,
                       uint64_t f, snd_pcm_uframes_t n, bool to_stage)
{
    snd_pcm_channel_area_t st[ODK_AUDIO_MAX_CHANNELS];
    while (n > 0) {
        snd_pcm_uframes_t slot = (snd_pcm_uframes_t)(f % p->stage_len);
        snd_pcm_uframes_t k = p->stage_len - slot;
        if (k > n)
            k = n;
        interleaved_areas(p, p->stage + (size_t)slot * p->frame_bytes, st);
        if (to_stage)
            snd_pcm_areas_copy(st, 0, areas, offset, p->io.channels, k, p->io.format);
        else
            ring_copy(p, st, 0, p->base + f, k, true);
        offset += k;
        f += k;
        n -= k;
    }
}

/* Playback, running: moves what the ring has room for from the staging
 * FIFO into the ring, and publishes the app position. */
static void stage_flush(odk_pcm *p)
{
    uint64_t end = ring_room_end(p);
    if (end > p->app_frames)
        end = p->app_frames;
    if (end > p->written) {
        stage_copy(p, NULL, 0, p->written, (snd_pcm_uframes_t)(end - p->written), false);
        p->written = end;
    }
    store64(&p->st->app_pos, p->base + p->written);
}

static int odk_pcm_start(snd_pcm_ioplug_t *io)
{
    odk_pcm *p = io->private_data;
    int err = check_alive(p);
    if (err < 0)
        return err;
    if (!p->io_started) {
        err = errno_of(odk_audio_start(p->a));
        if (err < 0)
            return err == -ENODEV ? mark_gone(p, err) : err;
        p->io_started = true;
    }
    /* The clock's first timestamp comes with the driver's first period. */
    uint64_t pos = 0, gen = 0;
    uint64_t deadline = now_ns() + 2000000000u;
    while (!clock_position(p, &pos, &gen)) {
        if ((err = check_alive(p)) < 0)
            return err;
        if (now_ns() > deadline) {
            SNDERR("odk: device %s started no clock within 2 s", UID(p));
            return -EIO;
        }
        usleep(1000);
    }
    p->generation = gen;
    p->started_ns = now_ns();
    uint64_t dpos = load64(&p->st->driver_pos);
    if (io->stream == SND_PCM_STREAM_PLAYBACK) {
        /* One period of lead: the driver consumes whole chunks at its
         * ticks, and a frame placed behind its position would be lost. */
        p->base = (dpos > pos ? dpos : pos) + io->period_size;
        /* The driver plays every frame before app_pos: the lead is
         * silence, not what the ring held from before. */
        uint64_t lead = p->base - dpos;
        ring_silence(p, dpos, lead < p->ring_frames ? lead : p->ring_frames);
        p->running = true;
        stage_flush(p);
    } else {
        p->base = dpos;
        p->running = true;
        store64(&p->st->app_pos, p->base + p->app_frames);
    }
    store32(&p->st->app_active, 1);
    return timer_arm(p, true);
}

static int odk_pcm_stop(snd_pcm_ioplug_t *io)
{
    odk_pcm *p = io->private_data;
    run_end(p);
    return 0;
}

/* An xrun: the PCM goes to XRUN (so snd_pcm_wait and the transfers answer
 * -EPIPE and the application's usual recovery, prepare and start, runs). */
static int xrun(odk_pcm *p, uint64_t hw)
{
    if (p->debug) {
        uint64_t pos = 0;
        clock_position(p, &pos, NULL);
        SNDERR("odk: %s xrun at run frame %llu: written %llu, app %llu, driver_pos %llu, "
               "clock %llu, base %llu, %.3f s after start",
               p->io.stream == SND_PCM_STREAM_PLAYBACK ? "playback" : "capture",
               (unsigned long long)hw, (unsigned long long)p->written,
               (unsigned long long)p->app_frames,
               (unsigned long long)load64(&p->st->driver_pos), (unsigned long long)pos,
               (unsigned long long)p->base, (double)(now_ns() - p->started_ns) / 1e9);
    }
    store32(&p->st->app_active, 0);
    snd_pcm_ioplug_set_state(&p->io, SND_PCM_STATE_XRUN);
    return -EPIPE;
}

/* The device frame the run has reached: for playback how far the device
 * has taken frames (the converter's position, or the driver's when it is
 * ahead), for capture how far the driver has written. */
static uint64_t run_position(odk_pcm *p)
{
    uint64_t dpos = load64(&p->st->driver_pos);
    if (p->io.stream == SND_PCM_STREAM_CAPTURE)
        return dpos;
    uint64_t pos;
    if (!clock_position(p, &pos, NULL) || pos < dpos)
        pos = dpos;
    return pos;
}

/* Capture: how far the application may fall behind the driver: a whole
 * ALSA buffer, or what the ring keeps (its length less one driver period,
 * the frames the driver may be overwriting while we copy). */
static uint64_t capture_limit(odk_pcm *p)
{
    uint64_t keep = p->ring_frames > p->chunk ? p->ring_frames - p->chunk : 0;
    return p->io.buffer_size < keep ? p->io.buffer_size : keep;
}

/* Frames of the run the device has passed (hw_ptr, not wrapped), or a
 * negative errno: -EPIPE for an xrun, -ENODEV when the device is gone. */
static int64_t run_hw(odk_pcm *p)
{
    int err = check_alive(p);
    if (err < 0)
        return err;
    if (!p->running)
        return 0;
    uint64_t gen = 0, pos;
    if (clock_position(p, &pos, &gen) && gen != p->generation) {
        SNDERR("odk: device %s restarted its I/O under a running stream", UID(p));
        return xrun(p, 0);
    }
    pos = run_position(p);
    uint64_t hw = pos > p->base ? pos - p->base : 0;
    /* A position behind what we already took: the device went (its memory
     * is reset) or restarted its I/O. */
    if (p->io.stream == SND_PCM_STREAM_CAPTURE && hw < p->app_frames) {
        if ((err = check_alive(p)) < 0)
            return err;
        return xrun(p, hw);
    }
    if (p->io.stream == SND_PCM_STREAM_PLAYBACK) {
        stage_flush(p);
        if (hw > p->written) {
            if (p->io.state == SND_PCM_STATE_DRAINING && p->written == p->app_frames)
                return (int64_t)p->app_frames;
            return xrun(p, hw); /* the device needed frames the application had not written */
        }
    } else if (hw - p->app_frames > capture_limit(p)) {
        return xrun(p, hw); /* the application fell too far behind */
    }
    return (int64_t)hw;
}

static snd_pcm_sframes_t odk_pcm_pointer(snd_pcm_ioplug_t *io)
{
    odk_pcm *p = io->private_data;
    int64_t hw = run_hw(p);
    if (hw < 0)
        return hw;
    return (snd_pcm_sframes_t)((uint64_t)hw % io->buffer_size);
}

static snd_pcm_sframes_t odk_pcm_transfer(snd_pcm_ioplug_t *io, const snd_pcm_channel_area_t *areas,
                                          snd_pcm_uframes_t offset, snd_pcm_uframes_t size)
{
    odk_pcm *p = io->private_data;
    int err = check_alive(p);
    if (err < 0)
        return err;
    if (io->stream == SND_PCM_STREAM_PLAYBACK) {
        /* ALSA never lets the application more than a buffer ahead of the
         * device, and the FIFO holds a buffer. */
        if (p->app_frames + size - p->written > p->stage_len)
            size = (snd_pcm_uframes_t)(p->stage_len - (p->app_frames - p->written));
        if (p->running && p->written == p->app_frames &&
            p->app_frames + size <= ring_room_end(p)) {
            ring_copy(p, areas, offset, p->base + p->app_frames, size, true);
            p->app_frames += size;
            p->written = p->app_frames;
            store64(&p->st->app_pos, p->base + p->written);
        } else {
            stage_copy(p, areas, offset, p->app_frames, size, true);
            p->app_frames += size;
            if (p->running)
                stage_flush(p);
        }
        return (snd_pcm_sframes_t)size;
    }
    if (!p->running)
        return 0;
    ring_copy(p, areas, offset, p->base + p->app_frames, size, false);
    /* Had the driver come round the ring meanwhile, part of what we copied
     * would be newer frames: that is an overrun too. */
    if (load64(&p->st->driver_pos) > p->base + p->app_frames + p->ring_frames)
        return xrun(p, load64(&p->st->driver_pos) - p->base);
    p->app_frames += size;
    store64(&p->st->app_pos, p->base + p->app_frames);
    return (snd_pcm_sframes_t)size;
}

/* Playback: waits until the device has taken every frame written (ioplug
 * leaves the whole drain to this callback, then drops).  Frames written
 * before a start are started first, as ALSA does. */
static int odk_pcm_drain(snd_pcm_ioplug_t *io)
{
    odk_pcm *p = io->private_data;
    if (io->stream != SND_PCM_STREAM_PLAYBACK)
        return 0;
    int err = check_alive(p);
    if (err < 0)
        return err;
    if (!p->running) {
        if (p->app_frames == 0)
            return 0;
        if ((err = odk_pcm_start(io)) < 0)
            return err;
    }
    /* The silence after the last frame is no underrun: the driver stops
     * counting, and still plays every frame before app_pos. */
    store32(&p->st->app_active, 0);
    uint64_t last = load64(&p->st->driver_pos), moved = now_ns();
    for (;;) {
        if ((err = check_alive(p)) < 0)
            return err;
        stage_flush(p);
        uint64_t dpos = load64(&p->st->driver_pos);
        if (p->written == p->app_frames && dpos >= p->base + p->app_frames)
            return 0;
        /* A driver that is there but takes no frame would hold the drain
         * for ever. */
        if (dpos != last) {
            last = dpos;
            moved = now_ns();
        } else if (now_ns() - moved > 2000000000u) {
            SNDERR("odk: device %s took no frame for 2 s while draining", UID(p));
            return -EIO;
        }
        struct pollfd pfd[2] = {{.fd = p->timer_fd, .events = POLLIN},
                                {.fd = odk_audio_event_fd(p->a), .events = POLLIN}};
        if (poll(pfd, 2, 1000) < 0 && errno != EINTR)
            return -errno;
        uint64_t ticks;
        while (read(p->timer_fd, &ticks, sizeof ticks) > 0)
            ;
    }
}

static int odk_pcm_prepare(snd_pcm_ioplug_t *io)
{
    odk_pcm *p = io->private_data;
    int err = check_alive(p);
    if (err < 0)
        return err;
    if (p->running)
        run_end(p);
    p->app_frames = 0;
    p->written = 0;
    /* Drain the timer of a previous run. */
    uint64_t ticks;
    while (read(p->timer_fd, &ticks, sizeof ticks) > 0)
        ;
    return 0;
}

static uint32_t odk_format(snd_pcm_format_t f)
{
    switch (f) {
    case SND_PCM_FORMAT_S16_LE:
        return ODK_AUDIO_S16_LE;
    case SND_PCM_FORMAT_S24_3LE:
        return ODK_AUDIO_S24_3LE;
    case SND_PCM_FORMAT_S32_LE:
        return ODK_AUDIO_S32_LE;
    case SND_PCM_FORMAT_FLOAT_LE:
        return ODK_AUDIO_FLOAT_LE;
    default:
        return 0;
    }
}

static snd_pcm_format_t alsa_format(uint32_t sample_format)
{
    switch (sample_format) {
    case ODK_AUDIO_S16_LE:
        return SND_PCM_FORMAT_S16_LE;
    case ODK_AUDIO_S24_3LE:
        return SND_PCM_FORMAT_S24_3LE;
    case ODK_AUDIO_S32_LE:
        return SND_PCM_FORMAT_S32_LE;
    case ODK_AUDIO_FLOAT_LE:
        return SND_PCM_FORMAT_FLOAT_LE;
    default:
        return SND_PCM_FORMAT_UNKNOWN;
    }
}

/* Whether the stream lists want now (an entry of rate 0 holds at every
 * available rate of the device). */
static bool format_offered(odk_pcm *p, const odk_audio_format *want)
{
    odk_audio_format fmts[ODK_AUDIO_MAX_FORMATS];
    uint32_t rates[ODK_AUDIO_MAX_RATES];
    size_t n = 0, n_rates = 0;
    if (odk_audio_stream_formats(p->a, p->stream, fmts, ODK_AUDIO_MAX_FORMATS, &n) != ODK_OK ||
        odk_audio_rates(p->a, rates, ODK_AUDIO_MAX_RATES, &n_rates) != ODK_OK)
        return false;
    bool rate_ok = false;
    for (size_t r = 0; r < n_rates && r < ODK_AUDIO_MAX_RATES; r++)
        rate_ok |= rates[r] == want->rate;
    for (size_t i = 0; rate_ok && i < n && i < ODK_AUDIO_MAX_FORMATS; i++)
        if (fmts[i].channels == want->channels && fmts[i].sample_format == want->sample_format &&
            (fmts[i].rate == 0 || fmts[i].rate == want->rate))
            return true;
    return false;
}

static int odk_pcm_hw_params(snd_pcm_ioplug_t *io, snd_pcm_hw_params_t *params)
{
    odk_pcm *p = io->private_data;
    int err = check_alive(p);
    if (err < 0)
        return err;
    /* ALSA's constraints are per axis; the device lists whole formats. */
    odk_audio_format want = {.channels = io->channels,
                             .sample_format = odk_format(io->format),
                             .rate = io->rate};
    if (!format_offered(p, &want)) {
        SNDERR("odk: device %s has no format of %u channels, %s, %u Hz",
               UID(p), io->channels, snd_pcm_format_name(io->format), io->rate);
        return -EINVAL;
    }
    odk_audio_format cur;
    uint32_t dir;
    err = errno_of(odk_audio_stream_format(p->a, p->stream, &dir, &cur));
    if (err == 0 && (cur.channels != want.channels || cur.sample_format != want.sample_format ||
                     cur.rate != want.rate))
        err = errno_of(odk_audio_set_format(p->a, p->stream, &want));
    if (err < 0) {
        if (err == -ENODEV)
            return mark_gone(p, err);
        SNDERR("odk: device %s refused %u channels, %s, %u Hz: %s", UID(p),
               io->channels, snd_pcm_format_name(io->format), io->rate, strerror(-err));
        return err;
    }
    uint8_t *ring = NULL;
    uint32_t fb = 0, rf = 0;
    if (odk_audio_ring(p->a, p->stream, &ring, &rf, &fb) != ODK_OK ||
        fb != (uint32_t)snd_pcm_format_physical_width(io->format) / 8 * io->channels || rf == 0) {
        SNDERR("odk: device %s published a ring that does not fit its format",
               UID(p));
        return -EIO;
    }
    p->frame_bytes = fb;
    p->ring_frames = rf;
    p->ring = ring;
    if (io->stream == SND_PCM_STREAM_CAPTURE && 4 * io->period_size + p->chunk > rf) {
        SNDERR("odk: a period of %lu frames is more than the device's ring (%u frames) "
               "keeps for a capture",
               (unsigned long)io->period_size, rf);
        return -EINVAL;
    }
    free(p->stage);
    p->stage = NULL;
    p->stage_len = 0;
    if (io->stream == SND_PCM_STREAM_PLAYBACK) {
        p->stage = malloc((size_t)io->buffer_size * fb);
        if (!p->stage)
            return -ENOMEM;
        p->stage_len = io->buffer_size;
    }
    return 0;
}

static int odk_pcm_sw_params(snd_pcm_ioplug_t *io, snd_pcm_sw_params_t *params)
{
    odk_pcm *p = io->private_data;
    snd_pcm_uframes_t v = 1;
    snd_pcm_sw_params_get_avail_min(params, &v);
    p->avail_min = v ? v : 1;
    return 0;
}

static int odk_pcm_delay(snd_pcm_ioplug_t *io, snd_pcm_sframes_t *delayp)
{
    odk_pcm *p = io->private_data;
    int err = check_alive(p);
    if (err < 0)
        return err;
    if (!p->running) {
        *delayp = io->stream == SND_PCM_STREAM_PLAYBACK ? (snd_pcm_sframes_t)p->app_frames : 0;
        return 0;
    }
    uint64_t pos;
    if (!clock_position(p, &pos, NULL))
        pos = run_position(p);
    uint64_t app = p->base + p->app_frames;
    int64_t d = io->stream == SND_PCM_STREAM_PLAYBACK ? (int64_t)(app - pos) : (int64_t)(pos - app);
    *delayp = d > 0 ? (snd_pcm_sframes_t)d : 0;
    return 0;
}

static int odk_pcm_poll_count(snd_pcm_ioplug_t *io)
{
    return 2;
}

static int odk_pcm_poll_descriptors(snd_pcm_ioplug_t *io, struct pollfd *pfd, unsigned int space)
{
    odk_pcm *p = io->private_data;
    if (space < 2)
        return -EINVAL;
    pfd[0] = (struct pollfd){.fd = p->timer_fd, .events = POLLIN};
    pfd[1] = (struct pollfd){.fd = odk_audio_event_fd(p->a), .events = POLLIN};
    return 2;
}

static int odk_pcm_poll_revents(snd_pcm_ioplug_t *io, struct pollfd *pfd, unsigned int nfds,
                                unsigned short *revents)
{
    odk_pcm *p = io->private_data;
    uint64_t ticks;
    while (read(p->timer_fd, &ticks, sizeof ticks) > 0)
        ;
    *revents = 0;
    if (check_alive(p) < 0) {
        *revents = POLLERR;
        return 0;
    }
    short ready = io->stream == SND_PCM_STREAM_PLAYBACK ? POLLOUT : POLLIN;
    if (!p->running) {
        *revents = (unsigned short)ready;
        return 0;
    }
    int64_t hw = run_hw(p);
    if (hw < 0) {
        *revents = (unsigned short)(ready | POLLERR);
        return 0;
    }
    uint64_t avail = io->stream == SND_PCM_STREAM_PLAYBACK
                         ? io->buffer_size - (p->app_frames - (uint64_t)hw)
                         : (uint64_t)hw - p->app_frames;
    if (avail >= p->avail_min || io->state == SND_PCM_STATE_DRAINING)
        *revents = (unsigned short)ready;
    return 0;
}

static int odk_pcm_close(snd_pcm_ioplug_t *io)
{
    odk_pcm *p = io->private_data;
    run_end(p);
    odk_audio_close(p->a);
    if (p->timer_fd >= 0)
        close(p->timer_fd);
    free(p->stage);
    free(p);
    return 0;
}

static void odk_pcm_dump(snd_pcm_ioplug_t *io, snd_output_t *out)
{
    odk_pcm *p = io->private_data;
    snd_output_printf(out, "odk PCM: device %s, ring %u frames, base %llu, app %llu, xruns %llu\n",
                      UID(p), p->ring_frames, (unsigned long long)p->base,
                      (unsigned long long)p->app_frames,
                      (unsigned long long)(p->st ? load64(&p->st->xruns) : 0));
}

static const snd_pcm_ioplug_callback_t odk_pcm_callbacks = {
    .start = odk_pcm_start,
    .stop = odk_pcm_stop,
    .pointer = odk_pcm_pointer,
    .transfer = odk_pcm_transfer,
    .close = odk_pcm_close,
    .hw_params = odk_pcm_hw_params,
    .sw_params = odk_pcm_sw_params,
    .prepare = odk_pcm_prepare,
    .drain = odk_pcm_drain,
    .poll_descriptors_count = odk_pcm_poll_count,
    .poll_descriptors = odk_pcm_poll_descriptors,
    .poll_revents = odk_pcm_poll_revents,
    .dump = odk_pcm_dump,
    .delay = odk_pcm_delay,
};

/* ---- hw constraints: exactly the device's available formats -------------- */

static int add_unique(unsigned *list, unsigned *n, unsigned v)
{
    for (unsigned i = 0; i < *n; i++)
        if (list[i] == v)
            return 0;
    list[(*n)++] = v;
    return 1;
}

static int set_constraints(odk_pcm *p)
{
    static const unsigned access[] = {SND_PCM_ACCESS_RW_INTERLEAVED,
                                      SND_PCM_ACCESS_MMAP_INTERLEAVED};
    odk_audio_format fmts[ODK_AUDIO_MAX_FORMATS];
    uint32_t dev_rates[ODK_AUDIO_MAX_RATES];
    size_t n = 0, n_rates = 0;
    if (odk_audio_stream_formats(p->a, p->stream, fmts, ODK_AUDIO_MAX_FORMATS, &n) != ODK_OK ||
        odk_audio_rates(p->a, dev_rates, ODK_AUDIO_MAX_RATES, &n_rates) != ODK_OK)
        return -EIO;
    if (n > ODK_AUDIO_MAX_FORMATS)
        n = ODK_AUDIO_MAX_FORMATS;
    if (n_rates > ODK_AUDIO_MAX_RATES)
        n_rates = ODK_AUDIO_MAX_RATES;
    /* While the device runs (another app started it) its formats are
     * fixed: the stream's current one is all there is. */
    if (odk_audio_state(p->a) == ODK_AUDIO_STATE_RUNNING) {
        uint32_t dir;
        if (odk_audio_stream_format(p->a, p->stream, &dir, &fmts[0]) != ODK_OK)
            return -EIO;
        n = 1;
    }
    uint32_t running_rate = odk_audio_state(p->a) == ODK_AUDIO_STATE_RUNNING ? odk_audio_rate(p->a)
                                                                             : 0;
    unsigned formats[ODK_AUDIO_MAX_FORMATS], channels[ODK_AUDIO_MAX_FORMATS],
        rates[ODK_AUDIO_MAX_RATES];
    unsigned nf = 0, nc = 0, nr = 0, min_fb = 0;
    for (size_t i = 0; i < n; i++) {
        snd_pcm_format_t f = alsa_format(fmts[i].sample_format);
        if (f == SND_PCM_FORMAT_UNKNOWN || fmts[i].channels == 0 ||
            fmts[i].channels > ODK_AUDIO_MAX_CHANNELS)
            continue;
        bool any_rate = false;
        for (size_t r = 0; r < n_rates; r++) {
            uint32_t rate = dev_rates[r];
            if ((fmts[i].rate != 0 && fmts[i].rate != rate) ||
                (running_rate != 0 && rate != running_rate))
                continue;
            add_unique(rates, &nr, rate);
            any_rate = true;
        }
        if (!any_rate)
            continue;
        add_unique(formats, &nf, (unsigned)f);
        add_unique(channels, &nc, fmts[i].channels);
        unsigned fb = fmts[i].channels * odk_audio_sample_bytes(fmts[i].sample_format);
        if (min_fb == 0 || fb < min_fb)
            min_fb = fb;
    }
    if (nf == 0 || nr == 0) {
        SNDERR("odk: device %s offers no format for this direction now", UID(p));
        return -EINVAL;
    }
    uint64_t ring_bytes = load64(&p->st->ring_bytes);
    if (ring_bytes < 1024 || ring_bytes > UINT32_MAX) {
        SNDERR("odk: device %s has a ring of %llu bytes", UID(p),
               (unsigned long long)ring_bytes);
        return -EINVAL;
    }
    int err;
    if ((err = snd_pcm_ioplug_set_param_list(&p->io, SND_PCM_IOPLUG_HW_ACCESS, 2, access)) < 0 ||
        (err = snd_pcm_ioplug_set_param_list(&p->io, SND_PCM_IOPLUG_HW_FORMAT, nf, formats)) < 0 ||
        (err = snd_pcm_ioplug_set_param_list(&p->io, SND_PCM_IOPLUG_HW_CHANNELS, nc, channels)) <
            0 ||
        (err = snd_pcm_ioplug_set_param_list(&p->io, SND_PCM_IOPLUG_HW_RATE, nr, rates)) < 0)
        return err;
    /* ALSA bounds periods and buffers in bytes; the ring's length is fixed
     * in frames.  A playback buffer longer than the ring is fine (the
     * staging FIFO holds the rest).  A capture must read a period before
     * the driver overwrites it: at most a quarter of what the ring keeps
     * (the rest is the delay the application may take to come and read),
     * in frames of every format, so in bytes of the smallest frame. */
    uint64_t keep = p->ring_frames > p->chunk ? p->ring_frames - p->chunk : 0;
    uint64_t max_period = p->io.stream == SND_PCM_STREAM_CAPTURE ? keep / 4 * min_fb
                                                                  : ring_bytes / 2;
    if (max_period < 16) {
        SNDERR("odk: device %s has a ring of %u frames, too short for a period", UID(p),
               p->ring_frames);
        return -EINVAL;
    }
    if ((err = snd_pcm_ioplug_set_param_minmax(&p->io, SND_PCM_IOPLUG_HW_PERIOD_BYTES, 16,
                                               (unsigned)max_period)) < 0 ||
        (err = snd_pcm_ioplug_set_param_minmax(&p->io, SND_PCM_IOPLUG_HW_BUFFER_BYTES, 32,
                                               (unsigned)ring_bytes)) < 0 ||
        (err = snd_pcm_ioplug_set_param_minmax(&p->io, SND_PCM_IOPLUG_HW_PERIODS, 2, 1024)) < 0)
        return err;
    return 0;
}

/* ---- the plugin's entry -------------------------------------------------- */

/* Whether the device dictionary (odk_audio_list's) has a stream of
 * direction. */
static bool has_direction(const odk_value *dev, uint32_t direction)
{
    const odk_value *props = odk_dict_get(dev, "properties");
    const odk_value *streams = props ? odk_dict_get(props, "Streams") : NULL;
    const char *want = direction == ODK_AUDIO_OUTPUT ? "output" : "input";
    for (size_t i = 0; streams && i < odk_array_count(streams); i++) {
        const char *d = odk_dict_get_string(odk_array_get(streams, i), "Direction", "");
        if (strcmp(d, want) == 0)
            return true;
    }
    return false;
}

/* Opens the device uid, or for "" the first device that has a stream of
 * direction (so `arecord -D odk` finds an input-only device too). */
static int open_device(const char *state_dir, const char *uid, uint32_t direction, odk_audio **out)
{
    char first[ODK_AUDIO_MAX_UID + 1] = "";
    if (uid[0] == '\0') {
        odk_value *devs = NULL;
        int r = odk_audio_list(state_dir, &devs);
        if (r != ODK_OK) {
            SNDERR("odk: cannot reach odkd (%s): %s", state_dir ? state_dir : "$ODK_STATE_DIR",
                   odk_strerror(r));
            return errno_of(r);
        }
        for (size_t i = 0; devs && i < odk_array_count(devs); i++) {
            const odk_value *d = odk_array_get(devs, i);
            if (!has_direction(d, direction))
                continue;
            const odk_value *props = odk_dict_get(d, "properties");
            snprintf(first, sizeof first, "%s", odk_dict_get_string(props, "UID", ""));
            break;
        }
        odk_value_free(devs);
        if (first[0] == '\0') {
            SNDERR("odk: no odk audio device has an %s stream",
                   direction == ODK_AUDIO_OUTPUT ? "output" : "input");
            return -ENOENT;
        }
        uid = first;
    }
    int r = odk_audio_open(state_dir, uid, out);
    if (r != ODK_OK) {
        SNDERR("odk: cannot open audio device '%s': %s", uid, odk_strerror(r));
        return errno_of(r);
    }
    return 0;
}

/* libasound looks the entry up by name; declared for -Wmissing-prototypes. */
int SND_PCM_PLUGIN_ENTRY(odk)(snd_pcm_t **pcmp, const char *name, snd_config_t *root,
                              snd_config_t *conf, snd_pcm_stream_t stream, int mode);

SND_PCM_PLUGIN_DEFINE_FUNC(odk)
{
    snd_config_iterator_t i, next;
    const char *uid = "";
    const char *state_dir = NULL;
    snd_config_for_each(i, next, conf)
    {
        snd_config_t *n = snd_config_iterator_entry(i);
        const char *id;
        if (snd_config_get_id(n, &id) < 0)
            continue;
        if (strcmp(id, "comment") == 0 || strcmp(id, "type") == 0 || strcmp(id, "hint") == 0)
            continue;
        if (strcmp(id, "device") == 0) {
            if (snd_config_get_string(n, &uid) < 0) {
                SNDERR("odk: device must be a string (a device UID)");
                return -EINVAL;
            }
            continue;
        }
        if (strcmp(id, "state_dir") == 0) {
            if (snd_config_get_string(n, &state_dir) < 0) {
                SNDERR("odk: state_dir must be a string");
                return -EINVAL;
            }
            continue;
        }
        SNDERR("odk: unknown field %s", id);
        return -EINVAL;
    }

    odk_pcm *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->timer_fd = -1;
    p->avail_min = 1;
    p->debug = getenv("ODK_ALSA_DEBUG") != NULL;
    uint32_t direction = stream == SND_PCM_STREAM_PLAYBACK ? ODK_AUDIO_OUTPUT : ODK_AUDIO_INPUT;
    int err = open_device(state_dir, uid, direction, &p->a);
    if (err < 0)
        goto fail;
    if (odk_audio_find_stream(p->a, direction, &p->stream) != ODK_OK) {
        SNDERR("odk: device %s has no %s stream", UID(p),
               direction == ODK_AUDIO_OUTPUT ? "output" : "input");
        err = -ENOENT;
        goto fail;
    }
    p->st = &odk_audio_shared(p->a)->streams[p->stream];
    p->ring_frames = __atomic_load_n(&p->st->ring_frames, __ATOMIC_ACQUIRE);
    p->chunk = (uint64_t)odk_dict_get_int(odk_audio_properties(p->a), "ZeroTimestampPeriod", 0);
    p->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (p->timer_fd < 0) {
        err = -errno;
        goto fail;
    }

    p->io.version = SND_PCM_IOPLUG_VERSION;
    p->io.name = "odk audio device";
    p->io.flags = SND_PCM_IOPLUG_FLAG_MONOTONIC;
    p->io.mmap_rw = 0;
    p->io.poll_fd = p->timer_fd;
    p->io.poll_events = POLLIN;
    p->io.callback = &odk_pcm_callbacks;
    p->io.private_data = p;
    err = snd_pcm_ioplug_create(&p->io, name, stream, mode);
    if (err < 0)
        goto fail;
    err = set_constraints(p);
    if (err < 0) {
        snd_pcm_ioplug_delete(&p->io); /* runs odk_pcm_close, which frees p */
        return err;
    }
    *pcmp = p->io.pcm;
    return 0;

fail:
    if (p->timer_fd >= 0)
        close(p->timer_fd);
    odk_audio_close(p->a);
    free(p);
    return err;
}

SND_PCM_PLUGIN_SYMBOL(odk);
