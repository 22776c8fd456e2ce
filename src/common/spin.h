/* SPDX-License-Identifier: MIT */
/* spin.h — the two helpers every spin-then-sleep loop in odk needs. */
#ifndef ODK_COMMON_SPIN_H
#define ODK_COMMON_SPIN_H

#include <stdint.h>
#include <time.h>

/* Tells the CPU we are busy-waiting (saves power, frees the sibling thread). */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

/* CLOCK_MONOTONIC in nanoseconds. */
static inline uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#endif
