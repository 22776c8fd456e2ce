/* SPDX-License-Identifier: MIT */
/* odk/usb.h — the USB family: a driver that talks to a USB device.
 *
 * Shaped after USBDriverKit, so a DriverKit developer finds their way:
 *   IOUSBHostDevice      odk_usb_device     (a personality on IOUSBHostDevice)
 *   IOUSBHostInterface   odk_usb_interface  (a personality on IOUSBHostInterface)
 *   IOUSBHostPipe        odk_usb_pipe       (copied from an open interface)
 * Descriptors are the wire structures of odk/usb_descriptors.h, checked by
 * odkd before any driver sees them.
 *
 * Where the device comes from is the bus's business: the sim bus's device
 * models (odk-usb-model) today; real devices through libusb are the other
 * backend of the same API.  Transfer buffers are odk memory descriptors
 * (odk/memory.h); the device reads and writes them where they are, with no
 * copy in between.
 *
 * Threads: every function may be called from any of the driver's queues.
 * The synchronous ones (open, requests, odk_usb_pipe_io, abort) BLOCK the
 * calling queue until the device answers or the timeout passes; a timeout
 * of 0 means ODK_USB_DEFAULT_TIMEOUT_MS.  Asynchronous completions run on
 * the driver's default queue.
 *
 * Statuses every call may give besides those listed: ODK_E_INVALID (a NULL
 * or out-of-range argument), ODK_E_GONE (the device was unplugged: every
 * pending transfer completes with it too), ODK_E_NOMEM,
 * ODK_E_DISCONNECTED (odkd is gone).
 */
#ifndef ODK_USB_H
#define ODK_USB_H

#include "odk/export.h"

#include <stdbool.h>
#include <stdint.h>

#include "odk/driver.h"
#include "odk/memory.h"
#include "odk/usb_descriptors.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ODK_USB_DEFAULT_TIMEOUT_MS 5000u

typedef struct odk_usb_device odk_usb_device;
typedef struct odk_usb_interface odk_usb_interface;
typedef struct odk_usb_pipe odk_usb_pipe;

/* A control request (USB 2.0 9.3), fields in host order. */
typedef struct odk_usb_request {
    uint8_t bmRequestType; /* ODK_USB_REQ_* direction | type | recipient */
    uint8_t bRequest;
    uint16_t wValue;
    uint16_t wIndex;
    uint16_t wLength;
} odk_usb_request;

#define ODK_USB_REQ_IN 0x80u
#define ODK_USB_REQ_OUT 0x00u
#define ODK_USB_REQ_STANDARD 0x00u
#define ODK_USB_REQ_CLASS 0x20u
#define ODK_USB_REQ_VENDOR 0x40u
#define ODK_USB_REQ_DEVICE 0x00u
#define ODK_USB_REQ_INTERFACE 0x01u
#define ODK_USB_REQ_ENDPOINT 0x02u

/* ---- the device ---------------------------------------------------------- */

/* Opens the driver's provider, which must be a USB device node
 * (IOUSBHostDevice).  Several drivers may hold a device open at once; each
 * gets its own handle.  *out belongs to the caller until
 * odk_usb_device_close.  Errors: ODK_E_UNSUPPORTED (the provider is not a
 * USB device), ODK_E_GONE. */
ODK_PUBLIC int odk_usb_device_open(odk_driver *drv, odk_usb_device **out);
/* Aborts what the handle has pending (completions run with
 * ODK_E_CANCELLED first) and closes it.  NULL is ignored. */
ODK_PUBLIC void odk_usb_device_close(odk_usb_device *dev);

/* The device descriptor (borrowed, valid until close). */
ODK_PUBLIC const odk_usb_device_descriptor *odk_usb_device_descriptor_get(odk_usb_device *dev);
ODK_PUBLIC odk_usb_speed odk_usb_device_speed(odk_usb_device *dev);

/* Configuration descriptor number index (0-based), as read from the device
 * and checked: a new copy in *out the caller frees with odk_free().  Errors:
 * ODK_E_NOT_FOUND (no such configuration), ODK_E_PROTOCOL (the device's
 * descriptor is malformed; the reason is logged). */
ODK_PUBLIC int odk_usb_device_copy_configuration(odk_usb_device *dev, uint8_t index,
                                                 odk_usb_config_descriptor **out);
/* The active configuration (borrowed, valid until the configuration
 * changes or close), or NULL when the device is unconfigured. */
ODK_PUBLIC const odk_usb_config_descriptor *
odk_usb_device_active_configuration(odk_usb_device *dev);

/* String descriptor index in UTF-8 (US English), a new string the caller
 * frees with odk_free().  ODK_E_STALL when the device has no such string. */
ODK_PUBLIC int odk_usb_device_copy_string(odk_usb_device *dev, uint8_t index, char **out);

/* Selects configuration value (0: unconfigured).  The interfaces of the
 * new configuration appear in the registry (and are matched) when
 * match_interfaces is true, as IOKit's SetConfiguration does; every pipe
 * of the old configuration ends.  A device that has a device driver comes
 * with its interfaces unmatched (a real device is configured by the
 * kernel already): asking for the active configuration matches them.  Errors: ODK_E_STALL (no such
 * configuration), ODK_E_BUSY (an interface of the current configuration
 * is open by another driver: the message in the log names it). */
ODK_PUBLIC int odk_usb_device_set_configuration(odk_usb_device *dev, uint8_t value,
                                                bool match_interfaces);

/* A control request on the default pipe.  data holds req->wLength bytes:
 * filled for IN requests, sent for OUT ones; *actual (may be NULL) gets
 * the bytes moved.  Errors: ODK_E_STALL (the device refused), ODK_E_TIMEOUT,
 * ODK_E_GONE. */
ODK_PUBLIC int odk_usb_device_request(odk_usb_device *dev, const odk_usb_request *req,
                                      void *data, uint32_t *actual, uint32_t timeout_ms);

/* The interfaces of the active configuration, every one of them (vendor
 * class 0xff included) in the device's order, alternate setting 0 of each:
 * odk_usb_device_interface_count returns how many (0 without a
 * configuration), odk_usb_device_interface_at(dev, i) the i-th (borrowed
 * like the configuration; NULL past the end). */
ODK_PUBLIC unsigned odk_usb_device_interface_count(odk_usb_device *dev);
ODK_PUBLIC const odk_usb_interface_descriptor *odk_usb_device_interface_at(odk_usb_device *dev,
                                                                           unsigned i);

/* ---- an interface -------------------------------------------------------- */

/* Opens the driver's provider, which must be a USB interface node
 * (IOUSBHostInterface), exclusively: while it is open, another driver's
 * open gets ODK_E_BUSY, and the log line and *holder (when not NULL: a new
 * string the caller frees with odk_free(), e.g.
 * "org.odk.usb-vendor-echo#1 (pid 4242)")
 * name the driver that holds it.  Errors: ODK_E_UNSUPPORTED (the provider is
 * not a USB interface), ODK_E_BUSY, ODK_E_GONE. */
ODK_PUBLIC int odk_usb_interface_open(odk_driver *drv, odk_usb_interface **out, char **holder);
/* Opens interface number of the same device, exclusively, as
 * odk_usb_interface_open does the provider: a CDC driver matched on the
 * communication interface takes the data interface this way.  Errors: as
 * odk_usb_interface_open, and ODK_E_NOT_FOUND (no such interface in the
 * active configuration). */
ODK_PUBLIC int odk_usb_interface_open_other(odk_usb_interface *intf, uint8_t number,
                                            odk_usb_interface **out, char **holder);
/* Aborts the interface's pipes (completions run with ODK_E_CANCELLED),
 * releases the pipes' handles still held and lets the interface go. */
ODK_PUBLIC void odk_usb_interface_close(odk_usb_interface *intf);

/* The interface's descriptor in its current alternate setting, and the
 * configuration it belongs to (borrowed, until close or the next
 * odk_usb_interface_select_alternate). */
ODK_PUBLIC const odk_usb_interface_descriptor *
odk_usb_interface_descriptor_get(odk_usb_interface *intf);
ODK_PUBLIC const odk_usb_config_descriptor *
odk_usb_interface_configuration(odk_usb_interface *intf);

/* Selects alternate setting alt; the pipes of the old setting end (their
 * handles answer ODK_E_GONE).  ODK_E_STALL when the interface has no such
 * setting. */
ODK_PUBLIC int odk_usb_interface_select_alternate(odk_usb_interface *intf, uint8_t alt);

/* A control request on the default pipe, as odk_usb_device_request; a
 * request to this interface sets wIndex's low byte to its number. */
ODK_PUBLIC int odk_usb_interface_request(odk_usb_interface *intf, const odk_usb_request *req,
                                         void *data, uint32_t *actual, uint32_t timeout_ms);

/* A handle to the pipe of endpoint address (with ODK_USB_ENDPOINT_IN for
 * IN) in the current alternate setting.  *out belongs to the caller until
 * odk_usb_pipe_release (or the interface's close).  ODK_E_NOT_FOUND: no such
 * endpoint. */
ODK_PUBLIC int odk_usb_interface_copy_pipe(odk_usb_interface *intf, uint8_t address,
                                           odk_usb_pipe **out);

/* ---- a pipe -------------------------------------------------------------- */

/* What an asynchronous transfer calls when it ends, on the driver's default
 * queue: status (ODK_OK, ODK_E_STALL, ODK_E_OVERRUN, ODK_E_CANCELLED,
 * ODK_E_TIMEOUT, ODK_E_GONE), the bytes moved, and when the transfer
 * ended (CLOCK_MONOTONIC, ns). */
typedef void (*odk_usb_completion)(void *ctx, int status, uint32_t actual,
                                   uint64_t timestamp_ns);

/* The endpoint's descriptor (borrowed, valid while the pipe is). */
ODK_PUBLIC const odk_usb_endpoint_descriptor *odk_usb_pipe_descriptor(odk_usb_pipe *pipe);

/* Moves length bytes between the endpoint and buffer at offset: the
 * device writes them for an IN pipe, reads them for an OUT one.  A
 * zero-length transfer is legal (buffer may then be NULL).  The call
 * blocks until the transfer ends; *actual (may be NULL) gets the bytes
 * moved (an IN transfer may end short).  Errors: those of
 * odk_usb_completion, and ODK_E_INVALID (offset + length past the buffer),
 * ODK_E_ACCESS (the buffer's direction forbids what the pipe does). */
ODK_PUBLIC int odk_usb_pipe_io(odk_usb_pipe *pipe, odk_memory *buffer, uint64_t offset,
                               uint32_t length, uint32_t *actual, uint32_t timeout_ms);
/* The same without waiting: done(ctx, ...) runs once, on the driver's
 * default queue, when the transfer ends.  Many transfers may be in flight
 * on one pipe; they end in the order submitted.  buffer is retained until
 * then.  Errors (then done never runs): as odk_usb_pipe_io before the
 * transfer starts. */
ODK_PUBLIC int odk_usb_pipe_async_io(odk_usb_pipe *pipe, odk_memory *buffer, uint64_t offset,
                                     uint32_t length, uint32_t timeout_ms,
                                     odk_usb_completion done, void *ctx);
/* Ends every transfer in flight on the pipe with ODK_E_CANCELLED and
 * waits until their completions are queued. */
ODK_PUBLIC int odk_usb_pipe_abort(odk_usb_pipe *pipe);
/* Clears a halt (after ODK_E_STALL): CLEAR_FEATURE(ENDPOINT_HALT). */
ODK_PUBLIC int odk_usb_pipe_clear_stall(odk_usb_pipe *pipe);
/* Releases the handle; transfers in flight are aborted first. */
ODK_PUBLIC void odk_usb_pipe_release(odk_usb_pipe *pipe);

#ifdef __cplusplus
}
#endif

#endif
