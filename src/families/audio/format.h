/* SPDX-License-Identifier: MIT */
/* format.h — the audio family's checks of formats and device descriptions
 * (format.c): pure functions, shared by the host side and its unit tests. */
#ifndef ODK_FAMILIES_AUDIO_FORMAT_H
#define ODK_FAMILIES_AUDIO_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "odk/audio.h"

/* Checks one entry of an available-formats list: as odk_audio_format_check,
 * but rate 0 ("every available rate") is allowed. */
int audio_entry_check(const odk_audio_format *f, char *why, size_t why_len);
/* Checks a list of sample rates and that rate is one of them. */
int audio_rates_check(const uint32_t *rates, size_t n, uint32_t rate, char *why, size_t why_len);
/* Whether the concrete format f is among entries (rate-0 entries hold at
 * each of rates). */
bool audio_format_available(const odk_audio_format *entries, size_t n_entries,
                            const uint32_t *rates, size_t n_rates, const odk_audio_format *f);
/* Checks a stream description against the device's rates and zero-timestamp
 * period: its formats, its current format (available, at rate), its ring. */
int audio_stream_check(const odk_audio_stream_desc *s, const uint32_t *rates, size_t n_rates,
                       uint32_t rate, uint32_t period, char *why, size_t why_len);
/* Checks a whole device description; why gets "stream 1: ..." and the like. */
int audio_device_check(const odk_audio_device_desc *d, char *why, size_t why_len);
/* "volume", "mute", "selector"; NULL for an unknown kind. */
const char *audio_control_kind_name(uint32_t kind);

#endif
