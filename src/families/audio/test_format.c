/* SPDX-License-Identifier: MIT */
/* The audio family's checks (format.c): impossible formats and device
 * descriptions are refused with the reason; availability with rate-0
 * entries follows the device's rates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "families/audio/format.h"
#include "odk/status.h"

static const uint32_t rates[] = {44100, 48000, 96000};
static const odk_audio_format fmts[] = {{2, ODK_AUDIO_S16_LE, 0}, {8, ODK_AUDIO_S32_LE, 96000}};

static odk_audio_stream_desc good_stream(void)
{
    return (odk_audio_stream_desc){ODK_AUDIO_OUTPUT, fmts, 2, {2, ODK_AUDIO_S16_LE, 48000}, 1024};
}

static odk_audio_device_desc good_device(odk_audio_stream_desc *s)
{
    return (odk_audio_device_desc){.uid = "u", .name = "n", .zero_timestamp_period = 256,
                                   .rates = rates, .n_rates = 3, .rate = 48000, .streams = s,
                                   .n_streams = 1};
}

static void format_check_names_the_reason(void **state)
{
    (void)state;
    char why[128];
    odk_audio_format f = {0, ODK_AUDIO_S16_LE, 48000};
    assert_int_equal(odk_audio_format_check(&f, why, sizeof why), ODK_E_INVALID);
    assert_string_equal(why, "0 channels");
    f = (odk_audio_format){2, ODK_AUDIO_S16_LE, 0};
    assert_int_equal(odk_audio_format_check(&f, why, sizeof why), ODK_E_INVALID);
    assert_string_equal(why, "rate 0 is not a sample rate");
    f = (odk_audio_format){2, 9, 48000};
    assert_int_equal(odk_audio_format_check(&f, why, sizeof why), ODK_E_INVALID);
    assert_string_equal(why, "unknown sample format 9");
    f = (odk_audio_format){17, ODK_AUDIO_S16_LE, 48000};
    assert_int_equal(odk_audio_format_check(&f, why, sizeof why), ODK_E_LIMIT);
    f = (odk_audio_format){2, ODK_AUDIO_S16_LE, 1000000};
    assert_int_equal(odk_audio_format_check(&f, why, sizeof why), ODK_E_LIMIT);
    f = (odk_audio_format){16, ODK_AUDIO_FLOAT_LE, 192000};
    assert_int_equal(odk_audio_format_check(&f, why, sizeof why), ODK_OK);
    assert_int_equal(odk_audio_frame_bytes(&f), 64);
    f.sample_format = ODK_AUDIO_S24_3LE;
    assert_int_equal(odk_audio_frame_bytes(&f), 48);
}

static void rate_zero_entries_hold_at_every_available_rate(void **state)
{
    (void)state;
    odk_audio_format f = {2, ODK_AUDIO_S16_LE, 44100};
    assert_true(audio_format_available(fmts, 2, rates, 3, &f));
    f.rate = 88200; /* not a device rate */
    assert_false(audio_format_available(fmts, 2, rates, 3, &f));
    f = (odk_audio_format){8, ODK_AUDIO_S32_LE, 96000};
    assert_true(audio_format_available(fmts, 2, rates, 3, &f));
    f.rate = 48000; /* that entry is for 96 kHz only */
    assert_false(audio_format_available(fmts, 2, rates, 3, &f));
    f = (odk_audio_format){2, ODK_AUDIO_S16_LE, 0};
    assert_false(audio_format_available(fmts, 2, rates, 3, &f));
}

static void a_good_device_passes(void **state)
{
    (void)state;
    char why[256];
    odk_audio_stream_desc s = good_stream();
    odk_audio_device_desc d = good_device(&s);
    assert_int_equal(audio_device_check(&d, why, sizeof why), ODK_OK);
}

static void impossible_devices_are_refused_with_the_reason(void **state)
{
    (void)state;
    char why[256];
    odk_audio_stream_desc s = good_stream();
    odk_audio_device_desc d = good_device(&s);

    s.ring_frames = 128;
    assert_int_equal(audio_device_check(&d, why, sizeof why), ODK_E_INVALID);
    assert_string_equal(why,
                        "stream 0: ring of 128 frames is smaller than the zero-timestamp period (256)");
    s = good_stream();

    odk_audio_format zero[] = {{0, ODK_AUDIO_S16_LE, 0}};
    s.formats = zero;
    s.n_formats = 1;
    assert_int_equal(audio_device_check(&d, why, sizeof why), ODK_E_INVALID);
    assert_string_equal(why, "stream 0: format 0: 0 channels");
    s = good_stream();

    uint32_t bad_rates[] = {48000, 0};
    d.rates = bad_rates;
    d.n_rates = 2;
    assert_int_equal(audio_device_check(&d, why, sizeof why), ODK_E_INVALID);
    assert_string_equal(why, "rate 0 is not a sample rate");
    d = good_device(&s);

    d.rate = 22050;
    assert_int_equal(audio_device_check(&d, why, sizeof why), ODK_E_INVALID);
    assert_string_equal(why, "current rate 22050 is not an available rate");
    d = good_device(&s);

    s.format = (odk_audio_format){8, ODK_AUDIO_S32_LE, 48000};
    assert_int_equal(audio_device_check(&d, why, sizeof why), ODK_E_INVALID);
    assert_string_equal(why, "stream 0: current format is not an available one");
    s = good_stream();

    d.zero_timestamp_period = 0;
    assert_int_equal(audio_device_check(&d, why, sizeof why), ODK_E_INVALID);
    assert_string_equal(why, "zero-timestamp period of 0 frames");
    d = good_device(&s);

    d.uid = "";
    assert_int_equal(audio_device_check(&d, why, sizeof why), ODK_E_INVALID);
    d = good_device(&s);

    d.n_streams = 0;
    assert_int_equal(audio_device_check(&d, why, sizeof why), ODK_E_INVALID);
    assert_string_equal(why, "a device needs a stream");
    d = good_device(&s);

    s.direction = 7;
    assert_int_equal(audio_device_check(&d, why, sizeof why), ODK_E_INVALID);
    assert_string_equal(why, "stream 0: direction 7 is neither output nor input");
}

static void controls_are_checked(void **state)
{
    (void)state;
    char why[256];
    odk_audio_stream_desc s = good_stream();
    odk_audio_device_desc d = good_device(&s);
    odk_audio_selector_item items[] = {{1, "48k"}, {2, "44.1k"}};
    odk_audio_control_desc c[] = {
        {.kind = ODK_AUDIO_CONTROL_VOLUME, .min = 0, .max = 100, .value = 100},
        {.kind = ODK_AUDIO_CONTROL_MUTE, .value = 0},
        {.kind = ODK_AUDIO_CONTROL_SELECTOR, .items = items, .n_items = 2, .value = 2},
    };
    d.controls = c;
    d.n_controls = 3;
    assert_int_equal(audio_device_check(&d, why, sizeof why), ODK_OK);
    c[0].value = 101;
    assert_int_equal(audio_device_check(&d, why, sizeof why), ODK_E_INVALID);
    assert_string_equal(why, "control 0: value 101 outside 0..100");
    c[0].value = 50;
    c[1].value = 2;
    assert_int_equal(audio_device_check(&d, why, sizeof why), ODK_E_INVALID);
    assert_string_equal(why, "control 1: mute value 2 is not 0 or 1");
    c[1].value = 1;
    c[2].value = 3;
    assert_int_equal(audio_device_check(&d, why, sizeof why), ODK_E_INVALID);
    assert_string_equal(why, "control 2: value 3 is not an item's id");
    c[2].value = 1;
    c[2].n_items = 0;
    assert_int_equal(audio_device_check(&d, why, sizeof why), ODK_E_INVALID);
    assert_string_equal(why, "control 2: selector without items");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(format_check_names_the_reason),
        cmocka_unit_test(rate_zero_entries_hold_at_every_available_rate),
        cmocka_unit_test(a_good_device_passes),
        cmocka_unit_test(impossible_devices_are_refused_with_the_reason),
        cmocka_unit_test(controls_are_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
