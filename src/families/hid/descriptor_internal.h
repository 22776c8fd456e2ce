/* SPDX-License-Identifier: MIT */
/* descriptor_internal.h — what the HID descriptor files share: the parsed
 * descriptor's layout and the short-item reader. */
#ifndef ODK_HID_DESCRIPTOR_INTERNAL_H
#define ODK_HID_DESCRIPTOR_INTERNAL_H

#include "odk/hid_descriptor.h"

/* One item as read off the descriptor (HID 1.11 6.2.2.2 and 6.2.2.3). */
struct hid_item {
    size_t offset; /* of the prefix byte */
    size_t length; /* prefix and data (long items: all of it) */
    uint8_t type;  /* 0 main, 1 global, 2 local, 3 reserved; long items: 3 */
    uint8_t tag;   /* short items: bTag; long items: bLongItemTag */
    uint8_t size;  /* data bytes: 0, 1, 2 or 4 (long items: bDataSize) */
    bool is_long;
    uint32_t udata; /* data, zero-extended */
    int32_t sdata;  /* data, sign-extended from its size */
};

enum { HID_ITEM_MAIN = 0, HID_ITEM_GLOBAL = 1, HID_ITEM_LOCAL = 2, HID_ITEM_RESERVED = 3 };

/* Reads the item at *pos into *it and advances *pos past it.  Returns 1
 * for an item, 0 at the end, -1 when the item runs past len (*it then has
 * the offset). */
int hid_item_next(const uint8_t *b, size_t len, size_t *pos, struct hid_item *it);

struct odk_hid_descriptor {
    uint8_t *bytes;
    size_t len;
    odk_hid_element *elements;
    size_t n_elements;
    odk_hid_collection *collections;
    size_t n_collections;
    odk_hid_usage_span *usages; /* every element's usages, one after another */
    size_t n_usages;
    odk_hid_report_info *reports; /* ascending id */
    size_t n_reports;
    bool uses_ids;
    size_t long_items;
};

#endif
