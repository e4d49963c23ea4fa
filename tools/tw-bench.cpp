/*
 * tw-bench -- tickwheel beside libevent, libev, libuv and a std::multimap on
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
 * reads the clock.  How their W4 makes N timers due: ExpiryWait in
 * bench-workloads.hpp.
 *
 * Self-checks: every tickwheel return code and every peer return code there
 * is, each timer's armed state after every workload, tw_wheel_verify(), the
 * live count, and W4's callback count.  A failed check prints why on stderr,
 * shows FAIL in its cell and makes the exit status 1.
 *
 * --loop selects the second mode, the loop benchmarks of bench-loop.cpp:
 * tw_loop on a real libevent loop, beside libevent's own timers; --recovery
 * the third, the reliability layer's hot paths (bench-recovery.cpp).  This
 * file parses the options of the modes and holds the helpers they share.
 */
#include "bench.hpp"

#include <tickwheel.h>

#include <fcntl.h>
#include <getopt.h>
#include <sched.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

namespace bench {

Summary summarize(std::vector<double> samples)
{
    std::sort(samples.begin(), samples.end());
    const std::size_t mid = samples.size() / 2;
    const double median =
        samples.size() % 2 ? samples[mid] : (samples[mid - 1] + samples[mid]) / 2;
    return {median, samples.front(), samples.back()};
}

std::string format(const char *fmt, ...)
{
    char buffer[256];
    va_list args;
    va_start(args, fmt);
    std::vsnprintf(buffer, sizeof buffer, fmt, args);
    va_end(args);
    return buffer;
}

/* A Markdown table, padded to line up in a terminal too. */
void print_table(const std::vector<Row> &rows)
{
    std::vector<std::size_t> widths(rows[0].size(), 3);
    for (const Row &row : rows)
        for (std::size_t i = 0; i < row.size(); ++i)
            widths[i] = std::max(widths[i], row[i].size());
    const auto print_row = [&](const Row &row) {
        for (std::size_t i = 0; i < row.size(); ++i)
            std::printf(i == 0 ? "| %-*s " : "| %*s ", static_cast<int>(widths[i]),
                        row[i].c_str());
        std::puts("|");
    };
    print_row(rows[0]);
    for (std::size_t i = 0; i < widths.size(); ++i)
        std::printf("|%s%s", std::string(widths[i] + 1, '-').c_str(), i == 0 ? "-" : ":");
    std::puts("|");
    for (std::size_t r = 1; r < rows.size(); ++r)
        print_row(rows[r]);
}

namespace {

/* Moves exactly size bytes with io (read or write), across short counts
 * and interruptions. */
template <typename Io, typename Byte>
bool transfer_all(Io io, int fd, Byte *p, std::size_t size)
{
    while (size > 0) {
        const ssize_t n = io(fd, p, size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        size -= static_cast<std::size_t>(n);
    }
    return true;
}

bool read_all(int fd, void *data, std::size_t size)
{
    return transfer_all(read, fd, static_cast<char *>(data), size);
}

} // namespace

bool write_all(int fd, const void *data, std::size_t size)
{
    return transfer_all(write, fd, static_cast<const char *>(data), size);
}

std::string n_label(std::size_t n)
{
    if (n % 1'000'000 == 0)
        return std::to_string(n / 1'000'000) + "M";
    if (n % 1'000 == 0)
        return std::to_string(n / 1'000) + "k";
    return std::to_string(n);
}

bool run_isolated(const std::string &label, const std::function<bool(int fd)> &child,
                  void *data, std::size_t size)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        std::fprintf(stderr, "tw-bench: pipe: %s\n", std::strerror(errno));
        return false;
    }
    std::fflush(nullptr);
    const pid_t pid = fork();
    if (pid < 0) {
        std::fprintf(stderr, "tw-bench: fork: %s\n", std::strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return false;
    }
    if (pid == 0) {
        close(fds[0]);
        _exit(child(fds[1]) ? 0 : 1);
    }

    close(fds[1]);
    const bool received = read_all(fds[0], data, size);
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            std::fprintf(stderr, "tw-bench: waitpid: %s\n", std::strerror(errno));
            return false;
        }
    }
    if (WIFSIGNALED(status)) {
        std::fprintf(stderr, "tw-bench: %s: killed by signal %d (%s)\n", label.c_str(),
                     WTERMSIG(status), strsignal(WTERMSIG(status)));
        return false;
    }
    return received && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

} // namespace bench

namespace {

using bench::format;
using bench::Job;
using bench::Outcome;
using bench::print_table;
using bench::Row;
using bench::summarize;
using bench::Summary;
using bench::Workload;

struct Implementation {
    const char *name;
    bench::Runner run;
};

constexpr Implementation kImplementations[] = {
    {"tickwheel", bench::run_tickwheel},
    {"libevent-heap", bench::run_libevent_heap},
    {"libevent-common", bench::run_libevent_common},
    {"libev", bench::run_libev},
    {"libuv", bench::run_libuv},
    {"multimap", bench::run_multimap},
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

struct Options {
    std::vector<std::size_t> impls;
    std::vector<Workload> workloads;
    std::vector<std::size_t> ns;
    unsigned runs = 3;
    std::uint64_t seed = 1;
    bool json = false;
    const char *export_json = nullptr;
    int cpu = -1;
    bool loop = false;
    bool recovery = false;
    bench::LoopOptions loop_options;
    bool batch = false;
};

constexpr std::size_t kMaxN = 100'000'000;
constexpr unsigned kMaxRuns = 1000;
constexpr unsigned kMaxLoopSeconds = 600;
constexpr std::size_t kMaxLoopTimers = 10'000'000;

void usage()
{
    std::fputs("usage: tw-bench [options]\n"
               "       tw-bench --loop [options]\n"
               "       tw-bench --batch [--runs COUNT] [--seed SEED] [--json]\n"
               "       tw-bench --recovery [options]\n"
               "\n"
               "Times tickwheel beside libevent (heap and common timeouts), libev, libuv\n"
               "and a std::multimap; prints ns per operation, median (min-max) of the runs.\n"
               "With --loop, measures tw_loop on a real libevent loop instead: firing\n"
               "lateness beside libevent's own timers, a mass expiry, the inbox, an idle loop.\n"
               "With --recovery, times the reliability layer: on_sent + on_ack per packet,\n"
               "next_deadline, and the same with losses.\n"
               "\n"
               "  --impl LIST       implementations (default all): tickwheel, libevent-heap,\n"
               "                    libevent-common, libev, libuv, multimap\n"
               "  --workload LIST   W1 add, W2 cancel, W3 reschedule, W4 expire, W5 churn,\n"
               "                    mem (bytes per timer at the largest N); default all\n"
               "  --n LIST          live timers, k and M suffixes allowed\n"
               "                    (default 1000,100000,1000000)\n"
               "  --runs COUNT      runs per cell (default 3)\n"
               "  --seed SEED       seed of the delays and the choices (default 1)\n"
               "  --quick           --n 1000,100000, unless --n is given\n"
               "  --cpu CPU         pin to one CPU\n"
               "  --json            print JSON instead of the table\n"
               "  --export-json FILE  also write the JSON to FILE\n"
               "  --loop            the loop benchmarks; --impl, --workload, --n and --quick\n"
               "                    do not apply\n"
               "  --batch           batch scheduling and the SIMD kernels, each kernel\n"
               "                    variant beside its scalar twin, batches of 32 to 8192\n"
               "  --loop-seconds S  span of the lateness deadlines, 1 to 600 (default 3)\n"
               "  --loop-timers N   timers of the lateness run, k and M suffixes allowed\n"
               "                    (default 100000)\n"
               "  --recovery        the reliability layer benchmarks; only --runs, --cpu,\n"
               "                    --json and --export-json apply\n"
               "  --help            print this and exit\n"
               "\n"
               "Exit status: 0, 1 when a self-check failed, 2 on a usage error.\n",
               stdout);
}

std::vector<std::string> split(const char *list)
{
    std::vector<std::string> items;
    std::string item;
    for (const char *p = list;; ++p) {
        if (*p == ',' || *p == '\0') {
            items.push_back(item);
            item.clear();
            if (*p == '\0')
                break;
        } else {
            item += *p;
        }
    }
    return items;
}

std::optional<std::uint64_t> parse_number(const std::string &text, bool suffixes)
{
    if (text.empty() || text[0] < '0' || text[0] > '9')
        return std::nullopt;
    errno = 0;
    char *end = nullptr;
    std::uint64_t value = std::strtoull(text.c_str(), &end, 10);
    if (errno != 0)
        return std::nullopt;
    if (suffixes && (*end == 'k' || *end == 'M')) {
        const std::uint64_t scale = *end == 'k' ? 1'000 : 1'000'000;
        if (value > UINT64_MAX / scale)
            return std::nullopt;
        value *= scale;
        ++end;
    }
    if (*end != '\0')
        return std::nullopt;
    return value;
}

template <class T>
void add_unique(std::vector<T> &list, T value)
{
    if (std::find(list.begin(), list.end(), value) == list.end())
        list.push_back(value);
}

bool parse_impls(const char *arg, Options &options)
{
    for (const std::string &name : split(arg)) {
        if (name == "all") {
            for (std::size_t i = 0; i < std::size(kImplementations); ++i)
                add_unique(options.impls, i);
            continue;
        }
        std::size_t i = 0;
        while (i < std::size(kImplementations) && name != kImplementations[i].name)
            ++i;
        if (i == std::size(kImplementations)) {
            std::fprintf(stderr, "tw-bench: unknown implementation '%s'\n", name.c_str());
            return false;
        }
        add_unique(options.impls, i);
    }
    return true;
}

bool parse_workloads(const char *arg, Options &options)
{
    for (const std::string &name : split(arg)) {
        const WorkloadInfo *found = nullptr;
        for (const WorkloadInfo &w : kWorkloads)
            if (strcasecmp(name.c_str(), w.key) == 0 || strcasecmp(name.c_str(), w.name) == 0)
                found = &w;
        if (!found) {
            std::fprintf(stderr, "tw-bench: unknown workload '%s'\n", name.c_str());
            return false;
        }
        add_unique(options.workloads, found->id);
    }
    return true;
}

bool parse_ns(const char *arg, Options &options)
{
    for (const std::string &item : split(arg)) {
        const std::optional<std::uint64_t> n = parse_number(item, true);
        if (!n || *n == 0 || *n > kMaxN) {
            std::fprintf(stderr, "tw-bench: --n wants counts from 1 to %zu, not '%s'\n", kMaxN,
                         item.c_str());
            return false;
        }
        add_unique(options.ns, static_cast<std::size_t>(*n));
    }
    return true;
}

/* 0: run; 1: done (--help); 2: usage error. */
int parse_options(int argc, char **argv, Options &options)
{
    enum {
        opt_impl = 256,
        opt_workload,
        opt_n,
        opt_runs,
        opt_seed,
        opt_quick,
        opt_cpu,
        opt_json,
        opt_export_json,
        opt_loop,
        opt_batch,
        opt_loop_seconds,
        opt_loop_timers,
        opt_recovery
    };
    static const option kLongOptions[] = {
        {"impl", required_argument, nullptr, opt_impl},
        {"workload", required_argument, nullptr, opt_workload},
        {"n", required_argument, nullptr, opt_n},
        {"runs", required_argument, nullptr, opt_runs},
        {"seed", required_argument, nullptr, opt_seed},
        {"quick", no_argument, nullptr, opt_quick},
        {"cpu", required_argument, nullptr, opt_cpu},
        {"json", no_argument, nullptr, opt_json},
        {"export-json", required_argument, nullptr, opt_export_json},
        {"loop", no_argument, nullptr, opt_loop},
        {"batch", no_argument, nullptr, opt_batch},
        {"loop-seconds", required_argument, nullptr, opt_loop_seconds},
        {"loop-timers", required_argument, nullptr, opt_loop_timers},
        {"recovery", no_argument, nullptr, opt_recovery},
        {"help", no_argument, nullptr, 'h'},
        {nullptr, 0, nullptr, 0},
    };

    bool quick = false;
    const char *wheel_only = nullptr; /* an option the loop mode does not take */
    const char *loop_only = nullptr;
    int c;
    while ((c = getopt_long(argc, argv, "h", kLongOptions, nullptr)) != -1) {
        switch (c) {
        case opt_impl:
            if (!parse_impls(optarg, options))
                return 2;
            wheel_only = "--impl";
            break;
        case opt_workload:
            if (!parse_workloads(optarg, options))
                return 2;
            wheel_only = "--workload";
            break;
        case opt_n:
            if (!parse_ns(optarg, options))
                return 2;
            wheel_only = "--n";
            break;
        case opt_runs: {
            const std::optional<std::uint64_t> runs = parse_number(optarg, false);
            if (!runs || *runs == 0 || *runs > kMaxRuns) {
                std::fprintf(stderr, "tw-bench: --runs wants 1 to %u, not '%s'\n", kMaxRuns,
                             optarg);
                return 2;
            }
            options.runs = static_cast<unsigned>(*runs);
            break;
        }
        case opt_seed: {
            const std::optional<std::uint64_t> seed = parse_number(optarg, false);
            if (!seed) {
                std::fprintf(stderr,
                             "tw-bench: --seed wants an unsigned 64-bit number, not '%s'\n",
                             optarg);
                return 2;
            }
            options.seed = *seed;
            break;
        }
        case opt_quick:
            quick = true;
            wheel_only = "--quick";
            break;
        case opt_cpu: {
            const std::optional<std::uint64_t> cpu = parse_number(optarg, false);
            if (!cpu || *cpu >= CPU_SETSIZE) {
                std::fprintf(stderr, "tw-bench: --cpu wants a CPU number, not '%s'\n", optarg);
                return 2;
            }
            options.cpu = static_cast<int>(*cpu);
            break;
        }
        case opt_json:
            options.json = true;
            break;
        case opt_export_json:
            options.export_json = optarg;
            break;
        case opt_recovery:
            options.recovery = true;
            break;
        case opt_loop:
            options.loop = true;
            break;
        case opt_batch:
            options.batch = true;
            break;
        case opt_loop_seconds: {
            const std::optional<std::uint64_t> seconds = parse_number(optarg, false);
            if (!seconds || *seconds == 0 || *seconds > kMaxLoopSeconds) {
                std::fprintf(stderr, "tw-bench: --loop-seconds wants 1 to %u, not '%s'\n",
                             kMaxLoopSeconds, optarg);
                return 2;
            }
            options.loop_options.seconds = static_cast<unsigned>(*seconds);
            loop_only = "--loop-seconds";
            break;
        }
        case opt_loop_timers: {
            const std::optional<std::uint64_t> timers = parse_number(optarg, true);
            if (!timers || *timers == 0 || *timers > kMaxLoopTimers) {
                std::fprintf(stderr, "tw-bench: --loop-timers wants 1 to %zu, not '%s'\n",
                             kMaxLoopTimers, optarg);
                return 2;
            }
            options.loop_options.timers = static_cast<std::size_t>(*timers);
            loop_only = "--loop-timers";
            break;
        }
        case 'h':
            usage();
            return 1;
        default:
            std::fputs("Try 'tw-bench --help'.\n", stderr);
            return 2;
        }
    }
    if (optind < argc) {
        std::fprintf(stderr, "tw-bench: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (options.batch && (options.loop || options.recovery || wheel_only || loop_only || !options.impls.empty() ||
                          !options.workloads.empty() || !options.ns.empty())) {
        std::fputs("tw-bench: --batch takes only --runs, --seed, --cpu and the JSON options\n",
                   stderr);
        return 2;
    }
    if (options.recovery && (options.loop || wheel_only || loop_only)) {
        std::fprintf(stderr, "tw-bench: %s does not apply to --recovery\n",
                     options.loop ? "--loop" : wheel_only ? wheel_only : loop_only);
        return 2;
    }
    if (options.loop && wheel_only) {
        std::fprintf(stderr, "tw-bench: %s does not apply to --loop\n", wheel_only);
        return 2;
    }
    if (!options.loop && loop_only) {
        std::fprintf(stderr, "tw-bench: %s needs --loop\n", loop_only);
        return 2;
    }
    options.loop_options.runs = options.runs;
    options.loop_options.seed = options.seed;
    options.loop_options.json = options.json;

    if (options.impls.empty())
        parse_impls("all", options);
    if (options.workloads.empty())
        for (const WorkloadInfo &w : kWorkloads)
            options.workloads.push_back(w.id);
    if (options.ns.empty())
        options.ns = quick ? std::vector<std::size_t>{1'000, 100'000}
                           : std::vector<std::size_t>{1'000, 100'000, 1'000'000};
    std::sort(options.ns.begin(), options.ns.end());
    return 0;
}

/* Runs one job in a child process; the figure comes back through a pipe. */
std::optional<double> run_isolated(const Implementation &impl, const Job &job)
{
    const std::string label = format("%s %s n=%zu", impl.name, info(job.workload).key, job.n);
    double value = 0;
    const bool ok = bench::run_isolated(
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
                _exit(bench::write_all(fd, &outcome.value, sizeof outcome.value) ? 0 : 1);
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

bool selected(const Options &options, Workload workload)
{
    return std::find(options.workloads.begin(), options.workloads.end(), workload) !=
           options.workloads.end();
}

std::vector<Workload> timed_workloads(const Options &options)
{
    std::vector<Workload> timed;
    for (const WorkloadInfo &w : kWorkloads)
        if (w.id != Workload::memory && selected(options, w.id))
            timed.push_back(w.id);
    return timed;
}

Results run_all(const Options &options)
{
    Results results;
    const std::vector<Workload> timed = timed_workloads(options);
    const bool memory = selected(options, Workload::memory);
    bench::Progress progress(options.impls.size() *
                      (options.ns.size() * timed.size() * options.runs + (memory ? 1 : 0)));

    const auto record = [&](std::size_t impl, const Job &job) {
        progress.step(format("%s %s n=%zu", kImplementations[impl].name, info(job.workload).key,
                             job.n));
        Cell &cell = results.at(impl, job.workload, job.n);
        if (const std::optional<double> value = run_isolated(kImplementations[impl], job))
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

void print_report(const Options &options, const Results &results)
{
    const std::vector<Workload> timed = timed_workloads(options);
    const bool memory = selected(options, Workload::memory);
    const std::size_t memory_n = options.ns.back();

    std::printf("tw-bench, tickwheel %s: ns per operation (W4: per timer, W5: per step), "
                "median (min-max) of %u run%s, seed %" PRIu64 "\n",
                tw_version(), options.runs, options.runs == 1 ? "" : "s", options.seed);

    for (const std::size_t n : options.ns) {
        const bool with_memory = memory && n == memory_n;
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
        std::printf("\nN = %s\n", bench::n_label(n).c_str());
        print_table(rows);
    }

    const bool with_tickwheel =
        std::find(options.impls.begin(), options.impls.end(), kTickwheel) != options.impls.end();
    if (with_tickwheel && options.impls.size() > 1) {
        std::vector<Row> rows;
        Row header{"peer"};
        for (const std::size_t n : options.ns)
            for (const Workload workload : timed)
                header.push_back(std::string(info(workload).key) + " " + bench::n_label(n));
        if (memory)
            header.push_back("B/timer " + bench::n_label(memory_n));
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
        std::puts(
            "\ntickwheel / peer, ratio of medians (below 1: tickwheel is faster or smaller)");
        print_table(rows);
    }

    std::puts("\nDelays uniform in [1 ms, 30 s]; every run in a fresh process.");
    if (memory)
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

void print_json(std::FILE *out, const Options &options, const Results &results)
{
    std::fprintf(
        out,
        "{\n  \"tool\": \"tw-bench\",\n  \"tickwheel_version\": \"%s\",\n  \"seed\": %" PRIu64
        ",\n  \"runs\": %u,\n  \"delay_min_ns\": %" PRIu64 ",\n  \"delay_max_ns\": %" PRIu64
        ",\n  \"results\": [",
        tw_version(), options.seed, options.runs, bench::kDelayMinNs, bench::kDelayMaxNs);
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

bool any_failed(const Options &options, const Results &results)
{
    for (const std::size_t impl : options.impls)
        for (const WorkloadInfo &w : kWorkloads)
            for (const std::size_t n : options.ns)
                if (const Cell *cell = results.find(impl, w.id, n); cell && cell->failed)
                    return true;
    return false;
}

} // namespace

namespace bench {
int run_conn_mode(int argc, char **argv);
}

int main(int argc, char **argv)
{
    if (argc >= 2 && std::strcmp(argv[1], "--conn") == 0)
        return bench::run_conn_mode(argc - 1, argv + 1);
    Options options;
    if (const int status = parse_options(argc, argv, options))
        return status == 1 ? 0 : 2;

    if (options.cpu >= 0) {
        cpu_set_t cpus;
        CPU_ZERO(&cpus);
        CPU_SET(options.cpu, &cpus);
        if (sched_setaffinity(0, sizeof cpus, &cpus) != 0) {
            std::fprintf(stderr, "tw-bench: cannot pin to CPU %d: %s\n", options.cpu,
                         std::strerror(errno));
            return 2;
        }
    }

    std::FILE *export_json = nullptr;
    if (options.export_json && !(export_json = std::fopen(options.export_json, "we"))) {
        std::fprintf(stderr, "tw-bench: %s: %s\n", options.export_json, std::strerror(errno));
        return 2;
    }

    bool ok;
    if (options.batch) {
        bench::BatchOptions batch;
        batch.runs = options.runs;
        batch.seed = options.seed;
        batch.json = options.json;
        ok = bench::run_batch_mode(batch, export_json);
    } else if (options.recovery) {
        ok = bench::run_recovery_mode(options.runs, options.json, export_json);
    } else if (options.loop) {
        ok = bench::run_loop_mode(options.loop_options, export_json);
    } else {
        const Results results = run_all(options);
        if (options.json)
            print_json(stdout, options, results);
        else
            print_report(options, results);
        ok = !any_failed(options, results);
        if (export_json)
            print_json(export_json, options, results);
    }
    if (export_json) {
        if (std::fclose(export_json) != 0) {
            std::fprintf(stderr, "tw-bench: %s: %s\n", options.export_json, std::strerror(errno));
            ok = false;
        }
    }
    return ok ? 0 : 1;
}
