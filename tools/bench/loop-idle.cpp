/*
 * tw-bench --loop, idle: a loop on its own base with no timer, run until
 * another thread stops it after 1 s: the loop's timer wake-ups (none is
 * the target) and the CPU of the process.  Self-check: tw_loop_run returns
 * only after the stop.
 *
 * Uses: loop.hpp; pthreads.
 */
#include "loop.hpp"

#include <pthread.h>
#include <time.h>

#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstring>

namespace bench {

namespace {

struct Stopper {
    tw_loop *loop;
    std::atomic<bool> stopping{false};
    int error = 0;
};

void *stop_later(void *arg)
{
    Stopper &s = *static_cast<Stopper *>(arg);
    timespec left{static_cast<time_t>(kIdleNs / kSecondNs),
                  static_cast<long>(kIdleNs % kSecondNs)};
    int err;
    while ((err = clock_nanosleep(CLOCK_MONOTONIC, 0, &left, &left)) == EINTR) {
    }
    if (err != 0)
        s.error = err;
    s.stopping.store(true);
    if (const int e = tw_loop_stop(s.loop); e < 0 && s.error == 0)
        s.error = e;
    return nullptr;
}

} // namespace

bool run_idle(const Options &, Child &child)
{
    tw_loop *loop = nullptr;
    if (const int err = tw_loop_new(nullptr, nullptr, &loop); err < 0)
        return child.fatal("tw_loop_new: %s", error_name(err));
    Stopper stopper;
    stopper.loop = loop;
    const std::uint64_t cpu_before = cpu_ns();
    const std::uint64_t before = mono_ns();
    pthread_t thread;
    if (const int err = pthread_create(&thread, nullptr, stop_later, &stopper); err != 0)
        return child.fatal("pthread_create: %s", std::strerror(err));
    const int err = tw_loop_run(loop);
    const std::uint64_t elapsed = mono_ns() - before;
    const std::uint64_t cpu = cpu_ns() - cpu_before;
    const bool stopped = stopper.stopping.load();
    if (const int e = pthread_join(thread, nullptr); e != 0)
        return child.fatal("pthread_join: %s", std::strerror(e));
    if (err < 0)
        return child.fatal("tw_loop_run: %s", error_name(err));
    child.check(stopper.error == 0, "the stopping thread failed: %s",
                stopper.error > 0 ? std::strerror(stopper.error) : error_name(stopper.error));
    child.check(stopped, "tw_loop_run returned before tw_loop_stop, after %" PRIu64 " ns",
                elapsed);

    tw_loop_stats stats;
    if (!loop_stats(child, loop, &stats))
        return false;
    tw_loop_free(loop);
    child.sample.set(kWakeups, static_cast<double>(stats.wakeups));
    child.sample.set(kTurns, static_cast<double>(stats.turns));
    child.sample.set(kCpuPercent, percent(cpu, elapsed));
    return true;
}

} // namespace bench
