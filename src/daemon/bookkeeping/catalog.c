/* SPDX-License-Identifier: MIT */
/* The catalog: every bundle odkd knows, from --drivers folders and from
 * `odkctl install` (copied into STATE/bundles/ID so a later rebuild in the
 * source folder does not change what runs until it is installed again). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "daemon/bookkeeping/catalog.h"
#include "daemon/bookkeeping/host.h"
#include "daemon/odkd.h"
#include "daemon/core/match_index.h"
#include "odk/log.h"
#include "odk/status.h"

struct catalog_entry *catalog_find(struct odkd *d, const char *bundle_id)
{
    for (struct catalog_entry *e = d->catalog; e; e = e->next)
        if (strcmp(e->bundle->id, bundle_id) == 0)
            return e;
    return NULL;
}

bundle **catalog_bundles(struct odkd *d, size_t *n)
{
    size_t count = 0;
    for (struct catalog_entry *e = d->catalog; e; e = e->next)
        count++;
    *n = count;
    bundle **v = calloc(count ? count : 1, sizeof *v);
    if (!v)
        return NULL;
    size_t i = 0;
    for (struct catalog_entry *e = d->catalog; e; e = e->next)
        v[i++] = e->bundle;
    return v;
}

/* The catalog changed: the index of its personalities is out of date. */
static void changed(struct odkd *d)
{
    match_index_free(d->match_index);
    d->match_index = NULL;
}

struct match_index *catalog_index(struct odkd *d)
{
    if (d->match_index)
        return d->match_index;
    size_t n = 0;
    bundle **v = catalog_bundles(d, &n);
    if (!v)
        return NULL;
    d->match_index = match_index_build(d->reg, v, n);
    free(v);
    return d->match_index;
}

int catalog_verify(struct odkd *d, const bundle *b, char *err, size_t err_len)
{
    struct signature_trust t = {d->trust_dir, d->dev};
    return bundle_verify(b, &t, err, err_len);
}

/* ---- the check at every launch, remembered ------------------------------
 *
 * Hashing and verifying a bundle at every launch costs odkd about a
 * millisecond of each plug.  What the check reads is the bundle folder's
 * files and the trust folder's keys: when none of them changed since the
 * last check that passed, the answer is the same.  "Changed" is judged by
 * each entry's stat (inode, size, mode, modification and change times,
 * following symbolic links as the check does): a write changes the change
 * time, which no one can set back, and a replaced file has another inode.
 * An entry changed less than STAMP_SETTLE_S ago is not trusted to show a
 * later change (timestamps are coarser than writes), so such a bundle is
 * checked in full at each launch until it settles. */
#define STAMP_SETTLE_S 2

struct stamp_ctx {
    crypto_generichash_state h;
    struct timespec now;
    bool recent;
};

static long long age_ns(const struct timespec *now, const struct timespec *t)
{
    return (long long)(now->tv_sec - t->tv_sec) * 1000000000LL + (now->tv_nsec - t->tv_nsec);
}

static void stamp_stat(struct stamp_ctx *c, const char *name, const struct stat *sb)
{
    struct {
        dev_t dev;
        ino_t ino;
        mode_t mode;
        off_t size;
        struct timespec mtime, ctime;
    } rec;
    memset(&rec, 0, sizeof rec); /* no padding bytes of the stack in the hash */
    rec.dev = sb->st_dev;
    rec.ino = sb->st_ino;
    rec.mode = sb->st_mode;
    rec.size = sb->st_size;
    rec.mtime = sb->st_mtim;
    rec.ctime = sb->st_ctim;
    crypto_generichash_update(&c->h, (const unsigned char *)name, strlen(name) + 1);
    crypto_generichash_update(&c->h, (const unsigned char *)&rec, sizeof rec);
    if (age_ns(&c->now, &sb->st_ctim) < STAMP_SETTLE_S * 1000000000LL ||
        age_ns(&c->now, &sb->st_mtim) < STAMP_SETTLE_S * 1000000000LL)
        c->recent = true; /* (also a time in the future) */
}

/* Whether path exists (a stat that fails is hashed as "-"). */
static bool stamp_path(struct stamp_ctx *c, const char *path)
{
    struct stat sb;
    if (path && stat(path, &sb) == 0) {
        stamp_stat(c, path, &sb);
        return true;
    }
    crypto_generichash_update(&c->h, (const unsigned char *)"-", 2);
    return false;
}

/* The folder and every entry in it, in readdir's order (an order that
 * changes only makes the next launch check in full).  A folder that is
 * not there (a trust folder without dev/, say) is not opened as well. */
static void stamp_dir(struct stamp_ctx *c, const char *dir)
{
    DIR *dh = stamp_path(c, dir) ? opendir(dir) : NULL;
    if (!dh)
        return;
    for (struct dirent *de; (de = readdir(dh));) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char path[4096];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= sizeof path)
            c->recent = true; /* cannot tell: check in full */
        else
            stamp_path(c, path);
    }
    closedir(dh);
}

int catalog_verify_launch(struct odkd *d, bundle *b, char *err, size_t err_len)
{
    struct stamp_ctx c = {.recent = false};
    unsigned char stamp[sizeof b->launch_stamp];
    clock_gettime(CLOCK_REALTIME, &c.now);
    crypto_generichash_init(&c.h, NULL, 0, sizeof stamp);
    crypto_generichash_update(&c.h, (const unsigned char *)&d->dev, sizeof d->dev);
    stamp_dir(&c, b->dir);
    stamp_path(&c, b->executable);
    stamp_path(&c, b->manifest);
    if (d->trust_dir) {
        char dev_dir[4096];
        snprintf(dev_dir, sizeof dev_dir, "%s/dev", d->trust_dir);
        stamp_dir(&c, d->trust_dir);
        stamp_dir(&c, dev_dir);
    }
    crypto_generichash_final(&c.h, stamp, sizeof stamp);
    if (!c.recent && b->launch_checked && memcmp(stamp, b->launch_stamp, sizeof stamp) == 0) {
        odk_debug("%s: unchanged since its last launch check", b->id);
        return ODK_OK;
    }
    odk_debug("%s: launch check in full (%s)", b->id,
              c.recent ? "a file changed in the last seconds" : "changed or first");
    int st = catalog_verify(d, b, err, err_len);
    b->launch_checked = st == ODK_OK && !c.recent;
    memcpy(b->launch_stamp, stamp, sizeof stamp);
    return st;
}

/* Takes b; NULL (b freed) when out of memory. */
static struct catalog_entry *add_entry(struct odkd *d, bundle *b, bool installed)
{
    struct catalog_entry *e = calloc(1, sizeof *e);
    if (!e) {
        bundle_free(b);
        return NULL;
    }
    e->bundle = b;
    e->installed = installed;
    changed(d);
    struct catalog_entry **p = &d->catalog;
    while (*p)
        p = &(*p)->next;
    *p = e;
    return e;
}

static bool is_bundle_dir(const char *path)
{
    char f[4096];
    struct stat st;
    snprintf(f, sizeof f, "%s/odk.json", path);
    if (stat(f, &st) == 0)
        return true;
    snprintf(f, sizeof f, "%s/Info.plist", path);
    return stat(f, &st) == 0;
}

/* Loads every bundle folder under dir.  A bad bundle is reported and
 * skipped: the others still load. */
int catalog_load_dir(struct odkd *d, const char *dir)
{
    DIR *dh = opendir(dir);
    if (!dh) {
        odk_error("cannot read drivers folder %s: %m", dir);
        return ODK_E_IO;
    }
    struct dirent *de;
    while ((de = readdir(dh))) {
        if (de->d_name[0] == '.')
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (!is_bundle_dir(path))
            continue;
        bundle *b = NULL;
        char err[1024];
        int st = bundle_load(path, &b, err, sizeof err);
        if (st < 0) {
            odk_error("skipping bundle: %s", err);
            continue;
        }
        if (catalog_verify(d, b, err, sizeof err) < 0) {
            odk_error("refusing bundle %s: %s", b->id, err);
            bundle_free(b);
            continue;
        }
        if (catalog_find(d, b->id)) {
            odk_warn("bundle %s in %s: already loaded from another folder; skipped", b->id, path);
            bundle_free(b);
            continue;
        }
        odk_info("bundle %s %s (build %s) from %s", b->id, b->version, b->build, b->dir);
        if (!add_entry(d, b, false))
            odk_error("out of memory adding bundle %s", path);
    }
    closedir(dh);
    return ODK_OK;
}

static int copy_file(const char *from, const char *to)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return ODK_E_IO;
    int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        close(in);
        return ODK_E_IO;
    }
    char buf[65536];
    ssize_t n;
    int st = ODK_OK;
    while ((n = read(in, buf, sizeof buf)) > 0) {
        if (write(out, buf, (size_t)n) != n) {
            st = ODK_E_IO;
            break;
        }
    }
    if (n < 0)
        st = ODK_E_IO;
    close(in);
    if (close(out) < 0)
        st = ODK_E_IO;
    return st;
}

/* Copies the regular files of a bundle folder (bundles are flat). */
static int copy_bundle(const char *from, const char *to)
{
    if (mkdir(to, 0755) < 0 && errno != EEXIST)
        return ODK_E_IO;
    DIR *dh = opendir(from);
    if (!dh)
        return ODK_E_IO;
    struct dirent *de;
    int st = ODK_OK;
    while (st == ODK_OK && (de = readdir(dh))) {
        char a[4096], b[4096];
        struct stat sb;
        snprintf(a, sizeof a, "%s/%s", from, de->d_name);
        snprintf(b, sizeof b, "%s/%s", to, de->d_name);
        if (stat(a, &sb) == 0 && S_ISREG(sb.st_mode))
            st = copy_file(a, b);
    }
    closedir(dh);
    return st;
}

static void remove_bundle_dir(const char *dir)
{
    DIR *dh = opendir(dir);
    if (dh) {
        struct dirent *de;
        while ((de = readdir(dh))) {
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            if (de->d_name[0] != '.' || (de->d_name[1] && strcmp(de->d_name, "..") != 0))
                unlink(p);
        }
        closedir(dh);
    }
    rmdir(dir);
}

static void retire_entry(struct odkd *d, struct catalog_entry *e)
{
    changed(d);
    host_prime_forget(d, e->bundle->id); /* its primed host has the old build loaded */
    for (struct catalog_entry **p = &d->catalog; *p; p = &(*p)->next) {
        if (*p == e) {
            *p = e->next;
            break;
        }
    }
    /* Instances still stopping keep pointers into the bundle: move them
     * onto a copy of the bundle id so describe() keeps working, and free
     * the entry once they are gone.  Simplest correct approach: keep the
     * entry alive (leaked into d->retired) until odkd exits. */
    e->next = d->retired;
    d->retired = e;
}

/* STATE/bundles/ID.current names the folder of the installed build, so a
 * restarted odkd runs what was last installed. */
static void record_current(struct odkd *d, const bundle *b)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/bundles/%s.current", d->state_dir, b->id);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return;
    fprintf(f, "%s\n", b->dir);
    if (fclose(f) == 0)
        rename(tmp, path);
}

static void forget_current(struct odkd *d, const char *bundle_id)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/bundles/%s.current", d->state_dir, bundle_id);
    unlink(path);
}

int catalog_load_installed(struct odkd *d)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/bundles", d->state_dir);
    DIR *dh = opendir(dir);
    if (!dh)
        return ODK_E_IO;
    struct dirent *de;
    while ((de = readdir(dh))) {
        size_t n = strlen(de->d_name);
        if (n < 9 || strcmp(de->d_name + n - 8, ".current") != 0)
            continue;
        char path[4400], folder[4096] = "";
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        FILE *f = fopen(path, "r");
        if (!f || !fgets(folder, sizeof folder, f)) {
            if (f)
                fclose(f);
            continue;
        }
        fclose(f);
        folder[strcspn(folder, "\n")] = 0;
        bundle *b = NULL;
        char err[1024];
        if (bundle_load(folder, &b, err, sizeof err) < 0) {
            odk_error("installed bundle recorded in %s does not load: %s", path, err);
            continue;
        }
        if (catalog_verify(d, b, err, sizeof err) < 0) {
            odk_error("refusing installed bundle %s: %s", b->id, err);
            bundle_free(b);
            continue;
        }
        odk_info("bundle %s %s (build %s), installed, from %s", b->id, b->version, b->build,
                 b->dir);
        if (!add_entry(d, b, true))
            odk_error("out of memory adding bundle %s", folder);
    }
    closedir(dh);
    return ODK_OK;
}

int catalog_install(struct odkd *d, const char *path, bool *changed,
                    struct catalog_entry **replaced, char *err, size_t err_len)
{
    *changed = false;
    *replaced = NULL;
    bundle *b = NULL;
    int st = bundle_load(path, &b, err, err_len);
    if (st == ODK_OK)
        st = catalog_verify(d, b, err, err_len);
    if (st < 0) {
        bundle_free(b);
        return st;
    }
    struct catalog_entry *old = catalog_find(d, b->id);
    if (old && strcmp(old->bundle->build, b->build) == 0 &&
        strcmp(old->bundle->version, b->version) == 0) {
        odk_info("install %s: build %s is already installed; nothing to do", b->id, b->build);
        bundle_free(b);
        return ODK_OK;
    }
    /* Builds live side by side, each in its own folder; the catalog entry
     * points at the one that runs. */
    char staged[4096];
    snprintf(staged, sizeof staged, "%s/bundles/%s-%s", d->state_dir, b->id, b->build);
    remove_bundle_dir(staged);
    st = copy_bundle(b->dir, staged);
    bundle *nb = NULL;
    if (st == ODK_OK) {
        st = bundle_load(staged, &nb, err, err_len);
        /* The copy is what runs: it is checked, not only its source. */
        if (st == ODK_OK && (st = catalog_verify(d, nb, err, err_len)) < 0) {
            bundle_free(nb);
            nb = NULL;
        }
    } else {
        snprintf(err, err_len, "cannot copy %s into %s: %s", b->dir, staged, strerror(errno));
    }
    bundle_free(b);
    if (st < 0) {
        remove_bundle_dir(staged);
        return st;
    }
    odk_info("installed %s %s (build %s)%s", nb->id, nb->version, nb->build,
             old ? ", replacing the running build" : "");
    if (old)
        retire_entry(d, old);
    struct catalog_entry *e = add_entry(d, nb, true);
    if (!e) {
        snprintf(err, err_len, "out of memory adding %s to the catalog", path);
        return ODK_E_NOMEM;
    }
    e->previous = old;
    *replaced = old;
    record_current(d, nb);
    *changed = true;
    return ODK_OK;
}

int catalog_uninstall(struct odkd *d, const char *bundle_id, struct catalog_entry **removed)
{
    struct catalog_entry *e = catalog_find(d, bundle_id);
    *removed = e;
    if (!e)
        return ODK_E_NOT_FOUND;
    retire_entry(d, e);
    forget_current(d, bundle_id);
    odk_info("uninstalled %s", bundle_id);
    return ODK_OK;
}

bool catalog_rollback(struct odkd *d, struct catalog_entry *e, const char *reason)
{
    struct catalog_entry *prev = e->previous;
    if (!prev)
        return false;
    e->previous = NULL;
    odk_error("install of %s %s (build %s) failed: %s; rolling back to %s (build %s)",
              e->bundle->id, e->bundle->version, e->bundle->build, reason, prev->bundle->version,
              prev->bundle->build);
    /* Take the previous entry back out of the retired list... */
    for (struct catalog_entry **p = &d->retired; *p; p = &(*p)->next) {
        if (*p == prev) {
            *p = prev->next;
            break;
        }
    }
    /* ...retire the new one and put the previous in its place. */
    retire_entry(d, e);
    prev->next = NULL;
    struct catalog_entry **tail = &d->catalog;
    while (*tail)
        tail = &(*tail)->next;
    *tail = prev;
    changed(d);
    if (prev->installed)
        record_current(d, prev->bundle);
    else
        forget_current(d, prev->bundle->id);
    return true;
}

void catalog_confirm(struct catalog_entry *e)
{
    e->previous = NULL;
}

static void free_list(struct catalog_entry *e)
{
    while (e) {
        struct catalog_entry *next = e->next;
        bundle_free(e->bundle);
        free(e);
        e = next;
    }
}

void catalog_free(struct odkd *d)
{
    changed(d);
    free_list(d->catalog);
    free_list(d->retired);
    d->catalog = d->retired = NULL;
}
