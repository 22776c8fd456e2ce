/* SPDX-License-Identifier: MIT */
/* odk/version.h — the version of the driver contract.
 *
 * ODK_API_VERSION changes whenever a compiled driver and odk-driver-host
 * would disagree: a field of odk_driver_class, odk_call or odk_method moves,
 * a callback's signature changes, a documented behaviour a driver relies on
 * changes.  ODK_DRIVER_CLASS (odk/driver.h) records the version a driver was
 * compiled against, and the size of its odk_driver_class, and
 * odk-driver-host refuses to start a class built for another version
 * (ODK_E_LOAD, with both versions in the driver's log).
 *
 * Compile-time constants only: nothing here is called, so nothing fails,
 * blocks or depends on a thread.
 */
#ifndef ODK_VERSION_H
#define ODK_VERSION_H

/* 2: odk_net_config gained offloads and odk_net_ops four filter ops (the
 *    network family's structs grew at their ends). */
#define ODK_API_VERSION 2u

/* The version ODK_DRIVER_CLASS records.  Only the version check's own tests
 * set ODK_API_VERSION_OVERRIDE (-DODK_API_VERSION_OVERRIDE=99), to build a
 * driver that claims another version; drivers never do. */
#ifdef ODK_API_VERSION_OVERRIDE
#define ODK_DRIVER_API_VERSION ((unsigned)(ODK_API_VERSION_OVERRIDE))
#else
#define ODK_DRIVER_API_VERSION ODK_API_VERSION
#endif

#endif
