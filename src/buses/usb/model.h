/* SPDX-License-Identifier: MIT */
/* model.h — simulated USB devices ("device models") for the sim host
 * controller.
 *
 * A model plays one USB device: it owns ROM-like descriptors, answers the
 * class and vendor requests of its kind, and moves data on its endpoints
 * the way the hardware would, holding a transfer (NAK) until it can finish
 * it.  The framework (model.c) answers the standard requests of USB 2.0
 * 9.4 from the descriptors, keeps one queue of pending transfers per
 * endpoint, halts and clears endpoints, and applies the faults a test asks
 * for (stall, short packet, babble, disconnect).  A model runs in a process
 * of its own (odk-usb-model), so its crash is a hardware fault for the
 * driver and never odkd's.
 *
 * Everything here is single-threaded: the model process runs one loop.
 */
#ifndef ODK_USB_MODEL_H
#define ODK_USB_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "odk/usb_descriptors.h"
#include "odk/value.h"

#define USB_MODEL_MAX_CONFIGS 4
#define USB_MODEL_MAX_STRINGS 16

/* A control request's setup stage, fields in host order. */
struct usb_setup {
    uint8_t bmRequestType; /* bit 7: IN; bits 6..5: standard, class, vendor; 4..0: recipient */
    uint8_t bRequest;
    uint16_t wValue, wIndex, wLength;
};

#define USB_DIR_IN 0x80u
#define USB_TYPE_MASK 0x60u
#define USB_TYPE_STANDARD 0x00u
#define USB_TYPE_CLASS 0x20u
#define USB_TYPE_VENDOR 0x40u
#define USB_RECIP_MASK 0x1fu
#define USB_RECIP_DEVICE 0x00u
#define USB_RECIP_INTERFACE 0x01u
#define USB_RECIP_ENDPOINT 0x02u

/* Standard requests (USB 2.0 table 9-4). */
enum {
    USB_REQ_GET_STATUS = 0,
    USB_REQ_CLEAR_FEATURE = 1,
    USB_REQ_SET_FEATURE = 3,
    USB_REQ_SET_ADDRESS = 5,
    USB_REQ_GET_DESCRIPTOR = 6,
    USB_REQ_SET_DESCRIPTOR = 7,
    USB_REQ_GET_CONFIGURATION = 8,
    USB_REQ_SET_CONFIGURATION = 9,
    USB_REQ_GET_INTERFACE = 10,
    USB_REQ_SET_INTERFACE = 11,
};
#define USB_FEATURE_ENDPOINT_HALT 0

/* One transfer on a data endpoint (not endpoint 0), queued on its endpoint
 * until the model completes it.  data is the driver's own buffer, mapped
 * into the model process: the model reads OUT data from it and writes IN
 * data into it, with no copy in between. */
struct usb_xfer {
    uint32_t id;
    uint8_t endpoint; /* address, with ODK_USB_ENDPOINT_IN for IN */
    uint8_t *data;
    uint32_t length; /* requested */
    uint32_t actual; /* moved so far */
    int status;      /* set at completion */
    void *owner;     /* the connection that submitted it (model runner) */
    struct usb_xfer *next;
};

/* Faults a test can ask a model for (usb_model_inject). */
enum usb_fault {
    USB_FAULT_NONE = 0,
    USB_FAULT_STALL,      /* halt the endpoint: pending and new transfers get ODK_E_STALL */
    USB_FAULT_SHORT,      /* the next IN transfer ends with a short packet (half its data) */
    USB_FAULT_BABBLE,     /* the next IN transfer overruns: ODK_E_OVERRUN */
    USB_FAULT_DISCONNECT, /* the device drops off the bus */
};

struct usb_model;

struct usb_model_ops {
    const char *name;    /* what `odkctl usb plug NAME` takes */
    const char *summary; /* one line for `odkctl usb models` */
    size_t state_size;   /* zeroed state for the model, usb_model_state() */
    /* Sets the descriptors (usb_model_set_device, _add_config, _add_string)
     * and reads the plug arguments (a dictionary, possibly empty).  An error
     * refuses the plug with err as the reason. */
    int (*init)(struct usb_model *m, const odk_value *args, char *err, size_t err_len);
    /* A class or vendor request, or a standard one addressed to an
     * interface or endpoint that the framework does not know.  For IN
     * requests, fill up to s->wLength bytes of data and set *actual; for
     * OUT ones, data holds s->wLength bytes.  ODK_E_STALL refuses it. */
    int (*control)(struct usb_model *m, const struct usb_setup *s, uint8_t *data,
                   uint32_t *actual);
    /* The configuration changed (0: unconfigured); pending transfers were
     * cancelled first. */
    void (*configured)(struct usb_model *m, uint8_t value);
    /* An interface changed alternate setting. */
    void (*alt_set)(struct usb_model *m, uint8_t interface, uint8_t alt);
    /* Something changed (a transfer queued, a halt cleared): move what can
     * be moved now, with usb_model_peek and usb_model_complete. */
    void (*pump)(struct usb_model *m);
    /* Optional: input from the test (`odkctl usb input`), e.g. a HID
     * report to send; ODK_E_UNSUPPORTED when NULL. */
    int (*input)(struct usb_model *m, const uint8_t *data, size_t len);
    void (*fini)(struct usb_model *m);
};

/* Completion callback of the runner: xfer is finished (status, actual set)
 * and belongs to the callee now. */
typedef void usb_model_done_fn(struct usb_model *m, struct usb_xfer *xfer, void *ctx);

/* ---- the framework, for runners and tests -------------------------------- */

/* The registry of models compiled in (models.c); NULL-terminated. */
extern const struct usb_model_ops *const usb_models[];
const struct usb_model_ops *usb_model_find(const char *name);

/* Creates a model of kind ops with args (may be NULL); done receives every
 * completed transfer.  Returns ODK_OK and *out, or the model's init error
 * (err says why) or ODK_E_NOMEM. */
int usb_model_create(const struct usb_model_ops *ops, const odk_value *args,
                     usb_model_done_fn *done, void *ctx, struct usb_model **out, char *err,
                     size_t err_len);
/* Cancels every pending transfer (ODK_E_GONE through done), runs fini,
 * frees. */
void usb_model_destroy(struct usb_model *m);

/* A control transfer on endpoint 0, answered at once: standard requests by
 * the framework, the rest by the model.  data holds s->wLength bytes (IN:
 * room for them).  Returns ODK_OK with *actual bytes moved, ODK_E_STALL
 * when the device refuses, ODK_E_GONE after a disconnect. */
int usb_model_control(struct usb_model *m, const struct usb_setup *s, uint8_t *data,
                      uint32_t *actual);

/* Queues a transfer on a data endpoint of the current configuration.
 * Returns ODK_OK (it completes through done, maybe at once),
 * ODK_E_NOT_FOUND (no such endpoint in the active configuration and
 * alternate settings), ODK_E_STATE (unconfigured) or ODK_E_GONE; on error
 * the transfer stays the caller's. */
int usb_model_submit(struct usb_model *m, struct usb_xfer *x);

/* Completes every pending transfer of endpoint (0xff: all) that owner
 * submitted (NULL: anyone's) with ODK_E_CANCELLED; with a non-zero id,
 * only the transfer of that id. */
void usb_model_abort(struct usb_model *m, uint8_t endpoint, void *owner, uint32_t id);

/* Injects a fault on endpoint (ignored for USB_FAULT_DISCONNECT). */
void usb_model_inject(struct usb_model *m, enum usb_fault fault, uint8_t endpoint);
bool usb_model_disconnected(const struct usb_model *m);

/* Hands the model input from the test (its ops->input), then lets it move
 * data.  ODK_E_UNSUPPORTED for a model that takes none, ODK_E_GONE after a
 * disconnect, or the model's status. */
int usb_model_input(struct usb_model *m, const uint8_t *data, size_t len);

/* The model's state as a dictionary for the device node (what the model
 * was told: line coding, modem lines, ...), or NULL; caller owns. */
odk_value *usb_model_report(struct usb_model *m);
/* True once since the last call when the model's report changed. */
bool usb_model_report_changed(struct usb_model *m);

/* The descriptor the model asked to be watched (usb_model_watch) and its
 * poll events, or -1.  The runner polls it beside its connections and
 * calls usb_model_wire_ready when it is ready, which pumps the model. */
int usb_model_watched(const struct usb_model *m, short *events);
void usb_model_wire_ready(struct usb_model *m);

/* Descriptors as the model set them (the device's ROM). */
const odk_usb_device_descriptor *usb_model_device(const struct usb_model *m);
odk_usb_speed usb_model_speed(const struct usb_model *m);

/* ---- for models ---------------------------------------------------------- */

void *usb_model_state(struct usb_model *m);
/* Copies of the bytes are kept; a later call replaces.  Configurations
 * are numbered from index 0 in the order added.  Strings: index 1..15,
 * UTF-8, stored as UTF-16LE string descriptors. */
int usb_model_set_device(struct usb_model *m, const void *desc, size_t len, odk_usb_speed speed);
int usb_model_add_config(struct usb_model *m, const void *desc, size_t len);
int usb_model_set_bos(struct usb_model *m, const void *desc, size_t len);
int usb_model_add_string(struct usb_model *m, uint8_t index, const char *utf8);
/* A device with one configuration, in one call: the device and
 * configuration descriptors at speed, and strings 1, 2 and 3 (vendor,
 * product, serial number; NULL leaves one out). */
int usb_model_set_rom(struct usb_model *m, const void *device, size_t device_len,
                      odk_usb_speed speed, const void *config, size_t config_len,
                      const char *vendor, const char *product, const char *serial);

uint8_t usb_model_configuration(const struct usb_model *m); /* 0: unconfigured */

/* Asks the runner to watch fd (the model's "wire", e.g. a socket to a peer
 * device) for events (POLLIN, POLLOUT; 0 pauses) and to pump the model
 * when they come; -1 stops.  The model keeps owning fd. */
void usb_model_watch(struct usb_model *m, int fd, short events);
uint8_t usb_model_alt(const struct usb_model *m, uint8_t interface);

/* The first pending transfer of endpoint, or NULL. */
struct usb_xfer *usb_model_peek(struct usb_model *m, uint8_t endpoint);
/* Completes the first pending transfer of endpoint with status; the
 * model has set its actual.  IN transfers pass through the injected
 * short/babble faults here. */
void usb_model_complete(struct usb_model *m, uint8_t endpoint, int status);

/* Sets key of the model's report (an integer, a string or a boolean) and
 * marks the report changed. */
void usb_model_report_int(struct usb_model *m, const char *key, int64_t v);
void usb_model_report_string(struct usb_model *m, const char *key, const char *v);
void usb_model_report_bool(struct usb_model *m, const char *key, bool v);

#endif
