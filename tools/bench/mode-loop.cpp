/*
 * tw-bench --loop: tw_loop on a real libevent loop, beside libevent's own
 * timers, against the loop targets of PERFORMANCE.md.  The benchmarks, one
 * file each: lateness, with slack and driven by hand, beside libevent's
 * precise and default bases (loop-lateness.cpp); a mass expiry of 1M
 * timers, with and without a time budget (loop-expiry.cpp); the inbox
 * under 1 and 2 producer threads (loop-inbox.cpp); an idle loop
 * (loop-idle.cpp).  This file lists them as jobs, runs them, and reports.
 *
 * CPU % is getrusage(RUSAGE_SELF) user + system time over wall time while
 * the loop runs.  Every run is a child process of its own, as in the other
 * modes, with an alarm as a watchdog against a loop that never returns;
 * the runs of the benchmarks are interleaved.  The default, 3 runs, takes
 * about 35 s, most of it the 3 x 3 s of lateness per subject.
 *
 * A failed self-check prints why on stderr and makes the exit status 1.
 * The targets are reported, not checked.
 *
 * Uses: loop.hpp; libevent for its version.
 */
#include "loop.hpp"

#include <event2/event.h>

#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

namespace bench {

namespace {

/* The watchdog of a run, beyond twice the lateness span. */
constexpr unsigned kWatchdogSlackSeconds = 60;

/* Targets, from PERFORMANCE.md. */
constexpr double kTargetP50Ns = 15'000;
constexpr double kTargetP99Ns = 40'000;
constexpr double kTargetMaxNs = 1'000'000;
constexpr double kTargetTurnNs = 1'000'000;

enum class Unit { count, ns, per_second, percent };

struct MetricInfo {
    Metric id;
    const char *key;
    Unit unit;
};

constexpr MetricInfo kMetrics[] = {
    {kEarly, "early", Unit::count},
    {kLateP50, "late_p50_ns", Unit::ns},
    {kLateP90, "late_p90_ns", Unit::ns},
    {kLateP99, "late_p99_ns", Unit::ns},
    {kLateP999, "late_p999_ns", Unit::ns},
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

struct LoopJob {
    const char *bench;
    const char *subject;
    LoopRun run;
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

std::optional<Sample> run_job(const LoopJob &job, const Options &options)
{
    const std::string name = label(job);
    Sample sample{};
    const bool ok = run_isolated(
        name,
        [&](int fd) {
            alarm(2 * options.loop_seconds + kWatchdogSlackSeconds);
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

Results run_all(const Options &options)
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

void print_report(const Options &options, const Results &results)
{
    std::printf("tw-bench --loop, tickwheel %s, libevent %s: median (min-max) of %u run%s, "
                "seed %" PRIu64 "\n",
                tw_version(), event_get_version(), options.runs, options.runs == 1 ? "" : "s",
                options.seed);

    std::printf("\nLateness on a real loop: %s timers, deadlines uniform over %u s, "
                "microseconds late\n",
                n_label(options.loop_timers).c_str(), options.loop_seconds);
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

void print_json(std::FILE *out, const Options &options, const Results &results)
{
    std::fprintf(out,
                 "{\n  \"tool\": \"tw-bench\",\n  \"mode\": \"loop\",\n"
                 "  \"tickwheel_version\": \"%s\",\n  \"libevent_version\": \"%s\",\n",
                 tw_version(), event_get_version());
    print_json_machine(out);
    std::fprintf(out,
                 "  \"seed\": %" PRIu64 ",\n  \"runs\": %u,\n  \"loop_seconds\": %u,\n"
                 "  \"loop_timers\": %zu,\n  \"expiry_timers\": %zu,\n"
                 "  \"inbox_commands\": %zu,\n  \"idle_ns\": %" PRIu64 ",\n  \"results\": [",
                 options.seed, options.runs, options.loop_seconds, options.loop_timers,
                 kExpiryTimers, kInboxCommands, kIdleNs);
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

bool run_loop(const Options &options, std::FILE *export_json)
{
    const Results results = run_all(options);
    publish(
        options, export_json, [&] { print_report(options, results); },
        [&](std::FILE *out) { print_json(out, options, results); });
    return std::none_of(results.begin(), results.end(), [](const JobResult &result) {
        return result.failed || result.check_failed;
    });
}

} // namespace bench
