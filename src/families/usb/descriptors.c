/* SPDX-License-Identifier: MIT */
/* descriptors.c — checking and walking USB descriptors (odk/usb_descriptors.h).
 *
 * The checks follow USB 2.0 chapter 9 (9.6.1 device, 9.6.3 configuration,
 * 9.6.5 interface, 9.6.6 endpoint, 9.6.7 string) and USB 3.2 9.6.2 (BOS).
 * Where real devices bend a rule without harm (a high-speed bulk endpoint
 * of less than 512 bytes, an odd string length) the check lets it pass;
 * where a device's claim would make the family read past what it sent, or
 * publish interfaces that are not there, it refuses and says where. */
#include "odk/usb_descriptors.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "odk/status.h"

static int fault(char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fault(char *why, size_t why_len, const char *fmt, ...)
{
    if (why && why_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, why_len, fmt, ap);
        va_end(ap);
    }
    return ODK_E_PROTOCOL;
}

static const char *speed_name(odk_usb_speed speed)
{
    switch (speed) {
    case ODK_USB_SPEED_LOW:
        return "low-speed";
    case ODK_USB_SPEED_FULL:
        return "full-speed";
    case ODK_USB_SPEED_HIGH:
        return "high-speed";
    case ODK_USB_SPEED_SUPER:
        return "SuperSpeed";
    case ODK_USB_SPEED_SUPER_PLUS:
        return "SuperSpeedPlus";
    default:
        return "unknown-speed";
    }
}

static const char *type_name(odk_usb_transfer_type t)
{
    static const char *const names[] = {"control", "isochronous", "bulk", "interrupt"};
    return names[t & 3];
}

static bool power_of_two_between(unsigned v, unsigned lo, unsigned hi)
{
    return v >= lo && v <= hi && (v & (v - 1)) == 0;
}

/* ---- device descriptor --------------------------------------------------- */

int odk_usb_device_check(const void *desc, size_t len, odk_usb_speed speed, char *why,
                         size_t why_len)
{
    if (!desc)
        return ODK_E_INVALID;
    const odk_usb_device_descriptor *d = desc;
    if (len < sizeof *d)
        return fault(why, why_len, "device descriptor: %zu bytes read; it has %zu", len,
                     sizeof *d);
    if (d->bLength < sizeof *d)
        return fault(why, why_len, "device descriptor: bLength is %u; it must be %zu", d->bLength,
                     sizeof *d);
    if (d->bDescriptorType != ODK_USB_DT_DEVICE)
        return fault(why, why_len, "device descriptor: bDescriptorType is 0x%02x; it must be 0x01",
                     d->bDescriptorType);
    unsigned mps0 = d->bMaxPacketSize0;
    bool ok;
    const char *allowed;
    switch (speed) {
    case ODK_USB_SPEED_LOW:
        ok = mps0 == 8, allowed = "8";
        break;
    case ODK_USB_SPEED_FULL:
        ok = power_of_two_between(mps0, 8, 64), allowed = "8, 16, 32 or 64";
        break;
    case ODK_USB_SPEED_HIGH:
        ok = mps0 == 64, allowed = "64";
        break;
    case ODK_USB_SPEED_SUPER:
    case ODK_USB_SPEED_SUPER_PLUS:
        ok = mps0 == 9, allowed = "9 (512 bytes)";
        break;
    default:
        ok = power_of_two_between(mps0, 8, 64) || mps0 == 9, allowed = "8, 16, 32, 64 or 9";
        break;
    }
    if (!ok)
        return fault(why, why_len, "device descriptor: bMaxPacketSize0 is %u; a %s device needs %s",
                     mps0, speed_name(speed), allowed);
    if (d->bNumConfigurations == 0)
        return fault(why, why_len, "device descriptor: bNumConfigurations is 0");
    return ODK_OK;
}

/* ---- configuration ------------------------------------------------------- */

/* What the walk knows about the interface (alternate setting) it is in. */
struct alt_state {
    int number, alt; /* -1 before the first interface */
    unsigned declared, found;
    size_t offset;
    uint8_t addresses[32]; /* endpoint addresses seen, a bit each */
};

static int close_alt(const struct alt_state *a, unsigned config_value, char *why, size_t why_len)
{
    if (a->number < 0 || a->found == a->declared)
        return ODK_OK;
    return fault(why, why_len,
                 "configuration %u: interface %d alternate setting %d (offset %zu) declares %u "
                 "endpoint%s but has %u",
                 config_value, a->number, a->alt, a->offset, a->declared,
                 a->declared == 1 ? "" : "s", a->found);
}

/* wMaxPacketSize and bInterval of one endpoint against what its speed
 * allows (USB 2.0 5.5-5.8 and 9.6.6, USB 3.2 9.6.6). */
static int check_endpoint_speed(const odk_usb_endpoint_descriptor *e, odk_usb_speed speed,
                                unsigned config_value, size_t off, char *why, size_t why_len)
{
    odk_usb_transfer_type t = odk_usb_endpoint_type(e);
    uint16_t w = odk_usb_le16(e->wMaxPacketSize);
    unsigned mps = w & 0x7ff, extra = (w >> 11) & 3;
    unsigned max = 0;
    const char *rule = NULL;

    if ((t == ODK_USB_TRANSFER_BULK || t == ODK_USB_TRANSFER_INTERRUPT) && mps == 0)
        rule = "a bulk or interrupt endpoint moves at least one byte per packet";
    else if (speed == ODK_USB_SPEED_LOW &&
             (t == ODK_USB_TRANSFER_BULK || t == ODK_USB_TRANSFER_ISOCHRONOUS))
        rule = "low-speed devices have only control and interrupt endpoints";
    else if (extra && !(speed == ODK_USB_SPEED_HIGH && (t == ODK_USB_TRANSFER_INTERRUPT ||
                                                        t == ODK_USB_TRANSFER_ISOCHRONOUS)))
        rule = "only high-speed interrupt and isochronous endpoints have additional transactions";
    else if (extra == 3)
        rule = "additional transactions (bits 12..11) of 3 are reserved";
    if (rule)
        return fault(why, why_len,
                     "configuration %u: endpoint 0x%02x (offset %zu): wMaxPacketSize 0x%04x: %s",
                     config_value, e->bEndpointAddress, off, w, rule);

    switch (speed) {
    case ODK_USB_SPEED_LOW:
        max = 8;
        break;
    case ODK_USB_SPEED_FULL:
        max = t == ODK_USB_TRANSFER_ISOCHRONOUS ? 1023 : 64;
        if (t == ODK_USB_TRANSFER_BULK && !power_of_two_between(mps, 8, 64))
            return fault(why, why_len,
                         "configuration %u: endpoint 0x%02x (offset %zu): wMaxPacketSize %u; a "
                         "full-speed bulk endpoint needs 8, 16, 32 or 64",
                         config_value, e->bEndpointAddress, off, mps);
        break;
    case ODK_USB_SPEED_HIGH:
        max = t == ODK_USB_TRANSFER_BULK ? 512 : 1024;
        break;
    case ODK_USB_SPEED_SUPER:
    case ODK_USB_SPEED_SUPER_PLUS:
        max = 1024;
        break;
    default:
        return ODK_OK;
    }
    if (mps > max)
        return fault(why, why_len,
                     "configuration %u: endpoint 0x%02x (offset %zu): wMaxPacketSize %u is more "
                     "than a %s %s endpoint allows (%u)",
                     config_value, e->bEndpointAddress, off, mps, speed_name(speed), type_name(t),
                     max);

    unsigned iv = e->bInterval;
    bool frames = speed <= ODK_USB_SPEED_FULL && t == ODK_USB_TRANSFER_INTERRUPT;
    if ((t == ODK_USB_TRANSFER_INTERRUPT && frames && iv == 0) ||
        ((t == ODK_USB_TRANSFER_ISOCHRONOUS || t == ODK_USB_TRANSFER_INTERRUPT) && !frames &&
         (iv < 1 || iv > 16)))
        return fault(why, why_len,
                     "configuration %u: endpoint 0x%02x (offset %zu): bInterval %u; a %s %s "
                     "endpoint needs %s",
                     config_value, e->bEndpointAddress, off, iv, speed_name(speed), type_name(t),
                     frames ? "1 to 255" : "1 to 16");
    return ODK_OK;
}

int odk_usb_config_check(const void *config, size_t len, odk_usb_speed speed, char *why,
                         size_t why_len)
{
    if (!config)
        return ODK_E_INVALID;
    const uint8_t *b = config;
    const odk_usb_config_descriptor *c = config;
    if (len < sizeof *c)
        return fault(why, why_len, "configuration: %zu bytes read; its descriptor has %zu", len,
                     sizeof *c);
    unsigned cv = c->bConfigurationValue;
    if (c->bLength < sizeof *c)
        return fault(why, why_len, "configuration %u: bLength is %u; it must be at least %zu", cv,
                     c->bLength, sizeof *c);
    if (c->bDescriptorType != ODK_USB_DT_CONFIG)
        return fault(why, why_len, "configuration: bDescriptorType is 0x%02x; it must be 0x02",
                     c->bDescriptorType);
    size_t total = odk_usb_le16(c->wTotalLength);
    if (total < c->bLength)
        return fault(why, why_len, "configuration %u: wTotalLength %zu is less than its bLength %u",
                     cv, total, c->bLength);
    if (total > len)
        return fault(why, why_len, "configuration %u: wTotalLength %zu is past the %zu bytes read",
                     cv, total, len);

    /* (number, alternate setting) pairs seen: 256 x 256 bits. */
    uint8_t seen[256][32];
    memset(seen, 0, sizeof seen);
    uint8_t numbers[32] = {0};
    unsigned n_numbers = 0;
    struct alt_state a = {.number = -1, .alt = -1};
    int st;

    for (size_t off = c->bLength; off < total;) {
        if (total - off < 2)
            return fault(why, why_len, "configuration %u: a stray byte at offset %zu", cv, off);
        unsigned bl = b[off], type = b[off + 1];
        if (bl < 2)
            return fault(why, why_len,
                         "configuration %u: descriptor at offset %zu has bLength %u; every "
                         "descriptor has at least 2",
                         cv, off, bl);
        if (bl > total - off)
            return fault(why, why_len,
                         "configuration %u: descriptor at offset %zu (type 0x%02x, bLength %u) "
                         "runs past wTotalLength %zu",
                         cv, off, type, bl, total);
        switch (type) {
        case ODK_USB_DT_INTERFACE: {
            if (bl < sizeof(odk_usb_interface_descriptor))
                return fault(why, why_len,
                             "configuration %u: interface descriptor at offset %zu has bLength "
                             "%u; it must be at least 9",
                             cv, off, bl);
            if ((st = close_alt(&a, cv, why, why_len)) < 0)
                return st;
            const odk_usb_interface_descriptor *in = (const void *)(b + off);
            unsigned num = in->bInterfaceNumber, alt = in->bAlternateSetting;
            if (seen[num][alt / 8] & (1u << (alt % 8)))
                return fault(why, why_len,
                             "configuration %u: interface %u alternate setting %u appears twice "
                             "(again at offset %zu)",
                             cv, num, alt, off);
            seen[num][alt / 8] |= (uint8_t)(1u << (alt % 8));
            if (!(numbers[num / 8] & (1u << (num % 8)))) {
                numbers[num / 8] |= (uint8_t)(1u << (num % 8));
                n_numbers++;
            }
            a = (struct alt_state){.number = (int)num,
                                   .alt = (int)alt,
                                   .declared = in->bNumEndpoints,
                                   .offset = off};
            break;
        }
        case ODK_USB_DT_ENDPOINT: {
            if (bl < sizeof(odk_usb_endpoint_descriptor))
                return fault(why, why_len,
                             "configuration %u: endpoint descriptor at offset %zu has bLength "
                             "%u; it must be at least 7",
                             cv, off, bl);
            const odk_usb_endpoint_descriptor *e = (const void *)(b + off);
            unsigned addr = e->bEndpointAddress;
            if (a.number < 0)
                return fault(why, why_len,
                             "configuration %u: endpoint 0x%02x at offset %zu comes before any "
                             "interface",
                             cv, addr, off);
            if (++a.found > a.declared)
                return fault(why, why_len,
                             "configuration %u: interface %d alternate setting %d declares %u "
                             "endpoint%s but has more (endpoint 0x%02x at offset %zu)",
                             cv, a.number, a.alt, a.declared, a.declared == 1 ? "" : "s", addr,
                             off);
            if ((addr & ODK_USB_ENDPOINT_NUMBER) == 0)
                return fault(why, why_len,
                             "configuration %u: endpoint 0x%02x at offset %zu: endpoint 0 is the "
                             "default control pipe and has no descriptor",
                             cv, addr, off);
            if (addr & 0x70)
                return fault(why, why_len,
                             "configuration %u: endpoint address 0x%02x at offset %zu sets "
                             "reserved bits 6..4",
                             cv, addr, off);
            unsigned bit = (addr & 0x0f) | ((addr & 0x80) >> 3);
            if (a.addresses[bit / 8] & (1u << (bit % 8)))
                return fault(why, why_len,
                             "configuration %u: interface %d alternate setting %d lists endpoint "
                             "0x%02x twice (again at offset %zu)",
                             cv, a.number, a.alt, addr, off);
            a.addresses[bit / 8] |= (uint8_t)(1u << (bit % 8));
            if ((st = check_endpoint_speed(e, speed, cv, off, why, why_len)) < 0)
                return st;
            break;
        }
        case ODK_USB_DT_INTERFACE_ASSOCIATION:
            if (bl < sizeof(odk_usb_interface_association_descriptor))
                return fault(why, why_len,
                             "configuration %u: interface association at offset %zu has bLength "
                             "%u; it must be at least 8",
                             cv, off, bl);
            /* An association starts a new function: the interface before
             * it is complete, and an endpoint needs an interface again. */
            if ((st = close_alt(&a, cv, why, why_len)) < 0)
                return st;
            a = (struct alt_state){.number = -1, .alt = -1};
            break;
        case ODK_USB_DT_SS_ENDPOINT_COMPANION:
            if (bl < sizeof(odk_usb_ss_endpoint_companion_descriptor))
                return fault(why, why_len,
                             "configuration %u: SuperSpeed endpoint companion at offset %zu has "
                             "bLength %u; it must be at least 6",
                             cv, off, bl);
            break;
        case ODK_USB_DT_CONFIG:
        case ODK_USB_DT_DEVICE:
            return fault(why, why_len,
                         "configuration %u: a %s descriptor at offset %zu inside the "
                         "configuration",
                         cv, type == ODK_USB_DT_CONFIG ? "configuration" : "device", off);
        default: /* class- and vendor-specific: the class driver's to read */
            break;
        }
        off += bl;
    }
    if ((st = close_alt(&a, cv, why, why_len)) < 0)
        return st;

    if (n_numbers != c->bNumInterfaces)
        return fault(why, why_len,
                     "configuration %u: bNumInterfaces is %u but the configuration has %u "
                     "interface%s",
                     cv, c->bNumInterfaces, n_numbers, n_numbers == 1 ? "" : "s");
    for (unsigned num = 0; num < 256; num++)
        if ((numbers[num / 8] & (1u << (num % 8))) && !(seen[num][0] & 1))
            return fault(why, why_len, "configuration %u: interface %u has no alternate setting 0",
                         cv, num);
    return ODK_OK;
}

/* ---- BOS ----------------------------------------------------------------- */

int odk_usb_bos_check(const void *bos, size_t len, char *why, size_t why_len)
{
    if (!bos)
        return ODK_E_INVALID;
    const uint8_t *b = bos;
    const odk_usb_bos_descriptor *d = bos;
    if (len < sizeof *d)
        return fault(why, why_len, "BOS: %zu bytes read; its descriptor has %zu", len, sizeof *d);
    if (d->bLength < sizeof *d)
        return fault(why, why_len, "BOS: bLength is %u; it must be at least %zu", d->bLength,
                     sizeof *d);
    if (d->bDescriptorType != ODK_USB_DT_BOS)
        return fault(why, why_len, "BOS: bDescriptorType is 0x%02x; it must be 0x0f",
                     d->bDescriptorType);
    size_t total = odk_usb_le16(d->wTotalLength);
    if (total < d->bLength)
        return fault(why, why_len, "BOS: wTotalLength %zu is less than its bLength %u", total,
                     d->bLength);
    if (total > len)
        return fault(why, why_len, "BOS: wTotalLength %zu is past the %zu bytes read", total, len);
    unsigned caps = 0;
    for (size_t off = d->bLength; off < total;) {
        if (total - off < 2)
            return fault(why, why_len, "BOS: a stray byte at offset %zu", off);
        unsigned bl = b[off], type = b[off + 1];
        if (bl < sizeof(odk_usb_device_capability_descriptor) || bl > total - off)
            return fault(why, why_len,
                         "BOS: device capability at offset %zu has bLength %u (%zu bytes left)",
                         off, bl, total - off);
        if (type != ODK_USB_DT_DEVICE_CAPABILITY)
            return fault(why, why_len,
                         "BOS: descriptor at offset %zu has type 0x%02x; only device "
                         "capabilities (0x10) belong in a BOS",
                         off, type);
        caps++;
        off += bl;
    }
    if (caps != d->bNumDeviceCaps)
        return fault(why, why_len, "BOS: bNumDeviceCaps is %u but there %s %u", d->bNumDeviceCaps,
                     caps == 1 ? "is" : "are", caps);
    return ODK_OK;
}

/* ---- walking ------------------------------------------------------------- */

const odk_usb_descriptor_header *odk_usb_next_descriptor(const odk_usb_config_descriptor *config,
                                                         const odk_usb_descriptor_header *current)
{
    if (!config)
        return NULL;
    const uint8_t *b = (const uint8_t *)config;
    size_t total = odk_usb_le16(config->wTotalLength), off;
    if (config->bLength < 2 || total < config->bLength)
        return NULL;
    if (!current) {
        off = config->bLength;
    } else {
        const uint8_t *p = (const uint8_t *)current;
        if (p < b || p >= b + total || current->bLength < 2)
            return NULL;
        off = (size_t)(p - b) + current->bLength;
    }
    if (off >= total || total - off < 2)
        return NULL;
    const odk_usb_descriptor_header *h = (const void *)(b + off);
    if (h->bLength < 2 || h->bLength > total - off)
        return NULL;
    return h;
}

const odk_usb_descriptor_header *
odk_usb_next_descriptor_of_type(const odk_usb_config_descriptor *config,
                                const odk_usb_descriptor_header *current, uint8_t type)
{
    const odk_usb_descriptor_header *h = current;
    while ((h = odk_usb_next_descriptor(config, h)))
        if (h->bDescriptorType == type)
            return h;
    return NULL;
}

const odk_usb_descriptor_header *odk_usb_next_associated(const odk_usb_config_descriptor *config,
                                                         const void *parent,
                                                         const odk_usb_descriptor_header *current,
                                                         uint8_t type)
{
    if (!parent)
        return NULL;
    const odk_usb_descriptor_header *p = parent;
    const odk_usb_descriptor_header *h = current ? current : p;
    while ((h = odk_usb_next_descriptor(config, h))) {
        if (h->bDescriptorType == type)
            return h;
        if (h->bDescriptorType == ODK_USB_DT_INTERFACE ||
            h->bDescriptorType == ODK_USB_DT_INTERFACE_ASSOCIATION ||
            (p->bDescriptorType == ODK_USB_DT_ENDPOINT &&
             h->bDescriptorType == ODK_USB_DT_ENDPOINT))
            return NULL;
    }
    return NULL;
}

const odk_usb_interface_descriptor *
odk_usb_next_interface(const odk_usb_config_descriptor *config,
                       const odk_usb_interface_descriptor *current)
{
    const odk_usb_descriptor_header *h;
    for (h = (const void *)current;
         (h = odk_usb_next_descriptor_of_type(config, h, ODK_USB_DT_INTERFACE));)
        if (h->bLength >= sizeof(odk_usb_interface_descriptor))
            return (const void *)h;
    return NULL;
}

const odk_usb_endpoint_descriptor *odk_usb_next_endpoint(const odk_usb_config_descriptor *config,
                                                         const odk_usb_interface_descriptor *interface,
                                                         const odk_usb_endpoint_descriptor *current)
{
    const odk_usb_descriptor_header *h = (const void *)current;
    while ((h = odk_usb_next_associated(config, interface, h, ODK_USB_DT_ENDPOINT)))
        if (h->bLength >= sizeof(odk_usb_endpoint_descriptor))
            return (const void *)h;
    return NULL;
}

const odk_usb_interface_descriptor *
odk_usb_find_interface(const odk_usb_config_descriptor *config, uint8_t number, uint8_t alt)
{
    const odk_usb_interface_descriptor *in = NULL;
    while ((in = odk_usb_next_interface(config, in)))
        if (in->bInterfaceNumber == number && in->bAlternateSetting == alt)
            return in;
    return NULL;
}

/* ---- endpoints ----------------------------------------------------------- */

odk_usb_transfer_type odk_usb_endpoint_type(const odk_usb_endpoint_descriptor *endpoint)
{
    return (odk_usb_transfer_type)(endpoint->bmAttributes & 3);
}

bool odk_usb_endpoint_is_in(const odk_usb_endpoint_descriptor *endpoint)
{
    return (endpoint->bEndpointAddress & ODK_USB_ENDPOINT_IN) != 0;
}

uint16_t odk_usb_endpoint_max_packet_size(const odk_usb_endpoint_descriptor *endpoint)
{
    return odk_usb_le16(endpoint->wMaxPacketSize) & 0x7ff;
}

uint32_t odk_usb_endpoint_bytes_per_interval(const odk_usb_endpoint_descriptor *endpoint,
                                             odk_usb_speed speed,
                                             const odk_usb_ss_endpoint_companion_descriptor *companion)
{
    uint32_t mps = odk_usb_endpoint_max_packet_size(endpoint);
    odk_usb_transfer_type t = odk_usb_endpoint_type(endpoint);
    bool periodic = t == ODK_USB_TRANSFER_INTERRUPT || t == ODK_USB_TRANSFER_ISOCHRONOUS;
    if (speed == ODK_USB_SPEED_HIGH && periodic) {
        uint32_t extra = (odk_usb_le16(endpoint->wMaxPacketSize) >> 11) & 3;
        return mps * (1 + (extra > 2 ? 2 : extra));
    }
    if (speed >= ODK_USB_SPEED_SUPER && companion) {
        uint32_t burst = (uint32_t)(companion->bMaxBurst > 15 ? 15 : companion->bMaxBurst) + 1;
        uint32_t mult = t == ODK_USB_TRANSFER_ISOCHRONOUS ? (companion->bmAttributes & 3u) + 1 : 1;
        return mps * burst * mult;
    }
    return mps;
}

uint32_t odk_usb_endpoint_interval_us(const odk_usb_endpoint_descriptor *endpoint,
                                      odk_usb_speed speed)
{
    odk_usb_transfer_type t = odk_usb_endpoint_type(endpoint);
    unsigned iv = endpoint->bInterval;
    if (t == ODK_USB_TRANSFER_BULK || t == ODK_USB_TRANSFER_CONTROL)
        return 0;
    bool slow = speed == ODK_USB_SPEED_LOW || speed == ODK_USB_SPEED_FULL;
    if (t == ODK_USB_TRANSFER_INTERRUPT && slow)
        return (iv ? iv : 1) * 1000u;
    unsigned exp = iv < 1 ? 1 : iv > 16 ? 16 : iv;
    return (1u << (exp - 1)) * (slow ? 1000u : 125u);
}

/* ---- strings ------------------------------------------------------------- */

/* Appends code point cp to out as UTF-8; false when it does not fit with
 * room left for the terminating NUL. */
static bool put_utf8(char *out, size_t out_len, size_t *n, uint32_t cp)
{
    uint8_t u[4];
    size_t k;
    if (cp < 0x80) {
        u[0] = (uint8_t)cp, k = 1;
    } else if (cp < 0x800) {
        u[0] = (uint8_t)(0xc0 | cp >> 6), u[1] = (uint8_t)(0x80 | (cp & 0x3f)), k = 2;
    } else if (cp < 0x10000) {
        u[0] = (uint8_t)(0xe0 | cp >> 12), u[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (uint8_t)(0x80 | (cp & 0x3f)), k = 3;
    } else {
        u[0] = (uint8_t)(0xf0 | cp >> 18), u[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f)), u[3] = (uint8_t)(0x80 | (cp & 0x3f)), k = 4;
    }
    if (out_len - *n < k + 1)
        return false;
    memcpy(out + *n, u, k);
    *n += k;
    return true;
}

int odk_usb_string_to_utf8(const void *desc, size_t len, char *out, size_t out_len)
{
    if (!desc || !out || out_len == 0)
        return ODK_E_INVALID;
    out[0] = '\0';
    const uint8_t *b = desc;
    if (len < 2 || b[0] < 2 || b[0] > len || b[1] != ODK_USB_DT_STRING)
        return ODK_E_PROTOCOL;
    size_t units = (size_t)(b[0] - 2) / 2, n = 0;
    int st = ODK_OK;
    for (size_t i = 0; i < units; i++) {
        uint32_t u = (uint32_t)(b[2 + 2 * i] | b[3 + 2 * i] << 8), cp = u;
        if (u == 0)
            break; /* some devices pad with NULs */
        if (u >= 0xd800 && u <= 0xdbff && i + 1 < units) {
            uint32_t lo = (uint32_t)(b[4 + 2 * i] | b[5 + 2 * i] << 8);
            if (lo >= 0xdc00 && lo <= 0xdfff) {
                cp = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
                i++;
            } else {
                cp = 0xfffd;
            }
        } else if (u >= 0xd800 && u <= 0xdfff) {
            cp = 0xfffd;
        }
        if (!put_utf8(out, out_len, &n, cp)) {
            st = ODK_E_LIMIT;
            break;
        }
    }
    out[n] = '\0';
    return st == ODK_OK ? (int)n : st;
}
