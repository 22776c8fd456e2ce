/* SPDX-License-Identifier: MIT */
/* Actions (DriverKit's OSAction): a callback bound to a queue, invoked once
 * per post.  Cancelling is idempotent and safe in any order; the cancel
 * handler runs once, from the member completion that queue.c queues behind
 * every invocation already posted, so it always follows the last one. */
#include <stdlib.h>

#include "runtime/runtime_internal.h"

struct odk_action {
    queue_member m; /* offset 0 */
    void (*fn)(void *ctx, odk_action *a);
    void *ctx;
    void (*cancel_fn)(void *ctx); /* under m.lock */
    void *cancel_ctx;
};

struct invoke_work {
    odk_work w;
    odk_action *a; /* a reference */
};

static void action_free(odk_object *obj)
{
    odk_action *a = (odk_action *)obj;
    member_destroy(&a->m);
    free(a);
}

static void action_finish(queue_member *m)
{
    odk_action *a = (odk_action *)m;
    pthread_mutex_lock(&m->lock);
    void (*fn)(void *) = a->cancel_fn;
    void *ctx = a->cancel_ctx;
    a->cancel_fn = NULL;
    pthread_mutex_unlock(&m->lock);
    if (fn)
        fn(ctx);
}

static const struct member_ops action_ops = {
    .kind = "action",
    .finish = action_finish,
};

void action_invoke_now(odk_action *a)
{
    /* Invocations and the completion both run on the queue's thread, so a
     * cancel seen false here cannot have run the cancel handler yet. */
    if (!atomic_load_explicit(&a->m.cancelled, memory_order_acquire))
        a->fn(a->ctx, a);
}

static void run_invoke(odk_work *w)
{
    struct invoke_work *iw = (struct invoke_work *)w;
    action_invoke_now(iw->a);
    odk_release(iw->a);
    free(iw);
}

int odk_action_create(odk_queue *q, void (*fn)(void *ctx, odk_action *a), void *ctx,
                      odk_action **out)
{
    if (out)
        *out = NULL; /* also when another argument is bad (status.h) */
    if (!q || !fn || !out) {
        odk_warn("odk_action_create (queue %s): %s is NULL", odk_queue_name(q),
                 !q    ? "queue"
                 : !fn ? "function"
                       : "out");
        return ODK_E_INVALID;
    }
    odk_action *a = calloc(1, sizeof *a);
    if (!a)
        return ODK_E_NOMEM;
    a->fn = fn;
    a->ctx = ctx;
    int st = member_attach(&a->m, q, &action_ops, action_free, -1, 0);
    if (st < 0) {
        free(a);
        return st;
    }
    *out = a;
    return ODK_OK;
}

int odk_action_set_cancel_handler(odk_action *a, void (*handler)(void *ctx), void *ctx)
{
    if (!a) {
        odk_warn("odk_action_set_cancel_handler: action is NULL");
        return ODK_E_INVALID;
    }
    int st = ODK_OK;
    pthread_mutex_lock(&a->m.lock);
    if (atomic_load(&a->m.cancelled)) {
        st = ODK_E_CANCELLED;
    } else {
        a->cancel_fn = handler;
        a->cancel_ctx = ctx;
    }
    pthread_mutex_unlock(&a->m.lock);
    if (st < 0)
        odk_warn("action %p (queue %s): cancel handler set after the action was cancelled",
                 (void *)a, odk_queue_name(a->m.q));
    return st;
}

int odk_action_post(odk_action *a)
{
    if (!a) {
        odk_warn("odk_action_post: action is NULL");
        return ODK_E_INVALID;
    }
    /* A post racing a cancel may still be queued; run_invoke drops it. */
    if (atomic_load_explicit(&a->m.cancelled, memory_order_acquire)) {
        odk_warn("action %p (queue %s): posted after it was cancelled", (void *)a,
                 odk_queue_name(a->m.q));
        return ODK_E_CANCELLED;
    }
    struct invoke_work *iw = malloc(sizeof *iw);
    if (!iw)
        return ODK_E_NOMEM;
    iw->w.run = run_invoke;
    iw->a = odk_retain(a);
    int st = queue_push(a->m.q, &iw->w, false);
    if (st < 0) {
        odk_release(a);
        free(iw);
        odk_warn("action %p (queue %s): posted after its queue was cancelled", (void *)a,
                 odk_queue_name(a->m.q));
    }
    return st;
}

int odk_action_cancel(odk_action *a)
{
    if (!a) {
        odk_warn("odk_action_cancel: action is NULL");
        return ODK_E_INVALID;
    }
    return member_cancel(&a->m, NULL, NULL);
}

odk_queue *odk_action_queue(const odk_action *a)
{
    return a ? a->m.q : NULL;
}
