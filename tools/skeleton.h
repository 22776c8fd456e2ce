/* SPDX-License-Identifier: MIT */
/* The bundle skeleton `odkctl new NAME` writes (templates in tools/skeleton/,
 * embedded at build time by tools/embed_skeleton.py). */
#ifndef ODK_TOOLS_SKELETON_H
#define ODK_TOOLS_SKELETON_H

#include <stddef.h>

struct skeleton_file {
    const char *name; /* in the bundle folder; may contain @NAME@ */
    const char *text; /* with @NAME@, @ID@, @CLASS@, @BUNDLE@ to fill in */
};

extern const struct skeleton_file skeleton_files[];
extern const size_t skeleton_file_count;

/* The longest NAME `odkctl new` accepts. */
#define SKELETON_NAME_MAX 64

/* Writes the skeleton for NAME into the new folder ./NAME.  Returns 0, or
 * -1 after printing why to stderr: a bad name, a folder that already exists
 * (never overwritten), or an I/O error (what was written is removed). */
int skeleton_write(const char *name);

#endif
