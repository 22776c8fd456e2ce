/* SPDX-License-Identifier: MIT */
/* link_backend.h — what a link's backend provides (link.c dispatches
 * usb_internal.h's calls to it): the sim backend talks to a device model
 * over the sim wire (link_sim.c), the libusb backend to a real device
 * through the usbfs descriptor odkd opened (link_libusb.c). */
#ifndef ODK_USB_LINK_BACKEND_H
#define ODK_USB_LINK_BACKEND_H

#include "families/usb/usb_internal.h"

struct usb_link_ops;

/* The part of every link that link.c owns; a backend's link begins
 * with it. */
struct usb_link {
    const struct usb_link_ops *ops;
    uint64_t node;
    int sibling;
};

struct usb_link_ops {
    const char *name; /* odkd's "source" */
    /* Takes fd (closed on failure); info is odkd's usb-open reply
     * (borrowed).  Errors with err. */
    int (*open)(int fd, const odk_value *info, struct usb_link **out, char *err, size_t err_len);
    /* As usb_internal.h's functions of the same names. */
    int (*control)(struct usb_link *l, const odk_usb_request *req, void *data, uint32_t *actual,
                   uint32_t timeout_ms);
    int (*submit)(struct usb_link *l, uint8_t endpoint, odk_memory *buffer, uint64_t offset,
                  uint32_t length, uint32_t timeout_ms, odk_usb_completion done, void *ctx,
                  odk_queue *q);
    int (*abort)(struct usb_link *l, uint8_t endpoint);
    bool (*gone)(struct usb_link *l);
    /* When the calling thread is the one that reads l's completions (a
     * callback it runs made a synchronous transfer), reads them until
     * done(ctx) is true or the link ends; ODK_E_UNSUPPORTED on any other
     * thread, which just waits.  NULL: completions are never run on the
     * thread that reads them. */
    int (*wait)(struct usb_link *l, bool (*done)(void *ctx), void *ctx);
    /* Ends every transfer (completions still run), lets the device go,
     * frees l; link.c then tells odkd. */
    void (*close)(struct usb_link *l);
};

extern const struct usb_link_ops usb_link_sim_ops;
extern const struct usb_link_ops usb_link_libusb_ops;

#endif
