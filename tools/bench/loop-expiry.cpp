/*
 * tw-bench --loop, mass expiry: 1M timers at one deadline, 1 s after they
 * are armed, on a loop driven by hand on an injected clock: tw_loop_new on
 * an event_base_new() base that is never dispatched.  The clock jumps to
 * the deadline and tw_loop_process runs turns, default budgets, until all
 * fired.  That jump is what a real loop sees when its timer event goes off
 * at the deadline (cascades included), without a second's wait per run,
 * and the loop times its turns on CLOCK_MONOTONIC whatever its clock, so
 * longest_turn_ns is real time.  A second subject, without a time budget
 * (budget_ns 0, one advance per turn), prices the time checks: the
 * difference in timers per second.
 *
 * Self-checks: every timer fires once, in arming order, with its deadline;
 * no turn fires more than the callback budget, and after a turn the budget
 * stopped, the next deadline is already due.
 *
 * Uses: loop.hpp; libevent (the base that is never dispatched).
 */
#include "loop.hpp"

#include <event2/event.h>

#include <cinttypes>
#include <vector>

namespace bench {

namespace {

constexpr std::uint64_t kExpiryEpochNs = kSecondNs;
constexpr std::uint64_t kExpiryDelayNs = kSecondNs;

struct FakeClock {
    std::uint64_t now_ns;
};

std::uint64_t read_fake_clock(void *userdata) noexcept
{
    return static_cast<const FakeClock *>(userdata)->now_ns;
}

struct ExpiryRun {
    const std::vector<tw_timer> *handles;
    std::uint64_t deadline;
    std::size_t fired = 0;
    std::size_t misordered = 0;
    std::size_t wrong_deadline = 0;
};

void on_expire(tw_timer timer, std::uint64_t deadline_ns, void *userdata) noexcept
{
    ExpiryRun &run = *static_cast<ExpiryRun *>(userdata);
    if (run.fired >= run.handles->size() || (*run.handles)[run.fired] != timer)
        ++run.misordered;
    if (deadline_ns != run.deadline)
        ++run.wrong_deadline;
    ++run.fired;
}

bool run_expiry_with(Child &child, bool time_budget)
{
    event_base *base = event_base_new();
    if (!base)
        return child.fatal("event_base_new failed");
    FakeClock clock{kExpiryEpochNs};
    tw_loop_config config;
    tw_loop_config_init(&config);
    config.clock = read_fake_clock;
    config.clock_userdata = &clock;
    if (!time_budget)
        config.budget_ns = 0;
    const std::uint32_t budget = config.budget_callbacks;
    tw_loop *loop = nullptr;
    if (const int err = tw_loop_new(base, &config, &loop); err < 0)
        return child.fatal("tw_loop_new: %s", error_name(err));

    std::vector<tw_timer> handles(kExpiryTimers);
    ExpiryRun run{&handles, kExpiryEpochNs + kExpiryDelayNs};
    for (tw_timer &handle : handles)
        if (const int err = tw_loop_schedule(loop, run.deadline, on_expire, &run, &handle);
            err < 0)
            return child.fatal("tw_loop_schedule: %s", error_name(err));

    clock.now_ns = run.deadline;
    std::uint64_t total_ns = 0, first_ns = 0, turns = 0, returned = 0;
    std::size_t over_budget = 0, not_due = 0, idle_turns = 0;
    while (run.fired < kExpiryTimers) {
        const std::uint64_t before = mono_ns();
        const int fired = tw_loop_process(loop);
        const std::uint64_t took = mono_ns() - before;
        if (fired < 0)
            return child.fatal("tw_loop_process: %s", error_name(fired));
        /* A turn may only move timers down the wheel (its cascade work is
         * budgeted too); one that fires nothing must still leave work due. */
        std::uint64_t due_at;
        if (fired == 0 && (tw_loop_next_deadline(loop, &due_at) != 0 ||
                           due_at > tw_loop_now(loop) || ++idle_turns > kExpiryTimers))
            return child.fatal("a turn fired nothing with %zu timers due",
                               kExpiryTimers - run.fired);
        if (turns++ == 0)
            first_ns = took;
        total_ns += took;
        returned += static_cast<std::uint64_t>(fired);
        if (budget && static_cast<std::uint32_t>(fired) > budget)
            ++over_budget;
        /* Stopped by the budget, the loop must ask for another turn now. */
        std::uint64_t next;
        if (run.fired < kExpiryTimers &&
            (tw_loop_next_deadline(loop, &next) != 0 || next > tw_loop_now(loop)))
            ++not_due;
    }

    tw_loop_stats stats;
    if (!loop_stats(child, loop, &stats))
        return false;
    child.check(run.fired == kExpiryTimers && returned == kExpiryTimers &&
                    stats.fired == kExpiryTimers,
                "%zu callbacks, %" PRIu64 " by the turns' counts, %" PRIu64
                " by the loop's, not %zu",
                run.fired, returned, stats.fired, kExpiryTimers);
    child.check(run.misordered == 0, "timers fired out of arming order: %zu", run.misordered);
    child.check(run.wrong_deadline == 0, "callbacks given a wrong deadline: %zu",
                run.wrong_deadline);
    child.check(over_budget == 0, "turns that fired more than the budget of %" PRIu32 ": %zu",
                budget, over_budget);
    child.check(!budget || turns >= (kExpiryTimers + budget - 1) / budget,
                "%" PRIu64 " turns with a budget of %" PRIu32, turns, budget);
    child.check(not_due == 0,
                "turns stopped by the budget after which the next deadline was not due: %zu",
                not_due);
    child.sample.set(kLongestTurn, static_cast<double>(stats.longest_turn_ns));
    child.sample.set(kFirstTurn, static_cast<double>(first_ns));
    child.sample.set(kTurns, static_cast<double>(turns));
    child.sample.set(kBudgetStops, static_cast<double>(stats.budget_stops));
    child.sample.set(kTimersPerSecond, per_second(kExpiryTimers, total_ns));
    child.sample.set(kTimeChecks, static_cast<double>(stats.budget_time_stops));
    tw_loop_free(loop);
    event_base_free(base);
    return true;
}

} // namespace

bool run_expiry(const Options &, Child &child) { return run_expiry_with(child, true); }
bool run_expiry_untimed(const Options &, Child &child)
{
    return run_expiry_with(child, false);
}

} // namespace bench
