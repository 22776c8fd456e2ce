/* SPDX-License-Identifier: MIT */
/* odkctl audio: every audio device (IOUserAudioDevice) with its streams,
 * formats, controls and clock; `watch` prints a device's property changes
 * as they come; `control` sets a control (a volume, a clock source). */
#include "odkctl_audio.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "odk/audio_client.h"

static void print_json(const odk_value *v)
{
    char *s = odk_value_to_json(v, ODK_JSON_PRETTY);
    printf("%s\n", s ? s : "null");
    free(s);
}

static int fail(const char *what, int st)
{
    fprintf(stderr, "odkctl audio: %s: %s\n", what, odk_strerror(st));
    return 1;
}

/* "2 x S16_LE @ 48000" (rate 0: "@ any"). */
static void format_str(const odk_value *f, char *buf, size_t len)
{
    int64_t rate = odk_dict_get_int(f, "SampleRate", 0);
    char r[24] = "any";
    if (rate)
        snprintf(r, sizeof r, "%" PRId64, rate);
    snprintf(buf, len, "%" PRId64 " x %s @ %s", odk_dict_get_int(f, "Channels", 0),
             odk_dict_get_string(f, "SampleFormat", "?"), r);
}

/* The clock and the xruns, read from the device's shared memory. */
static odk_value *clock_of(const char *state_dir, const char *uid)
{
    odk_audio *a;
    if (odk_audio_open(state_dir, uid, &a) < 0)
        return NULL;
    odk_value *v = odk_value_new_dict(), *x = odk_value_new_array();
    odk_audio_timestamp ts;
    if (v && x && odk_audio_get_timestamp(a, &ts) == ODK_OK) {
        static const char *states[] = {"stopped", "running", "gone"};
        odk_dict_set_string(v, "state", ts.state <= 2 ? states[ts.state] : "?");
        odk_dict_set_int(v, "sample_time", (int64_t)ts.sample_time);
        odk_dict_set_int(v, "host_time_ns", (int64_t)ts.host_time_ns);
        odk_dict_set_int(v, "rate", ts.rate);
        odk_dict_set_int(v, "generation", (int64_t)ts.generation);
        odk_audio_shm *shm = odk_audio_shared(a);
        for (uint32_t i = 0; i < shm->n_streams && i < ODK_AUDIO_MAX_STREAMS; i++)
            odk_array_append(x, odk_value_new_int((int64_t)__atomic_load_n(
                                    &shm->streams[i].xruns, __ATOMIC_RELAXED)));
        odk_dict_set(v, "xruns", x);
        x = NULL;
    }
    odk_value_free(x);
    odk_audio_close(a);
    return v;
}

static void print_device(const odk_value *d, const odk_value *clk)
{
    const odk_value *p = odk_dict_get(d, "properties");
    printf("%s  \"%s\"  node %" PRId64 "  %s, %s\n", odk_dict_get_string(p, "UID", "?"),
           odk_dict_get_string(p, "Name", ""), odk_dict_get_int(d, "id", 0),
           odk_dict_get_string(p, "TransportType", ""), odk_dict_get_string(p, "Manufacturer", ""));
    printf("  rate %" PRId64 " of [", odk_dict_get_int(p, "SampleRate", 0));
    const odk_value *rates = odk_dict_get(p, "AvailableSampleRates");
    for (size_t i = 0; i < odk_array_count(rates); i++)
        printf("%s%" PRId64, i ? " " : "", odk_value_int(odk_array_get(rates, i)));
    printf("]  clock domain %" PRId64 "  zero timestamp every %" PRId64 " frames\n",
           odk_dict_get_int(p, "ClockDomain", 0), odk_dict_get_int(p, "ZeroTimestampPeriod", 0));
    if (clk && odk_dict_get(clk, "state"))
        printf("  clock: %s, sample time %" PRId64 " at %" PRId64 " ns, generation %" PRId64
               "\n",
               odk_dict_get_string(clk, "state", "?"), odk_dict_get_int(clk, "sample_time", 0),
               odk_dict_get_int(clk, "host_time_ns", 0), odk_dict_get_int(clk, "generation", 0));
    const odk_value *streams = odk_dict_get(p, "Streams");
    const odk_value *xruns = clk ? odk_dict_get(clk, "xruns") : NULL;
    for (size_t i = 0; i < odk_array_count(streams); i++) {
        const odk_value *s = odk_array_get(streams, i);
        char cur[64], f[64];
        format_str(odk_dict_get(s, "Format"), cur, sizeof cur);
        printf("  stream %zu: %-6s %s  ring %" PRId64 " frames", i,
               odk_dict_get_string(s, "Direction", "?"), cur, odk_dict_get_int(s, "RingFrames", 0));
        if (i < odk_array_count(xruns))
            printf("  xruns %" PRId64, odk_value_int(odk_array_get(xruns, i)));
        const odk_value *fmts = odk_dict_get(s, "AvailableFormats");
        printf("\n    formats (%zu):", odk_array_count(fmts));
        for (size_t k = 0; k < odk_array_count(fmts); k++) {
            format_str(odk_array_get(fmts, k), f, sizeof f);
            printf("%s %s", k ? "," : "", f);
        }
        printf("\n");
    }
    const odk_value *controls = odk_dict_get(p, "Controls");
    for (size_t i = 0; i < odk_array_count(controls); i++) {
        const odk_value *c = odk_array_get(controls, i);
        const char *kind = odk_dict_get_string(c, "Kind", "?");
        printf("  control %" PRId64 ": %s \"%s\" (%s) = %" PRId64, odk_dict_get_int(c, "ID", 0),
               kind, odk_dict_get_string(c, "Name", ""), odk_dict_get_string(c, "Scope", ""),
               odk_dict_get_int(c, "Value", 0));
        if (strcmp(kind, "volume") == 0)
            printf(" of %" PRId64 "..%" PRId64 " (%.2f..%.2f dB)", odk_dict_get_int(c, "Min", 0),
                   odk_dict_get_int(c, "Max", 0), odk_dict_get_int(c, "MinDB", 0) / 100.0,
                   odk_dict_get_int(c, "MaxDB", 0) / 100.0);
        const odk_value *items = odk_dict_get(c, "Items");
        for (size_t k = 0; k < odk_array_count(items); k++) {
            const odk_value *it = odk_array_get(items, k);
            printf("%s%" PRId64 " \"%s\"", k ? ", " : "  [", odk_dict_get_int(it, "ID", 0),
                   odk_dict_get_string(it, "Name", ""));
        }
        printf("%s\n", odk_array_count(items) ? "]" : "");
    }
}

static int list(const char *state_dir, bool json)
{
    odk_value *devs;
    int st = odk_audio_list(state_dir, &devs);
    if (st < 0)
        return fail("list", st);
    for (size_t i = 0; i < odk_array_count(devs); i++) {
        odk_value *d = (odk_value *)odk_array_get(devs, i);
        const char *uid = odk_dict_get_string(odk_dict_get(d, "properties"), "UID", "");
        odk_value *clk = clock_of(state_dir, uid);
        if (json) {
            if (clk)
                odk_dict_set(d, "clock", clk);
            continue;
        }
        if (i)
            printf("\n");
        print_device(d, clk);
        odk_value_free(clk);
    }
    if (json)
        print_json(devs);
    else if (!odk_array_count(devs))
        printf("no audio device\n");
    odk_value_free(devs);
    return 0;
}

/* Prints every change of the device's properties (key and new value), one
 * line each, until COUNT changes (0: forever) or the device goes. */
static int watch(const char *state_dir, const char *uid, long count, bool json)
{
    odk_audio *a;
    int st = odk_audio_open(state_dir, uid, &a);
    if (st < 0)
        return fail(uid && *uid ? uid : "the default device", st);
    printf("watching %s\n", odk_audio_uid(a));
    fflush(stdout);
    long seen = 0;
    int rc = 0;
    while (count == 0 || seen < count) {
        odk_audio_event ev;
        st = odk_audio_read_event(a, &ev, -1);
        if (st < 0) {
            rc = fail("watch", st);
            break;
        }
        if (ev.kind == ODK_AUDIO_EVENT_GONE) {
            printf(json ? "{\"event\": \"gone\"}\n" : "gone\n");
            rc = 1;
            break;
        }
        const odk_value *v = odk_dict_get(odk_audio_properties(a), ev.key);
        char *text = v ? odk_value_to_json(v, 0) : NULL;
        if (json)
            printf("{\"event\": \"property\", \"key\": \"%s\", \"value\": %s}\n", ev.key,
                   text ? text : "null");
        else
            printf("%s = %s\n", ev.key, text ? text : "null");
        free(text);
        fflush(stdout);
        seen++;
    }
    odk_audio_close(a);
    return rc;
}

static int control(const char *state_dir, const char *uid, const char *id, const char *value)
{
    char *e1, *e2;
    long long cid = strtoll(id, &e1, 0), v = strtoll(value, &e2, 0);
    if (*e1 || *e2 || cid < 0)
        return 2;
    odk_audio *a;
    int st = odk_audio_open(state_dir, uid, &a);
    if (st < 0)
        return fail(uid, st);
    st = odk_audio_set_control(a, (uint32_t)cid, v);
    odk_audio_close(a);
    return st < 0 ? fail("control", st) : 0;
}

int odkctl_audio(const char *state_dir, int argc, char **argv, bool json)
{
    if (argc == 0)
        return list(state_dir, json);
    if (strcmp(argv[0], "watch") == 0 && argc <= 3) {
        long count = argc == 3 ? strtol(argv[2], NULL, 10) : 0;
        return watch(state_dir, argc >= 2 ? argv[1] : NULL, count, json);
    }
    if (strcmp(argv[0], "control") == 0 && argc == 4) {
        int rc = control(state_dir, argv[1], argv[2], argv[3]);
        if (rc == 2)
            fprintf(stderr, "odkctl audio control: ID and VALUE are integers\n");
        return rc;
    }
    fprintf(stderr, "usage: odkctl audio [watch [UID] [COUNT] | control UID ID VALUE]\n");
    return 2;
}
