/* SPDX-License-Identifier: MIT */
/* The lifecycle trace: with ODK_TRACE=FILE in the environment, odkd and
 * every driver host append one line per step of a plug, a start, an open
 * and an unplug to FILE: "MICROSECONDS PID WHAT", the time from
 * CLOCK_MONOTONIC, so lines of several processes sort into one timeline
 * (tools/trace-steps turns them into the step breakdown of
 * docs/testing.md, "Where a plug's time goes").  Unset, a step costs one
 * branch.  Not a log: nothing reads it but a person timing odk.
 *
 * A step that sends a message ("odkd start sent to N", "odkd client
 * replied", "odkd event ...", "host start done") is marked just before the
 * send, so the receiver's next step never comes first in the timeline. */
#ifndef ODK_COMMON_TRACE_H
#define ODK_COMMON_TRACE_H

#include <stdbool.h>

/* Opens $ODK_TRACE for appending (once; later calls do nothing; any
 * thread, so a library may call it: libodk does in odk_hid_open).  Call
 * it before a sandbox is applied: the descriptor stays usable after. */
void trace_open(void);

/* True when the trace is on: a caller that must compute what it marks
 * asks first (the HID path's steps end in "cpu N", sched_getcpu(), so
 * tools/trace-steps --split shows a wake-up that crossed CPUs). */
bool trace_on(void);

/* Appends one line (one write with O_APPEND, so lines of several
 * processes and threads never interleave; cut at about 200 bytes).  Any
 * thread; never fails (a lost line is not reported). */
void trace_mark(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
