/* SPDX-License-Identifier: MIT */
/* The echo driver: a test driver that exercises every part of the data
 * path.  drivers/hello is the sample to read first; this one exists for
 * tests/integration, tests/stress and bench.
 *
 * It matches simulated devices with "model": "echo", registers a service,
 * and answers these user-client methods (echo_selectors.h names them):
 *   0  echo:   returns its input structure unchanged (any size)
 *   1  add:    two scalars in, their sum out
 *   2  count:  how many calls this instance has served (before this one)
 * and, to show (and test) the data path:
 *   3  add, asynchronously: completes on a later turn of the queue
 *   4  async statistics: completed, cancelled, still held
 *   5  hold: an async call that completes only when released (selector 6)
 *      or cancelled because the app went away
 *   6  release: completes every held call with status 0
 *   7  memory: scalar op + one memory range:
 *        op 0 fills an IN/INOUT range with the byte in scalar 1
 *        op 1 returns the sum of the bytes of the range
 *        op 2 adds 1 to every byte of an INOUT range
 *        op 3 tries odk_memory_write into the range and returns its status
 *   8  copy: one OUT range (the app's data) copied into one IN range (the
 *      storage pattern)
 *   9  read shared: the first 8 bytes of the driver's type-1 memory
 *  10  produce: scalars count, size: puts count records of size bytes into
 *      data queue 0 (record i starts with i as 8 bytes), waiting for room
 *      whenever the app falls behind
 *  11  dma: one IN range and scalars max segment size, alignment, flags
 *      (ODK_DMA_CONTIGUOUS): prepares the range for the device under those
 *      constraints, then plays the device, writing byte (i & 0xff) at
 *      offset i through the (simulated) IOMMU one segment at a time; returns
 *      the number of segments
 *  12  echo, asynchronously: completes at once, from inside the method
 * and, for registry events (tests/integration/test_events.py):
 *  13  set property: scalars count, first: sets EchoCounter on the service
 *      node to first, first+1, ... (count times, a property event each)
 *  14  churn: scalar count: publishes a child node of class EchoChurn and
 *      withdraws it, count times (a registered and a terminated event each)
 * Memory an app can map (copy_client_memory): type 0, 4 KiB the driver
 * wrote ("echo shared memory", IN: read-only for the app); type 1, 4 KiB
 * the app writes and the driver reads (OUT).
 * docs/memory.md explains the calls behind selectors 3 to 12. */
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "odk/driver.h"

#include "echo_selectors.h"

#define MAX_PENDING 65536 /* async calls held at once; more get ODK_E_BUSY */

/* The driver does little at start: plug_latency plugs and unplugs it
 * hundreds of times a second (bench/plug_latency.c), so what only some
 * tests use is made when first used, on the default queue: the tables of
 * held and pending async calls (1.5 MiB, one mmap) by selectors 3 and 5,
 * the data queue (a 1 MiB memfd, two eventfds and an fd source) by
 * selector 10 or the app mapping it.  Everything else is as a real
 * driver would have it after start. */
struct echo_state {
    uint64_t calls; /* touched only on the default queue: no lock needed */
    odk_driver *drv;
    void *tables;        /* pending, pending_sum and held, one block (echo_tables) */
    odk_async **pending; /* selector 3: completed on the next turn */
    uint64_t *pending_sum;
    size_t n_pending;
    bool flush_queued;
    odk_async **held; /* selector 5 */
    size_t n_held;
    uint64_t completed, cancelled;
    odk_memory *shared_out, *shared_in; /* the driver writes the first (IN), reads the second */
    odk_data_queue *events;
    odk_fd_source *space;
    uint64_t to_produce, produced;
    uint32_t record_size;
};

/* Puts records into the data queue until it is full or all are out. */
static void produce(struct echo_state *s)
{
    uint8_t rec[4096] = {0};
    while (s->produced < s->to_produce) {
        memcpy(rec, &s->produced, sizeof s->produced);
        if (odk_data_queue_enqueue(s->events, rec, s->record_size) != ODK_OK)
            return; /* full: on_space continues once the app made room */
        s->produced++;
    }
}

static void on_space(void *ctx, uint32_t revents)
{
    struct echo_state *s = ctx;
    odk_data_queue_ack_space(s->events);
    produce(s);
}

/* The tables of selectors 3 and 5, made at their first call. */
static int echo_tables(struct echo_state *s)
{
    if (s->tables)
        return ODK_OK;
    size_t n = MAX_PENDING;
    char *b = calloc(n, sizeof *s->pending + sizeof *s->pending_sum + sizeof *s->held);
    if (!b)
        return ODK_E_NOMEM;
    s->tables = b;
    s->pending = (odk_async **)(void *)b;
    s->pending_sum = (uint64_t *)(void *)(b + n * sizeof *s->pending);
    s->held = (odk_async **)(void *)(b + n * (sizeof *s->pending + sizeof *s->pending_sum));
    return ODK_OK;
}

/* Data queue 0 and the fd source that waits for room in it, made at the
 * first produce or when the app first maps it. */
static int echo_events(struct echo_state *s)
{
    if (s->events)
        return ODK_OK;
    if (!s->drv)
        return ODK_E_STATE;
    int st = odk_data_queue_create(1 << 20, &s->events);
    if (st == ODK_OK)
        st = odk_fd_source_create(odk_driver_queue(s->drv), odk_data_queue_space_fd(s->events),
                                  EPOLLIN, on_space, s, &s->space);
    if (st < 0) {
        odk_data_queue_free(s->events);
        s->events = NULL;
    }
    return st;
}

static int echo_start(odk_driver *drv)
{
    struct echo_state *s = odk_driver_state(drv);
    s->drv = drv;
    int st = odk_memory_create(4096, ODK_MEM_IN, &s->shared_out);
    if (st == ODK_OK)
        st = odk_memory_write(s->shared_out, 0, "echo shared memory", 19);
    if (st == ODK_OK)
        st = odk_memory_create(4096, ODK_MEM_OUT, &s->shared_in);
    if (st < 0)
        return st;
    const char *serial =
        odk_dict_get_string(odk_driver_provider_properties(drv), "serial", "(none)");
    odk_info("echo device %s ready", serial);
    odk_driver_set_property(drv, "EchoSerial", odk_value_new_string(serial));
    return odk_driver_register_service(drv);
}

static void echo_stop(odk_driver *drv)
{
    struct echo_state *s = odk_driver_state(drv);
    odk_info("stopping after %llu calls", (unsigned long long)s->calls);
    s->drv = NULL; /* no data queue is made from now on (echo_events) */
    if (s->space) {
        odk_fd_source_cancel(s->space, NULL, NULL);
        odk_release(s->space);
        s->space = NULL;
    }
}

static void echo_free(odk_driver *drv)
{
    struct echo_state *s = odk_driver_state(drv);
    /* Stop closed every client, so every async call was cancelled and
     * completed by its cancel handler: nothing is left to complete. */
    free(s->tables);
    odk_release(s->shared_out);
    odk_release(s->shared_in);
    odk_data_queue_free(s->events);
}

static int echo_echo(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct echo_state *s = odk_driver_state(drv);
    s->calls++;
    if (call->struct_in_len > call->struct_out_cap)
        return ODK_E_BAD_ARGUMENTS; /* the app left too little room for the echo */
    if (call->struct_in_len)
        memcpy(call->struct_out, call->struct_in, call->struct_in_len);
    call->struct_out_len = call->struct_in_len;
    return ODK_OK;
}

static int echo_add(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct echo_state *s = odk_driver_state(drv);
    s->calls++;
    call->scalar_out[0] = call->scalar_in[0] + call->scalar_in[1];
    return ODK_OK;
}

static int echo_set_property(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    int st = ODK_OK;
    for (uint64_t i = 0; st == ODK_OK && i < call->scalar_in[0]; i++)
        st = odk_driver_set_property(drv, "EchoCounter",
                                     odk_value_new_int((int64_t)(call->scalar_in[1] + i)));
    return st;
}

static int echo_churn(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    int st = ODK_OK;
    for (uint64_t i = 0; st == ODK_OK && i < call->scalar_in[0]; i++) {
        uint64_t id = 0;
        st = odk_driver_publish_node(drv, "EchoChurn", NULL, NULL, &id);
        if (st == ODK_OK)
            st = odk_driver_withdraw_node(drv, id);
    }
    return st;
}

static int echo_count(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct echo_state *s = odk_driver_state(drv);
    call->scalar_out[0] = s->calls++;
    return ODK_OK;
}

/* Completes the calls of selector 3 a turn after they arrived: by then
 * more have usually come in, so many are in flight at once. */
static void flush_pending(void *ctx)
{
    struct echo_state *s = ctx;
    s->flush_queued = false;
    for (size_t i = 0; i < s->n_pending; i++) {
        uint64_t sum = s->pending_sum[i];
        if (odk_async_complete(s->pending[i], ODK_OK, &sum, 1, NULL, 0) == ODK_OK)
            s->completed++;
    }
    s->n_pending = 0;
}

static void on_cancel(void *ctx, odk_async *a)
{
    struct echo_state *s = ctx;
    /* The app is gone: take the call out of our lists and complete it,
     * which only frees it now. */
    for (size_t i = 0; i < s->n_held; i++) {
        if (s->held[i] == a) {
            s->held[i] = s->held[--s->n_held];
            break;
        }
    }
    for (size_t i = 0; i < s->n_pending; i++) {
        if (s->pending[i] == a) {
            s->pending[i] = s->pending[--s->n_pending];
            s->pending_sum[i] = s->pending_sum[s->n_pending];
            break;
        }
    }
    s->cancelled++;
    odk_async_complete(a, ODK_E_CANCELLED, NULL, 0, NULL, 0);
}

static int echo_add_async(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct echo_state *s = odk_driver_state(drv);
    if (s->n_pending == MAX_PENDING)
        return ODK_E_BUSY;
    int st = echo_tables(s);
    if (st < 0)
        return st;
    odk_async_set_cancel_handler(call->async, on_cancel, s);
    s->pending_sum[s->n_pending] = call->scalar_in[0] + call->scalar_in[1];
    s->pending[s->n_pending++] = call->async;
    if (!s->flush_queued) {
        s->flush_queued = true;
        odk_queue_dispatch_async(odk_driver_queue(drv), flush_pending, s);
    }
    return ODK_OK;
}

static int echo_stats(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct echo_state *s = odk_driver_state(drv);
    call->scalar_out[0] = s->completed;
    call->scalar_out[1] = s->cancelled;
    call->scalar_out[2] = s->n_held + s->n_pending;
    return ODK_OK;
}

static int echo_hold(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct echo_state *s = odk_driver_state(drv);
    if (s->n_held == MAX_PENDING)
        return ODK_E_BUSY;
    int st = echo_tables(s);
    if (st < 0)
        return st;
    odk_async_set_cancel_handler(call->async, on_cancel, s);
    s->held[s->n_held++] = call->async;
    return ODK_OK;
}

static int echo_release(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct echo_state *s = odk_driver_state(drv);
    call->scalar_out[0] = s->n_held;
    while (s->n_held) {
        if (odk_async_complete(s->held[--s->n_held], ODK_OK, NULL, 0, NULL, 0) == ODK_OK)
            s->completed++;
    }
    return ODK_OK;
}

static int echo_memory(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    const odk_memory_range *r = &call->memory[0];
    uint8_t *p;
    uint64_t op = call->scalar_in[0];
    if (op == ECHO_MEM_TRY_WRITE) {
        call->scalar_out[0] = (uint64_t)(int64_t)odk_memory_write(r->memory, r->offset, "x", 1);
        return ODK_OK;
    }
    uint32_t access = op == ECHO_MEM_SUM ? ODK_MAP_READ : ODK_MAP_READ | ODK_MAP_WRITE;
    int st = odk_memory_map(r->memory, access, (void **)&p);
    if (st < 0)
        return st; /* a write into an OUT buffer: ODK_E_ACCESS */
    p += r->offset;
    uint64_t sum = 0;
    for (uint64_t i = 0; i < r->length; i++) {
        if (op == ECHO_MEM_FILL)
            p[i] = (uint8_t)call->scalar_in[1];
        else if (op == ECHO_MEM_SUM)
            sum += p[i];
        else if (op == ECHO_MEM_INCREMENT)
            p[i]++;
        else
            return ODK_E_INVALID;
    }
    call->scalar_out[0] = sum;
    return ODK_OK;
}

static int echo_copy(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    const odk_memory_range *in = &call->memory[0], *out = &call->memory[1];
    const uint8_t *src;
    uint8_t *dst;
    if (in->length != out->length)
        return ODK_E_INVALID;
    int st = odk_memory_map(in->memory, ODK_MAP_READ, (void **)&src);
    if (st == ODK_OK)
        st = odk_memory_map(out->memory, ODK_MAP_READ | ODK_MAP_WRITE, (void **)&dst);
    if (st == ODK_OK)
        memcpy(dst + out->offset, src + in->offset, in->length);
    return st;
}

static int echo_read_shared(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct echo_state *s = odk_driver_state(drv);
    return odk_memory_read(s->shared_in, 0, &call->scalar_out[0], 8);
}

static int echo_produce(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct echo_state *s = odk_driver_state(drv);
    if (call->scalar_in[1] < 8 || call->scalar_in[1] > 4096)
        return ODK_E_INVALID;
    int st = echo_events(s);
    if (st < 0)
        return st;
    s->record_size = (uint32_t)call->scalar_in[1];
    s->to_produce += call->scalar_in[0];
    produce(s);
    return ODK_OK;
}

static int echo_dma(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    const odk_memory_range *r = &call->memory[0];
    odk_dma_constraints c = {.address_bits = 48,
                             .max_segment_size = call->scalar_in[0],
                             .alignment = call->scalar_in[1],
                             .flags = (uint32_t)call->scalar_in[2]};
    odk_dma_command *cmd;
    uint64_t n = 0;
    int st = odk_dma_command_create(odk_driver_iommu(drv), &c, &cmd);
    if (st < 0)
        return st;
    st = odk_dma_command_prepare(cmd, r->memory, r->offset, r->length, &n);
    /* The device model: walks the segment list as a DMA engine would. */
    uint8_t chunk[4096];
    uint64_t done = 0;
    for (uint64_t i = 0; st == ODK_OK && i < n; i++) {
        odk_dma_segment seg;
        uint64_t got;
        st = odk_dma_command_segments(cmd, i, &seg, 1, &got);
        for (uint64_t off = 0; st == ODK_OK && off < seg.length; off += sizeof chunk) {
            uint64_t k = seg.length - off < sizeof chunk ? seg.length - off : sizeof chunk;
            for (uint64_t j = 0; j < k; j++)
                chunk[j] = (uint8_t)(done + off + j);
            st = odk_iommu_dma_write(odk_driver_iommu(drv), seg.address + off, chunk, k);
        }
        done += seg.length;
    }
    odk_dma_command_complete(cmd);
    odk_release(cmd);
    call->scalar_out[0] = n;
    return st;
}

static int echo_echo_async(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    /* Completing inside the method is allowed; it must then return ODK_OK. */
    odk_async_complete(call->async, ODK_OK, NULL, 0, call->struct_in, call->struct_in_len);
    return ODK_OK;
}

static int echo_client_data_queue(odk_driver *drv, odk_user_client *uc, uint32_t type,
                                  odk_data_queue **q)
{
    struct echo_state *s = odk_driver_state(drv);
    if (type != 0)
        return ODK_E_NOT_FOUND;
    int st = echo_events(s);
    *q = s->events;
    return st;
}

static int echo_client_memory(odk_driver *drv, odk_user_client *uc, uint32_t type, odk_memory **mem)
{
    struct echo_state *s = odk_driver_state(drv);
    if (type > 1)
        return ODK_E_NOT_FOUND;
    *mem = odk_retain(type == 0 ? s->shared_out : s->shared_in);
    return ODK_OK;
}

static const odk_method echo_methods[] = {
    [ECHO_ECHO] = {echo_echo, .scalar_in = 0, .scalar_out = 0, .struct_in = ODK_VARIABLE_SIZE,
                   .struct_out = ODK_VARIABLE_SIZE},
    [ECHO_ADD] = {echo_add, .scalar_in = 2, .scalar_out = 1, .struct_in = 0, .struct_out = 0},
    [ECHO_COUNT] = {echo_count, .scalar_in = 0, .scalar_out = 1, .struct_in = 0, .struct_out = 0},
    [ECHO_ADD_ASYNC] = {echo_add_async, .scalar_in = 2, .scalar_out = 1, .flags = ODK_METHOD_ASYNC},
    [ECHO_STATS] = {echo_stats, .scalar_out = 3},
    [ECHO_HOLD] = {echo_hold, .flags = ODK_METHOD_ASYNC},
    [ECHO_RELEASE] = {echo_release, .scalar_out = 1},
    [ECHO_MEMORY] = {echo_memory, .scalar_in = 2, .scalar_out = 1, .memory = 1},
    [ECHO_COPY] = {echo_copy, .memory = 2},
    [ECHO_READ_SHARED] = {echo_read_shared, .scalar_out = 1},
    [ECHO_PRODUCE] = {echo_produce, .scalar_in = 2},
    [ECHO_DMA] = {echo_dma, .scalar_in = 3, .scalar_out = 1, .memory = 1},
    [ECHO_SET_PROPERTY] = {echo_set_property, .scalar_in = 2},
    [ECHO_CHURN] = {echo_churn, .scalar_in = 1},
    [ECHO_ECHO_ASYNC] = {echo_echo_async, .struct_in = ODK_VARIABLE_SIZE,
                         .struct_out = ODK_VARIABLE_SIZE, .flags = ODK_METHOD_ASYNC},
};

static const odk_driver_class echo_class = {
    .name = "EchoDriver",
    .state_size = sizeof(struct echo_state),
    .start = echo_start,
    .stop = echo_stop,
    .free = echo_free,
    .copy_client_memory = echo_client_memory,
    .copy_client_data_queue = echo_client_data_queue,
    .methods = echo_methods,
    .n_methods = sizeof echo_methods / sizeof echo_methods[0],
};

ODK_DRIVER_CLASS(echo_class);
