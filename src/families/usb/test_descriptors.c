/* SPDX-License-Identifier: MIT */
/* Unit tests for USB descriptor checks and walkers (descriptors.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "odk/status.h"
#include "odk/usb_descriptors.h"

/* ---- building descriptors ------------------------------------------------ */

struct buf {
    uint8_t b[1024];
    size_t n;
};

static void put(struct buf *d, size_t n, const uint8_t *bytes)
{
    assert_true(d->n + n <= sizeof d->b);
    memcpy(d->b + d->n, bytes, n);
    d->n += n;
}

#define PUT(d, ...)                                                                               \
    do {                                                                                          \
        const uint8_t bytes_[] = {__VA_ARGS__};                                                   \
        put(d, sizeof bytes_, bytes_);                                                            \
    } while (0)

static void config(struct buf *d, uint8_t n_interfaces, uint8_t value)
{
    d->n = 0;
    PUT(d, 9, ODK_USB_DT_CONFIG, 0, 0, n_interfaces, value, 0, 0x80, 50);
}

static void interface(struct buf *d, uint8_t num, uint8_t alt, uint8_t n_ep, uint8_t cls)
{
    PUT(d, 9, ODK_USB_DT_INTERFACE, num, alt, n_ep, cls, 0, 0, 0);
}

static void endpoint(struct buf *d, uint8_t addr, uint8_t type, uint16_t mps, uint8_t interval)
{
    PUT(d, 7, ODK_USB_DT_ENDPOINT, addr, type, (uint8_t)(mps & 0xff), (uint8_t)(mps >> 8),
        interval);
}

/* Sets wTotalLength to what was built. */
static const odk_usb_config_descriptor *finish(struct buf *d)
{
    d->b[2] = (uint8_t)(d->n & 0xff);
    d->b[3] = (uint8_t)(d->n >> 8);
    return (const void *)d->b;
}

/* A CDC-ACM adapter: an interface association, the communication
 * interface with its class descriptors and notification endpoint, the data
 * interface with a bulk pair (full speed). */
static const odk_usb_config_descriptor *cdc_acm(struct buf *d)
{
    config(d, 2, 1);
    PUT(d, 8, ODK_USB_DT_INTERFACE_ASSOCIATION, 0, 2, ODK_USB_CLASS_CDC, 2, 1, 0);
    interface(d, 0, 0, 1, ODK_USB_CLASS_CDC);
    PUT(d, 5, ODK_USB_DT_CS_INTERFACE, 0x00, 0x10, 0x01);       /* header */
    PUT(d, 5, ODK_USB_DT_CS_INTERFACE, 0x01, 0x00, 0x01);       /* call management */
    PUT(d, 4, ODK_USB_DT_CS_INTERFACE, 0x02, 0x02);             /* ACM */
    PUT(d, 5, ODK_USB_DT_CS_INTERFACE, 0x06, 0x00, 0x01);       /* union */
    endpoint(d, 0x83, ODK_USB_TRANSFER_INTERRUPT, 16, 16);
    interface(d, 1, 0, 2, ODK_USB_CLASS_CDC_DATA);
    endpoint(d, 0x02, ODK_USB_TRANSFER_BULK, 64, 0);
    endpoint(d, 0x81, ODK_USB_TRANSFER_BULK, 64, 0);
    return finish(d);
}

static char why[256];

static int check(struct buf *d, odk_usb_speed speed)
{
    why[0] = '\0';
    return odk_usb_config_check(d->b, d->n, speed, why, sizeof why);
}

static void assert_refused(struct buf *d, odk_usb_speed speed, const char *words)
{
    assert_int_equal(check(d, speed), ODK_E_PROTOCOL);
    if (!strstr(why, words))
        fail_msg("reason \"%s\" does not say \"%s\"", why, words);
}

/* ---- configuration: good ones -------------------------------------------- */

static void cdc_acm_passes_and_walks_in_order(void **state)
{
    (void)state;
    struct buf d;
    const odk_usb_config_descriptor *c = cdc_acm(&d);
    assert_int_equal(check(&d, ODK_USB_SPEED_FULL), ODK_OK);
    assert_int_equal(check(&d, ODK_USB_SPEED_UNKNOWN), ODK_OK);

    const odk_usb_interface_descriptor *i0 = odk_usb_next_interface(c, NULL);
    assert_non_null(i0);
    assert_int_equal(i0->bInterfaceNumber, 0);
    const odk_usb_interface_descriptor *i1 = odk_usb_next_interface(c, i0);
    assert_non_null(i1);
    assert_int_equal(i1->bInterfaceNumber, 1);
    assert_null(odk_usb_next_interface(c, i1));

    /* The class descriptors belong to interface 0 only. */
    int n_cs = 0;
    for (const odk_usb_descriptor_header *h = NULL;
         (h = odk_usb_next_associated(c, i0, h, ODK_USB_DT_CS_INTERFACE));)
        n_cs++;
    assert_int_equal(n_cs, 4);
    assert_null(odk_usb_next_associated(c, i1, NULL, ODK_USB_DT_CS_INTERFACE));

    const odk_usb_endpoint_descriptor *e = odk_usb_next_endpoint(c, i0, NULL);
    assert_non_null(e);
    assert_int_equal(e->bEndpointAddress, 0x83);
    assert_true(odk_usb_endpoint_is_in(e));
    assert_int_equal(odk_usb_endpoint_type(e), ODK_USB_TRANSFER_INTERRUPT);
    assert_null(odk_usb_next_endpoint(c, i0, e));

    e = odk_usb_next_endpoint(c, i1, NULL);
    assert_int_equal(e->bEndpointAddress, 0x02);
    assert_false(odk_usb_endpoint_is_in(e));
    e = odk_usb_next_endpoint(c, i1, e);
    assert_int_equal(e->bEndpointAddress, 0x81);
    assert_int_equal(odk_usb_endpoint_max_packet_size(e), 64);
    assert_null(odk_usb_next_endpoint(c, i1, e));

    assert_ptr_equal(odk_usb_find_interface(c, 1, 0), i1);
    assert_null(odk_usb_find_interface(c, 1, 1));
    assert_non_null(odk_usb_next_descriptor_of_type(c, NULL, ODK_USB_DT_INTERFACE_ASSOCIATION));
}

/* Story 18: a vendor-class device's interfaces are all there, with their
 * alternate settings, in the device's order. */
static void vendor_interfaces_and_alternates_are_all_listed(void **state)
{
    (void)state;
    struct buf d;
    config(&d, 3, 1);
    interface(&d, 0, 0, 2, ODK_USB_CLASS_VENDOR);
    endpoint(&d, 0x01, ODK_USB_TRANSFER_BULK, 512, 0);
    endpoint(&d, 0x82, ODK_USB_TRANSFER_BULK, 512, 0);
    interface(&d, 1, 0, 1, ODK_USB_CLASS_VENDOR);
    endpoint(&d, 0x83, ODK_USB_TRANSFER_INTERRUPT, 8, 4);
    interface(&d, 2, 0, 0, ODK_USB_CLASS_AUDIO);
    interface(&d, 2, 1, 1, ODK_USB_CLASS_AUDIO);
    endpoint(&d, 0x04, ODK_USB_TRANSFER_ISOCHRONOUS, 192 | (1 << 11), 1);
    const odk_usb_config_descriptor *c = finish(&d);
    assert_int_equal(check(&d, ODK_USB_SPEED_HIGH), ODK_OK);

    const uint8_t want[][2] = {{0, 0}, {1, 0}, {2, 0}, {2, 1}};
    const odk_usb_interface_descriptor *in = NULL;
    size_t k = 0;
    while ((in = odk_usb_next_interface(c, in))) {
        assert_true(k < 4);
        assert_int_equal(in->bInterfaceNumber, want[k][0]);
        assert_int_equal(in->bAlternateSetting, want[k][1]);
        k++;
    }
    assert_int_equal(k, 4);
    /* Alternate setting 0 of interface 2 has no endpoints: the walk for it
     * stops at alternate setting 1 instead of borrowing its endpoint. */
    assert_null(odk_usb_next_endpoint(c, odk_usb_find_interface(c, 2, 0), NULL));
    const odk_usb_endpoint_descriptor *iso =
        odk_usb_next_endpoint(c, odk_usb_find_interface(c, 2, 1), NULL);
    assert_non_null(iso);
    assert_int_equal(odk_usb_endpoint_bytes_per_interval(iso, ODK_USB_SPEED_HIGH, NULL), 384);
    assert_int_equal(odk_usb_endpoint_interval_us(iso, ODK_USB_SPEED_HIGH), 125);
}

static void bytes_past_total_length_are_ignored(void **state)
{
    (void)state;
    struct buf d;
    cdc_acm(&d);
    size_t n = d.n;
    PUT(&d, 0, 0, 0); /* junk a device sent after its configuration */
    assert_int_equal(odk_usb_config_check(d.b, d.n, ODK_USB_SPEED_FULL, why, sizeof why), ODK_OK);
    assert_int_equal(odk_usb_le16(((const odk_usb_config_descriptor *)d.b)->wTotalLength), n);
}

/* ---- configuration: lies and damage -------------------------------------- */

static void total_length_past_what_was_read(void **state)
{
    (void)state;
    struct buf d;
    cdc_acm(&d);
    d.b[2] = 0x00, d.b[3] = 0x10; /* 4096 */
    assert_refused(&d, ODK_USB_SPEED_FULL, "wTotalLength 4096 is past the");
    d.b[2] = 4, d.b[3] = 0;
    assert_refused(&d, ODK_USB_SPEED_FULL, "less than its bLength");
}

static void short_reads_and_wrong_types(void **state)
{
    (void)state;
    struct buf d;
    cdc_acm(&d);
    assert_int_equal(odk_usb_config_check(d.b, 5, ODK_USB_SPEED_FULL, why, sizeof why),
                     ODK_E_PROTOCOL);
    assert_non_null(strstr(why, "5 bytes read"));
    d.b[1] = ODK_USB_DT_DEVICE;
    assert_refused(&d, ODK_USB_SPEED_FULL, "bDescriptorType is 0x01");
    assert_int_equal(odk_usb_config_check(NULL, 9, ODK_USB_SPEED_FULL, NULL, 0), ODK_E_INVALID);
}

static void zero_length_descriptor_is_refused_and_stops_walks(void **state)
{
    (void)state;
    struct buf d;
    config(&d, 1, 1);
    interface(&d, 0, 0, 0, ODK_USB_CLASS_VENDOR);
    PUT(&d, 0, ODK_USB_DT_CS_INTERFACE, 0, 0);
    interface(&d, 0, 1, 0, ODK_USB_CLASS_VENDOR);
    const odk_usb_config_descriptor *c = finish(&d);
    assert_refused(&d, ODK_USB_SPEED_FULL, "bLength 0");
    /* The walkers never loop on it, checked or not. */
    const odk_usb_interface_descriptor *in = odk_usb_next_interface(c, NULL);
    assert_non_null(in);
    assert_null(odk_usb_next_interface(c, in));
}

static void descriptor_running_past_the_end(void **state)
{
    (void)state;
    struct buf d;
    config(&d, 1, 1);
    interface(&d, 0, 0, 0, ODK_USB_CLASS_VENDOR);
    PUT(&d, 40, ODK_USB_DT_CS_INTERFACE, 1, 2, 3);
    const odk_usb_config_descriptor *c = finish(&d);
    assert_refused(&d, ODK_USB_SPEED_FULL, "runs past wTotalLength");
    const odk_usb_interface_descriptor *in = odk_usb_next_interface(c, NULL);
    assert_null(odk_usb_next_associated(c, in, NULL, ODK_USB_DT_CS_INTERFACE));

    config(&d, 1, 1);
    interface(&d, 0, 0, 0, ODK_USB_CLASS_VENDOR);
    PUT(&d, 1);
    finish(&d);
    assert_refused(&d, ODK_USB_SPEED_FULL, "stray byte");

    config(&d, 1, 1);
    PUT(&d, 5, ODK_USB_DT_INTERFACE, 0, 0, 0);
    finish(&d);
    assert_refused(&d, ODK_USB_SPEED_FULL, "interface descriptor at offset 9 has bLength 5");
}

static void endpoint_counts_must_agree(void **state)
{
    (void)state;
    struct buf d;
    config(&d, 1, 1);
    interface(&d, 0, 0, 2, ODK_USB_CLASS_VENDOR);
    endpoint(&d, 0x81, ODK_USB_TRANSFER_BULK, 64, 0);
    finish(&d);
    assert_refused(&d, ODK_USB_SPEED_FULL, "declares 2 endpoints but has 1");

    config(&d, 1, 1);
    interface(&d, 0, 0, 1, ODK_USB_CLASS_VENDOR);
    endpoint(&d, 0x81, ODK_USB_TRANSFER_BULK, 64, 0);
    endpoint(&d, 0x02, ODK_USB_TRANSFER_BULK, 64, 0);
    finish(&d);
    assert_refused(&d, ODK_USB_SPEED_FULL, "declares 1 endpoint but has more");

    config(&d, 1, 1);
    endpoint(&d, 0x81, ODK_USB_TRANSFER_BULK, 64, 0);
    interface(&d, 0, 0, 0, ODK_USB_CLASS_VENDOR);
    finish(&d);
    assert_refused(&d, ODK_USB_SPEED_FULL, "comes before any interface");

    /* An interface association ends the interface before it. */
    config(&d, 1, 1);
    interface(&d, 0, 0, 1, ODK_USB_CLASS_VENDOR);
    PUT(&d, 8, ODK_USB_DT_INTERFACE_ASSOCIATION, 1, 1, ODK_USB_CLASS_VENDOR, 0, 0, 0);
    endpoint(&d, 0x81, ODK_USB_TRANSFER_BULK, 64, 0);
    finish(&d);
    assert_refused(&d, ODK_USB_SPEED_FULL, "declares 1 endpoint but has 0");
}

static void endpoint_addresses(void **state)
{
    (void)state;
    struct buf d;
    config(&d, 1, 1);
    interface(&d, 0, 0, 1, ODK_USB_CLASS_VENDOR);
    endpoint(&d, 0x80, ODK_USB_TRANSFER_BULK, 64, 0);
    finish(&d);
    assert_refused(&d, ODK_USB_SPEED_FULL, "endpoint 0 is the default control pipe");

    config(&d, 1, 1);
    interface(&d, 0, 0, 2, ODK_USB_CLASS_VENDOR);
    endpoint(&d, 0x81, ODK_USB_TRANSFER_BULK, 64, 0);
    endpoint(&d, 0x81, ODK_USB_TRANSFER_BULK, 64, 0);
    finish(&d);
    assert_refused(&d, ODK_USB_SPEED_FULL, "lists endpoint 0x81 twice");

    /* The same number in both directions is two endpoints. */
    config(&d, 1, 1);
    interface(&d, 0, 0, 2, ODK_USB_CLASS_VENDOR);
    endpoint(&d, 0x81, ODK_USB_TRANSFER_BULK, 64, 0);
    endpoint(&d, 0x01, ODK_USB_TRANSFER_BULK, 64, 0);
    finish(&d);
    assert_int_equal(check(&d, ODK_USB_SPEED_FULL), ODK_OK);

    config(&d, 1, 1);
    interface(&d, 0, 0, 1, ODK_USB_CLASS_VENDOR);
    endpoint(&d, 0x91, ODK_USB_TRANSFER_BULK, 64, 0);
    finish(&d);
    assert_refused(&d, ODK_USB_SPEED_FULL, "reserved bits");
}

static void interfaces_must_be_what_the_configuration_says(void **state)
{
    (void)state;
    struct buf d;
    config(&d, 2, 1);
    interface(&d, 0, 0, 0, ODK_USB_CLASS_VENDOR);
    finish(&d);
    assert_refused(&d, ODK_USB_SPEED_FULL, "bNumInterfaces is 2 but the configuration has 1 interface");

    config(&d, 1, 1);
    interface(&d, 0, 0, 0, ODK_USB_CLASS_VENDOR);
    interface(&d, 0, 0, 0, ODK_USB_CLASS_VENDOR);
    finish(&d);
    assert_refused(&d, ODK_USB_SPEED_FULL, "interface 0 alternate setting 0 appears twice");

    config(&d, 1, 1);
    interface(&d, 0, 1, 0, ODK_USB_CLASS_VENDOR);
    finish(&d);
    assert_refused(&d, ODK_USB_SPEED_FULL, "interface 0 has no alternate setting 0");

    config(&d, 1, 1);
    interface(&d, 0, 0, 0, ODK_USB_CLASS_VENDOR);
    PUT(&d, 9, ODK_USB_DT_CONFIG, 9, 0, 1, 2, 0, 0x80, 50);
    finish(&d);
    assert_refused(&d, ODK_USB_SPEED_FULL, "configuration descriptor at offset 18");
}

/* One endpoint alone in a vendor interface, checked at speed. */
static int one_endpoint(odk_usb_speed speed, uint8_t type, uint16_t mps, uint8_t interval)
{
    struct buf d;
    config(&d, 1, 1);
    interface(&d, 0, 0, 1, ODK_USB_CLASS_VENDOR);
    endpoint(&d, 0x81, type, mps, interval);
    finish(&d);
    return check(&d, speed);
}

static void packet_sizes_and_intervals_by_speed(void **state)
{
    (void)state;
    const int OK = ODK_OK, BAD = ODK_E_PROTOCOL;
    /* low speed: control and interrupt only, at most 8 bytes */
    assert_int_equal(one_endpoint(ODK_USB_SPEED_LOW, ODK_USB_TRANSFER_INTERRUPT, 8, 10), OK);
    assert_int_equal(one_endpoint(ODK_USB_SPEED_LOW, ODK_USB_TRANSFER_BULK, 8, 0), BAD);
    assert_non_null(strstr(why, "low-speed devices have only control and interrupt"));
    assert_int_equal(one_endpoint(ODK_USB_SPEED_LOW, ODK_USB_TRANSFER_INTERRUPT, 16, 10), BAD);
    /* full speed */
    assert_int_equal(one_endpoint(ODK_USB_SPEED_FULL, ODK_USB_TRANSFER_BULK, 512, 0), BAD);
    assert_non_null(strstr(why, "full-speed bulk endpoint needs 8, 16, 32 or 64"));
    assert_int_equal(one_endpoint(ODK_USB_SPEED_FULL, ODK_USB_TRANSFER_BULK, 48, 0), BAD);
    assert_int_equal(one_endpoint(ODK_USB_SPEED_FULL, ODK_USB_TRANSFER_ISOCHRONOUS, 1023, 1), OK);
    assert_int_equal(one_endpoint(ODK_USB_SPEED_FULL, ODK_USB_TRANSFER_ISOCHRONOUS, 0, 1), OK);
    assert_int_equal(one_endpoint(ODK_USB_SPEED_FULL, ODK_USB_TRANSFER_INTERRUPT, 64, 0), BAD);
    assert_non_null(strstr(why, "bInterval 0"));
    assert_int_equal(one_endpoint(ODK_USB_SPEED_FULL, ODK_USB_TRANSFER_INTERRUPT, 64, 255), OK);
    /* high speed */
    assert_int_equal(one_endpoint(ODK_USB_SPEED_HIGH, ODK_USB_TRANSFER_BULK, 512, 0), OK);
    assert_int_equal(one_endpoint(ODK_USB_SPEED_HIGH, ODK_USB_TRANSFER_BULK, 1024, 0), BAD);
    assert_non_null(strstr(why, "more than a high-speed bulk endpoint allows (512)"));
    assert_int_equal(one_endpoint(ODK_USB_SPEED_HIGH, ODK_USB_TRANSFER_BULK, 512 | 1 << 11, 0),
                     BAD);
    assert_non_null(strstr(why, "additional transactions"));
    assert_int_equal(
        one_endpoint(ODK_USB_SPEED_HIGH, ODK_USB_TRANSFER_INTERRUPT, 1024 | 2 << 11, 1), OK);
    assert_int_equal(
        one_endpoint(ODK_USB_SPEED_HIGH, ODK_USB_TRANSFER_INTERRUPT, 1024 | 3 << 11, 1), BAD);
    assert_int_equal(one_endpoint(ODK_USB_SPEED_HIGH, ODK_USB_TRANSFER_INTERRUPT, 64, 17), BAD);
    assert_non_null(strstr(why, "needs 1 to 16"));
    assert_int_equal(one_endpoint(ODK_USB_SPEED_HIGH, ODK_USB_TRANSFER_BULK, 0, 0), BAD);
    /* SuperSpeed */
    assert_int_equal(one_endpoint(ODK_USB_SPEED_SUPER, ODK_USB_TRANSFER_BULK, 1024, 0), OK);
    assert_int_equal(one_endpoint(ODK_USB_SPEED_SUPER, ODK_USB_TRANSFER_BULK, 2047, 0), BAD);
    /* unknown speed: only the speed-free rules */
    assert_int_equal(one_endpoint(ODK_USB_SPEED_UNKNOWN, ODK_USB_TRANSFER_BULK, 2047, 0), OK);
    assert_int_equal(one_endpoint(ODK_USB_SPEED_UNKNOWN, ODK_USB_TRANSFER_BULK, 0, 0), BAD);
}

static void intervals_and_bursts(void **state)
{
    (void)state;
    odk_usb_endpoint_descriptor e = {7, ODK_USB_DT_ENDPOINT, 0x81, ODK_USB_TRANSFER_INTERRUPT,
                                     0, 10};
    e.wMaxPacketSize = odk_usb_le16(64);
    assert_int_equal(odk_usb_endpoint_interval_us(&e, ODK_USB_SPEED_FULL), 10000);
    e.bInterval = 4;
    assert_int_equal(odk_usb_endpoint_interval_us(&e, ODK_USB_SPEED_HIGH), 1000);
    e.bmAttributes = ODK_USB_TRANSFER_BULK;
    assert_int_equal(odk_usb_endpoint_interval_us(&e, ODK_USB_SPEED_HIGH), 0);
    e.bmAttributes = ODK_USB_TRANSFER_ISOCHRONOUS;
    e.bInterval = 1;
    assert_int_equal(odk_usb_endpoint_interval_us(&e, ODK_USB_SPEED_FULL), 1000);

    e.wMaxPacketSize = odk_usb_le16(1024);
    odk_usb_ss_endpoint_companion_descriptor ss = {6, ODK_USB_DT_SS_ENDPOINT_COMPANION, 3, 1, 0};
    assert_int_equal(odk_usb_endpoint_bytes_per_interval(&e, ODK_USB_SPEED_SUPER, &ss),
                     1024 * 4 * 2);
    assert_int_equal(odk_usb_endpoint_bytes_per_interval(&e, ODK_USB_SPEED_SUPER, NULL), 1024);
    e.bmAttributes = ODK_USB_TRANSFER_BULK;
    assert_int_equal(odk_usb_endpoint_bytes_per_interval(&e, ODK_USB_SPEED_SUPER, &ss), 4096);
}

/* Walking never leaves the configuration, even from a pointer that is not
 * inside it or a configuration whose total length is absurd. */
static void walkers_stay_inside(void **state)
{
    (void)state;
    struct buf d;
    const odk_usb_config_descriptor *c = cdc_acm(&d);
    odk_usb_descriptor_header outside = {9, ODK_USB_DT_INTERFACE};
    assert_null(odk_usb_next_descriptor(c, &outside));
    assert_null(odk_usb_next_descriptor(NULL, NULL));
    d.b[2] = 3, d.b[3] = 0; /* wTotalLength less than bLength */
    assert_null(odk_usb_next_descriptor(c, NULL));
    assert_null(odk_usb_next_interface(c, NULL));
}

/* ---- device descriptor --------------------------------------------------- */

static void device_descriptor(void **state)
{
    (void)state;
    uint8_t dev[18] = {18, ODK_USB_DT_DEVICE, 0x00, 0x02, 0, 0, 0, 64,
                       0x03, 0x04, 0x01, 0x60, 0x00, 0x06, 1, 2, 3, 1};
    const odk_usb_device_descriptor *d = (const void *)dev;
    assert_int_equal(odk_usb_le16(d->idVendor), 0x0403);
    assert_int_equal(odk_usb_le16(d->idProduct), 0x6001);
    assert_int_equal(odk_usb_device_check(dev, 18, ODK_USB_SPEED_FULL, why, sizeof why), ODK_OK);
    assert_int_equal(odk_usb_device_check(dev, 18, ODK_USB_SPEED_HIGH, why, sizeof why), ODK_OK);
    assert_int_equal(odk_usb_device_check(dev, 18, ODK_USB_SPEED_LOW, why, sizeof why),
                     ODK_E_PROTOCOL);
    assert_non_null(strstr(why, "a low-speed device needs 8"));
    assert_int_equal(odk_usb_device_check(dev, 17, ODK_USB_SPEED_FULL, why, sizeof why),
                     ODK_E_PROTOCOL);
    assert_non_null(strstr(why, "17 bytes read"));
    dev[7] = 12;
    assert_int_equal(odk_usb_device_check(dev, 18, ODK_USB_SPEED_UNKNOWN, why, sizeof why),
                     ODK_E_PROTOCOL);
    assert_non_null(strstr(why, "bMaxPacketSize0 is 12"));
    dev[7] = 9;
    assert_int_equal(odk_usb_device_check(dev, 18, ODK_USB_SPEED_SUPER, why, sizeof why), ODK_OK);
    dev[17] = 0;
    assert_int_equal(odk_usb_device_check(dev, 18, ODK_USB_SPEED_SUPER, why, sizeof why),
                     ODK_E_PROTOCOL);
    assert_non_null(strstr(why, "bNumConfigurations is 0"));
    dev[17] = 1, dev[0] = 12;
    assert_int_equal(odk_usb_device_check(dev, 18, ODK_USB_SPEED_SUPER, why, sizeof why),
                     ODK_E_PROTOCOL);
    assert_int_equal(odk_usb_device_check(NULL, 18, ODK_USB_SPEED_SUPER, NULL, 0), ODK_E_INVALID);
}

/* ---- BOS ----------------------------------------------------------------- */

static void bos(void **state)
{
    (void)state;
    uint8_t b[] = {5, ODK_USB_DT_BOS, 22, 0, 2,
                   /* USB 2.0 extension */ 7, ODK_USB_DT_DEVICE_CAPABILITY, 2, 2, 0, 0, 0,
                   /* SuperSpeed */ 10, ODK_USB_DT_DEVICE_CAPABILITY, 3, 0, 0x0e, 0, 1, 10, 0xff,
                   0x07};
    assert_int_equal(odk_usb_bos_check(b, sizeof b, why, sizeof why), ODK_OK);
    b[4] = 3;
    assert_int_equal(odk_usb_bos_check(b, sizeof b, why, sizeof why), ODK_E_PROTOCOL);
    assert_non_null(strstr(why, "bNumDeviceCaps is 3 but there are 2"));
    b[4] = 2, b[13] = ODK_USB_DT_ENDPOINT;
    assert_int_equal(odk_usb_bos_check(b, sizeof b, why, sizeof why), ODK_E_PROTOCOL);
    assert_non_null(strstr(why, "only device capabilities"));
    b[13] = ODK_USB_DT_DEVICE_CAPABILITY, b[12] = 2;
    assert_int_equal(odk_usb_bos_check(b, sizeof b, why, sizeof why), ODK_E_PROTOCOL);
    assert_non_null(strstr(why, "bLength 2"));
    b[12] = 10;
    assert_int_equal(odk_usb_bos_check(b, 12, why, sizeof why), ODK_E_PROTOCOL);
    assert_non_null(strstr(why, "past the 12 bytes read"));
}

/* ---- strings ------------------------------------------------------------- */

static void strings(void **state)
{
    (void)state;
    char out[64];
    const uint8_t ascii[] = {14, ODK_USB_DT_STRING, 'F', 0, 'T', 0, '2', 0, '3', 0, '2', 0, 'R', 0};
    assert_int_equal(odk_usb_string_to_utf8(ascii, sizeof ascii, out, sizeof out), 6);
    assert_string_equal(out, "FT232R");

    /* "Zü€" and a surrogate pair (U+1F600), then a lone low surrogate. */
    const uint8_t wide[] = {14, ODK_USB_DT_STRING, 'Z', 0, 0xfc, 0, 0xac, 0x20,
                            0x3d, 0xd8, 0x00, 0xde, 0x00, 0xdc};
    assert_int_equal(odk_usb_string_to_utf8(wide, sizeof wide, out, sizeof out), 13);
    assert_string_equal(out, "Z\xc3\xbc\xe2\x82\xac\xf0\x9f\x98\x80\xef\xbf\xbd");

    /* A buffer too small is cut at a character boundary. */
    assert_int_equal(odk_usb_string_to_utf8(wide, sizeof wide, out, 5), ODK_E_LIMIT);
    assert_string_equal(out, "Z\xc3\xbc");

    /* Trailing NUL padding ends the string. */
    const uint8_t padded[] = {8, ODK_USB_DT_STRING, 'A', 0, 0, 0, 0, 0};
    assert_int_equal(odk_usb_string_to_utf8(padded, sizeof padded, out, sizeof out), 1);

    const uint8_t empty[] = {2, ODK_USB_DT_STRING};
    assert_int_equal(odk_usb_string_to_utf8(empty, sizeof empty, out, sizeof out), 0);
    assert_string_equal(out, "");

    assert_int_equal(odk_usb_string_to_utf8(ascii, 10, out, sizeof out), ODK_E_PROTOCOL);
    const uint8_t wrong_type[] = {4, ODK_USB_DT_DEVICE, 'A', 0};
    assert_int_equal(odk_usb_string_to_utf8(wrong_type, 4, out, sizeof out), ODK_E_PROTOCOL);
    assert_int_equal(odk_usb_string_to_utf8(ascii, sizeof ascii, out, 0), ODK_E_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cdc_acm_passes_and_walks_in_order),
        cmocka_unit_test(vendor_interfaces_and_alternates_are_all_listed),
        cmocka_unit_test(bytes_past_total_length_are_ignored),
        cmocka_unit_test(total_length_past_what_was_read),
        cmocka_unit_test(short_reads_and_wrong_types),
        cmocka_unit_test(zero_length_descriptor_is_refused_and_stops_walks),
        cmocka_unit_test(descriptor_running_past_the_end),
        cmocka_unit_test(endpoint_counts_must_agree),
        cmocka_unit_test(endpoint_addresses),
        cmocka_unit_test(interfaces_must_be_what_the_configuration_says),
        cmocka_unit_test(packet_sizes_and_intervals_by_speed),
        cmocka_unit_test(intervals_and_bursts),
        cmocka_unit_test(walkers_stay_inside),
        cmocka_unit_test(device_descriptor),
        cmocka_unit_test(bos),
        cmocka_unit_test(strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
