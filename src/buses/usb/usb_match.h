/* SPDX-License-Identifier: MIT */
/* usb_match.h — the match keys of USB nodes, and IOKit's USB matching
 * rules.
 *
 * Keys (integers unless said), compared with the node's property of the
 * same name; idVendor, idProduct and bcdDevice are read from the parent
 * when an interface node lacks them (IOKit puts them on both):
 *   IOUSBHostDevice     idVendor, idProduct, bcdDevice, bDeviceClass,
 *                       bDeviceSubClass, bDeviceProtocol, bConfigurationValue
 *   IOUSBHostInterface  idVendor, idProduct, bcdDevice, bConfigurationValue,
 *                       bInterfaceNumber, bInterfaceClass,
 *                       bInterfaceSubClass, bInterfaceProtocol
 *   both                idProductArray (array of integers: any one equals
 *                       idProduct), idProductMask (integer: idProduct and
 *                       idProductArray compare under this mask)
 *
 * The rules: the USB keys a personality uses must include one of these
 * sets, most specific first (its precedence; a tie of IOProbeScore goes to
 * the higher one); a personality using no USB key matches on other keys:
 *   device     6 idVendor idProduct bcdDevice
 *              5 idVendor idProduct
 *              4 idVendor bDeviceSubClass bDeviceProtocol
 *              3 idVendor bDeviceSubClass
 *              2 bDeviceClass bDeviceSubClass bDeviceProtocol
 *              1 bDeviceClass bDeviceSubClass
 *   interface  6 idVendor idProduct bcdDevice bConfigurationValue bInterfaceNumber
 *              5 idVendor idProduct bConfigurationValue bInterfaceNumber
 *              4 idVendor bInterfaceSubClass bInterfaceProtocol
 *              3 idVendor bInterfaceSubClass
 *              2 bInterfaceClass bInterfaceSubClass bInterfaceProtocol
 *              1 bInterfaceClass bInterfaceSubClass
 * (idProductArray stands for idProduct.)  Registered by the USB bus module
 * (usb.c); a separate file so unit tests and fuzzers use the tables without
 * odkd. */
#ifndef ODK_BUSES_USB_MATCH_H
#define ODK_BUSES_USB_MATCH_H

#include "daemon/core/match.h"

extern const struct match_keys usb_device_match_keys;
extern const struct match_keys usb_interface_match_keys;

#endif
