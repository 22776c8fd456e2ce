/* SPDX-License-Identifier: MIT */
/* sim_wire.h — how the sim host controller talks to a device model
 * process (odk-usb-model).
 *
 * Every connection is a SOCK_SEQPACKET socket: one message per packet, a
 * fixed header (struct usb_wire) and, for some operations, a body.  odkd
 * holds the model's first connection (fd 3 in the model): it enumerates the
 * device on it, hears configuration changes and reports, injects faults,
 * and hands the model one more connection per driver host that opens the
 * device (USBW_ATTACH, the socket in SCM_RIGHTS).  A driver host maps its
 * transfer buffers into the model (USBW_MAP, a memfd in SCM_RIGHTS), so
 * the model reads and writes the driver's memory directly: no copy between
 * a driver's buffer and the device.
 *
 * Requests carry an id the sender chooses; the reply (or, for USBW_SUBMIT,
 * the USBW_COMPLETE) echoes it.  Integers are in host order: both ends run
 * on the same machine.
 */
#ifndef ODK_USB_SIM_WIRE_H
#define ODK_USB_SIM_WIRE_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

enum usb_wire_op {
    /* model -> odkd, first message: body is the model name; speed in
     * `length`. */
    USBW_HELLO = 1,
    /* control transfer: setup[8] (wire order, little-endian), body = OUT
     * data; reply: status, actual, body = IN data. */
    USBW_CONTROL = 2,
    /* map buffer `buffer` (a memfd in SCM_RIGHTS) of `offset` bytes; reply
     * status. */
    USBW_MAP = 3,
    USBW_UNMAP = 4,
    /* queue a transfer: endpoint, buffer, offset, length; answered by a
     * USBW_COMPLETE (status, actual, timestamp_ns) with the same id. */
    USBW_SUBMIT = 5,
    USBW_COMPLETE = 6,
    /* end the sender's pending transfers on endpoint (0xff: all) with
     * ODK_E_CANCELLED; with a non-zero `buffer`, only the transfer whose id
     * it is.  Reply status (id: the request's own). */
    USBW_ABORT = 7,
    /* odkd -> model: a new client connection in SCM_RIGHTS; reply status. */
    USBW_ATTACH = 8,
    /* odkd -> model: inject fault `length` (enum usb_fault) on endpoint;
     * reply status. */
    USBW_FAULT = 9,
    /* model -> odkd, unsolicited (id 0): the configuration is now
     * `length` (0: unconfigured), alternate settings in the body (256
     * bytes, one per interface number). */
    USBW_CONFIGURED = 10,
    /* model -> odkd, unsolicited: the model's report changed; body is its
     * JSON. */
    USBW_REPORT = 11,
    /* model -> odkd, unsolicited: the device dropped off the bus. */
    USBW_GONE = 12,
    /* odkd -> model: input from the test (body: the bytes, e.g. a HID
     * report); reply status.  A non-zero `offset` is a delay in
     * microseconds: the model takes the bytes now (the reply says so) and
     * applies them that much later, when nothing else of the request is
     * under way (a benchmark's report then comes in with the test's
     * request already answered). */
    USBW_INPUT = 13,
};

struct usb_wire {
    uint32_t op;
    uint32_t id;
    int32_t status;
    uint32_t length;
    uint32_t actual;
    uint32_t buffer;
    uint64_t offset;
    uint64_t timestamp_ns;
    uint8_t endpoint;
    uint8_t setup[8];
    uint8_t pad[7];
};

/* Largest body: a control transfer's data stage (wLength is 16 bits). */
#define USBW_MAX_BODY 65535u
#define USBW_MAX_PACKET (sizeof(struct usb_wire) + USBW_MAX_BODY)

/* Sends w and body (len bytes, may be NULL) as one message on sock, with
 * fd in SCM_RIGHTS when fd >= 0; flags are sendmsg's (MSG_NOSIGNAL is
 * always added).  Retries on EINTR.  Returns 0 or -errno. */
static inline int usb_wire_send(int sock, const struct usb_wire *w, const void *body, size_t len,
                                int fd, int flags)
{
    struct iovec iov[2] = {{(void *)w, sizeof *w}, {(void *)body, len}};
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = body && len ? 2 : 1};
    if (fd >= 0) {
        memset(cbuf, 0, sizeof cbuf);
        mh.msg_control = cbuf;
        mh.msg_controllen = sizeof cbuf;
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd, sizeof fd);
    }
    while (sendmsg(sock, &mh, flags | MSG_NOSIGNAL) < 0)
        if (errno != EINTR)
            return -errno;
    return 0;
}

#endif
