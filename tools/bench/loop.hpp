/*
 * What the benchmarks of tw-bench --loop share: the figures a run sends
 * back (Metric, Sample), the state of a run in its child process (Child),
 * a few measures, and the runs themselves, one file per benchmark:
 * loop-lateness.cpp, loop-expiry.cpp, loop-inbox.cpp, loop-idle.cpp.
 * mode-loop.cpp lists them, runs them and reports.
 *
 * A run executes in a child process of its own: it may end the process on
 * a failure it cannot go on from (Child::fatal) and sends its Sample back
 * through a pipe.
 *
 * Uses: bench.hpp, tools/common/clock.h; the library through tickwheel.h.
 */
#ifndef TW_BENCH_LOOP_HPP
#define TW_BENCH_LOOP_HPP

#include "bench.hpp"

#include <tickwheel.h>

#include <sys/resource.h>

#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>

#include "common/clock.h"

namespace bench {

constexpr std::uint64_t kSecondNs = 1'000'000'000;
constexpr std::size_t kExpiryTimers = 1'000'000;
constexpr std::size_t kInboxCommands = 2'000'000;
constexpr std::uint64_t kIdleNs = kSecondNs;

enum Metric : unsigned {
    kEarly,
    kLateP50,
    kLateP90,
    kLateP99,
    kLateP999,
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


/* Only in children: a failing read ends the run. */
inline std::uint64_t cpu_ns()
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

inline double percent(std::uint64_t part, std::uint64_t whole)
{
    return whole ? 100.0 * static_cast<double>(part) / static_cast<double>(whole) : 0;
}

inline double per_second(std::uint64_t count, std::uint64_t ns)
{
    return ns ? static_cast<double>(count) * 1e9 / static_cast<double>(ns) : 0;
}

inline const char *error_name(int err)
{
    const char *name = tw_err_name(err);
    return name ? name : "an unknown error";
}

/* The loop's statistics, or a fatal error in the child. */
inline bool loop_stats(Child &child, const tw_loop *loop, tw_loop_stats *stats)
{
    *stats = tw_loop_stats{};
    stats->struct_size = sizeof *stats;
    if (const int err = tw_loop_stats_get(loop, stats); err < 0)
        return child.fatal("tw_loop_stats_get: %s", error_name(err));
    return true;
}

/* One run of a benchmark, in its child process. */
using LoopRun = bool (*)(const Options &options, Child &child);

/* loop-lateness.cpp */
bool run_lateness_tw_loop(const Options &options, Child &child);
bool run_lateness_slack(const Options &options, Child &child);
bool run_lateness_by_hand(const Options &options, Child &child);
bool run_lateness_precise(const Options &options, Child &child);
bool run_lateness_default(const Options &options, Child &child);
/* loop-expiry.cpp */
bool run_expiry(const Options &options, Child &child);
bool run_expiry_untimed(const Options &options, Child &child);
/* loop-inbox.cpp */
bool run_inbox_1(const Options &options, Child &child);
bool run_inbox_2(const Options &options, Child &child);
/* loop-idle.cpp */
bool run_idle(const Options &options, Child &child);

} // namespace bench

#endif
