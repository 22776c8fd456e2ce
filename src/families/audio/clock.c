/* SPDX-License-Identifier: MIT */
/* The audio family's host clock (odk_audio_clock in odk/audio.h): a timerfd
 * armed at absolute times counted from the start of I/O, for devices that
 * have no hardware clock of their own. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "families/audio/device.h"
#include "odk/audio.h"
#include "odk/log.h"
#include "odk/object.h"
#include "odk/queue.h"

struct odk_audio_clock {
    odk_audio_device *dev;
    odk_audio_clock_fn tick;
    void *ctx;
    int tfd;
    odk_fd_source *src;
    uint64_t start_ns;
    uint64_t done; /* frames ticked since the start */
    uint32_t rate, frames_per_tick;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

ODK_PUBLIC uint64_t odk_audio_clock_host_time(const odk_audio_clock *c, uint64_t frame)
{
    if (!c)
        return 0;
    return c->start_ns + (uint64_t)((unsigned __int128)frame * 1000000000u / c->rate);
}

static void arm(odk_audio_clock *c)
{
    uint64_t at = odk_audio_clock_host_time(c, c->done + c->frames_per_tick);
    struct itimerspec its = {.it_value = {(time_t)(at / 1000000000u), (long)(at % 1000000000u)}};
    if (timerfd_settime(c->tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
        odk_error("audio clock: timerfd_settime: %s", strerror(errno));
}

static void on_timer(void *ctx, uint32_t revents)
{
    (void)revents;
    odk_audio_clock *c = ctx;
    uint64_t expirations;
    if (read(c->tfd, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
        return;
    uint64_t now = now_ns();
    while (odk_audio_clock_host_time(c, c->done + c->frames_per_tick) <= now) {
        c->tick(c->ctx, c->dev, c->done, c->frames_per_tick);
        c->done += c->frames_per_tick;
        odk_audio_device_publish_timestamp(c->dev, c->done,
                                           odk_audio_clock_host_time(c, c->done));
    }
    arm(c);
}

ODK_PUBLIC int odk_audio_clock_start(odk_audio_device *dev, uint32_t frames_per_tick,
                                     odk_audio_clock_fn tick, void *ctx, odk_audio_clock **out)
{
    if (!dev || !tick || !out)
        return ODK_E_INVALID;
    odk_audio_format f;
    if (odk_audio_device_format(dev, 0, &f) < 0 || f.rate == 0)
        return ODK_E_INVALID;
    if (frames_per_tick == 0)
        frames_per_tick = audio_device_period(dev);
    if (frames_per_tick == 0)
        return ODK_E_INVALID;
    odk_audio_clock *c = calloc(1, sizeof *c);
    if (!c)
        return ODK_E_NOMEM;
    *c = (odk_audio_clock){.dev = dev, .tick = tick, .ctx = ctx, .rate = f.rate,
                           .frames_per_tick = frames_per_tick, .start_ns = now_ns()};
    c->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (c->tfd < 0) {
        odk_error("audio clock: timerfd_create: %s", strerror(errno));
        free(c);
        return ODK_E_IO;
    }
    odk_driver *drv = audio_device_driver(dev);
    int st = odk_fd_source_create(odk_driver_queue(drv), c->tfd, EPOLLIN, on_timer, c, &c->src);
    if (st < 0) {
        close(c->tfd);
        free(c);
        return st;
    }
    odk_audio_device_publish_timestamp(dev, 0, c->start_ns);
    arm(c);
    *out = c;
    return ODK_OK;
}

static void clock_free(void *ctx)
{
    free(ctx);
}

ODK_PUBLIC void odk_audio_clock_stop(odk_audio_clock *c)
{
    if (!c)
        return;
    close(c->tfd); /* the source watches its own duplicate */
    odk_fd_source *src = c->src;
    /* The clock goes once its timer callback can no longer run: at once on
     * the driver's queue, after a callback in flight elsewhere. */
    if (odk_fd_source_cancel(src, clock_free, c) < 0)
        free(c);
    odk_release(src);
}
