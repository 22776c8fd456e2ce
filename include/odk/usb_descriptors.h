/* SPDX-License-Identifier: MIT */
/* odk/usb_descriptors.h — USB descriptors as they come off the bus, checked
 * before anything trusts them, and walked the way USBDriverKit walks them.
 *
 * The structures are the wire layout of USB 2.0 chapter 9 and USB 3.2
 * chapter 9 (packed, multi-byte fields little-endian: read them with
 * odk_usb_le16()).  A DriverKit port maps one to one:
 *   IOUSBDeviceDescriptor        odk_usb_device_descriptor
 *   IOUSBConfigurationDescriptor odk_usb_config_descriptor
 *   IOUSBInterfaceDescriptor     odk_usb_interface_descriptor
 *   IOUSBEndpointDescriptor      odk_usb_endpoint_descriptor
 *   IOUSBGetNextDescriptor       odk_usb_next_descriptor
 *   IOUSBGetNextInterfaceDescriptor  odk_usb_next_interface
 *   IOUSBGetNextEndpointDescriptor   odk_usb_next_endpoint
 *   IOUSBGetNextAssociatedDescriptorWithType  odk_usb_next_associated
 *   IOUSBGetEndpointMaxPacketSize    odk_usb_endpoint_max_packet_size
 *
 * A device's descriptors are untrusted input.  The USB family checks every
 * configuration with odk_usb_config_check() before it publishes the
 * device's interfaces or hands the configuration to a driver, so a driver
 * only ever walks checked descriptors; the walkers stay within
 * wTotalLength and stop at a descriptor whose length is impossible even
 * so.
 *
 * Every function here is pure: no allocation, no blocking, callable from
 * any thread.
 */
#ifndef ODK_USB_DESCRIPTORS_H
#define ODK_USB_DESCRIPTORS_H

#include "odk/export.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Descriptor types (bDescriptorType). */
enum {
    ODK_USB_DT_DEVICE = 0x01,
    ODK_USB_DT_CONFIG = 0x02,
    ODK_USB_DT_STRING = 0x03,
    ODK_USB_DT_INTERFACE = 0x04,
    ODK_USB_DT_ENDPOINT = 0x05,
    ODK_USB_DT_DEVICE_QUALIFIER = 0x06,
    ODK_USB_DT_OTHER_SPEED_CONFIG = 0x07,
    ODK_USB_DT_INTERFACE_POWER = 0x08,
    ODK_USB_DT_OTG = 0x09,
    ODK_USB_DT_DEBUG = 0x0a,
    ODK_USB_DT_INTERFACE_ASSOCIATION = 0x0b,
    ODK_USB_DT_BOS = 0x0f,
    ODK_USB_DT_DEVICE_CAPABILITY = 0x10,
    ODK_USB_DT_HID = 0x21,
    ODK_USB_DT_HID_REPORT = 0x22,
    ODK_USB_DT_CS_INTERFACE = 0x24, /* class-specific (CDC, audio, ...) */
    ODK_USB_DT_CS_ENDPOINT = 0x25,
    ODK_USB_DT_SS_ENDPOINT_COMPANION = 0x30,
    ODK_USB_DT_SSP_ISOC_ENDPOINT_COMPANION = 0x31,
};

/* Device and interface classes that matter to odk's samples and checks. */
enum {
    ODK_USB_CLASS_PER_INTERFACE = 0x00,
    ODK_USB_CLASS_AUDIO = 0x01,
    ODK_USB_CLASS_CDC = 0x02,
    ODK_USB_CLASS_HID = 0x03,
    ODK_USB_CLASS_MASS_STORAGE = 0x08,
    ODK_USB_CLASS_HUB = 0x09,
    ODK_USB_CLASS_CDC_DATA = 0x0a,
    ODK_USB_CLASS_MISC = 0xef,
    ODK_USB_CLASS_VENDOR = 0xff,
};

/* Bus speeds, slowest first. */
typedef enum odk_usb_speed {
    ODK_USB_SPEED_UNKNOWN = 0, /* skip the checks that depend on speed */
    ODK_USB_SPEED_LOW = 1,     /* 1.5 Mb/s */
    ODK_USB_SPEED_FULL = 2,    /* 12 Mb/s */
    ODK_USB_SPEED_HIGH = 3,    /* 480 Mb/s */
    ODK_USB_SPEED_SUPER = 4,   /* 5 Gb/s */
    ODK_USB_SPEED_SUPER_PLUS = 5,
} odk_usb_speed;

/* Endpoint transfer types (bmAttributes bits 1..0). */
typedef enum odk_usb_transfer_type {
    ODK_USB_TRANSFER_CONTROL = 0,
    ODK_USB_TRANSFER_ISOCHRONOUS = 1,
    ODK_USB_TRANSFER_BULK = 2,
    ODK_USB_TRANSFER_INTERRUPT = 3,
} odk_usb_transfer_type;

#define ODK_USB_ENDPOINT_IN 0x80u     /* bEndpointAddress: device to host */
#define ODK_USB_ENDPOINT_NUMBER 0x0fu /* bEndpointAddress: endpoint number */

typedef struct __attribute__((packed)) odk_usb_descriptor_header {
    uint8_t bLength;
    uint8_t bDescriptorType;
} odk_usb_descriptor_header;

typedef struct __attribute__((packed)) odk_usb_device_descriptor {
    uint8_t bLength; /* 18 */
    uint8_t bDescriptorType;
    uint16_t bcdUSB;
    uint8_t bDeviceClass;
    uint8_t bDeviceSubClass;
    uint8_t bDeviceProtocol;
    uint8_t bMaxPacketSize0; /* 8, 16, 32, 64; 9 (= 2^9) on SuperSpeed */
    uint16_t idVendor;
    uint16_t idProduct;
    uint16_t bcdDevice;
    uint8_t iManufacturer;
    uint8_t iProduct;
    uint8_t iSerialNumber;
    uint8_t bNumConfigurations;
} odk_usb_device_descriptor;

typedef struct __attribute__((packed)) odk_usb_config_descriptor {
    uint8_t bLength; /* 9 */
    uint8_t bDescriptorType;
    uint16_t wTotalLength; /* this descriptor and all that follow it */
    uint8_t bNumInterfaces;
    uint8_t bConfigurationValue;
    uint8_t iConfiguration;
    uint8_t bmAttributes;
    uint8_t bMaxPower;
} odk_usb_config_descriptor;

typedef struct __attribute__((packed)) odk_usb_interface_descriptor {
    uint8_t bLength; /* 9 */
    uint8_t bDescriptorType;
    uint8_t bInterfaceNumber;
    uint8_t bAlternateSetting;
    uint8_t bNumEndpoints;
    uint8_t bInterfaceClass;
    uint8_t bInterfaceSubClass;
    uint8_t bInterfaceProtocol;
    uint8_t iInterface;
} odk_usb_interface_descriptor;

typedef struct __attribute__((packed)) odk_usb_endpoint_descriptor {
    uint8_t bLength; /* 7 (9 for USB audio 1.0's endpoints) */
    uint8_t bDescriptorType;
    uint8_t bEndpointAddress;
    uint8_t bmAttributes;
    uint16_t wMaxPacketSize;
    uint8_t bInterval;
} odk_usb_endpoint_descriptor;

typedef struct __attribute__((packed)) odk_usb_interface_association_descriptor {
    uint8_t bLength; /* 8 */
    uint8_t bDescriptorType;
    uint8_t bFirstInterface;
    uint8_t bInterfaceCount;
    uint8_t bFunctionClass;
    uint8_t bFunctionSubClass;
    uint8_t bFunctionProtocol;
    uint8_t iFunction;
} odk_usb_interface_association_descriptor;

typedef struct __attribute__((packed)) odk_usb_ss_endpoint_companion_descriptor {
    uint8_t bLength; /* 6 */
    uint8_t bDescriptorType;
    uint8_t bMaxBurst;
    uint8_t bmAttributes;
    uint16_t wBytesPerInterval;
} odk_usb_ss_endpoint_companion_descriptor;

typedef struct __attribute__((packed)) odk_usb_bos_descriptor {
    uint8_t bLength; /* 5 */
    uint8_t bDescriptorType;
    uint16_t wTotalLength;
    uint8_t bNumDeviceCaps;
} odk_usb_bos_descriptor;

typedef struct __attribute__((packed)) odk_usb_device_capability_descriptor {
    uint8_t bLength; /* 3 or more */
    uint8_t bDescriptorType;
    uint8_t bDevCapabilityType;
} odk_usb_device_capability_descriptor;

/* A 16-bit descriptor field (little-endian on the bus) in host order. */
static inline uint16_t odk_usb_le16(uint16_t wire)
{
    const uint8_t *b = (const uint8_t *)&wire;
    return (uint16_t)(b[0] | b[1] << 8);
}

/* Checks a device descriptor of len bytes (USB 2.0 9.6.1): its length and
 * type, bMaxPacketSize0 (8, 16, 32 or 64; 512 on SuperSpeed, where the
 * field holds 9) and bNumConfigurations >= 1.  speed may be
 * ODK_USB_SPEED_UNKNOWN.  Returns ODK_OK, or ODK_E_PROTOCOL with the first
 * fault in why ("bMaxPacketSize0 is 12; it must be 8, 16, 32 or 64");
 * ODK_E_INVALID when desc is NULL.  why may be NULL. */
ODK_PUBLIC int odk_usb_device_check(const void *desc, size_t len, odk_usb_speed speed,
                                    char *why, size_t why_len);

/* Checks a whole configuration as read from the device (USB 2.0 9.6.3):
 * wTotalLength against the len bytes actually read, every descriptor's
 * bLength within it, interface and endpoint descriptors long enough, each
 * interface's bNumEndpoints against the endpoints that follow it, endpoints
 * only after an interface, no endpoint 0 and no address twice in one
 * alternate setting, alternate setting 0 present for every interface,
 * bNumInterfaces against the interfaces present, and (when speed is known)
 * wMaxPacketSize and bInterval within what the speed allows.  Bytes past
 * wTotalLength are ignored.  Returns ODK_OK, or ODK_E_PROTOCOL with the
 * first fault in why, naming the descriptor by its byte offset
 * ("configuration 1: wTotalLength 4096 is past the 32 bytes read");
 * ODK_E_INVALID when config is NULL. */
ODK_PUBLIC int odk_usb_config_check(const void *config, size_t len, odk_usb_speed speed,
                                    char *why, size_t why_len);

/* Checks a BOS descriptor set (USB 3.2 9.6.2): wTotalLength against len,
 * each device capability's length and type, and bNumDeviceCaps against the
 * capabilities present.  Errors as odk_usb_config_check. */
ODK_PUBLIC int odk_usb_bos_check(const void *bos, size_t len, char *why, size_t why_len);

/* The descriptor after current in config (the first one after the
 * configuration descriptor when current is NULL), or NULL at the end of
 * wTotalLength or at a descriptor that does not fit in it.  Borrows from
 * config. */
ODK_PUBLIC const odk_usb_descriptor_header *
odk_usb_next_descriptor(const odk_usb_config_descriptor *config,
                        const odk_usb_descriptor_header *current);

/* The next descriptor of type after current, or NULL.  Borrows. */
ODK_PUBLIC const odk_usb_descriptor_header *
odk_usb_next_descriptor_of_type(const odk_usb_config_descriptor *config,
                                const odk_usb_descriptor_header *current, uint8_t type);

/* The next descriptor of type that belongs to parent (an interface or an
 * endpoint descriptor): it stops at the next interface descriptor, and,
 * when parent is an endpoint, at the next endpoint too.  current NULL
 * starts right after parent.  Borrows. */
ODK_PUBLIC const odk_usb_descriptor_header *
odk_usb_next_associated(const odk_usb_config_descriptor *config, const void *parent,
                        const odk_usb_descriptor_header *current, uint8_t type);

/* The next interface descriptor after current (NULL: the first), every
 * alternate setting and every class (vendor class 0xff included), in the
 * order the device lists them.  Borrows. */
ODK_PUBLIC const odk_usb_interface_descriptor *
odk_usb_next_interface(const odk_usb_config_descriptor *config,
                       const odk_usb_interface_descriptor *current);

/* The next endpoint of interface after current (NULL: the first); NULL
 * after its last one.  Borrows. */
ODK_PUBLIC const odk_usb_endpoint_descriptor *
odk_usb_next_endpoint(const odk_usb_config_descriptor *config,
                      const odk_usb_interface_descriptor *interface,
                      const odk_usb_endpoint_descriptor *current);

/* The interface with number and alternate setting alt, or NULL.  Borrows. */
ODK_PUBLIC const odk_usb_interface_descriptor *
odk_usb_find_interface(const odk_usb_config_descriptor *config, uint8_t number, uint8_t alt);

/* The endpoint's transfer type and direction (true: IN, device to host). */
ODK_PUBLIC odk_usb_transfer_type
odk_usb_endpoint_type(const odk_usb_endpoint_descriptor *endpoint);
ODK_PUBLIC bool odk_usb_endpoint_is_in(const odk_usb_endpoint_descriptor *endpoint);

/* The largest packet the endpoint moves (wMaxPacketSize bits 10..0). */
ODK_PUBLIC uint16_t odk_usb_endpoint_max_packet_size(const odk_usb_endpoint_descriptor *endpoint);

/* Bytes the endpoint may move per service interval: max packet size times
 * the high-speed additional transactions (bits 12..11) or, on SuperSpeed,
 * times the companion's bMaxBurst + 1 (and, for isochronous endpoints, its
 * Mult + 1) when companion is not NULL. */
ODK_PUBLIC uint32_t
odk_usb_endpoint_bytes_per_interval(const odk_usb_endpoint_descriptor *endpoint,
                                    odk_usb_speed speed,
                                    const odk_usb_ss_endpoint_companion_descriptor *companion);

/* The endpoint's polling interval in microseconds at speed (USB 2.0 9.6.6:
 * frames of 1 ms at low and full speed for interrupt endpoints, 2^(n-1)
 * (micro)frames otherwise); 0 for bulk and control endpoints. */
ODK_PUBLIC uint32_t odk_usb_endpoint_interval_us(const odk_usb_endpoint_descriptor *endpoint,
                                                 odk_usb_speed speed);

/* Converts a string descriptor (UTF-16LE, USB 2.0 9.6.7) of len bytes to
 * NUL-terminated UTF-8 in out (out_len bytes, at least 1).  Unpaired
 * surrogates become U+FFFD.  Returns the length written without the NUL,
 * or ODK_E_PROTOCOL (bad bLength or type), ODK_E_LIMIT (out too small:
 * out holds what fitted, cut at a character boundary), ODK_E_INVALID
 * (NULL arguments). */
ODK_PUBLIC int odk_usb_string_to_utf8(const void *desc, size_t len, char *out, size_t out_len);

#ifdef __cplusplus
}
#endif

#endif
