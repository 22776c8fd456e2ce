/* SPDX-License-Identifier: MIT */
/* standin — the shared object behind the matching fixtures
 * (src/daemon/core/testdata/wild/): one class for each IOUserClass those
 * DriverKit-shaped personalities name.  Each only registers its service,
 * so a test sees that the personality matched, started and published its
 * carried properties.  No manifest: odkd never loads this folder as a
 * bundle; tests/integration/test_matching.py copies the .so into each
 * fixture under the name its CFBundleExecutable gives. */
#include "odk/driver.h"

static int standin_start(odk_driver *drv)
{
    return odk_driver_register_service(drv);
}

#define STANDIN(var, class_name)                                                                   \
    static const odk_driver_class var = {.name = class_name, .start = standin_start};              \
    ODK_DRIVER_CLASS(var)

STANDIN(usb_serial, "UsbSerialDriver");
STANDIN(usb_hid, "UsbHidKeyboard");
STANDIN(pci_capture, "CaptureCardDriver");
STANDIN(scsi_parallel, "ScsiParallelController");
STANDIN(virtual_hid, "VirtualHIDDevice");
STANDIN(virtual_audio, "VirtualAudioDriver");
