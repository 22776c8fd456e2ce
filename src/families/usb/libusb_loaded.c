/* SPDX-License-Identifier: MIT */
/* libusb-1.0, loaded by the USB family's link to real devices at its first
 * call (link_libusb.c: libusb_set_option, then libusb_init), not linked
 * into every host (families/lazy_lib.h).  Each function libusb.h declares
 * that the host calls is defined here and calls the library's; until the
 * library is loaded, or when it cannot be, each returns an error
 * (LIBUSB_ERROR_NOT_SUPPORTED, NULL) or does nothing.  A function the host
 * starts calling must be added to LIBUSB_FUNCTIONS (the link fails
 * otherwise: the host does not link libusb). */
#include <libusb.h>
#include <stdarg.h>
#include <stddef.h>

#include "families/lazy_lib.h"

#define NS LIBUSB_ERROR_NOT_SUPPORTED
/* F(return type, name, parameters, arguments, value when not loaded);
 * V(name, parameters, arguments) for those returning nothing. */
#define LIBUSB_FUNCTIONS(F, V)                                                                     \
    F(struct libusb_transfer *, libusb_alloc_transfer, (int iso_packets), (iso_packets), NULL)     \
    F(int, libusb_cancel_transfer, (struct libusb_transfer * transfer), (transfer), NS)            \
    F(int, libusb_claim_interface, (libusb_device_handle * dev_handle, int interface_number),      \
      (dev_handle, interface_number), NS)                                                          \
    F(int, libusb_clear_halt, (libusb_device_handle * dev_handle, unsigned char endpoint),         \
      (dev_handle, endpoint), NS)                                                                  \
    V(libusb_close, (libusb_device_handle * dev_handle), (dev_handle))                             \
    F(int, libusb_control_transfer,                                                                \
      (libusb_device_handle * dev_handle, uint8_t request_type, uint8_t bRequest, uint16_t wValue, \
       uint16_t wIndex, unsigned char *data, uint16_t wLength, unsigned int timeout),              \
      (dev_handle, request_type, bRequest, wValue, wIndex, data, wLength, timeout), NS)            \
    F(int, libusb_detach_kernel_driver, (libusb_device_handle * dev_handle, int interface_number), \
      (dev_handle, interface_number), NS)                                                          \
    F(const char *, libusb_error_name, (int errcode), (errcode),                                   \
      "LIBUSB_ERROR_NOT_SUPPORTED (libusb-1.0 could not be loaded)")                               \
    V(libusb_exit, (libusb_context * ctx), (ctx))                                                  \
    V(libusb_free_config_descriptor, (struct libusb_config_descriptor * config), (config))         \
    V(libusb_free_transfer, (struct libusb_transfer * transfer), (transfer))                       \
    F(int, libusb_get_active_config_descriptor,                                                    \
      (libusb_device * dev, struct libusb_config_descriptor * *config), (dev, config), NS)         \
    F(libusb_device *, libusb_get_device, (libusb_device_handle * dev_handle), (dev_handle), NULL) \
    F(int, libusb_handle_events_timeout_completed,                                                 \
      (libusb_context * ctx, struct timeval * tv, int *completed), (ctx, tv, completed), NS)       \
    F(int, libusb_init, (libusb_context * *ctx), (ctx), NS)                                        \
    V(libusb_interrupt_event_handler, (libusb_context * ctx), (ctx))                               \
    F(int, libusb_release_interface, (libusb_device_handle * dev_handle, int interface_number),    \
      (dev_handle, interface_number), NS)                                                          \
    F(int, libusb_set_configuration, (libusb_device_handle * dev_handle, int configuration),       \
      (dev_handle, configuration), NS)                                                             \
    F(int, libusb_set_interface_alt_setting,                                                       \
      (libusb_device_handle * dev_handle, int interface_number, int alternate_setting),            \
      (dev_handle, interface_number, alternate_setting), NS)                                       \
    F(int, libusb_submit_transfer, (struct libusb_transfer * transfer), (transfer), NS)            \
    F(int, libusb_wrap_sys_device,                                                                 \
      (libusb_context * ctx, intptr_t sys_dev, libusb_device_handle * *dev_handle),                \
      (ctx, sys_dev, dev_handle), NS)

enum { LIBUSB_FUNCTIONS(LAZY_INDEX_F, LAZY_INDEX_V) I_libusb_set_option, N_FUNCTIONS };

static const char *const names[N_FUNCTIONS] = {
    LIBUSB_FUNCTIONS(LAZY_NAME_F, LAZY_NAME_V) "libusb_set_option"};
static void *fns[N_FUNCTIONS];
static struct lazy_lib libusb = {"libusb-1.0.so.0", NULL, names, fns, N_FUNCTIONS, LAZY_UNTRIED};

#define LAZY_LIB libusb
#define LAZY_FNS fns
#define LAZY_CALL LIBUSB_CALL
LIBUSB_FUNCTIONS(LAZY_WRAP_F, LAZY_WRAP_V)

/* Variadic: of this libusb's options only the log level takes an
 * argument (an int). */
int LIBUSB_CALL libusb_set_option(libusb_context *ctx, enum libusb_option option, ...)
{
    if (!lazy_lib_load(&libusb))
        return NS;
    int(LIBUSB_CALL * fn)(libusb_context *, enum libusb_option, ...) =
        (int(LIBUSB_CALL *)(libusb_context *, enum libusb_option, ...))fns[I_libusb_set_option];
    va_list ap;
    va_start(ap, option);
    int r;
    if (option == LIBUSB_OPTION_LOG_LEVEL)
        r = fn(ctx, option, va_arg(ap, int));
    else
        r = fn(ctx, option);
    va_end(ap);
    return r;
}
