/*
 * tw-bench --loop: tw_loop on a real libevent loop, beside libevent's own
 * timers, against the loop targets of PERFORMANCE.md.
 *
 *   lateness  --loop-timers timers (100k) with deadlines uniform over
 *             --loop-seconds (3 s) from the moment arming starts, all armed
 *             before the loop runs.  Each callback reads CLOCK_MONOTONIC;
 *             lateness is that reading minus the deadline.  Three subjects:
 *               tw_loop           tw_loop_new(NULL, ...): its own base, with
 *                                 precise timers, run by tw_loop_run and
 *                                 stopped by the last callback
 *               libevent-precise  one evtimer per timer on a base with
 *                                 EVENT_BASE_FLAG_PRECISE_TIMER
 *               libevent-default  the same on event_base_new()
 *             libevent takes relative timevals: each deadline is converted
 *             against a CLOCK_MONOTONIC reading taken just before its
 *             evtimer_add, rounded up to the microsecond.  "After start-up"
 *             leaves out the timers due in the first 100 ms, which also wait
 *             for the arming of the others.
 *   expiry    1M timers at one deadline, 1 s after they are armed, on a loop
 *             driven by hand on an injected clock: tw_loop_new on an
 *             event_base_new() base that is never dispatched.  The clock
 *             jumps to the deadline and tw_loop_process runs turns, default
 *             budget, until all fired.  That jump is what a real loop sees
 *             when its timer event goes off at the deadline (cascades
 *             included), without a second's wait per run, and the loop
 *             times its turns on CLOCK_MONOTONIC whatever its clock, so
 *             longest_turn_ns is real time.
 *   inbox     1 and 2 producer threads post 2M functions in all with
 *             tw_loop_post, retrying with sched_yield on TW_EAGAIN, to a
 *             loop in tw_loop_run; the function counts, and the last one
 *             stops the loop.  Commands per second from the start of the
 *             producers to the return of tw_loop_run.
 *   idle      a loop on its own base with no timer, run until another
 *             thread stops it after 1 s: timer wake-ups and CPU.
 *   slack     the lateness run of tw_loop again, every timer armed with
 *             tw_loop_schedule_slack and 1 ms of slack: wake-ups per
 *             second and CPU beside the exact run; lateness is still taken
 *             against the requested deadline, and none may be early.
 *   by hand   the lateness run of tw_loop again, driven by hand: poll(2)
 *             on tw_loop_fd with no timeout, tw_loop_process when it is
 *             readable; wake-ups are the readinesses.
 *   expiry without a time budget: the mass expiry with budget_ns 0, one
 *             advance per turn: the cost of reading the clock every 64
 *             callbacks is the difference in timers per second.
 *   hand-off  the crossover of the loop's worker (lib/loop/worker.hpp, the
 *             facility behind Loop::parallel): for batch sizes 16 to 16384
 *             and a synthetic pure kernel of ~20, ~80 and ~300 ns per item
 *             (rounds of a 64-bit mix over the item, calibrated in each
 *             run), ns per batch run on the calling thread alone (direct)
 *             and split with the worker (hand-off).  Batches run back to
 *             back, as in a storm of turns, so the worker is mostly
 *             spinning when a batch comes: the warm case.  Each cell is the
 *             median of 7 samples of several batches in one run; the table
 *             gives the median (min-max) of those over the runs, and the
 *             crossover is the smallest size from which hand-off wins at
 *             every larger size.  A layer check of one connection (a few
 *             deadline compares and an RTT update over a connection's cache
 *             lines) costs about the ~80 ns kernel when cold in cache.
 *
 * CPU % is getrusage(RUSAGE_SELF) user + system time over wall time while
 * the loop runs.  Every run is a child process of its own, as in the other
 * mode, with an alarm as a watchdog against a loop that never returns; the
 * runs of the benchmarks are interleaved.  The default, 3 runs, takes about
 * 45 s, two thirds of it the 3 x 3 s of lateness.
 *
 * Self-checks: every return code; each timer fires exactly once, and in the
 * expiry in arming order, with its deadline, within the budget; no tw_loop
 * timer fires early; every posted function runs once, and the refusals the
 * producers saw are the loop's inbox_refused; the idle loop returns only
 * after the stop.  A failed check prints why on stderr and makes the exit
 * status 1.  The targets are reported, not checked; libevent firing early
 * is counted, not a failure.
 */
#include "bench-workloads.hpp"

#include <tickwheel.h>

#include "loop/worker.hpp"

#include <event2/event.h>
#include <event2/event_struct.h>

#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace bench {
namespace {

constexpr std::uint64_t kSecondNs = 1'000'000'000;
constexpr std::uint64_t kStartupNs = 100'000'000;
constexpr std::size_t kExpiryTimers = 1'000'000;
constexpr std::uint64_t kExpiryEpochNs = kSecondNs;
constexpr std::uint64_t kExpiryDelayNs = kSecondNs;
constexpr std::size_t kInboxCommands = 2'000'000;
constexpr std::uint64_t kIdleNs = kSecondNs;
/* The watchdog of a run, beyond twice the lateness span. */
constexpr unsigned kWatchdogSlackSeconds = 60;

/* Targets, from PERFORMANCE.md. */
constexpr double kTargetP50Ns = 15'000;
constexpr double kTargetP99Ns = 40'000;
constexpr double kTargetMaxNs = 1'000'000;
constexpr double kTargetTurnNs = 1'000'000;

enum Metric : unsigned {
    kEarly,
    kLateP50,
    kLateP99,
    kLateMax,
    kLateMaxSteady,
    kWakeupsPerSecond,
    kCpuPercent,
    kLongestTurn,
    kFirstTurn,
    kTurns,
    kBudgetStops,
    kTimersPerSecond,
    kCommandsPerSecond,
    kRefusals,
    kInboxHighWater,
    kWakeups,
    kTimeChecks,
    kMetricCount
};

enum class Unit { count, ns, per_second, percent };

struct MetricInfo {
    Metric id;
    const char *key;
    Unit unit;
};

constexpr MetricInfo kMetrics[] = {
    {kEarly, "early", Unit::count},
    {kLateP50, "late_p50_ns", Unit::ns},
    {kLateP99, "late_p99_ns", Unit::ns},
    {kLateMax, "late_max_ns", Unit::ns},
    {kLateMaxSteady, "late_max_after_startup_ns", Unit::ns},
    {kWakeupsPerSecond, "wakeups_per_s", Unit::count},
    {kCpuPercent, "cpu_percent", Unit::percent},
    {kLongestTurn, "longest_turn_ns", Unit::ns},
    {kFirstTurn, "first_turn_ns", Unit::ns},
    {kTurns, "turns", Unit::count},
    {kBudgetStops, "budget_stops", Unit::count},
    {kTimersPerSecond, "timers_per_s", Unit::per_second},
    {kCommandsPerSecond, "commands_per_s", Unit::per_second},
    {kRefusals, "refusals", Unit::count},
    {kInboxHighWater, "inbox_high_water", Unit::count},
    {kWakeups, "wakeups", Unit::count},
    {kTimeChecks, "budget_time_stops", Unit::count},
};
static_assert(std::size(kMetrics) == kMetricCount, "one MetricInfo per Metric");

/* What a child sends back: plain data, through a pipe. */
struct Sample {
    double value[kMetricCount];
    bool has[kMetricCount];
    bool check_failed;

    void set(Metric metric, double v)
    {
        value[metric] = v;
        has[metric] = true;
    }
};

/* The state of one run, in its child process. */
class Child {
public:
    explicit Child(std::string label) : label_(std::move(label)) {}

    /* A failure the run cannot go on from: prints it, returns false. */
    bool fatal(const char *fmt, ...) __attribute__((format(printf, 2, 3)))
    {
        va_list args;
        va_start(args, fmt);
        say(fmt, args);
        va_end(args);
        return false;
    }
    /* A self-check: when ok is false, prints why; the figures still go back. */
    void check(bool ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)))
    {
        if (ok)
            return;
        va_list args;
        va_start(args, fmt);
        say(fmt, args);
        va_end(args);
        sample.check_failed = true;
    }

    Sample sample{};

private:
    void say(const char *fmt, va_list args) const
    {
        char message[256];
        std::vsnprintf(message, sizeof message, fmt, args);
        std::fprintf(stderr, "tw-bench: %s: %s\n", label_.c_str(), message);
    }

    std::string label_;
};

/* Only in children: a clock that fails ends the run. */
std::uint64_t mono_ns()
{
    timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        std::perror("tw-bench: clock_gettime");
        _exit(1);
    }
    return static_cast<std::uint64_t>(ts.tv_sec) * kSecondNs +
           static_cast<std::uint64_t>(ts.tv_nsec);
}

std::uint64_t cpu_ns()
{
    rusage usage;
    if (getrusage(RUSAGE_SELF, &usage) != 0) {
        std::perror("tw-bench: getrusage");
        _exit(1);
    }
    const auto ns = [](const timeval &tv) {
        return static_cast<std::uint64_t>(tv.tv_sec) * kSecondNs +
               static_cast<std::uint64_t>(tv.tv_usec) * 1000;
    };
    return ns(usage.ru_utime) + ns(usage.ru_stime);
}

double percent(std::uint64_t part, std::uint64_t whole)
{
    return whole ? 100.0 * static_cast<double>(part) / static_cast<double>(whole) : 0;
}

double per_second(std::uint64_t count, std::uint64_t ns)
{
    return ns ? static_cast<double>(count) * 1e9 / static_cast<double>(ns) : 0;
}

const char *error_name(int err)
{
    const char *name = tw_err_name(err);
    return name ? name : "an unknown error";
}

/* Lateness ------------------------------------------------------------- */

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
std::vector<std::uint64_t> lateness_offsets(const LoopOptions &options)
{
    Rng rng(options.seed);
    const std::uint64_t span = options.seconds * kSecondNs;
    std::vector<std::uint64_t> offsets(options.timers);
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
/* The loop's statistics, or a fatal error in the child. */
bool loop_stats(Child &child, const tw_loop *loop, tw_loop_stats *stats)
{
    *stats = tw_loop_stats{};
    stats->struct_size = sizeof *stats;
    if (const int err = tw_loop_stats_get(loop, stats); err < 0)
        return child.fatal("tw_loop_stats_get: %s", error_name(err));
    return true;
}

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
    child.sample.set(kLateP99, static_cast<double>(late[rank(0.99, late.size())]));
    child.sample.set(kLateMax, static_cast<double>(late.back()));
    if (max_steady)
        child.sample.set(kLateMaxSteady, static_cast<double>(*max_steady));
    return true;
}

constexpr std::uint64_t kSlackNs = 1'000'000;

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

bool run_lateness_tw_loop_slack(const LoopOptions &options, Child &child, std::uint64_t slack,
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

bool run_lateness_tw_loop(const LoopOptions &options, Child &child)
{
    return run_lateness_tw_loop_slack(options, child, 0);
}

bool run_lateness_slack(const LoopOptions &options, Child &child)
{
    return run_lateness_tw_loop_slack(options, child, kSlackNs);
}

bool run_lateness_by_hand(const LoopOptions &options, Child &child)
{
    return run_lateness_tw_loop_slack(options, child, 0, true);
}

bool run_lateness_libevent(const LoopOptions &options, Child &child, bool precise)
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

bool run_lateness_precise(const LoopOptions &options, Child &child)
{
    return run_lateness_libevent(options, child, true);
}

bool run_lateness_default(const LoopOptions &options, Child &child)
{
    return run_lateness_libevent(options, child, false);
}

/* Mass expiry ---------------------------------------------------------- */

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

bool run_expiry(const LoopOptions &, Child &child) { return run_expiry_with(child, true); }
bool run_expiry_untimed(const LoopOptions &, Child &child)
{
    return run_expiry_with(child, false);
}

/* Inbox ---------------------------------------------------------------- */

struct InboxRun {
    std::size_t total = 0;
    std::size_t ran = 0;
    std::size_t cancelled = 0;
    int stop_error = 0;
};

void on_command(tw_loop *loop, int status, void *userdata) noexcept
{
    InboxRun &run = *static_cast<InboxRun *>(userdata);
    if (status != 0) {
        ++run.cancelled;
        return;
    }
    if (++run.ran == run.total)
        if (const int err = tw_loop_stop(loop); err < 0)
            run.stop_error = err;
}

struct Producer {
    tw_loop *loop;
    InboxRun *run;
    std::size_t count;
    const std::atomic<bool> *quit;
    std::size_t posted = 0;
    std::uint64_t refusals = 0;
    int error = 0;     /* a TW_E* code */
    int sys_error = 0; /* an errno value */
    pthread_t thread{};
};

void *produce(void *arg)
{
    Producer &p = *static_cast<Producer *>(arg);
    while (p.posted < p.count) {
        const int err = tw_loop_post(p.loop, on_command, p.run);
        if (err == 0) {
            ++p.posted;
            continue;
        }
        if (err != TW_EAGAIN) {
            p.error = err;
            break;
        }
        ++p.refusals;
        /* The loop stopped early: its inbox may never drain again. */
        if (p.quit->load(std::memory_order_relaxed))
            break;
        if (sched_yield() != 0) {
            p.sys_error = errno;
            break;
        }
    }
    return nullptr;
}

bool run_inbox(Child &child, std::size_t producers)
{
    tw_loop *loop = nullptr;
    if (const int err = tw_loop_new(nullptr, nullptr, &loop); err < 0)
        return child.fatal("tw_loop_new: %s", error_name(err));
    InboxRun run;
    run.total = kInboxCommands;
    std::atomic<bool> quit{false};
    std::vector<Producer> threads;
    for (std::size_t i = 0; i < producers; ++i)
        threads.push_back(Producer{loop, &run,
                                   kInboxCommands / producers +
                                       (i < kInboxCommands % producers ? 1 : 0),
                                   &quit});

    const std::uint64_t before = mono_ns();
    std::size_t started = 0;
    int create_error = 0;
    for (Producer &p : threads) {
        if ((create_error = pthread_create(&p.thread, nullptr, produce, &p)) != 0)
            break;
        ++started;
    }
    /* Without every producer the last function never comes: no run. */
    const int err = started == producers ? tw_loop_run(loop) : 0;
    const std::uint64_t elapsed = mono_ns() - before;
    quit.store(true, std::memory_order_relaxed);
    bool joined = true;
    for (std::size_t i = 0; i < started; ++i)
        joined &= pthread_join(threads[i].thread, nullptr) == 0;
    if (create_error)
        return child.fatal("pthread_create: %s", std::strerror(create_error));
    if (!joined)
        return child.fatal("pthread_join failed");
    if (err < 0)
        return child.fatal("tw_loop_run: %s", error_name(err));

    tw_loop_stats stats;
    if (!loop_stats(child, loop, &stats))
        return false;
    tw_loop_free(loop);

    std::size_t posted = 0;
    std::uint64_t refusals = 0;
    for (const Producer &p : threads) {
        child.check(p.error == 0, "tw_loop_post: %s", error_name(p.error));
        child.check(p.sys_error == 0, "sched_yield: %s", std::strerror(p.sys_error));
        posted += p.posted;
        refusals += p.refusals;
    }
    child.check(posted == kInboxCommands && run.ran == kInboxCommands &&
                    stats.inbox_run == kInboxCommands && run.cancelled == 0,
                "%zu posted, %zu ran, %" PRIu64 " carried out by the loop's count, %zu "
                "cancelled; %zu expected",
                posted, run.ran, stats.inbox_run, run.cancelled, kInboxCommands);
    child.check(refusals == stats.inbox_refused,
                "the producers saw %" PRIu64 " refusals, the loop counted %" PRIu64, refusals,
                stats.inbox_refused);
    child.check(run.stop_error == 0, "tw_loop_stop: %s", error_name(run.stop_error));
    child.sample.set(kCommandsPerSecond, per_second(kInboxCommands, elapsed));
    child.sample.set(kRefusals, static_cast<double>(refusals));
    child.sample.set(kInboxHighWater, static_cast<double>(stats.inbox_high_water));
    child.sample.set(kTurns, static_cast<double>(stats.turns));
    return true;
}

bool run_inbox_1(const LoopOptions &, Child &child) { return run_inbox(child, 1); }
bool run_inbox_2(const LoopOptions &, Child &child) { return run_inbox(child, 2); }

/* Idle ----------------------------------------------------------------- */

struct Stopper {
    tw_loop *loop;
    std::atomic<bool> stopping{false};
    int error = 0;
};

void *stop_later(void *arg)
{
    Stopper &s = *static_cast<Stopper *>(arg);
    timespec left{static_cast<time_t>(kIdleNs / kSecondNs),
                  static_cast<long>(kIdleNs % kSecondNs)};
    int err;
    while ((err = clock_nanosleep(CLOCK_MONOTONIC, 0, &left, &left)) == EINTR) {
    }
    if (err != 0)
        s.error = err;
    s.stopping.store(true);
    if (const int e = tw_loop_stop(s.loop); e < 0 && s.error == 0)
        s.error = e;
    return nullptr;
}

bool run_idle(const LoopOptions &, Child &child)
{
    tw_loop *loop = nullptr;
    if (const int err = tw_loop_new(nullptr, nullptr, &loop); err < 0)
        return child.fatal("tw_loop_new: %s", error_name(err));
    Stopper stopper;
    stopper.loop = loop;
    const std::uint64_t cpu_before = cpu_ns();
    const std::uint64_t before = mono_ns();
    pthread_t thread;
    if (const int err = pthread_create(&thread, nullptr, stop_later, &stopper); err != 0)
        return child.fatal("pthread_create: %s", std::strerror(err));
    const int err = tw_loop_run(loop);
    const std::uint64_t elapsed = mono_ns() - before;
    const std::uint64_t cpu = cpu_ns() - cpu_before;
    const bool stopped = stopper.stopping.load();
    if (const int e = pthread_join(thread, nullptr); e != 0)
        return child.fatal("pthread_join: %s", std::strerror(e));
    if (err < 0)
        return child.fatal("tw_loop_run: %s", error_name(err));
    child.check(stopper.error == 0, "the stopping thread failed: %s",
                stopper.error > 0 ? std::strerror(stopper.error) : error_name(stopper.error));
    child.check(stopped, "tw_loop_run returned before tw_loop_stop, after %" PRIu64 " ns",
                elapsed);

    tw_loop_stats stats;
    if (!loop_stats(child, loop, &stats))
        return false;
    tw_loop_free(loop);
    child.sample.set(kWakeups, static_cast<double>(stats.wakeups));
    child.sample.set(kTurns, static_cast<double>(stats.turns));
    child.sample.set(kCpuPercent, percent(cpu, elapsed));
    return true;
}


/* Hand-off crossover ----------------------------------------------------- */

constexpr std::size_t kHandoffSizes[] = {16, 32, 64, 128, 256, 512, 1024, 4096, 16384};
constexpr double kHandoffCosts[] = {20, 80, 300};      /* target ns per item */
constexpr std::size_t kSizeCount = std::size(kHandoffSizes);
constexpr std::size_t kCostCount = std::size(kHandoffCosts);
constexpr unsigned kHandoffSamples = 7;
constexpr double kHandoffSampleNs = 2e6;

struct HandoffSample {
    double direct[kSizeCount][kCostCount];      /* ns per batch */
    double handoff[kSizeCount][kCostCount];
    double cold_direct[kSizeCount][kCostCount]; /* after 200 us idle: worker asleep */
    double cold_handoff[kSizeCount][kCostCount];
    double item_ns[kCostCount];                 /* the kernel's cost, measured direct */
    double worker_share;                        /* items the worker ran, fraction */
};

struct Kernel {
    const std::uint64_t *in;
    std::uint64_t *out;
    unsigned rounds;
    std::atomic<std::uint64_t> worker_items{0};
    pthread_t caller;
};

inline std::uint64_t mix(std::uint64_t x)
{
    x ^= x >> 31;
    x *= 0x7fb5d329728ea185ull;
    x ^= x >> 27;
    x *= 0x81dadef4bc2dd44dull;
    return x ^ (x >> 33);
}

void kernel(void *ctx, std::size_t begin, std::size_t end)
{
    Kernel &k = *static_cast<Kernel *>(ctx);
    for (std::size_t i = begin; i < end; ++i) {
        std::uint64_t x = k.in[i];
        for (unsigned r = 0; r < k.rounds; ++r)
            x = mix(x + r);
        k.out[i] = x;
    }
    if (!pthread_equal(pthread_self(), k.caller))
        k.worker_items.fetch_add(end - begin, std::memory_order_relaxed);
}

/* ns per batch of the direct path over `batches` batches. */
double time_direct(Kernel &k, std::size_t n, std::size_t batches)
{
    const std::uint64_t before = mono_ns();
    for (std::size_t b = 0; b < batches; ++b)
        kernel(&k, 0, n);
    return static_cast<double>(mono_ns() - before) / static_cast<double>(batches);
}

double time_handoff(tw::Worker &worker, Kernel &k, std::size_t n, std::size_t batches,
                    bool *ok)
{
    const std::uint64_t before = mono_ns();
    for (std::size_t b = 0; b < batches; ++b)
        *ok &= worker.split(n, kernel, &k);
    return static_cast<double>(mono_ns() - before) / static_cast<double>(batches);
}

/* One batch each way after the worker has gone to sleep (it spins 50 us):
 * the hand-off pays the futex wake and the worker joins late, if at all. */
constexpr unsigned kColdBatches = 15;
constexpr long kColdIdleNs = 200'000;

void idle_a_while()
{
    timespec idle{0, kColdIdleNs};
    while (nanosleep(&idle, &idle) != 0 && errno == EINTR) {
    }
}

void time_cold(tw::Worker &worker, Kernel &k, std::size_t n, double *direct, double *handoff,
               bool *ok)
{
    std::vector<double> d, h;
    for (unsigned b = 0; b < kColdBatches; ++b) {
        idle_a_while();
        d.push_back(time_direct(k, n, 1));
        idle_a_while();
        h.push_back(time_handoff(worker, k, n, 1, ok));
    }
    *direct = summarize(d).median;
    *handoff = summarize(h).median;
}

bool run_handoff_child(HandoffSample *out)
{
    const std::size_t max_n = kHandoffSizes[kSizeCount - 1];
    std::vector<std::uint64_t> in(max_n), result(max_n), check(max_n);
    for (std::size_t i = 0; i < max_n; ++i)
        in[i] = mix(i + 1);
    Kernel k;
    k.in = in.data();
    k.out = result.data();
    k.caller = pthread_self();
    tw::Worker worker;
    bool ok = true;
    std::uint64_t all_items = 0;

    /* Calibrate: ns per round, then rounds per target cost. */
    k.rounds = 16;
    time_direct(k, 4096, 20);
    const double per_round = time_direct(k, 4096, 50) / 4096 / 16;
    unsigned rounds[kCostCount];
    for (std::size_t c = 0; c < kCostCount; ++c) {
        rounds[c] = std::max(1u, static_cast<unsigned>(kHandoffCosts[c] / per_round + 0.5));
        k.rounds = rounds[c];
        /* Once more, on the cost measured at that count of rounds. */
        const double first = time_direct(k, 4096, 20) / 4096;
        rounds[c] = std::max(
            1u, static_cast<unsigned>(rounds[c] * kHandoffCosts[c] / first + 0.5));
        k.rounds = rounds[c];
        out->item_ns[c] = time_direct(k, 4096, 20) / 4096;
    }

    for (std::size_t s = 0; s < kSizeCount; ++s)
        for (std::size_t c = 0; c < kCostCount; ++c) {
            const std::size_t n = kHandoffSizes[s];
            k.rounds = rounds[c];
            const double batch_ns = static_cast<double>(n) * out->item_ns[c];
            const std::size_t batches =
                std::max<std::size_t>(3, static_cast<std::size_t>(kHandoffSampleNs / batch_ns));
            std::vector<double> direct, handoff;
            time_handoff(worker, k, n, 2, &ok);        /* warm: the worker is awake */
            for (unsigned r = 0; r < kHandoffSamples; ++r) {
                direct.push_back(time_direct(k, n, batches));
                handoff.push_back(time_handoff(worker, k, n, batches, &ok));
                all_items += n * batches;
            }
            out->direct[s][c] = summarize(direct).median;
            out->handoff[s][c] = summarize(handoff).median;
            time_cold(worker, k, n, &out->cold_direct[s][c], &out->cold_handoff[s][c], &ok);
            /* The split computes what the direct path does. */
            k.out = check.data();
            kernel(&k, 0, n);
            k.out = result.data();
            worker.split(n, kernel, &k);
            if (!std::equal(check.begin(), check.begin() + static_cast<std::ptrdiff_t>(n),
                            result.begin())) {
                std::fprintf(stderr, "tw-bench: hand-off: results differ at %zu items\n", n);
                return false;
            }
        }
    out->worker_share = all_items ? static_cast<double>(k.worker_items.load()) /
                                        static_cast<double>(all_items)
                                  : 0;
    if (!ok)
        std::fprintf(stderr, "tw-bench: hand-off: the worker thread could not start\n");
    return ok;
}

struct HandoffResults {
    std::vector<HandoffSample> samples;
    unsigned failed = 0;
};

HandoffResults run_handoff(const LoopOptions &options)
{
    HandoffResults results;
    Progress progress(options.runs);
    for (unsigned r = 0; r < options.runs; ++r) {
        progress.step(format("run %u: hand-off crossover", r + 1));
        HandoffSample sample{};
        const bool ok = run_isolated(
            "hand-off",
            [&](int fd) {
                alarm(kWatchdogSlackSeconds);
                HandoffSample local{};
                return run_handoff_child(&local) && write_all(fd, &local, sizeof local);
            },
            &sample, sizeof sample);
        if (ok)
            results.samples.push_back(sample);
        else
            ++results.failed;
    }
    return results;
}

template <typename Get>
Summary handoff_summary(const HandoffResults &results, Get get)
{
    std::vector<double> values;
    for (const HandoffSample &sample : results.samples)
        values.push_back(get(sample));
    return summarize(values);
}

std::string handoff_cell(const Summary &s)
{
    const auto us = [](double ns) { return format(ns < 10000 ? "%.2f" : "%.0f", ns / 1000); };
    return us(s.median) + " (" + us(s.min) + "-" + us(s.max) + ")";
}

/* The smallest size from which hand-off's median wins at every larger
 * size; 0 when it never does. */
std::size_t crossover(const HandoffResults &results, std::size_t c, bool cold)
{
    std::size_t from = 0;
    for (std::size_t s = kSizeCount; s-- > 0;) {
        const double d = handoff_summary(results, [&](const HandoffSample &x) {
                             return cold ? x.cold_direct[s][c] : x.direct[s][c];
                         }).median;
        const double h = handoff_summary(results, [&](const HandoffSample &x) {
                             return cold ? x.cold_handoff[s][c] : x.handoff[s][c];
                         }).median;
        if (h >= d)
            break;
        from = kHandoffSizes[s];
    }
    return from;
}

void print_handoff_table(const HandoffResults &results, bool cold)
{
    std::printf("\nHand-off, %s: us per batch of a pure kernel, direct (loop thread alone) vs "
                "split with the worker; median (min-max) of %zu run%s\n",
                cold ? "cold (each batch after 200 us idle, the worker asleep)"
                     : "warm (batches back to back)",
                results.samples.size(), results.samples.size() == 1 ? "" : "s");
    if (results.samples.empty()) {
        std::puts("FAIL");
        return;
    }
    std::vector<Row> rows{{"items"}};
    for (std::size_t c = 0; c < kCostCount; ++c) {
        const Summary item = handoff_summary(
            results, [&](const HandoffSample &x) { return x.item_ns[c]; });
        rows[0].push_back(format("%.0f ns/item direct", item.median));
        rows[0].push_back("hand-off");
        rows[0].push_back("ratio");
    }
    for (std::size_t s = 0; s < kSizeCount; ++s) {
        Row row{format("%zu", kHandoffSizes[s])};
        for (std::size_t c = 0; c < kCostCount; ++c) {
            const Summary d = handoff_summary(results, [&](const HandoffSample &x) {
                return cold ? x.cold_direct[s][c] : x.direct[s][c];
            });
            const Summary h = handoff_summary(results, [&](const HandoffSample &x) {
                return cold ? x.cold_handoff[s][c] : x.handoff[s][c];
            });
            row.push_back(handoff_cell(d));
            row.push_back(handoff_cell(h));
            row.push_back(format("%.2f", h.median / d.median));
        }
        rows.push_back(row);
    }
    Row cross{"crossover"};
    for (std::size_t c = 0; c < kCostCount; ++c) {
        const std::size_t from = crossover(results, c, cold);
        cross.push_back("");
        cross.push_back(from ? format(">= %zu", from) : "never");
        cross.push_back("");
    }
    rows.push_back(cross);
    print_table(rows);
}

void print_handoff(const HandoffResults &results)
{
    if (results.samples.empty()) {
        std::puts("\nHand-off: FAIL");
        return;
    }
    print_handoff_table(results, false);
    print_handoff_table(results, true);
    const Summary share = handoff_summary(
        results, [](const HandoffSample &x) { return x.worker_share; });
    std::printf("Ratio: hand-off / direct, of the medians.  The worker ran %.0f %% of the "
                "items handed off.\nDefault batch_threshold: the cold crossover at ~80 "
                "ns/item (a layer check).\n",
                share.median * 100);
    if (results.failed)
        std::printf("SELF-CHECK FAILED: hand-off, in %u runs (reasons on stderr)\n",
                    results.failed);
}

/* The driver ----------------------------------------------------------- */

struct LoopJob {
    const char *bench;
    const char *subject;
    bool (*run)(const LoopOptions &options, Child &child);
};

constexpr LoopJob kJobs[] = {
    {"lateness", "tw_loop", run_lateness_tw_loop},
    {"lateness", "libevent-precise", run_lateness_precise},
    {"lateness", "libevent-default", run_lateness_default},
    {"expiry", "tw_loop", run_expiry},
    {"inbox", "1-producer", run_inbox_1},
    {"inbox", "2-producers", run_inbox_2},
    {"idle", "tw_loop", run_idle},
    {"lateness", "tw_loop-slack-1ms", run_lateness_slack},
    {"expiry", "tw_loop-no-time-budget", run_expiry_untimed},
    {"lateness", "tw_loop-by-hand", run_lateness_by_hand},
};
enum Job : std::size_t {
    kLatenessTwLoop,
    kLatenessPrecise,
    kLatenessDefault,
    kExpiry,
    kInbox1,
    kInbox2,
    kIdle,
    kLatenessSlack,
    kExpiryUntimed,
    kLatenessByHand,
    kJobCount
};
static_assert(std::size(kJobs) == kJobCount, "one LoopJob per Job");

struct JobResult {
    std::vector<double> values[kMetricCount];
    unsigned ok = 0;
    unsigned failed = 0;       /* runs that sent nothing back */
    unsigned check_failed = 0; /* runs whose self-checks failed */
};

using Results = std::vector<JobResult>;

std::string label(const LoopJob &job) { return std::string(job.bench) + " " + job.subject; }

std::optional<Sample> run_job(const LoopJob &job, const LoopOptions &options)
{
    const std::string name = label(job);
    Sample sample{};
    const bool ok = run_isolated(
        name,
        [&](int fd) {
            alarm(2 * options.seconds + kWatchdogSlackSeconds);
            Child child(name);
            /* The figures are out: the kernel tears down faster. */
            return job.run(options, child) &&
                   write_all(fd, &child.sample, sizeof child.sample);
        },
        &sample, sizeof sample);
    if (!ok)
        return std::nullopt;
    return sample;
}

Results run_all(const LoopOptions &options)
{
    Results results(kJobCount);
    Progress progress(kJobCount * options.runs);
    for (unsigned r = 0; r < options.runs; ++r)
        for (std::size_t j = 0; j < kJobCount; ++j) {
            progress.step(format("run %u: %s", r + 1, label(kJobs[j]).c_str()));
            JobResult &result = results[j];
            const std::optional<Sample> sample = run_job(kJobs[j], options);
            if (!sample) {
                ++result.failed;
                continue;
            }
            ++result.ok;
            if (sample->check_failed)
                ++result.check_failed;
            for (unsigned m = 0; m < kMetricCount; ++m)
                if (sample->has[m])
                    result.values[m].push_back(sample->value[m]);
        }
    return results;
}

Unit unit_of(Metric metric)
{
    for (const MetricInfo &info : kMetrics)
        if (info.id == metric)
            return info.unit;
    return Unit::count;
}

std::string number(Unit unit, double value)
{
    switch (unit) {
    case Unit::ns:
        value /= 1000;
        return format(std::abs(value) < 100 ? "%.1f" : "%.0f", value);
    case Unit::per_second:
        return format("%.2f", value / 1e6);
    case Unit::percent:
        return format(value < 10 ? "%.2f" : "%.1f", value);
    case Unit::count:
        break;
    }
    return format("%.0f", value);
}

/* The median (min-max) of a metric over the runs; FAIL when a run failed. */
std::string cell(const Results &results, Job job, Metric metric)
{
    const JobResult &result = results[job];
    if (result.failed)
        return "FAIL";
    const std::vector<double> &values = result.values[metric];
    if (values.empty())
        return "-";
    const Unit unit = unit_of(metric);
    const Summary s = summarize(values);
    if (values.size() == 1)
        return number(unit, s.median);
    return number(unit, s.median) + " (" + number(unit, s.min) + "-" + number(unit, s.max) + ")";
}

std::optional<Summary> summary(const Results &results, Job job, Metric metric)
{
    const JobResult &result = results[job];
    if (result.failed || result.values[metric].empty())
        return std::nullopt;
    return summarize(result.values[metric]);
}

void print_targets(const Results &results)
{
    std::vector<Row> rows{{"target (PERFORMANCE.md)", "tw_loop", "verdict"}};
    const auto add = [&rows](const char *target, std::string measured, std::optional<bool> met) {
        rows.push_back(Row{target, std::move(measured), !met ? "-" : *met ? "met" : "MISSED"});
    };
    const auto at_most = [&](const char *target, Job job, Metric metric, double limit) {
        const std::optional<Summary> s = summary(results, job, metric);
        if (s)
            add(target, number(unit_of(metric), s->median) + " us", s->median <= limit);
        else
            add(target, "-", std::nullopt);
    };
    /* "Never" and "0" hold in every run, not only in the median. */
    const auto none = [&](const char *target, Job job, Metric metric, const char *what) {
        const std::optional<Summary> s = summary(results, job, metric);
        if (s)
            add(target, format("%.0f %s in the worst run", s->max, what), s->max == 0);
        else
            add(target, "-", std::nullopt);
    };

    none("never early", kLatenessTwLoop, kEarly, "early");
    at_most("p50 <= 15 us", kLatenessTwLoop, kLateP50, kTargetP50Ns);
    at_most("p99 <= 40 us", kLatenessTwLoop, kLateP99, kTargetP99Ns);
    at_most("max <= 1 ms after start-up", kLatenessTwLoop, kLateMaxSteady, kTargetMaxNs);
    for (const Metric metric : {kLateP50, kLateP99}) {
        const std::optional<Summary> ours = summary(results, kLatenessTwLoop, metric);
        const std::optional<Summary> theirs = summary(results, kLatenessPrecise, metric);
        const char *target = metric == kLateP50 ? "p50 ahead of libevent-precise"
                                                : "p99 ahead of libevent-precise";
        if (ours && theirs)
            add(target,
                number(Unit::ns, ours->median) + " vs " + number(Unit::ns, theirs->median) +
                    " us",
                ours->median < theirs->median);
        else
            add(target, "-", std::nullopt);
    }
    at_most("1M due at once: longest turn <= 1 ms", kExpiry, kLongestTurn, kTargetTurnNs);
    none("idle loop: 0 wake-ups", kIdle, kWakeups, "wake-ups");
    std::puts("\nTargets, on the medians (\"never\" and \"0\": in every run)");
    print_table(rows);
}

void print_report(const LoopOptions &options, const Results &results)
{
    std::printf("tw-bench --loop, tickwheel %s, libevent %s: median (min-max) of %u run%s, "
                "seed %" PRIu64 "\n",
                tw_version(), event_get_version(), options.runs, options.runs == 1 ? "" : "s",
                options.seed);

    std::printf("\nLateness on a real loop: %s timers, deadlines uniform over %u s, "
                "microseconds late\n",
                n_label(options.timers).c_str(), options.seconds);
    std::vector<Row> rows{{"subject", "early", "p50 us", "p99 us", "max us",
                           "max us after 100 ms", "wake-ups/s", "CPU %"}};
    for (const Job job :
         {kLatenessTwLoop, kLatenessByHand, kLatenessSlack, kLatenessPrecise, kLatenessDefault})
        rows.push_back(Row{kJobs[job].subject, cell(results, job, kEarly),
                           cell(results, job, kLateP50), cell(results, job, kLateP99),
                           cell(results, job, kLateMax), cell(results, job, kLateMaxSteady),
                           cell(results, job, kWakeupsPerSecond),
                           cell(results, job, kCpuPercent)});
    rows.push_back(Row{"target", "0", "<= 15", "<= 40", "", "<= 1000", "", ""});
    print_table(rows);

    std::printf("\nMass expiry: %s timers at one deadline, default budget, turns by hand "
                "on an injected clock\n",
                n_label(kExpiryTimers).c_str());
    print_table({{"subject", "longest turn us", "first turn us", "turns", "time stops",
                  "M timers/s"},
                 {kJobs[kExpiry].subject, cell(results, kExpiry, kLongestTurn),
                  cell(results, kExpiry, kFirstTurn), cell(results, kExpiry, kTurns),
                  cell(results, kExpiry, kTimeChecks), cell(results, kExpiry, kTimersPerSecond)},
                 {kJobs[kExpiryUntimed].subject, cell(results, kExpiryUntimed, kLongestTurn),
                  cell(results, kExpiryUntimed, kFirstTurn),
                  cell(results, kExpiryUntimed, kTurns),
                  cell(results, kExpiryUntimed, kTimeChecks),
                  cell(results, kExpiryUntimed, kTimersPerSecond)},
                 {"target", "<= 1000", "", "", "", ""}});

    std::printf("\nInbox: %s functions posted in all to a loop in tw_loop_run\n",
                n_label(kInboxCommands).c_str());
    print_table({{"producers", "M commands/s", "refusals", "inbox high water"},
                 {"1", cell(results, kInbox1, kCommandsPerSecond),
                  cell(results, kInbox1, kRefusals), cell(results, kInbox1, kInboxHighWater)},
                 {"2", cell(results, kInbox2, kCommandsPerSecond),
                  cell(results, kInbox2, kRefusals),
                  cell(results, kInbox2, kInboxHighWater)}});

    std::printf("\nIdle loop: own base, no timer, stopped by another thread after 1 s\n");
    print_table({{"subject", "wake-ups", "CPU %"},
                 {kJobs[kIdle].subject, cell(results, kIdle, kWakeups),
                  cell(results, kIdle, kCpuPercent)},
                 {"target", "0", ""}});

    print_targets(results);

    std::puts(
        "\nEvery run in a fresh process.  Lateness: CLOCK_MONOTONIC in the callback minus the\n"
        "deadline; p50, p99 and max over all timers, \"after 100 ms\" over those due 100 ms or\n"
        "more after arming began.  libevent gets each deadline as a timeval relative to a\n"
        "CLOCK_MONOTONIC reading taken at its evtimer_add, rounded up to the microsecond;\n"
        "its default base reads CLOCK_MONOTONIC_COARSE and waits in whole milliseconds.\n"
        "Wake-ups: the loop's timer event callbacks.  CPU %: user + system time of the\n"
        "process over wall time while the loop ran.  Mass expiry: armed 1 s ahead, the\n"
        "clock then jumps to the deadline; turns timed on CLOCK_MONOTONIC; M timers/s over\n"
        "the time of all turns.  Inbox: tw_loop_post, sched_yield and retry on TW_EAGAIN;\n"
        "rate from the start of the producers to the return of tw_loop_run.");
    for (std::size_t j = 0; j < kJobCount; ++j)
        if (results[j].check_failed)
            std::printf("SELF-CHECK FAILED: %s, in %u of %u runs (reasons on stderr)\n",
                        label(kJobs[j]).c_str(), results[j].check_failed, results[j].ok);
}

void print_json(std::FILE *out, const LoopOptions &options, const Results &results)
{
    std::fprintf(out,
                 "{\n  \"tool\": \"tw-bench\",\n  \"mode\": \"loop\",\n"
                 "  \"tickwheel_version\": \"%s\",\n  \"libevent_version\": \"%s\",\n"
                 "  \"seed\": %" PRIu64 ",\n  \"runs\": %u,\n  \"loop_seconds\": %u,\n"
                 "  \"loop_timers\": %zu,\n  \"expiry_timers\": %zu,\n"
                 "  \"inbox_commands\": %zu,\n  \"idle_ns\": %" PRIu64 ",\n  \"results\": [",
                 tw_version(), event_get_version(), options.seed, options.runs, options.seconds,
                 options.timers, kExpiryTimers, kInboxCommands, kIdleNs);
    for (std::size_t j = 0; j < kJobCount; ++j) {
        const JobResult &result = results[j];
        std::fprintf(out,
                     "%s\n    {\"benchmark\": \"%s\", \"subject\": \"%s\", \"runs\": %u, "
                     "\"failed\": %u, \"check_failed\": %u, \"metrics\": {",
                     j ? "," : "", kJobs[j].bench, kJobs[j].subject, result.ok, result.failed,
                     result.check_failed);
        const char *separator = "";
        for (const MetricInfo &info : kMetrics) {
            const std::vector<double> &values = result.values[info.id];
            if (values.empty())
                continue;
            const Summary s = summarize(values);
            std::fprintf(out, "%s\n      \"%s\": {\"median\": %.3f, \"min\": %.3f, \"max\": %.3f}",
                         separator, info.key, s.median, s.min, s.max);
            separator = ",";
        }
        std::fputs(*separator ? "\n    }}" : "}}", out);
    }
    std::fputs("\n  ]\n}\n", out);
}

} // namespace

bool run_loop_mode(const LoopOptions &options, std::FILE *export_json)
{
    const Results results = run_all(options);
    const HandoffResults handoff = run_handoff(options);
    if (options.json)
        print_json(stdout, options, results);
    else {
        print_report(options, results);
        print_handoff(handoff);
    }
    if (export_json)
        print_json(export_json, options, results);
    return handoff.failed == 0 &&
           std::none_of(results.begin(), results.end(), [](const JobResult &result) {
               return result.failed || result.check_failed;
           });
}

} // namespace bench
