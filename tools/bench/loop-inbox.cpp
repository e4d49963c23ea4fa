/*
 * tw-bench --loop, inbox: 1 and 2 producer threads post 2M functions in
 * all with tw_loop_post, retrying with sched_yield on TW_EAGAIN, to a loop
 * in tw_loop_run; the function counts, and the last one stops the loop.
 * Commands per second from the start of the producers to the return of
 * tw_loop_run.  Self-checks: every posted function runs once, and the
 * refusals the producers saw are the loop's inbox_refused.
 *
 * Uses: loop.hpp; pthreads.
 */
#include "loop.hpp"

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstring>
#include <vector>

namespace bench {

namespace {

struct InboxRun {
    std::size_t total = 0;
    std::size_t ran = 0;
    std::size_t cancelled = 0;
    int stop_error = 0;
};

void on_command(tw_loop *loop, int status, void *userdata) noexcept
{
    InboxRun &run = *static_cast<InboxRun *>(userdata);
    if (status != 0) {
        ++run.cancelled;
        return;
    }
    if (++run.ran == run.total)
        if (const int err = tw_loop_stop(loop); err < 0)
            run.stop_error = err;
}

struct Producer {
    tw_loop *loop;
    InboxRun *run;
    std::size_t count;
    const std::atomic<bool> *quit;
    std::size_t posted = 0;
    std::uint64_t refusals = 0;
    int error = 0;     /* a TW_E* code */
    int sys_error = 0; /* an errno value */
    pthread_t thread{};
};

void *produce(void *arg)
{
    Producer &p = *static_cast<Producer *>(arg);
    while (p.posted < p.count) {
        const int err = tw_loop_post(p.loop, on_command, p.run);
        if (err == 0) {
            ++p.posted;
            continue;
        }
        if (err != TW_EAGAIN) {
            p.error = err;
            break;
        }
        ++p.refusals;
        /* The loop stopped early: its inbox may never drain again. */
        if (p.quit->load(std::memory_order_relaxed))
            break;
        if (sched_yield() != 0) {
            p.sys_error = errno;
            break;
        }
    }
    return nullptr;
}

bool run_inbox(Child &child, std::size_t producers)
{
    tw_loop *loop = nullptr;
    if (const int err = tw_loop_new(nullptr, nullptr, &loop); err < 0)
        return child.fatal("tw_loop_new: %s", error_name(err));
    InboxRun run;
    run.total = kInboxCommands;
    std::atomic<bool> quit{false};
    std::vector<Producer> threads;
    for (std::size_t i = 0; i < producers; ++i)
        threads.push_back(Producer{loop, &run,
                                   kInboxCommands / producers +
                                       (i < kInboxCommands % producers ? 1 : 0),
                                   &quit});

    const std::uint64_t before = mono_ns();
    std::size_t started = 0;
    int create_error = 0;
    for (Producer &p : threads) {
        if ((create_error = pthread_create(&p.thread, nullptr, produce, &p)) != 0)
            break;
        ++started;
    }
    /* Without every producer the last function never comes: no run. */
    const int err = started == producers ? tw_loop_run(loop) : 0;
    const std::uint64_t elapsed = mono_ns() - before;
    quit.store(true, std::memory_order_relaxed);
    bool joined = true;
    for (std::size_t i = 0; i < started; ++i)
        joined &= pthread_join(threads[i].thread, nullptr) == 0;
    if (create_error)
        return child.fatal("pthread_create: %s", std::strerror(create_error));
    if (!joined)
        return child.fatal("pthread_join failed");
    if (err < 0)
        return child.fatal("tw_loop_run: %s", error_name(err));

    tw_loop_stats stats;
    if (!loop_stats(child, loop, &stats))
        return false;
    tw_loop_free(loop);

    std::size_t posted = 0;
    std::uint64_t refusals = 0;
    for (const Producer &p : threads) {
        child.check(p.error == 0, "tw_loop_post: %s", error_name(p.error));
        child.check(p.sys_error == 0, "sched_yield: %s", std::strerror(p.sys_error));
        posted += p.posted;
        refusals += p.refusals;
    }
    child.check(posted == kInboxCommands && run.ran == kInboxCommands &&
                    stats.inbox_run == kInboxCommands && run.cancelled == 0,
                "%zu posted, %zu ran, %" PRIu64 " carried out by the loop's count, %zu "
                "cancelled; %zu expected",
                posted, run.ran, stats.inbox_run, run.cancelled, kInboxCommands);
    child.check(refusals == stats.inbox_refused,
                "the producers saw %" PRIu64 " refusals, the loop counted %" PRIu64, refusals,
                stats.inbox_refused);
    child.check(run.stop_error == 0, "tw_loop_stop: %s", error_name(run.stop_error));
    child.sample.set(kCommandsPerSecond, per_second(kInboxCommands, elapsed));
    child.sample.set(kRefusals, static_cast<double>(refusals));
    child.sample.set(kInboxHighWater, static_cast<double>(stats.inbox_high_water));
    child.sample.set(kTurns, static_cast<double>(stats.turns));
    return true;
}

} // namespace

bool run_inbox_1(const Options &, Child &child) { return run_inbox(child, 1); }
bool run_inbox_2(const Options &, Child &child) { return run_inbox(child, 2); }

} // namespace bench
