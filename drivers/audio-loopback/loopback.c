/* SPDX-License-Identifier: MIT */
/* audio-loopback: what an app plays to the output is what an app records
 * from the input (BlackHole, Loopback).  One device, "odk-loopback", with an
 * output and an input stream of up to 16 channels at 44.1 to 192 kHz in
 * any of the four sample formats, on one clock: both directions move the
 * same frames at the same tick, so they cannot drift apart.
 *
 * The clock is the family's host clock (odk_audio_clock, due at absolute
 * times from the start of I/O, so late ticks do not accumulate): every
 * zero-timestamp period the driver takes that many output frames (silence
 * for frames the app has not written: an underrun), puts them in the input
 * ring at the same sample times and publishes both positions; the clock
 * publishes the zero timestamp.
 *
 * Gain applies only where the user asked for it: the output's volume
 * control starts at its maximum (unity: frames are copied bit for bit) and
 * its mute at off.
 *
 * An app may also ask for a device of its own (story 16), through the
 * driver's user client (the service node):
 *   selector 0  create   struct in: the UID (1..127 bytes); scalar out: the
 *                        device's registry node.  The device exists until
 *                        the app's connection closes (or the app dies).
 * The device node's own user client (start/stop, formats, controls, shared
 * memory) is the audio family's (odk/audio_client.h).
 *
 * Settings (integers; the sim device's properties win over the
 * personality's): OdkAudioPeriod (frames between zero timestamps, 256),
 * OdkAudioRingFrames (8192), and the string OdkAudioUID ("odk-loopback"). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "odk/audio.h"
#include "odk/driver.h"
#include "odk/log.h"
#include "odk/queue.h"

#define OUT 0u /* stream indexes */
#define IN 1u
#define VOLUME 0u /* control ids */
#define MUTE 1u
#define VOLUME_MAX 1000 /* unity gain */
#define PERIOD 256u     /* frames between zero timestamps, unless the personality says */
#define RING 8192u      /* frames per ring, unless the personality says */

static const uint32_t rates[] = {44100, 48000, 88200, 96000, 176400, 192000};

struct loop {
    odk_driver *drv;
    odk_audio_device *dev;
    odk_user_client *owner; /* the app that asked for it; NULL for the driver's own */
    odk_audio_clock *clock;
    struct loop *next;
};

struct state {
    struct loop *loops; /* the driver's own first */
    uint32_t period, ring;
};

/* Scales n samples of format in place by gain (0..1). */
static void apply_gain(uint8_t *p, size_t samples, uint32_t fmt, double gain)
{
    for (size_t i = 0; i < samples; i++) {
        switch (fmt) {
        case ODK_AUDIO_S16_LE: {
            int16_t v;
            memcpy(&v, p + 2 * i, 2);
            v = (int16_t)lrint(v * gain);
            memcpy(p + 2 * i, &v, 2);
            break;
        }
        case ODK_AUDIO_S24_3LE: {
            uint8_t *s = p + 3 * i;
            int32_t v = (int32_t)((uint32_t)s[0] << 8 | (uint32_t)s[1] << 16 | (uint32_t)s[2] << 24) >> 8;
            v = (int32_t)lrint(v * gain);
            s[0] = (uint8_t)v, s[1] = (uint8_t)(v >> 8), s[2] = (uint8_t)(v >> 16);
            break;
        }
        case ODK_AUDIO_S32_LE: {
            int32_t v;
            memcpy(&v, p + 4 * i, 4);
            v = (int32_t)llrint(v * gain);
            memcpy(p + 4 * i, &v, 4);
            break;
        }
        default: {
            float v;
            memcpy(&v, p + 4 * i, 4);
            v = (float)(v * gain);
            memcpy(p + 4 * i, &v, 4);
        }
        }
    }
}

/* Moves frames [p, p + n) from the output ring to the input ring. */
static void move_period(void *ctx, odk_audio_device *dev, uint64_t p, uint32_t n)
{
    (void)dev;
    struct loop *l = ctx;
    uint8_t *oring, *iring;
    uint32_t ofr, ifr, ofb, ifb;
    odk_audio_device_ring(l->dev, OUT, &oring, &ofr, &ofb);
    odk_audio_device_ring(l->dev, IN, &iring, &ifr, &ifb);
    odk_audio_format of, inf;
    odk_audio_device_format(l->dev, OUT, &of);
    odk_audio_device_format(l->dev, IN, &inf);
    bool same = of.channels == inf.channels && of.sample_format == inf.sample_format;

    /* What the app wrote: frames before app_pos, no further ahead than the
     * ring allows (app_pos is the app's word, so it is checked). */
    bool oactive, iactive;
    uint64_t app = odk_audio_device_app_position(l->dev, OUT, &oactive);
    uint64_t have = 0;
    if (app > p && app <= p + ofr)
        have = app - p < n ? app - p : n;
    if (oactive && have < n)
        odk_audio_device_count_xrun(l->dev, OUT);

    int64_t vol = odk_audio_device_control(l->dev, VOLUME);
    bool mute = odk_audio_device_control(l->dev, MUTE) != 0;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t f = p + i;
        uint8_t *dst = iring + (size_t)(f % ifr) * ifb;
        if (!same || mute || i >= have) {
            memset(dst, 0, ifb);
            continue;
        }
        memcpy(dst, oring + (size_t)(f % ofr) * ofb, ifb);
        if (vol != VOLUME_MAX)
            apply_gain(dst, inf.channels, inf.sample_format, (double)vol / VOLUME_MAX);
    }
    uint64_t end = p + n;
    odk_audio_device_set_position(l->dev, OUT, end);
    odk_audio_device_set_position(l->dev, IN, end);
    uint64_t read = odk_audio_device_app_position(l->dev, IN, &iactive);
    if (iactive && (read > end || end - read > ifr))
        odk_audio_device_count_xrun(l->dev, IN); /* the app fell a ring behind */
}

static int start_io(void *ctx, odk_audio_device *dev)
{
    struct loop *l = ctx;
    struct state *s = odk_driver_state(l->drv);
    int st = odk_audio_clock_start(dev, s->period, move_period, l, &l->clock);
    if (st == ODK_OK) {
        odk_audio_format f;
        odk_audio_device_format(dev, OUT, &f);
        odk_info("audio-loopback %s: I/O at %u Hz, %u-frame periods",
                 odk_audio_device_uid(dev), f.rate, s->period);
    }
    return st;
}

static void stop_io(void *ctx, odk_audio_device *dev)
{
    (void)dev;
    struct loop *l = ctx;
    odk_audio_clock_stop(l->clock);
    l->clock = NULL;
}

static const odk_audio_device_ops ops = {.start_io = start_io, .stop_io = stop_io};

static int create(odk_driver *drv, const char *uid, const char *name, odk_user_client *owner,
                  struct loop **out)
{
    struct state *s = odk_driver_state(drv);
    /* Every channel count in every sample format, at every rate (rate 0). */
    static odk_audio_format formats[ODK_AUDIO_MAX_CHANNELS * 4];
    for (uint32_t c = 0; c < ODK_AUDIO_MAX_CHANNELS; c++)
        for (uint32_t k = 0; k < 4; k++)
            formats[c * 4 + k] = (odk_audio_format){c + 1, k + 1, 0};
    odk_audio_stream_desc streams[2] = {
        {ODK_AUDIO_OUTPUT, formats, 64, {2, ODK_AUDIO_S16_LE, 48000}, s->ring},
        {ODK_AUDIO_INPUT, formats, 64, {2, ODK_AUDIO_S16_LE, 48000}, s->ring},
    };
    odk_audio_control_desc controls[2] = {
        {.kind = ODK_AUDIO_CONTROL_VOLUME, .scope = ODK_AUDIO_OUTPUT, .name = "Output volume",
         .value = VOLUME_MAX, .min = 0, .max = VOLUME_MAX, .min_db = -9600, .max_db = 0},
        {.kind = ODK_AUDIO_CONTROL_MUTE, .scope = ODK_AUDIO_OUTPUT, .name = "Output mute"},
    };
    odk_audio_device_desc d = {
        .uid = uid,
        .name = name,
        .manufacturer = "odk",
        .transport = "Virtual",
        .zero_timestamp_period = s->period,
        .rates = rates,
        .n_rates = sizeof rates / sizeof rates[0],
        .rate = 48000,
        .streams = streams,
        .n_streams = 2,
        .controls = controls,
        .n_controls = 2,
    };
    struct loop *l = calloc(1, sizeof *l);
    if (!l)
        return ODK_E_NOMEM;
    *l = (struct loop){.drv = drv, .owner = owner};
    char err[200];
    int st = odk_audio_device_create(drv, &d, &ops, l, &l->dev, err, sizeof err);
    if (st < 0) {
        odk_error("audio-loopback: %s refused: %s", uid, err);
        free(l);
        return st;
    }
    l->next = s->loops;
    s->loops = l;
    *out = l;
    return ODK_OK;
}

static void destroy(odk_driver *drv, struct loop *l)
{
    struct state *s = odk_driver_state(drv);
    for (struct loop **p = &s->loops; *p; p = &(*p)->next)
        if (*p == l) {
            *p = l->next;
            break;
        }
    odk_audio_device_destroy(l->dev); /* runs stop_io if I/O was running */
    free(l);
}

/* A setting from the device the driver sits on (the sim device's
 * properties: a test or a demo picks its period), else the personality's. */
static int64_t setting(odk_driver *drv, const char *key, int64_t dflt)
{
    const odk_value *v = odk_dict_get(odk_driver_provider_properties(drv), key);
    if (v && odk_value_type(v) == ODK_TYPE_INT)
        return odk_value_int(v);
    return odk_dict_get_int(odk_driver_personality(drv), key, dflt);
}

static int lb_start(odk_driver *drv)
{
    struct state *s = odk_driver_state(drv);
    const odk_value *pers = odk_driver_personality(drv);
    int64_t period = setting(drv, "OdkAudioPeriod", PERIOD);
    int64_t ring = setting(drv, "OdkAudioRingFrames", RING);
    /* Out-of-range values reach the family as they are: it refuses them
     * with the reason. */
    s->period = period < 0 || period > UINT32_MAX ? 0 : (uint32_t)period;
    s->ring = ring < 0 || ring > UINT32_MAX ? 0 : (uint32_t)ring;
    const char *uid = odk_dict_get_string(odk_driver_provider_properties(drv), "OdkAudioUID",
                                          odk_dict_get_string(pers, "OdkAudioUID", "odk-loopback"));
    struct loop *l;
    int st = create(drv, uid, odk_dict_get_string(pers, "OdkAudioName", "odk loopback"), NULL,
                    &l);
    return st < 0 ? st : odk_driver_register_service(drv);
}

static void lb_stop(odk_driver *drv)
{
    struct state *s = odk_driver_state(drv);
    while (s->loops)
        destroy(drv, s->loops);
}

static int m_create(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    if (call->struct_in_len == 0 || call->struct_in_len > ODK_AUDIO_MAX_UID)
        return ODK_E_INVALID;
    char uid[ODK_AUDIO_MAX_UID + 1];
    memcpy(uid, call->struct_in, call->struct_in_len);
    uid[call->struct_in_len] = 0;
    if (strlen(uid) != call->struct_in_len)
        return ODK_E_INVALID;
    struct loop *l;
    int st = create(drv, uid, uid, uc, &l);
    if (st == ODK_OK)
        call->scalar_out[0] = odk_audio_device_node_id(l->dev);
    return st;
}

static void lb_client_close(odk_driver *drv, odk_user_client *uc)
{
    struct state *s = odk_driver_state(drv);
    struct loop *l = s->loops;
    while (l) {
        struct loop *next = l->next;
        if (l->owner == uc) /* the app's device goes with its connection */
            destroy(drv, l);
        l = next;
    }
}

static const odk_method methods[] = {
    {m_create, 0, 1, ODK_VARIABLE_SIZE, 0, 0, 0},
};

static const odk_driver_class audio_loopback = {
    .name = "AudioLoopback",
    .state_size = sizeof(struct state),
    .start = lb_start,
    .stop = lb_stop,
    .methods = methods,
    .n_methods = 1,
    .client_close = lb_client_close,
};
ODK_DRIVER_CLASS(audio_loopback);
