/*
 * The peer comparison of tw-bench (mode-peers.cpp): the five workloads and
 * the memory measurement, written once as templates over an
 * implementation adapter, one adapter per file (peer-*.cpp; libev's ev.h
 * and libevent's event2 headers define the same macros and cannot meet in
 * one file).  The templates are instantiated once per adapter, so no
 * indirect call sits inside a timed loop.  An adapter is a class with these
 * members:
 *
 *   explicit Impl(std::size_t capacity);
 *       per-timer objects for slots [0, capacity), allocated and initialised
 *       up front in one array
 *   bool ok() const;                      construction succeeded
 *   template <class F> bool in_loop(const F &body);
 *       runs body the way a loop callback runs: the loop's cached time fresh
 *   bool add(std::size_t slot, std::uint64_t delay_ns);
 *   bool cancel(std::size_t slot);
 *   bool reschedule(std::size_t slot, std::uint64_t delay_ns);
 *   bool add_expiring(std::size_t slot, std::uint64_t delay_ns);
 *       arms for W4: due once wait_due() has returned
 *   void wait_due();
 *   bool fire_all();                      one advance, or one loop turn
 *                                         that does not block
 *   std::uint64_t fired() const;          callbacks run so far
 *   bool armed(std::size_t slot) const;   as the implementation reports it
 *   bool verify(std::size_t live) const;  the implementation's own checks
 *
 * and its file defines the Runner that mode-peers.cpp lists, as
 * run_workload<Impl>.  Every random number is drawn before the clock
 * starts: the timed loops read a slot and a delay from arrays and call the
 * adapter, nothing else.
 *
 * Uses: bench.hpp, rng.hpp.
 */
#ifndef TW_BENCH_PEERS_HPP
#define TW_BENCH_PEERS_HPP

#include "bench.hpp"
#include "rng.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace bench {

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


using Clock = std::chrono::steady_clock;

/* W4 on a real loop.  libevent, libev and libuv read the system clock: their
 * timers cannot be made due by moving an injected clock 30 s ahead, and
 * waiting 30 s per run is out of the question.  Their W4 deadlines are the
 * workload's delays divided by kExpiryScale -- the same order and relative
 * spacing, squeezed into [1 us, 30 ms] -- and the timed part is one
 * non-blocking loop turn taken after every deadline has passed. */
constexpr std::uint64_t kExpiryScale = 1000;

class ExpiryWait {
public:
    /* Call right after the loop refreshed its cached time, before arming. */
    void mark() { marked_ = Clock::now(); }
    void wait() const { std::this_thread::sleep_until(marked_ + kLast + kSlack); }

private:
    static constexpr std::chrono::nanoseconds kLast{kDelayMaxNs / kExpiryScale};
    /* The loops may read CLOCK_MONOTONIC_COARSE, up to a jiffy (10 ms at
     * HZ=100) behind CLOCK_MONOTONIC. */
    static constexpr std::chrono::milliseconds kSlack{20};
    Clock::time_point marked_;
};

struct Plan {
    std::vector<std::uint64_t> initial; /* delays of the N timers armed first */
    std::vector<std::uint32_t> slot;    /* the timer each timed operation touches */
    std::vector<std::uint64_t> delay;   /* the delay each timed operation arms */
};

inline Plan make_plan(const Job &job)
{
    Rng rng(job.seed);
    const std::size_t n = job.n;
    const auto draw_delay = [&rng] {
        return kDelayMinNs + rng.below(kDelayMaxNs - kDelayMinNs + 1);
    };
    const auto draw_slots = [&rng, n](std::vector<std::uint32_t> &slots, std::size_t count) {
        slots.resize(count);
        for (auto &slot : slots)
            slot = static_cast<std::uint32_t>(rng.below(n));
    };
    const auto draw_delays = [&draw_delay](std::vector<std::uint64_t> &delays, std::size_t count) {
        delays.resize(count);
        for (auto &delay : delays)
            delay = draw_delay();
    };

    Plan plan;
    draw_delays(plan.initial, n);
    switch (job.workload) {
    case Workload::add:
        draw_delays(plan.delay, n);
        break;
    case Workload::cancel:
        plan.slot.resize(n);
        for (std::size_t i = 0; i < n; ++i)
            plan.slot[i] = static_cast<std::uint32_t>(i);
        for (std::size_t i = n - 1; i > 0; --i)
            std::swap(plan.slot[i], plan.slot[rng.below(i + 1)]);
        break;
    case Workload::reschedule:
        draw_slots(plan.slot, n);
        draw_delays(plan.delay, n);
        break;
    case Workload::churn:
        draw_slots(plan.slot, kChurnStepsPerTimer * n);
        draw_delays(plan.delay, kChurnStepsPerTimer * n);
        break;
    case Workload::expire:
    case Workload::memory:
        break;
    }
    return plan;
}

inline Outcome failure(std::string what)
{
    Outcome outcome;
    outcome.error = std::move(what);
    return outcome;
}

inline Outcome per_op(Clock::duration elapsed, std::size_t ops)
{
    Outcome outcome;
    outcome.value =
        std::chrono::duration<double, std::nano>(elapsed).count() / static_cast<double>(ops);
    return outcome;
}

/* Whether each of the slots [0, end) is armed exactly when armed is true. */
template <class Impl>
bool armed_as_expected(const Impl &impl, std::size_t end, bool armed)
{
    for (std::size_t slot = 0; slot < end; ++slot)
        if (impl.armed(slot) != armed)
            return false;
    return true;
}

template <class Impl>
bool arm_initial(Impl &impl, const Plan &plan)
{
    bool ok = true;
    for (std::size_t slot = 0; slot < plan.initial.size(); ++slot)
        ok &= impl.add(slot, plan.initial[slot]);
    return ok;
}

/* W1: schedule N timers into a structure already holding N. */
template <class Impl>
Outcome run_add(Impl &impl, const Plan &plan)
{
    const std::size_t n = plan.initial.size();
    if (!arm_initial(impl, plan))
        return failure("arming the first N timers failed");
    bool ok = true;
    const auto start = Clock::now();
    for (std::size_t i = 0; i < n; ++i)
        ok &= impl.add(n + i, plan.delay[i]);
    const auto elapsed = Clock::now() - start;
    if (!ok)
        return failure("an add failed");
    if (!armed_as_expected(impl, 2 * n, true) || !impl.verify(2 * n))
        return failure("after the adds, not all 2N timers are armed");
    return per_op(elapsed, n);
}

/* W2: cancel N live timers in random order. */
template <class Impl>
Outcome run_cancel(Impl &impl, const Plan &plan)
{
    const std::size_t n = plan.initial.size();
    if (!arm_initial(impl, plan))
        return failure("arming the N timers failed");
    bool ok = true;
    const auto start = Clock::now();
    for (const std::uint32_t slot : plan.slot)
        ok &= impl.cancel(slot);
    const auto elapsed = Clock::now() - start;
    if (!ok)
        return failure("a cancel failed");
    if (!armed_as_expected(impl, n, false) || !impl.verify(0))
        return failure("after the cancels, timers are still armed");
    return per_op(elapsed, n);
}

/* W3: re-arm a random armed timer to a new random delay, N times. */
template <class Impl>
Outcome run_reschedule(Impl &impl, const Plan &plan)
{
    const std::size_t n = plan.initial.size();
    if (!arm_initial(impl, plan))
        return failure("arming the N timers failed");
    bool ok = true;
    const auto start = Clock::now();
    for (std::size_t i = 0; i < plan.slot.size(); ++i)
        ok &= impl.reschedule(plan.slot[i], plan.delay[i]);
    const auto elapsed = Clock::now() - start;
    if (!ok)
        return failure("a reschedule failed");
    if (!armed_as_expected(impl, n, true) || !impl.verify(n))
        return failure("after the reschedules, not all N timers are armed");
    return per_op(elapsed, plan.slot.size());
}

/* W5: N live timers; each step cancels a random one and arms its slot anew. */
template <class Impl>
Outcome run_churn(Impl &impl, const Plan &plan)
{
    const std::size_t n = plan.initial.size();
    if (!arm_initial(impl, plan))
        return failure("arming the N timers failed");
    bool ok = true;
    const auto start = Clock::now();
    for (std::size_t i = 0; i < plan.slot.size(); ++i) {
        ok &= impl.cancel(plan.slot[i]);
        ok &= impl.add(plan.slot[i], plan.delay[i]);
    }
    const auto elapsed = Clock::now() - start;
    if (!ok)
        return failure("a cancel or an add failed");
    if (!armed_as_expected(impl, n, true) || !impl.verify(n))
        return failure("after the churn, not all N timers are armed");
    return per_op(elapsed, plan.slot.size());
}

/* W4: N timers all due; one advance or one loop turn fires them all.  Only
 * that call is timed; arming and waiting are not. */
template <class Impl>
Outcome run_expire(Impl &impl, const Plan &plan)
{
    const std::size_t n = plan.initial.size();
    bool ok = true;
    const bool ran = impl.in_loop([&] {
        for (std::size_t slot = 0; slot < n; ++slot)
            ok &= impl.add_expiring(slot, plan.initial[slot]);
    });
    if (!ran || !ok)
        return failure("arming the N timers failed");
    impl.wait_due();
    const auto start = Clock::now();
    ok = impl.fire_all();
    const auto elapsed = Clock::now() - start;
    if (!ok)
        return failure("the advance or the loop turn failed");
    if (impl.fired() != n)
        return failure(std::to_string(impl.fired()) + " of " + std::to_string(n) +
                       " timers fired");
    if (!armed_as_expected(impl, n, false) || !impl.verify(0))
        return failure("timers are still armed after firing");
    return per_op(elapsed, n);
}

/* Resets VmHWM to the current RSS (Linux 4.0 and later) and returns that. */
inline std::optional<std::uint64_t> reset_peak_rss_kib()
{
    if (std::FILE *clear_refs = std::fopen("/proc/self/clear_refs", "we")) {
        std::fputs("5", clear_refs);
        std::fclose(clear_refs);
    }
    return status_kib("VmRSS:");
}

/* Bytes per live timer: the peak RSS growth from before the implementation
 * and its per-timer array exist until N timers are armed, divided by N.
 * Meant for a fresh process, whose allocator holds no freed memory to reuse. */
template <class Impl>
Outcome measure_memory(Impl &impl, const Plan &plan, std::optional<std::uint64_t> rss_before_kib)
{
    bool ok = false;
    if (!impl.in_loop([&] { ok = arm_initial(impl, plan); }) || !ok)
        return failure("arming the N timers failed");
    const std::optional<std::uint64_t> peak_kib = status_kib("VmHWM:");
    if (!rss_before_kib || !peak_kib)
        return failure("cannot read VmRSS or VmHWM from /proc/self/status");
    Outcome outcome;
    if (*peak_kib > *rss_before_kib)
        outcome.value = static_cast<double>(*peak_kib - *rss_before_kib) * 1024 /
                        static_cast<double>(plan.initial.size());
    return outcome;
}

template <class Impl>
Outcome measure(Impl &impl, Workload workload, const Plan &plan)
{
    if (workload == Workload::expire)
        return run_expire(impl, plan);
    Outcome outcome;
    const bool ran = impl.in_loop([&] {
        switch (workload) {
        case Workload::add:
            outcome = run_add(impl, plan);
            break;
        case Workload::cancel:
            outcome = run_cancel(impl, plan);
            break;
        case Workload::reschedule:
            outcome = run_reschedule(impl, plan);
            break;
        case Workload::churn:
            outcome = run_churn(impl, plan);
            break;
        case Workload::expire:
        case Workload::memory:
            break;
        }
    });
    return ran ? outcome : failure("the loop did not run the workload");
}

template <class Impl>
void run_pass(const Job &job, const Report &report)
{
    const Plan plan = make_plan(job);
    const bool memory = job.workload == Workload::memory;
    const std::optional<std::uint64_t> rss_before_kib =
        memory ? reset_peak_rss_kib() : std::nullopt;
    Impl impl(job.workload == Workload::add ? 2 * job.n : job.n);
    if (!impl.ok())
        report(failure("could not set up the implementation"));
    else if (memory)
        report(measure_memory(impl, plan, rss_before_kib));
    else
        report(measure(impl, job.workload, plan));
}

/* A first, untimed pass on at most kWarmupTimers timers and other random
 * numbers takes the page faults on code, the cold branch predictors and the
 * allocator's first growth out of the timed pass, which matter at N = 1000. */
constexpr std::size_t kWarmupTimers = 1000;

template <class Impl>
void run_workload(const Job &job, const Report &report)
{
    if (job.workload != Workload::memory) {
        Outcome warmup;
        run_pass<Impl>(Job{job.workload, std::min(job.n, kWarmupTimers), ~job.seed},
                       [&warmup](const Outcome &outcome) { warmup = outcome; });
        if (!warmup.error.empty()) {
            report(failure("warm-up: " + warmup.error));
            return;
        }
    }
    run_pass<Impl>(job, report);
}

} // namespace bench

#endif
