/* SPDX-License-Identifier: MIT */
/* The sandbox-probe driver's user-client selectors and the attempts it
 * makes on request (tests/integration/test_sandbox.py reads this file).
 * Keep every enumerator as NAME = NUMBER on a line of its own. */
#ifndef ODK_TESTS_SANDBOX_PROBE_SELECTORS_H
#define ODK_TESTS_SANDBOX_PROBE_SELECTORS_H

enum probe_selector {
    PROBE_TRY = 0, /* scalars in: an attempt (enum probe_attempt) and its argument (or 0);
                    * struct in: a path where it takes one; scalar out: 0 or the errno */
};

enum probe_attempt {
    PROBE_OPEN_SHADOW = 0,    /* open("/etc/shadow", O_RDONLY) */
    PROBE_OPEN_PASSWD = 1,    /* open("/etc/passwd", O_RDONLY): world-readable, outside the rules */
    PROBE_WRITE_PATH = 2,     /* create the file named by the struct (outside its folder) */
    PROBE_WRITE_RUNTIME = 3,  /* create a file in its runtime folder (its working directory) */
    PROBE_INET_SOCKET = 4,    /* socket(AF_INET, SOCK_STREAM) */
    PROBE_CONNECT_LOOPBACK = 5, /* connect to 127.0.0.1, port in scalar 1 */
    PROBE_SETUID_ROOT = 6,    /* setuid(0) */
    PROBE_MOUNT = 7,          /* mount a tmpfs on its runtime folder */
    PROBE_EXEC_SHELL = 8,     /* execve("/bin/sh") */
    PROBE_PTRACE = 9,         /* ptrace(PTRACE_ATTACH) of the pid in scalar 1: seccomp kills */
    PROBE_INIT_MODULE = 10,   /* init_module: seccomp kills */
    PROBE_NETLINK_SOCKET = 11, /* socket(AF_NETLINK): refused even with network-client */
    PROBE_ABSTRACT_LISTEN = 12, /* bind and listen on the abstract Unix socket named by the
                                 * struct (kept open until the host exits) */
    PROBE_ABSTRACT_CONNECT = 13, /* connect to the abstract Unix socket named by the struct */
};

#endif
