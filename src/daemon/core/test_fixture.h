/* SPDX-License-Identifier: MIT */
/* test_fixture.h — shared set-up for the daemon core's unit tests and
 * fuzzers: a registry with the classes the sim bus and the serial family
 * add at odkd's start (the core itself knows only IOKit's). */
#ifndef ODK_DAEMON_TEST_FIXTURE_H
#define ODK_DAEMON_TEST_FIXTURE_H

#include "daemon/core/registry.h"
#include "odk/status.h"

static inline int fixture_registry(registry **out)
{
    int st = registry_create(out);
    if (st == ODK_OK)
        st = registry_define_class(*out, "OdkSimBus", "IOService");
    if (st == ODK_OK)
        st = registry_define_class(*out, "OdkSimDevice", "IOService");
    if (st == ODK_OK)
        st = registry_define_class(*out, "IOUserSerial", "IOService");
    return st;
}

#endif
