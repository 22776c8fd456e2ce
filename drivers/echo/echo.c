/* The echo driver: the smallest complete odk driver.
 *
 * It matches simulated devices with "model": "echo", registers a service,
 * and answers three user-client methods:
 *   0  echo:  returns its input structure unchanged (any size)
 *   1  add:   two scalars in, their sum out
 *   2  count: how many calls this instance has served (before this one)
 * docs/driver-guide.md walks through this file. */
#include <string.h>

#include "odk/driver.h"

struct echo_state {
    uint64_t calls; /* touched only on the default queue: no lock needed */
};

static int echo_start(odk_driver *drv)
{
    const char *serial =
        odk_dict_get_string(odk_driver_provider_properties(drv), "serial", "(none)");
    odk_info("echo device %s ready", serial);
    odk_driver_set_property(drv, "EchoSerial", odk_value_new_string(serial));
    return odk_driver_register_service(drv);
}

static void echo_stop(odk_driver *drv)
{
    struct echo_state *s = odk_driver_state(drv);
    odk_info("stopping after %llu calls", (unsigned long long)s->calls);
}

static int echo_echo(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct echo_state *s = odk_driver_state(drv);
    s->calls++;
    if (call->struct_in_len > call->struct_out_cap)
        return ODK_E_BAD_ARGUMENTS; /* the app left too little room for the echo */
    if (call->struct_in_len)
        memcpy(call->struct_out, call->struct_in, call->struct_in_len);
    call->struct_out_len = call->struct_in_len;
    return ODK_OK;
}

static int echo_add(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct echo_state *s = odk_driver_state(drv);
    s->calls++;
    call->scalar_out[0] = call->scalar_in[0] + call->scalar_in[1];
    return ODK_OK;
}

static int echo_count(odk_driver *drv, odk_user_client *uc, odk_call *call)
{
    struct echo_state *s = odk_driver_state(drv);
    call->scalar_out[0] = s->calls++;
    return ODK_OK;
}

static const odk_method echo_methods[] = {
    [0] = {echo_echo, .scalar_in = 0, .scalar_out = 0, .struct_in = ODK_VARIABLE_SIZE,
           .struct_out = ODK_VARIABLE_SIZE},
    [1] = {echo_add, .scalar_in = 2, .scalar_out = 1, .struct_in = 0, .struct_out = 0},
    [2] = {echo_count, .scalar_in = 0, .scalar_out = 1, .struct_in = 0, .struct_out = 0},
};

static const odk_driver_class echo_class = {
    .name = "EchoDriver",
    .super_name = "IOService",
    .state_size = sizeof(struct echo_state),
    .start = echo_start,
    .stop = echo_stop,
    .methods = echo_methods,
    .n_methods = sizeof echo_methods / sizeof echo_methods[0],
};

ODK_DRIVER_CLASS(echo_class)
