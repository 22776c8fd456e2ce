/* SPDX-License-Identifier: MIT */
/* Unit tests for the device-model framework and the models (model.c,
 * models/): what a host controller sees when it enumerates them and
 * moves data, and the faults a test can inject. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "buses/usb/model.h"
#include "odk/status.h"

/* ---- a tiny host --------------------------------------------------------- */

#define MAX_DONE 64

struct host {
    struct usb_xfer *done[MAX_DONE];
    int n_done;
};

static void on_done(struct usb_model *m, struct usb_xfer *x, void *ctx)
{
    (void)m;
    struct host *h = ctx;
    assert_true(h->n_done < MAX_DONE);
    h->done[h->n_done++] = x;
}

static struct usb_model *plug(const char *name, const char *json, struct host *h)
{
    odk_value *args = NULL;
    char err[256];
    if (json)
        assert_int_equal(odk_value_from_json(json, &args, err, sizeof err), ODK_OK);
    const struct usb_model_ops *ops = usb_model_find(name);
    assert_non_null(ops);
    struct usb_model *m = NULL;
    memset(h, 0, sizeof *h);
    int st = usb_model_create(ops, args, on_done, h, &m, err, sizeof err);
    odk_value_free(args);
    assert_int_equal(st, ODK_OK);
    return m;
}

static int ctl(struct usb_model *m, uint8_t type, uint8_t req, uint16_t value, uint16_t index,
               uint16_t length, uint8_t *data, uint32_t *actual)
{
    struct usb_setup s = {type, req, value, index, length};
    uint32_t dummy;
    return usb_model_control(m, &s, data, actual ? actual : &dummy);
}

static uint32_t get_descriptor(struct usb_model *m, uint8_t type, uint8_t index, uint8_t *buf,
                               uint16_t len)
{
    uint32_t actual = 0;
    assert_int_equal(ctl(m, USB_DIR_IN, USB_REQ_GET_DESCRIPTOR, (uint16_t)(type << 8 | index), 0,
                         len, buf, &actual),
                     ODK_OK);
    return actual;
}

static void set_configuration(struct usb_model *m, uint8_t value)
{
    assert_int_equal(ctl(m, 0, USB_REQ_SET_CONFIGURATION, value, 0, 0, NULL, NULL), ODK_OK);
}

static struct usb_xfer *xfer(uint8_t ep, uint8_t *data, uint32_t len)
{
    struct usb_xfer *x = calloc(1, sizeof *x);
    assert_non_null(x);
    x->endpoint = ep;
    x->data = data;
    x->length = len;
    return x;
}

/* Enumerates m as a host would: device descriptor, the configuration's
 * first 9 bytes then all of it, and checks both. */
static void enumerate(struct usb_model *m, uint8_t *config, uint32_t *config_len)
{
    uint8_t dev[18];
    assert_int_equal(get_descriptor(m, ODK_USB_DT_DEVICE, 0, dev, sizeof dev), 18);
    char why[256];
    assert_int_equal(odk_usb_device_check(dev, 18, usb_model_speed(m), why, sizeof why), ODK_OK);
    assert_int_equal(get_descriptor(m, ODK_USB_DT_CONFIG, 0, config, 9), 9);
    uint16_t total = odk_usb_le16(((odk_usb_config_descriptor *)config)->wTotalLength);
    *config_len = get_descriptor(m, ODK_USB_DT_CONFIG, 0, config, total);
    assert_int_equal(*config_len, total);
    if (odk_usb_config_check(config, *config_len, usb_model_speed(m), why, sizeof why) != ODK_OK)
        fail_msg("%s", why);
}

/* ---- every model enumerates ---------------------------------------------- */

static void every_good_model_enumerates(void **state)
{
    (void)state;
    for (size_t i = 0; usb_models[i]; i++) {
        if (strcmp(usb_models[i]->name, "broken") == 0)
            continue;
        struct host h;
        struct usb_model *m = plug(usb_models[i]->name, NULL, &h);
        uint8_t config[512];
        uint32_t len;
        enumerate(m, config, &len);
        /* strings: the language table, then the product */
        uint8_t s[255];
        char text[128];
        assert_int_equal(get_descriptor(m, ODK_USB_DT_STRING, 0, s, sizeof s), 4);
        uint32_t n = get_descriptor(m, ODK_USB_DT_STRING,
                                    usb_model_device(m)->iProduct, s, sizeof s);
        assert_true(odk_usb_string_to_utf8(s, n, text, sizeof text) > 0);
        set_configuration(m, ((odk_usb_config_descriptor *)config)->bConfigurationValue);
        usb_model_destroy(m);
    }
}

/* ---- cdc-ecm ---------------------------------------------------------------- */

static void cdc_ecm_cable_joins_two_adapters(void **state)
{
    (void)state;
    char json[128];
    snprintf(json, sizeof json, "{\"cable\": \"unit-%d\", \"mac\": \"026f64000001\"}",
             (int)getpid());
    struct host ha, hb;
    struct usb_model *a = plug("cdc-ecm", json, &ha), *b = plug("cdc-ecm", json, &hb);
    /* a third end does not fit */
    odk_value *args = NULL;
    char err[256];
    assert_int_equal(odk_value_from_json(json, &args, err, sizeof err), ODK_OK);
    struct usb_model *c = NULL;
    assert_int_equal(usb_model_create(usb_model_find("cdc-ecm"), args, on_done, NULL, &c, err,
                                      sizeof err),
                     ODK_E_BUSY);
    assert_non_null(strstr(err, "both ends"));
    odk_value_free(args);

    /* iMACAddress (string 4 of the Ethernet functional descriptor) */
    uint8_t config[512], sd[255];
    uint32_t len;
    enumerate(a, config, &len);
    const uint8_t *eth = NULL;
    for (uint32_t i = 0; i + 2 < len; i += config[i])
        if (config[i + 1] == ODK_USB_DT_CS_INTERFACE && config[i + 2] == 0x0f)
            eth = config + i;
    assert_non_null(eth);
    char text[32];
    uint32_t n = get_descriptor(a, ODK_USB_DT_STRING, eth[3], sd, sizeof sd);
    assert_true(odk_usb_string_to_utf8(sd, n, text, sizeof text) > 0);
    assert_string_equal(text, "026f64000001");

    struct usb_model *ms[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        set_configuration(ms[i], 1);
        /* no endpoints until the data interface's setting 1 */
        uint8_t frame[64];
        struct usb_xfer *x = xfer(0x02, frame, sizeof frame);
        assert_int_equal(usb_model_submit(ms[i], x), ODK_E_NOT_FOUND);
        free(x);
        assert_int_equal(ctl(ms[i], 0, USB_REQ_SET_INTERFACE, 1, 1, 0, NULL, NULL), ODK_OK);
    }
    assert_int_equal(ctl(a, 0x21, 0x43, 0x0e, 0, 0, NULL, NULL), ODK_OK);
    odk_value *r = usb_model_report(a);
    assert_int_equal(odk_dict_get_int(r, "packet_filter", -1), 0x0e);
    odk_value_free(r);

    /* the link: connected, then the speed */
    uint8_t note[16];
    struct usb_xfer *nx = xfer(0x83, note, sizeof note);
    assert_int_equal(usb_model_submit(a, nx), ODK_OK);
    assert_int_equal(ha.n_done, 1);
    assert_int_equal(nx->actual, 8);
    assert_int_equal(note[0], 0xa1);
    assert_int_equal(note[1], 0x00);
    assert_int_equal(note[2], 1);
    nx->actual = 0;
    assert_int_equal(usb_model_submit(a, nx), ODK_OK);
    assert_int_equal(ha.n_done, 2);
    assert_int_equal(nx->actual, 16);
    assert_int_equal(note[1], 0x2a);

    /* a frame from a's bulk OUT comes out of b's bulk IN */
    uint8_t out[60], in[2048];
    for (size_t i = 0; i < sizeof out; i++)
        out[i] = (uint8_t)i;
    struct usb_xfer *ix = xfer(0x81, in, sizeof in);
    assert_int_equal(usb_model_submit(b, ix), ODK_OK);
    assert_int_equal(hb.n_done, 0); /* NAK: nothing on the wire */
    struct usb_xfer *ox = xfer(0x02, out, sizeof out);
    assert_int_equal(usb_model_submit(a, ox), ODK_OK);
    assert_int_equal(ha.n_done, 3);
    short events = 0;
    assert_true(usb_model_watched(b, &events) >= 0);
    assert_true(events != 0);
    usb_model_wire_ready(b);
    assert_int_equal(hb.n_done, 1);
    assert_int_equal(ix->actual, sizeof out);
    assert_memory_equal(in, out, sizeof out);

    /* b's plug pulled: a frame to it is lost, and b's host hears "down" */
    assert_int_equal(usb_model_input(b, (const uint8_t *)"down", 4), ODK_OK);
    struct usb_xfer *bn = xfer(0x83, note, sizeof note);
    assert_int_equal(usb_model_submit(b, bn), ODK_OK);
    assert_int_equal(hb.n_done, 2);
    assert_int_equal(note[1], 0x00);
    assert_int_equal(note[2], 0);
    assert_int_equal(usb_model_input(b, (const uint8_t *)"sideways", 8), ODK_E_INVALID);

    free(nx), free(ix), free(ox), free(bn);
    usb_model_destroy(a);
    usb_model_destroy(b);
}

static void strings_are_utf16_and_unknown_ones_stall(void **state)
{
    (void)state;
    struct host h;
    struct usb_model *m = plug("cdc-acm", "{\"serial\": \"Zürich-7\"}", &h);
    uint8_t s[255];
    char text[64];
    uint32_t n = get_descriptor(m, ODK_USB_DT_STRING, 3, s, sizeof s);
    assert_int_equal(odk_usb_string_to_utf8(s, n, text, sizeof text), 9);
    assert_string_equal(text, "Zürich-7");
    assert_int_equal(ctl(m, USB_DIR_IN, USB_REQ_GET_DESCRIPTOR, ODK_USB_DT_STRING << 8 | 9, 0x409,
                         255, s, NULL),
                     ODK_E_STALL);
    assert_int_equal(ctl(m, USB_DIR_IN, USB_REQ_GET_DESCRIPTOR, ODK_USB_DT_BOS << 8, 0, 5, s, NULL),
                     ODK_E_STALL);
    usb_model_destroy(m);
}

static void broken_models_fail_the_checks_with_reasons(void **state)
{
    (void)state;
    const char *faults[][2] = {
        {"total-length", "wTotalLength 4096 is past the 32 bytes read"},
        {"zero-length", "bLength 0"},
        {"endpoints", "declares 3 endpoints but has 2"},
        {"interfaces", "bNumInterfaces is 2 but the configuration has 1 interface"},
        {"device", "bMaxPacketSize0 is 12"},
    };
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++) {
        char json[64], why[256];
        snprintf(json, sizeof json, "{\"fault\": \"%s\"}", faults[i][0]);
        struct host h;
        struct usb_model *m = plug("broken", json, &h);
        uint8_t dev[18], config[4096];
        get_descriptor(m, ODK_USB_DT_DEVICE, 0, dev, sizeof dev);
        int st = odk_usb_device_check(dev, 18, usb_model_speed(m), why, sizeof why);
        if (st == ODK_OK) {
            uint32_t n = get_descriptor(m, ODK_USB_DT_CONFIG, 0, config, sizeof config);
            st = odk_usb_config_check(config, n, usb_model_speed(m), why, sizeof why);
        }
        assert_int_equal(st, ODK_E_PROTOCOL);
        if (!strstr(why, faults[i][1]))
            fail_msg("%s: \"%s\" lacks \"%s\"", faults[i][0], why, faults[i][1]);
        /* A configuration that fails the check never becomes active. */
        assert_int_equal(ctl(m, 0, USB_REQ_SET_CONFIGURATION, 1, 0, 0, NULL, NULL),
                         faults[i][0][0] == 'd' ? ODK_OK : ODK_E_STALL);
        usb_model_destroy(m);
    }
    struct host h;
    struct usb_model *m = NULL;
    char err[256];
    odk_value *args = NULL;
    assert_int_equal(odk_value_from_json("{\"fault\": \"nope\"}", &args, err, sizeof err), ODK_OK);
    assert_int_equal(usb_model_create(usb_model_find("broken"), args, on_done, &h, &m, err,
                                      sizeof err),
                     ODK_E_INVALID);
    assert_non_null(strstr(err, "unknown fault \"nope\""));
    odk_value_free(args);
}

/* ---- CDC-ACM ------------------------------------------------------------- */

static void cdc_acm_line_coding_lines_and_loopback(void **state)
{
    (void)state;
    struct host h;
    struct usb_model *m = plug("cdc-acm", NULL, &h);
    set_configuration(m, 1);

    /* 57600 8N1 */
    uint8_t coding[7] = {0x00, 0xe1, 0x00, 0x00, 0, 0, 8};
    assert_int_equal(ctl(m, 0x21, 0x20, 0, 0, 7, coding, NULL), ODK_OK);
    uint8_t back[7];
    uint32_t n;
    assert_int_equal(ctl(m, 0xa1, 0x21, 0, 0, 7, back, &n), ODK_OK);
    assert_int_equal(n, 7);
    assert_memory_equal(back, coding, 7);
    odk_value *r = usb_model_report(m);
    assert_int_equal(odk_dict_get_int(r, "baud", 0), 57600);
    assert_string_equal(odk_dict_get_string(r, "parity", ""), "none");
    odk_value_free(r);
    /* to the wrong interface, or with the wrong length: stall */
    assert_int_equal(ctl(m, 0x21, 0x20, 0, 1, 7, coding, NULL), ODK_E_STALL);
    assert_int_equal(ctl(m, 0x21, 0x20, 0, 0, 6, coding, NULL), ODK_E_STALL);

    /* The first notification after configuration says the lines are down;
     * DTR up then brings DSR and DCD. */
    uint8_t note[16];
    struct usb_xfer *nx = xfer(0x83, note, sizeof note);
    assert_int_equal(usb_model_submit(m, nx), ODK_OK);
    assert_int_equal(h.n_done, 1);
    assert_int_equal(note[8], 0);
    assert_true(usb_model_report_changed(m));
    assert_int_equal(ctl(m, 0x21, 0x22, 3, 0, 0, NULL, NULL), ODK_OK); /* DTR and RTS */
    nx->actual = 0;
    assert_int_equal(usb_model_submit(m, nx), ODK_OK);
    assert_int_equal(h.n_done, 2);
    assert_int_equal(nx->actual, 10);
    assert_int_equal(note[0], 0xa1);
    assert_int_equal(note[1], 0x20);
    assert_int_equal(note[8], 3);
    r = usb_model_report(m);
    assert_true(odk_dict_get_bool(r, "dtr", false));
    assert_true(odk_dict_get_bool(r, "rts", false));
    odk_value_free(r);
    free(nx);

    /* Loopback: OUT then IN, bytes intact. */
    uint8_t out[1000], in[2048];
    for (size_t i = 0; i < sizeof out; i++)
        out[i] = (uint8_t)(i * 7);
    struct usb_xfer *o = xfer(0x02, out, sizeof out), *i = xfer(0x81, in, sizeof in);
    h.n_done = 0;
    assert_int_equal(usb_model_submit(m, o), ODK_OK);
    assert_int_equal(usb_model_submit(m, i), ODK_OK);
    assert_int_equal(h.n_done, 2);
    assert_int_equal(i->actual, sizeof out);
    assert_memory_equal(in, out, sizeof out);
    free(o);
    free(i);
    usb_model_destroy(m);
}

/* A full FIFO holds OUT transfers (NAK) until the host reads. */
static void cdc_acm_naks_when_full(void **state)
{
    (void)state;
    struct host h;
    struct usb_model *m = plug("cdc-acm", NULL, &h);
    set_configuration(m, 1);
    static uint8_t big[100 * 1024], in[100 * 1024];
    memset(big, 0x5a, sizeof big);
    struct usb_xfer *o = xfer(0x02, big, sizeof big);
    assert_int_equal(usb_model_submit(m, o), ODK_OK);
    assert_int_equal(h.n_done, 0); /* held: 64 KiB taken, the rest waits */
    struct usb_xfer *i = xfer(0x81, in, sizeof in);
    assert_int_equal(usb_model_submit(m, i), ODK_OK);
    /* the read made room, the OUT finished, its rest waits for a read */
    assert_int_equal(h.n_done, 2);
    assert_int_equal(o->status, ODK_OK);
    assert_int_equal(o->actual, sizeof big);
    size_t got = i->actual;
    i->actual = 0;
    assert_int_equal(usb_model_submit(m, i), ODK_OK);
    assert_int_equal(got + i->actual, sizeof big);
    free(o);
    free(i);
    usb_model_destroy(m);
}

/* ---- FTDI ---------------------------------------------------------------- */

static void ftdi_requests_and_status_bytes(void **state)
{
    (void)state;
    struct host h;
    struct usb_model *m = plug("ftdi", NULL, &h);
    set_configuration(m, 1);
    /* 9600: divisor 312.5 -> 0x4138; 115200: 26 -> 0x001a; 3 Mbaud: 0 */
    const uint16_t values[] = {0x4138, 0x001a, 0x0000, 0xc00d};
    const uint16_t indexes[] = {0, 0, 0, 1};
    const int64_t bauds[] = {9600, 115385, 3000000, 216216};
    for (int k = 0; k < 4; k++) {
        assert_int_equal(ctl(m, 0x40, 0x03, values[k], indexes[k], 0, NULL, NULL), ODK_OK);
        odk_value *r = usb_model_report(m);
        assert_int_equal(odk_dict_get_int(r, "baud", 0), bauds[k]);
        odk_value_free(r);
    }
    /* 7 data bits, even parity, 2 stop bits */
    assert_int_equal(ctl(m, 0x40, 0x04, 7 | 2 << 8 | 2 << 11, 0, 0, NULL, NULL), ODK_OK);
    odk_value *r = usb_model_report(m);
    assert_int_equal(odk_dict_get_int(r, "data_bits", 0), 7);
    assert_string_equal(odk_dict_get_string(r, "parity", ""), "even");
    assert_string_equal(odk_dict_get_string(r, "stop_bits", ""), "2");
    odk_value_free(r);
    assert_int_equal(ctl(m, 0x40, 0x04, 9, 0, 0, NULL, NULL), ODK_E_STALL);

    /* The first IN transfer reports the modem status at once. */
    uint8_t in[512];
    struct usb_xfer *i = xfer(0x81, in, sizeof in);
    assert_int_equal(usb_model_submit(m, i), ODK_OK);
    assert_int_equal(h.n_done, 1);
    assert_int_equal(i->actual, 2);
    assert_int_equal(in[0], 0x01); /* no CTS, DSR, DCD */
    /* DTR and RTS up: the next one says CTS, DSR and DCD. */
    i->actual = 0;
    assert_int_equal(usb_model_submit(m, i), ODK_OK);
    assert_int_equal(h.n_done, 1); /* nothing new: it waits */
    assert_int_equal(ctl(m, 0x40, 0x01, 0x0303, 0, 0, NULL, NULL), ODK_OK);
    assert_int_equal(h.n_done, 2);
    assert_int_equal(in[0], 0x01 | 0x10 | 0x20 | 0x80);
    uint8_t ms[2];
    uint32_t n;
    assert_int_equal(ctl(m, 0xc0, 0x05, 0, 0, 2, ms, &n), ODK_OK);
    assert_int_equal(n, 2);
    assert_int_equal(ms[0], 0xb1);

    /* 200 data bytes come back as 64-byte packets of 2 status + 62 data. */
    uint8_t out[200];
    for (size_t k = 0; k < sizeof out; k++)
        out[k] = (uint8_t)k;
    struct usb_xfer *o = xfer(0x02, out, sizeof out);
    assert_int_equal(usb_model_submit(m, o), ODK_OK);
    i->actual = 0;
    assert_int_equal(usb_model_submit(m, i), ODK_OK);
    assert_int_equal(i->actual, 200 + 2 * 4); /* 62 + 62 + 62 + 14 */
    uint8_t data[200];
    size_t got = 0;
    for (uint32_t p = 0; p < i->actual; p += 64) {
        assert_int_equal(in[p], 0xb1);
        uint32_t len = i->actual - p < 64 ? i->actual - p : 64;
        memcpy(data + got, in + p + 2, len - 2);
        got += len - 2;
    }
    assert_int_equal(got, 200);
    assert_memory_equal(data, out, 200);
    free(o);
    free(i);
    usb_model_destroy(m);
}

/* ---- vendor echo, halts and faults --------------------------------------- */

static void vendor_echo_bulk_interrupt_and_iso(void **state)
{
    (void)state;
    struct host h;
    struct usb_model *m = plug("vendor-echo", NULL, &h);
    uint8_t buf[4];
    struct usb_xfer *early = xfer(0x81, buf, 4);
    assert_int_equal(usb_model_submit(m, early), ODK_E_STATE);
    set_configuration(m, 1);
    assert_int_equal(usb_model_submit(m, early), ODK_OK);

    /* Straight across into the waiting IN transfer: one 1-byte echo. */
    uint8_t one = 0x42;
    struct usb_xfer *o = xfer(0x01, &one, 1);
    assert_int_equal(usb_model_submit(m, o), ODK_OK);
    assert_int_equal(h.n_done, 2);
    assert_int_equal(early->actual, 1);
    assert_int_equal(buf[0], 0x42);

    /* Held: OUT first, then IN; a zero-length OUT comes back as one. */
    static uint8_t a[512 * 4], b[512 * 8];
    memset(a, 0xa5, sizeof a);
    o->data = a, o->length = sizeof a;
    assert_int_equal(usb_model_submit(m, o), ODK_OK);
    struct usb_xfer *zlp = xfer(0x01, a, 0);
    assert_int_equal(usb_model_submit(m, zlp), ODK_OK);
    struct usb_xfer *i = xfer(0x81, b, sizeof b);
    assert_int_equal(usb_model_submit(m, i), ODK_OK);
    assert_int_equal(i->actual, sizeof a);
    assert_memory_equal(b, a, sizeof a);
    i->actual = 1234;
    assert_int_equal(usb_model_submit(m, i), ODK_OK);
    assert_int_equal(i->status, ODK_OK);
    assert_int_equal(i->actual, 0);

    /* One interrupt record per echo: sequence 0 (1 byte), 1, 2 (0 bytes). */
    uint8_t rec[8];
    struct usb_xfer *ev = xfer(0x82, rec, sizeof rec);
    uint32_t lens[3] = {1, sizeof a, 0};
    for (uint32_t k = 0; k < 3; k++) {
        assert_int_equal(usb_model_submit(m, ev), ODK_OK);
        assert_int_equal(ev->actual, 8);
        assert_int_equal(rec[0], k);
        assert_int_equal(rec[4] | rec[5] << 8, lens[k]);
    }
    int before = h.n_done;
    assert_int_equal(usb_model_submit(m, ev), ODK_OK);
    assert_int_equal(h.n_done, before); /* waits for the next record */
    assert_int_equal(ctl(m, 0x40, 0x02, 77, 0, 0, NULL, NULL), ODK_OK);
    assert_int_equal(h.n_done, before + 1);
    assert_int_equal(rec[4], 77);

    /* counters: 3 OUT transfers of 1 + 2048 + 0 bytes */
    uint8_t c[16];
    uint32_t n;
    assert_int_equal(ctl(m, 0xc0, 0x01, 0, 0, 16, c, &n), ODK_OK);
    assert_int_equal(c[0], 3);
    assert_int_equal(c[4] | c[5] << 8, 1 + sizeof a);

    /* Isochronous endpoints exist only in alternate setting 1. */
    uint8_t iso[192];
    struct usb_xfer *ix = xfer(0x83, iso, sizeof iso);
    assert_int_equal(usb_model_submit(m, ix), ODK_E_NOT_FOUND);
    assert_int_equal(ctl(m, 0x01, USB_REQ_SET_INTERFACE, 1, 1, 0, NULL, NULL), ODK_OK);
    assert_int_equal(usb_model_alt(m, 1), 1);
    assert_int_equal(usb_model_submit(m, ix), ODK_OK);
    assert_int_equal(ix->actual, 192);
    assert_int_equal(iso[1], (uint8_t)(iso[0] + 1));
    assert_int_equal(ctl(m, 0x01, USB_REQ_SET_INTERFACE, 2, 1, 0, NULL, NULL), ODK_E_STALL);
    uint8_t alt;
    assert_int_equal(ctl(m, 0x81, USB_REQ_GET_INTERFACE, 0, 1, 1, &alt, &n), ODK_OK);
    assert_int_equal(alt, 1);

    free(early), free(o), free(zlp), free(i), free(ev), free(ix);
    usb_model_destroy(m);
}

static void halt_short_babble_abort_disconnect(void **state)
{
    (void)state;
    struct host h;
    struct usb_model *m = plug("vendor-echo", NULL, &h);
    set_configuration(m, 1);
    uint8_t buf[64], st[2];
    uint32_t n;
    int owner_a, owner_b;

    /* A stall ends what is pending and refuses what comes until cleared. */
    struct usb_xfer *i = xfer(0x81, buf, sizeof buf);
    assert_int_equal(usb_model_submit(m, i), ODK_OK);
    usb_model_inject(m, USB_FAULT_STALL, 0x81);
    assert_int_equal(h.n_done, 1);
    assert_int_equal(i->status, ODK_E_STALL);
    assert_int_equal(usb_model_submit(m, i), ODK_OK);
    assert_int_equal(i->status, ODK_E_STALL);
    assert_int_equal(ctl(m, 0x82, USB_REQ_GET_STATUS, 0, 0x81, 2, st, &n), ODK_OK);
    assert_int_equal(st[0], 1);
    assert_int_equal(ctl(m, 0x02, USB_REQ_CLEAR_FEATURE, 0, 0x81, 0, NULL, NULL), ODK_OK);
    assert_int_equal(ctl(m, 0x82, USB_REQ_GET_STATUS, 0, 0x81, 2, st, &n), ODK_OK);
    assert_int_equal(st[0], 0);
    assert_int_equal(ctl(m, 0x02, USB_REQ_CLEAR_FEATURE, 0, 0x85, 0, NULL, NULL), ODK_E_STALL);

    /* A short packet, then babble, on the next IN completions. */
    uint8_t out[40] = {1, 2, 3};
    struct usb_xfer *o = xfer(0x01, out, sizeof out);
    h.n_done = 0;
    usb_model_inject(m, USB_FAULT_SHORT, 0x81);
    assert_int_equal(usb_model_submit(m, i), ODK_OK);
    assert_int_equal(usb_model_submit(m, o), ODK_OK);
    assert_int_equal(i->status, ODK_OK);
    assert_int_equal(i->actual, 20);
    usb_model_inject(m, USB_FAULT_BABBLE, 0x81);
    assert_int_equal(usb_model_submit(m, o), ODK_OK);
    assert_int_equal(usb_model_submit(m, i), ODK_OK);
    assert_int_equal(i->status, ODK_E_OVERRUN);

    /* Abort takes only the owner's transfers. */
    struct usb_xfer *ia = xfer(0x81, buf, 8), *ib = xfer(0x81, buf, 8);
    ia->owner = &owner_a, ib->owner = &owner_b;
    h.n_done = 0;
    assert_int_equal(usb_model_submit(m, ia), ODK_OK);
    assert_int_equal(usb_model_submit(m, ib), ODK_OK);
    usb_model_abort(m, 0xff, &owner_a, 0);
    assert_int_equal(h.n_done, 1);
    assert_ptr_equal(h.done[0], ia);
    assert_int_equal(ia->status, ODK_E_CANCELLED);

    /* Unplugged: the pending transfer ends with GONE, and so does the rest. */
    usb_model_inject(m, USB_FAULT_DISCONNECT, 0);
    assert_int_equal(h.n_done, 2);
    assert_int_equal(ib->status, ODK_E_GONE);
    assert_true(usb_model_disconnected(m));
    assert_int_equal(usb_model_submit(m, ia), ODK_E_GONE);
    assert_int_equal(ctl(m, USB_DIR_IN, USB_REQ_GET_DESCRIPTOR, ODK_USB_DT_DEVICE << 8, 0, 18, buf,
                         NULL),
                     ODK_E_GONE);
    free(i), free(o), free(ia), free(ib);
    usb_model_destroy(m);
}

/* SET_CONFIGURATION cancels what was pending, and transfers to endpoints
 * the configuration does not have are refused. */
static void configuration_changes_cancel(void **state)
{
    (void)state;
    struct host h;
    struct usb_model *m = plug("cdc-acm", NULL, &h);
    set_configuration(m, 1);
    uint8_t buf[64];
    struct usb_xfer *i = xfer(0x81, buf, sizeof buf);
    assert_int_equal(usb_model_submit(m, i), ODK_OK);
    set_configuration(m, 0);
    assert_int_equal(h.n_done, 1);
    assert_int_equal(i->status, ODK_E_CANCELLED);
    assert_int_equal(usb_model_configuration(m), 0);
    assert_int_equal(ctl(m, 0, USB_REQ_SET_CONFIGURATION, 7, 0, 0, NULL, NULL), ODK_E_STALL);
    set_configuration(m, 1);
    i->endpoint = 0x85;
    assert_int_equal(usb_model_submit(m, i), ODK_E_NOT_FOUND);
    i->endpoint = 0x00;
    assert_int_equal(usb_model_submit(m, i), ODK_E_NOT_FOUND);
    uint8_t cfg;
    uint32_t n;
    assert_int_equal(ctl(m, 0x80, USB_REQ_GET_CONFIGURATION, 0, 0, 1, &cfg, &n), ODK_OK);
    assert_int_equal(cfg, 1);
    free(i);
    /* Destroying with a transfer pending ends it with GONE. */
    struct usb_xfer *p = xfer(0x81, buf, sizeof buf);
    assert_int_equal(usb_model_submit(m, p), ODK_OK);
    h.n_done = 0;
    usb_model_destroy(m);
    assert_int_equal(h.n_done, 1);
    assert_int_equal(p->status, ODK_E_GONE);
    free(p);
}

/* ---- HID ----------------------------------------------------------------- */

static void hid_keyboard_reports_leds_and_input(void **state)
{
    (void)state;
    struct host h;
    struct usb_model *m = plug("hid-keyboard", NULL, &h);
    set_configuration(m, 1);
    /* The report descriptor, through the interface's GET_DESCRIPTOR. */
    uint8_t rd[128], hd[9];
    uint32_t n;
    assert_int_equal(ctl(m, 0x81, USB_REQ_GET_DESCRIPTOR, ODK_USB_DT_HID_REPORT << 8, 0,
                         sizeof rd, rd, &n),
                     ODK_OK);
    assert_int_equal(n, 63);
    assert_int_equal(rd[0], 0x05); /* Usage Page (Generic Desktop) */
    assert_int_equal(ctl(m, 0x81, USB_REQ_GET_DESCRIPTOR, ODK_USB_DT_HID << 8, 0, 9, hd, &n),
                     ODK_OK);
    assert_int_equal(hd[7] | hd[8] << 8, 63);
    /* LEDs from the host: SET_REPORT (output). */
    uint8_t leds = 0x02; /* Caps Lock */
    assert_int_equal(ctl(m, 0x21, 0x09, 0x0200, 0, 1, &leds, NULL), ODK_OK);
    odk_value *r = usb_model_report(m);
    assert_int_equal(odk_dict_get_int(r, "leds", -1), 2);
    odk_value_free(r);
    assert_int_equal(ctl(m, 0x21, 0x0b, 0, 0, 0, NULL, NULL), ODK_OK); /* boot protocol */
    uint8_t proto = 9;
    assert_int_equal(ctl(m, 0xa1, 0x03, 0, 0, 1, &proto, &n), ODK_OK);
    assert_int_equal(proto, 0);
    /* Input: queued, one report per interrupt transfer, in order. */
    const uint8_t a[8] = {0, 0, 0x04}, b[8] = {0x02, 0, 0x05}, c[8] = {0};
    assert_int_equal(usb_model_input(m, a, 8), ODK_OK);
    assert_int_equal(usb_model_input(m, b, 8), ODK_OK);
    assert_int_equal(usb_model_input(m, a, 3), ODK_E_INVALID);
    uint8_t got[8];
    struct usb_xfer *x = xfer(0x81, got, sizeof got);
    assert_int_equal(usb_model_submit(m, x), ODK_OK);
    assert_int_equal(h.n_done, 1);
    assert_memory_equal(got, a, 8);
    assert_int_equal(usb_model_submit(m, x), ODK_OK);
    assert_memory_equal(got, b, 8);
    assert_int_equal(usb_model_submit(m, x), ODK_OK);
    assert_int_equal(h.n_done, 2); /* nothing queued: it waits */
    assert_int_equal(usb_model_input(m, c, 8), ODK_OK);
    assert_int_equal(h.n_done, 3);
    assert_memory_equal(got, c, 8);
    /* GET_REPORT answers the last state sent. */
    uint8_t now[8];
    assert_int_equal(ctl(m, 0xa1, 0x01, 0x0100, 0, 8, now, &n), ODK_OK);
    assert_memory_equal(now, c, 8);
    free(x);
    usb_model_destroy(m);

    /* A mouse has no LEDs, and its reports are 4 bytes. */
    m = plug("hid-mouse", NULL, &h);
    set_configuration(m, 1);
    assert_int_equal(ctl(m, 0x21, 0x09, 0x0200, 0, 1, &leds, NULL), ODK_E_STALL);
    assert_int_equal(usb_model_input(m, a, 8), ODK_E_INVALID);
    assert_int_equal(usb_model_input(m, a, 4), ODK_OK);
    usb_model_destroy(m);
    /* A model without input refuses it. */
    m = plug("cdc-acm", NULL, &h);
    assert_int_equal(usb_model_input(m, a, 4), ODK_E_UNSUPPORTED);
    usb_model_destroy(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_good_model_enumerates),
        cmocka_unit_test(strings_are_utf16_and_unknown_ones_stall),
        cmocka_unit_test(broken_models_fail_the_checks_with_reasons),
        cmocka_unit_test(cdc_acm_line_coding_lines_and_loopback),
        cmocka_unit_test(cdc_acm_naks_when_full),
        cmocka_unit_test(cdc_ecm_cable_joins_two_adapters),
        cmocka_unit_test(ftdi_requests_and_status_bytes),
        cmocka_unit_test(vendor_echo_bulk_interrupt_and_iso),
        cmocka_unit_test(halt_short_babble_abort_disconnect),
        cmocka_unit_test(configuration_changes_cancel),
        cmocka_unit_test(hid_keyboard_reports_leds_and_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
