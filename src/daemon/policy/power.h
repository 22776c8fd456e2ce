/* SPDX-License-Identifier: MIT */
/* power.h — system power transitions (odkctl power sleep|wake). */
#ifndef ODK_DAEMON_POWER_H
#define ODK_DAEMON_POWER_H

#include <stdbool.h>
#include <stdint.h>

#include "odk/value.h"

struct odkd;
struct instance;

/* Called once when a transition ends, with its results {"state",
 * "results": [...]}, which done takes. */
typedef void (*power_done_fn)(struct odkd *d, void *ctx, odk_value *results);

/* Moves every running driver to state (ODK_POWER_OFF or ODK_POWER_ON) in
 * tree order, each under its own power deadline.  ODK_E_BUSY while another
 * transition runs; ODK_E_NOMEM. */
int power_begin(struct odkd *d, uint32_t state, power_done_fn done, void *ctx);
/* The host answered a power request (seq matches in->power_seq). */
void power_reply(struct odkd *d, struct instance *in, int status);
/* The instance's host went away mid-transition. */
void power_instance_gone(struct odkd *d, struct instance *in);

#endif
