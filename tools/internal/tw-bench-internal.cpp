/*
 * tw-bench-internal, the driver of the benchmarks of internal classes,
 * which the public tw-bench cannot reach through tickwheel.h:
 *
 *   --batch    Wheel::schedule_batch and cancel_batch with each variant of
 *              the SIMD kernels, and the kernels alone, beside their scalar
 *              twins (batch.cpp, due-mask.hpp)
 *   --handoff  the crossover of the loop's worker thread, the measurement
 *              behind the default batch_threshold (handoff.cpp)
 *
 * Built beside tw-bench and not installed; linked against the library's
 * internal static archive.  The options and the output are tw-bench's
 * (bench/bench.hpp).
 *
 * Uses: tools/bench (the options parser and the helpers).
 */
#include "bench/bench.hpp"

#include <iterator>

namespace {

const char kUsage[] =
    "usage: tw-bench-internal --batch [--runs COUNT] [--seed SEED] [--cpu CPU] [--json]\n"
    "                         [--export-json FILE]\n"
    "       tw-bench-internal --handoff [--runs COUNT] [--cpu CPU] [--json]\n"
    "                         [--export-json FILE]\n"
    "\n"
    "Times the library's internal classes.  With --batch, batch scheduling into a\n"
    "wheel of 65536 timers and the SIMD kernels, each variant beside its scalar\n"
    "twin, at batches of 32 to 8192.  With --handoff, the loop's worker thread:\n"
    "batches of 16 to 16384 items of a synthetic kernel run alone and split with\n"
    "the worker, warm and cold, and the crossover.\n"
    "\n"
    "  --runs COUNT      runs (default 3)\n"
    "  --seed SEED       seed of the deadlines and ids of --batch (default 1)\n"
    "  --cpu CPU         pin to one CPU\n"
    "  --json            print JSON instead of the tables\n"
    "  --export-json FILE  also write the JSON to FILE\n"
    "  --help            print this and exit\n"
    "\n"
    "Exit status: 0, 1 when a self-check failed, 2 on a usage error.\n";

constexpr unsigned kRuns = 3;

constexpr bench::Mode kModes[] = {
    {"--batch", 0, kRuns, nullptr, bench::run_batch},
    {"--handoff", 0, kRuns, nullptr, bench::run_handoff},
};

} // namespace

int main(int argc, char **argv)
{
    const bench::Program program = {"tw-bench-internal", kUsage, kModes, std::size(kModes)};
    return bench::main(program, argc, argv);
}
