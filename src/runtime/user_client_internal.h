/* user_client_internal.h — serving an app's connection inside the host. */
#ifndef ODK_RUNTIME_USER_CLIENT_INTERNAL_H
#define ODK_RUNTIME_USER_CLIENT_INTERNAL_H

#include "runtime/driver_internal.h"

/* Closes every user client of drv (apps see the channel close and get
 * ODK_E_GONE).  On the default queue. */
void user_client_close_all(odk_driver *drv);

#endif
