/* SPDX-License-Identifier: MIT */
/* odk/audio_client.h — an app plays to and records from an odk audio
 * device through libodk (docs/audio.md).  The ALSA plugin is one such app.
 *
 * An odk_audio is one app's handle on one IOUserAudioDevice: its own
 * connection to odkd (for the device's properties and their changes) and
 * a user client of the device (for start/stop, formats and controls), and
 * the device's shared memory mapped (the clock and the rings, laid out in
 * odk/audio_types.h, which says who advances what).  Samples move straight
 * between the app and the driver's process through that memory: no call,
 * no copy through odkd.
 *
 * Once the device is withdrawn, or its driver dies, every call that talks
 * to it returns ODK_E_GONE, odk_audio_read_event returns an
 * ODK_AUDIO_EVENT_GONE event, and odk_audio_state says GONE within a
 * second (a driver killed with SIGKILL cannot say it: the connection's end
 * does).  A restarted driver publishes the device again under its UID: open
 * it again.
 *
 * Threads: the functions of one odk_audio are called by one thread at a
 * time, except the data-path functions marked "any thread" (they only
 * touch the shared memory).  Functions marked BLOCKS talk to odkd or the
 * driver; the others never block.  Every blocking function can also give
 * ODK_E_NOMEM, ODK_E_IO and ODK_E_PROTOCOL (odk/client.h).
 */
#ifndef ODK_AUDIO_CLIENT_H
#define ODK_AUDIO_CLIENT_H

#include "odk/export.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "odk/audio_types.h"
#include "odk/status.h"
#include "odk/value.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct odk_audio odk_audio;

/* ---- finding devices ----------------------------------------------------- */

/* Every registered IOUserAudioDevice of the odkd at state_dir (NULL:
 * $ODK_STATE_DIR, else /run/odk), in registry order: *devices is a new
 * array (caller frees) of dictionaries {"id": node id, "properties": the
 * device's properties (odk/audio.h lists them), "streams": array of the
 * IOUserAudioStream nodes' properties}.  BLOCKS.  Errors: ODK_E_INVALID
 * (devices NULL), ODK_E_NOT_FOUND (no odkd there), ODK_E_DISCONNECTED. */
ODK_PUBLIC int odk_audio_list(const char *state_dir, odk_value **devices);

/* ---- opening ------------------------------------------------------------- */

/* Opens the device whose UID is uid (NULL or "": the default device, the
 * first one in registry order) at state_dir (as odk_audio_list), maps its
 * shared memory and starts watching its properties.  The caller owns *out:
 * odk_audio_close.  BLOCKS.  Errors: ODK_E_INVALID (out NULL),
 * ODK_E_NOT_FOUND (no odkd, or no such device), ODK_E_ACCESS, ODK_E_GONE
 * (it went away meanwhile), ODK_E_PROTOCOL (the shared memory is not an
 * audio device's of this version). */
ODK_PUBLIC int odk_audio_open(const char *state_dir, const char *uid, odk_audio **out);
/* Stops I/O if this handle started it, closes the connections and unmaps
 * the memory.  NULL is allowed.  BLOCKS (briefly, for the driver). */
ODK_PUBLIC void odk_audio_close(odk_audio *a);

/* ---- properties (a copy kept up to date by odk_audio_read_event) --------- */

/* The device's properties as last seen (borrowed, valid until the next
 * odk_audio_read_event or close; see odk/audio.h for the keys).  Never
 * fails. */
ODK_PUBLIC const odk_value *odk_audio_properties(const odk_audio *a);
/* The device's UID (borrowed, until close).  Never fails. */
ODK_PUBLIC const char *odk_audio_uid(const odk_audio *a);
/* Its IOUserAudioDevice node id.  Never fails. */
ODK_PUBLIC uint64_t odk_audio_node_id(const odk_audio *a);
/* The current sample rate.  Never fails (0 for NULL). */
ODK_PUBLIC uint32_t odk_audio_rate(const odk_audio *a);
/* The available sample rates: up to cap into rates, *n their count (may
 * exceed cap).  Errors: ODK_E_INVALID (NULL a or n). */
ODK_PUBLIC int odk_audio_rates(const odk_audio *a, uint32_t *rates, size_t cap, size_t *n);
/* The number of streams.  Never fails. */
ODK_PUBLIC uint32_t odk_audio_stream_count(const odk_audio *a);
/* Stream i's direction (ODK_AUDIO_OUTPUT / INPUT) and current format.
 * Errors: ODK_E_INVALID (NULL, no such stream). */
ODK_PUBLIC int odk_audio_stream_format(const odk_audio *a, uint32_t stream, uint32_t *direction,
                                       odk_audio_format *format);
/* Stream i's available formats as the driver lists them (an entry with
 * rate 0 holds at every rate of odk_audio_rates): up to cap into formats,
 * *n their count.  Errors: ODK_E_INVALID. */
ODK_PUBLIC int odk_audio_stream_formats(const odk_audio *a, uint32_t stream,
                                        odk_audio_format *formats, size_t cap, size_t *n);
/* The first stream of direction, in *stream.  Errors: ODK_E_NOT_FOUND. */
ODK_PUBLIC int odk_audio_find_stream(const odk_audio *a, uint32_t direction, uint32_t *stream);
/* Whether format (a concrete one: rate > 0) is available on stream now.
 * Never fails (false for NULL or no such stream). */
ODK_PUBLIC bool odk_audio_format_available(const odk_audio *a, uint32_t stream,
                                           const odk_audio_format *format);

/* ---- notifications ------------------------------------------------------- */

#define ODK_AUDIO_EVENT_PROPERTY 1u /* a property of the device or a stream changed */
#define ODK_AUDIO_EVENT_GONE 2u     /* the device was withdrawn or its driver died */

typedef struct odk_audio_event {
    uint32_t kind;  /* ODK_AUDIO_EVENT_* */
    char key[64];   /* PROPERTY: the device property that changed ("SampleRate",
                       "AvailableSampleRates", "Streams", "Controls", "Running",
                       ...); every changed key is one event */
} odk_audio_event;

/* A descriptor (borrowed, owned by a) that becomes readable when events may
 * wait: poll it, then call odk_audio_read_event until ODK_E_AGAIN.  Never
 * fails. */
ODK_PUBLIC int odk_audio_event_fd(const odk_audio *a);
/* Takes the next event, waiting up to timeout_ms (-1: until one comes; 0:
 * not at all).  Before it returns a PROPERTY event, odk_audio_properties
 * and the accessors above show the new value.  Every property change the
 * driver makes yields an event to every open odk_audio (none is merged
 * away), in order.  A GONE event comes once; later calls give ODK_E_GONE.
 * BLOCKS up to timeout_ms.  Errors: ODK_E_AGAIN (timeout_ms 0 and none
 * waits), ODK_E_TIMEOUT, ODK_E_GONE (after the GONE event), ODK_E_INVALID. */
ODK_PUBLIC int odk_audio_read_event(odk_audio *a, odk_audio_event *ev, int timeout_ms);

/* ---- format, controls, I/O (calls to the driver: BLOCK) ----------------- */

/* Asks for format on stream (a rate change is the device's, for every
 * stream).  A change needs I/O stopped; asking for the format the stream
 * has is ODK_OK at any time (a second app joining a running device).  When
 * it returns OK the shared memory has the new geometry.  Errors:
 * ODK_E_UNSUPPORTED (format is not among the stream's available formats
 * now), ODK_E_BUSY (a change while I/O runs), ODK_E_INVALID (no such
 * stream), ODK_E_GONE, or the driver's refusal. */
ODK_PUBLIC int odk_audio_set_format(odk_audio *a, uint32_t stream, const odk_audio_format *format);
/* Sets control id (its index in the Controls property) to value.  Errors:
 * ODK_E_INVALID (no such control, a value out of range or not an item),
 * ODK_E_GONE, or the driver's refusal. */
ODK_PUBLIC int odk_audio_set_control(odk_audio *a, uint32_t control, int64_t value);
/* Starts I/O (counted per handle: the device runs while any app started
 * it; the first start restarts the clock at sample time 0; frames written
 * to an output before it, from position 0, play first).  Errors:
 * ODK_E_GONE, or the driver's start_io refusal. */
ODK_PUBLIC int odk_audio_start(odk_audio *a);
/* Stops this handle's I/O.  Errors: ODK_E_STATE (not started), ODK_E_GONE. */
ODK_PUBLIC int odk_audio_stop(odk_audio *a);

/* ---- the data path (shared memory: never blocks, no call) --------------- */

/* The mapped shared memory (borrowed, until close; layout in
 * odk/audio_types.h).  Never fails. */
ODK_PUBLIC odk_audio_shm *odk_audio_shared(odk_audio *a);
/* Stream's ring: *base its first byte, *ring_frames, *frame_bytes (as the
 * shared memory says now; any may be NULL).  Any thread.  Errors:
 * ODK_E_INVALID (no such stream), ODK_E_PROTOCOL (the driver wrote a ring
 * that does not fit in the memory). */
ODK_PUBLIC int odk_audio_ring(odk_audio *a, uint32_t stream, uint8_t **base,
                              uint32_t *ring_frames, uint32_t *frame_bytes);
/* A zero timestamp, read under the clock's seqlock. */
typedef struct odk_audio_timestamp {
    uint64_t sample_time;
    uint64_t host_time_ns; /* CLOCK_MONOTONIC */
    uint32_t rate;
    uint32_t state;        /* ODK_AUDIO_STATE_* */
    uint64_t generation;
} odk_audio_timestamp;
/* Reads the latest zero timestamp.  Any thread.  Errors: ODK_E_INVALID,
 * ODK_E_AGAIN (the driver kept writing: retry). */
ODK_PUBLIC int odk_audio_get_timestamp(odk_audio *a, odk_audio_timestamp *ts);
/* The driver's position of stream (acquire load).  Any thread.  Never
 * fails (0 for no such stream). */
ODK_PUBLIC uint64_t odk_audio_driver_position(odk_audio *a, uint32_t stream);
/* Publishes the app's position of stream (release store) and marks it
 * active (xruns counted) or not.  Any thread.  Errors: ODK_E_INVALID. */
ODK_PUBLIC int odk_audio_set_app_position(odk_audio *a, uint32_t stream, uint64_t pos,
                                          bool active);
/* ODK_AUDIO_STATE_* from the shared memory, GONE once the device or its
 * driver went away.  Any thread.  Never fails. */
ODK_PUBLIC uint32_t odk_audio_state(odk_audio *a);

/* Copies frames: write n frames from src into output stream at position pos
 * (and publishes app_pos = pos + n, active), or read n frames at pos from an
 * input stream into dst (and publishes app_pos = pos + n).  Wraps the ring.
 * Any thread.  Errors: ODK_E_INVALID (no such stream, wrong direction, n
 * over the ring), ODK_E_AGAIN (output: pos + n past driver_pos +
 * ring_frames; input: pos + n past driver_pos), ODK_E_OVERRUN (input: pos
 * older than driver_pos - ring_frames: those frames are overwritten). */
ODK_PUBLIC int odk_audio_write_frames(odk_audio *a, uint32_t stream, uint64_t pos,
                                      const void *src, uint32_t n);
ODK_PUBLIC int odk_audio_read_frames(odk_audio *a, uint32_t stream, uint64_t pos, void *dst,
                                     uint32_t n);

#ifdef __cplusplus
}
#endif
#endif
