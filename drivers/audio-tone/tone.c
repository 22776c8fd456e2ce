/* SPDX-License-Identifier: MIT */
/* audio-tone: an input that records a sine (for tests and demos).  One
 * device, "odk-tone", with one input stream: 1 or 2 channels of S16_LE,
 * S32_LE or FLOAT_LE at 44.1, 48 or 96 kHz, at half of full scale.  The
 * frequency is set through the driver's user client (the service node):
 *   selector 0  set frequency   scalar in: millihertz (1 Hz .. rate / 2)
 *   selector 1  get frequency   scalar out: millihertz
 * A change takes effect at the next period, phase-continuous.
 *
 * The clock is the family's host clock (odk_audio_clock): every period it
 * asks the driver for that many frames, which it writes into the ring
 * before publishing its position. */
#include <math.h>
#include <string.h>

#include "odk/audio.h"
#include "odk/driver.h"
#include "odk/log.h"
#include "odk/queue.h"

#define PERIOD 256u
#define RING 8192u

static const uint32_t rates[] = {44100, 48000, 96000};
static const odk_audio_format formats[] = {
    {1, ODK_AUDIO_S16_LE, 0},   {2, ODK_AUDIO_S16_LE, 0}, {1, ODK_AUDIO_S32_LE, 0},
    {2, ODK_AUDIO_S32_LE, 0},   {1, ODK_AUDIO_FLOAT_LE, 0}, {2, ODK_AUDIO_FLOAT_LE, 0},
};

struct tone {
    odk_driver *drv;
    odk_audio_device *dev;
    odk_audio_clock *clock;
    uint32_t rate;
    uint64_t millihertz;
    double phase; /* radians, kept across periods and frequency changes */
};

static void put_sample(uint8_t *p, uint32_t fmt, double v)
{
    if (fmt == ODK_AUDIO_S16_LE) {
        int16_t s = (int16_t)lrint(v * 32767.0);
        memcpy(p, &s, 2);
    } else if (fmt == ODK_AUDIO_S32_LE) {
        int32_t s = (int32_t)llrint(v * 2147483647.0);
        memcpy(p, &s, 4);
    } else {
        float s = (float)v;
        memcpy(p, &s, 4);
    }
}

static void fill_period(void *ctx, odk_audio_device *dev, uint64_t p, uint32_t n)
{
    (void)dev;
    struct tone *t = ctx;
    uint8_t *ring;
    uint32_t frames, fb;
    odk_audio_format f;
    odk_audio_device_ring(t->dev, 0, &ring, &frames, &fb);
    odk_audio_device_format(t->dev, 0, &f);
    double step = 2 * M_PI * ((double)t->millihertz / 1000.0) / t->rate;
    uint32_t sb = odk_audio_sample_bytes(f.sample_format);
    for (uint32_t i = 0; i < n; i++) {
        uint8_t *frame = ring + (size_t)((p + i) % frames) * fb;
        double v = 0.5 * sin(t->phase);
        for (uint32_t c = 0; c < f.channels; c++)
            put_sample(frame + c * sb, f.sample_format, v);
        t->phase = fmod(t->phase + step, 2 * M_PI);
    }
    uint64_t end = p + n;
    odk_audio_device_set_position(t->dev, 0, end);
    bool active;
    uint64_t read = odk_audio_device_app_position(t->dev, 0, &active);
    if (active && (read > end || end - read > frames))
        odk_audio_device_count_xrun(t->dev, 0);
}

static int start_io(void *ctx, odk_audio_device *dev)
{
    struct tone *t = ctx;
    odk_audio_format f;
    odk_audio_device_format(dev, 0, &f);
    t->rate = f.rate;
    t->phase = 0;
    return odk_audio_clock_start(dev, PERIOD, fill_period, t, &t->clock);
}

static void stop_io(void *ctx, odk_audio_device *dev)
{
    (void)dev;
    struct tone *t = ctx;
    odk_audio_clock_stop(t->clock);
    t->clock = NULL;
}

static const odk_audio_device_ops ops = {.start_io = start_io, .stop_io = stop_io};

static int tone_start(odk_driver *drv)
{
    struct tone *t = odk_driver_state(drv);
    *t = (struct tone){.drv = drv, .millihertz = 1000000};
    odk_audio_stream_desc stream = {ODK_AUDIO_INPUT, formats, sizeof formats / sizeof formats[0],
                                    {1, ODK_AUDIO_S16_LE, 48000}, RING};
    odk_audio_device_desc d = {
        .uid = odk_dict_get_string(odk_driver_personality(drv), "OdkAudioUID", "odk-tone"),
        .name = "odk tone",
        .manufacturer = "odk",
        .zero_timestamp_period = PERIOD,
        .rates = rates,
        .n_rates = sizeof rates / sizeof rates[0],
        .rate = 48000,
        .streams = &stream,
        .n_streams = 1,
    };
    char err[200];
    int st = odk_audio_device_create(drv, &d, &ops, t, &t->dev, err, sizeof err);
    if (st < 0) {
        odk_error("audio-tone: %s", err);
        return st;
    }
    return odk_driver_register_service(drv);
}

static void tone_stop(odk_driver *drv)
{
    struct tone *t = odk_driver_state(drv);
    odk_audio_device_destroy(t->dev);
    t->dev = NULL;
}

static int m_set_frequency(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    (void)uc;
    struct tone *t = odk_driver_state(drv);
    odk_audio_format f;
    odk_audio_device_format(t->dev, 0, &f);
    uint64_t mhz = call->scalar_in[0];
    if (mhz < 1000 || mhz > (uint64_t)f.rate * 500)
        return ODK_E_INVALID; /* 1 Hz .. Nyquist */
    t->millihertz = mhz;
    return ODK_OK;
}

static int m_get_frequency(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    (void)uc;
    call->scalar_out[0] = ((struct tone *)odk_driver_state(drv))->millihertz;
    return ODK_OK;
}

static const odk_method methods[] = {
    {m_set_frequency, 1, 0, 0, 0, 0, 0},
    {m_get_frequency, 0, 1, 0, 0, 0, 0},
};

static const odk_driver_class audio_tone = {
    .name = "AudioTone",
    .state_size = sizeof(struct tone),
    .start = tone_start,
    .stop = tone_stop,
    .methods = methods,
    .n_methods = 2,
};
ODK_DRIVER_CLASS(audio_tone);
