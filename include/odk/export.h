/* SPDX-License-Identifier: MIT */
/* odk/export.h — ODK_PUBLIC marks the functions of odk's public API.
 *
 * libodk, the runtime and the common code are compiled with hidden
 * visibility, so only what this marks is visible outside them: libodk.so
 * and odk-driver-host export exactly the public odk_* functions, and a
 * driver or an app cannot bind to internals by accident.  Drivers and apps
 * never need to use it. */
#ifndef ODK_EXPORT_H
#define ODK_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#define ODK_PUBLIC __attribute__((visibility("default")))
#else
#define ODK_PUBLIC
#endif

#endif
