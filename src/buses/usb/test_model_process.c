/* SPDX-License-Identifier: MIT */
/* Tests of odk-usb-model as a process: the sim wire protocol as odkd and a
 * driver host speak it (sim_wire.h).  argv[1] is the program. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "buses/usb/sim_wire.h"
#include "odk/status.h"
#include "odk/usb_descriptors.h"

static const char *program;

struct proc {
    pid_t pid;
    int odkd; /* our end of fd 3 */
};

static struct proc start(const char *model, const char *args)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(sv[1], 3);
        execl(program, program, model, args, (char *)NULL);
        _exit(127);
    }
    close(sv[1]);
    return (struct proc){pid, sv[0]};
}

static int finish(struct proc *p)
{
    close(p->odkd);
    int status;
    assert_int_equal(waitpid(p->pid, &status, 0), p->pid);
    return status;
}

static void send_fd(int sock, const struct usb_wire *w, const void *body, size_t len, int fd)
{
    assert_int_equal(usb_wire_send(sock, w, body, len, fd, 0), 0);
}

/* Receives one message; returns its body length. */
static size_t recv_msg(int sock, struct usb_wire *w, void *body, size_t cap)
{
    struct iovec iov[2] = {{w, sizeof *w}, {body, cap}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
    ssize_t n = recvmsg(sock, &mh, 0);
    assert_true(n >= (ssize_t)sizeof *w);
    return (size_t)n - sizeof *w;
}

/* Receives until a message of op arrives (skipping notifications). */
static size_t expect(int sock, uint32_t op, struct usb_wire *w, void *body, size_t cap)
{
    for (;;) {
        size_t n = recv_msg(sock, w, body, cap);
        if (w->op == op)
            return n;
        if (w->op != USBW_REPORT && w->op != USBW_CONFIGURED)
            fail_msg("expected op %u, got op %u", op, w->op);
    }
}

static int control(int sock, uint8_t type, uint8_t req, uint16_t value, uint16_t index,
                   uint16_t len, void *data, uint32_t *actual)
{
    static uint32_t id = 100;
    struct usb_wire w = {.op = USBW_CONTROL, .id = ++id,
                         .setup = {type, req, (uint8_t)value, (uint8_t)(value >> 8),
                                   (uint8_t)index, (uint8_t)(index >> 8), (uint8_t)len,
                                   (uint8_t)(len >> 8)}};
    bool in = type & 0x80;
    send_fd(sock, &w, in ? NULL : data, in ? 0 : len, -1);
    struct usb_wire r;
    size_t n = expect(sock, USBW_CONTROL, &r, in ? data : NULL, in ? len : 0);
    assert_int_equal(r.id, id);
    if (actual)
        *actual = r.actual;
    if (in && r.status == ODK_OK)
        assert_int_equal(n, r.actual);
    return r.status;
}

static void hello_descriptors_and_configuration(void **state)
{
    (void)state;
    struct proc p = start("cdc-acm", NULL);
    struct usb_wire w;
    char name[64] = {0};
    recv_msg(p.odkd, &w, name, sizeof name - 1);
    assert_int_equal(w.op, USBW_HELLO);
    assert_string_equal(name, "cdc-acm");
    assert_int_equal(w.length, ODK_USB_SPEED_HIGH);

    uint8_t dev[18], config[256];
    uint32_t n;
    assert_int_equal(control(p.odkd, 0x80, 6, 0x0100, 0, 18, dev, &n), ODK_OK);
    assert_int_equal(odk_usb_device_check(dev, n, ODK_USB_SPEED_HIGH, NULL, 0), ODK_OK);
    assert_int_equal(control(p.odkd, 0x80, 6, 0x0200, 0, 255, config, &n), ODK_OK);
    assert_int_equal(odk_usb_config_check(config, n, ODK_USB_SPEED_HIGH, NULL, 0), ODK_OK);
    assert_int_equal(control(p.odkd, 0x80, 6, 0x0300 | 7, 0x409, 255, config, &n), ODK_E_STALL);

    assert_int_equal(control(p.odkd, 0x00, 9, 1, 0, 0, NULL, NULL), ODK_OK);
    uint8_t alts[256];
    assert_int_equal(expect(p.odkd, USBW_CONFIGURED, &w, alts, sizeof alts), 256);
    assert_int_equal(w.length, 1);

    /* A class request changes the report, which odkd hears. */
    uint8_t coding[7] = {0x00, 0xe1, 0, 0, 0, 0, 8};
    assert_int_equal(control(p.odkd, 0x21, 0x20, 0, 0, 7, coding, NULL), ODK_OK);
    char json[512] = {0};
    expect(p.odkd, USBW_REPORT, &w, json, sizeof json - 1);
    assert_non_null(strstr(json, "\"baud\""));
    assert_non_null(strstr(json, "57600"));
    assert_int_equal(finish(&p), 0);
}

/* A driver host's connection: buffers mapped from memfds, OUT and IN
 * transfers through them, unplug with a transfer pending. */
static void client_transfers_through_mapped_buffers(void **state)
{
    (void)state;
    struct proc p = start("vendor-echo", NULL);
    struct usb_wire w;
    recv_msg(p.odkd, &w, NULL, 0);
    assert_int_equal(control(p.odkd, 0x00, 9, 1, 0, 0, NULL, NULL), ODK_OK);

    int cs[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, cs), 0);
    struct usb_wire att = {.op = USBW_ATTACH, .id = 1};
    send_fd(p.odkd, &att, NULL, 0, cs[1]);
    close(cs[1]);
    expect(p.odkd, USBW_ATTACH, &w, NULL, 0);
    assert_int_equal(w.status, ODK_OK);
    int c = cs[0];

    /* The client may not attach others or inject faults. */
    send_fd(c, &(struct usb_wire){.op = USBW_FAULT, .id = 2, .length = 4}, NULL, 0, -1);
    recv_msg(c, &w, NULL, 0);
    assert_int_equal(w.status, ODK_E_ACCESS);

    const size_t size = 1 << 20;
    int mfd = memfd_create("usb-test", MFD_CLOEXEC);
    assert_true(mfd >= 0);
    assert_int_equal(ftruncate(mfd, (off_t)size), 0);
    uint8_t *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    assert_true(mem != MAP_FAILED);
    send_fd(c, &(struct usb_wire){.op = USBW_MAP, .id = 3, .buffer = 7, .offset = size}, NULL, 0,
            mfd);
    close(mfd);
    recv_msg(c, &w, NULL, 0);
    assert_int_equal(w.status, ODK_OK);

    /* 512 KiB out of the first half, back into the second half. */
    const uint32_t half = (uint32_t)size / 2;
    for (uint32_t i = 0; i < half; i++)
        mem[i] = (uint8_t)(i * 31 + 7);
    send_fd(c, &(struct usb_wire){.op = USBW_SUBMIT, .id = 10, .endpoint = 0x81, .buffer = 7,
                                  .offset = half, .length = half},
            NULL, 0, -1);
    send_fd(c, &(struct usb_wire){.op = USBW_SUBMIT, .id = 11, .endpoint = 0x01, .buffer = 7,
                                  .offset = 0, .length = half},
            NULL, 0, -1);
    int seen = 0;
    for (int k = 0; k < 2; k++) {
        recv_msg(c, &w, NULL, 0);
        assert_int_equal(w.op, USBW_COMPLETE);
        assert_int_equal(w.status, ODK_OK);
        assert_int_equal(w.actual, half);
        assert_true(w.timestamp_ns > 0);
        seen |= w.id == 10 ? 1 : w.id == 11 ? 2 : 0;
    }
    assert_int_equal(seen, 3);
    assert_memory_equal(mem, mem + half, half);

    /* Bad submissions complete at once with a status. */
    send_fd(c, &(struct usb_wire){.op = USBW_SUBMIT, .id = 12, .endpoint = 0x81, .buffer = 7,
                                  .offset = size - 10, .length = 20},
            NULL, 0, -1);
    recv_msg(c, &w, NULL, 0);
    assert_int_equal(w.id, 12);
    assert_int_equal(w.status, ODK_E_INVALID);
    send_fd(c, &(struct usb_wire){.op = USBW_SUBMIT, .id = 13, .endpoint = 0x86, .buffer = 7,
                                  .length = 20},
            NULL, 0, -1);
    recv_msg(c, &w, NULL, 0);
    assert_int_equal(w.status, ODK_E_NOT_FOUND);
    send_fd(c, &(struct usb_wire){.op = USBW_SUBMIT, .id = 14, .endpoint = 0x81, .buffer = 99,
                                  .length = 20},
            NULL, 0, -1);
    recv_msg(c, &w, NULL, 0);
    assert_int_equal(w.status, ODK_E_NOT_FOUND);
    /* garbage: an unknown op */
    send_fd(c, &(struct usb_wire){.op = 999, .id = 15}, NULL, 0, -1);
    recv_msg(c, &w, NULL, 0);
    assert_int_equal(w.status, ODK_E_PROTOCOL);

    /* A buffer with a transfer in flight cannot be unmapped. */
    send_fd(c, &(struct usb_wire){.op = USBW_SUBMIT, .id = 16, .endpoint = 0x81, .buffer = 7,
                                  .length = 64},
            NULL, 0, -1);
    send_fd(c, &(struct usb_wire){.op = USBW_UNMAP, .id = 17, .buffer = 7}, NULL, 0, -1);
    recv_msg(c, &w, NULL, 0);
    assert_int_equal(w.id, 17);
    assert_int_equal(w.status, ODK_E_BUSY);

    /* Unplug: the pending IN ends with GONE, then the connection closes. */
    int status = finish(&p);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    recv_msg(c, &w, NULL, 0);
    assert_int_equal(w.op, USBW_COMPLETE);
    assert_int_equal(w.id, 16);
    assert_int_equal(w.status, ODK_E_GONE);
    char byte;
    assert_int_equal(recv(c, &byte, 1, 0), 0);
    close(c);
    munmap(mem, size);
}

static void faults_from_odkd(void **state)
{
    (void)state;
    struct proc p = start("vendor-echo", NULL);
    struct usb_wire w;
    recv_msg(p.odkd, &w, NULL, 0);
    assert_int_equal(control(p.odkd, 0x00, 9, 1, 0, 0, NULL, NULL), ODK_OK);
    send_fd(p.odkd, &(struct usb_wire){.op = USBW_FAULT, .id = 5, .length = 4}, NULL, 0, -1);
    expect(p.odkd, USBW_FAULT, &w, NULL, 0);
    assert_int_equal(w.status, ODK_OK);
    expect(p.odkd, USBW_GONE, &w, NULL, 0); /* after the notices still due */
    uint8_t dev[18];
    assert_int_equal(control(p.odkd, 0x80, 6, 0x0100, 0, 18, dev, NULL), ODK_E_GONE);
    assert_int_equal(finish(&p), 0);
}

static void bad_starts(void **state)
{
    (void)state;
    struct proc p = start("no-such-model", NULL);
    int status = finish(&p);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 2);
    p = start("broken", "{\"fault\": \"nope\"}");
    status = finish(&p);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    p = start("cdc-acm", "{not json");
    status = finish(&p);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 2);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_usb_model_process PATH-TO-odk-usb-model\n");
        return 2;
    }
    program = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hello_descriptors_and_configuration),
        cmocka_unit_test(client_transfers_through_mapped_buffers),
        cmocka_unit_test(faults_from_odkd),
        cmocka_unit_test(bad_starts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
