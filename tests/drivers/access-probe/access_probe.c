/* SPDX-License-Identifier: MIT */
/* access-probe: a test driver for user-client access control
 * (tests/integration/test_access.py).  Its personalities differ only in
 * OdkUserClientAccess; the driver itself admits every open odkd lets
 * through, logs it ("client_open by uid U pid P") and counts it, so a test
 * can tell that an open odkd refused never reached the driver.
 * One method (access_probe_selectors.h): PROBE_WHOAMI, no input; out: the
 * calling client's uid and how many opens this instance has seen (this one
 * included). */
#include <stdint.h>

#include "odk/driver.h"

#include "access_probe_selectors.h"

struct probe_state {
    uint64_t opens; /* touched only on the default queue */
};

static int probe_start(odk_driver *drv)
{
    return odk_driver_register_service(drv);
}

static int probe_open(odk_driver *drv, odk_user_client *uc, uint32_t type)
{
    struct probe_state *s = odk_driver_state(drv);
    s->opens++;
    odk_info("client_open by uid %u pid %d type %u (open %llu)", odk_user_client_uid(uc),
             (int)odk_user_client_pid(uc), type, (unsigned long long)s->opens);
    return ODK_OK;
}

static int probe_whoami(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct probe_state *s = odk_driver_state(drv);
    call->scalar_out[0] = odk_user_client_uid(uc);
    call->scalar_out[1] = s->opens;
    return ODK_OK;
}

static const odk_method probe_methods[] = {
    [PROBE_WHOAMI] = {probe_whoami, .scalar_in = 0, .scalar_out = 2, .struct_in = 0,
                      .struct_out = 0},
};

static const odk_driver_class probe_class = {
    .name = "AccessProbe",
    .state_size = sizeof(struct probe_state),
    .start = probe_start,
    .client_open = probe_open,
    .methods = probe_methods,
    .n_methods = sizeof probe_methods / sizeof probe_methods[0],
};

ODK_DRIVER_CLASS(probe_class);
