/*
 * tw-bench: what the driver and the implementation adapters share.
 *
 * One adapter per translation unit: libev's ev.h and libevent's event2
 * headers define the same macros (EVLOOP_ONCE, EVLOOP_NONBLOCK) and cannot
 * meet in one file.
 */
#ifndef TW_BENCH_HPP
#define TW_BENCH_HPP

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

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

} // namespace bench

#endif
