/* SPDX-License-Identifier: MIT */
/* pci_capture — frames per second and bytes per second from the simulated
 * capture card into an app, through the whole path (the card's DMA through
 * the driver's IOMMU into the frame buffer the app maps, one MSI-X
 * interrupt and one data-queue event per frame, the slot given back through
 * the driver's release page, with a call only when the card starved), against a peer: a plain process that writes the same frames into
 * a memfd shared with the same reader and says so over a pipe, and against
 * a memcpy of the same bytes (issue 10's yardstick): the reader copies
 * each frame from frames made beforehand into its slot, then checks it.
 *
 * Both sides run with 4 slots and check every word of every frame in the
 * reader's mapping (cap_check); a round fails, printing no number, when a
 * frame is missing, out of order or wrong.  Rounds alternate ours and the
 * peer; each side stalls while the other runs (nobody gives its slots back),
 * so a round first takes the frames made during the pause, untimed.
 *
 *   pci_capture STATE-DIR SERVICE-NODE     (CAPTURE_FRAMES: frames a round;
 *                                           CAPTURE_RELEASE_CALLS=1: each slot
 *                                           back with a call, as before the page) */
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "capture_card.h"
#include "odk/client.h"
#include "pci_capture.h"

#define ROUNDS 5
#define SLOTS 4u
#define WIDTH 1920u
#define HEIGHT 1080u
#define FRAME ((uint64_t)WIDTH * HEIGHT * 4)

/* Where a side's frames come from: take the next one (slot, sequence) and
 * give a slot back. */
struct side {
    const char *name;
    const uint8_t *frames;
    uint64_t stride, next_seq;
    int (*take)(struct side *s, uint32_t *slot, uint64_t *seq);
    int (*give_back)(struct side *s);
    /* ours */
    odk_connection *conn;
    odk_data_queue *q;
    struct capture_release_page *rel;
    uint64_t released;
    uint64_t release_calls;
    bool call_each; /* every slot back with a call, not through the page */
    /* the peer */
    int ready_fd, free_fd;
    /* memcpy: frames made beforehand (sequence k % SLOTS), copied per take */
    const uint8_t *src;
    uint8_t *dst;
    uint64_t made;
    uint64_t check_mod; /* checks sequence seq % check_mod (0: seq) */
};

static int ours_take(struct side *s, uint32_t *slot, uint64_t *seq)
{
    struct capture_event e;
    uint32_t len = 0;
    int st;
    while ((st = odk_data_queue_dequeue(s->q, &e, sizeof e, &len)) == ODK_E_AGAIN)
        if ((st = odk_data_queue_wait(s->q, 10000)) < 0)
            return st;
    if (st < 0 || len != sizeof e || e.status != CAPTURE_EVENT_FRAME || e.bytes != FRAME)
        return st < 0 ? st : ODK_E_PROTOCOL;
    *slot = e.slot;
    *seq = e.sequence;
    return ODK_OK;
}

static int ours_give_back(struct side *s)
{
    if (s->call_each) { /* CAPTURE_RELEASE_CALLS=1 */
        uint64_t one = 1;
        s->released++;
        s->release_calls++;
        return odk_connection_call(s->conn, CAPTURE_RELEASE, &one, 1, NULL, 0, NULL, NULL, NULL,
                                   NULL);
    }
    if (!capture_release_store(s->rel, ++s->released))
        return ODK_OK;
    uint64_t zero = 0; /* the card starved: the driver looks at the page now */
    s->release_calls++;
    return odk_connection_call(s->conn, CAPTURE_RELEASE, &zero, 1, NULL, 0, NULL, NULL, NULL,
                               NULL);
}

struct peer_msg {
    uint32_t slot;
    uint64_t seq;
};

static int peer_take(struct side *s, uint32_t *slot, uint64_t *seq)
{
    struct peer_msg m;
    if (read(s->ready_fd, &m, sizeof m) != sizeof m)
        return ODK_E_IO;
    *slot = m.slot;
    *seq = m.seq;
    return ODK_OK;
}

static int peer_give_back(struct side *s)
{
    char one = 1;
    return write(s->free_fd, &one, 1) == 1 ? ODK_OK : ODK_E_IO;
}

/* The peer's producer: the card's frames, made by the CPU straight into
 * the shared memfd, one per free slot. */
static void producer(uint8_t *frames, int free_fd, int ready_fd)
{
    uint32_t credits = SLOTS;
    for (uint64_t seq = 0;; seq++) {
        char c;
        while (!credits) {
            if (read(free_fd, &c, 1) != 1)
                _exit(0);
            credits++;
        }
        credits--;
        uint32_t slot = (uint32_t)(seq % SLOTS);
        struct cap_frame_header h = {CAP_FRAME_MAGIC, WIDTH, HEIGHT, CAP_FORMAT_BGRA, seq,
                                     bench_now_ns()};
        cap_fill_dma((uint32_t *)(void *)(frames + slot * FRAME), 0, FRAME / 4, seq, &h);
        struct peer_msg m = {slot, seq};
        if (write(ready_fd, &m, sizeof m) != sizeof m)
            _exit(0);
    }
}

static int memcpy_take(struct side *s, uint32_t *slot, uint64_t *seq)
{
    *seq = s->made++;
    *slot = (uint32_t)(*seq % SLOTS);
    memcpy(s->dst + (uint64_t)*slot * FRAME, s->src + (*seq % SLOTS) * FRAME, FRAME);
    return ODK_OK;
}

static int memcpy_give_back(struct side *s)
{
    (void)s;
    return ODK_OK;
}

/* One frame taken, checked in the reader's mapping, given back. */
static int one_frame(struct side *s)
{
    uint32_t slot = 0;
    uint64_t seq = 0;
    int st = s->take(s, &slot, &seq);
    if (st < 0) {
        fprintf(stderr, "pci_capture: %s: no frame: %s\n", s->name, odk_strerror(st));
        return -1;
    }
    const uint8_t *f = s->frames + (uint64_t)slot * s->stride;
    struct cap_frame_header h;
    memcpy(&h, f, sizeof h);
    uint64_t want = s->check_mod ? seq % s->check_mod : seq;
    uint64_t bad = cap_check((const uint32_t *)(const void *)f, 0, FRAME / 4, want);
    if (slot >= SLOTS || seq != s->next_seq || h.magic != CAP_FRAME_MAGIC || h.sequence != want ||
        bad != UINT64_MAX) {
        fprintf(stderr, "pci_capture: %s: frame %llu (want %llu) in slot %u is wrong (word %llu)\n",
                s->name, (unsigned long long)seq, (unsigned long long)s->next_seq, slot,
                (unsigned long long)bad);
        return -1;
    }
    s->next_seq = seq + 1;
    return s->give_back(s) < 0 ? -1 : 0;
}

/* Seconds for n frames, after the ones made while this side waited. */
static double round_s(struct side *s, unsigned n)
{
    for (unsigned i = 0; i < SLOTS; i++)
        if (one_frame(s) < 0)
            return -1;
    double t0 = bench_now_s();
    for (unsigned i = 0; i < n; i++)
        if (one_frame(s) < 0)
            return -1;
    return bench_now_s() - t0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: pci_capture STATE-DIR SERVICE-NODE\n");
        return 2;
    }
    const char *env = getenv("CAPTURE_FRAMES");
    unsigned n = env ? (unsigned)strtoul(env, NULL, 0) : 60;
    if (!n)
        n = 60;
    signal(SIGPIPE, SIG_IGN);
    odk_client *c = NULL;
    struct side ours = {.name = "ours", .take = ours_take, .give_back = ours_give_back};
    struct side peer = {.name = "peer", .take = peer_take, .give_back = peer_give_back,
                        .stride = FRAME};
    odk_buffer *mem = NULL, *rel = NULL;
    uint64_t in[6] = {WIDTH, HEIGHT, 0, SLOTS, 0, 0}, cfg[6];
    uint32_t n_cfg = 6;
    int st = odk_client_open(argv[1], &c);
    if (st == ODK_OK)
        st = odk_connection_open(c, strtoull(argv[2], NULL, 0), 0, &ours.conn);
    if (st == ODK_OK)
        st = odk_connection_call(ours.conn, CAPTURE_CONFIGURE, in, 6, NULL, 0, cfg, &n_cfg, NULL,
                                 NULL);
    if (st == ODK_OK)
        st = odk_connection_map_memory(ours.conn, 0, &mem);
    if (st == ODK_OK)
        st = odk_connection_map_memory(ours.conn, 1, &rel);
    if (st == ODK_OK && odk_buffer_length(rel) < sizeof(struct capture_release_page))
        st = ODK_E_PROTOCOL;
    if (st == ODK_OK)
        st = odk_connection_map_data_queue(ours.conn, 0, &ours.q);
    if (st == ODK_OK)
        st = odk_connection_call(ours.conn, CAPTURE_START, NULL, 0, NULL, 0, NULL, NULL, NULL,
                                 NULL);
    if (st < 0) {
        fprintf(stderr, "pci_capture: cannot run the card: %s\n", odk_strerror(st));
        return 1;
    }
    ours.frames = odk_buffer_data(mem);
    const char *calls = getenv("CAPTURE_RELEASE_CALLS");
    ours.call_each = calls && strcmp(calls, "1") == 0;
    ours.rel = odk_buffer_data(rel);
    ours.stride = cfg[1];

    int mfd = memfd_create("pci-capture-peer", MFD_CLOEXEC);
    int to_peer[2], from_peer[2];
    if (mfd < 0 || ftruncate(mfd, (off_t)(SLOTS * FRAME)) < 0 || pipe(to_peer) < 0 ||
        pipe(from_peer) < 0) {
        perror("pci_capture: peer");
        return 1;
    }
    uint8_t *shared = mmap(NULL, SLOTS * FRAME, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    if (shared == MAP_FAILED) {
        perror("pci_capture: mmap");
        return 1;
    }
    pid_t child = fork();
    if (child == 0) {
        close(to_peer[1]);
        close(from_peer[0]);
        producer(shared, to_peer[0], from_peer[1]);
    }
    close(to_peer[0]);
    close(from_peer[1]);
    peer.frames = shared;
    peer.free_fd = to_peer[1];
    peer.ready_fd = from_peer[0];

    struct side mc = {.name = "memcpy", .take = memcpy_take, .give_back = memcpy_give_back,
                      .stride = FRAME, .check_mod = SLOTS};
    uint8_t *src = malloc(SLOTS * FRAME), *dst = malloc(SLOTS * FRAME);
    if (!src || !dst) {
        perror("pci_capture: memcpy side");
        return 1;
    }
    for (uint64_t k = 0; k < SLOTS; k++) {
        struct cap_frame_header h = {CAP_FRAME_MAGIC, WIDTH, HEIGHT, CAP_FORMAT_BGRA, k, 0};
        cap_fill((uint32_t *)(void *)(src + k * FRAME), 0, FRAME / 4, k, &h);
    }
    memset(dst, 0, SLOTS * FRAME);
    mc.src = src;
    mc.dst = dst;
    mc.frames = dst;

    double fps[3][ROUNDS], gbs[3][ROUNDS];
    int rc = 0;
    for (int r = 0; r < ROUNDS && !rc; r++) {
        struct side *sides[3] = {&ours, &peer, &mc};
        for (int k = 0; k < 3; k++) {
            double s = round_s(sides[k], n);
            if (s <= 0) {
                rc = 1;
                break;
            }
            fps[k][r] = n / s;
            gbs[k][r] = (double)n * FRAME / s / 1e9;
        }
    }
    odk_connection_call(ours.conn, CAPTURE_STOP, NULL, 0, NULL, 0, NULL, NULL, NULL, NULL);
    close(peer.free_fd);
    close(peer.ready_fd);
    kill(child, SIGTERM);
    waitpid(child, NULL, 0);
    if (rc) {
        fprintf(stderr, "pci_capture: FAILED: no numbers reported\n");
        return 1;
    }
    printf("pci_capture: %d rounds of %u %ux%u BGRA frames (%llu bytes each), every word "
           "checked in the app's mapping, 4 slots; %llu of %llu slots given back with a call "
           "(%s)\n",
           ROUNDS, n, WIDTH, HEIGHT, (unsigned long long)FRAME,
           (unsigned long long)ours.release_calls, (unsigned long long)ours.released,
           ours.call_each ? "CAPTURE_RELEASE_CALLS=1" : "the card starved; the rest through the "
                                                        "release page");
    bench_report("pci_capture", "memfd-producer", "%.1f", "frames/s", BENCH_HIGHER_IS_BETTER,
                 "ratio", fps[0], fps[1], ROUNDS);
    bench_report("pci_capture", "memfd-producer", "%.2f", "GB/s", BENCH_HIGHER_IS_BETTER,
                 "ratio", gbs[0], gbs[1], ROUNDS);
    bench_report("pci_capture", "memcpy", "%.2f", "GB/s", BENCH_HIGHER_IS_BETTER, "ratio",
                 gbs[0], gbs[2], ROUNDS);
    free(src);
    free(dst);
    odk_data_queue_free(ours.q);
    odk_buffer_free(mem);
    odk_buffer_free(rel);
    odk_connection_close(ours.conn);
    odk_client_close(c);
    return 0;
}
