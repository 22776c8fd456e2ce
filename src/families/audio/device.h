/* SPDX-License-Identifier: MIT */
/* device.h — what the audio family's other host-side files (clock.c) need of
 * a device (device.c) beyond odk/audio.h. */
#ifndef ODK_FAMILIES_AUDIO_DEVICE_H
#define ODK_FAMILIES_AUDIO_DEVICE_H

#include <stdint.h>

#include "odk/audio.h"

/* The driver that created dev.  Never fails for a live dev. */
odk_driver *audio_device_driver(const odk_audio_device *dev);
/* The device's zero-timestamp period in frames. */
uint32_t audio_device_period(const odk_audio_device *dev);

#endif
