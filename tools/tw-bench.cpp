/*
 * tw-bench, the driver: its modes, its usage text and main.  A mode is a
 * set of benchmarks behind one flag, all with the one entry of
 * bench/bench.hpp:
 *
 *   (none)      tickwheel beside libevent, libev, libuv and a std::multimap
 *               on the workloads of PERFORMANCE.md (bench/mode-peers.cpp,
 *               one adapter per peer in bench/peer-*.cpp)
 *   --loop      tw_loop on a real libevent loop: lateness beside libevent's
 *               timers, a mass expiry, the inbox, an idle loop
 *               (bench/mode-loop.cpp and bench/loop-*.cpp)
 *   --conn      the per-packet calls on connections (bench/mode-conn.cpp)
 *   --recovery  the reliability layer's hot paths (bench/mode-recovery.cpp)
 *
 * The benchmarks of internal classes (batch scheduling and the SIMD
 * kernels, the worker's hand-off) are tools/internal/tw-bench-internal's.
 * This program uses the library through tickwheel.h alone.
 *
 * Uses: bench/ (the options parser, the helpers and the modes).
 */
#include "bench/bench.hpp"

#include <iterator>

namespace {

const char kUsage[] =
    "usage: tw-bench [options]\n"
    "       tw-bench --loop [options]\n"
    "       tw-bench --conn [options]\n"
    "       tw-bench --recovery [options]\n"
    "\n"
    "Times tickwheel beside libevent (heap and common timeouts), libev, libuv\n"
    "and a std::multimap; prints ns per operation, median (min-max) of the runs.\n"
    "With --loop, measures tw_loop on a real libevent loop instead: firing\n"
    "lateness beside libevent's own timers, a mass expiry, the inbox, an idle loop.\n"
    "With --conn, times the per-packet calls on connections: re-arming, touching,\n"
    "the unified deadline, the loop's time inside and outside a turn, memory.\n"
    "With --recovery, times the reliability layer: on_sent + on_ack per packet,\n"
    "next_deadline, and the same with losses.\n"
    "\n"
    "  --impl LIST       implementations (default all): tickwheel, libevent-heap,\n"
    "                    libevent-common, libev, libuv, multimap\n"
    "  --workload LIST   W1 add, W2 cancel, W3 reschedule, W4 expire, W5 churn,\n"
    "                    mem (bytes per timer at the largest N); default all\n"
    "  --n LIST          live timers, k and M suffixes allowed\n"
    "                    (default 1000,100000,1000000)\n"
    "  --runs COUNT      runs per cell (default 3; 5 with --conn)\n"
    "  --seed SEED       seed of the delays and the choices (default 1)\n"
    "  --quick           --n 1000,100000, unless --n is given; with --conn,\n"
    "                    up to 100000 connections and 3 runs unless --runs is given\n"
    "  --cpu CPU         pin to one CPU\n"
    "  --json            print JSON instead of the table\n"
    "  --export-json FILE  also write the JSON to FILE\n"
    "  --loop            the loop benchmarks; --impl, --workload, --n and --quick\n"
    "                    do not apply\n"
    "  --loop-seconds S  span of the lateness deadlines, 1 to 600 (default 3)\n"
    "  --loop-timers N   timers of the lateness run, k and M suffixes allowed\n"
    "                    (default 100000)\n"
    "  --conn            the connection benchmarks; only --runs, --quick, --cpu\n"
    "                    and the JSON options apply\n"
    "  --recovery        the reliability layer benchmarks; only --runs, --cpu,\n"
    "                    --json and --export-json apply\n"
    "  --help            print this and exit\n"
    "\n"
    "Batch scheduling, the SIMD kernels and the worker's hand-off are measured\n"
    "by tw-bench-internal, built beside it and not installed.\n"
    "\n"
    "Exit status: 0, 1 when a self-check failed, 2 on a usage error.\n";

/* The default runs of --conn: its figures are cheap and noisy. */
constexpr unsigned kConnRuns = 5;
constexpr unsigned kRuns = 3;

constexpr bench::Mode kModes[] = {
    {nullptr, bench::kOptImpl | bench::kOptWorkload | bench::kOptN | bench::kOptQuick, kRuns,
     bench::prepare_peers, bench::run_peers},
    {"--loop", bench::kOptLoopSeconds | bench::kOptLoopTimers, kRuns, nullptr, bench::run_loop},
    {"--conn", bench::kOptQuick, kConnRuns, bench::prepare_conn, bench::run_conn},
    {"--recovery", 0, kRuns, nullptr, bench::run_recovery},
};

} // namespace

int main(int argc, char **argv)
{
    const bench::Program program = {"tw-bench", kUsage, kModes, std::size(kModes)};
    return bench::main(program, argc, argv);
}
