/* SPDX-License-Identifier: MIT */
/* The faulty driver's user-client selectors.
 *
 * faulty.c indexes its method table with these; the tests take their
 * numbers from here (tests/integration/driver_selectors.py reads this
 * file).  Keep every enumerator as NAME = NUMBER on a line of its own. */
#ifndef ODK_TESTS_FAULTY_SELECTORS_H
#define ODK_TESTS_FAULTY_SELECTORS_H

enum faulty_selector {
    FAULTY_OPERATE = 0,     /* out: operate calls so far; sets off the call faults */
    FAULTY_SET_FAULT = 1,   /* structure in: a fault's name */
    FAULTY_PING = 2,        /* one scalar in, that scalar + 1 out; always works */
    FAULTY_POWER_STATE = 3, /* out: the last state set_power_state was given */
};

#endif
