/* SPDX-License-Identifier: MIT */
/* fuzz_usb_descriptors — the USB descriptor checks and walkers on bytes a
 * device could send.  The first byte picks the bus speed; the rest is read
 * as a configuration (and as a device descriptor, a BOS and a string).  The
 * bytes sit in a buffer of exactly their length, so ASan sees any read past
 * what the device sent.
 *
 * A configuration the check accepts must walk cleanly: every descriptor the
 * walkers return lies inside wTotalLength, every endpoint belongs to the
 * interface it was asked for, and the distinct interface numbers are
 * bNumInterfaces of them; otherwise the harness aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "odk/status.h"
#include "odk/usb_descriptors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void inside(const uint8_t *b, size_t total, const void *p, const char *what)
{
    const uint8_t *q = p;
    const odk_usb_descriptor_header *h = p;
    if (q < b || q + 2 > b + total || h->bLength < 2 || q + h->bLength > b + total) {
        fprintf(stderr, "fuzz_usb_descriptors: %s outside the configuration\n", what);
        abort();
    }
}

static void walk_checked(const uint8_t *b)
{
    const odk_usb_config_descriptor *c = (const void *)b;
    size_t total = odk_usb_le16(c->wTotalLength);
    uint8_t numbers[32] = {0};
    unsigned n_numbers = 0;
    for (const odk_usb_descriptor_header *h = NULL; (h = odk_usb_next_descriptor(c, h));)
        inside(b, total, h, "a descriptor");
    for (const odk_usb_interface_descriptor *in = NULL; (in = odk_usb_next_interface(c, in));) {
        inside(b, total, in, "an interface");
        unsigned n = in->bInterfaceNumber;
        if (!(numbers[n / 8] & (1u << (n % 8))))
            numbers[n / 8] |= (uint8_t)(1u << (n % 8)), n_numbers++;
        unsigned eps = 0;
        for (const odk_usb_endpoint_descriptor *e = NULL; (e = odk_usb_next_endpoint(c, in, e));) {
            inside(b, total, e, "an endpoint");
            eps++;
            (void)odk_usb_endpoint_bytes_per_interval(e, ODK_USB_SPEED_SUPER, NULL);
            (void)odk_usb_endpoint_interval_us(e, ODK_USB_SPEED_HIGH);
            for (const odk_usb_descriptor_header *h = NULL;
                 (h = odk_usb_next_associated(c, e, h, ODK_USB_DT_SS_ENDPOINT_COMPANION));)
                inside(b, total, h, "an endpoint companion");
        }
        if (eps != in->bNumEndpoints) {
            fprintf(stderr, "fuzz_usb_descriptors: interface %u has %u endpoints, says %u\n", n,
                    eps, in->bNumEndpoints);
            abort();
        }
        if (odk_usb_find_interface(c, in->bInterfaceNumber, in->bAlternateSetting) != in) {
            fprintf(stderr, "fuzz_usb_descriptors: interface %u listed twice\n", n);
            abort();
        }
    }
    if (n_numbers != c->bNumInterfaces) {
        fprintf(stderr, "fuzz_usb_descriptors: %u interfaces, bNumInterfaces %u\n", n_numbers,
                c->bNumInterfaces);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    odk_usb_speed speed = (odk_usb_speed)(data[0] % 6);
    size_t n = size - 1;
    uint8_t *b = malloc(n ? n : 1);
    if (!b)
        return 0;
    memcpy(b, data + 1, n);
    char why[256], text[128];

    if (odk_usb_config_check(b, n, speed, why, sizeof why) == ODK_OK)
        walk_checked(b);
    else if (!why[0])
        abort(); /* a refusal always says why */
    /* The walkers alone on unchecked bytes, as far as wTotalLength is
     * within what was read (their documented precondition). */
    if (n >= sizeof(odk_usb_config_descriptor) &&
        odk_usb_le16(((const odk_usb_config_descriptor *)b)->wTotalLength) <= n) {
        const odk_usb_config_descriptor *c = (const void *)b;
        for (const odk_usb_interface_descriptor *in = NULL; (in = odk_usb_next_interface(c, in));)
            for (const odk_usb_endpoint_descriptor *e = NULL;
                 (e = odk_usb_next_endpoint(c, in, e));)
                (void)odk_usb_endpoint_max_packet_size(e);
    }
    (void)odk_usb_device_check(b, n, speed, why, sizeof why);
    (void)odk_usb_bos_check(b, n, why, sizeof why);
    int st = odk_usb_string_to_utf8(b, n, text, sizeof text);
    if (st >= 0 && (size_t)st != strlen(text))
        abort();
    free(b);
    return 0;
}
