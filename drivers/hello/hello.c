/* SPDX-License-Identifier: MIT */
/* hello: the smallest complete odk driver.
 *
 * It matches sim devices with "model": "hello", registers its service so
 * apps can find it, and answers one user-client method:
 *   selector 0  add: two scalars in, their sum out
 * The method table declares the shape of each call, so the runtime refuses
 * a call with the wrong number of scalars before the method runs. */
#include "odk/driver.h"

static int hello_start(odk_driver *drv)
{
    odk_info("hello device ready");
    return odk_driver_register_service(drv);
}

static int hello_add(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    call->scalar_out[0] = call->scalar_in[0] + call->scalar_in[1];
    return ODK_OK;
}

static const odk_method hello_methods[] = {
    [0] = {hello_add, .scalar_in = 2, .scalar_out = 1},
};

static const odk_driver_class hello_class = {
    .name = "HelloDriver",
    .start = hello_start,
    .methods = hello_methods,
    .n_methods = sizeof hello_methods / sizeof hello_methods[0],
};

ODK_DRIVER_CLASS(hello_class);
