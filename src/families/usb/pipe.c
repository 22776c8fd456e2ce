/* SPDX-License-Identifier: MIT */
/* pipe.c — odk_usb_pipe: transfers on one endpoint (IOUSBHostPipe). */
#include <stdlib.h>

#include "families/usb/usb_pipe.h"
#include "odk/status.h"

const odk_usb_endpoint_descriptor *odk_usb_pipe_descriptor(odk_usb_pipe *pipe)
{
    return pipe ? &pipe->desc : NULL;
}

int odk_usb_pipe_io(odk_usb_pipe *pipe, odk_memory *buffer, uint64_t offset, uint32_t length,
                    uint32_t *actual, uint32_t timeout_ms)
{
    if (actual)
        *actual = 0;
    if (!pipe)
        return ODK_E_INVALID;
    if (pipe->stale)
        return ODK_E_GONE;
    return usb_link_io(pipe->intf->link, pipe->desc.bEndpointAddress, buffer, offset, length,
                       actual, timeout_ms);
}

int odk_usb_pipe_async_io(odk_usb_pipe *pipe, odk_memory *buffer, uint64_t offset,
                          uint32_t length, uint32_t timeout_ms, odk_usb_completion done,
                          void *ctx)
{
    if (!pipe || !done)
        return ODK_E_INVALID;
    if (pipe->stale)
        return ODK_E_GONE;
    return usb_link_submit(pipe->intf->link, pipe->desc.bEndpointAddress, buffer, offset, length,
                           timeout_ms, done, ctx, odk_driver_queue(pipe->intf->drv));
}

int odk_usb_pipe_abort(odk_usb_pipe *pipe)
{
    if (!pipe)
        return ODK_E_INVALID;
    return usb_link_abort(pipe->intf->link, pipe->desc.bEndpointAddress);
}

int odk_usb_pipe_clear_stall(odk_usb_pipe *pipe)
{
    if (!pipe)
        return ODK_E_INVALID;
    int st = odk_usb_pipe_abort(pipe);
    if (st < 0)
        return st;
    odk_usb_request r = {ODK_USB_REQ_OUT | ODK_USB_REQ_STANDARD | ODK_USB_REQ_ENDPOINT, 1, 0,
                         pipe->desc.bEndpointAddress, 0};
    return usb_link_control(pipe->intf->link, &r, NULL, NULL, 0);
}

void odk_usb_pipe_release(odk_usb_pipe *pipe)
{
    if (!pipe)
        return;
    if (!pipe->stale)
        odk_usb_pipe_abort(pipe);
    for (odk_usb_pipe **p = &pipe->intf->pipes; *p; p = &(*p)->next)
        if (*p == pipe) {
            *p = pipe->next;
            break;
        }
    free(pipe);
}
