/* SPDX-License-Identifier: MIT */
/* odk/hid_event.h — one input event of a HID device, as the HID family
 * hands it to a driver (odk/hid.h's event service) and to apps (the event
 * stream of odk/hid_client.h).  Plain data: no functions here. */
#ifndef ODK_HID_INPUT_H
#define ODK_HID_INPUT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What an event is.  Keyboard and consumer keys, and pointer buttons, have
 * value 1 (down) or 0 (up); relative motion and scroll carry the delta;
 * absolute pointers the position in the element's logical range. */
typedef enum odk_hid_input_type {
    ODK_HID_INPUT_KEYBOARD = 1,    /* usage page 0x07: keys and modifiers */
    ODK_HID_INPUT_BUTTON = 2,      /* usage page 0x09: pointer buttons */
    ODK_HID_INPUT_POINTER_REL = 3, /* generic desktop X, Y, Z (relative) */
    ODK_HID_INPUT_POINTER_ABS = 4, /* generic desktop X, Y, Z (absolute) */
    ODK_HID_INPUT_SCROLL = 5,      /* wheel (0x01/0x38) and AC Pan (0x0c/0x238) */
    ODK_HID_INPUT_CONSUMER = 6,    /* usage page 0x0c: media keys */
    ODK_HID_INPUT_LED = 7,         /* usage page 0x08: an LED the host set */
    ODK_HID_INPUT_OTHER = 8,       /* any other usage that changed */
    ODK_HID_INPUT_DROPPED = 9,     /* the app read too slowly: value events lost */
} odk_hid_input_type;

/* One event: 24 bytes, the record of the app's event stream.  timestamp_ns
 * is CLOCK_MONOTONIC when the report arrived (the device's interrupt
 * transfer completed, or the driver handed the report in). */
typedef struct odk_hid_input_event {
    uint64_t timestamp_ns;
    uint32_t type;       /* odk_hid_input_type */
    uint16_t usage_page; /* HID usage page */
    uint16_t usage;      /* HID usage */
    int32_t value;
    uint32_t flags; /* ODK_HID_INPUT_REPEAT, ODK_HID_INPUT_END_OF_REPORT */
} odk_hid_input_event;

/* The key is still held and the source repeats it (evdev's value 2). */
#define ODK_HID_INPUT_REPEAT 0x1u
/* The last event of one input report (the point where a reader has a
 * consistent state, evdev's SYN_REPORT). */
#define ODK_HID_INPUT_END_OF_REPORT 0x2u

/* Bits of the LED state (usage page 0x08, usages 1..5). */
#define ODK_HID_LED_NUM_LOCK 0x01u
#define ODK_HID_LED_CAPS_LOCK 0x02u
#define ODK_HID_LED_SCROLL_LOCK 0x04u
#define ODK_HID_LED_COMPOSE 0x08u
#define ODK_HID_LED_KANA 0x10u

#ifdef __cplusplus
}
#endif
#endif
