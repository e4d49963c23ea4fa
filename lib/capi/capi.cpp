/*
 * The C boundary: every extern "C" function checks its arguments, unwraps
 * the opaque handle, calls the core and maps the result to a TW_E* code.
 * The core is built without exceptions and reports allocation failure by
 * return value, so nothing can unwind through here.
 *
 * Uses: lib/wheel (the core of tw_wheel), lib/common.
 */
#include <cstring>
#include <new>

#include "common/arith.hpp"
#include "common/copy-out.hpp"
#include "tickwheel.h"
#include "wheel/wheel.hpp"

struct tw_wheel {
    tw::Wheel core;
};

namespace {

/* The size of the first published layout; later versions accept it too. */
constexpr size_t kConfigSizeV0 = sizeof(tw_wheel_config);

} // namespace

extern "C" {

const char *tw_strerror(int err) noexcept
{
    switch (err) {
#define TW__STRERROR(name, value, text) \
    case TW_##name:                     \
        return text;
        TW__ERRNO_MAP(TW__STRERROR)
#undef TW__STRERROR
    }
    return "unknown error";
}

const char *tw_err_name(int err) noexcept
{
    switch (err) {
#define TW__ERR_NAME(name, value, text) \
    case TW_##name:                     \
        return "TW_" #name;
        TW__ERRNO_MAP(TW__ERR_NAME)
#undef TW__ERR_NAME
    }
    return nullptr;
}

const char *tw_version(void) noexcept
{
    return TW_VERSION_STRING;
}

void tw_wheel_config_init(tw_wheel_config *config) noexcept
{
    if (!config)
        return;
    std::memset(config, 0, sizeof(*config));
    config->struct_size = sizeof(*config);
    config->tick_ns = TW_TICK_DEFAULT_NS;
}

int tw_wheel_new(const tw_wheel_config *config, uint64_t now_ns, tw_wheel **ret) noexcept
{
    if (!ret)
        return TW_EINVAL;
    *ret = nullptr;
    tw_wheel_config c;
    tw_wheel_config_init(&c);
    if (config) {
        if (config->struct_size != kConfigSizeV0)
            return TW_EINVAL;
        c = *config;
    }
    auto *w = new (std::nothrow) tw_wheel;
    if (!w)
        return TW_ENOMEM;
    int r = w->core.init(c, now_ns);
    if (r < 0) {
        delete w;
        return r;
    }
    *ret = w;
    return 0;
}

void tw_wheel_free(tw_wheel *wheel) noexcept
{
    if (!wheel)
        return;
    if (wheel->core.advancing()) {
        wheel->core.request_free();
        return;
    }
    delete wheel;
}

int tw_wheel_schedule(tw_wheel *wheel, uint64_t deadline_ns, tw_timer_cb *cb, void *userdata,
                      tw_timer *ret) noexcept
{
    if (ret)
        *ret = 0;
    if (!wheel || !cb || !ret || wheel->core.free_requested())
        return TW_EINVAL;
    return wheel->core.schedule(deadline_ns, cb, userdata, ret);
}

int tw_wheel_schedule_relative(tw_wheel *wheel, uint64_t delay_ns, tw_timer_cb *cb,
                               void *userdata, tw_timer *ret) noexcept
{
    if (!wheel)
        return tw_wheel_schedule(wheel, 0, cb, userdata, ret);
    return tw_wheel_schedule(wheel, tw::sat_add(wheel->core.now(), delay_ns), cb, userdata, ret);
}

int tw_wheel_schedule_slack(tw_wheel *wheel, uint64_t deadline_ns, uint64_t slack_ns,
                            tw_timer_cb *cb, void *userdata, tw_timer *ret) noexcept
{
    if (ret)
        *ret = 0;
    if (!wheel || !cb || !ret || wheel->core.free_requested())
        return TW_EINVAL;
    return wheel->core.schedule_slack(deadline_ns, slack_ns, cb, userdata, ret);
}

int tw_wheel_schedule_periodic(tw_wheel *wheel, uint64_t first_ns, uint64_t period_ns,
                               unsigned flags, tw_timer_cb *cb, void *userdata,
                               tw_timer *ret) noexcept
{
    if (ret)
        *ret = 0;
    if (!wheel || !cb || !ret || (flags & ~TW_PERIODIC_SKIP) || wheel->core.free_requested())
        return TW_EINVAL;
    return wheel->core.schedule_periodic(first_ns, period_ns, flags & TW_PERIODIC_SKIP, cb,
                                         userdata, ret);
}

int tw_wheel_period(const tw_wheel *wheel, tw_timer timer, uint64_t *ret) noexcept
{
    if (!wheel || !ret)
        return TW_EINVAL;
    return wheel->core.period(timer, ret);
}

size_t tw_wheel_count(const tw_wheel *wheel) noexcept
{
    return wheel ? size_t(wheel->core.count(nullptr)) : 0;
}

int tw_wheel_foreach(tw_wheel *wheel, tw_timer_visit_fn *fn, void *ctx) noexcept
{
    if (!wheel || !fn)
        return TW_EINVAL;
    return wheel->core.foreach(nullptr, fn, ctx);
}

int tw_wheel_cancel_all(tw_wheel *wheel, size_t *ret) noexcept
{
    if (ret)
        *ret = 0;
    if (!wheel)
        return TW_EINVAL;
    uint64_t n = wheel->core.cancel_all(nullptr);
    if (ret)
        *ret = size_t(n);
    return 0;
}

int tw_wheel_schedule_batch(tw_wheel *wheel, size_t n, const uint64_t *deadlines_ns,
                            tw_timer_cb *cb, void *const *userdata, tw_timer *ret) noexcept
{
    if (!wheel || !cb || (n && (!deadlines_ns || !ret)) || wheel->core.free_requested())
        return TW_EINVAL;
    return wheel->core.schedule_batch(n, deadlines_ns, cb, userdata, ret);
}

int tw_wheel_cancel(tw_wheel *wheel, tw_timer timer) noexcept
{
    if (!wheel)
        return TW_EINVAL;
    return wheel->core.cancel(timer);
}

int tw_wheel_cancel_batch(tw_wheel *wheel, size_t n, const tw_timer *timers, size_t *ret) noexcept
{
    if (ret)
        *ret = 0;
    if (!wheel || (n && !timers))
        return TW_EINVAL;
    size_t done = wheel->core.cancel_batch(n, timers);
    if (ret)
        *ret = done;
    return 0;
}

int tw_wheel_reschedule(tw_wheel *wheel, tw_timer timer, uint64_t deadline_ns) noexcept
{
    if (!wheel)
        return TW_EINVAL;
    return wheel->core.reschedule(timer, deadline_ns);
}

int tw_wheel_deadline(const tw_wheel *wheel, tw_timer timer, uint64_t *ret) noexcept
{
    if (!wheel || !ret)
        return TW_EINVAL;
    return wheel->core.deadline(timer, ret);
}

int tw_wheel_next_deadline(const tw_wheel *wheel, uint64_t *ret) noexcept
{
    if (!wheel || !ret)
        return TW_EINVAL;
    return wheel->core.next_deadline(ret);
}

int tw_wheel_advance_max(tw_wheel *wheel, uint64_t now_ns, uint32_t max_callbacks) noexcept
{
    if (!wheel)
        return TW_EINVAL;
    if (wheel->core.advancing())
        return TW_EBUSY;
    uint64_t fired = wheel->core.advance(now_ns, max_callbacks);
    if (wheel->core.free_requested())
        delete wheel;
    return tw::clamp_int(fired);
}

int tw_wheel_advance(tw_wheel *wheel, uint64_t now_ns) noexcept
{
    return tw_wheel_advance_max(wheel, now_ns, 0);
}

uint64_t tw_wheel_now(const tw_wheel *wheel) noexcept
{
    return wheel ? wheel->core.now() : 0;
}

int tw_wheel_stats_get(const tw_wheel *wheel, tw_wheel_stats *ret) noexcept
{
    if (!wheel || !ret || !tw::copy_out_fits(ret))
        return TW_EINVAL;
    wheel->core.stats(ret);
    return 0;
}

int tw_wheel_verify(const tw_wheel *wheel) noexcept
{
    if (!wheel)
        return TW_EINVAL;
    return wheel->core.verify();
}

} // extern "C"
