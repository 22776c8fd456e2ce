/* SPDX-License-Identifier: MIT */
/* The echo driver's user-client selectors and memory operations.
 *
 * echo.c indexes its method table with these; the tests and benchmarks
 * take their numbers from here (C includes this file,
 * tests/integration/driver_selectors.py reads it), so the numbers live in
 * one place.  Keep every enumerator as NAME = NUMBER on a line of its own:
 * the Python reader expects that. */
#ifndef ODK_TESTS_ECHO_SELECTORS_H
#define ODK_TESTS_ECHO_SELECTORS_H

enum echo_selector {
    ECHO_ECHO = 0,          /* structure in, the same structure out */
    ECHO_ADD = 1,           /* two scalars in, their sum out */
    ECHO_COUNT = 2,         /* calls served by this instance (before this one) */
    ECHO_ADD_ASYNC = 3,     /* ECHO_ADD, completed on a later turn of the queue */
    ECHO_STATS = 4,         /* async calls completed, cancelled, still held */
    ECHO_HOLD = 5,          /* async: completes only at ECHO_RELEASE or cancel */
    ECHO_RELEASE = 6,       /* completes every held call; out: how many */
    ECHO_MEMORY = 7,        /* scalars op (enum echo_memory_op), byte; one memory range */
    ECHO_COPY = 8,          /* one OUT range copied into one IN range */
    ECHO_READ_SHARED = 9,   /* the first 8 bytes of the app-written memory (type 1) */
    ECHO_PRODUCE = 10,      /* scalars count, size: records into data queue 0 */
    ECHO_DMA = 11,          /* one IN range; scalars max segment, alignment, flags */
    ECHO_ECHO_ASYNC = 12,   /* ECHO_ECHO, completed from inside the method */
    ECHO_SET_PROPERTY = 13, /* scalars count, first: EchoCounter = first .. first+count-1 */
    ECHO_CHURN = 14,        /* scalar count: an EchoChurn node published, withdrawn */
};

/* Scalar 0 of ECHO_MEMORY. */
enum echo_memory_op {
    ECHO_MEM_FILL = 0,      /* fill an IN/INOUT range with the byte in scalar 1 */
    ECHO_MEM_SUM = 1,       /* out: the sum of the range's bytes */
    ECHO_MEM_INCREMENT = 2, /* add 1 to every byte of an INOUT range */
    ECHO_MEM_TRY_WRITE = 3, /* out: the status of odk_memory_write into the range */
};

#endif
