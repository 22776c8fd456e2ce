/* SPDX-License-Identifier: MIT */
/* The audio family's checks: what a driver may describe and what an app
 * may ask for.  A device whose description is impossible (no channels, no
 * rate, a ring smaller than a period) is refused before anything is
 * published, with the reason. */
#include "families/audio/format.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "odk/status.h"

static int fail(int st, char *why, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(int st, char *why, size_t len, const char *fmt, ...)
{
    if (why && len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, len, fmt, ap);
        va_end(ap);
    }
    return st;
}

ODK_PUBLIC const char *odk_audio_sample_format_name(uint32_t sample_format)
{
    static const char *names[] = {NULL, "S16_LE", "S24_3LE", "S32_LE", "FLOAT_LE"};
    return sample_format >= 1 && sample_format <= 4 ? names[sample_format] : NULL;
}

const char *audio_control_kind_name(uint32_t kind)
{
    static const char *names[] = {NULL, "volume", "mute", "selector"};
    return kind >= 1 && kind <= 3 ? names[kind] : NULL;
}

static int rate_check(uint32_t rate, char *why, size_t len)
{
    if (rate == 0)
        return fail(ODK_E_INVALID, why, len, "rate 0 is not a sample rate");
    if (rate < ODK_AUDIO_MIN_RATE || rate > ODK_AUDIO_MAX_RATE)
        return fail(ODK_E_LIMIT, why, len, "rate %u is outside %u..%u", rate,
                    ODK_AUDIO_MIN_RATE, ODK_AUDIO_MAX_RATE);
    return ODK_OK;
}

int audio_entry_check(const odk_audio_format *f, char *why, size_t len)
{
    if (!f)
        return fail(ODK_E_INVALID, why, len, "no format");
    if (f->channels == 0)
        return fail(ODK_E_INVALID, why, len, "0 channels");
    if (f->channels > ODK_AUDIO_MAX_CHANNELS)
        return fail(ODK_E_LIMIT, why, len, "%u channels (at most %u)", f->channels,
                    ODK_AUDIO_MAX_CHANNELS);
    if (!odk_audio_sample_format_name(f->sample_format))
        return fail(ODK_E_INVALID, why, len, "unknown sample format %u", f->sample_format);
    return f->rate == 0 ? ODK_OK : rate_check(f->rate, why, len);
}

ODK_PUBLIC int odk_audio_format_check(const odk_audio_format *f, char *why, size_t why_len)
{
    int st = audio_entry_check(f, why, why_len);
    if (st == ODK_OK && f->rate == 0)
        st = rate_check(0, why, why_len);
    if (st == ODK_OK && why && why_len)
        snprintf(why, why_len, "ok");
    return st;
}

int audio_rates_check(const uint32_t *rates, size_t n, uint32_t rate, char *why, size_t len)
{
    if (n == 0 || !rates)
        return fail(ODK_E_INVALID, why, len, "no sample rate available");
    if (n > ODK_AUDIO_MAX_RATES)
        return fail(ODK_E_LIMIT, why, len, "%zu sample rates (at most %u)", n,
                    ODK_AUDIO_MAX_RATES);
    bool have = false;
    for (size_t i = 0; i < n; i++) {
        int st = rate_check(rates[i], why, len);
        if (st < 0)
            return st;
        have |= rates[i] == rate;
    }
    if (rate == 0)
        return rate_check(0, why, len);
    if (!have)
        return fail(ODK_E_INVALID, why, len, "current rate %u is not an available rate", rate);
    return ODK_OK;
}

static bool has_rate(const uint32_t *rates, size_t n, uint32_t rate)
{
    for (size_t i = 0; i < n; i++)
        if (rates[i] == rate)
            return true;
    return false;
}

bool audio_format_available(const odk_audio_format *e, size_t n, const uint32_t *rates,
                            size_t n_rates, const odk_audio_format *f)
{
    if (!f || f->rate == 0 || !has_rate(rates, n_rates, f->rate))
        return false;
    for (size_t i = 0; i < n; i++)
        if (e[i].channels == f->channels && e[i].sample_format == f->sample_format &&
            (e[i].rate == 0 || e[i].rate == f->rate))
            return true;
    return false;
}

int audio_stream_check(const odk_audio_stream_desc *s, const uint32_t *rates, size_t n_rates,
                       uint32_t rate, uint32_t period, char *why, size_t len)
{
    if (s->direction != ODK_AUDIO_OUTPUT && s->direction != ODK_AUDIO_INPUT)
        return fail(ODK_E_INVALID, why, len, "direction %u is neither output nor input",
                    s->direction);
    if (s->n_formats == 0 || !s->formats)
        return fail(ODK_E_INVALID, why, len, "no format available");
    if (s->n_formats > ODK_AUDIO_MAX_FORMATS)
        return fail(ODK_E_LIMIT, why, len, "%zu formats (at most %u)", s->n_formats,
                    ODK_AUDIO_MAX_FORMATS);
    char sub[160];
    for (size_t i = 0; i < s->n_formats; i++) {
        int st = audio_entry_check(&s->formats[i], sub, sizeof sub);
        if (st < 0)
            return fail(st, why, len, "format %zu: %s", i, sub);
    }
    int st = odk_audio_format_check(&s->format, sub, sizeof sub);
    if (st < 0)
        return fail(st, why, len, "current format: %s", sub);
    if (s->format.rate != rate)
        return fail(ODK_E_INVALID, why, len, "current format's rate %u is not the device's %u",
                    s->format.rate, rate);
    if (!audio_format_available(s->formats, s->n_formats, rates, n_rates, &s->format))
        return fail(ODK_E_INVALID, why, len, "current format is not an available one");
    if (s->ring_frames < period)
        return fail(ODK_E_INVALID, why, len,
                    "ring of %u frames is smaller than the zero-timestamp period (%u)",
                    s->ring_frames, period);
    if (s->ring_frames > ODK_AUDIO_MAX_RING_FRAMES)
        return fail(ODK_E_LIMIT, why, len, "ring of %u frames (at most %u)", s->ring_frames,
                    ODK_AUDIO_MAX_RING_FRAMES);
    return ODK_OK;
}

static int control_check(const odk_audio_control_desc *c, char *why, size_t len)
{
    if (!audio_control_kind_name(c->kind))
        return fail(ODK_E_INVALID, why, len, "unknown kind %u", c->kind);
    if (c->scope != 0 && c->scope != ODK_AUDIO_OUTPUT && c->scope != ODK_AUDIO_INPUT)
        return fail(ODK_E_INVALID, why, len, "scope %u", c->scope);
    switch (c->kind) {
    case ODK_AUDIO_CONTROL_VOLUME:
        if (c->min >= c->max)
            return fail(ODK_E_INVALID, why, len, "volume range %lld..%lld is empty",
                        (long long)c->min, (long long)c->max);
        if (c->value < c->min || c->value > c->max)
            return fail(ODK_E_INVALID, why, len, "value %lld outside %lld..%lld",
                        (long long)c->value, (long long)c->min, (long long)c->max);
        break;
    case ODK_AUDIO_CONTROL_MUTE:
        if (c->value != 0 && c->value != 1)
            return fail(ODK_E_INVALID, why, len, "mute value %lld is not 0 or 1",
                        (long long)c->value);
        break;
    case ODK_AUDIO_CONTROL_SELECTOR: {
        if (c->n_items == 0 || !c->items)
            return fail(ODK_E_INVALID, why, len, "selector without items");
        if (c->n_items > ODK_AUDIO_MAX_ITEMS)
            return fail(ODK_E_LIMIT, why, len, "%zu items (at most %u)", c->n_items,
                        ODK_AUDIO_MAX_ITEMS);
        bool have = false;
        for (size_t i = 0; i < c->n_items; i++)
            have |= (int64_t)c->items[i].id == c->value;
        if (!have)
            return fail(ODK_E_INVALID, why, len, "value %lld is not an item's id",
                        (long long)c->value);
        break;
    }
    }
    return ODK_OK;
}

int audio_device_check(const odk_audio_device_desc *d, char *why, size_t len)
{
    if (!d || !d->uid || !*d->uid)
        return fail(ODK_E_INVALID, why, len, "a device needs a UID");
    if (strlen(d->uid) > ODK_AUDIO_MAX_UID)
        return fail(ODK_E_LIMIT, why, len, "UID longer than %u bytes", ODK_AUDIO_MAX_UID);
    if (!d->name || !*d->name)
        return fail(ODK_E_INVALID, why, len, "a device needs a name");
    if (d->zero_timestamp_period == 0)
        return fail(ODK_E_INVALID, why, len, "zero-timestamp period of 0 frames");
    char sub[200];
    int st = audio_rates_check(d->rates, d->n_rates, d->rate, sub, sizeof sub);
    if (st < 0)
        return fail(st, why, len, "%s", sub);
    if (d->n_streams == 0 || !d->streams)
        return fail(ODK_E_INVALID, why, len, "a device needs a stream");
    if (d->n_streams > ODK_AUDIO_MAX_STREAMS)
        return fail(ODK_E_LIMIT, why, len, "%zu streams (at most %u)", d->n_streams,
                    ODK_AUDIO_MAX_STREAMS);
    for (size_t i = 0; i < d->n_streams; i++) {
        st = audio_stream_check(&d->streams[i], d->rates, d->n_rates, d->rate,
                                d->zero_timestamp_period, sub, sizeof sub);
        if (st < 0)
            return fail(st, why, len, "stream %zu: %s", i, sub);
    }
    if (d->n_controls > ODK_AUDIO_MAX_CONTROLS)
        return fail(ODK_E_LIMIT, why, len, "%zu controls (at most %u)", d->n_controls,
                    ODK_AUDIO_MAX_CONTROLS);
    if (d->n_controls && !d->controls)
        return fail(ODK_E_INVALID, why, len, "controls missing");
    for (size_t i = 0; i < d->n_controls; i++) {
        st = control_check(&d->controls[i], sub, sizeof sub);
        if (st < 0)
            return fail(st, why, len, "control %zu: %s", i, sub);
    }
    return ODK_OK;
}
