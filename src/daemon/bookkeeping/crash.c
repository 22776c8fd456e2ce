/* SPDX-License-Identifier: MIT */
/* Crash reports: what a dead driver host left behind, told once in odkd's
 * log and kept in STATE/crashes/ (odkctl crashes).  The host prints a
 * backtrace of the faulting thread from its signal handler; frames of
 * static functions come as module+offset, which addr2line turns into
 * function names and source lines here. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon/bookkeeping/crash.h"
#include "daemon/bookkeeping/instance.h"
#include "daemon/odkd.h"
#include "odk/log.h"

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
    const char *line = f->line, *open = strchr(line, '('),
               *close = open ? strchr(open, ')') : NULL;
    f->module[0] = f->offset[0] = f->sym[0] = 0;
    if (!open || !close || open[1] != '+')
        return;
    snprintf(f->module, sizeof f->module, "%.*s", (int)(open - line), line);
    snprintf(f->offset, sizeof f->offset, "%.*s", (int)(close - open - 2), open + 2);
    /* The host loads the driver from the descriptor odkd passed it. */
    if (strncmp(f->module, "/proc/self/fd/", 14) == 0)
        snprintf(f->module, sizeof f->module, "%s", in->bundle->executable);
}

/* Frames already symbolised.  odkd's loop waits for addr2line (0.1-0.5 s
 * for libc alone, seconds on a loaded machine), and a driver that crashes
 * again and again (up to the crash limit, a crash loop, the fault
 * campaign) dies in the same frames: each is looked up once.  Keyed on the
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
    *e = (struct sym_entry){.dev = st->st_dev, .ino = st->st_ino, .size = st->st_size,
                            .mtime = st->st_mtim};
    snprintf(e->offset, sizeof e->offset, "%s", offset);
    snprintf(e->sym, sizeof e->sym, "%s", sym);
}

/* Symbolises every frame of fr[] in module fr[first].module with one
 * addr2line run (it takes many addresses: two lines out for each, function
 * then file:line), rather than one run per frame: odkd waits for it, and a
 * run costs tens of milliseconds while a backtrace has up to MAX_FRAMES. */
static void symbolise_module(struct frame *fr, size_t n, size_t first)
{
    const char *argv[MAX_FRAMES + 8];
    size_t idx[MAX_FRAMES], k = 0, a = 0;
    struct stat st;
    bool cache = stat(fr[first].module, &st) == 0;
    argv[a++] = "addr2line";
    argv[a++] = "-f";
    argv[a++] = "-C";
    argv[a++] = "-e";
    argv[a++] = fr[first].module;
    for (size_t i = first; i < n && k < MAX_FRAMES; i++)
        if (strcmp(fr[i].module, fr[first].module) == 0) {
            const struct sym_entry *e = cache ? sym_lookup(&st, fr[i].offset) : NULL;
            if (e) {
                snprintf(fr[i].sym, sizeof fr[i].sym, "%s", e->sym);
                continue;
            }
            idx[k++] = i;
            argv[a++] = fr[i].offset;
        }
    argv[a] = NULL;
    if (k == 0)
        return;
    int p[2];
    if (pipe(p) < 0)
        return;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        int null = open("/dev/null", 0);
        if (null >= 0)
            dup2(null, 2);
        execvp("addr2line", (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    char buf[16384];
    size_t got = 0;
    ssize_t r;
    while (pid > 0 && got < sizeof buf - 1 &&
           ((r = read(p[0], buf + got, sizeof buf - 1 - got)) > 0 || (r < 0 && errno == EINTR)))
        if (r > 0)
            got += (size_t)r;
    close(p[0]);
    if (pid > 0)
        waitpid(pid, NULL, 0);
    buf[got] = 0;
    char *line = buf;
    for (size_t j = 0; j < k; j++) {
        char *fn = line, *nl = strchr(fn, '\n');
        if (!nl)
            return;
        *nl = 0;
        char *where = nl + 1, *end = strchr(where, '\n');
        if (!end)
            return;
        *end = 0;
        line = end + 1;
        if (strcmp(fn, "??") != 0)
            snprintf(fr[idx[j]].sym, sizeof fr[idx[j]].sym, "%s at %s", fn, where);
        if (cache)
            sym_store(&st, fr[idx[j]].offset, fr[idx[j]].sym);
    }
}

/* Symbolises fr[0..n): one addr2line run per module. */
static void symbolise(struct frame *fr, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!fr[i].module[0])
            continue;
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(fr[j].module, fr[i].module) == 0;
        if (!seen)
            symbolise_module(fr, n, i);
    }
}

/* Notes the function of the first frame in the driver's own shared object
 * (the host loads it from a descriptor: /proc/self/fd/N), for the reason
 * `odkctl list` shows. */
static void note_where(struct instance *in, const char *line, const char *sym)
{
    if (in->crash_where[0] || strncmp(line, "/proc/self/fd/", 14) != 0)
        return;
    const char *open = strchr(line, '(');
    if (sym && sym[0]) /* "function at file:line" */
        snprintf(in->crash_where, sizeof in->crash_where, "%.*s",
                 (int)(strstr(sym, " at ") ? strstr(sym, " at ") - sym : (long)strlen(sym)), sym);
    else if (open && open[1] != '+' && open[1] != ')')
        snprintf(in->crash_where, sizeof in->crash_where, "%.*s", (int)strcspn(open + 1, "+)"),
                 open + 1);
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
    char path[4096];
    snprintf(path, sizeof path, "%s/crashes/%s-%u-%lld-%d.txt", d->state_dir, in->bundle->id,
             in->id, (long long)time(NULL), (int)pid);
    instance_event(in, ODK_LOG_ERROR, "%s#%u (pid %d) %s: %s; report %s", in->bundle->id, in->id,
                   (int)pid, in->kill_reason ? "was killed" : "crashed", reason, path);
    FILE *f = fopen(path, "w");
    if (!f)
        odk_error("cannot write crash report %s: %m", path);
    if (f)
        fprintf(f, "bundle: %s\nversion: %s\nbuild: %s\ninstance: %u\npid: %d\nreason: %s\n",
                in->bundle->id, in->bundle->version, in->bundle->build, in->id, (int)pid, reason);

    struct kept k = {.bt = HOSTLOG_LINES};
    hostlog_each(&in->log, keep, &k);
    const char **lines = k.lines;
    size_t n = k.n, bt = k.bt;
    if (f) {
        fprintf(f, "backtrace:\n");
        if (bt == HOSTLOG_LINES)
            fprintf(f, "  (none: the host did not die of a signal it could report)\n");
        static struct frame fr[MAX_FRAMES]; /* odkd is one thread */
        size_t nf = 0;
        for (size_t i = bt + 1; bt < HOSTLOG_LINES && i < n && nf < MAX_FRAMES; i++, nf++) {
            fr[nf].line = lines[i];
            frame_parse(in, &fr[nf]);
        }
        symbolise(fr, nf);
        for (size_t j = 0; j < nf; j++) {
            note_where(in, fr[j].line, fr[j].sym);
            if (fr[j].sym[0])
                fprintf(f, "  #%zu %s  (%s)\n", j, fr[j].line, fr[j].sym);
            else
                fprintf(f, "  #%zu %s\n", j, fr[j].line);
        }
        fprintf(f, "last log lines:\n");
    }
    for (size_t i = 0; i < n; i++) {
        odk_error("  | %s", lines[i]);
        if (f)
            fprintf(f, "  %s\n", lines[i]);
    }
    if (f)
        fclose(f);
}
