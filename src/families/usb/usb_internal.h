/* SPDX-License-Identifier: MIT */
/* usb_internal.h — the USB family's host side, inside odk-driver-host.
 *
 * A link is one connection to a device, opened through odkd ("usb-open")
 * for one device or interface handle, and carried by the backend of the
 * device's source (link_backend.h): for a simulated device a socket to its
 * model process (src/buses/usb/sim_wire.h, link_sim.c), for a real one the
 * usbfs descriptor odkd opened, wrapped by libusb (link_libusb.c).  Either
 * way a thread per link receives completions, transfers time out, and
 * asynchronous completions run on the driver's queue.
 */
#ifndef ODK_USB_INTERNAL_H
#define ODK_USB_INTERNAL_H

#include <stdint.h>

#include "odk/queue.h"
#include "odk/usb.h"
#include "odk/value.h"

struct usb_link;

/* Asks odkd for a connection to node (the driver's provider: a device or an
 * interface node) or, with sibling >= 0, to that interface of the
 * provider's device; *info receives odkd's reply (caller frees).  Errors:
 * as odkd's, with err naming the holder for ODK_E_BUSY. */
int usb_link_open(uint64_t node, int sibling, struct usb_link **out, odk_value **info, char *err,
                  size_t err_len);
/* Aborts everything pending (completions still run), stops the reader and
 * frees. */
void usb_link_close(struct usb_link *l);

int usb_link_control(struct usb_link *l, const odk_usb_request *req, void *data,
                     uint32_t *actual, uint32_t timeout_ms);
/* Queues a transfer; done runs on q (or on the reader thread when q is
 * NULL) exactly once, unless an error is returned. */
int usb_link_submit(struct usb_link *l, uint8_t endpoint, odk_memory *buffer, uint64_t offset,
                    uint32_t length, uint32_t timeout_ms, odk_usb_completion done, void *ctx,
                    odk_queue *q);
/* The same, waiting for the end. */
int usb_link_io(struct usb_link *l, uint8_t endpoint, odk_memory *buffer, uint64_t offset,
                uint32_t length, uint32_t *actual, uint32_t timeout_ms);
/* Ends the link's transfers on endpoint (0xff: all) with ODK_E_CANCELLED;
 * returns once the device has answered (their completions are queued). */
int usb_link_abort(struct usb_link *l, uint8_t endpoint);
/* True once the device is gone. */
bool usb_link_gone(struct usb_link *l);

/* Reads descriptor (type, index) of up to len bytes into buf; *got the
 * length read. */
int usb_link_get_descriptor(struct usb_link *l, uint8_t type, uint8_t index, uint16_t lang,
                            void *buf, uint16_t len, uint32_t *got);
/* Reads and checks configuration index; a new copy in *out. */
int usb_link_copy_configuration(struct usb_link *l, uint8_t index, odk_usb_speed speed,
                                odk_usb_config_descriptor **out);

#endif
