/* SPDX-License-Identifier: MIT */
/* odk/hid_descriptor.h — HID report descriptors (HID 1.11 chapter 6.2.2):
 * parsed into elements, reports decoded into values and events, reports
 * built from values, and descriptors printed the way hid-decode prints
 * them.
 *
 * A DriverKit port maps roughly:
 *   IOHIDElement (kIOHIDElementTypeInput_*, ...)  odk_hid_element
 *   IOHIDElement's collection parent              odk_hid_collection
 *   IOHIDDevice's kIOHIDMaxInputReportSizeKey      odk_hid_descriptor_report_length
 *   IOUserHIDEventService's report handling        odk_hid_event_state
 *
 * A usage is 32 bits: usage page in the high 16, usage id in the low 16
 * (HID 1.11 6.2.2.8, "extended usage"), as ODK_HID_USAGE(page, id) builds
 * it.  Bit offsets count from the first byte of the report as it travels
 * on the wire, so when a descriptor uses report ids the report id byte is
 * bits 0..7 and the first field starts at bit 8; report lengths include
 * that byte.
 *
 * A report descriptor comes from a device or a driver and is untrusted:
 * odk_hid_descriptor_parse() checks all of it and rejects it with the byte
 * offset of the faulty item and the reason.  Reports are untrusted too:
 * the decoders check the length and never read past it.
 *
 * Limits (each is reported as a fault naming it when a descriptor exceeds
 * it): ODK_HID_MAX_DESCRIPTOR_BYTES, ODK_HID_MAX_COLLECTION_DEPTH,
 * ODK_HID_MAX_PUSH_DEPTH, ODK_HID_MAX_REPORT_SIZE (bits per field),
 * ODK_HID_MAX_REPORT_COUNT, ODK_HID_MAX_REPORT_BYTES, ODK_HID_MAX_USAGES
 * (local usages before one main item), ODK_HID_MAX_ELEMENTS.
 *
 * Every function here is pure computation on its arguments: no blocking.
 * A parsed odk_hid_descriptor is immutable and may be read from any number
 * of threads at once; an odk_hid_event_state belongs to one thread at a
 * time.
 */
#ifndef ODK_HID_DESCRIPTOR_H
#define ODK_HID_DESCRIPTOR_H

#include "odk/export.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ODK_HID_MAX_DESCRIPTOR_BYTES 4096u /* HID_MAX_DESCRIPTOR_SIZE, as uhid takes */
#define ODK_HID_MAX_COLLECTION_DEPTH 32u
#define ODK_HID_MAX_PUSH_DEPTH 16u
#define ODK_HID_MAX_REPORT_SIZE 32u    /* bits in one field */
#define ODK_HID_MAX_REPORT_COUNT 4096u /* fields in one main item */
#define ODK_HID_MAX_REPORT_BYTES 4096u /* one report, report id byte included (uhid's limit) */
#define ODK_HID_MAX_USAGES 1024u       /* usages and usage ranges before one main item */
#define ODK_HID_MAX_ELEMENTS 1024u     /* Input, Output and Feature items in one descriptor */

#define ODK_HID_USAGE(page, id) ((uint32_t)(page) << 16 | (uint32_t)(id))
#define ODK_HID_USAGE_PAGE(usage) ((uint16_t)((usage) >> 16))
#define ODK_HID_USAGE_ID(usage) ((uint16_t)((usage)&0xffffu))

/* Usage pages (HID Usage Tables 1.4) odk names and turns into events. */
enum {
    ODK_HID_PAGE_GENERIC_DESKTOP = 0x01,
    ODK_HID_PAGE_SIMULATION = 0x02,
    ODK_HID_PAGE_GENERIC_DEVICE = 0x06,
    ODK_HID_PAGE_KEYBOARD = 0x07, /* Keyboard/Keypad */
    ODK_HID_PAGE_LED = 0x08,
    ODK_HID_PAGE_BUTTON = 0x09,
    ODK_HID_PAGE_ORDINAL = 0x0a,
    ODK_HID_PAGE_TELEPHONY = 0x0b,
    ODK_HID_PAGE_CONSUMER = 0x0c,
    ODK_HID_PAGE_DIGITIZER = 0x0d,
    ODK_HID_PAGE_VENDOR_FIRST = 0xff00, /* 0xff00..0xffff: vendor defined */
};

/* Generic Desktop usages used by the event classification. */
enum {
    ODK_HID_GD_POINTER = 0x01,
    ODK_HID_GD_MOUSE = 0x02,
    ODK_HID_GD_JOYSTICK = 0x04,
    ODK_HID_GD_GAMEPAD = 0x05,
    ODK_HID_GD_KEYBOARD = 0x06,
    ODK_HID_GD_KEYPAD = 0x07,
    ODK_HID_GD_X = 0x30,
    ODK_HID_GD_Y = 0x31,
    ODK_HID_GD_Z = 0x32,
    ODK_HID_GD_RX = 0x33,
    ODK_HID_GD_RY = 0x34,
    ODK_HID_GD_RZ = 0x35,
    ODK_HID_GD_WHEEL = 0x38,
    ODK_HID_GD_HAT_SWITCH = 0x39,
};
#define ODK_HID_CONSUMER_AC_PAN 0x0238u /* horizontal scroll (Consumer page) */

/* Keyboard page codes that are not keys (HID Usage Tables 10). */
enum {
    ODK_HID_KEY_NONE = 0x00,
    ODK_HID_KEY_ERROR_ROLLOVER = 0x01, /* too many keys down: state unknown */
    ODK_HID_KEY_POST_FAIL = 0x02,
    ODK_HID_KEY_ERROR_UNDEFINED = 0x03,
    ODK_HID_KEY_LEFT_CONTROL = 0xe0, /* 0xe0..0xe7: the eight modifiers */
    ODK_HID_KEY_RIGHT_GUI = 0xe7,
};

/* Report types (the Input, Output and Feature main items). */
typedef enum odk_hid_report_type {
    ODK_HID_REPORT_INPUT = 0,
    ODK_HID_REPORT_OUTPUT = 1,
    ODK_HID_REPORT_FEATURE = 2,
} odk_hid_report_type;

/* The data bits of an Input, Output or Feature item (HID 1.11 6.2.2.5);
 * a bit clear is the first-named meaning (Data, Array, Absolute, ...). */
enum {
    ODK_HID_CONSTANT = 1u << 0,
    ODK_HID_VARIABLE = 1u << 1, /* clear: an array of usage selectors */
    ODK_HID_RELATIVE = 1u << 2,
    ODK_HID_WRAP = 1u << 3,
    ODK_HID_NONLINEAR = 1u << 4,
    ODK_HID_NO_PREFERRED = 1u << 5,
    ODK_HID_NULL_STATE = 1u << 6,
    ODK_HID_VOLATILE = 1u << 7, /* Output and Feature only */
    ODK_HID_BUFFERED_BYTES = 1u << 8,
};

/* Collection types (HID 1.11 6.2.2.6). */
typedef enum odk_hid_collection_type {
    ODK_HID_COLLECTION_PHYSICAL = 0x00,
    ODK_HID_COLLECTION_APPLICATION = 0x01,
    ODK_HID_COLLECTION_LOGICAL = 0x02,
    ODK_HID_COLLECTION_REPORT = 0x03,
    ODK_HID_COLLECTION_NAMED_ARRAY = 0x04,
    ODK_HID_COLLECTION_USAGE_SWITCH = 0x05,
    ODK_HID_COLLECTION_USAGE_MODIFIER = 0x06,
    /* 0x07..0x7f reserved, 0x80..0xff vendor defined: kept as given */
} odk_hid_collection_type;

/* Why a descriptor was rejected. */
typedef enum odk_hid_fault {
    ODK_HID_FAULT_NONE = 0,
    ODK_HID_FAULT_EMPTY,                  /* no items at all */
    ODK_HID_FAULT_TOO_LONG,               /* past ODK_HID_MAX_DESCRIPTOR_BYTES */
    ODK_HID_FAULT_TRUNCATED,              /* an item's data runs past the end */
    ODK_HID_FAULT_RESERVED_ITEM,          /* a reserved tag or item type */
    ODK_HID_FAULT_BAD_ITEM_SIZE,          /* e.g. End Collection or Pop with data */
    ODK_HID_FAULT_END_WITHOUT_COLLECTION, /* End Collection with none open */
    ODK_HID_FAULT_UNCLOSED_COLLECTION,    /* the descriptor ends inside a collection */
    ODK_HID_FAULT_COLLECTION_TOO_DEEP,    /* past ODK_HID_MAX_COLLECTION_DEPTH */
    ODK_HID_FAULT_PUSH_TOO_DEEP,          /* past ODK_HID_MAX_PUSH_DEPTH */
    ODK_HID_FAULT_POP_WITHOUT_PUSH,
    ODK_HID_FAULT_REPORT_SIZE_ZERO,     /* a main item with Report Size 0 */
    ODK_HID_FAULT_REPORT_SIZE_TOO_BIG,  /* past ODK_HID_MAX_REPORT_SIZE */
    ODK_HID_FAULT_REPORT_COUNT_ZERO,    /* a main item with Report Count 0 */
    ODK_HID_FAULT_REPORT_COUNT_TOO_BIG, /* past ODK_HID_MAX_REPORT_COUNT */
    ODK_HID_FAULT_REPORT_TOO_BIG,       /* a report past ODK_HID_MAX_REPORT_BYTES */
    ODK_HID_FAULT_REPORT_ID_ZERO,       /* Report ID 0 is reserved */
    ODK_HID_FAULT_REPORT_ID_TOO_BIG,    /* Report ID above 255 */
    ODK_HID_FAULT_REPORT_ID_MIXED,      /* fields outside any report id, and report ids */
    ODK_HID_FAULT_LOGICAL_RANGE,        /* Logical Minimum > Logical Maximum */
    ODK_HID_FAULT_PHYSICAL_RANGE,       /* Physical Minimum > Physical Maximum */
    ODK_HID_FAULT_USAGE_RANGE,          /* Usage Minimum > Usage Maximum, or pages differ */
    ODK_HID_FAULT_USAGE_RANGE_UNPAIRED, /* Usage Minimum without Maximum, or the reverse */
    ODK_HID_FAULT_NO_USAGE_PAGE,        /* a usage, or a data item, with no Usage Page */
    ODK_HID_FAULT_TOO_MANY_USAGES,      /* past ODK_HID_MAX_USAGES */
    ODK_HID_FAULT_TOO_MANY_ELEMENTS,    /* past ODK_HID_MAX_ELEMENTS */
    ODK_HID_FAULT_DELIMITER,            /* nested, unopened or unclosed Delimiter */
    ODK_HID_FAULT_BAD_COLLECTION_TYPE,  /* a reserved collection type (0x07..0x7f) */
} odk_hid_fault;

/* Where and why a descriptor was rejected: offset is the byte offset of
 * the item at fault (for faults found at the end, such as an unclosed
 * collection, the offset of the item that opened what is missing), message
 * is one line naming the item and the values
 * ("byte 14: Report Size 0 on an Input item"). */
typedef struct odk_hid_parse_error {
    odk_hid_fault fault;
    size_t offset;
    char message[160];
} odk_hid_parse_error;

/* A span of usages, both ends extended: a single Usage is min == max. */
typedef struct odk_hid_usage_span {
    uint32_t min;
    uint32_t max;
} odk_hid_usage_span;

/* A collection.  parent is the index of the enclosing collection, or -1. */
typedef struct odk_hid_collection {
    odk_hid_collection_type type;
    uint32_t usage; /* extended; 0 when the collection had no usage */
    int32_t parent;
    uint32_t depth;     /* 0 for a top-level collection */
    size_t item_offset; /* byte offset of its Collection item */
} odk_hid_collection;

/* One Input, Output or Feature item: count fields of size bits each, at
 * bit_offset in report report_id of its type.
 *
 * Usages: usages[0..n_usages) in the order the descriptor gave them (Usage
 * items and Usage Minimum/Maximum pairs).  A variable item's field i has
 * the i-th usage of the list expanded (the last one repeats when the list
 * is shorter); an array item's field holds a selector v, which stands for
 * the (v - logical_min)-th usage of the list expanded, or no usage when v
 * is outside the logical range.  odk_hid_element_usage() does both. */
typedef struct odk_hid_element {
    odk_hid_report_type type;
    uint8_t report_id; /* 0 when the descriptor uses no report ids */
    uint32_t flags;    /* ODK_HID_CONSTANT, ODK_HID_VARIABLE, ... */
    uint32_t bit_offset;
    uint32_t size;                    /* bits per field, 1..ODK_HID_MAX_REPORT_SIZE */
    uint32_t count;                   /* fields, 1..ODK_HID_MAX_REPORT_COUNT */
    const odk_hid_usage_span *usages; /* borrowed from the descriptor */
    uint32_t n_usages;                /* 0 for padding */
    uint16_t usage_page;              /* the global Usage Page in force */
    int64_t logical_min, logical_max;
    int64_t physical_min, physical_max;      /* as given; equal to logical when both were 0 */
    uint32_t unit;                           /* HID 1.11 6.2.2.7 nibble code, 0: none */
    int8_t unit_exponent;                    /* -8..7 */
    uint32_t designator_min, designator_max; /* 0, 0 when absent */
    uint32_t string_min, string_max;         /* 0, 0 when absent */
    int32_t collection;                      /* innermost collection, -1 if none */
    size_t item_offset;                      /* byte offset of the main item */
} odk_hid_element;

/* One report id and the length of its reports in bytes (report id byte
 * included), 0 for a type it does not have. */
typedef struct odk_hid_report_info {
    uint8_t id; /* 0 when the descriptor uses no report ids */
    uint32_t input_bytes;
    uint32_t output_bytes;
    uint32_t feature_bytes;
} odk_hid_report_info;

typedef struct odk_hid_descriptor odk_hid_descriptor;

/* ---- parsing -------------------------------------------------------- */

/* Parses the report descriptor of len bytes (copied; bytes may be freed
 * afterwards).  On success *out is a new descriptor, freed with
 * odk_hid_descriptor_free().  Long items are skipped and counted
 * (odk_hid_descriptor_long_items).  Returns ODK_OK; ODK_E_PROTOCOL for a
 * malformed descriptor, with the fault, offset and message in *error (error
 * may be NULL); ODK_E_NOMEM; ODK_E_INVALID when bytes (with len > 0) or
 * out is NULL. */
ODK_PUBLIC int odk_hid_descriptor_parse(const void *bytes, size_t len, odk_hid_descriptor **out,
                                        odk_hid_parse_error *error);

/* Frees a descriptor (NULL is ignored).  Every pointer borrowed from it
 * dies with it. */
ODK_PUBLIC void odk_hid_descriptor_free(odk_hid_descriptor *desc);

/* The descriptor's bytes as parsed.  Borrowed. */
ODK_PUBLIC const uint8_t *odk_hid_descriptor_bytes(const odk_hid_descriptor *desc, size_t *len);

/* Elements in descriptor order: the count, and element i (NULL when i is
 * out of range).  Borrowed. */
ODK_PUBLIC size_t odk_hid_descriptor_element_count(const odk_hid_descriptor *desc);
ODK_PUBLIC const odk_hid_element *odk_hid_descriptor_element(const odk_hid_descriptor *desc,
                                                             size_t i);

/* Collections in descriptor order, the same way. */
ODK_PUBLIC size_t odk_hid_descriptor_collection_count(const odk_hid_descriptor *desc);
ODK_PUBLIC const odk_hid_collection *odk_hid_descriptor_collection(const odk_hid_descriptor *desc,
                                                                   size_t i);

/* The usage of the first top-level Application collection (the device's
 * primary usage page and usage, e.g. ODK_HID_USAGE(1, 6) for a keyboard),
 * or 0 when there is none. */
ODK_PUBLIC uint32_t odk_hid_descriptor_primary_usage(const odk_hid_descriptor *desc);

/* Whether the descriptor declares report ids (reports then start with
 * their id byte). */
ODK_PUBLIC bool odk_hid_descriptor_uses_report_ids(const odk_hid_descriptor *desc);

/* How many long items (HID 1.11 6.2.2.3) were skipped. */
ODK_PUBLIC size_t odk_hid_descriptor_long_items(const odk_hid_descriptor *desc);

/* The report ids in ascending order (one entry, id 0, when the descriptor
 * uses none): the count, and entry i into *info.  Returns ODK_OK or
 * ODK_E_NOT_FOUND (i out of range). */
ODK_PUBLIC size_t odk_hid_descriptor_report_count(const odk_hid_descriptor *desc);
ODK_PUBLIC int odk_hid_descriptor_report(const odk_hid_descriptor *desc, size_t i,
                                         odk_hid_report_info *info);

/* The length in bytes (report id byte included) of report id of type, 0
 * when the descriptor has no such report. */
ODK_PUBLIC size_t odk_hid_descriptor_report_length(const odk_hid_descriptor *desc,
                                                   odk_hid_report_type type, uint8_t id);

/* The longest report of type, in bytes (kIOHIDMaxInputReportSizeKey and
 * friends); 0 when there is none. */
ODK_PUBLIC size_t odk_hid_descriptor_max_report_length(const odk_hid_descriptor *desc,
                                                       odk_hid_report_type type);

/* The usage of field index of element el: for a variable item, the usage
 * of that field, whatever it holds; for an array item, the usage selected
 * by value (index is ignored), or 0 when value selects none.  */
ODK_PUBLIC uint32_t odk_hid_element_usage(const odk_hid_element *el, uint32_t index, int64_t value);

/* Whether element el carries usage (in a field of a variable item, or as
 * a selectable usage of an array item).  For a variable item *index (may
 * be NULL) gets the first field with that usage. */
ODK_PUBLIC bool odk_hid_element_has_usage(const odk_hid_element *el, uint32_t usage,
                                          uint32_t *index);

/* The first data (non-constant) element of type that carries usage, and
 * its field index in *index (may be NULL), or NULL.  Borrowed. */
ODK_PUBLIC const odk_hid_element *odk_hid_descriptor_find(const odk_hid_descriptor *desc,
                                                          odk_hid_report_type type, uint32_t usage,
                                                          uint32_t *index);

/* ---- reports: fields ------------------------------------------------ */

/* Reads field index of el from report (len bytes, as on the wire): sign-
 * extended when el's logical minimum is negative, unsigned otherwise.
 * Returns ODK_OK; ODK_E_PROTOCOL when the report is too short for the
 * field or its report id is not el's; ODK_E_INVALID when index >= count. */
ODK_PUBLIC int odk_hid_field_get(const odk_hid_element *el, uint32_t index, const void *report,
                                 size_t len, int64_t *value);

/* Writes value into field index of el in report (len bytes); the value is
 * truncated to the field's size (two's complement for negative values).
 * Does not touch the report id byte.  Returns ODK_OK; ODK_E_INVALID when
 * index >= count or the report is too short for the field. */
ODK_PUBLIC int odk_hid_field_set(const odk_hid_element *el, uint32_t index, void *report,
                                 size_t len, int64_t value);

/* ---- reports: values ------------------------------------------------ */

/* One usage's value in a report: for a variable field the field's value;
 * for an array, one entry per selected usage with value 1 (a key down). */
typedef struct odk_hid_value {
    uint32_t usage;
    int64_t value;
    const odk_hid_element *element; /* borrowed; NULL in odk_hid_report_encode input */
    uint32_t index;                 /* field index in the element */
} odk_hid_value;

/* Decodes a report of type (as on the wire, report id byte first when the
 * descriptor uses ids) into values, element by element in descriptor
 * order: every field of every variable data element, and the usages each
 * array element selects (ascending; duplicates, usage id 0 and
 * out-of-range selectors dropped).  Constant
 * elements are skipped.  out has cap entries; *n gets the number of
 * values (also when ODK_E_LIMIT says out was too small: out then holds the
 * first cap).  Returns ODK_OK; ODK_E_PROTOCOL when the report id is
 * unknown or the report is shorter than the descriptor says (longer is
 * accepted, the tail ignored); ODK_E_LIMIT; ODK_E_INVALID (NULL desc,
 * report, or n). */
ODK_PUBLIC int odk_hid_report_decode(const odk_hid_descriptor *desc, odk_hid_report_type type,
                                     const void *report, size_t len, odk_hid_value *out, size_t cap,
                                     size_t *n);

/* Builds report id of type from n values (their element member is
 * ignored): the report is zeroed (report id byte set when the descriptor
 * uses ids), then each value goes to the first data element of that report
 * that carries its usage: into the field for a variable item; for an array
 * item, a nonzero value puts the usage's selector into the next free
 * field, a zero value leaves it out.  *len gets the report length.
 * Returns ODK_OK; ODK_E_NOT_FOUND (no such report, or a usage it does not
 * carry); ODK_E_INVALID (a variable value outside the logical range, or a
 * NULL argument); ODK_E_LIMIT (more usages down than the array has fields,
 * or cap smaller than the report: *len gets the length needed). */
ODK_PUBLIC int odk_hid_report_encode(const odk_hid_descriptor *desc, odk_hid_report_type type,
                                     uint8_t id, const odk_hid_value *values, size_t n, void *out,
                                     size_t cap, size_t *len);

/* ---- reports: events ------------------------------------------------ */

/* What an event means (how IOUserHIDEventService dispatches it). */
typedef enum odk_hid_event_kind {
    ODK_HID_EVENT_KEY,      /* Keyboard page: value 1 down, 0 up */
    ODK_HID_EVENT_BUTTON,   /* Button page: value 1 down, 0 up */
    ODK_HID_EVENT_CONSUMER, /* Consumer page on/off control: 1 down, 0 up */
    ODK_HID_EVENT_RELATIVE, /* relative pointer axis (X, Y, Z, ...): value is the delta */
    ODK_HID_EVENT_SCROLL,   /* Wheel (vertical) or AC Pan (horizontal): value is the delta */
    ODK_HID_EVENT_ABSOLUTE, /* absolute axis or other variable: value is the new position */
} odk_hid_event_kind;

typedef struct odk_hid_event {
    odk_hid_event_kind kind;
    uint32_t usage; /* extended */
    int64_t value;
    int64_t min, max; /* the logical range (for ABSOLUTE) */
    uint8_t report_id;
    const odk_hid_element *element; /* borrowed from the descriptor */
} odk_hid_event;

typedef void (*odk_hid_event_fn)(const odk_hid_event *event, void *context);

/* Remembers the last input report of each report id of desc, to turn
 * reports into events by difference. */
typedef struct odk_hid_event_state odk_hid_event_state;

/* A new event state for desc (borrowed: desc must outlive it), with every
 * key and button up and every absolute value unknown.  Free with
 * odk_hid_event_state_free().  Returns ODK_OK, ODK_E_NOMEM, ODK_E_INVALID
 * (NULL argument). */
ODK_PUBLIC int odk_hid_event_state_create(const odk_hid_descriptor *desc,
                                          odk_hid_event_state **out);
ODK_PUBLIC void odk_hid_event_state_free(odk_hid_event_state *state);

/* Turns one input report into events, calling fn for each in order: per
 * element in descriptor order; for an array element first the usages
 * released, then those pressed (ascending usage within each); for a
 * variable element, each field whose key/button/consumer state or
 * absolute value changed, and each nonzero relative value.  An array
 * reporting ErrorRollOver (or POST fail, undefined error) leaves its keys
 * as they were.  Returns ODK_OK, or the errors of odk_hid_report_decode
 * (the state is then unchanged and fn not called). */
ODK_PUBLIC int odk_hid_event_state_feed(odk_hid_event_state *state, const void *report, size_t len,
                                        odk_hid_event_fn fn, void *context);

/* Releases everything the state holds down (keys, buttons, consumer
 * controls), calling fn with an up event for each, and forgets every
 * absolute value: what a driver does when its source goes away, so nothing
 * stays stuck.  fn may be NULL. */
ODK_PUBLIC void odk_hid_event_state_reset(odk_hid_event_state *state, odk_hid_event_fn fn,
                                          void *context);

/* Whether usage is down in state (keys, buttons, consumer controls). */
ODK_PUBLIC bool odk_hid_event_state_is_down(const odk_hid_event_state *state, uint32_t usage);

/* ---- names and printing --------------------------------------------- */

/* The usage page's name ("Generic Desktop", "Keyboard/Keypad"), or NULL
 * for a page odk does not name.  Static storage. */
ODK_PUBLIC const char *odk_hid_usage_page_name(uint16_t page);

/* The usage's name into buf ("Keyboard a and A", "Button 3", "X",
 * "Volume Increment"), or "Vendor 0xff00:0x0001" / "0x0007:0x00e8" style
 * hex for one odk does not name.  Returns true when the name came from
 * odk's tables; buf always NUL-terminated (cut to len). */
ODK_PUBLIC bool odk_hid_usage_name(uint32_t usage, char *buf, size_t len);

/* The usage named name (as odk_hid_usage_name gives it, case-insensitive,
 * or "0xPAGE:0xID"), e.g. "Keyboard Caps Lock" -> 0x00070039.  Returns
 * ODK_OK, ODK_E_NOT_FOUND, ODK_E_INVALID (NULL argument). */
ODK_PUBLIC int odk_hid_usage_lookup(const char *name, uint32_t *usage);

/* Prints the descriptor's items the way hid-decode does: one line per
 * item, its bytes in hex, then its name and value indented by collection
 * ("0x05, 0x01,  // Usage Page (Generic Desktop)"), usages by name.  It
 * reads the raw bytes, so a malformed descriptor prints up to the fault and
 * then an "error at byte N: ..." line.  *out is a new NUL-terminated
 * string, freed with free().  Returns ODK_OK (also for a malformed
 * descriptor), ODK_E_NOMEM, ODK_E_INVALID (NULL out, or NULL bytes with
 * len > 0). */
ODK_PUBLIC int odk_hid_descriptor_format(const void *bytes, size_t len, char **out);

/* The same as one JSON object: {"items": [{"offset", "bytes", "type",
 * "tag", "value", "name", "depth"}...], "error": {"offset", "fault",
 * "message"} or null, and, when the descriptor parses, "collections",
 * "elements" and "reports"}.  Ownership and errors as
 * odk_hid_descriptor_format. */
ODK_PUBLIC int odk_hid_descriptor_format_json(const void *bytes, size_t len, char **out);

/* The fault's short name ("truncated item"); never NULL. */
ODK_PUBLIC const char *odk_hid_fault_name(odk_hid_fault fault);

#ifdef __cplusplus
}
#endif

#endif
