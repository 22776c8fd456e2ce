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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon/bookkeeping/crash.h"
#include "daemon/bookkeeping/instance.h"
#include "daemon/odkd.h"
#include "odk/log.h"

#define MAX_FRAMES 32

/* Runs addr2line on module at offset; "function at file:line" into out. */
static void symbolise(const char *module, const char *offset, char *out, size_t len)
{
    out[0] = 0;
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
        execlp("addr2line", "addr2line", "-f", "-C", "-e", module, offset, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    char buf[1024];
    ssize_t n = pid > 0 ? read(p[0], buf, sizeof buf - 1) : -1;
    close(p[0]);
    if (pid > 0)
        waitpid(pid, NULL, 0);
    if (n <= 0)
        return;
    buf[n] = 0;
    char *nl = strchr(buf, '\n');
    if (!nl)
        return;
    *nl = 0;
    char *where = nl + 1;
    char *end = strchr(where, '\n');
    if (end)
        *end = 0;
    if (strcmp(buf, "??") != 0)
        snprintf(out, len, "%s at %s", buf, where);
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

/* "path(+0x1a2b) [0x...]" or "path(func+0x10) [0x...]": a frame line the
 * host's handler printed.  Writes the symbolised form into out. */
static void frame(struct instance *in, const char *line, char *out, size_t len)
{
    const char *open = strchr(line, '('), *close = open ? strchr(open, ')') : NULL;
    snprintf(out, len, "%s", line);
    if (!open || !close || open[1] != '+') {
        note_where(in, line, NULL);
        return; /* already named (an exported function), or not a frame */
    }
    char module[512], offset[64];
    snprintf(module, sizeof module, "%.*s", (int)(open - line), line);
    snprintf(offset, sizeof offset, "%.*s", (int)(close - open - 2), open + 2);
    /* The host loads the driver from the descriptor odkd passed it. */
    if (strncmp(module, "/proc/self/fd/", 14) == 0)
        snprintf(module, sizeof module, "%s", in->bundle->executable);
    char sym[768];
    symbolise(module, offset, sym, sizeof sym);
    note_where(in, line, sym);
    if (sym[0])
        snprintf(out, len, "%s  (%s)", line, sym);
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
        for (size_t i = bt + 1, j = 0; bt < HOSTLOG_LINES && i < n && j < MAX_FRAMES; i++, j++) {
            char out[1536];
            frame(in, lines[i], out, sizeof out);
            fprintf(f, "  #%zu %s\n", j, out);
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
