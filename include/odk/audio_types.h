/* SPDX-License-Identifier: MIT */
/* odk/audio_types.h — what a driver (odk/audio.h) and an app
 * (odk/audio_client.h) agree on: sample formats, stream directions,
 * control kinds, and the layout of a device's shared memory (the clock
 * and the rings), which both sides map.  docs/audio.md explains the model.
 *
 * Types and static inline helpers only: nothing here is a call.
 */
#ifndef ODK_AUDIO_TYPES_H
#define ODK_AUDIO_TYPES_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- limits (a description past one is refused with ODK_E_LIMIT) ------- */

#define ODK_AUDIO_MAX_CHANNELS 16u     /* per stream */
#define ODK_AUDIO_MAX_STREAMS 8u       /* per device */
#define ODK_AUDIO_MAX_FORMATS 128u     /* available formats per stream */
#define ODK_AUDIO_MAX_RATES 32u        /* available sample rates per device */
#define ODK_AUDIO_MAX_CONTROLS 32u     /* per device */
#define ODK_AUDIO_MAX_ITEMS 16u        /* items of one selector control */
#define ODK_AUDIO_MIN_RATE 8000u       /* frames per second */
#define ODK_AUDIO_MAX_RATE 384000u
#define ODK_AUDIO_MAX_RING_FRAMES (1u << 20)
#define ODK_AUDIO_MAX_UID 127u         /* bytes of a device UID */

/* ---- sample formats ------------------------------------------------------ */

/* Interleaved, little-endian, signed (ALSA's names). */
typedef enum odk_audio_sample_format {
    ODK_AUDIO_S16_LE = 1,   /* 2 bytes a sample */
    ODK_AUDIO_S24_3LE = 2,  /* 3 bytes a sample, packed */
    ODK_AUDIO_S32_LE = 3,   /* 4 bytes a sample */
    ODK_AUDIO_FLOAT_LE = 4, /* IEEE 754 binary32, 4 bytes, nominal range [-1, 1] */
} odk_audio_sample_format;

/* One format of a stream: the device's sample rate is part of it (all the
 * streams of a device run at the device's one rate).  In a stream's list
 * of available formats, rate 0 means "at every sample rate the device has
 * available now" (so a loopback lists 16 channel counts x 4 sample formats
 * once, not once per rate); a non-zero rate limits the entry to that rate. */
typedef struct odk_audio_format {
    uint32_t channels;      /* 1..ODK_AUDIO_MAX_CHANNELS */
    uint32_t sample_format; /* odk_audio_sample_format */
    uint32_t rate;          /* ODK_AUDIO_MIN_RATE..ODK_AUDIO_MAX_RATE (0: see above) */
} odk_audio_format;

/* Bytes of one sample of sample_format; 0 for an unknown one. */
static inline uint32_t odk_audio_sample_bytes(uint32_t sample_format)
{
    switch (sample_format) {
    case ODK_AUDIO_S16_LE:
        return 2;
    case ODK_AUDIO_S24_3LE:
        return 3;
    case ODK_AUDIO_S32_LE:
    case ODK_AUDIO_FLOAT_LE:
        return 4;
    default:
        return 0;
    }
}

/* Bytes of one frame (one sample of every channel); 0 for a format with an
 * unknown sample format. */
static inline uint32_t odk_audio_frame_bytes(const odk_audio_format *f)
{
    return f->channels * odk_audio_sample_bytes(f->sample_format);
}

/* Stream directions, from the app's side (AudioDriverKit's). */
#define ODK_AUDIO_OUTPUT 1u /* the app writes, the driver plays (playback) */
#define ODK_AUDIO_INPUT 2u  /* the driver writes, the app reads (capture) */

/* Control kinds.  A control applies to the device (scope 0) or to every
 * stream of one direction (scope ODK_AUDIO_OUTPUT / ODK_AUDIO_INPUT). */
#define ODK_AUDIO_CONTROL_VOLUME 1u   /* value in [min, max]; min_db/max_db map it */
#define ODK_AUDIO_CONTROL_MUTE 2u     /* value 0 or 1 */
#define ODK_AUDIO_CONTROL_SELECTOR 3u /* value is one item's id (a clock source...) */

/* ---- the shared memory of a device -------------------------------------- */

/* Every device has one memory descriptor (odk/memory.h) that the driver's
 * host creates and every app of the device maps (odk_audio_open): this
 * header at offset 0, then each stream's ring at streams[i].ring_offset.
 * Nothing on the data path goes through odkd or through a call.
 *
 * Positions are sample times: frames counted from 0 at the start of I/O on
 * the device's one clock.  They are 0 while I/O is stopped (they go back to
 * 0 when it stops), so an app may prefill an output's frames [0,
 * ring_frames) before it starts I/O, as ALSA's start threshold expects.  Frame p of a stream lives in its ring at frame
 * index p % ring_frames (byte offset (p % ring_frames) * frame_bytes).
 *
 * Who advances what:
 *  - the driver writes clock (under its seqlock), state, and each stream's
 *    driver_pos and xruns;
 *  - the app writes app_pos (and app_active) of the streams it uses, and the
 *    output rings' frames;
 *  - the driver writes the input rings' frames.
 * Output stream: the app writes frames [app_pos, ...) and then publishes
 *   app_pos = one past the last frame written (release store); it may write
 *   frame p only while p < driver_pos + ring_frames.  driver_pos is one past
 *   the last frame the driver consumed; a frame the driver needs at or past
 *   app_pos plays as silence and counts an xrun (while app_active is 1).
 * Input stream: the driver writes frames and then publishes driver_pos =
 *   one past the last frame written; the app reads [app_pos, driver_pos) and
 *   publishes app_pos = one past the last frame read.  Frames older than
 *   driver_pos - ring_frames are overwritten: when app_pos falls that far
 *   behind (while app_active is 1) the driver counts an xrun.
 * The driver treats app_pos as untrusted: a value out of range counts as
 * an xrun, never as a fault.
 *
 * Reading the clock (the seqlock): load seq (acquire); if odd, retry; copy
 * the fields; load seq again (acquire fence first); retry when it changed.
 * libodk's odk_audio_get_timestamp does exactly this.  A zero timestamp says
 * "frame sample_time was at the converter at host_time_ns (CLOCK_MONOTONIC)";
 * the driver publishes one every period_frames frames, so an app derives the
 * current position as sample_time + (now - host_time_ns) * rate / 1e9.
 *
 * All fields are naturally aligned and accessed with __atomic loads and
 * stores (acquire / release); the layout is native-endian and only shared
 * between processes of one machine. */
#define ODK_AUDIO_SHM_MAGIC 0x414b444fu /* "ODKA" */
#define ODK_AUDIO_SHM_VERSION 1u

/* device state */
#define ODK_AUDIO_STATE_STOPPED 0u
#define ODK_AUDIO_STATE_RUNNING 1u
#define ODK_AUDIO_STATE_GONE 2u /* withdrawn: no more frames or timestamps */

typedef struct odk_audio_shm_clock {
    uint32_t seq;          /* seqlock: odd while the driver writes */
    uint32_t rate;         /* the device's sample rate, frames per second */
    uint64_t sample_time;  /* frames since the start of I/O */
    uint64_t host_time_ns; /* CLOCK_MONOTONIC ns of sample_time */
    uint64_t period_frames; /* the zero-timestamp period */
    uint64_t generation;   /* +1 at every start of I/O */
} odk_audio_shm_clock;

typedef struct odk_audio_shm_stream {
    /* Fixed while I/O runs; written by the driver, under the clock's seqlock. */
    uint32_t direction;     /* ODK_AUDIO_OUTPUT or ODK_AUDIO_INPUT */
    uint32_t frame_bytes;   /* of the current format */
    uint32_t channels;      /* the current format */
    uint32_t sample_format;
    uint64_t ring_offset;   /* bytes from the start of the memory */
    uint64_t ring_bytes;    /* room at ring_offset (fixed for the device's life) */
    uint32_t ring_frames;   /* the ring's length in frames */
    uint32_t reserved;
    /* Moving positions. */
    uint64_t driver_pos;    /* driver: see above */
    uint64_t app_pos;       /* app: see above */
    uint32_t app_active;    /* app: 1 while it streams (xruns are counted) */
    uint32_t reserved2;
    uint64_t xruns;         /* driver: underruns (output) / overruns (input) */
} odk_audio_shm_stream;

typedef struct odk_audio_shm {
    uint32_t magic;   /* ODK_AUDIO_SHM_MAGIC */
    uint32_t version; /* ODK_AUDIO_SHM_VERSION */
    uint32_t state;   /* ODK_AUDIO_STATE_* */
    uint32_t n_streams;
    odk_audio_shm_clock clock;
    odk_audio_shm_stream streams[ODK_AUDIO_MAX_STREAMS];
} odk_audio_shm;

/* The device node's user-client selectors (what odk_audio_* calls; other
 * languages call them directly on a connection to the IOUserAudioDevice
 * node).  Memory type 0 of that connection is the shared memory above. */
enum {
    ODK_AUDIO_SEL_START_IO = 0,   /* no arguments */
    ODK_AUDIO_SEL_STOP_IO = 1,    /* no arguments */
    ODK_AUDIO_SEL_SET_FORMAT = 2, /* in: stream, channels, sample_format, rate */
    ODK_AUDIO_SEL_SET_CONTROL = 3, /* in: control id, value (int64 as uint64) */
};
#define ODK_AUDIO_MEMORY_SHARED 0u

#ifdef __cplusplus
}
#endif
#endif
