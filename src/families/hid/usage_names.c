/* SPDX-License-Identifier: MIT */
/* usage_names.c — names of usage pages and common usages (HID Usage
 * Tables 1.4), for printing descriptors and for naming keys in remaps.
 *
 * The tables name the pages a keyboard, a mouse, a game pad, a consumer
 * control and a touch screen use; other usages print as hex and read back
 * from it, so every usage has a name that odk_hid_usage_lookup() accepts. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "families/hid/descriptor_internal.h"
#include "odk/status.h"

struct name {
    uint16_t id;
    const char *name;
};

static const struct name pages[] = {
    {0x01, "Generic Desktop"},
    {0x02, "Simulation Controls"},
    {0x03, "VR Controls"},
    {0x04, "Sport Controls"},
    {0x05, "Game Controls"},
    {0x06, "Generic Device Controls"},
    {0x07, "Keyboard/Keypad"},
    {0x08, "LED"},
    {0x09, "Button"},
    {0x0a, "Ordinal"},
    {0x0b, "Telephony Device"},
    {0x0c, "Consumer"},
    {0x0d, "Digitizer"},
    {0x0e, "Haptics"},
    {0x0f, "Physical Input Device"},
    {0x10, "Unicode"},
    {0x12, "Eye and Head Trackers"},
    {0x14, "Auxiliary Display"},
    {0x20, "Sensors"},
    {0x40, "Medical Instrument"},
    {0x41, "Braille Display"},
    {0x59, "Lighting and Illumination"},
    {0x80, "Monitor"},
    {0x81, "Monitor Enumerated"},
    {0x82, "VESA Virtual Controls"},
    {0x84, "Power Device"},
    {0x85, "Battery System"},
    {0x8c, "Barcode Scanner"},
    {0x8d, "Scales"},
    {0x8e, "Magnetic Stripe Reader"},
    {0x90, "Camera Control"},
    {0x91, "Arcade"},
    {0x92, "Gaming Device"},
    {0xf1d0, "FIDO Alliance"},
};

static const struct name generic_desktop[] = {
    {0x01, "Pointer"},
    {0x02, "Mouse"},
    {0x04, "Joystick"},
    {0x05, "Gamepad"},
    {0x06, "Keyboard"},
    {0x07, "Keypad"},
    {0x08, "Multi-axis Controller"},
    {0x09, "Tablet PC System Controls"},
    {0x30, "X"},
    {0x31, "Y"},
    {0x32, "Z"},
    {0x33, "Rx"},
    {0x34, "Ry"},
    {0x35, "Rz"},
    {0x36, "Slider"},
    {0x37, "Dial"},
    {0x38, "Wheel"},
    {0x39, "Hat Switch"},
    {0x3a, "Counted Buffer"},
    {0x3b, "Byte Count"},
    {0x3c, "Motion Wakeup"},
    {0x3d, "Start"},
    {0x3e, "Select"},
    {0x40, "Vx"},
    {0x41, "Vy"},
    {0x42, "Vz"},
    {0x43, "Vbrx"},
    {0x44, "Vbry"},
    {0x45, "Vbrz"},
    {0x46, "Vno"},
    {0x47, "Feature Notification"},
    {0x48, "Resolution Multiplier"},
    {0x80, "System Control"},
    {0x81, "System Power Down"},
    {0x82, "System Sleep"},
    {0x83, "System Wake Up"},
    {0x84, "System Context Menu"},
    {0x85, "System Main Menu"},
    {0x86, "System App Menu"},
    {0x87, "System Menu Help"},
    {0x88, "System Menu Exit"},
    {0x89, "System Menu Select"},
    {0x8a, "System Menu Right"},
    {0x8b, "System Menu Left"},
    {0x8c, "System Menu Up"},
    {0x8d, "System Menu Down"},
    {0x90, "D-pad Up"},
    {0x91, "D-pad Down"},
    {0x92, "D-pad Right"},
    {0x93, "D-pad Left"},
};

/* Keyboard/Keypad page, 0x28..0xa4 and the modifiers (letters, digits
 * and function keys are made by keyboard_name()). */
static const struct name keyboard[] = {
    {0x00, "No Event"},
    {0x01, "ErrorRollOver"},
    {0x02, "POSTFail"},
    {0x03, "ErrorUndefined"},
    {0x28, "Keyboard Return (ENTER)"},
    {0x29, "Keyboard ESCAPE"},
    {0x2a, "Keyboard DELETE (Backspace)"},
    {0x2b, "Keyboard Tab"},
    {0x2c, "Keyboard Spacebar"},
    {0x2d, "Keyboard - and (underscore)"},
    {0x2e, "Keyboard = and +"},
    {0x2f, "Keyboard [ and {"},
    {0x30, "Keyboard ] and }"},
    {0x31, "Keyboard \\ and |"},
    {0x32, "Keyboard Non-US # and ~"},
    {0x33, "Keyboard ; and :"},
    {0x34, "Keyboard ' and \""},
    {0x35, "Keyboard Grave Accent and Tilde"},
    {0x36, "Keyboard , and <"},
    {0x37, "Keyboard . and >"},
    {0x38, "Keyboard / and ?"},
    {0x39, "Keyboard Caps Lock"},
    {0x46, "Keyboard PrintScreen"},
    {0x47, "Keyboard Scroll Lock"},
    {0x48, "Keyboard Pause"},
    {0x49, "Keyboard Insert"},
    {0x4a, "Keyboard Home"},
    {0x4b, "Keyboard PageUp"},
    {0x4c, "Keyboard Delete Forward"},
    {0x4d, "Keyboard End"},
    {0x4e, "Keyboard PageDown"},
    {0x4f, "Keyboard RightArrow"},
    {0x50, "Keyboard LeftArrow"},
    {0x51, "Keyboard DownArrow"},
    {0x52, "Keyboard UpArrow"},
    {0x53, "Keypad Num Lock and Clear"},
    {0x54, "Keypad /"},
    {0x55, "Keypad *"},
    {0x56, "Keypad -"},
    {0x57, "Keypad +"},
    {0x58, "Keypad ENTER"},
    {0x59, "Keypad 1 and End"},
    {0x5a, "Keypad 2 and Down Arrow"},
    {0x5b, "Keypad 3 and PageDn"},
    {0x5c, "Keypad 4 and Left Arrow"},
    {0x5d, "Keypad 5"},
    {0x5e, "Keypad 6 and Right Arrow"},
    {0x5f, "Keypad 7 and Home"},
    {0x60, "Keypad 8 and Up Arrow"},
    {0x61, "Keypad 9 and PageUp"},
    {0x62, "Keypad 0 and Insert"},
    {0x63, "Keypad . and Delete"},
    {0x64, "Keyboard Non-US \\ and |"},
    {0x65, "Keyboard Application"},
    {0x66, "Keyboard Power"},
    {0x67, "Keypad ="},
    {0x74, "Keyboard Execute"},
    {0x75, "Keyboard Help"},
    {0x76, "Keyboard Menu"},
    {0x77, "Keyboard Select"},
    {0x78, "Keyboard Stop"},
    {0x79, "Keyboard Again"},
    {0x7a, "Keyboard Undo"},
    {0x7b, "Keyboard Cut"},
    {0x7c, "Keyboard Copy"},
    {0x7d, "Keyboard Paste"},
    {0x7e, "Keyboard Find"},
    {0x7f, "Keyboard Mute"},
    {0x80, "Keyboard Volume Up"},
    {0x81, "Keyboard Volume Down"},
    {0x82, "Keyboard Locking Caps Lock"},
    {0x83, "Keyboard Locking Num Lock"},
    {0x84, "Keyboard Locking Scroll Lock"},
    {0x85, "Keypad Comma"},
    {0x86, "Keypad Equal Sign"},
    {0x99, "Keyboard Alternate Erase"},
    {0x9a, "Keyboard SysReq/Attention"},
    {0x9b, "Keyboard Cancel"},
    {0x9c, "Keyboard Clear"},
    {0x9d, "Keyboard Prior"},
    {0x9e, "Keyboard Return"},
    {0x9f, "Keyboard Separator"},
    {0xa0, "Keyboard Out"},
    {0xa1, "Keyboard Oper"},
    {0xa2, "Keyboard Clear/Again"},
    {0xa3, "Keyboard CrSel/Props"},
    {0xa4, "Keyboard ExSel"},
    {0xe0, "Keyboard LeftControl"},
    {0xe1, "Keyboard LeftShift"},
    {0xe2, "Keyboard LeftAlt"},
    {0xe3, "Keyboard Left GUI"},
    {0xe4, "Keyboard RightControl"},
    {0xe5, "Keyboard RightShift"},
    {0xe6, "Keyboard RightAlt"},
    {0xe7, "Keyboard Right GUI"},
};

static const struct name led[] = {
    {0x01, "Num Lock"},    {0x02, "Caps Lock"},
    {0x03, "Scroll Lock"}, {0x04, "Compose"},
    {0x05, "Kana"},        {0x06, "Power"},
    {0x07, "Shift"},       {0x08, "Do Not Disturb"},
    {0x09, "Mute"},        {0x4b, "Generic Indicator"},
};

static const struct name consumer[] = {
    {0x01, "Consumer Control"},
    {0x02, "Numeric Key Pad"},
    {0x30, "Power"},
    {0x32, "Sleep"},
    {0x40, "Menu"},
    {0x6f, "Display Brightness Increment"},
    {0x70, "Display Brightness Decrement"},
    {0xb0, "Play"},
    {0xb1, "Pause"},
    {0xb2, "Record"},
    {0xb3, "Fast Forward"},
    {0xb4, "Rewind"},
    {0xb5, "Scan Next Track"},
    {0xb6, "Scan Previous Track"},
    {0xb7, "Stop"},
    {0xb8, "Eject"},
    {0xcd, "Play/Pause"},
    {0xe0, "Volume"},
    {0xe2, "Mute"},
    {0xe5, "Bass Boost"},
    {0xe9, "Volume Increment"},
    {0xea, "Volume Decrement"},
    {0x183, "AL Consumer Control Configuration"},
    {0x18a, "AL Email Reader"},
    {0x192, "AL Calculator"},
    {0x194, "AL Local Machine Browser"},
    {0x196, "AL Internet Browser"},
    {0x19e, "AL Terminal Lock/Screensaver"},
    {0x221, "AC Search"},
    {0x223, "AC Home"},
    {0x224, "AC Back"},
    {0x225, "AC Forward"},
    {0x226, "AC Stop"},
    {0x227, "AC Refresh"},
    {0x22a, "AC Bookmarks"},
    {0x232, "AC Zoom In"},
    {0x233, "AC Zoom Out"},
    {0x238, "AC Pan"},
};

static const struct name digitizer[] = {
    {0x01, "Digitizer"},
    {0x02, "Pen"},
    {0x03, "Light Pen"},
    {0x04, "Touch Screen"},
    {0x05, "Touch Pad"},
    {0x06, "Whiteboard"},
    {0x0e, "Device Configuration"},
    {0x20, "Stylus"},
    {0x21, "Puck"},
    {0x22, "Finger"},
    {0x23, "Device Settings"},
    {0x30, "Tip Pressure"},
    {0x31, "Barrel Pressure"},
    {0x32, "In Range"},
    {0x33, "Touch"},
    {0x34, "Untouch"},
    {0x35, "Tap"},
    {0x3c, "Invert"},
    {0x3d, "X Tilt"},
    {0x3e, "Y Tilt"},
    {0x3f, "Azimuth"},
    {0x42, "Tip Switch"},
    {0x43, "Secondary Tip Switch"},
    {0x44, "Barrel Switch"},
    {0x45, "Eraser"},
    {0x47, "Confidence"},
    {0x48, "Width"},
    {0x49, "Height"},
    {0x51, "Contact Identifier"},
    {0x52, "Device Mode"},
    {0x53, "Device Identifier"},
    {0x54, "Contact Count"},
    {0x55, "Contact Count Maximum"},
    {0x56, "Scan Time"},
    {0x5b, "Transducer Serial Number"},
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const char *find(const struct name *t, size_t n, uint16_t id)
{
    for (size_t i = 0; i < n; i++)
        if (t[i].id == id)
            return t[i].name;
    return NULL;
}

const char *odk_hid_usage_page_name(uint16_t page)
{
    if (page >= ODK_HID_PAGE_VENDOR_FIRST)
        return "Vendor Defined";
    return find(pages, N(pages), page);
}

static bool keyboard_name(uint16_t id, char *buf, size_t len)
{
    static const char shifted[] = "!@#$%^&*()";
    if (id >= 0x04 && id <= 0x1d) {
        snprintf(buf, len, "Keyboard %c and %c", 'a' + (id - 0x04), 'A' + (id - 0x04));
    } else if (id >= 0x1e && id <= 0x27) {
        int digit = id == 0x27 ? 0 : id - 0x1e + 1;
        snprintf(buf, len, "Keyboard %d and %c", digit, shifted[id - 0x1e]);
    } else if (id >= 0x3a && id <= 0x45) {
        snprintf(buf, len, "Keyboard F%d", id - 0x3a + 1);
    } else if (id >= 0x68 && id <= 0x73) {
        snprintf(buf, len, "Keyboard F%d", id - 0x68 + 13);
    } else if (id >= 0x87 && id <= 0x8f) {
        snprintf(buf, len, "Keyboard International%d", id - 0x87 + 1);
    } else if (id >= 0x90 && id <= 0x98) {
        snprintf(buf, len, "Keyboard LANG%d", id - 0x90 + 1);
    } else {
        const char *n = find(keyboard, N(keyboard), id);
        if (!n)
            return false;
        snprintf(buf, len, "%s", n);
    }
    return true;
}

bool odk_hid_usage_name(uint32_t usage, char *buf, size_t len)
{
    if (!buf || !len)
        return false;
    uint16_t page = ODK_HID_USAGE_PAGE(usage), id = ODK_HID_USAGE_ID(usage);
    const char *n = NULL;
    switch (page) {
    case ODK_HID_PAGE_GENERIC_DESKTOP:
        n = find(generic_desktop, N(generic_desktop), id);
        break;
    case ODK_HID_PAGE_KEYBOARD:
        if (keyboard_name(id, buf, len))
            return true;
        break;
    case ODK_HID_PAGE_LED:
        n = find(led, N(led), id);
        break;
    case ODK_HID_PAGE_BUTTON:
        if (id == 0)
            snprintf(buf, len, "No Button Pressed");
        else
            snprintf(buf, len, "Button %u", id);
        return true;
    case ODK_HID_PAGE_ORDINAL:
        if (id == 0)
            break;
        snprintf(buf, len, "Instance %u", id);
        return true;
    case ODK_HID_PAGE_CONSUMER:
        n = find(consumer, N(consumer), id);
        break;
    case ODK_HID_PAGE_DIGITIZER:
        n = find(digitizer, N(digitizer), id);
        break;
    }
    if (n) {
        snprintf(buf, len, "%s", n);
        return true;
    }
    if (page >= ODK_HID_PAGE_VENDOR_FIRST)
        snprintf(buf, len, "Vendor 0x%04x:0x%04x", page, id);
    else
        snprintf(buf, len, "0x%04x:0x%04x", page, id);
    return false;
}

/* "0xPAGE:0xID" (after an optional "Vendor "). */
static bool parse_hex_usage(const char *s, uint32_t *usage)
{
    if (strncasecmp(s, "Vendor ", 7) == 0)
        s += 7;
    char *end;
    if (strncasecmp(s, "0x", 2) != 0)
        return false;
    unsigned long page = strtoul(s, &end, 16);
    if (*end != ':' || page > 0xffff || strncasecmp(end + 1, "0x", 2) != 0)
        return false;
    const char *id_at = end + 1;
    unsigned long id = strtoul(id_at, &end, 16);
    if (*end || id > 0xffff)
        return false;
    *usage = ODK_HID_USAGE(page, id);
    return true;
}

int odk_hid_usage_lookup(const char *name, uint32_t *usage)
{
    if (!name || !usage)
        return ODK_E_INVALID;
    if (parse_hex_usage(name, usage))
        return ODK_OK;
    static const uint16_t named_pages[] = {
        ODK_HID_PAGE_KEYBOARD, ODK_HID_PAGE_GENERIC_DESKTOP, ODK_HID_PAGE_LED,
        ODK_HID_PAGE_CONSUMER, ODK_HID_PAGE_DIGITIZER,       ODK_HID_PAGE_BUTTON,
        ODK_HID_PAGE_ORDINAL,
    };
    if (strncasecmp(name, "Button ", 7) == 0 || strncasecmp(name, "Instance ", 9) == 0) {
        bool button = name[0] == 'B' || name[0] == 'b';
        const char *digits = name + (button ? 7 : 9);
        char *end;
        unsigned long id = strtoul(digits, &end, 10);
        if (*digits >= '0' && *digits <= '9' && !*end && id >= 1 && id <= 0xffff) {
            *usage = ODK_HID_USAGE(button ? ODK_HID_PAGE_BUTTON : ODK_HID_PAGE_ORDINAL, id);
            return ODK_OK;
        }
    }
    /* Every named usage of the named pages lies below 0x400. */
    char buf[64];
    for (size_t p = 0; p < N(named_pages); p++) {
        if (named_pages[p] == ODK_HID_PAGE_BUTTON || named_pages[p] == ODK_HID_PAGE_ORDINAL)
            continue;
        for (uint32_t id = 0; id < 0x400; id++) {
            uint32_t u = ODK_HID_USAGE(named_pages[p], id);
            if (odk_hid_usage_name(u, buf, sizeof buf) && strcasecmp(buf, name) == 0) {
                *usage = u;
                return ODK_OK;
            }
        }
    }
    return ODK_E_NOT_FOUND;
}
