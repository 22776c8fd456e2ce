/* SPDX-License-Identifier: MIT */
/* models.c — the device models compiled into odk-usb-model. */
#include "buses/usb/model.h"

extern const struct usb_model_ops usb_model_cdc_acm, usb_model_cdc_ecm, usb_model_ftdi, usb_model_vendor_echo,
    usb_model_hid_keyboard, usb_model_hid_mouse, usb_model_hid_tablet, usb_model_broken;

const struct usb_model_ops *const usb_models[] = {
    &usb_model_cdc_acm,
    &usb_model_cdc_ecm,
    &usb_model_ftdi,
    &usb_model_vendor_echo,
    &usb_model_hid_keyboard,
    &usb_model_hid_mouse,
    &usb_model_hid_tablet,
    &usb_model_broken,
    NULL,
};
