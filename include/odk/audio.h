/* SPDX-License-Identifier: MIT */
/* odk/audio.h — the audio family, shaped after AudioDriverKit
 * (docs/audio.md).
 *
 * A driver publishes audio devices (IOUserAudioDevice) with their streams
 * (IOUserAudioStream) and controls (volume, mute, selector).  Each device is
 * a node under the driver's service node, and each stream a node under the
 * device; their properties (below) are what apps and `odkctl audio` see,
 * and every change of them reaches every client watching (story 22).
 *
 * Data never passes through odkd: a device's streams are rings in one
 * memory descriptor that the host creates and every app maps
 * (odk/audio_types.h gives the layout and says who advances what).  The
 * driver runs the device's clock: once I/O started it moves its streams'
 * frames and publishes a zero timestamp every zero_timestamp_period frames
 * (odk_audio_device_publish_timestamp).
 *
 * Registry properties of an IOUserAudioDevice node: UID, Name,
 * Manufacturer, TransportType, ClockDomain, ZeroTimestampPeriod,
 * SampleRate, AvailableSampleRates (array), Running (bool), Streams (array
 * of stream dictionaries as below), Controls (array: ID, Kind "volume" /
 * "mute" / "selector", Name, Scope "device" / "output" / "input", Value,
 * Min, Max, MinDB, MaxDB (volume, dB * 100), Items (selector: array of
 * {ID, Name})).  An IOUserAudioStream node: DeviceUID, Index, Direction
 * ("output" / "input"), Format {Channels, SampleFormat ("S16_LE", ...),
 * SampleRate}, AvailableFormats (array of those), RingFrames.
 *
 * Threads: every function here is called on the driver's default queue
 * (start, a method, a timer, an fd source) unless it says otherwise, and
 * every callback runs there.  Errors follow odk/status.h.
 */
#ifndef ODK_AUDIO_H
#define ODK_AUDIO_H

#include "odk/export.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "odk/audio_types.h"
#include "odk/driver.h"
#include "odk/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct odk_audio_device odk_audio_device;

/* One item of a selector control. */
typedef struct odk_audio_selector_item {
    uint32_t id;
    const char *name;
} odk_audio_selector_item;

/* A control (IOUserAudioLevelControl, IOUserAudioBooleanControl,
 * IOUserAudioSelectorControl).  Its id is its index in the description. */
typedef struct odk_audio_control_desc {
    uint32_t kind;  /* ODK_AUDIO_CONTROL_* */
    uint32_t scope; /* 0 (device), ODK_AUDIO_OUTPUT or ODK_AUDIO_INPUT */
    const char *name;
    int64_t value;          /* initial value */
    int64_t min, max;       /* volume: the raw range (min < max) */
    int64_t min_db, max_db; /* volume: dB * 100 at min and at max */
    const odk_audio_selector_item *items; /* selector: borrowed, copied */
    size_t n_items;
} odk_audio_control_desc;

/* A stream (IOUserAudioStream). */
typedef struct odk_audio_stream_desc {
    uint32_t direction;               /* ODK_AUDIO_OUTPUT or ODK_AUDIO_INPUT */
    const odk_audio_format *formats;  /* available formats: borrowed, copied */
    size_t n_formats;
    odk_audio_format format;          /* current: available, at the device's rate */
    uint32_t ring_frames;             /* >= the zero-timestamp period */
} odk_audio_stream_desc;

/* A device (IOUserAudioDevice).  Strings and arrays are borrowed for the
 * call and copied. */
typedef struct odk_audio_device_desc {
    const char *uid;          /* unique and stable across restarts: apps open by it */
    const char *name;         /* shown to people */
    const char *manufacturer; /* NULL: "" */
    const char *transport;    /* "Virtual", "USB", "BuiltIn"...; NULL: "Virtual" */
    uint32_t clock_domain;    /* devices of one domain share a clock (0: own) */
    uint32_t zero_timestamp_period; /* frames between zero timestamps (> 0) */
    const uint32_t *rates;    /* available sample rates */
    size_t n_rates;
    uint32_t rate;            /* current: one of rates, and every stream's format's */
    const odk_audio_stream_desc *streams;
    size_t n_streams;         /* 1..ODK_AUDIO_MAX_STREAMS */
    const odk_audio_control_desc *controls;
    size_t n_controls;
} odk_audio_device_desc;

/* What the driver implements.  ctx is odk_audio_device_create's. */
typedef struct odk_audio_device_ops {
    /* Required.  The first app started I/O: every position is 0 (frames
     * an app prefilled are in the output rings), the family has set the
     * clock's sample_time to 0 at host time now (the first zero timestamp,
     * generation + 1) and the state RUNNING.  Start moving frames; return a status to refuse (the
     * app gets it, the state goes back to STOPPED). */
    int (*start_io)(void *ctx, odk_audio_device *dev);
    /* Required.  The last app stopped I/O (or closed, or went away): stop
     * moving frames.  Then the family sets every position back to 0 and
     * the state STOPPED. */
    void (*stop_io)(void *ctx, odk_audio_device *dev);
    /* Optional: an app asks for format on stream (already checked to be
     * available, with I/O stopped).  Return ODK_OK to accept (the family
     * then updates the properties and the shared memory), or an error the
     * app gets.  A new rate is the device's for every stream. */
    int (*set_format)(void *ctx, odk_audio_device *dev, uint32_t stream,
                      const odk_audio_format *format);
    /* Optional: an app sets control id to value (already checked against
     * the control's range or items).  Return ODK_OK to accept (the family
     * then updates the property), or an error the app gets.  NULL accepts
     * every value.  A selector that changes the available rates calls
     * odk_audio_device_set_rates from here. */
    int (*set_control)(void *ctx, odk_audio_device *dev, uint32_t control, int64_t value);
} odk_audio_device_ops;

/* Checks desc and publishes the device: an IOUserAudioDevice node under the
 * driver's service node, an IOUserAudioStream node under it per stream,
 * the shared memory, and the user client apps open on the device node.
 * Refuses an impossible description with the reason in err (err_len bytes,
 * may be NULL) and in the log, e.g. "stream 0, format 1: 0 channels",
 * "stream 1: ring of 32 frames is smaller than the zero-timestamp period
 * (64)", "rate 0 is not a sample rate".  BLOCKS on odkd (a few requests).
 * ops and ctx are borrowed until destroy.  The caller owns *out.
 * Errors: ODK_E_INVALID (NULL, an impossible description), ODK_E_LIMIT
 * (past an ODK_AUDIO_MAX_*), ODK_E_EXISTS (this driver has a device with
 * that uid), ODK_E_NOMEM, and odk_driver_publish_node's. */
ODK_PUBLIC int odk_audio_device_create(odk_driver *drv, const odk_audio_device_desc *desc,
                                       const odk_audio_device_ops *ops, void *ctx,
                                       odk_audio_device **out, char *err, size_t err_len);
/* Withdraws the device: its state becomes GONE in the shared memory, its
 * nodes leave the registry (every watching app is told, and its calls then
 * fail with ODK_E_GONE), stop_io runs first if I/O was running.  NULL is
 * allowed.  BLOCKS on odkd. */
ODK_PUBLIC void odk_audio_device_destroy(odk_audio_device *dev);

/* ---- the clock and the rings (the data path: never blocks) ------------- */

/* Publishes a zero timestamp: frame sample_time was at the converter at
 * host_time_ns (CLOCK_MONOTONIC).  Apps read it from the shared memory.
 * Any thread, one at a time per device.  Errors: ODK_E_INVALID (NULL),
 * ODK_E_STATE (I/O is not running). */
ODK_PUBLIC int odk_audio_device_publish_timestamp(odk_audio_device *dev, uint64_t sample_time,
                                                  uint64_t host_time_ns);
/* The ring of stream (borrowed: lives until destroy; its geometry holds
 * while I/O runs): *base its first byte, *ring_frames, *frame_bytes (any
 * out-pointer may be NULL).  Any thread.  Errors: ODK_E_INVALID (NULL dev,
 * no such stream). */
ODK_PUBLIC int odk_audio_device_ring(odk_audio_device *dev, uint32_t stream, uint8_t **base,
                                     uint32_t *ring_frames, uint32_t *frame_bytes);
/* The app's position of stream (odk/audio_types.h: output, one past the
 * last frame it wrote; input, one past the last it read) and whether an app
 * streams on it.  Untrusted: the driver checks it against its own position.
 * Any thread; never fails (0 for a NULL dev or no such stream). */
ODK_PUBLIC uint64_t odk_audio_device_app_position(odk_audio_device *dev, uint32_t stream,
                                                  bool *active);
/* Publishes the driver's position of stream (output: one past the last
 * frame consumed; input: one past the last frame written, after writing
 * them).  Any thread, one at a time per stream.  Errors: ODK_E_INVALID. */
ODK_PUBLIC int odk_audio_device_set_position(odk_audio_device *dev, uint32_t stream,
                                             uint64_t pos);
/* Counts one xrun on stream (shown in the shared memory and by odkctl).
 * Any thread.  NULL or no such stream is ignored. */
ODK_PUBLIC void odk_audio_device_count_xrun(odk_audio_device *dev, uint32_t stream);
/* The current sample rate and format of stream (fixed while I/O runs).
 * Any thread.  Errors: ODK_E_INVALID. */
ODK_PUBLIC int odk_audio_device_format(odk_audio_device *dev, uint32_t stream,
                                       odk_audio_format *format);

/* ---- a clock for devices that have none of their own ------------------- */

/* A virtual device (a loopback, a tone generator) or a model of hardware
 * runs on a host clock: odk_audio_clock calls tick on the driver's default
 * queue every frames_per_tick frames of the device's current rate, with the
 * tick's first frame and its frame count, then publishes the zero timestamp
 * of the tick's end.  Ticks are due at absolute times counted from the
 * start (a timerfd on CLOCK_MONOTONIC), so a late tick is caught up with
 * the ticks it missed and lateness never accumulates into drift.  tick
 * moves the tick's frames and sets the streams' positions. */
typedef struct odk_audio_clock odk_audio_clock;
typedef void (*odk_audio_clock_fn)(void *ctx, odk_audio_device *dev, uint64_t first_frame,
                                   uint32_t frames);
/* Starts a clock at frame 0 now (call it from start_io; frames_per_tick 0
 * means the device's zero_timestamp_period).  Errors: ODK_E_INVALID (NULL,
 * no rate), ODK_E_IO (no timerfd), ODK_E_NOMEM. */
ODK_PUBLIC int odk_audio_clock_start(odk_audio_device *dev, uint32_t frames_per_tick,
                                     odk_audio_clock_fn tick, void *ctx, odk_audio_clock **out);
/* Stops the clock (no tick runs after it returns) and frees it; from
 * stop_io.  NULL is ignored. */
ODK_PUBLIC void odk_audio_clock_stop(odk_audio_clock *clock);
/* The CLOCK_MONOTONIC time in ns at which frame is due.  Never fails. */
ODK_PUBLIC uint64_t odk_audio_clock_host_time(const odk_audio_clock *clock, uint64_t frame);

/* ---- run-time changes (each is a notification to every app) ----------- */

/* Replaces the available sample rates and the current rate (one of them);
 * every stream's available formats keep only the entries at the new rates
 * (rate 0 entries stay) and its current format moves to the new rate (to
 * the first available format there if its own is not).  Refused while I/O runs.
 * BLOCKS on odkd.  Errors: ODK_E_INVALID (bad rates: the reason is
 * logged), ODK_E_STATE (I/O running), ODK_E_LIMIT. */
ODK_PUBLIC int odk_audio_device_set_rates(odk_audio_device *dev, const uint32_t *rates,
                                          size_t n_rates, uint32_t rate);
/* Replaces stream's available formats and current format (checked as in
 * create).  Refused while I/O runs.  BLOCKS on odkd.  Errors: as
 * odk_audio_device_set_rates. */
ODK_PUBLIC int odk_audio_device_set_formats(odk_audio_device *dev, uint32_t stream,
                                            const odk_audio_format *formats, size_t n_formats,
                                            const odk_audio_format *format);
/* Sets control's value as the device changed it (a knob, a clock that
 * locked).  BLOCKS on odkd.  Errors: ODK_E_INVALID (no such control, a value
 * out of range or not an item). */
ODK_PUBLIC int odk_audio_device_set_control(odk_audio_device *dev, uint32_t control,
                                            int64_t value);
/* The control's value.  Never fails (0 for no such control). */
ODK_PUBLIC int64_t odk_audio_device_control(const odk_audio_device *dev, uint32_t control);

/* ---- accessors (never fail) --------------------------------------------- */

/* The IOUserAudioDevice node's registry id. */
ODK_PUBLIC uint64_t odk_audio_device_node_id(const odk_audio_device *dev);
/* The UID (borrowed, until destroy). */
ODK_PUBLIC const char *odk_audio_device_uid(const odk_audio_device *dev);
/* True while I/O runs. */
ODK_PUBLIC bool odk_audio_device_running(const odk_audio_device *dev);

/* Checks one format: fills why (may be NULL) with the reason and returns
 * ODK_E_INVALID ("0 channels", "rate 0 is not a sample rate", "unknown
 * sample format 9"), or ODK_E_LIMIT past ODK_AUDIO_MAX_CHANNELS or the
 * rate range; ODK_OK otherwise.  Pure: any thread. */
ODK_PUBLIC int odk_audio_format_check(const odk_audio_format *f, char *why, size_t why_len);
/* "S16_LE", "S24_3LE", "S32_LE", "FLOAT_LE"; NULL for an unknown one. */
ODK_PUBLIC const char *odk_audio_sample_format_name(uint32_t sample_format);

#ifdef __cplusplus
}
#endif
#endif
