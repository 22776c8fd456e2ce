/* SPDX-License-Identifier: MIT */
/* odkctl new NAME: writes a driver bundle skeleton into ./NAME.
 *
 * The templates (tools/skeleton/) hold four placeholders:
 *   @NAME@    the name as given: folder, .so, meson target, sim "model"
 *   @ID@      NAME as a C identifier ('-' becomes '_')
 *   @CLASS@   the driver class, NAME in CamelCase + "Driver" (hello-2 -> Hello2Driver)
 *   @BUNDLE@  the bundle id, org.example.NAME                              */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "skeleton.h"

#define BUNDLE_PREFIX "org.example."

struct names {
    const char *name;
    char id[SKELETON_NAME_MAX + 1];
    char cls[SKELETON_NAME_MAX + sizeof "Driver"];
    char bundle[sizeof BUNDLE_PREFIX + SKELETON_NAME_MAX];
};

/* A name becomes a folder, a file name, a C identifier, a class name and
 * part of a bundle id, so it is held to what all of them accept. */
static bool name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > SKELETON_NAME_MAX || !isalpha((unsigned char)name[0]))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!(isascii(c) && (isalnum(c) || c == '-' || c == '_')))
            return false;
    }
    return true;
}

static void derive_names(const char *name, struct names *out)
{
    out->name = name;
    size_t n = strlen(name), k = 0;
    for (size_t i = 0; i < n; i++)
        out->id[i] = name[i] == '-' ? '_' : name[i];
    out->id[n] = 0;
    bool upper = true;
    for (size_t i = 0; i < n; i++) {
        if (name[i] == '-' || name[i] == '_') {
            upper = true;
            continue;
        }
        out->cls[k++] = upper ? (char)toupper((unsigned char)name[i]) : name[i];
        upper = false;
    }
    strcpy(out->cls + k, "Driver");
    snprintf(out->bundle, sizeof out->bundle, "%s%s", BUNDLE_PREFIX, name);
}

/* text with every placeholder filled in; NULL when out of memory. */
static char *fill(const char *text, const struct names *nm)
{
    const struct {
        const char *key, *value;
    } subs[] = {{"@NAME@", nm->name}, {"@ID@", nm->id}, {"@CLASS@", nm->cls},
                {"@BUNDLE@", nm->bundle}};
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f)
        return NULL;
    while (*text) {
        size_t k = 0, n_subs = sizeof subs / sizeof subs[0];
        while (k < n_subs && strncmp(text, subs[k].key, strlen(subs[k].key)) != 0)
            k++;
        if (k < n_subs) {
            fputs(subs[k].value, f);
            text += strlen(subs[k].key);
        } else {
            fputc(*text++, f);
        }
    }
    if (fclose(f) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* Writes one file of the skeleton into dir; never replaces a file. */
static int write_file(const char *dir, const char *name, const char *text)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "odkctl: cannot create %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t len = strlen(text), done = 0;
    while (done < len) {
        ssize_t w = write(fd, text + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            fprintf(stderr, "odkctl: cannot write %s: %s\n", path, strerror(errno));
            close(fd);
            return -1;
        }
        done += (size_t)w;
    }
    if (close(fd) < 0) {
        fprintf(stderr, "odkctl: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Takes back a half-written skeleton: only the files this run created. */
static void remove_skeleton(const struct names *nm, size_t n_written)
{
    for (size_t i = 0; i < n_written; i++) {
        char *name = fill(skeleton_files[i].name, nm);
        char path[PATH_MAX];
        if (name) {
            snprintf(path, sizeof path, "%s/%s", nm->name, name);
            unlink(path);
        }
        free(name);
    }
    rmdir(nm->name);
}

int skeleton_write(const char *name)
{
    if (!name_ok(name)) {
        fprintf(stderr,
                "odkctl: '%s' is not a valid driver name: use a letter followed by letters, "
                "digits, '-' or '_', at most %d characters\n",
                name, SKELETON_NAME_MAX);
        return -1;
    }
    if (mkdir(name, 0755) < 0) {
        if (errno == EEXIST)
            fprintf(stderr, "odkctl: %s already exists; not overwriting it\n", name);
        else
            fprintf(stderr, "odkctl: cannot create folder %s: %s\n", name, strerror(errno));
        return -1;
    }
    struct names nm;
    derive_names(name, &nm);
    for (size_t i = 0; i < skeleton_file_count; i++) {
        char *file = fill(skeleton_files[i].name, &nm), *text = fill(skeleton_files[i].text, &nm);
        int st = file && text ? write_file(name, file, text) : -1;
        if (!file || !text)
            fprintf(stderr, "odkctl: out of memory\n");
        free(file);
        free(text);
        if (st < 0) {
            remove_skeleton(&nm, i + 1);
            return -1;
        }
    }
    printf("wrote %s/: odk.json, %s.c, meson.build, README.md (class %s, bundle %s)\n"
           "next: cd %s && meson setup build && meson compile -C build; see README.md\n",
           name, name, nm.cls, nm.bundle, name);
    return 0;
}
