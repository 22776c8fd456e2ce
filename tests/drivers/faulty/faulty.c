/* SPDX-License-Identifier: MIT */
/* The faulty driver: a test bundle that misbehaves on purpose, so tests
 * can check what odkd does with a driver that crashes, hangs, spins, leaks
 * or floods its log.
 *
 * It matches simulated devices with "model": "faulty".  The node's "fault"
 * property picks the misbehaviour at start; selector 1 changes it later.
 * Faults (README.md has the table):
 *   none            everything works (the default)
 *   crash-in-start  NULL dereference in start        crash-on-call  ... in selector 0
 *   abort-on-call   abort() in selector 0            exit-in-start  exit(3) in start
 *   hang-in-start / hang-in-stop / hang-in-power / hang-on-call: sleep forever there
 *   slow-MS         start, stop, set_power_state and selector 0 sleep MS ms, then work
 *   leak            selector 0 maps 8 MiB, resident at once, it never frees
 *   spin            selector 0 spins the CPU forever
 *   log-flood       selector 0 starts logging as fast as it can, forever (on a
 *                   queue of its own, so the default queue stays free)
 * User-client methods (faulty_selectors.h names them):
 *   0  operate:     scalar out: operate calls so far (this one included);
 *                   does the fault's thing for the *-on-call, leak, spin,
 *                   log-flood and slow faults
 *   1  set fault:   structure in: the fault's name; ODK_E_INVALID if unknown
 *   2  ping:        one scalar in, that scalar + 1 out; always works
 *   3  power state: scalar out: the last state set_power_state was given
 *                   (ODK_POWER_ON until the first change)
 * Evidence that a fault fired, for tests: the crash, hang and spin faults
 * log a line just before ("dereferencing NULL", "aborting", "hanging in
 * WHERE", "spinning", "exiting with status 3"), slow-MS logs "slept MS ms
 * in WHERE" after each sleep, leak "leaked N MiB so far", log-flood
 * "flooding the log" when the flood starts.
 * Each lifecycle step (start, stop, power state) logs one info line ending
 * in "at NS" (CLOCK_MONOTONIC), so a test can order the steps of several
 * instances.  A node property "child": {...} makes start publish a
 * FaultyChildDevice node (an OdkSimDevice) with those properties below the
 * service, so a test gets a tree of devices. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "odk/driver.h"

#include "faulty_selectors.h"

#define FAULT_NAME_MAX 64
#define LEAK_CHUNK (8u << 20) /* bytes selector 0 leaks per call under "leak" */
#define SLOW_MAX_MS 600000    /* the largest slow-MS accepted: ten minutes */

/* A fault before any start: with ODK_TEST_FAULTY_CRASH_PRIMED set in
 * odkd's environment (its hosts inherit it), the shared object's
 * constructor crashes in a host primed for the bundle (named odk-primed
 * while it loads it: src/host/main.c) and in no other, so a test sees a
 * failed prime and a plain start of the same bundle.  It logs
 * "crashing in the constructor" first. */
__attribute__((constructor)) static void faulty_loaded(void)
{
    char name[17] = "";
    if (!getenv("ODK_TEST_FAULTY_CRASH_PRIMED") || prctl(PR_GET_NAME, name, 0, 0, 0) < 0 ||
        strcmp(name, "odk-primed") != 0)
        return;
    odk_info("crashing in the constructor (ODK_TEST_FAULTY_CRASH_PRIMED, a primed host)");
    *(volatile int *)NULL = 1;
}

enum fault {
    FAULT_NONE,
    FAULT_CRASH_IN_START,
    FAULT_CRASH_ON_CALL,
    FAULT_ABORT_ON_CALL,
    FAULT_EXIT_IN_START,
    FAULT_HANG_IN_START,
    FAULT_HANG_IN_STOP,
    FAULT_HANG_IN_POWER,
    FAULT_HANG_ON_CALL,
    FAULT_SLOW,
    FAULT_LEAK,
    FAULT_SPIN,
    FAULT_LOG_FLOOD,
};

static const char *const fault_names[] = {
    [FAULT_NONE] = "none",
    [FAULT_CRASH_IN_START] = "crash-in-start",
    [FAULT_CRASH_ON_CALL] = "crash-on-call",
    [FAULT_ABORT_ON_CALL] = "abort-on-call",
    [FAULT_EXIT_IN_START] = "exit-in-start",
    [FAULT_HANG_IN_START] = "hang-in-start",
    [FAULT_HANG_IN_STOP] = "hang-in-stop",
    [FAULT_HANG_IN_POWER] = "hang-in-power",
    [FAULT_HANG_ON_CALL] = "hang-on-call",
    [FAULT_SLOW] = "slow-MS",
    [FAULT_LEAK] = "leak",
    [FAULT_SPIN] = "spin",
    [FAULT_LOG_FLOOD] = "log-flood",
};

struct faulty {
    enum fault fault;
    uint32_t slow_ms; /* for FAULT_SLOW */
    uint64_t operations;
    uint32_t power_state;
    odk_queue *flood_queue; /* created by the first log-flood operate */
    _Atomic bool flood_stop;
    uint64_t flooded;
};

/* The leaked chunks stay reachable from here (LeakSanitizer does not
 * track mmap anyway): the point is the growing RSS, which odkd watches,
 * not a leak report. */
static void *leaked;

/* The misbehaviours are exported functions (not static, not inlined) so a
 * crash backtrace names them: backtrace_symbols only sees dynamic symbols. */
void faulty_null_deref(void);
void faulty_abort(void);
void faulty_hang(const char *where);
void faulty_spin(void);
void faulty_sleep_ms(uint32_t ms);

static int *volatile null_pointer; /* volatile: the compiler cannot see it is NULL */

/* UBSan (make asan) would report the store before the SIGSEGV; the crash,
 * not a sanitizer report, is what the tests look for. */
__attribute__((noinline, no_sanitize("undefined"))) void faulty_null_deref(void)
{
    odk_info("dereferencing NULL");
    *null_pointer = 42;
}

__attribute__((noinline)) void faulty_abort(void)
{
    odk_info("aborting");
    abort();
}

__attribute__((noinline)) void faulty_hang(const char *where)
{
    odk_info("hanging in %s", where);
    for (;;)
        sleep(3600);
}

__attribute__((noinline)) void faulty_spin(void)
{
    odk_info("spinning");
    volatile uint64_t n = 0;
    for (;;)
        n++;
}

__attribute__((noinline)) void faulty_sleep_ms(uint32_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* The slow fault's evidence: a line once the sleep is over, so a test can
 * tell a step that slept from one that ignored the fault. */
static void slow_step(uint32_t ms, const char *where)
{
    faulty_sleep_ms(ms);
    odk_info("slept %u ms in %s", ms, where);
}

/* CLOCK_MONOTONIC is one clock for every process of the machine, so the
 * "at" stamps of lifecycle lines order the steps of several instances. */
static unsigned long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

/* Parses a fault name (len bytes, not necessarily terminated).  ODK_E_INVALID
 * when it names no fault. */
static int fault_parse(const char *name, size_t len, enum fault *fault, uint32_t *slow_ms)
{
    if (len > 5 && memcmp(name, "slow-", 5) == 0) {
        uint64_t ms = 0;
        for (size_t i = 5; i < len; i++) {
            if (name[i] < '0' || name[i] > '9')
                return ODK_E_INVALID;
            ms = ms * 10 + (uint64_t)(name[i] - '0');
            if (ms > SLOW_MAX_MS)
                return ODK_E_INVALID;
        }
        *fault = FAULT_SLOW;
        *slow_ms = (uint32_t)ms;
        return ODK_OK;
    }
    for (size_t f = 0; f < sizeof fault_names / sizeof fault_names[0]; f++) {
        if (f != FAULT_SLOW && strlen(fault_names[f]) == len &&
            memcmp(fault_names[f], name, len) == 0) {
            *fault = (enum fault)f;
            *slow_ms = 0;
            return ODK_OK;
        }
    }
    return ODK_E_INVALID;
}

static const char *fault_name(const struct faulty *s, char *buf, size_t len)
{
    if (s->fault != FAULT_SLOW)
        return fault_names[s->fault];
    snprintf(buf, len, "slow-%u", s->slow_ms);
    return buf;
}

static int faulty_start(odk_driver *drv)
{
    struct faulty *s = odk_driver_state(drv);
    s->power_state = ODK_POWER_ON;
    const char *name = odk_dict_get_string(odk_driver_provider_properties(drv), "fault", "none");
    if (fault_parse(name, strlen(name), &s->fault, &s->slow_ms) < 0) {
        odk_error("start: unknown fault '%s'", name);
        return ODK_E_INVALID;
    }
    odk_info("start: fault %s at %llu", name, now_ns());
    switch (s->fault) {
    case FAULT_CRASH_IN_START:
        faulty_null_deref();
        break;
    case FAULT_EXIT_IN_START:
        odk_info("exiting with status 3");
        exit(3);
    case FAULT_HANG_IN_START:
        faulty_hang("start");
        break;
    case FAULT_SLOW:
        slow_step(s->slow_ms, "start");
        break;
    default:
        break;
    }
    odk_driver_set_property(drv, "FaultyFault", odk_value_new_string(name));
    int st = odk_driver_register_service(drv);
    if (st < 0)
        return st;
    /* "child": {properties}: publish a device below this one, so a test
     * gets a tree (another faulty instance matches it when its model is
     * "faulty").  Its class derives from OdkSimDevice for matching. */
    const odk_value *child = odk_dict_get(odk_driver_provider_properties(drv), "child");
    if (child && odk_value_type(child) == ODK_TYPE_DICT) {
        uint64_t id;
        st = odk_driver_publish_node(drv, "FaultyChildDevice", "OdkSimDevice",
                                     odk_value_copy(child), &id);
        if (st < 0)
            return st;
        odk_info("published child device %llu", (unsigned long long)id);
    }
    return ODK_OK;
}

static void flood(void *ctx);
static void flood_done(void *ctx);

static void faulty_stop(odk_driver *drv)
{
    struct faulty *s = odk_driver_state(drv);
    odk_info("stop after %llu operations at %llu", (unsigned long long)s->operations, now_ns());
    if (s->fault == FAULT_HANG_IN_STOP)
        faulty_hang("stop");
    if (s->fault == FAULT_SLOW)
        slow_step(s->slow_ms, "stop");
    if (s->flood_queue) {
        /* Ends the flood and waits for it to return: it reads s. */
        atomic_store(&s->flood_stop, true);
        odk_queue_dispatch_sync(s->flood_queue, flood_done, s);
        odk_queue_cancel(s->flood_queue, NULL, NULL);
        odk_release(s->flood_queue);
        s->flood_queue = NULL;
    }
}

static int faulty_set_power_state(odk_driver *drv, uint32_t state)
{
    struct faulty *s = odk_driver_state(drv);
    odk_info("power state %u (%s) at %llu", state, state == ODK_POWER_OFF ? "off" : "on", now_ns());
    s->power_state = state;
    if (s->fault == FAULT_HANG_IN_POWER)
        faulty_hang("set_power_state");
    if (s->fault == FAULT_SLOW)
        slow_step(s->slow_ms, "set_power_state");
    return ODK_OK;
}

/* Runs on the flood queue until stop: the default queue stays free, so
 * the host answers calls (and its watchdog stays quiet) while it floods. */
static void flood(void *ctx)
{
    struct faulty *s = ctx;
    while (!atomic_load(&s->flood_stop))
        odk_info("flood line %llu: the quick brown fox jumps over the lazy dog",
                 (unsigned long long)s->flooded++);
}

static void flood_done(void *ctx)
{
    struct faulty *s = ctx;
    odk_info("flood ended after %llu lines", (unsigned long long)s->flooded);
}

static int faulty_operate(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct faulty *s = odk_driver_state(drv);
    call->scalar_out[0] = ++s->operations;
    switch (s->fault) {
    case FAULT_CRASH_ON_CALL:
        faulty_null_deref();
        break;
    case FAULT_ABORT_ON_CALL:
        faulty_abort();
        break;
    case FAULT_HANG_ON_CALL:
        faulty_hang("operate");
        break;
    case FAULT_SPIN:
        faulty_spin();
        break;
    case FAULT_SLOW:
        slow_step(s->slow_ms, "operate");
        break;
    case FAULT_LEAK: {
        /* Resident at once (it counts in the RSS odkd watches), with one
         * system call rather than a page fault per page: touching 8 MiB
         * page by page costs ~35 ms of CPU on the CI machines (a VM where
         * every fault is dear) against ~2 ms populated, and a slow leak
         * call could outlast the call deadline before the memory limit
         * stopped the driver. */
        void **chunk = mmap(NULL, LEAK_CHUNK, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        if (chunk == MAP_FAILED)
            return ODK_E_NOMEM;
        chunk[0] = leaked;
        leaked = chunk;
        odk_info("leaked %llu MiB so far",
                 (unsigned long long)(s->operations * (LEAK_CHUNK >> 20)));
        break;
    }
    case FAULT_LOG_FLOOD:
        if (!s->flood_queue) {
            int st = odk_queue_create("faulty-flood", &s->flood_queue);
            if (st < 0)
                return st;
            odk_info("flooding the log");
            st = odk_queue_dispatch_async(s->flood_queue, flood, s);
            if (st < 0)
                return st;
        }
        break;
    default:
        break;
    }
    return ODK_OK;
}

static int faulty_set_fault(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct faulty *s = odk_driver_state(drv);
    enum fault fault;
    uint32_t slow_ms;
    size_t len = call->struct_in_len;
    /* A terminating NUL is welcome but not needed. */
    if (len && ((const char *)call->struct_in)[len - 1] == '\0')
        len--;
    if (len > FAULT_NAME_MAX || fault_parse(call->struct_in, len, &fault, &slow_ms) < 0) {
        odk_warn("set fault: unknown fault '%.*s'",
                 (int)(len > FAULT_NAME_MAX ? FAULT_NAME_MAX : len),
                 len ? (const char *)call->struct_in : "");
        return ODK_E_INVALID;
    }
    s->fault = fault;
    s->slow_ms = slow_ms;
    char buf[32];
    odk_info("fault set to %s", fault_name(s, buf, sizeof buf));
    return ODK_OK;
}

static int faulty_ping(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    call->scalar_out[0] = call->scalar_in[0] + 1;
    return ODK_OK;
}

static int faulty_power_state(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct faulty *s = odk_driver_state(drv);
    call->scalar_out[0] = s->power_state;
    return ODK_OK;
}

static const odk_method faulty_methods[] = {
    [FAULTY_OPERATE] = {.fn = faulty_operate, .scalar_out = 1},
    [FAULTY_SET_FAULT] = {.fn = faulty_set_fault, .struct_in = ODK_VARIABLE_SIZE},
    [FAULTY_PING] = {.fn = faulty_ping, .scalar_in = 1, .scalar_out = 1},
    [FAULTY_POWER_STATE] = {.fn = faulty_power_state, .scalar_out = 1},
};

static const odk_driver_class faulty_class = {
    .name = "FaultyDriver",
    .state_size = sizeof(struct faulty),
    .start = faulty_start,
    .stop = faulty_stop,
    .set_power_state = faulty_set_power_state,
    .methods = faulty_methods,
    .n_methods = sizeof faulty_methods / sizeof faulty_methods[0],
};

ODK_DRIVER_CLASS(faulty_class);
