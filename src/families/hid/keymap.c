/* SPDX-License-Identifier: MIT */
/* HID usages and Linux input codes, both ways: what uinput is told when odk
 * translates a device's events itself, and what an evdev source's key codes
 * mean in HID words.  The keyboard table follows the USB HID Usage Tables'
 * Keyboard/Keypad page in the order Linux's own HID input layer maps it. */
#include <linux/input-event-codes.h>
#include <time.h>

#include "families/hid/hid_internal.h"

/* Keyboard page usage 0x00..0x73 -> KEY_* (0: none). */
static const uint16_t keyboard[0x74] = {
    0, 0, 0, 0, KEY_A, KEY_B, KEY_C, KEY_D, KEY_E, KEY_F, KEY_G, KEY_H, KEY_I, KEY_J, KEY_K,
    KEY_L, KEY_M, KEY_N, KEY_O, KEY_P, KEY_Q, KEY_R, KEY_S, KEY_T, KEY_U, KEY_V, KEY_W, KEY_X,
    KEY_Y, KEY_Z, KEY_1, KEY_2, KEY_3, KEY_4, KEY_5, KEY_6, KEY_7, KEY_8, KEY_9, KEY_0,
    KEY_ENTER, KEY_ESC, KEY_BACKSPACE, KEY_TAB, KEY_SPACE, KEY_MINUS, KEY_EQUAL, KEY_LEFTBRACE,
    KEY_RIGHTBRACE, KEY_BACKSLASH, KEY_BACKSLASH, KEY_SEMICOLON, KEY_APOSTROPHE, KEY_GRAVE,
    KEY_COMMA, KEY_DOT, KEY_SLASH, KEY_CAPSLOCK, KEY_F1, KEY_F2, KEY_F3, KEY_F4, KEY_F5, KEY_F6,
    KEY_F7, KEY_F8, KEY_F9, KEY_F10, KEY_F11, KEY_F12, KEY_SYSRQ, KEY_SCROLLLOCK, KEY_PAUSE,
    KEY_INSERT, KEY_HOME, KEY_PAGEUP, KEY_DELETE, KEY_END, KEY_PAGEDOWN, KEY_RIGHT, KEY_LEFT,
    KEY_DOWN, KEY_UP, KEY_NUMLOCK, KEY_KPSLASH, KEY_KPASTERISK, KEY_KPMINUS, KEY_KPPLUS,
    KEY_KPENTER, KEY_KP1, KEY_KP2, KEY_KP3, KEY_KP4, KEY_KP5, KEY_KP6, KEY_KP7, KEY_KP8, KEY_KP9,
    KEY_KP0, KEY_KPDOT, KEY_102ND, KEY_COMPOSE, KEY_POWER, KEY_KPEQUAL, KEY_F13, KEY_F14,
    KEY_F15, KEY_F16, KEY_F17, KEY_F18, KEY_F19, KEY_F20, KEY_F21, KEY_F22, KEY_F23, KEY_F24,
};

/* Keyboard page 0xe0..0xe7: the modifiers. */
static const uint16_t modifiers[8] = {
    KEY_LEFTCTRL,  KEY_LEFTSHIFT,  KEY_LEFTALT,  KEY_LEFTMETA,
    KEY_RIGHTCTRL, KEY_RIGHTSHIFT, KEY_RIGHTALT, KEY_RIGHTMETA,
};

static const struct {
    uint16_t usage, code;
} consumer[] = {
    {0xe2, KEY_MUTE},          {0xe9, KEY_VOLUMEUP},       {0xea, KEY_VOLUMEDOWN},
    {0xcd, KEY_PLAYPAUSE},     {0xb5, KEY_NEXTSONG},       {0xb6, KEY_PREVIOUSSONG},
    {0xb7, KEY_STOPCD},        {0x6f, KEY_BRIGHTNESSUP},   {0x70, KEY_BRIGHTNESSDOWN},
    {0x223, KEY_HOMEPAGE},     {0x224, KEY_BACK},          {0x225, KEY_FORWARD},
    {0x192, KEY_CALC},         {0x18a, KEY_MAIL},          {0x221, KEY_SEARCH},
};
#define N_CONSUMER (sizeof consumer / sizeof consumer[0])

uint64_t hid_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

bool hid_to_evdev(const odk_hid_input_event *ev, uint16_t *type, uint16_t *code)
{
    *type = EV_KEY;
    *code = 0;
    switch (ev->type) {
    case ODK_HID_INPUT_KEYBOARD:
        if (ev->usage < 0x74)
            *code = keyboard[ev->usage];
        else if (ev->usage >= 0xe0 && ev->usage <= 0xe7)
            *code = modifiers[ev->usage - 0xe0];
        break;
    case ODK_HID_INPUT_BUTTON:
        if (ev->usage >= 1 && ev->usage <= 8)
            *code = (uint16_t)(BTN_LEFT + ev->usage - 1);
        break;
    case ODK_HID_INPUT_CONSUMER:
        for (size_t i = 0; i < N_CONSUMER; i++)
            if (consumer[i].usage == ev->usage)
                *code = consumer[i].code;
        break;
    case ODK_HID_INPUT_POINTER_REL:
        *type = EV_REL;
        if (ev->usage >= 0x30 && ev->usage <= 0x32)
            return (*code = (uint16_t)(REL_X + ev->usage - 0x30)), true;
        return false;
    case ODK_HID_INPUT_POINTER_ABS:
        *type = EV_ABS;
        if (ev->usage >= 0x30 && ev->usage <= 0x32)
            return (*code = (uint16_t)(ABS_X + ev->usage - 0x30)), true;
        return false;
    case ODK_HID_INPUT_SCROLL:
        *type = EV_REL;
        *code = ev->usage_page == 0x0c ? REL_HWHEEL : REL_WHEEL;
        return true;
    default:
        return false;
    }
    return *code != 0;
}

bool evdev_key_to_hid(uint16_t code, uint16_t *page, uint16_t *usage, uint32_t *input_type)
{
    if (code == 0)
        return false;
    for (uint16_t u = 4; u < 0x74; u++)
        if (keyboard[u] == code && u != 0x32) { /* 0x31 and 0x32 both give KEY_BACKSLASH */
            *page = 0x07, *usage = u, *input_type = ODK_HID_INPUT_KEYBOARD;
            return true;
        }
    for (uint16_t i = 0; i < 8; i++)
        if (modifiers[i] == code) {
            *page = 0x07, *usage = (uint16_t)(0xe0 + i), *input_type = ODK_HID_INPUT_KEYBOARD;
            return true;
        }
    if (code >= BTN_LEFT && code < BTN_LEFT + 8) {
        *page = 0x09, *usage = (uint16_t)(code - BTN_LEFT + 1), *input_type = ODK_HID_INPUT_BUTTON;
        return true;
    }
    for (size_t i = 0; i < N_CONSUMER; i++)
        if (consumer[i].code == code) {
            *page = 0x0c, *usage = consumer[i].usage, *input_type = ODK_HID_INPUT_CONSUMER;
            return true;
        }
    return false;
}

void hid_evdev_codes(void (*fn)(void *ctx, uint16_t type, uint16_t code), void *ctx)
{
    for (size_t i = 0; i < 0x74; i++)
        if (keyboard[i])
            fn(ctx, EV_KEY, keyboard[i]);
    for (size_t i = 0; i < 8; i++)
        fn(ctx, EV_KEY, modifiers[i]);
    for (uint16_t b = 0; b < 8; b++)
        fn(ctx, EV_KEY, (uint16_t)(BTN_LEFT + b));
    for (size_t i = 0; i < N_CONSUMER; i++)
        fn(ctx, EV_KEY, consumer[i].code);
    static const uint16_t rel[] = {REL_X, REL_Y, REL_Z, REL_WHEEL, REL_HWHEEL};
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++)
        fn(ctx, EV_REL, rel[i]);
}
