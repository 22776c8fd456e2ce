/* SPDX-License-Identifier: MIT */
/* odk/hid.h — the HID family, shaped after HIDDriverKit (docs/hid.md).
 *
 * Three pieces, all used from a driver's default queue:
 *  - a HID device (IOUserHIDDevice): the driver describes a device and
 *    hands its input reports in; odk makes it an input device the system
 *    sees (uhid or uinput, when the kernel has them) and an event stream
 *    every app can read (odk/hid_client.h).  Output and feature reports
 *    from the system or an app (the keyboard's LEDs) come back through
 *    the driver's set_report callback.
 *  - an event service (IOUserHIDEventService): a report descriptor parsed
 *    into elements; reports handed to it come out as keyboard, button,
 *    pointer, scroll and consumer events.
 *  - a source: the HID device a driver was matched to (a USB HID interface
 *    or an evdev input node), opened for its events, its identity and its
 *    LEDs, whatever the bus.
 *
 * Threads: every function here is called on the driver's default queue
 * (start, a method, a completion), and every callback runs there too.
 * Errors follow odk/status.h.
 */
#ifndef ODK_HID_H
#define ODK_HID_H

#include "odk/export.h"

#include <stddef.h>
#include <stdint.h>

#include "odk/driver.h"
#include "odk/hid_descriptor.h"
#include "odk/hid_input.h"
#include "odk/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest report descriptor and largest report the family carries
 * (uhid's own limits; ODK_E_LIMIT past them). */
#define ODK_HID_MAX_DESCRIPTOR ODK_HID_MAX_DESCRIPTOR_BYTES
#define ODK_HID_MAX_REPORT ODK_HID_MAX_REPORT_BYTES

/* A device's identity, as HIDDriverKit's device description keys
 * (VendorID, ProductID, VersionNumber, CountryCode, Manufacturer, Product,
 * SerialNumber, PrimaryUsagePage, PrimaryUsage).  Strings may be NULL.
 * phys is the location the system shows (uinput's and uhid's "phys");
 * NULL makes one from the bundle and node. */
typedef struct odk_hid_device_description {
    uint32_t vendor_id, product_id, version, country_code;
    const char *manufacturer, *product, *serial_number;
    const char *transport; /* "USB", "Bluetooth", "Virtual"...; NULL: "Virtual" */
    const char *phys;
    uint32_t bus_type; /* Linux BUS_* for uhid/uinput; 0: BUS_VIRTUAL (6), BUS_USB is 3 */
    uint32_t primary_usage_page, primary_usage;
    const uint8_t *report_descriptor; /* borrowed for the call; copied */
    size_t report_descriptor_len;
} odk_hid_device_description;

/* ---- HID device (IOUserHIDDevice) ---------------------------------------- */

typedef struct odk_hid_device odk_hid_device;

/* What the driver implements.  Reports include their report id as the
 * first byte when the descriptor declares report ids (hidraw's rule). */
typedef struct odk_hid_device_ops {
    /* An output or feature report from the system or an app (the LEDs).
     * Return a status; the sender gets it. */
    int (*set_report)(void *ctx, odk_hid_report_type type, uint8_t report_id,
                      const uint8_t *data, size_t len);
    /* Optional: fill buf (cap bytes) with the current report; *len its
     * length.  NULL answers ODK_E_UNSUPPORTED. */
    int (*get_report)(void *ctx, odk_hid_report_type type, uint8_t report_id, uint8_t *buf,
                      size_t cap, size_t *len);
} odk_hid_device_ops;

/* Creates a HID device: checks and parses the report descriptor, publishes
 * an IOHIDDevice node under the driver's service node carrying the
 * description, asks odkd for the system's side (uhid, else uinput, else
 * none: see odk_hid_device_backend) and serves the node's user client
 * (the app event stream).  BLOCKS on odkd once (call from start or a
 * method).  ops and ctx are borrowed until destroy.  The caller owns *out.
 * Errors: ODK_E_INVALID (NULL, no descriptor, a descriptor the parser
 * refuses: the reason is logged with its byte offset), ODK_E_LIMIT
 * (descriptor over ODK_HID_MAX_DESCRIPTOR), ODK_E_NOMEM, and what
 * odk_driver_publish_node gives. */
ODK_PUBLIC int odk_hid_device_create(odk_driver *drv, const odk_hid_device_description *desc,
                                     const odk_hid_device_ops *ops, void *ctx,
                                     odk_hid_device **out);
/* Hands an input report to the system and to every app reading the
 * device, stamped timestamp_ns (CLOCK_MONOTONIC; 0: now).  Never blocks:
 * an app that does not read gets an ODK_HID_INPUT_DROPPED event instead of
 * what did not fit.  Errors: ODK_E_INVALID (NULL, empty), ODK_E_LIMIT
 * (over ODK_HID_MAX_REPORT), ODK_E_IO (the kernel refused it: logged). */
ODK_PUBLIC int odk_hid_device_handle_report(odk_hid_device *dev, uint64_t timestamp_ns,
                                            const uint8_t *report, size_t len);
/* "uhid", "uinput" or "none": what the system got (borrowed, until
 * destroy).  Never fails. */
ODK_PUBLIC const char *odk_hid_device_backend(const odk_hid_device *dev);
/* The registry id of the device's IOHIDDevice node.  Never fails. */
ODK_PUBLIC uint64_t odk_hid_device_node_id(const odk_hid_device *dev);
/* The LED state (ODK_HID_LED_* bits) last set by the system or an app;
 * never fails. */
ODK_PUBLIC uint32_t odk_hid_device_leds(const odk_hid_device *dev);
/* Removes the device from the system and the registry, ends every app's
 * stream (apps then read ODK_E_GONE).  NULL is allowed.  BLOCKS on odkd
 * once. */
ODK_PUBLIC void odk_hid_device_destroy(odk_hid_device *dev);

/* ---- event service (IOUserHIDEventService) --------------------------------- */

typedef struct odk_hid_event_service odk_hid_event_service;

/* One event for the driver (borrowed for the call). */
typedef void (*odk_hid_input_fn)(void *ctx, const odk_hid_input_event *ev);

/* Parses desc (copied) into elements.  fn(ctx, ev) receives the events
 * of each report handed in.  The caller owns *out.  Errors: ODK_E_INVALID
 * (NULL, or a descriptor the parser refuses: err, when not NULL, receives
 * "offset N: reason", cut to err_len), ODK_E_NOMEM.  Pure: any thread, one
 * at a time per service. */
ODK_PUBLIC int odk_hid_event_service_create(const uint8_t *desc, size_t len, odk_hid_input_fn fn,
                                            void *ctx, odk_hid_event_service **out, char *err,
                                            size_t err_len);
/* Decodes one input report and calls fn for every usage whose value
 * changed since the last report (keys down and up, in the report's order,
 * releases first), the last one flagged ODK_HID_INPUT_END_OF_REPORT.
 * Errors: ODK_E_INVALID (NULL, a report id or length the descriptor does
 * not have: nothing is dispatched). */
ODK_PUBLIC int odk_hid_event_service_handle_report(odk_hid_event_service *svc,
                                                   uint64_t timestamp_ns, const uint8_t *report,
                                                   size_t len);
/* Encodes the output report that sets the LEDs (ODK_HID_LED_* bits) into
 * buf (cap bytes); *len its length, *report_id its id (0: none).  Errors:
 * ODK_E_UNSUPPORTED (the descriptor has no LED output), ODK_E_LIMIT (cap too
 * small). */
ODK_PUBLIC int odk_hid_event_service_led_report(odk_hid_event_service *svc, uint32_t leds,
                                                uint8_t *buf, size_t cap, size_t *len,
                                                uint8_t *report_id);
/* Releases every key, button and consumer usage that is down: fn gets an
 * up event for each (with timestamp_ns), as when the device goes away.
 * Never fails. */
ODK_PUBLIC void odk_hid_event_service_release_all(odk_hid_event_service *svc,
                                                  uint64_t timestamp_ns);
/* NULL is allowed. */
ODK_PUBLIC void odk_hid_event_service_destroy(odk_hid_event_service *svc);

/* ---- source: the HID device the driver was matched to -------------------- */

typedef struct odk_hid_source odk_hid_source;

typedef struct odk_hid_source_ops {
    /* An event of the source (borrowed for the call). */
    void (*event)(void *ctx, const odk_hid_input_event *ev);
    /* The source went away or failed (status: ODK_E_GONE...); no event
     * follows.  Optional. */
    void (*gone)(void *ctx, int status);
    /* Optional: each input report as it came (USB sources only), before
     * its events; for drivers that pass reports on unchanged. */
    void (*report)(void *ctx, uint64_t timestamp_ns, const uint8_t *report, size_t len);
} odk_hid_source_ops;

/* Opens the driver's provider as an input source: a USB HID interface
 * (IOUSBHostInterface, class 3: the report descriptor is read, the
 * interrupt IN endpoint polled) or an evdev node (OdkEvdevDevice: odkd
 * opens it and grabs it with EVIOCGRAB, so nothing else sees its events).
 * ops and ctx are borrowed until close.  BLOCKS on odkd once.  The caller
 * owns *out.  Errors: ODK_E_UNSUPPORTED (the provider is neither),
 * ODK_E_BUSY (another driver holds it), ODK_E_PROTOCOL (no interrupt IN
 * endpoint, a report descriptor the parser refuses), and the USB family's. */
ODK_PUBLIC int odk_hid_source_open(odk_driver *drv, const odk_hid_source_ops *ops, void *ctx,
                                   odk_hid_source **out);
/* The source's identity, to carry onto a virtual device (borrowed, until
 * close; report_descriptor is the source's, or NULL for evdev). */
ODK_PUBLIC const odk_hid_device_description *odk_hid_source_description(const odk_hid_source *s);
/* Sets the source's LEDs (ODK_HID_LED_* bits): SET_REPORT on USB, EV_LED
 * on evdev.  BLOCKS until the device answered.  Errors: the bus's. */
ODK_PUBLIC int odk_hid_source_set_leds(odk_hid_source *s, uint32_t leds);
/* Sends an output or feature report (report id byte first when the
 * descriptor has ids) with SET_REPORT.  BLOCKS until the device answered.
 * Errors: ODK_E_UNSUPPORTED (not a USB source), the USB family's. */
ODK_PUBLIC int odk_hid_source_set_report(odk_hid_source *s, odk_hid_report_type type,
                                         const uint8_t *data, size_t len);
/* Stops the source (an evdev grab ends with it).  NULL is allowed. */
ODK_PUBLIC void odk_hid_source_close(odk_hid_source *s);

#ifdef __cplusplus
}
#endif
#endif
