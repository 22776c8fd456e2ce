/* SPDX-License-Identifier: MIT */
/* The HID family's host side, shared between its files: the usage <->
 * Linux input code tables (keymap.c), and what the sources have in common. */
#ifndef ODK_FAMILIES_HID_INTERNAL_H
#define ODK_FAMILIES_HID_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "odk/hid.h"

/* The Linux input event (type, code) for a HID event; false when Linux
 * has no code for it (the event then reaches apps through libodk only). */
bool hid_to_evdev(const odk_hid_input_event *ev, uint16_t *type, uint16_t *code);
/* The HID usage of a Linux key or button code; false when none. */
bool evdev_key_to_hid(uint16_t code, uint16_t *page, uint16_t *usage, uint32_t *input_type);
/* Walks every Linux code hid_to_evdev can give for type EV_KEY / EV_REL,
 * for uinput's capability set-up. */
void hid_evdev_codes(void (*fn)(void *ctx, uint16_t type, uint16_t code), void *ctx);

uint64_t hid_now_ns(void);

/* The LED bits an output report sets: ODK_E_NOT_FOUND when it has none. */
int hid_event_service_leds_of(odk_hid_event_service *s, const uint8_t *report, size_t len,
                              uint32_t *leds);
/* The parsed descriptor (borrowed, as long as s). */
const odk_hid_descriptor *hid_event_service_descriptor(const odk_hid_event_service *s);

/* What every source is (the first member of each kind's state). */
struct odk_hid_source {
    odk_hid_device_description desc; /* strings owned by the kind */
    const odk_hid_source_ops *ops;
    void *ctx;
    int (*set_leds)(odk_hid_source *s, uint32_t leds);
    int (*set_report)(odk_hid_source *s, odk_hid_report_type type, const uint8_t *data,
                      size_t len); /* NULL: unsupported */
    void (*close)(odk_hid_source *s);
};

/* The USB and evdev halves of odk_hid_source_open. */
int hid_usb_source_open(odk_driver *drv, const odk_hid_source_ops *ops, void *ctx,
                        odk_hid_source **out);
int hid_evdev_source_open(odk_driver *drv, const odk_hid_source_ops *ops, void *ctx,
                          odk_hid_source **out);

#endif
