/* SPDX-License-Identifier: MIT */
/* Crash reports: what a dead driver host left behind, told once in odkd's
 * log and kept in STATE/crashes/ (odkctl crashes).  The host prints a
 * backtrace of the faulting thread from its signal handler; frames of
 * static functions come as module+offset, which addr2line turns into
 * function names and source lines here, off odkd's loop (below). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon/bookkeeping/crash.h"
#include "daemon/bookkeeping/instance.h"
#include "daemon/odkd.h"
#include "odk/log.h"
#include "odk/status.h"

#define MAX_FRAMES 32

/* One frame line the host's handler printed: "path(+0x1a2b) [0x...]" (a
 * module and an offset to symbolise) or "path(func+0x10) [0x...]" (already
 * named: an exported function). */
struct frame {
    const char *line;
    char module[512], offset[64]; /* module[0] == 0: nothing to symbolise */
    char sym[768];                /* "function at file:line", or "" */
};

static void frame_parse(const struct instance *in, struct frame *f)
{
    const char *line = f->line, *open = strchr(line, '('), *close = open ? strchr(open, ')') : NULL;
    f->module[0] = f->offset[0] = f->sym[0] = 0;
    if (!open || !close || open[1] != '+')
        return;
    snprintf(f->module, sizeof f->module, "%.*s", (int)(open - line), line);
    snprintf(f->offset, sizeof f->offset, "%.*s", (int)(close - open - 2), open + 2);
    /* The host loads the driver from the descriptor odkd passed it. */
    if (strncmp(f->module, "/proc/self/fd/", 14) == 0)
        snprintf(f->module, sizeof f->module, "%s", in->bundle->executable);
}

/* Frames already symbolised.  addr2line takes 0.1-0.5 s for libc alone,
 * seconds on a loaded machine, and a driver that crashes again and again
 * (up to the crash limit, a crash loop, the fault campaign) dies in the
 * same frames: each is looked up once.  Keyed on the
 * module file's identity and the offset, so a rebuilt module is looked up
 * afresh. */
#define SYM_CACHE 128

struct sym_entry {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    char offset[64];
    char sym[768]; /* "" when addr2line knew nothing */
};

static struct sym_entry sym_cache[SYM_CACHE];
static size_t sym_used, sym_next;

static bool same_file(const struct sym_entry *e, const struct stat *st)
{
    return e->dev == st->st_dev && e->ino == st->st_ino && e->size == st->st_size &&
           e->mtime.tv_sec == st->st_mtim.tv_sec && e->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

static const struct sym_entry *sym_lookup(const struct stat *st, const char *offset)
{
    for (size_t i = 0; i < sym_used; i++)
        if (same_file(&sym_cache[i], st) && strcmp(sym_cache[i].offset, offset) == 0)
            return &sym_cache[i];
    return NULL;
}

static void sym_store(const struct stat *st, const char *offset, const char *sym)
{
    struct sym_entry *e = &sym_cache[sym_next];
    sym_next = (sym_next + 1) % SYM_CACHE;
    if (sym_used < SYM_CACHE)
        sym_used++;
    *e = (struct sym_entry){
        .dev = st->st_dev, .ino = st->st_ino, .size = st->st_size, .mtime = st->st_mtim};
    snprintf(e->offset, sizeof e->offset, "%s", offset);
    snprintf(e->sym, sizeof e->sym, "%s", sym);
}

/* ---- symbolising off odkd's loop --------------------------------------
 *
 * A report whose frames all have names (exported functions, or offsets
 * symbolised before) is written at once.  Otherwise it becomes a job:
 * addr2line runs for one module at a time, as a child whose output the
 * loop reads like any descriptor, so odkd answers everyone meanwhile
 * (addr2line takes 0.1-0.5 s for libc alone, seconds at load 40, and odkd
 * once waited for it in the middle of its loop).  Jobs run one after the
 * other, so a crash loop's later reports find the first one's frames in
 * the cache.  A report is written to a temporary name and renamed into
 * STATE/crashes once complete; `odkctl crashes` answers once every report
 * of a crash already logged is there (crash_when_written). */

#define SYM_TIMEOUT_MS 30000 /* an addr2line run this long is killed; its frames stay unnamed */

struct symjob {
    struct symjob *next;
    uint32_t instance; /* the crashed instance and host, to name where it crashed */
    pid_t pid;
    char path[4096];
    char *head;     /* "bundle: ...\nreason: ...\n" */
    bool backtrace; /* the host printed one */
    size_t nf;
    struct frame fr[MAX_FRAMES];
    char *frame_lines[MAX_FRAMES];
    size_t n_lines;
    char *lines[HOSTLOG_LINES]; /* its last log lines */
    /* The addr2line run in progress: frames idx[0..k) of module fr[first]. */
    size_t first, k, idx[MAX_FRAMES];
    bool cache;
    struct stat st;
    pid_t child;
    int fd;
    struct watch watch;
    uint64_t timer;
    char out[16384];
    size_t got;
};

struct written_wait {
    void (*fn)(struct odkd *d, void *ctx);
    void *ctx;
    struct written_wait *next;
};

static struct symjob *jobs, **jobs_tail = &jobs; /* odkd is one thread */
static struct written_wait *waits;

static void job_step(struct odkd *d);

/* The frames of module fr[first] still to look up, into j->idx; named
 * from the cache where it can. */
static void collect(struct symjob *j, size_t first)
{
    struct frame *fr = j->fr;
    j->first = first;
    j->k = 0;
    j->cache = stat(fr[first].module, &j->st) == 0;
    for (size_t i = first; i < j->nf; i++) {
        if (strcmp(fr[i].module, fr[first].module) != 0 || fr[i].sym[0])
            continue;
        const struct sym_entry *e = j->cache ? sym_lookup(&j->st, fr[i].offset) : NULL;
        if (e)
            snprintf(fr[i].sym, sizeof fr[i].sym, "%s", e->sym);
        else
            j->idx[j->k++] = i;
    }
}

/* addr2line's answer for the run in progress: two lines per address,
 * function then file:line. */
static void take_output(struct symjob *j)
{
    j->out[j->got < sizeof j->out ? j->got : sizeof j->out - 1] = 0;
    char *line = j->out;
    for (size_t n = 0; n < j->k; n++) {
        char *fn = line, *nl = strchr(fn, '\n');
        if (!nl)
            return;
        *nl = 0;
        char *where = nl + 1, *end = strchr(where, '\n');
        if (!end)
            return;
        *end = 0;
        line = end + 1;
        struct frame *f = &j->fr[j->idx[n]];
        if (strcmp(fn, "??") != 0)
            snprintf(f->sym, sizeof f->sym, "%s at %s", fn, where);
        /* "" is remembered too: addr2line knew nothing, and would not next time. */
        if (j->cache)
            sym_store(&j->st, f->offset, f->sym);
    }
}

/* Ends the run in progress; kill when addr2line has not finished (timed
 * out, odkd stopping).  odkd's SIGCHLD handler reaps it either way. */
static void end_run(struct odkd *d, struct symjob *j, bool kill_it)
{
    loop_del(d, &j->watch);
    loop_timer_cancel(d, j->timer);
    j->timer = 0;
    if (j->fd >= 0)
        close(j->fd);
    j->fd = -1;
    if (j->child > 0 && kill_it)
        kill(j->child, SIGKILL);
    j->child = 0;
}

static void on_output(struct odkd *d, void *ptr, uint32_t events)
{
    (void)events;
    struct symjob *j = ptr;
    for (;;) {
        ssize_t r = read(j->fd, j->out + j->got, sizeof j->out - 1 - j->got);
        if (r > 0) {
            j->got += (size_t)r;
            if (j->got < sizeof j->out - 1)
                continue;
        } else if (r < 0 && errno == EINTR) {
            continue;
        } else if (r < 0 && errno == EAGAIN) {
            return;
        }
        break; /* the end (or a full buffer, or an error): take what came */
    }
    take_output(j);
    end_run(d, j, false); /* its output ended: it exits by itself */
    job_step(d);
}

static void on_timeout(struct odkd *d, void *ptr)
{
    struct symjob *j = ptr;
    j->timer = 0;
    odk_warn("addr2line took more than %d s on %s; its frames stay unnamed", SYM_TIMEOUT_MS / 1000,
             j->fr[j->first].module);
    end_run(d, j, true);
    job_step(d);
}

/* Starts addr2line on the frames collected; false when it cannot. */
static bool start_run(struct odkd *d, struct symjob *j)
{
    const char *argv[MAX_FRAMES + 8];
    size_t a = 0;
    argv[a++] = "addr2line";
    argv[a++] = "-f";
    argv[a++] = "-C";
    argv[a++] = "-e";
    argv[a++] = j->fr[j->first].module;
    for (size_t n = 0; n < j->k; n++)
        argv[a++] = j->fr[j->idx[n]].offset;
    argv[a] = NULL;
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return false;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1); /* dup2 clears close-on-exec on the copy */
        int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (null >= 0)
            dup2(null, 2);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL); /* odkd blocks SIGCHLD & co for its signalfd */
        execvp("addr2line", (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    if (pid < 0) {
        close(p[0]);
        return false;
    }
    fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL) | O_NONBLOCK);
    j->child = pid;
    j->fd = p[0];
    j->got = 0;
    if (loop_add(d, &j->watch, j->fd, EPOLLIN, on_output, j) < 0) {
        end_run(d, j, true);
        return false;
    }
    j->timer = loop_timer(d, SYM_TIMEOUT_MS, on_timeout, j);
    return true;
}

static void write_report(struct symjob *j)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.part", j->path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        odk_error("cannot write crash report %s: %m", tmp);
        return;
    }
    fprintf(f, "%sbacktrace:\n", j->head);
    if (!j->backtrace)
        fprintf(f, "  (none: the host did not die of a signal it could report)\n");
    for (size_t i = 0; i < j->nf; i++) {
        if (j->fr[i].sym[0])
            fprintf(f, "  #%zu %s  (%s)\n", i, j->fr[i].line, j->fr[i].sym);
        else
            fprintf(f, "  #%zu %s\n", i, j->fr[i].line);
    }
    fprintf(f, "last log lines:\n");
    for (size_t i = 0; i < j->n_lines; i++)
        fprintf(f, "  %s\n", j->lines[i]);
    if (fclose(f) != 0 || rename(tmp, j->path) < 0) {
        odk_error("cannot write crash report %s: %m", j->path);
        unlink(tmp);
    }
}

static void job_free(struct symjob *j)
{
    free(j->head);
    for (size_t i = 0; i < j->nf; i++)
        free(j->frame_lines[i]);
    for (size_t i = 0; i < j->n_lines; i++)
        free(j->lines[i]);
    free(j);
}

/* The function of the first frame in the driver's own shared object (the
 * host loads it from a descriptor: /proc/self/fd/N), for the reason
 * `odkctl list` shows; "" when none is named. */
static void crash_where(const struct symjob *j, char *out, size_t len)
{
    out[0] = 0;
    for (size_t i = 0; i < j->nf && !out[0]; i++) {
        const char *line = j->fr[i].line, *sym = j->fr[i].sym, *open = strchr(line, '(');
        if (strncmp(line, "/proc/self/fd/", 14) != 0)
            continue;
        if (sym[0]) /* "function at file:line" */
            snprintf(out, len, "%.*s",
                     (int)(strstr(sym, " at ") ? strstr(sym, " at ") - sym : (long)strlen(sym)),
                     sym);
        else if (open && open[1] != '+' && open[1] != ')')
            snprintf(out, len, "%.*s", (int)strcspn(open + 1, "+)"), open + 1);
        else
            return; /* the driver's first frame is not named (yet) */
    }
}

static void job_finish(struct odkd *d, struct symjob *j)
{
    write_report(j);
    char where[128];
    crash_where(j, where, sizeof where);
    for (struct instance *in = d->instances; in && where[0]; in = in->next)
        if (in->id == j->instance)
            instance_crash_where(in, j->pid, where);
}

/* Runs the first job's next addr2line, or finishes it and goes on with
 * the next job; once none is left, answers those waiting. */
static void job_step(struct odkd *d)
{
    while (jobs) {
        struct symjob *j = jobs;
        if (j->child > 0)
            return; /* a run in progress */
        size_t next = j->nf;
        for (size_t i = j->k ? j->first + 1 : 0; i < j->nf && next == j->nf; i++) {
            bool seen = false; /* the first frame of each module */
            for (size_t k = 0; k < i && !seen; k++)
                seen = strcmp(j->fr[k].module, j->fr[i].module) == 0;
            if (j->fr[i].module[0] && !seen)
                next = i;
        }
        if (next < j->nf) {
            collect(j, next);
            if (j->k == 0 || !start_run(d, j)) {
                j->k = 1; /* nothing to run for this module: on to the next */
                continue;
            }
            return;
        }
        job_finish(d, j);
        jobs = j->next;
        if (!jobs)
            jobs_tail = &jobs;
        job_free(j);
    }
    while (waits) {
        struct written_wait *w = waits;
        waits = w->next;
        w->fn(d, w->ctx);
        free(w);
    }
}

bool crash_pending(void)
{
    return jobs != NULL;
}

int crash_when_written(struct odkd *d, void (*fn)(struct odkd *d, void *ctx), void *ctx)
{
    (void)d;
    struct written_wait *w = malloc(sizeof *w);
    if (!w)
        return ODK_E_NOMEM;
    *w = (struct written_wait){fn, ctx, waits};
    waits = w;
    return ODK_OK;
}

void crash_finish_all(struct odkd *d)
{
    /* odkd is stopping: every report is written with the names it has. */
    while (jobs) {
        struct symjob *j = jobs;
        end_run(d, j, true);
        job_finish(d, j);
        jobs = j->next;
        job_free(j);
    }
    jobs_tail = &jobs;
    while (waits) {
        struct written_wait *w = waits;
        waits = w->next;
        w->fn(d, w->ctx);
        free(w);
    }
}

struct kept {
    const char *lines[HOSTLOG_LINES];
    size_t n, bt; /* bt: index of the backtrace header, HOSTLOG_LINES if none */
};

static void keep(const char *line, void *ctx)
{
    struct kept *k = ctx;
    if (strstr(line, "fatal signal; backtrace:"))
        k->bt = k->n;
    k->lines[k->n++] = line;
}

void crash_report(struct odkd *d, struct instance *in, pid_t pid, const char *reason)
{
    struct symjob *j = calloc(1, sizeof *j);
    if (j) {
        j->instance = in->id;
        j->pid = pid;
        j->fd = -1;
        j->watch.fd = -1;
        snprintf(j->path, sizeof j->path, "%s/crashes/%s-%u-%lld-%d.txt", d->state_dir,
                 in->bundle->id, in->id, (long long)time(NULL), (int)pid);
    }
    instance_event(in, ODK_LOG_ERROR, "%s#%u (pid %d) %s: %s; report %s", in->bundle->id, in->id,
                   (int)pid, in->kill_reason ? "was killed" : "crashed", reason,
                   j ? j->path : "not written (out of memory)");
    struct kept k = {.bt = HOSTLOG_LINES};
    hostlog_each(&in->log, keep, &k);
    for (size_t i = 0; i < k.n; i++)
        odk_error("  | %s", k.lines[i]);
    if (!j)
        return;
    bool ok = asprintf(&j->head,
                       "bundle: %s\nversion: %s\nbuild: %s\ninstance: %u\npid: %d\nreason: %s\n",
                       in->bundle->id, in->bundle->version, in->bundle->build, in->id, (int)pid,
                       reason) >= 0;
    if (!ok)
        j->head = NULL;
    j->backtrace = k.bt < HOSTLOG_LINES;
    for (size_t i = k.bt + 1; ok && j->backtrace && i < k.n && j->nf < MAX_FRAMES; i++) {
        ok = (j->frame_lines[j->nf] = strdup(k.lines[i])) != NULL;
        if (ok) {
            j->fr[j->nf].line = j->frame_lines[j->nf];
            frame_parse(in, &j->fr[j->nf]);
            j->nf++;
        }
    }
    for (size_t i = 0; ok && i < k.n; i++)
        ok = (j->lines[j->n_lines++] = strdup(k.lines[i])) != NULL;
    if (!ok) {
        odk_error("cannot write crash report %s: out of memory", j->path);
        job_free(j);
        return;
    }
    /* Where it crashed, from the names the frames already have (exported
     * functions, the cache): describe_reason reads it right after this. */
    for (size_t i = 0; i < j->nf; i++) {
        if (!j->fr[i].module[0])
            continue;
        struct stat st;
        const struct sym_entry *e =
            stat(j->fr[i].module, &st) == 0 ? sym_lookup(&st, j->fr[i].offset) : NULL;
        if (e)
            snprintf(j->fr[i].sym, sizeof j->fr[i].sym, "%s", e->sym);
    }
    in->crash_pid = pid;
    crash_where(j, in->crash_where, sizeof in->crash_where);
    *jobs_tail = j;
    jobs_tail = &j->next;
    if (jobs == j)
        job_step(d);
}
