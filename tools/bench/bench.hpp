/*
 * What tw-bench and tw-bench-internal share: the options, the shape of a
 * mode, the driver that parses the one and runs the other, and the
 * helpers every mode uses to summarise runs, print tables and JSON, and
 * isolate runs in child processes.
 *
 * A mode is one set of benchmarks behind one flag (--loop, --conn, ...;
 * the peer comparison has none).  Each has the same entry: it runs with
 * the parsed options, prints its report on standard output (with --json,
 * its JSON document instead) and, when export_json is not NULL, writes the
 * JSON document there too; it returns false when a run or a self-check
 * failed.  The driver refuses the options a mode does not take.
 *
 * Uses: nothing of the library (the modes use tickwheel.h or internals).
 */
#ifndef TW_BENCH_BENCH_HPP
#define TW_BENCH_BENCH_HPP

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace bench {

/* Every workload draws its delays uniformly from [1 ms, 30 s]: the peer
 * comparison's and the batches of tw-bench-internal. */
constexpr std::uint64_t kDelayMinNs = 1'000'000;
constexpr std::uint64_t kDelayMaxNs = 30'000'000'000;

/* The options beyond --runs, --seed, --cpu, --json, --export-json and
 * --help, which every mode takes (a mode without random draws ignores
 * --seed). */
enum Opt : unsigned {
    kOptImpl = 1u << 0,
    kOptWorkload = 1u << 1,
    kOptN = 1u << 2,
    kOptQuick = 1u << 3,
    kOptLoopSeconds = 1u << 4,
    kOptLoopTimers = 1u << 5,
};

struct Options {
    std::vector<std::string> impls;     /* --impl, as given */
    std::vector<std::string> workloads; /* --workload, as given */
    std::vector<std::size_t> ns;        /* --n */
    unsigned runs = 0;                  /* 0 until parsed: the mode's default */
    std::uint64_t seed = 1;
    bool quick = false;
    bool runs_given = false;
    bool json = false;
    const char *export_json = nullptr;
    int cpu = -1;
    unsigned loop_seconds = 3;          /* the span of the lateness deadlines */
    std::size_t loop_timers = 100'000;  /* timers of the lateness run */
};

struct Mode {
    const char *flag;           /* "--loop"; nullptr for the program's default */
    unsigned options;           /* the Opt bits it takes */
    unsigned default_runs;
    /* Checks and completes the mode's own options; false (after saying
     * why on standard error) refuses the command line.  May be nullptr. */
    bool (*prepare)(Options &options);
    bool (*run)(const Options &options, std::FILE *export_json);
};

struct Program {
    const char *name;           /* "tw-bench" */
    const char *usage;          /* the text of --help */
    const Mode *modes;
    std::size_t nmodes;
};

/* The program's name, for messages: set by main. */
extern const char *g_program;

/* Parses the command line, pins the CPU, opens the export file and runs
 * the mode it selects.  The exit status: 0, 1 when the mode failed, 2 for
 * a bad command line, an export file that cannot be opened or a CPU that
 * cannot be had. */
int main(const Program &program, int argc, char **argv);

/* A decimal count into *ret, with a k (thousands) or M (millions) suffix
 * when suffixes; false when text is not one. */
bool parse_count(const char *text, bool suffixes, std::uint64_t *ret);

/* ---- summaries and output ----------------------------------------------- */

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

/* 1000 as "1k", 1000000 as "1M". */
std::string n_label(std::size_t n);

/* The members "date" (UTC, ISO 8601, when this is called) and "machine"
 * (the processor's model, the online CPUs, uname's system, release and
 * hardware) of a JSON document, each on a line of its own indented by two
 * spaces and followed by a comma: where and when the figures were taken,
 * for the plots' titles. */
void print_json_machine(std::FILE *out);

/* The report on standard output, or with --json the JSON document; the
 * JSON document to export_json too when it is not NULL. */
void publish(const Options &options, std::FILE *export_json,
             const std::function<void()> &report,
             const std::function<void(std::FILE *out)> &json);

/* ---- the process ---------------------------------------------------------- */

/* A "Field:   123 kB" line of /proc/self/status, in KiB ("VmRSS:", "VmHWM:"). */
std::optional<std::uint64_t> status_kib(const char *field);


bool write_all(int fd, const void *data, std::size_t size);
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

/* ---- the modes ---------------------------------------------------------- */

/* tw-bench: mode-peers.cpp, mode-loop.cpp, mode-conn.cpp, mode-recovery.cpp */
bool prepare_peers(Options &options);
bool run_peers(const Options &options, std::FILE *export_json);
bool run_loop(const Options &options, std::FILE *export_json);
bool prepare_conn(Options &options);
bool run_conn(const Options &options, std::FILE *export_json);
bool run_recovery(const Options &options, std::FILE *export_json);

/* tw-bench-internal: tools/internal/batch.cpp and handoff.cpp */
bool run_batch(const Options &options, std::FILE *export_json);
bool run_handoff(const Options &options, std::FILE *export_json);

} // namespace bench

#endif
