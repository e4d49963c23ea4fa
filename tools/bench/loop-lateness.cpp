/*
 * tw-bench --loop, lateness: --loop-timers timers (100k) with deadlines
 * uniform over --loop-seconds (3 s) from the moment arming starts, all
 * armed before the loop runs.  Each callback reads CLOCK_MONOTONIC;
 * lateness is that reading minus the deadline.  The subjects:
 *
 *   tw_loop            tw_loop_new(NULL, ...): its own base, with precise
 *                      timers, run by tw_loop_run and stopped by the last
 *                      callback
 *   tw_loop-slack-1ms  the same, every timer armed with
 *                      tw_loop_schedule_slack and 1 ms of slack: wake-ups
 *                      per second and CPU beside the exact run; lateness is
 *                      still taken against the requested deadline, and none
 *                      may be early
 *   tw_loop-by-hand    the same driven by hand: poll(2) on tw_loop_fd with
 *                      no timeout, tw_loop_process when it is readable;
 *                      wake-ups are the readinesses
 *   libevent-precise   one evtimer per timer on a base with
 *                      EVENT_BASE_FLAG_PRECISE_TIMER
 *   libevent-default   the same on event_base_new()
 *
 * libevent takes relative timevals: each deadline is converted against a
 * CLOCK_MONOTONIC reading taken just before its evtimer_add, rounded up to
 * the microsecond.  "After start-up" leaves out the timers due in the first
 * 100 ms, which also wait for the arming of the others.  Self-checks: each
 * timer fires exactly once; no tw_loop timer fires early (libevent firing
 * early is counted, not a failure).
 *
 * Uses: loop.hpp, rng.hpp; libevent.
 */
#include "loop.hpp"
#include "rng.hpp"

#include <event2/event.h>
#include <event2/event_struct.h>

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <climits>
#include <cmath>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

namespace bench {

namespace {

/* "After start-up" leaves out the timers due this soon after arming began. */
constexpr std::uint64_t kStartupNs = 100'000'000;
constexpr std::uint64_t kSlackNs = 1'000'000;

struct LatenessRun;

struct Shot {
    std::uint64_t fired_at;
    LatenessRun *run;
};

struct LatenessRun {
    std::size_t n = 0;
    std::size_t fired = 0;
    std::size_t repeats = 0;
    tw_loop *loop = nullptr;
    event_base *base = nullptr;
    int stop_error = 0;
};

inline void record(Shot &shot)
{
    const std::uint64_t now = mono_ns();
    LatenessRun &run = *shot.run;
    if (shot.fired_at != 0)
        ++run.repeats;
    shot.fired_at = now;
    ++run.fired;
}

void on_tw_fire(tw_timer, std::uint64_t, void *userdata) noexcept
{
    Shot &shot = *static_cast<Shot *>(userdata);
    record(shot);
    LatenessRun &run = *shot.run;
    if (run.fired == run.n)
        if (const int err = tw_loop_stop(run.loop); err < 0)
            run.stop_error = err;
}

void on_event_fire(evutil_socket_t, short, void *arg)
{
    Shot &shot = *static_cast<Shot *>(arg);
    record(shot);
    LatenessRun &run = *shot.run;
    if (run.fired == run.n && event_base_loopbreak(run.base) != 0)
        run.stop_error = -1;
}

/* The deadlines, as offsets from the start of arming: the same for every
 * subject and run. */
std::vector<std::uint64_t> lateness_offsets(const Options &options)
{
    Rng rng(options.seed);
    const std::uint64_t span = options.loop_seconds * kSecondNs;
    std::vector<std::uint64_t> offsets(options.loop_timers);
    for (std::uint64_t &offset : offsets)
        offset = rng.below(span + 1);
    return offsets;
}

std::size_t rank(double fraction, std::size_t n)
{
    const double r = std::ceil(fraction * static_cast<double>(n));
    return r < 1 ? 0 : static_cast<std::size_t>(r) - 1;
}


/* Checks that every timer fired once and fills the lateness figures. */
bool lateness_figures(Child &child, const LatenessRun &run, const std::vector<Shot> &shots,
                      const std::vector<std::uint64_t> &offsets, std::uint64_t start)
{
    const std::size_t missing =
        static_cast<std::size_t>(std::count_if(shots.begin(), shots.end(),
                                               [](const Shot &shot) { return !shot.fired_at; }));
    if (missing)
        return child.fatal("timers that never fired: %zu of %zu", missing, shots.size());
    child.check(run.repeats == 0, "callbacks of timers that had fired already: %zu",
                run.repeats);
    child.check(run.stop_error == 0, "stopping the loop failed");

    std::vector<std::int64_t> late(shots.size());
    std::size_t early = 0;
    std::optional<std::int64_t> max_steady;
    for (std::size_t i = 0; i < shots.size(); ++i) {
        late[i] = static_cast<std::int64_t>(shots[i].fired_at - (start + offsets[i]));
        if (late[i] < 0)
            ++early;
        if (offsets[i] >= kStartupNs)
            max_steady = std::max(max_steady.value_or(INT64_MIN), late[i]);
    }
    std::sort(late.begin(), late.end());
    child.sample.set(kEarly, static_cast<double>(early));
    child.sample.set(kLateP50, static_cast<double>(late[rank(0.50, late.size())]));
    child.sample.set(kLateP90, static_cast<double>(late[rank(0.90, late.size())]));
    child.sample.set(kLateP99, static_cast<double>(late[rank(0.99, late.size())]));
    child.sample.set(kLateP999, static_cast<double>(late[rank(0.999, late.size())]));
    child.sample.set(kLateMax, static_cast<double>(late.back()));
    if (max_steady)
        child.sample.set(kLateMaxSteady, static_cast<double>(*max_steady));
    return true;
}

/* Drives the loop by hand until every timer fired: poll(2) on tw_loop_fd
 * with no timeout, a turn when it is readable.  Returns the readinesses,
 * the wake-ups of this mode, or -1 (the error is the child's). */
std::int64_t drive_by_hand(Child &child, tw_loop *loop, const LatenessRun &run)
{
    struct pollfd p = {tw_loop_fd(loop), POLLIN, 0};
    std::int64_t ready = 0;
    while (run.fired < run.n) {
        const int r = poll(&p, 1, -1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            child.fatal("poll: %s", std::strerror(errno));
            return -1;
        }
        ++ready;
        if (const int err = tw_loop_process(loop); err < 0) {
            child.fatal("tw_loop_process: %s", error_name(err));
            return -1;
        }
    }
    return ready;
}

bool run_lateness_tw_loop_slack(const Options &options, Child &child, std::uint64_t slack,
                                bool by_hand = false)
{
    const std::vector<std::uint64_t> offsets = lateness_offsets(options);
    tw_loop *loop = nullptr;
    if (const int err = tw_loop_new(nullptr, nullptr, &loop); err < 0)
        return child.fatal("tw_loop_new: %s", error_name(err));
    LatenessRun run;
    run.n = offsets.size();
    run.loop = loop;
    std::vector<Shot> shots(offsets.size(), Shot{0, &run});

    const std::uint64_t start = mono_ns();
    for (std::size_t i = 0; i < offsets.size(); ++i) {
        tw_timer timer;
        if (const int err = tw_loop_schedule_slack(loop, start + offsets[i], slack, on_tw_fire,
                                                   &shots[i], &timer);
            err < 0)
            return child.fatal("tw_loop_schedule_slack: %s", error_name(err));
    }
    const std::uint64_t cpu_before = cpu_ns();
    const std::uint64_t before = mono_ns();
    const int err = by_hand ? 0 : tw_loop_run(loop);
    const std::int64_t ready = by_hand ? drive_by_hand(child, loop, run) : 0;
    const std::uint64_t elapsed = mono_ns() - before;
    const std::uint64_t cpu = cpu_ns() - cpu_before;
    if (err < 0)
        return child.fatal("tw_loop_run: %s", error_name(err));
    if (ready < 0)
        return false;

    tw_loop_stats stats;
    if (!loop_stats(child, loop, &stats))
        return false;
    /* A suspend moves the loop's clock ahead of CLOCK_MONOTONIC. */
    if (stats.suspend_ns)
        return child.fatal("the system was suspended during the run");
    if (!lateness_figures(child, run, shots, offsets, start))
        return false;
    child.check(stats.fired == offsets.size(), "the loop counted %" PRIu64 " fired, not %zu",
                stats.fired, offsets.size());
    child.check(child.sample.value[kEarly] == 0,
                "timers fired before their deadline: %.0f", child.sample.value[kEarly]);
    const std::uint64_t wakeups = by_hand ? static_cast<std::uint64_t>(ready) : stats.wakeups;
    child.sample.set(kWakeupsPerSecond, per_second(wakeups, elapsed));
    child.sample.set(kCpuPercent, percent(cpu, elapsed));
    child.sample.set(kTurns, static_cast<double>(stats.turns));
    child.sample.set(kWakeups, static_cast<double>(wakeups));
    tw_loop_free(loop);
    return true;
}

bool run_lateness_libevent(const Options &options, Child &child, bool precise)
{
    const std::vector<std::uint64_t> offsets = lateness_offsets(options);
    event_base *base = nullptr;
    if (precise) {
        event_config *config = event_config_new();
        if (!config)
            return child.fatal("event_config_new failed");
        if (event_config_set_flag(config, EVENT_BASE_FLAG_PRECISE_TIMER) != 0)
            return child.fatal("event_config_set_flag failed");
        base = event_base_new_with_config(config);
        event_config_free(config);
    } else {
        base = event_base_new();
    }
    if (!base)
        return child.fatal("creating the event base failed");

    LatenessRun run;
    run.n = offsets.size();
    run.base = base;
    std::vector<Shot> shots(offsets.size(), Shot{0, &run});
    std::unique_ptr<event[]> events(new event[offsets.size()]);
    for (std::size_t i = 0; i < offsets.size(); ++i)
        if (evtimer_assign(&events[i], base, on_event_fire, &shots[i]) != 0)
            return child.fatal("evtimer_assign failed");

    const std::uint64_t start = mono_ns();
    for (std::size_t i = 0; i < offsets.size(); ++i) {
        const std::uint64_t deadline = start + offsets[i];
        const std::uint64_t now = mono_ns();
        const std::uint64_t delay = deadline > now ? deadline - now : 0;
        const std::uint64_t us = delay / 1000 + (delay % 1000 != 0);
        timeval tv{};
        tv.tv_sec = static_cast<time_t>(us / 1'000'000);
        tv.tv_usec = static_cast<suseconds_t>(us % 1'000'000);
        if (evtimer_add(&events[i], &tv) != 0)
            return child.fatal("evtimer_add failed");
    }
    const std::uint64_t cpu_before = cpu_ns();
    const std::uint64_t before = mono_ns();
    const int status = event_base_dispatch(base);
    const std::uint64_t elapsed = mono_ns() - before;
    const std::uint64_t cpu = cpu_ns() - cpu_before;
    if (status < 0)
        return child.fatal("event_base_dispatch failed");
    if (!lateness_figures(child, run, shots, offsets, start))
        return false;
    child.sample.set(kCpuPercent, percent(cpu, elapsed));
    event_base_free(base);
    return true;
}

} // namespace

bool run_lateness_tw_loop(const Options &options, Child &child)
{
    return run_lateness_tw_loop_slack(options, child, 0);
}

bool run_lateness_slack(const Options &options, Child &child)
{
    return run_lateness_tw_loop_slack(options, child, kSlackNs);
}

bool run_lateness_by_hand(const Options &options, Child &child)
{
    return run_lateness_tw_loop_slack(options, child, 0, true);
}

bool run_lateness_precise(const Options &options, Child &child)
{
    return run_lateness_libevent(options, child, true);
}

bool run_lateness_default(const Options &options, Child &child)
{
    return run_lateness_libevent(options, child, false);
}

} // namespace bench
