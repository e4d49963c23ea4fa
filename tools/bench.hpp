/*
 * tw-bench: what the driver and the implementation adapters share.
 *
 * One adapter per translation unit: libev's ev.h and libevent's event2
 * headers define the same macros (EVLOOP_ONCE, EVLOOP_NONBLOCK) and cannot
 * meet in one file.
 */
#ifndef TW_BENCH_HPP
#define TW_BENCH_HPP

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace bench {

/* Every workload draws its delays uniformly from [1 ms, 30 s]. */
constexpr std::uint64_t kDelayMinNs = 1'000'000;
constexpr std::uint64_t kDelayMaxNs = 30'000'000'000;
constexpr std::size_t kChurnStepsPerTimer = 10;

enum class Workload { add, cancel, reschedule, expire, churn, memory };

struct Job {
    Workload workload;
    std::size_t n;
    std::uint64_t seed;
};

/* value: ns per operation (per timer for expire, per step for churn), or
 * bytes per live timer for memory.  error: empty, or the self-check that
 * failed. */
struct Outcome {
    double value = 0;
    std::string error;
};

/* A runner hands the job's outcome to report while the implementation is
 * still set up, so that a caller about to exit can skip tearing down a
 * million timers (seconds, for libevent's heap).  If report returns, the
 * runner tears down as usual. */
using Report = std::function<void(const Outcome &outcome)>;
using Runner = void (*)(const Job &job, const Report &report);

void run_tickwheel(const Job &job, const Report &report);
void run_libevent_heap(const Job &job, const Report &report);
void run_libevent_common(const Job &job, const Report &report);
void run_libev(const Job &job, const Report &report);
void run_libuv(const Job &job, const Report &report);
void run_multimap(const Job &job, const Report &report);

/* The driver's helpers (tw-bench.cpp), shared by its modes. */

struct Summary {
    double median;
    double min;
    double max;
};
/* The median, smallest and largest of samples, which is not empty. */
Summary summarize(std::vector<double> samples);

std::string format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

using Row = std::vector<std::string>;
/* A Markdown table, padded to line up in a terminal too. */
void print_table(const std::vector<Row> &rows);

bool write_all(int fd, const void *data, std::size_t size);
/* 1000 as "1k", 1000000 as "1M". */
std::string n_label(std::size_t n);
/* Runs child(fd) in a child process of its own, which exits with status 0
 * if child returns true.  True when it did, after writing exactly size
 * bytes to fd, which land in data.  label names the run in messages. */
bool run_isolated(const std::string &label, const std::function<bool(int fd)> &child,
                  void *data, std::size_t size);

/* "[3/12] what" on standard error, when it is a terminal. */
class Progress {
public:
    explicit Progress(std::size_t total) : total_(total), shown_(isatty(STDERR_FILENO) == 1) {}
    ~Progress()
    {
        if (shown_)
            std::fputs("\r\033[K", stderr);
    }
    Progress(const Progress &) = delete;
    Progress &operator=(const Progress &) = delete;
    void step(const std::string &what)
    {
        ++done_;
        if (shown_)
            std::fprintf(stderr, "\r\033[K[%zu/%zu] %s", done_, total_, what.c_str());
    }

private:
    std::size_t total_;
    std::size_t done_ = 0;
    bool shown_;
};

/* tw-bench --loop (bench-loop.cpp). */
struct LoopOptions {
    unsigned runs = 3;
    std::uint64_t seed = 1;
    unsigned seconds = 3;       /* the span of the lateness deadlines */
    std::size_t timers = 100'000;
    bool json = false;
};
/* Runs the loop benchmarks, prints the report (or JSON) on standard output
 * and, if export_json is not NULL, writes the JSON there too.  False when a
 * run failed or a self-check did. */
bool run_loop_mode(const LoopOptions &options, std::FILE *export_json);
/* tw-bench --recovery (bench-recovery.cpp). */
bool run_recovery_mode(unsigned runs, bool json, std::FILE *export_json);

/* tw-bench --batch (bench-batch.cpp). */
struct BatchOptions {
    unsigned runs = 3;
    std::uint64_t seed = 1;
    bool json = false;
};
/* Runs the batch and kernel benchmarks, as run_loop_mode. */
bool run_batch_mode(const BatchOptions &options, std::FILE *export_json);

} // namespace bench

#endif
