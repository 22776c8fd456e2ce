/* SPDX-License-Identifier: MIT */
/* odkctl audio: audio devices, their streams, controls and clock
 * (odkctl_audio.c), through libodk's audio client API. */
#ifndef ODKCTL_AUDIO_H
#define ODKCTL_AUDIO_H

#include <stdbool.h>

/* `odkctl audio [watch [UID] [COUNT] | control UID ID VALUE]`.  state_dir
 * as odkctl's --state-dir (NULL: the default).  Returns the exit status (0,
 * 1 on an error, 2 on bad usage). */
int odkctl_audio(const char *state_dir, int argc, char **argv, bool json);

#endif
