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
 * The clock is the family's host clock (odk_audio_clock). */
#include <string.h>

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
    odk_audio_clock *clock;
};

/* Consumes the output's frames and records silence on the input. */
static void run_period(void *ctx, odk_audio_device *dev, uint64_t p, uint32_t n)
{
    (void)dev;
    struct clk *c = ctx;
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
}

static int start_io(void *ctx, odk_audio_device *dev)
{
    struct clk *c = ctx;
    return odk_audio_clock_start(dev, PERIOD, run_period, c, &c->clock);
}

static void stop_io(void *ctx, odk_audio_device *dev)
{
    (void)dev;
    struct clk *c = ctx;
    odk_audio_clock_stop(c->clock);
    c->clock = NULL;
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
    *c = (struct clk){.drv = drv};
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
