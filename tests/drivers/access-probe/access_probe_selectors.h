/* SPDX-License-Identifier: MIT */
/* The access-probe driver's user-client selectors.  access_probe.c indexes
 * its method table with them; tests/integration/test_access.py reads this
 * file (driver_selectors.read_enums), so keep each enumerator as
 * NAME = NUMBER on a line of its own. */
#ifndef ODK_TESTS_ACCESS_PROBE_SELECTORS_H
#define ODK_TESTS_ACCESS_PROBE_SELECTORS_H

enum access_probe_selector {
    PROBE_WHOAMI = 0, /* out: the calling client's uid, opens this instance has seen */
};

#endif
