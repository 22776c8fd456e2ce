/* SPDX-License-Identifier: MIT */
/* Placeholder so the API links while the parser is written (issue 12).
 * Every function answers ODK_E_UNSUPPORTED or an empty result. */
#include <stdlib.h>

#include "odk/hid_descriptor.h"
#include "odk/status.h"

int odk_hid_descriptor_parse(const void *bytes, size_t len, odk_hid_descriptor **out,
                             odk_hid_parse_error *error)
{
    if (out)
        *out = NULL;
    return ODK_E_UNSUPPORTED;
}
void odk_hid_descriptor_free(odk_hid_descriptor *desc) {}
const uint8_t *odk_hid_descriptor_bytes(const odk_hid_descriptor *desc, size_t *len)
{
    *len = 0;
    return NULL;
}
size_t odk_hid_descriptor_element_count(const odk_hid_descriptor *desc) { return 0; }
const odk_hid_element *odk_hid_descriptor_element(const odk_hid_descriptor *desc, size_t i)
{
    return NULL;
}
size_t odk_hid_descriptor_collection_count(const odk_hid_descriptor *desc) { return 0; }
const odk_hid_collection *odk_hid_descriptor_collection(const odk_hid_descriptor *desc, size_t i)
{
    return NULL;
}
uint32_t odk_hid_descriptor_primary_usage(const odk_hid_descriptor *desc) { return 0; }
bool odk_hid_descriptor_uses_report_ids(const odk_hid_descriptor *desc) { return false; }
size_t odk_hid_descriptor_long_items(const odk_hid_descriptor *desc) { return 0; }
size_t odk_hid_descriptor_report_count(const odk_hid_descriptor *desc) { return 0; }
int odk_hid_descriptor_report(const odk_hid_descriptor *desc, size_t i, odk_hid_report_info *info)
{
    return ODK_E_NOT_FOUND;
}
size_t odk_hid_descriptor_report_length(const odk_hid_descriptor *desc, odk_hid_report_type type,
                                        uint8_t id)
{
    return 0;
}
size_t odk_hid_descriptor_max_report_length(const odk_hid_descriptor *desc,
                                            odk_hid_report_type type)
{
    return 0;
}
uint32_t odk_hid_element_usage(const odk_hid_element *el, uint32_t index, int64_t value)
{
    return 0;
}
bool odk_hid_element_has_usage(const odk_hid_element *el, uint32_t usage, uint32_t *index)
{
    return false;
}
const odk_hid_element *odk_hid_descriptor_find(const odk_hid_descriptor *desc,
                                               odk_hid_report_type type, uint32_t usage,
                                               uint32_t *index)
{
    return NULL;
}
int odk_hid_field_get(const odk_hid_element *el, uint32_t index, const void *report, size_t len,
                      int64_t *value)
{
    return ODK_E_UNSUPPORTED;
}
int odk_hid_field_set(const odk_hid_element *el, uint32_t index, void *report, size_t len,
                      int64_t value)
{
    return ODK_E_UNSUPPORTED;
}
int odk_hid_report_decode(const odk_hid_descriptor *desc, odk_hid_report_type type,
                          const void *report, size_t len, odk_hid_value *out, size_t cap,
                          size_t *n)
{
    return ODK_E_UNSUPPORTED;
}
int odk_hid_report_encode(const odk_hid_descriptor *desc, odk_hid_report_type type, uint8_t id,
                          const odk_hid_value *values, size_t n, void *out, size_t cap,
                          size_t *len)
{
    return ODK_E_UNSUPPORTED;
}
int odk_hid_event_state_create(const odk_hid_descriptor *desc, odk_hid_event_state **out)
{
    if (out)
        *out = NULL;
    return ODK_E_UNSUPPORTED;
}
void odk_hid_event_state_free(odk_hid_event_state *state) {}
int odk_hid_event_state_feed(odk_hid_event_state *state, const void *report, size_t len,
                             odk_hid_event_fn fn, void *context)
{
    return ODK_E_UNSUPPORTED;
}
void odk_hid_event_state_reset(odk_hid_event_state *state, odk_hid_event_fn fn, void *context) {}
bool odk_hid_event_state_is_down(const odk_hid_event_state *state, uint32_t usage)
{
    return false;
}
const char *odk_hid_usage_page_name(uint16_t page) { return NULL; }
bool odk_hid_usage_name(uint32_t usage, char *buf, size_t len)
{
    if (len)
        buf[0] = 0;
    return false;
}
int odk_hid_usage_lookup(const char *name, uint32_t *usage) { return ODK_E_NOT_FOUND; }
int odk_hid_descriptor_format(const void *bytes, size_t len, char **out)
{
    if (out)
        *out = NULL;
    return ODK_E_UNSUPPORTED;
}
int odk_hid_descriptor_format_json(const void *bytes, size_t len, char **out)
{
    if (out)
        *out = NULL;
    return ODK_E_UNSUPPORTED;
}
const char *odk_hid_fault_name(odk_hid_fault fault) { return "unknown fault"; }
