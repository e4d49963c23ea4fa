/*
 * The C boundary of the loop: argument checks, then the core.  Functions
 * other threads may call (the post family and tw_loop_stop) touch only the
 * inbox and atomics.
 *
 * Uses: lib/loop, lib/common; libevent, to break a running base.
 */
#include <cstring>
#include <new>

#include <event2/event.h>

#include "common/arith.hpp"
#include "common/copy-out.hpp"
#include "loop/loop.hpp"
#include "tickwheel.h"

namespace {

constexpr uint32_t kDefaultInboxCapacity = 4096;
/* About 0.7 ms of dispatch on a 2-vCPU guest: a storm of due timers then
 * holds the loop for under a millisecond per turn. */
constexpr uint32_t kDefaultBudgetCallbacks = 5000;
/* Half the 1 ms a turn may take (PERFORMANCE.md), leaving the other half
 * for the turn's I/O and its last chunk of callbacks.  Checking it made no
 * difference beyond the noise to a mass expiry of 1M trivial callbacks
 * (tw-bench --loop, 5 runs: 33.8 (27.2-39.7) M timers/s with, 26.4
 * (24.7-29.1) without). */
constexpr uint64_t kDefaultBudgetNs = 500000;
/* The largest inbox a configuration may ask for. */
constexpr uint32_t kMaxInboxCapacity = 1u << 30;

int post(tw_loop *loop, const tw::Command &command)
{
    return loop ? loop->core.post(command) : TW_EINVAL;
}

} // namespace

extern "C" {

void tw_loop_config_init(tw_loop_config *config) noexcept
{
    if (!config)
        return;
    std::memset(config, 0, sizeof(*config));
    config->struct_size = sizeof(*config);
    config->tick_ns = TW_TICK_DEFAULT_NS;
    config->inbox_capacity = kDefaultInboxCapacity;
    config->budget_callbacks = kDefaultBudgetCallbacks;
    config->budget_ns = kDefaultBudgetNs;
}

int tw_loop_new(struct event_base *base, const tw_loop_config *config, tw_loop **ret) noexcept
{
    if (!ret)
        return TW_EINVAL;
    *ret = nullptr;
    tw_loop_config c;
    tw_loop_config_init(&c);
    if (config) {
        if (config->struct_size != sizeof(tw_loop_config) || config->inbox_capacity > kMaxInboxCapacity)
            return TW_EINVAL;
        c = *config;
    }
    auto *loop = new (std::nothrow) tw_loop;
    if (!loop)
        return TW_ENOMEM;
    int r = loop->core.init(loop, base, c);
    if (r < 0) {
        delete loop;
        return r;
    }
    *ret = loop;
    return 0;
}

void tw_loop_free(tw_loop *loop) noexcept
{
    if (!loop)
        return;
    if (loop->core.in_turn() || loop->core.running()) {
        loop->core.request_free();
        if (!loop->core.in_turn())
            event_base_loopbreak(loop->core.base());
        return;
    }
    delete loop;
}

int tw_loop_run(tw_loop *loop) noexcept
{
    if (!loop || loop->core.running() || loop->core.in_turn())
        return TW_EINVAL;
    int r = loop->core.run();
    if (r == 0 && loop->core.free_requested())
        delete loop;
    return r;
}

int tw_loop_stop(tw_loop *loop) noexcept
{
    if (!loop)
        return TW_EINVAL;
    loop->core.stop();
    return 0;
}

int tw_loop_process(tw_loop *loop) noexcept
{
    if (!loop)
        return TW_EINVAL;
    if (loop->core.in_turn())
        return TW_EBUSY;
    uint64_t fired = loop->core.process();
    if (loop->core.free_requested() && !loop->core.running())
        delete loop;
    return tw::clamp_int(fired);
}

int tw_loop_fd(const tw_loop *loop) noexcept
{
    return loop ? loop->core.fd() : TW_EINVAL;
}

uint64_t tw_loop_now(const tw_loop *loop) noexcept
{
    /* Outside a turn, reading the time moves the loop's time to the clock:
     * const for the caller, while the loop itself, made by tw_loop_new, is
     * never a const object. */
    return loop ? const_cast<tw_loop *>(loop)->core.fresh_now() : 0;
}

int tw_loop_next_deadline(const tw_loop *loop, uint64_t *ret) noexcept
{
    if (!loop || !ret)
        return TW_EINVAL;
    return loop->core.next_deadline(ret);
}

int tw_loop_schedule(tw_loop *loop, uint64_t deadline_ns, tw_timer_cb *cb, void *userdata,
                     tw_timer *ret) noexcept
{
    if (ret)
        *ret = 0;
    if (!loop || !cb || !ret || loop->core.free_requested())
        return TW_EINVAL;
    return loop->core.schedule(deadline_ns, cb, userdata, ret);
}

int tw_loop_schedule_relative(tw_loop *loop, uint64_t delay_ns, tw_timer_cb *cb, void *userdata,
                              tw_timer *ret) noexcept
{
    if (!loop)
        return tw_loop_schedule(loop, 0, cb, userdata, ret);
    return tw_loop_schedule(loop, tw::sat_add(loop->core.fresh_now(), delay_ns), cb, userdata,
                            ret);
}

int tw_loop_schedule_batch(tw_loop *loop, size_t n, const uint64_t *deadlines_ns, tw_timer_cb *cb,
                           void *const *userdata, tw_timer *ret) noexcept
{
    if (!loop || !cb || (n && (!deadlines_ns || !ret)) || loop->core.free_requested())
        return TW_EINVAL;
    return loop->core.schedule_batch(n, deadlines_ns, cb, userdata, ret);
}

int tw_loop_schedule_slack(tw_loop *loop, uint64_t deadline_ns, uint64_t slack_ns,
                           tw_timer_cb *cb, void *userdata, tw_timer *ret) noexcept
{
    if (ret)
        *ret = 0;
    if (!loop || !cb || !ret || loop->core.free_requested())
        return TW_EINVAL;
    return loop->core.schedule_slack(deadline_ns, slack_ns, cb, userdata, ret);
}

int tw_loop_cancel(tw_loop *loop, tw_timer timer) noexcept
{
    return loop ? loop->core.cancel(timer) : TW_EINVAL;
}

int tw_loop_reschedule(tw_loop *loop, tw_timer timer, uint64_t deadline_ns) noexcept
{
    return loop ? loop->core.reschedule(timer, deadline_ns) : TW_EINVAL;
}

int tw_loop_post(tw_loop *loop, tw_loop_fn *fn, void *userdata) noexcept
{
    if (!fn)
        return TW_EINVAL;
    return post(loop, {tw::Command::kRun, 0, 0, fn, nullptr, userdata});
}

int tw_loop_post_wait(tw_loop *loop, tw_loop_fn *fn, void *userdata, uint64_t timeout_ns) noexcept
{
    if (!loop || !fn)
        return TW_EINVAL;
    return loop->core.post_wait({tw::Command::kRun, 0, 0, fn, nullptr, userdata}, timeout_ns);
}

int tw_loop_post_schedule(tw_loop *loop, uint64_t deadline_ns, tw_timer_cb *cb,
                          void *userdata) noexcept
{
    if (!cb)
        return TW_EINVAL;
    return post(loop, {tw::Command::kSchedule, deadline_ns, 0, nullptr, cb, userdata});
}

int tw_loop_post_cancel(tw_loop *loop, tw_timer timer) noexcept
{
    return post(loop, {tw::Command::kCancel, 0, timer, nullptr, nullptr, nullptr});
}

int tw_loop_post_reschedule(tw_loop *loop, tw_timer timer, uint64_t deadline_ns) noexcept
{
    return post(loop, {tw::Command::kReschedule, deadline_ns, timer, nullptr, nullptr, nullptr});
}

int tw_loop_stats_get(const tw_loop *loop, tw_loop_stats *ret) noexcept
{
    if (!loop || !ret || !tw::copy_out_fits(ret))
        return TW_EINVAL;
    loop->core.stats(ret);
    return 0;
}

} // extern "C"

/* Periodic timers and the queries of one timer. */
int tw_loop_schedule_periodic(tw_loop *loop, uint64_t first_ns, uint64_t period_ns,
                              unsigned flags, tw_timer_cb *cb, void *userdata,
                              tw_timer *ret) noexcept
{
    if (ret)
        *ret = 0;
    if (!loop || !cb || !ret || (flags & ~TW_PERIODIC_SKIP) || loop->core.free_requested())
        return TW_EINVAL;
    return loop->core.schedule_periodic(first_ns, period_ns, flags & TW_PERIODIC_SKIP, cb,
                                        userdata, ret);
}

int tw_loop_deadline(const tw_loop *loop, tw_timer timer, uint64_t *ret) noexcept
{
    if (!loop || !ret)
        return TW_EINVAL;
    return loop->core.deadline(timer, ret);
}

int tw_loop_period(const tw_loop *loop, tw_timer timer, uint64_t *ret) noexcept
{
    if (!loop || !ret)
        return TW_EINVAL;
    return loop->core.period(timer, ret);
}

int tw_loop_run_until_idle(tw_loop *loop) noexcept
{
    if (!loop || loop->core.running() || loop->core.in_turn())
        return TW_EINVAL;
    int r = loop->core.run(true);
    if (r == 0 && loop->core.free_requested())
        delete loop;
    return r;
}
