/* SPDX-License-Identifier: MIT */
/* The HID event stream for apps (odk/hid_client.h): a user client of an
 * IOHIDDevice node and the data queue its driver fills with
 * odk_hid_input_event records.  No kernel input support needed. */
#include <poll.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/data_queue_internal.h"
#include "common/trace.h"
#include "odk/data_queue.h"
#include "odk/hid_client.h"

struct odk_hid {
    odk_connection *conn;
    odk_data_queue *q;
    uint64_t node;
};

ODK_PUBLIC int odk_hid_open(odk_client *c, uint64_t node_id, odk_hid **out)
{
    if (!c || !out)
        return ODK_E_INVALID;
    odk_hid *h = calloc(1, sizeof *h);
    if (!h)
        return ODK_E_NOMEM;
    h->node = node_id;
    trace_open(); /* ODK_TRACE: odk_hid_read marks each event it returns */
    int st = odk_connection_open(c, node_id, 0, &h->conn);
    if (st == ODK_OK)
        st = odk_connection_map_data_queue(h->conn, ODK_HID_STREAM_QUEUE, &h->q);
    if (st < 0) {
        odk_hid_close(h);
        return st;
    }
    *out = h;
    return ODK_OK;
}

ODK_PUBLIC int odk_hid_open_matching(odk_client *c, const odk_value *matching, odk_hid **out)
{
    if (!c || !out)
        return ODK_E_INVALID;
    odk_value *m = matching ? odk_value_copy(matching) : odk_value_new_dict();
    if (!m)
        return ODK_E_NOMEM;
    if (!odk_dict_get(m, "IOProviderClass"))
        odk_dict_set_string(m, "IOProviderClass", "IOHIDDevice");
    odk_value *nodes = NULL;
    int st = odk_find_services(c, m, &nodes);
    odk_value_free(m);
    if (st < 0)
        return st;
    st = ODK_E_NOT_FOUND;
    for (size_t i = 0; i < odk_array_count(nodes) && st == ODK_E_NOT_FOUND; i++) {
        const odk_value *n = odk_array_get(nodes, i);
        st = odk_hid_open(c, (uint64_t)odk_dict_get_int(n, "id", 0), out);
    }
    odk_value_free(nodes);
    return st;
}

/* Whether the driver's side of the connection hung up. */
static bool gone(odk_hid *h)
{
    struct pollfd p = {.fd = odk_connection_fd(h->conn), .events = POLLIN};
    return poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR));
}

/* Events come at the pace of hands: a reader spinning for the next one
 * would only take a CPU from the processes that make it. */
#define HID_SPIN_NS 0
#define GONE_CHECK_MS 1000 /* a reader waiting long looks this often for a gone device */

ODK_PUBLIC int odk_hid_read(odk_hid *h, odk_hid_input_event *ev, int timeout_ms)
{
    if (!h || !ev)
        return ODK_E_INVALID;
    uint32_t len = 0;
    int left = timeout_ms;
    int st;
    while ((st = odk_data_queue_dequeue(h->q, ev, sizeof *ev, &len)) == ODK_E_AGAIN) {
        if (left == 0)
            return gone(h) ? ODK_E_GONE : ODK_E_TIMEOUT;
        int slice = left < 0 || left > GONE_CHECK_MS ? GONE_CHECK_MS : left;
        /* One system call a wake-up: the read of the stream's socket. */
        st = data_queue_wait_spin(h->q, slice, HID_SPIN_NS);
        if (st == ODK_E_TIMEOUT) {
            if (gone(h))
                return ODK_E_GONE;
            if (left > 0)
                left -= slice;
        } else if (st < 0) {
            return st;
        }
    }
    if (st == ODK_OK && len != sizeof *ev)
        return ODK_E_PROTOCOL;
    if (st == ODK_OK && trace_on())
        trace_mark("app hid read returns cpu %d", sched_getcpu());
    return st == ODK_E_LIMIT ? ODK_E_PROTOCOL : st;
}

ODK_PUBLIC int odk_hid_set_leds(odk_hid *h, uint32_t leds)
{
    if (!h)
        return ODK_E_INVALID;
    uint64_t in = leds;
    return odk_connection_call(h->conn, ODK_HID_SEL_SET_LEDS, &in, 1, NULL, 0, NULL, NULL, NULL,
                               NULL);
}

ODK_PUBLIC int odk_hid_get_leds(odk_hid *h, uint32_t *leds)
{
    if (!h || !leds)
        return ODK_E_INVALID;
    uint64_t out = 0;
    uint32_t n = 1;
    int st = odk_connection_call(h->conn, ODK_HID_SEL_GET_LEDS, NULL, 0, NULL, 0, &out, &n, NULL,
                                 NULL);
    if (st == ODK_OK)
        *leds = (uint32_t)out;
    return st;
}

ODK_PUBLIC uint64_t odk_hid_node_id(const odk_hid *h)
{
    return h ? h->node : 0;
}

ODK_PUBLIC void odk_hid_close(odk_hid *h)
{
    if (!h)
        return;
    odk_data_queue_free(h->q);
    odk_connection_close(h->conn);
    free(h);
}

ODK_PUBLIC const char *odk_hid_input_type_name(uint32_t type)
{
    static const char *names[] = {NULL,          "keyboard", "button", "pointer-rel", "pointer-abs",
                                  "scroll",      "consumer", "led",    "other",       "dropped"};
    return type >= 1 && type <= 9 ? names[type] : "unknown";
}
