/* SPDX-License-Identifier: MIT */
/* The simulated cable, host side: a sim NIC driver's way to its end of the
 * cable odkd keeps (cable.c).  A real NIC driver never calls these. */
#include <unistd.h>

#include "odk/net.h"
#include "runtime/host_link.h"

int odk_net_sim_cable_open(odk_driver *drv, int *sock, int *event, odk_value **settings)
{
    if (!drv || !sock || !event || !settings)
        return ODK_E_INVALID;
    *settings = NULL;
    int fds[2] = {-1, -1};
    size_t n_fds = 2;
    odk_value *reply = NULL;
    int st = host_link_request_fds("net-sim-cable", odk_value_new_dict(), &reply, fds, &n_fds);
    if (st == ODK_OK && n_fds != 2)
        st = ODK_E_PROTOCOL;
    if (st < 0) {
        for (size_t i = 0; i < n_fds; i++)
            close(fds[i]);
        odk_value_free(reply);
        return st;
    }
    *sock = fds[0];
    *event = fds[1];
    *settings = reply;
    return ODK_OK;
}

int odk_net_sim_cable_settings(odk_driver *drv, odk_value **settings)
{
    if (!drv || !settings)
        return ODK_E_INVALID;
    *settings = NULL;
    return host_link_request("net-sim-cable-state", odk_value_new_dict(), settings);
}
