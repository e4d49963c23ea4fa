/*
 * tw-bench-internal --handoff: the crossover of the loop's worker
 * (lib/loop/worker.hpp, the facility behind Loop::parallel), measured on
 * the worker itself: for batch sizes 16 to 16384 and a synthetic pure
 * kernel of ~20, ~80 and ~300 ns per item (rounds of a 64-bit mix over the
 * item, calibrated in each run), ns per batch run on the calling thread
 * alone (direct) and split with the worker (hand-off).
 *
 * Warm: batches back to back, as in a storm of turns, so the worker is
 * mostly spinning when a batch comes; each cell is the median of 7 samples
 * of several batches in one run.  Cold: each batch after 200 us idle, when
 * the worker has gone to sleep, the median of 15 batches.  The tables give
 * the median (min-max) over the runs, and the crossover is the smallest
 * size from which hand-off wins at every larger size.  A layer check of one
 * connection (a few deadline compares and an RTT update over a
 * connection's cache lines) costs about the ~80 ns kernel when cold in
 * cache; the loop's default batch_threshold is the cold crossover there.
 *
 * Every run is a child process of its own, with an alarm as a watchdog.
 * Self-check: every split computes what the direct path does.
 *
 * Uses: lib/loop/worker.hpp (the internal static library), bench.hpp,
 * tools/common/clock.h.
 */
#include "bench/bench.hpp"

#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <iterator>
#include <string>
#include <vector>

#include "common/clock.h"
#include "loop/worker.hpp"
#include "tickwheel.h"

namespace bench {

namespace {

/* The watchdog of a run. */
constexpr unsigned kWatchdogSeconds = 60;

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
                std::fprintf(stderr, "tw-bench-internal: hand-off: results differ at %zu items\n", n);
                return false;
            }
        }
    out->worker_share = all_items ? static_cast<double>(k.worker_items.load()) /
                                        static_cast<double>(all_items)
                                  : 0;
    if (!ok)
        std::fprintf(stderr, "tw-bench-internal: hand-off: the worker thread could not start\n");
    return ok;
}

struct HandoffResults {
    std::vector<HandoffSample> samples;
    unsigned failed = 0;
};

HandoffResults run_all(const Options &options)
{
    HandoffResults results;
    Progress progress(options.runs);
    for (unsigned r = 0; r < options.runs; ++r) {
        progress.step(format("run %u: hand-off crossover", r + 1));
        HandoffSample sample{};
        const bool ok = run_isolated(
            "hand-off",
            [&](int fd) {
                alarm(kWatchdogSeconds);
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

void print_handoff(const Options &options, const HandoffResults &results)
{
    std::printf("tw-bench-internal --handoff, tickwheel %s: %u run%s\n", tw_version(),
                options.runs, options.runs == 1 ? "" : "s");
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

void print_summary_json(std::FILE *out, const char *key, const Summary &s)
{
    std::fprintf(out, "\"%s\": {\"median\": %.3f, \"min\": %.3f, \"max\": %.3f}", key,
                 s.median, s.min, s.max);
}

/* Per size and cost, ns per batch each way, warm and cold; per cost, the
 * crossovers (0: never). */
void print_json(std::FILE *out, const Options &options, const HandoffResults &results)
{
    std::fprintf(out,
                 "{\n  \"tool\": \"tw-bench-internal\",\n  \"mode\": \"handoff\",\n"
                 "  \"tickwheel_version\": \"%s\",\n  \"runs\": %u,\n  \"failed\": %u,\n"
                 "  \"results\": [",
                 tw_version(), options.runs, results.failed);
    const char *separator = "\n";
    for (std::size_t c = 0; c < kCostCount && !results.samples.empty(); ++c) {
        const Summary item = handoff_summary(
            results, [&](const HandoffSample &x) { return x.item_ns[c]; });
        for (std::size_t s = 0; s < kSizeCount; ++s) {
            std::fprintf(out, "%s    {\"items\": %zu, \"item_ns\": %.1f, ", separator,
                         kHandoffSizes[s], item.median);
            const struct {
                const char *key;
                double (*get)(const HandoffSample &x, std::size_t s, std::size_t c);
            } ways[] = {
                {"direct_ns", [](const HandoffSample &x, std::size_t i, std::size_t j) {
                     return x.direct[i][j];
                 }},
                {"handoff_ns", [](const HandoffSample &x, std::size_t i, std::size_t j) {
                     return x.handoff[i][j];
                 }},
                {"cold_direct_ns", [](const HandoffSample &x, std::size_t i, std::size_t j) {
                     return x.cold_direct[i][j];
                 }},
                {"cold_handoff_ns", [](const HandoffSample &x, std::size_t i, std::size_t j) {
                     return x.cold_handoff[i][j];
                 }},
            };
            for (std::size_t w = 0; w < std::size(ways); ++w) {
                print_summary_json(out, ways[w].key, handoff_summary(results, [&](const HandoffSample &x) {
                                       return ways[w].get(x, s, c);
                                   }));
                std::fputs(w + 1 < std::size(ways) ? ", " : "}", out);
            }
            separator = ",\n";
        }
    }
    std::fputs("\n  ],\n  \"crossover\": [", out);
    separator = "\n";
    for (std::size_t c = 0; c < kCostCount && !results.samples.empty(); ++c) {
        std::fprintf(out, "%s    {\"target_item_ns\": %.0f, \"warm\": %zu, \"cold\": %zu}",
                     separator, kHandoffCosts[c], crossover(results, c, false),
                     crossover(results, c, true));
        separator = ",\n";
    }
    std::fputs("\n  ]\n}\n", out);
}

} // namespace

bool run_handoff(const Options &options, std::FILE *export_json)
{
    const HandoffResults results = run_all(options);
    publish(
        options, export_json, [&] { print_handoff(options, results); },
        [&](std::FILE *out) { print_json(out, options, results); });
    return results.failed == 0 && !results.samples.empty();
}

} // namespace bench
