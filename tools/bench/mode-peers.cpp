/*
 * tw-bench's peer comparison, the mode without a flag: tickwheel beside
 * libevent (heap and common timeouts), libev, libuv and a std::multimap on
 * the workloads of PERFORMANCE.md:
 *
 *   W1 add          schedule N timers into a structure already holding N
 *   W2 cancel       cancel N live timers in random order
 *   W3 reschedule   re-arm a random armed timer to a new random delay, N times
 *   W4 expire       N timers all due; one advance or loop turn fires them all
 *   W5 churn        N live; each step cancels a random timer and adds one;
 *                   10 N steps
 *   mem             bytes per live timer: peak RSS growth while the
 *                   implementation is set up and N timers are armed, / N
 *
 * Delays are uniform in [1 ms, 30 s] and drawn from a fixed seed before the
 * clock starts, so every implementation gets the same sequence.  A figure is
 * steady_clock time around the timed loop alone, divided by its operations
 * (timers for W4, steps for W5), after an untimed warm-up pass of the same
 * workload on up to 1000 timers; a cell is the median (min-max) of --runs
 * runs.  Each run is a child process of its own: runs cannot disturb one
 * another, the memory figure starts from a heap with nothing freed in it, and
 * a crash fails one cell.  The runs of the implementations are interleaved,
 * so a noisy spell of the machine spreads over all of them.  The default,
 * 3 runs at N = 1k, 100k and 1M, takes about 3.5 minutes on a 2-vCPU guest,
 * half of it W5 churn at 1M (10 million steps per implementation and run).
 *
 * Clocks: tickwheel takes the time as an argument and the multimap is keyed
 * on it: both run on an injected clock.  libevent, libev and libuv read the
 * system clock; they arm timers inside a loop callback or right after
 * refreshing the loop's cached time, as an application does, so no operation
 * reads the clock.  How their W4 makes N timers due: ExpiryWait in peers.hpp.
 *
 * Self-checks: every tickwheel return code and every peer return code there
 * is, each timer's armed state after every workload, tw_wheel_verify(), the
 * live count, and W4's callback count.  A failed check prints why on stderr,
 * shows FAIL in its cell and makes the exit status 1.
 *
 * Uses: peers.hpp (the workloads and the adapters), bench.hpp; tickwheel.h
 * for its version.
 */
#include "peers.hpp"

#include <tickwheel.h>

#include <strings.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

namespace bench {

namespace {

struct Implementation {
    const char *name;
    Runner run;
};

constexpr Implementation kImplementations[] = {
    {"tickwheel", run_tickwheel},
    {"libevent-heap", run_libevent_heap},
    {"libevent-common", run_libevent_common},
    {"libev", run_libev},
    {"libuv", run_libuv},
    {"multimap", run_multimap},
};
constexpr std::size_t kTickwheel = 0;

struct WorkloadInfo {
    Workload id;
    const char *key;
    const char *name;
};

constexpr WorkloadInfo kWorkloads[] = {
    {Workload::add, "W1", "add"},
    {Workload::cancel, "W2", "cancel"},
    {Workload::reschedule, "W3", "reschedule"},
    {Workload::expire, "W4", "expire"},
    {Workload::churn, "W5", "churn"},
    {Workload::memory, "mem", "memory"},
};

const WorkloadInfo &info(Workload workload)
{
    for (const WorkloadInfo &w : kWorkloads)
        if (w.id == workload)
            return w;
    return kWorkloads[0];
}

/* The options, resolved to the tables above. */
struct Selection {
    std::vector<std::size_t> impls;     /* indices into kImplementations */
    std::vector<Workload> workloads;
    std::vector<std::size_t> ns;        /* ascending */
    unsigned runs;
    std::uint64_t seed;
};

const WorkloadInfo *find_workload(const std::string &name)
{
    for (const WorkloadInfo &w : kWorkloads)
        if (strcasecmp(name.c_str(), w.key) == 0 || strcasecmp(name.c_str(), w.name) == 0)
            return &w;
    return nullptr;
}

std::size_t find_impl(const std::string &name)
{
    std::size_t i = 0;
    while (i < std::size(kImplementations) && name != kImplementations[i].name)
        ++i;
    return i;
}

template <class T>
void add_unique(std::vector<T> &list, T value)
{
    if (std::find(list.begin(), list.end(), value) == list.end())
        list.push_back(value);
}

/* Runs one job in a child process; the figure comes back through a pipe. */
std::optional<double> run_job(const Implementation &impl, const Job &job)
{
    const std::string label = format("%s %s n=%zu", impl.name, info(job.workload).key, job.n);
    double value = 0;
    const bool ok = run_isolated(
        label,
        [&](int fd) {
            /* The child exits from the report and leaves the teardown of the
             * timers to the kernel, which is much faster at it. */
            impl.run(job, [&](const Outcome &outcome) {
                if (!outcome.error.empty()) {
                    std::fprintf(stderr, "tw-bench: %s: %s\n", label.c_str(),
                                 outcome.error.c_str());
                    _exit(1);
                }
                _exit(write_all(fd, &outcome.value, sizeof outcome.value) ? 0 : 1);
            });
            std::fprintf(stderr, "tw-bench: %s: no outcome\n", label.c_str());
            return false;
        },
        &value, sizeof value);
    if (!ok)
        return std::nullopt;
    return value;
}

struct Cell {
    std::vector<double> samples;
    unsigned failed = 0;
};

using CellKey = std::tuple<std::size_t, Workload, std::size_t>;

class Results {
public:
    Cell &at(std::size_t impl, Workload workload, std::size_t n)
    {
        return cells_[{impl, workload, n}];
    }
    const Cell *find(std::size_t impl, Workload workload, std::size_t n) const
    {
        const auto it = cells_.find({impl, workload, n});
        return it == cells_.end() ? nullptr : &it->second;
    }
    /* The median, if every run of the cell succeeded. */
    std::optional<double> median(std::size_t impl, Workload workload, std::size_t n) const
    {
        const Cell *cell = find(impl, workload, n);
        if (!cell || cell->failed || cell->samples.empty())
            return std::nullopt;
        return summarize(cell->samples).median;
    }

private:
    std::map<CellKey, Cell> cells_;
};

bool selected(const Selection &options, Workload workload)
{
    return std::find(options.workloads.begin(), options.workloads.end(), workload) !=
           options.workloads.end();
}

std::vector<Workload> timed_workloads(const Selection &options)
{
    std::vector<Workload> timed;
    for (const WorkloadInfo &w : kWorkloads)
        if (w.id != Workload::memory && selected(options, w.id))
            timed.push_back(w.id);
    return timed;
}

Results run_all(const Selection &options)
{
    Results results;
    const std::vector<Workload> timed = timed_workloads(options);
    const bool memory = selected(options, Workload::memory);
    Progress progress(options.impls.size() *
                      (options.ns.size() * timed.size() * options.runs + (memory ? 1 : 0)));

    const auto record = [&](std::size_t impl, const Job &job) {
        progress.step(format("%s %s n=%zu", kImplementations[impl].name, info(job.workload).key,
                             job.n));
        Cell &cell = results.at(impl, job.workload, job.n);
        if (const std::optional<double> value = run_job(kImplementations[impl], job))
            cell.samples.push_back(*value);
        else
            ++cell.failed;
    };
    for (const std::size_t n : options.ns)
        for (const Workload workload : timed)
            for (unsigned run = 0; run < options.runs; ++run)
                for (const std::size_t impl : options.impls)
                    record(impl, Job{workload, n, options.seed});
    if (memory)
        for (const std::size_t impl : options.impls)
            record(impl, Job{Workload::memory, options.ns.back(), options.seed});
    return results;
}


std::string figure(double value) { return format(value < 100 ? "%.1f" : "%.0f", value); }

std::string ratio(double value)
{
    return format(value < 0.1 ? "%.3f" : value < 10 ? "%.2f" : "%.1f", value);
}

std::string cell_text(const Results &results, std::size_t impl, Workload workload, std::size_t n)
{
    const Cell *cell = results.find(impl, workload, n);
    if (!cell)
        return "-";
    if (cell->failed)
        return "FAIL";
    const Summary s = summarize(cell->samples);
    if (cell->samples.size() == 1)
        return figure(s.median);
    return figure(s.median) + " (" + figure(s.min) + "-" + figure(s.max) + ")";
}

/* A table per N: a row per implementation, a column per workload. */
void print_per_n(const Selection &options, const Results &results)
{
    const std::vector<Workload> timed = timed_workloads(options);
    const bool memory = selected(options, Workload::memory);
    for (const std::size_t n : options.ns) {
        const bool with_memory = memory && n == options.ns.back();
        if (timed.empty() && !with_memory)
            continue;
        std::vector<Row> rows;
        Row header{"implementation"};
        for (const Workload workload : timed)
            header.push_back(std::string(info(workload).key) + " " + info(workload).name);
        if (with_memory)
            header.push_back("B/timer");
        rows.push_back(header);
        for (const std::size_t impl : options.impls) {
            Row row{kImplementations[impl].name};
            for (const Workload workload : timed)
                row.push_back(cell_text(results, impl, workload, n));
            if (with_memory)
                row.push_back(cell_text(results, impl, Workload::memory, n));
            rows.push_back(row);
        }
        std::printf("\nN = %s\n", n_label(n).c_str());
        print_table(rows);
    }
}

/* tickwheel's median over each peer's, when tickwheel ran beside peers. */
void print_ratios(const Selection &options, const Results &results)
{
    const std::vector<Workload> timed = timed_workloads(options);
    const bool memory = selected(options, Workload::memory);
    const std::size_t memory_n = options.ns.back();
    const bool with_tickwheel =
        std::find(options.impls.begin(), options.impls.end(), kTickwheel) != options.impls.end();
    if (!with_tickwheel || options.impls.size() < 2)
        return;
    std::vector<Row> rows;
    Row header{"peer"};
    for (const std::size_t n : options.ns)
        for (const Workload workload : timed)
            header.push_back(std::string(info(workload).key) + " " + n_label(n));
    if (memory)
        header.push_back("B/timer " + n_label(memory_n));
    rows.push_back(header);
    const auto ratio_text = [&](std::size_t impl, Workload workload, std::size_t n) {
        const std::optional<double> ours = results.median(kTickwheel, workload, n);
        const std::optional<double> theirs = results.median(impl, workload, n);
        return ours && theirs && *theirs > 0 ? ratio(*ours / *theirs) : std::string("-");
    };
    for (const std::size_t impl : options.impls) {
        if (impl == kTickwheel)
            continue;
        Row row{kImplementations[impl].name};
        for (const std::size_t n : options.ns)
            for (const Workload workload : timed)
                row.push_back(ratio_text(impl, workload, n));
        if (memory)
            row.push_back(ratio_text(impl, Workload::memory, memory_n));
        rows.push_back(row);
    }
    std::puts("\ntickwheel / peer, ratio of medians (below 1: tickwheel is faster or smaller)");
    print_table(rows);
}

void print_notes(const Selection &options)
{
    std::puts("\nDelays uniform in [1 ms, 30 s]; every run in a fresh process.");
    if (selected(options, Workload::memory))
        std::puts("B/timer: peak RSS growth from before the implementation is set up until N "
                  "timers are\n"
                  "armed, the caller's per-timer objects included, divided by N.");
    const auto chosen = [&](const char *name) {
        return std::any_of(options.impls.begin(), options.impls.end(), [&](std::size_t impl) {
            return std::strcmp(kImplementations[impl].name, name) == 0;
        });
    };
    if (chosen("libevent-common"))
        std::puts("libevent-common: delays quantized to 16 durations, the middles of 16 equal "
                  "slices of\n"
                  "[1 ms, 30 s]: common timeouts only pay off with a few distinct durations.");
    if (selected(options, Workload::expire))
        std::puts(
            "W4: tickwheel and multimap advance an injected clock past the last deadline once.\n"
            "libevent, libev and libuv read the real clock: they arm the delays divided by 1000,\n"
            "[1 us, 30 ms] (libuv: rounded up to whole ms), wait until all are due, and the\n"
            "figure is one non-blocking loop turn (one epoll_wait included).");
}

void print_report(const Selection &options, const Results &results)
{
    std::printf("tw-bench, tickwheel %s: ns per operation (W4: per timer, W5: per step), "
                "median (min-max) of %u run%s, seed %" PRIu64 "\n",
                tw_version(), options.runs, options.runs == 1 ? "" : "s", options.seed);
    print_per_n(options, results);
    print_ratios(options, results);
    print_notes(options);
}

void print_json(std::FILE *out, const Selection &options, const Results &results)
{
    std::fprintf(out, "{\n  \"tool\": \"tw-bench\",\n  \"tickwheel_version\": \"%s\",\n",
                 tw_version());
    print_json_machine(out);
    std::fprintf(out,
                 "  \"seed\": %" PRIu64 ",\n  \"runs\": %u,\n  \"delay_min_ns\": %" PRIu64
                 ",\n  \"delay_max_ns\": %" PRIu64 ",\n  \"results\": [",
                 options.seed, options.runs, kDelayMinNs, kDelayMaxNs);
    const char *separator = "\n";
    for (const std::size_t impl : options.impls)
        for (const WorkloadInfo &w : kWorkloads)
            for (const std::size_t n : options.ns) {
                const Cell *cell = results.find(impl, w.id, n);
                if (!cell)
                    continue;
                std::fprintf(
                    out, "%s    {\"implementation\": \"%s\", \"workload\": \"%s\", \"n\": %zu, ",
                    separator, kImplementations[impl].name, w.key, n);
                separator = ",\n";
                const char *unit = w.id == Workload::memory ? "bytes_per_timer" : "median_ns";
                if (cell->samples.empty()) {
                    std::fprintf(out, "\"%s\": null", unit);
                } else {
                    const Summary s = summarize(cell->samples);
                    std::fprintf(out, "\"%s\": %.3f", unit, s.median);
                    if (w.id != Workload::memory)
                        std::fprintf(out, ", \"min_ns\": %.3f, \"max_ns\": %.3f", s.min, s.max);
                }
                std::fprintf(out, ", \"runs\": %zu, \"failed\": %u}", cell->samples.size(),
                             cell->failed);
            }
    std::fputs("\n  ]\n}\n", out);
}

bool any_failed(const Selection &options, const Results &results)
{
    for (const std::size_t impl : options.impls)
        for (const WorkloadInfo &w : kWorkloads)
            for (const std::size_t n : options.ns)
                if (const Cell *cell = results.find(impl, w.id, n); cell && cell->failed)
                    return true;
    return false;
}

} // namespace

/* --impl and --workload by name (all when not given), in the order given
 * and each once; --n ascending, by default 1k, 100k and 1M (without 1M
 * under --quick). */
bool prepare_peers(Options &options)
{
    std::vector<std::string> impls, workloads;
    for (const std::string &name : options.impls) {
        if (name == "all") {
            for (const Implementation &impl : kImplementations)
                add_unique(impls, std::string(impl.name));
        } else if (find_impl(name) < std::size(kImplementations)) {
            add_unique(impls, name);
        } else {
            std::fprintf(stderr, "tw-bench: unknown implementation '%s'\n", name.c_str());
            return false;
        }
    }
    if (impls.empty())
        for (const Implementation &impl : kImplementations)
            impls.push_back(impl.name);
    for (const std::string &name : options.workloads) {
        const WorkloadInfo *w = find_workload(name);
        if (!w) {
            std::fprintf(stderr, "tw-bench: unknown workload '%s'\n", name.c_str());
            return false;
        }
        add_unique(workloads, std::string(w->key));
    }
    if (workloads.empty())
        for (const WorkloadInfo &w : kWorkloads)
            workloads.push_back(w.key);
    options.impls = impls;
    options.workloads = workloads;
    if (options.ns.empty())
        options.ns = options.quick ? std::vector<std::size_t>{1'000, 100'000}
                                   : std::vector<std::size_t>{1'000, 100'000, 1'000'000};
    std::sort(options.ns.begin(), options.ns.end());
    return true;
}

bool run_peers(const Options &options, std::FILE *export_json)
{
    Selection s{{}, {}, options.ns, options.runs, options.seed};
    for (const std::string &name : options.impls)
        s.impls.push_back(find_impl(name));
    for (const std::string &name : options.workloads)
        s.workloads.push_back(find_workload(name)->id);
    const Results results = run_all(s);
    publish(
        options, export_json, [&] { print_report(s, results); },
        [&](std::FILE *out) { print_json(out, s, results); });
    return !any_failed(s, results);
}

} // namespace bench
