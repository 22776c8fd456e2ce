/* SPDX-License-Identifier: MIT */
/* Queues and fd sources: ordering, sync dispatch, cancellation in every
 * order, from inside and outside the queue.  No test asserts a duration:
 * waits are generous polls, checks are on order and counts. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/test_util.h"

#include "odk/log.h"
#include "odk/queue.h"
#include "runtime/runtime_internal.h"

/* Polls until *v >= want; 60 s is "never" on any machine. */
/* Everything queued on q before this has run when it returns. */
/* For a cancelled queue: every done recorded before this one has run when
 * this returns (dones run in order). */
static void barrier_none(odk_queue *q)
{
    atomic_int done = 0;
    assert_int_equal(odk_queue_cancel(q, count, &done), ODK_OK);
    assert_true(wait_at_least(&done, 1));
}

/* ---- basics ------------------------------------------------------------ */

static void test_create_name_current(void **state)
{
    odk_queue *q;
    assert_int_equal(odk_queue_create("alpha", &q), ODK_OK);
    assert_string_equal(odk_queue_name(q), "alpha");
    assert_null(odk_queue_current());
    assert_false(odk_queue_is_current(q));
    assert_false(odk_queue_is_current(NULL));
    assert_string_equal(odk_queue_name(NULL), "(null)");
    odk_release(q);

    assert_int_equal(odk_queue_create(NULL, &q), ODK_OK);
    assert_string_equal(odk_queue_name(q), "queue");
    odk_release(q);
    assert_int_equal(odk_queue_create("x", NULL), ODK_E_INVALID);
}

/* The thread names itself with the queue's name (cut to the kernel's 15
 * bytes) before it runs any work: by prctl, not through
 * /proc/self/task/TID/comm, whose dentries odkd's reap of the host would
 * then have to invalidate. */
static void read_thread_name(void *ctx)
{
    pthread_getname_np(pthread_self(), ctx, 16);
}

static void test_thread_named_for_the_queue(void **state)
{
    odk_queue *q;
    char name[16] = "";
    assert_int_equal(odk_queue_create("EchoDriverQueueLongName", &q), ODK_OK);
    assert_int_equal(odk_queue_dispatch_sync(q, read_thread_name, name), ODK_OK);
    assert_string_equal(name, "EchoDriverQueue");
    odk_release(q);
}

struct where {
    odk_queue *q;
    atomic_int is_current, current_matches, ran;
};

static void record_where(void *ctx)
{
    struct where *w = ctx;
    atomic_store(&w->is_current, odk_queue_is_current(w->q));
    atomic_store(&w->current_matches, odk_queue_current() == w->q);
    atomic_fetch_add(&w->ran, 1);
}

static void test_sync_runs_on_queue(void **state)
{
    struct where w = {0};
    assert_int_equal(odk_queue_create("sync", &w.q), ODK_OK);
    assert_int_equal(odk_queue_dispatch_sync(w.q, record_where, &w), ODK_OK);
    /* sync: done by the time it returns */
    assert_int_equal(atomic_load(&w.ran), 1);
    assert_true(atomic_load(&w.is_current));
    assert_true(atomic_load(&w.current_matches));
    odk_release(w.q);
}

/* ---- lending an idle queue (queue_run_here) ------------------------------ */

struct here {
    odk_queue *q;
    pthread_t caller;
    atomic_int on_caller, is_current, ran, order[4], n;
    atomic_int release; /* what a blocking item waits for */
};

static void here_record(void *ctx)
{
    struct here *h = ctx;
    atomic_store(&h->on_caller, pthread_equal(pthread_self(), h->caller));
    atomic_store(&h->is_current, odk_queue_is_current(h->q));
    atomic_fetch_add(&h->ran, 1);
}

/* Waits until the queue's thread sleeps in epoll with nothing queued: a
 * barrier, then a moment for it to go back to sleep. */
static void settle(odk_queue *q)
{
    barrier(q);
    usleep(20000);
}

static void test_run_here_runs_an_idle_queues_callback_on_the_caller(void **state)
{
    struct here h = {.caller = pthread_self()};
    assert_int_equal(odk_queue_create("lend", &h.q), ODK_OK);
    uint64_t before = queue_runs_here(h.q);
    /* The thread may be slow to reach its first sleep on a loaded machine:
     * ask until the queue is lent (each miss runs on the queue instead). */
    for (int i = 0; i < 500 && queue_runs_here(h.q) == before; i++) {
        settle(h.q);
        assert_int_equal(queue_run_here(h.q, here_record, &h), ODK_OK);
        barrier(h.q);
    }
    assert_true(queue_runs_here(h.q) > before);
    /* The last one ran here, as the queue. */
    assert_true(atomic_load(&h.on_caller));
    assert_true(atomic_load(&h.is_current));
    assert_false(odk_queue_is_current(h.q)); /* only while it ran */
    assert_null(odk_queue_current());
    odk_release(h.q);
}

static void here_block(void *ctx)
{
    struct here *h = ctx;
    while (!atomic_load(&h->release))
        sched_yield();
    atomic_store(&h->order[atomic_fetch_add(&h->n, 1)], 1);
}

static void here_second(void *ctx)
{
    struct here *h = ctx;
    atomic_store(&h->on_caller, pthread_equal(pthread_self(), h->caller));
    atomic_store(&h->order[atomic_fetch_add(&h->n, 1)], 2);
}

/* A busy queue is not lent: the callback goes behind what is queued. */
static void test_run_here_on_a_busy_queue_queues_behind(void **state)
{
    struct here h = {.caller = pthread_self()};
    assert_int_equal(odk_queue_create("busy", &h.q), ODK_OK);
    assert_int_equal(odk_queue_dispatch_async(h.q, here_block, &h), ODK_OK);
    uint64_t before = queue_runs_here(h.q);
    assert_int_equal(queue_run_here(h.q, here_second, &h), ODK_OK);
    assert_int_equal(atomic_load(&h.n), 0); /* not run: the queue is busy */
    atomic_store(&h.release, 1);
    barrier(h.q);
    assert_int_equal(atomic_load(&h.n), 2);
    assert_int_equal(atomic_load(&h.order[0]), 1);
    assert_int_equal(atomic_load(&h.order[1]), 2);
    assert_false(atomic_load(&h.on_caller));
    assert_int_equal(queue_runs_here(h.q), before);
    odk_release(h.q);
}

/* queue_try_run_here on a busy queue leaves everything to its caller:
 * nothing is queued, nothing runs. */
static void test_try_run_here_on_a_busy_queue_refuses(void **state)
{
    struct here h = {.caller = pthread_self()};
    assert_int_equal(odk_queue_create("busy-try", &h.q), ODK_OK);
    assert_int_equal(odk_queue_dispatch_async(h.q, here_block, &h), ODK_OK);
    assert_int_equal(queue_try_run_here(h.q, here_second, &h), ODK_E_BUSY);
    atomic_store(&h.release, 1);
    barrier(h.q);
    assert_int_equal(atomic_load(&h.n), 1); /* only the blocking item ran */
    assert_int_equal(atomic_load(&h.order[0]), 1);
    odk_release(h.q);
}

struct lent {
    odk_queue *q;
    pthread_t caller;
    atomic_int in_loan, loan_done, later_ran, later_saw_loan_done, queued_ran, cancelled;
};

static void lent_queued(void *ctx)
{
    atomic_fetch_add(&((struct lent *)ctx)->queued_ran, 1);
}

static void lent_later(void *ctx)
{
    struct lent *l = ctx;
    atomic_store(&l->later_saw_loan_done, atomic_load(&l->loan_done));
    atomic_fetch_add(&l->later_ran, 1);
}

/* While lent: work another thread queues waits for the loan to end; work
 * the callback itself queues runs after it (it woke nobody: the loan's end
 * must). */
static void lent_body(void *ctx)
{
    struct lent *l = ctx;
    atomic_store(&l->in_loan, 1);
    if (!pthread_equal(pthread_self(), l->caller))
        return; /* not lent after all: the test retries */
    assert_true(odk_queue_is_current(l->q));
    assert_int_equal(odk_queue_dispatch_async(l->q, lent_queued, l), ODK_OK);
    usleep(100000); /* the other thread's work is queued meanwhile */
    assert_int_equal(atomic_load(&l->later_ran), 0);
    assert_int_equal(atomic_load(&l->queued_ran), 0);
    atomic_store(&l->loan_done, 1);
}

static void *lent_other(void *arg)
{
    struct lent *l = arg;
    while (!atomic_load(&l->in_loan))
        sched_yield();
    odk_queue_dispatch_async(l->q, lent_later, l);
    return NULL;
}

static void test_run_here_holds_the_queue_and_wakes_it_after(void **state)
{
    for (int attempt = 0; attempt < 200; attempt++) {
        struct lent l = {.caller = pthread_self()};
        assert_int_equal(odk_queue_create("held", &l.q), ODK_OK);
        settle(l.q);
        pthread_t t;
        pthread_create(&t, NULL, lent_other, &l);
        uint64_t before = queue_runs_here(l.q);
        assert_int_equal(queue_run_here(l.q, lent_body, &l), ODK_OK);
        bool lent = queue_runs_here(l.q) > before;
        pthread_join(t, NULL);
        /* Both queued items run, with no other wake-up than the loan's end. */
        assert_true(wait_at_least(&l.queued_ran, 1));
        assert_true(wait_at_least(&l.later_ran, 1));
        barrier(l.q);
        if (lent) {
            assert_true(atomic_load(&l.later_saw_loan_done));
            odk_release(l.q);
            return;
        }
        odk_release(l.q);
    }
    fail_msg("the queue was never idle to lend");
}

static void lent_cancel(void *ctx)
{
    struct lent *l = ctx;
    if (pthread_equal(pthread_self(), l->caller) && odk_queue_is_current(l->q))
        atomic_store(&l->in_loan, 1);
    odk_queue_cancel(l->q, count, &l->cancelled);
}

/* A cancel made by a lent callback reaches the sleeping thread. */
static void test_run_here_cancel_from_the_loan(void **state)
{
    for (int attempt = 0; attempt < 200; attempt++) {
        struct lent l = {.caller = pthread_self()};
        assert_int_equal(odk_queue_create("cancel-lent", &l.q), ODK_OK);
        settle(l.q);
        assert_int_equal(queue_run_here(l.q, lent_cancel, &l), ODK_OK);
        assert_true(wait_at_least(&l.cancelled, 1));
        odk_release(l.q);
        if (atomic_load(&l.in_loan))
            return;
    }
    fail_msg("the queue was never idle to lend");
}

/* From a queue's own thread nothing is lent (no nesting of queues). */
static void from_queue(void *ctx)
{
    struct here *h = ctx;
    uint64_t before = queue_runs_here(h->q);
    queue_run_here(h->q, here_record, h);
    if (queue_runs_here(h->q) != before)
        atomic_store(&h->on_caller, 2);
}

static void test_run_here_from_a_queue_dispatches(void **state)
{
    struct here h = {0};
    odk_queue *other;
    assert_int_equal(odk_queue_create("target", &h.q), ODK_OK);
    assert_int_equal(odk_queue_create("caller", &other), ODK_OK);
    settle(h.q);
    h.caller = pthread_self();
    assert_int_equal(odk_queue_dispatch_sync(other, from_queue, &h), ODK_OK);
    barrier(h.q);
    assert_int_equal(atomic_load(&h.ran), 1);
    assert_true(atomic_load(&h.is_current));
    assert_int_not_equal(atomic_load(&h.on_caller), 2);
    odk_release(other);
    odk_release(h.q);
}

/* FIFO: one producer's items run in the order queued. */
#define N_FIFO 5000
struct fifo {
    int seen[N_FIFO];
    int n;
    atomic_int done;
};
struct fifo_item {
    struct fifo *f;
    int value;
};

static void fifo_run(void *ctx)
{
    struct fifo_item *it = ctx;
    it->f->seen[it->f->n++] = it->value; /* only the queue thread writes */
    free(it);
}

static void fifo_end(void *ctx)
{
    atomic_store(&((struct fifo *)ctx)->done, 1);
}

static void test_async_fifo(void **state)
{
    odk_queue *q;
    assert_int_equal(odk_queue_create("fifo", &q), ODK_OK);
    struct fifo *f = calloc(1, sizeof *f);
    for (int i = 0; i < N_FIFO; i++) {
        struct fifo_item *it = malloc(sizeof *it);
        it->f = f;
        it->value = i;
        assert_int_equal(odk_queue_dispatch_async(q, fifo_run, it), ODK_OK);
    }
    assert_int_equal(odk_queue_dispatch_async(q, fifo_end, f), ODK_OK);
    assert_true(wait_at_least(&f->done, 1));
    barrier(q);
    assert_int_equal(f->n, N_FIFO);
    for (int i = 0; i < N_FIFO; i++)
        assert_int_equal(f->seen[i], i);
    free(f);
    odk_release(q);
}

/* Several producers: each producer's items stay in its order. */
#define N_PRODUCERS 4
#define N_PER_PRODUCER 2000
struct multi {
    odk_queue *q;
    int last[N_PRODUCERS];
    int errors;
    atomic_int ran;
};
struct multi_item {
    struct multi *m;
    int producer, seq;
};
struct producer {
    struct multi *m;
    int id;
};

static void multi_run(void *ctx)
{
    struct multi_item *it = ctx;
    if (it->seq != it->m->last[it->producer] + 1)
        it->m->errors++;
    it->m->last[it->producer] = it->seq;
    atomic_fetch_add(&it->m->ran, 1);
    free(it);
}

static void *produce(void *arg)
{
    struct producer *p = arg;
    for (int i = 0; i < N_PER_PRODUCER; i++) {
        struct multi_item *it = malloc(sizeof *it);
        *it = (struct multi_item){p->m, p->id, i};
        if (odk_queue_dispatch_async(p->m->q, multi_run, it) != ODK_OK)
            free(it);
    }
    return NULL;
}

static void test_async_fifo_per_producer(void **state)
{
    struct multi m = {0};
    for (int i = 0; i < N_PRODUCERS; i++)
        m.last[i] = -1;
    assert_int_equal(odk_queue_create("multi", &m.q), ODK_OK);
    pthread_t th[N_PRODUCERS];
    struct producer p[N_PRODUCERS];
    for (int i = 0; i < N_PRODUCERS; i++) {
        p[i] = (struct producer){&m, i};
        pthread_create(&th[i], NULL, produce, &p[i]);
    }
    for (int i = 0; i < N_PRODUCERS; i++)
        pthread_join(th[i], NULL);
    assert_true(wait_at_least(&m.ran, N_PRODUCERS * N_PER_PRODUCER));
    barrier(m.q);
    assert_int_equal(m.errors, 0);
    odk_release(m.q);
}

/* dispatch_sync on the queue's own thread runs inline, before the items
 * already queued behind the caller. */
struct inline_ctx {
    odk_queue *q;
    int order[3];
    int n;
    int st;
    atomic_int done;
};

static void inline_inner(void *ctx)
{
    struct inline_ctx *c = ctx;
    c->order[c->n++] = 2;
}

static void inline_later(void *ctx)
{
    struct inline_ctx *c = ctx;
    c->order[c->n++] = 3;
    atomic_store(&c->done, 1);
}

static void inline_outer(void *ctx)
{
    struct inline_ctx *c = ctx;
    c->order[c->n++] = 1;
    odk_queue_dispatch_async(c->q, inline_later, c);
    c->st = odk_queue_dispatch_sync(c->q, inline_inner, c); /* would deadlock if not inline */
}

static void test_sync_inline_on_own_queue(void **state)
{
    struct inline_ctx c = {0};
    assert_int_equal(odk_queue_create("inline", &c.q), ODK_OK);
    assert_int_equal(odk_queue_dispatch_async(c.q, inline_outer, &c), ODK_OK);
    assert_true(wait_at_least(&c.done, 1));
    barrier(c.q);
    assert_int_equal(c.st, ODK_OK);
    assert_int_equal(c.n, 3);
    assert_int_equal(c.order[0], 1);
    assert_int_equal(c.order[1], 2);
    assert_int_equal(c.order[2], 3);
    odk_release(c.q);
}

/* ---- cancel ------------------------------------------------------------ */

struct cancel_ctx {
    odk_queue *q;
    atomic_int before, done, done2, done_on_queue, after_st, item_done_first;
};

static void cancel_done(void *ctx)
{
    struct cancel_ctx *c = ctx;
    atomic_store(&c->done_on_queue, odk_queue_is_current(c->q));
    atomic_store(&c->item_done_first, atomic_load(&c->before));
    atomic_fetch_add(&c->done, 1);
}

static void cancel_done2(void *ctx)
{
    atomic_fetch_add(&((struct cancel_ctx *)ctx)->done2, 1);
}

static void slow_item(void *ctx)
{
    struct cancel_ctx *c = ctx;
    usleep(2000);
    atomic_fetch_add(&c->before, 1);
}

static void test_cancel_from_outside(void **state)
{
    struct cancel_ctx c = {0};
    assert_int_equal(odk_queue_create("cancel-out", &c.q), ODK_OK);
    /* Work queued before the cancel still runs, before done. */
    for (int i = 0; i < 5; i++)
        assert_int_equal(odk_queue_dispatch_async(c.q, slow_item, &c), ODK_OK);
    assert_int_equal(odk_queue_cancel(c.q, cancel_done, &c), ODK_OK);
    assert_int_equal(odk_queue_dispatch_async(c.q, slow_item, &c), ODK_E_CANCELLED);
    assert_int_equal(odk_queue_dispatch_sync(c.q, noop, NULL), ODK_E_CANCELLED);
    /* Idempotent: the second done runs once too. */
    assert_int_equal(odk_queue_cancel(c.q, cancel_done2, &c), ODK_OK);
    assert_true(wait_at_least(&c.done, 1));
    assert_true(wait_at_least(&c.done2, 1));
    assert_int_equal(atomic_load(&c.item_done_first), 5);
    assert_true(atomic_load(&c.done_on_queue));
    /* After completion: the done still runs, exactly once. */
    assert_int_equal(odk_queue_cancel(c.q, cancel_done2, &c), ODK_OK);
    assert_true(wait_at_least(&c.done2, 2));
    barrier_none(c.q);
    assert_int_equal(atomic_load(&c.done2), 2);
    assert_int_equal(odk_queue_cancel(c.q, NULL, NULL), ODK_OK);
    assert_int_equal(atomic_load(&c.done), 1);
    assert_int_equal(atomic_load(&c.before), 5);
    odk_release(c.q);
}

static void cancel_self(void *ctx)
{
    struct cancel_ctx *c = ctx;
    /* on the queue's thread: record, assert later on the main thread */
    if (odk_queue_cancel(c->q, cancel_done, c) != ODK_OK ||
        odk_queue_cancel(c->q, cancel_done2, c) != ODK_OK)
        atomic_store(&c->done2, -1000);
    atomic_store(&c->after_st, odk_queue_dispatch_async(c->q, noop, NULL));
    /* done waits for this item to return */
    atomic_store(&c->before, 1 + atomic_load(&c->done));
}

static void test_cancel_from_inside(void **state)
{
    struct cancel_ctx c = {0};
    assert_int_equal(odk_queue_create("cancel-in", &c.q), ODK_OK);
    assert_int_equal(odk_queue_dispatch_async(c.q, cancel_self, &c), ODK_OK);
    assert_true(wait_at_least(&c.done, 1));
    assert_true(wait_at_least(&c.done2, 1));
    assert_int_equal(atomic_load(&c.before), 1); /* done had not run during the item */
    assert_int_equal(atomic_load(&c.after_st), ODK_E_CANCELLED);
    assert_true(atomic_load(&c.done_on_queue));
    odk_release(c.q);
}

static void release_self(void *ctx)
{
    struct cancel_ctx *c = ctx;
    odk_release(c->q); /* the last reference, from the queue's own thread */
    atomic_fetch_add(&c->done, 1);
}

static void cancel_self_quiet(void *ctx)
{
    struct cancel_ctx *c = ctx;
    odk_queue_cancel(c->q, cancel_done, c);
}

static void test_release_cancels(void **state)
{
    /* Last release off the queue: queued work still runs, memory is freed
     * when the thread ends (ASan checks the leak). */
    struct cancel_ctx c = {0};
    assert_int_equal(odk_queue_create("release", &c.q), ODK_OK);
    for (int i = 0; i < 3; i++)
        assert_int_equal(odk_queue_dispatch_async(c.q, slow_item, &c), ODK_OK);
    odk_release(c.q);
    assert_true(wait_at_least(&c.before, 3));

    /* Last release on the queue's own thread. */
    struct cancel_ctx c2 = {0};
    assert_int_equal(odk_queue_create("release-self", &c2.q), ODK_OK);
    assert_int_equal(odk_queue_dispatch_async(c2.q, release_self, &c2), ODK_OK);
    assert_true(wait_at_least(&c2.done, 1));
}

static void release_in_done(void *ctx)
{
    struct cancel_ctx *c = ctx;
    odk_release(c->q);
    atomic_fetch_add(&c->done, 1);
}

static void test_release_in_done(void **state)
{
    struct cancel_ctx c = {0};
    assert_int_equal(odk_queue_create("release-done", &c.q), ODK_OK);
    assert_int_equal(odk_queue_cancel(c.q, release_in_done, &c), ODK_OK);
    assert_true(wait_at_least(&c.done, 1));
}

static void test_misuse(void **state)
{
    assert_int_equal(odk_queue_dispatch_async(NULL, noop, NULL), ODK_E_INVALID);
    assert_int_equal(odk_queue_dispatch_sync(NULL, noop, NULL), ODK_E_INVALID);
    assert_int_equal(odk_queue_cancel(NULL, NULL, NULL), ODK_E_INVALID);
    odk_queue *q;
    assert_int_equal(odk_queue_create("misuse", &q), ODK_OK);
    assert_int_equal(odk_queue_dispatch_async(q, NULL, NULL), ODK_E_INVALID);
    assert_int_equal(odk_queue_dispatch_sync(q, NULL, NULL), ODK_E_INVALID);
    odk_release(NULL);
    assert_null(odk_retain(NULL));
    assert_ptr_equal(odk_retain(q), q);
    odk_release(q);
    odk_release(q);
}

/* Many queues created and cancelled back to back, some from inside. */
static void test_cancel_churn(void **state)
{
    for (int i = 0; i < 300; i++) {
        struct cancel_ctx c = {0};
        assert_int_equal(odk_queue_create("churn", &c.q), ODK_OK);
        odk_queue_dispatch_async(c.q, slow_item, &c);
        if (i % 2)
            assert_int_equal(odk_queue_dispatch_async(c.q, cancel_self_quiet, &c), ODK_OK);
        else
            assert_int_equal(odk_queue_cancel(c.q, cancel_done, &c), ODK_OK);
        assert_true(wait_at_least(&c.done, 1));
        odk_release(c.q);
    }
}

/* ---- fd sources -------------------------------------------------------- */

struct fdc {
    odk_queue *q;
    odk_fd_source *s;
    int rfd, wfd;
    atomic_int reads, on_queue, done, done2, after_cancel, cancel_in_fn;
    atomic_int cancelled;
    uint32_t last_revents;
};

static void on_readable(void *ctx, uint32_t revents)
{
    struct fdc *c = ctx;
    if (atomic_load(&c->cancelled))
        atomic_fetch_add(&c->after_cancel, 1);
    char buf[64];
    ssize_t n = read(c->rfd, buf, sizeof buf);
    c->last_revents = revents;
    atomic_store(&c->on_queue, odk_queue_is_current(c->q));
    if (n > 0)
        atomic_fetch_add(&c->reads, (int)n);
    if (atomic_load(&c->cancel_in_fn)) {
        odk_fd_source_cancel(c->s, count, &c->done);
        atomic_store(&c->cancelled, 1);
    }
}

static void fdc_open(struct fdc *c, const char *name)
{
    memset(c, 0, sizeof *c);
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
    c->rfd = fds[0];
    c->wfd = fds[1];
    assert_int_equal(odk_queue_create(name, &c->q), ODK_OK);
    assert_int_equal(odk_fd_source_create(c->q, c->rfd, EPOLLIN, on_readable, c, &c->s), ODK_OK);
}

static void fdc_close(struct fdc *c)
{
    if (c->rfd >= 0)
        close(c->rfd);
    close(c->wfd);
    odk_release(c->s);
    odk_release(c->q);
}

static void test_fd_source_delivers(void **state)
{
    struct fdc c;
    fdc_open(&c, "fd");
    assert_int_equal(write(c.wfd, "abc", 3), 3);
    assert_true(wait_at_least(&c.reads, 3));
    assert_true(atomic_load(&c.on_queue));
    barrier(c.q);
    assert_true(c.last_revents & EPOLLIN);

    /* Disabled: data written before a barrier is not delivered. */
    assert_int_equal(odk_fd_source_set_enabled(c.s, false), ODK_OK);
    assert_int_equal(odk_fd_source_set_enabled(c.s, false), ODK_OK);
    assert_int_equal(write(c.wfd, "de", 2), 2);
    barrier(c.q);
    barrier(c.q);
    assert_int_equal(atomic_load(&c.reads), 3);
    assert_int_equal(odk_fd_source_set_enabled(c.s, true), ODK_OK);
    assert_true(wait_at_least(&c.reads, 5));

    /* set_events: watching nothing but EPOLLOUT-less mask 0 still sees data? no:
     * with mask 0 only HUP/ERR come, so data waits. */
    assert_int_equal(odk_fd_source_set_events(c.s, 0), ODK_OK);
    assert_int_equal(write(c.wfd, "f", 1), 1);
    barrier(c.q);
    barrier(c.q);
    assert_int_equal(atomic_load(&c.reads), 5);
    assert_int_equal(odk_fd_source_set_events(c.s, EPOLLIN), ODK_OK);
    assert_true(wait_at_least(&c.reads, 6));

    assert_int_equal(odk_fd_source_cancel(c.s, count, &c.done), ODK_OK);
    atomic_store(&c.cancelled, 1);
    assert_true(wait_at_least(&c.done, 1));
    assert_int_equal(odk_fd_source_set_enabled(c.s, true), ODK_E_CANCELLED);
    assert_int_equal(odk_fd_source_set_events(c.s, EPOLLIN), ODK_E_CANCELLED);
    assert_int_equal(write(c.wfd, "g", 1), 1);
    barrier(c.q);
    assert_int_equal(atomic_load(&c.after_cancel), 0);
    /* idempotent; after completion the done still runs, once */
    assert_int_equal(odk_fd_source_cancel(c.s, count, &c.done2), ODK_OK);
    assert_true(wait_at_least(&c.done2, 1));
    barrier(c.q);
    assert_int_equal(atomic_load(&c.done2), 1);
    assert_int_equal(atomic_load(&c.done), 1);
    fdc_close(&c);
}

static void test_fd_source_cancel_inside_fn(void **state)
{
    struct fdc c;
    fdc_open(&c, "fd-in");
    atomic_store(&c.cancel_in_fn, 1);
    assert_int_equal(write(c.wfd, "x", 1), 1);
    assert_true(wait_at_least(&c.done, 1));
    assert_int_equal(write(c.wfd, "y", 1), 1);
    barrier(c.q);
    barrier(c.q);
    assert_int_equal(atomic_load(&c.after_cancel), 0);
    assert_int_equal(atomic_load(&c.reads), 1);
    assert_int_equal(atomic_load(&c.done), 1);
    fdc_close(&c);
}

/* Source, then queue. */
static void test_fd_source_then_queue(void **state)
{
    struct fdc c;
    atomic_int qdone = 0;
    fdc_open(&c, "fd-sq");
    assert_int_equal(odk_fd_source_cancel(c.s, count, &c.done), ODK_OK);
    assert_int_equal(odk_queue_cancel(c.q, count, &qdone), ODK_OK);
    assert_true(wait_at_least(&qdone, 1));
    /* the source's done came first: the queue's done is its last act */
    assert_int_equal(atomic_load(&c.done), 1);
    assert_int_equal(odk_fd_source_cancel(c.s, count, &c.done2), ODK_OK);
    assert_int_equal(atomic_load(&c.done2), 1);
    fdc_close(&c);
}

/* Queue, then source (the queue cancelled it already: idempotent). */
static void test_queue_then_fd_source(void **state)
{
    struct fdc c;
    atomic_int qdone = 0;
    fdc_open(&c, "fd-qs");
    assert_int_equal(write(c.wfd, "x", 1), 1);
    assert_int_equal(odk_queue_cancel(c.q, count, &qdone), ODK_OK);
    assert_int_equal(odk_fd_source_cancel(c.s, count, &c.done), ODK_OK);
    assert_true(wait_at_least(&qdone, 1));
    assert_int_equal(atomic_load(&c.done), 1);
    assert_int_equal(odk_fd_source_cancel(c.s, count, &c.done), ODK_OK);
    assert_int_equal(atomic_load(&c.done), 2);
    assert_int_equal(odk_fd_source_set_enabled(c.s, false), ODK_E_CANCELLED);
    fdc_close(&c);
}

/* The caller closes its fd before cancelling (as a connection teardown
 * does); the source watches its own duplicate, so nothing breaks. */
static void close_then_cancel(void *ctx)
{
    struct fdc *c = ctx;
    close(c->rfd);
    c->rfd = -1;
    odk_fd_source_cancel(c->s, count, &c->done);
    atomic_store(&c->cancelled, 1);
}

static void test_fd_closed_before_cancel(void **state)
{
    struct fdc c;
    fdc_open(&c, "fd-close");
    assert_int_equal(write(c.wfd, "x", 1), 1);
    assert_true(wait_at_least(&c.reads, 1));
    assert_int_equal(odk_queue_dispatch_async(c.q, close_then_cancel, &c), ODK_OK);
    assert_true(wait_at_least(&c.done, 1));
    assert_int_equal(send(c.wfd, "y", 1, MSG_NOSIGNAL), -1); /* peer closed: our dup is gone */
    assert_int_equal(errno, EPIPE);
    assert_int_equal(atomic_load(&c.after_cancel), 0);
    fdc_close(&c);
}

static void test_fd_source_misuse(void **state)
{
    odk_queue *q;
    odk_fd_source *s = NULL;
    assert_int_equal(odk_queue_create("fd-misuse", &q), ODK_OK);
    assert_int_equal(odk_fd_source_create(q, -1, EPOLLIN, on_readable, NULL, &s), ODK_E_INVALID);
    assert_int_equal(odk_fd_source_create(q, 1000000, EPOLLIN, on_readable, NULL, &s),
                     ODK_E_INVALID);
    s = (odk_fd_source *)&s; /* stale: an error must set it to NULL */
    assert_int_equal(odk_fd_source_create(NULL, 0, EPOLLIN, on_readable, NULL, &s), ODK_E_INVALID);
    assert_null(s);
    s = (odk_fd_source *)&s;
    assert_int_equal(odk_fd_source_create(q, 0, EPOLLIN, NULL, NULL, &s), ODK_E_INVALID);
    assert_null(s);
    assert_int_equal(odk_fd_source_cancel(NULL, NULL, NULL), ODK_E_INVALID);
    assert_int_equal(odk_fd_source_set_enabled(NULL, true), ODK_E_INVALID);
    assert_int_equal(odk_fd_source_set_events(NULL, 0), ODK_E_INVALID);
    atomic_int done = 0;
    assert_int_equal(odk_queue_cancel(q, count, &done), ODK_OK);
    assert_true(wait_at_least(&done, 1));
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(odk_fd_source_create(q, p[0], EPOLLIN, on_readable, NULL, &s),
                     ODK_E_CANCELLED);
    assert_null(s);
    close(p[0]);
    close(p[1]);
    odk_release(q);
}

/* Many sources on one queue, cancelled from a foreign thread while data
 * flows; each done exactly once, fn never after done. */
struct flow {
    odk_fd_source *s;
    int rfd, wfd;
    atomic_int done, after_done;
};

static void flow_read(void *ctx, uint32_t revents)
{
    struct flow *f = ctx;
    if (atomic_load(&f->done))
        atomic_fetch_add(&f->after_done, 1);
    char buf[256];
    while (read(f->rfd, buf, sizeof buf) > 0) {
    }
}

static void test_fd_source_stress(void **state)
{
    enum { N = 16, ROUNDS = 60 };
    for (int r = 0; r < ROUNDS; r++) {
        odk_queue *q;
        assert_int_equal(odk_queue_create("fd-stress", &q), ODK_OK);
        struct flow f[N];
        for (int i = 0; i < N; i++) {
            int fds[2];
            assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
            f[i] = (struct flow){.rfd = fds[0], .wfd = fds[1]};
            assert_int_equal(odk_fd_source_create(q, f[i].rfd, EPOLLIN, flow_read, &f[i], &f[i].s),
                             ODK_OK);
        }
        for (int k = 0; k < 4; k++)
            for (int i = 0; i < N; i++)
                (void)!write(f[i].wfd, "z", 1);
        atomic_int qdone = 0;
        for (int i = 0; i < N; i++) {
            if (i == N / 2 && r % 2)
                odk_queue_cancel(q, count, &qdone);
            odk_fd_source_cancel(f[i].s, count, &f[i].done);
            (void)!write(f[i].wfd, "z", 1);
        }
        odk_queue_cancel(q, count, &qdone);
        assert_true(wait_at_least(&qdone, r % 2 ? 2 : 1));
        for (int i = 0; i < N; i++) {
            assert_int_equal(atomic_load(&f[i].done), 1);
            assert_int_equal(atomic_load(&f[i].after_done), 0);
            odk_release(f[i].s);
            close(f[i].rfd);
            close(f[i].wfd);
        }
        odk_release(q);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_name_current),
        cmocka_unit_test(test_thread_named_for_the_queue),
        cmocka_unit_test(test_sync_runs_on_queue),
        cmocka_unit_test(test_run_here_runs_an_idle_queues_callback_on_the_caller),
        cmocka_unit_test(test_run_here_on_a_busy_queue_queues_behind),
        cmocka_unit_test(test_try_run_here_on_a_busy_queue_refuses),
        cmocka_unit_test(test_run_here_holds_the_queue_and_wakes_it_after),
        cmocka_unit_test(test_run_here_cancel_from_the_loan),
        cmocka_unit_test(test_run_here_from_a_queue_dispatches),
        cmocka_unit_test(test_async_fifo),
        cmocka_unit_test(test_async_fifo_per_producer),
        cmocka_unit_test(test_sync_inline_on_own_queue),
        cmocka_unit_test(test_cancel_from_outside),
        cmocka_unit_test(test_cancel_from_inside),
        cmocka_unit_test(test_release_cancels),
        cmocka_unit_test(test_release_in_done),
        cmocka_unit_test(test_misuse),
        cmocka_unit_test(test_cancel_churn),
        cmocka_unit_test(test_fd_source_delivers),
        cmocka_unit_test(test_fd_source_cancel_inside_fn),
        cmocka_unit_test(test_fd_source_then_queue),
        cmocka_unit_test(test_queue_then_fd_source),
        cmocka_unit_test(test_fd_closed_before_cancel),
        cmocka_unit_test(test_fd_source_misuse),
        cmocka_unit_test(test_fd_source_stress),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
