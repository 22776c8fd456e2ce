/* SPDX-License-Identifier: MIT */
/* odk/hid_client.h — an app reads a HID device's events through libodk:
 * no uhid, uinput or /dev/input access needed.  Every IOHIDDevice node a
 * driver publishes (odk/hid.h) serves this stream.
 *
 * One odk_hid per reader; each has its own stream from the moment it
 * opened.  Functions of one odk_hid are called by one thread at a time.
 */
#ifndef ODK_HID_CLIENT_H
#define ODK_HID_CLIENT_H

#include "odk/export.h"

#include <stdint.h>

#include "odk/client.h"
#include "odk/hid_input.h"
#include "odk/value.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct odk_hid odk_hid;

/* The device node's user-client selectors and the stream's data-queue
 * type (what odk_hid_* use; other languages call them directly). */
enum {
    ODK_HID_SEL_SET_LEDS = 0,   /* scalar_in[0]: ODK_HID_LED_* bits */
    ODK_HID_SEL_GET_LEDS = 1,   /* scalar_out[0]: the LED state */
    ODK_HID_SEL_SET_REPORT = 2, /* scalar_in[0]: type (2 output, 3 feature); struct: the report */
    ODK_HID_SEL_GET_REPORT = 3, /* scalar_in: type, report id; struct out: the report */
};
#define ODK_HID_STREAM_QUEUE 0u

/* Opens the IOHIDDevice node node_id and its event stream.  c is borrowed
 * (must outlive the odk_hid).  The caller owns *out: odk_hid_close.
 * BLOCKS for odkd and the driver.  Errors: those of odk_connection_open
 * (ODK_E_NOT_FOUND for no such node, ODK_E_ACCESS) and
 * odk_connection_map_data_queue. */
ODK_PUBLIC int odk_hid_open(odk_client *c, uint64_t node_id, odk_hid **out);
/* Opens the first registered IOHIDDevice whose properties match matching
 * (borrowed; NULL: any, e.g. {"Product": "Simulated keyboard"}).  Errors:
 * ODK_E_NOT_FOUND (none matches), and odk_hid_open's. */
ODK_PUBLIC int odk_hid_open_matching(odk_client *c, const odk_value *matching, odk_hid **out);
/* Takes the next event, waiting up to timeout_ms (-1: until one comes or
 * the device goes; 0: not at all).  Errors: ODK_E_TIMEOUT (nothing came),
 * ODK_E_GONE (the device or its driver went away: noticed within a
 * second), ODK_E_PROTOCOL (a record that is not an event), ODK_E_INVALID
 * (NULL). */
ODK_PUBLIC int odk_hid_read(odk_hid *h, odk_hid_input_event *ev, int timeout_ms);
/* Sets the device's LEDs (ODK_HID_LED_* bits) as the host would: the
 * driver's set_report gets the output report.  BLOCKS for the driver.
 * Errors: the driver's, ODK_E_UNSUPPORTED (no LED output report). */
ODK_PUBLIC int odk_hid_set_leds(odk_hid *h, uint32_t leds);
/* The LED state last set on the device (by anyone).  BLOCKS. */
ODK_PUBLIC int odk_hid_get_leds(odk_hid *h, uint32_t *leds);
/* The device's node id; never fails. */
ODK_PUBLIC uint64_t odk_hid_node_id(const odk_hid *h);
/* Closes the stream and the connection.  NULL is allowed. */
ODK_PUBLIC void odk_hid_close(odk_hid *h);
/* "keyboard", "button", "pointer-rel", ... for an odk_hid_input_type;
 * "unknown" otherwise.  Static string; never fails. */
ODK_PUBLIC const char *odk_hid_input_type_name(uint32_t type);

#ifdef __cplusplus
}
#endif
#endif
