/* SPDX-License-Identifier: MIT */
/* audio-clock: a device whose sample rates depend on its clock source, as
 * an interface locked to a word clock (story 22).  One device, "odk-clock",
 * with an output (played to nowhere) and an input (silence), and one
 * selector control, "Clock source":
 *   item 1  "48 kHz family"    rates 48000, 96000, 192000
 *   item 2  "44.1 kHz family"  rates 44100, 88200, 176400
 * Switching the source (odk_audio_set_control, I/O stopped) replaces the
 * available rates and moves the current rate to the new family's base: every
 * client is told (AvailableSampleRates, SampleRate, Streams, Controls), and a
 * client that then asks for an old rate is refused.  While I/O runs the
 * switch is refused with ODK_E_BUSY, as a real interface would glitch.
 *
 * The clock is a timerfd on CLOCK_MONOTONIC, as in audio-loopback. */
#include <errno.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "odk/audio.h"
#include "odk/driver.h"
#include "odk/log.h"
#include "odk/queue.h"

#define PERIOD 256u
#define RING 8192u
#define SOURCE 0u /* the selector's control id */
#define FAMILY_48K 1u
#define FAMILY_44K 2u

static const uint32_t rates_48k[] = {48000, 96000, 192000};
static const uint32_t rates_44k[] = {44100, 88200, 176400};
static const odk_audio_format formats[] = {
    {2, ODK_AUDIO_S16_LE, 0}, {2, ODK_AUDIO_S24_3LE, 0}, {2, ODK_AUDIO_S32_LE, 0},
};

struct clk {
    odk_driver *drv;
    odk_audio_device *dev;
    int tfd;
    odk_fd_source *src;
    uint64_t start_ns, done;
    uint32_t rate;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t host_time(const struct clk *c, uint64_t frames)
{
    return c->start_ns + (uint64_t)((unsigned __int128)frames * 1000000000u / c->rate);
}

/* Consumes the output's frames and records silence on the input. */
static void run_period(struct clk *c, uint64_t p, uint32_t n)
{
    uint64_t end = p + n;
    for (uint32_t s = 0; s < 2; s++) {
        uint8_t *ring;
        uint32_t frames, fb;
        odk_audio_device_ring(c->dev, s, &ring, &frames, &fb);
        bool active;
        uint64_t app = odk_audio_device_app_position(c->dev, s, &active);
        if (s == 1)
            for (uint64_t f = p; f < end; f++)
                memset(ring + (size_t)(f % frames) * fb, 0, fb);
        bool xrun = s == 0 ? app < end : (app > end || end - app > frames);
        if (active && xrun)
            odk_audio_device_count_xrun(c->dev, s);
        odk_audio_device_set_position(c->dev, s, end);
    }
    odk_audio_device_publish_timestamp(c->dev, end, host_time(c, end));
}

static void arm(struct clk *c)
{
    uint64_t at = host_time(c, c->done + PERIOD);
    struct itimerspec its = {.it_value = {(time_t)(at / 1000000000u), (long)(at % 1000000000u)}};
    timerfd_settime(c->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void tick(void *ctx, uint32_t revents)
{
    (void)revents;
    struct clk *c = ctx;
    uint64_t x;
    if (read(c->tfd, &x, sizeof x) < 0 && errno != EAGAIN)
        return;
    uint64_t now = now_ns();
    while (host_time(c, c->done + PERIOD) <= now) {
        run_period(c, c->done, PERIOD);
        c->done += PERIOD;
    }
    arm(c);
}

static int start_io(void *ctx, odk_audio_device *dev)
{
    struct clk *c = ctx;
    odk_audio_format f;
    odk_audio_device_format(dev, 0, &f);
    c->rate = f.rate;
    c->done = 0;
    c->start_ns = now_ns();
    c->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (c->tfd < 0)
        return ODK_E_IO;
    int st = odk_fd_source_create(odk_driver_queue(c->drv), c->tfd, EPOLLIN, tick, c, &c->src);
    if (st < 0) {
        close(c->tfd);
        c->tfd = -1;
        return st;
    }
    arm(c);
    return ODK_OK;
}

static void stop_io(void *ctx, odk_audio_device *dev)
{
    (void)dev;
    struct clk *c = ctx;
    if (c->src) {
        odk_fd_source_cancel(c->src, NULL, NULL);
        odk_release(c->src);
        c->src = NULL;
    }
    if (c->tfd >= 0)
        close(c->tfd);
    c->tfd = -1;
}

/* The clock source changed: the rates follow it. */
static int set_control(void *ctx, odk_audio_device *dev, uint32_t control, int64_t value)
{
    (void)ctx;
    if (control != SOURCE || value == odk_audio_device_control(dev, SOURCE))
        return ODK_OK;
    if (odk_audio_device_running(dev))
        return ODK_E_BUSY;
    const uint32_t *rates = value == FAMILY_48K ? rates_48k : rates_44k;
    odk_info("audio-clock: clock source %s", value == FAMILY_48K ? "48 kHz" : "44.1 kHz");
    return odk_audio_device_set_rates(dev, rates, 3, rates[0]);
}

static const odk_audio_device_ops ops = {
    .start_io = start_io, .stop_io = stop_io, .set_control = set_control};

static int clk_start(odk_driver *drv)
{
    struct clk *c = odk_driver_state(drv);
    *c = (struct clk){.drv = drv, .tfd = -1};
    odk_audio_stream_desc streams[2] = {
        {ODK_AUDIO_OUTPUT, formats, 3, {2, ODK_AUDIO_S16_LE, 48000}, RING},
        {ODK_AUDIO_INPUT, formats, 3, {2, ODK_AUDIO_S16_LE, 48000}, RING},
    };
    static const odk_audio_selector_item items[] = {{FAMILY_48K, "48 kHz family"},
                                                    {FAMILY_44K, "44.1 kHz family"}};
    odk_audio_control_desc source = {.kind = ODK_AUDIO_CONTROL_SELECTOR, .name = "Clock source",
                                     .value = FAMILY_48K, .items = items, .n_items = 2};
    odk_audio_device_desc d = {
        .uid = odk_dict_get_string(odk_driver_personality(drv), "OdkAudioUID", "odk-clock"),
        .name = "odk clock",
        .manufacturer = "odk",
        .transport = "Virtual",
        .clock_domain = 1,
        .zero_timestamp_period = PERIOD,
        .rates = rates_48k,
        .n_rates = 3,
        .rate = 48000,
        .streams = streams,
        .n_streams = 2,
        .controls = &source,
        .n_controls = 1,
    };
    char err[200];
    int st = odk_audio_device_create(drv, &d, &ops, c, &c->dev, err, sizeof err);
    if (st < 0) {
        odk_error("audio-clock: %s", err);
        return st;
    }
    return odk_driver_register_service(drv);
}

static void clk_stop(odk_driver *drv)
{
    struct clk *c = odk_driver_state(drv);
    odk_audio_device_destroy(c->dev);
    c->dev = NULL;
}

static const odk_driver_class audio_clock = {
    .name = "AudioClock",
    .state_size = sizeof(struct clk),
    .start = clk_start,
    .stop = clk_stop,
};
ODK_DRIVER_CLASS(audio_clock);
