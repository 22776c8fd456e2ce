/* SPDX-License-Identifier: MIT */
/* odk-capture — records frames from the capture card through pci-capture
 * and says how fast they came and whether every one was intact.
 *
 *   odk-capture [--state-dir DIR] [--node SERVICE] [--frames N]
 *               [--width W] [--height H] [--fps F] [--slots K]
 *               [--slot-bytes B] [--contiguous] [--check full|header]
 *               [--json]
 *   odk-capture [--state-dir DIR] [--node SERVICE] --edid FILE
 *
 * It maps the driver's frame buffer once (the card's DMA lands in those
 * very pages), takes one event per frame from the driver's data queue,
 * checks the frame in place (header, sequence, every pattern word unless
 * --check header), and gives the slot back through the release page (a call
 * only when the card starved: pci_capture.h).  Exit status 0 when N frames
 * came intact and in order, 1 otherwise (the driver gone, the card
 * stopped, a bad frame), 2 for bad usage.
 *
 * --edid FILE: no capture; the driver copies the card's EDID (128 bytes,
 * E-EDID 1.4) into a buffer of the app's of direction IN (ODK_MEM_IN:
 * data comes in to it), and the app writes those bytes to FILE (- for stdout) and
 * says what they hold on stderr. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "capture_card.h"
#include "odk/client.h"
#include "odk/memory.h"
#include "pci_capture.h"

/* How long without a frame before the app gives up (a hang guard: the
 * card's slowest rate is 1 frame a second). */
#define NO_FRAME_S 10

struct opts {
    const char *state_dir, *edid;
    uint64_t node, frames, width, height, fps, slots, slot_bytes;
    bool contiguous, full_check, json;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int usage(void)
{
    fprintf(stderr, "usage: odk-capture [--state-dir DIR] [--node SERVICE] [--frames N] "
                    "[--width W] [--height H]\n"
                    "                   [--fps F] [--slots K] [--slot-bytes B] [--contiguous] "
                    "[--check full|header] [--json]\n"
                    "       odk-capture [--state-dir DIR] [--node SERVICE] --edid FILE\n");
    return 2;
}

/* The first running pci-capture service. */
static int find_service(odk_client *c, uint64_t *node)
{
    odk_value *m = odk_value_new_dict(), *pm = odk_value_new_dict(), *nodes = NULL;
    if (!m || !pm) {
        odk_value_free(m);
        odk_value_free(pm);
        return ODK_E_NOMEM;
    }
    odk_dict_set_string(pm, "IOUserClass", "PciCapture");
    odk_dict_set(m, "IOPropertyMatch", pm);
    int st = odk_find_services(c, m, &nodes);
    odk_value_free(m);
    if (st < 0)
        return st;
    st = ODK_E_NOT_FOUND;
    if (odk_array_count(nodes)) {
        *node = (uint64_t)odk_dict_get_int(odk_array_get(nodes, 0), "id", 0);
        st = ODK_OK;
    }
    odk_value_free(nodes);
    return st;
}

/* --edid: the card's EDID through the driver into an IN buffer, then to
 * path. */
static int edid(odk_connection *conn, const char *path)
{
    odk_buffer *buf = NULL;
    uint32_t id = 0, n_out = 1;
    uint64_t written = 0;
    const char *what = "make a buffer";
    int st = odk_buffer_create(CAP_EDID_SIZE, &buf);
    if (st == ODK_OK)
        what = "register the buffer",
        st = odk_connection_register_buffer(conn, buf, ODK_MEM_IN, &id);
    odk_memory_ref ref = {.buffer = id, .offset = 0, .length = CAP_EDID_SIZE};
    if (st == ODK_OK)
        what = "read the EDID", st = odk_connection_call_memory(conn, CAPTURE_EDID, NULL, 0, NULL, 0,
                                                              &ref, 1, &written, &n_out, NULL, NULL);
    if (st == ODK_OK && (n_out != 1 || written != CAP_EDID_SIZE))
        st = ODK_E_PROTOCOL;
    if (st < 0) {
        fprintf(stderr, "odk-capture: cannot %s: %s\n", what, odk_strerror(st));
        odk_buffer_free(buf);
        return st;
    }
    const uint8_t *e = odk_buffer_data(buf);
    FILE *f = strcmp(path, "-") ? fopen(path, "wb") : stdout;
    if (!f || fwrite(e, 1, CAP_EDID_SIZE, f) != CAP_EDID_SIZE || (f != stdout && fclose(f))) {
        fprintf(stderr, "odk-capture: cannot write %s: %s\n", path, strerror(errno));
        odk_buffer_free(buf);
        return ODK_E_IO;
    }
    if (f == stdout)
        fflush(stdout);
    uint8_t sum = 0;
    for (unsigned i = 0; i < CAP_EDID_SIZE; i++)
        sum = (uint8_t)(sum + e[i]);
    unsigned mfg = (unsigned)e[8] << 8 | e[9];
    /* The first detailed timing: the preferred mode. */
    unsigned ha = e[56] | (e[58] >> 4) << 8, va = e[59] | (e[61] >> 4) << 8;
    fprintf(stderr, "odk-capture: EDID %u.%u from %c%c%c, product 0x%04x, preferred %ux%u, "
                    "checksum %s: %u bytes to %s\n",
            e[18], e[19], '@' + ((mfg >> 10) & 31), '@' + ((mfg >> 5) & 31), '@' + (mfg & 31),
            (unsigned)(e[10] | e[11] << 8), ha, va, sum ? "WRONG" : "right", CAP_EDID_SIZE, path);
    odk_buffer_free(buf);
    return ODK_OK;
}

int main(int argc, char **argv)
{
    struct opts o = {.frames = 100, .width = 640, .height = 480, .fps = 30, .slots = 16,
                     .full_check = true};
    static const struct option longopts[] = {
        {"state-dir", required_argument, NULL, 'd'}, {"node", required_argument, NULL, 'n'},
        {"frames", required_argument, NULL, 'f'},    {"width", required_argument, NULL, 'w'},
        {"height", required_argument, NULL, 'h'},    {"fps", required_argument, NULL, 'r'},
        {"slots", required_argument, NULL, 's'},     {"slot-bytes", required_argument, NULL, 'b'},
        {"contiguous", no_argument, NULL, 'c'},      {"check", required_argument, NULL, 'k'},
        {"json", no_argument, NULL, 'j'},            {"edid", required_argument, NULL, 'e'},
        {NULL, 0, NULL, 0}};
    for (int ch; (ch = getopt_long(argc, argv, "", longopts, NULL)) != -1;) {
        char *end = NULL;
        uint64_t v = optarg ? strtoull(optarg, &end, 0) : 0;
        bool num = optarg && *optarg && end && !*end;
        switch (ch) {
        case 'd': o.state_dir = optarg; break;
        case 'n': if (!num) return usage(); o.node = v; break;
        case 'f': if (!num || !v) return usage(); o.frames = v; break;
        case 'w': if (!num) return usage(); o.width = v; break;
        case 'h': if (!num) return usage(); o.height = v; break;
        case 'r': if (!num) return usage(); o.fps = v; break;
        case 's': if (!num) return usage(); o.slots = v; break;
        case 'b': if (!num) return usage(); o.slot_bytes = v; break;
        case 'c': o.contiguous = true; break;
        case 'k':
            if (strcmp(optarg, "full") && strcmp(optarg, "header"))
                return usage();
            o.full_check = strcmp(optarg, "full") == 0;
            break;
        case 'j': o.json = true; break;
        case 'e': o.edid = optarg; break;
        default: return usage();
        }
    }
    if (optind != argc)
        return usage();

    odk_client *client = NULL;
    odk_connection *conn = NULL;
    odk_buffer *mem = NULL, *rel = NULL;
    odk_data_queue *q = NULL;
    const char *what = "connect to odkd";
    int st = odk_client_open(o.state_dir, &client);
    if (st == ODK_OK && !o.node) {
        what = "find pci-capture";
        st = find_service(client, &o.node);
    }
    if (st == ODK_OK && o.edid) {
        what = "open the driver";
        st = odk_connection_open(client, o.node, 0, &conn);
        if (st == ODK_OK)
            st = edid(conn, o.edid);
        else
            fprintf(stderr, "odk-capture: cannot %s: %s\n", what, odk_strerror(st));
        odk_connection_close(conn);
        odk_client_close(client);
        return st < 0 ? 1 : 0;
    }
    uint64_t cfg[6] = {0}, in[6] = {o.width, o.height, o.fps, o.slots, o.slot_bytes,
                                    o.contiguous ? CAPTURE_CONTIGUOUS : 0};
    uint32_t n_cfg = 6;
    if (st == ODK_OK)
        what = "open the driver", st = odk_connection_open(client, o.node, 0, &conn);
    if (st == ODK_OK)
        what = "configure the card",
        st = odk_connection_call(conn, CAPTURE_CONFIGURE, in, 6, NULL, 0, cfg, &n_cfg, NULL, NULL);
    if (st == ODK_OK)
        what = "map the frame buffer", st = odk_connection_map_memory(conn, 0, &mem);
    if (st == ODK_OK)
        what = "map the release page", st = odk_connection_map_memory(conn, 1, &rel);
    if (st == ODK_OK)
        what = "map the event queue", st = odk_connection_map_data_queue(conn, 0, &q);
    if (st == ODK_OK && odk_buffer_length(rel) < sizeof(struct capture_release_page)) {
        what = "map the release page";
        st = ODK_E_PROTOCOL;
    }
    if (st == ODK_OK && odk_buffer_length(mem) < cfg[2]) {
        what = "map the frame buffer";
        st = ODK_E_PROTOCOL;
    }
    if (st == ODK_OK)
        what = "start the card",
        st = odk_connection_call(conn, CAPTURE_START, NULL, 0, NULL, 0, NULL, NULL, NULL, NULL);
    if (st < 0) {
        fprintf(stderr, "odk-capture: cannot %s: %s\n", what, odk_strerror(st));
        goto out;
    }

    const uint8_t *frames = odk_buffer_data(mem);
    uint64_t frame_bytes = cfg[0], stride = cfg[1];
    uint64_t got = 0, bad = 0, out_of_order = 0, next_seq = 0, bytes = 0;
    double t0 = now_s(), last = t0, t_end = t0;
    const char *failure = NULL;
    while (got < o.frames && !failure) {
        struct capture_event e;
        uint32_t len = 0;
        st = odk_data_queue_dequeue(q, &e, sizeof e, &len);
        if (st == ODK_E_AGAIN) {
            if (odk_data_queue_wait(q, 250) == ODK_OK)
                continue;
            /* Quiet: is the driver still there? */
            uint64_t c[8];
            uint32_t n = 8;
            st = odk_connection_call(conn, CAPTURE_COUNTERS, NULL, 0, NULL, 0, c, &n, NULL, NULL);
            if (st < 0)
                failure = st == ODK_E_GONE ? "the capture card went away"
                                           : "the driver stopped answering";
            else if (now_s() - last > NO_FRAME_S)
                failure = "no frame came for 10 s", st = ODK_E_TIMEOUT;
            continue;
        }
        if (st < 0 || len != sizeof e) {
            failure = "the event queue is broken";
            st = st < 0 ? st : ODK_E_PROTOCOL;
            break;
        }
        if (e.status == CAPTURE_EVENT_ERROR) {
            fprintf(stderr, "odk-capture: the card stopped on an error at 0x%llx\n",
                    (unsigned long long)e.sequence);
            failure = "the card stopped", st = ODK_E_IO;
            break;
        }
        last = now_s();
        if (e.sequence != next_seq)
            out_of_order++;
        next_seq = e.sequence + 1;
        const uint8_t *f = frames + (uint64_t)e.slot * stride;
        struct cap_frame_header h;
        bool ok = e.slot < o.slots && e.status == CAPTURE_EVENT_FRAME && e.bytes == frame_bytes;
        if (ok) {
            memcpy(&h, f, sizeof h);
            ok = h.magic == CAP_FRAME_MAGIC && h.sequence == e.sequence && h.width == o.width &&
                 h.height == o.height;
        }
        if (ok && o.full_check)
            ok = cap_check((const uint32_t *)(const void *)f, 0, frame_bytes / 4, e.sequence) ==
                 UINT64_MAX;
        if (!ok && bad++ < 5)
            fprintf(stderr, "odk-capture: frame %llu in slot %u is not what the card sent\n",
                    (unsigned long long)e.sequence, e.slot);
        got++;
        bytes += e.bytes;
        t_end = last;
        /* The slot back through the release page; a call only when the
         * card starved (pci_capture.h). */
        uint64_t zero = 0;
        st = ODK_OK;
        if (capture_release_store(odk_buffer_data(rel), got))
            st = odk_connection_call(conn, CAPTURE_RELEASE, &zero, 1, NULL, 0, NULL, NULL, NULL,
                                     NULL);
        if (st < 0)
            failure = st == ODK_E_GONE ? "the capture card went away"
                                       : "the driver did not take the slot back";
    }
    uint64_t c[8] = {0};
    uint32_t n = 8;
    int cst = odk_connection_call(conn, CAPTURE_STOP, NULL, 0, NULL, 0, NULL, NULL, NULL, NULL);
    if (cst == ODK_OK)
        cst = odk_connection_call(conn, CAPTURE_COUNTERS, NULL, 0, NULL, 0, c, &n, NULL, NULL);
    double secs = t_end > t0 ? t_end - t0 : 0;
    double rate = secs > 0 && got > 1 ? (double)(got - 1) / secs : 0;
    double bps = secs > 0 && got > 1 ? (double)(bytes - bytes / got) / secs : 0;
    if (o.json)
        printf("{\"frames\": %llu, \"width\": %llu, \"height\": %llu, \"frame_bytes\": %llu, "
               "\"total_bytes\": %llu, \"segments\": %llu, \"seconds\": %.3f, "
               "\"frames_per_s\": %.2f, \"bytes_per_s\": %.0f, \"dropped\": %llu, \"bad\": %llu, "
               "\"out_of_order\": %llu, \"error\": %s%s%s}\n",
               (unsigned long long)got, (unsigned long long)o.width, (unsigned long long)o.height,
               (unsigned long long)frame_bytes, (unsigned long long)cfg[2],
               (unsigned long long)cfg[3], secs, rate, bps, (unsigned long long)c[2],
               (unsigned long long)bad, (unsigned long long)out_of_order, failure ? "\"" : "",
               failure ? failure : "null", failure ? "\"" : "");
    else
        printf("odk-capture: %llu frames of %llux%llu in %.2f s: %.1f frames/s, %.1f MB/s; "
               "dropped %llu, bad %llu, out of order %llu\n",
               (unsigned long long)got, (unsigned long long)o.width, (unsigned long long)o.height,
               secs, rate, bps / 1e6, (unsigned long long)c[2], (unsigned long long)bad,
               (unsigned long long)out_of_order);
    if (failure) {
        fprintf(stderr, "odk-capture: %s after %llu frames: %s\n", failure,
                (unsigned long long)got, odk_strerror(st));
        st = st < 0 ? st : ODK_E_IO;
    } else if (bad || out_of_order) {
        st = ODK_E_IO;
    } else {
        st = ODK_OK;
    }
out:
    odk_data_queue_free(q);
    odk_buffer_free(mem);
    odk_buffer_free(rel);
    odk_connection_close(conn);
    odk_client_close(client);
    return st < 0 ? 1 : 0;
}
