/*
 * The loop: a wheel bound to one libevent event_base.
 *
 * One timerfd, which the base polls, stays set at the wheel's earliest
 * deadline and is set again only when that changes, so an idle loop never
 * wakes.  A turn (the timerfd, an inbox wake-up, or tw_loop_process by hand) reads the
 * clock once, runs the inbox, advances the wheel under the callback budget
 * and re-arms.  Between turns, a call that needs the time (tw_loop_now, a
 * relative deadline, a touch) reads the clock again, since the last turn
 * may be long past when the caller's own events run.  Other threads reach
 * the loop only through the inbox, whose producers wake it by writing an
 * eventfd the base watches: no libevent locking is needed, so a caller's
 * base need not be thread-enabled.
 *
 * The default clock is CLOCK_MONOTONIC plus the time spent suspended since
 * the loop was created (the growth of CLOCK_BOOTTIME - CLOCK_MONOTONIC), so
 * timers that fell due during a suspend fire at once on resume.
 *
 * Uses: lib/wheel (the timers), loop/inbox.hpp, loop/worker.hpp,
 * lib/common; libevent.  lib/conn only through the two calls declared
 * below, conns_after_advance and conns_free.
 */
#ifndef TW_LOOP_HPP
#define TW_LOOP_HPP

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>

#include "loop/inbox.hpp"
#include "loop/worker.hpp"
#include "tickwheel.h"
#include "wheel/wheel.hpp"

struct event;

namespace tw {

struct Command {
    enum Kind : uint32_t { kRun, kSchedule, kCancel, kReschedule } kind;
    uint64_t deadline;
    tw_timer timer;
    tw_loop_fn *fn;
    tw_timer_cb *cb;
    void *userdata;
};

/* The loop's connections (lib/conn/conn.hpp), created with the first of
 * them.  The loop knows them by these two calls alone, defined in
 * lib/conn/conn.cpp: after each advance of a turn it lets them process the
 * connections whose wheel timers fired, and it frees them with itself.
 * conns_after_advance answers how many of the advance's timers ran nothing
 * in the end (a connection freed before it was processed, or left
 * unprocessed because the loop is being freed): the turn does not count
 * them as fired. */
class ConnSet;
uint64_t conns_after_advance(ConnSet *conns, uint64_t now);
void conns_free(ConnSet *conns);

class Loop {
public:
    Loop() = default;
    Loop(const Loop &) = delete;
    Loop &operator=(const Loop &) = delete;
    ~Loop();

    int init(tw_loop *self, struct event_base *base, const tw_loop_config &config);

    /* Dispatches the own base until tw_loop_stop or, with until_idle, until
     * the loop is idle after a turn (or before the first). */
    int run(bool until_idle = false);
    void stop();
    uint64_t process();
    /* The loop's time as last read, without reading the clock. */
    uint64_t now() const { return now_; }
    /* The time a call made now counts from.  Inside a turn, the turn's, so
     * everything a turn does sees one instant.  Outside one (the caller's
     * own events, code between turns of a loop driven by hand, before the
     * first turn) the last turn may be long past: the clock is read afresh
     * and becomes the loop's time.  The wheel's time stays where the last
     * advance left it; a deadline at or before it is due at the next turn. */
    uint64_t fresh_now()
    {
        if (!in_turn_)
            now_ = read_clock();
        return now_;
    }
    int fd() const { return poll_fd_; }
    int next_deadline(uint64_t *ret) const { return wheel_.next_deadline(ret); }

    int schedule(uint64_t deadline, tw_timer_cb *cb, void *userdata, tw_timer *ret);
    int schedule_batch(size_t n, const uint64_t *deadlines, tw_timer_cb *cb,
                       void *const *userdata, tw_timer *ret);
    int cancel(tw_timer timer);
    int reschedule(tw_timer timer, uint64_t deadline);
    int schedule_periodic(uint64_t first, uint64_t period, bool skip, tw_timer_cb *cb,
                          void *userdata, tw_timer *ret);
    int deadline(tw_timer timer, uint64_t *ret) const { return wheel_.deadline(timer, ret); }
    int period(tw_timer timer, uint64_t *ret) const { return wheel_.period(timer, ret); }
    /* The caller's timers: every timer but those whose callback is `keep`
     * (the connections' own). */
    uint64_t count(tw_timer_cb *keep) const { return wheel_.count(keep); }
    int foreach(tw_timer_cb *keep, tw_timer_visit_fn *fn, void *ctx);
    uint64_t cancel_all(tw_timer_cb *keep);
    /* Nothing armed to fire (parked timers aside) and no command queued. */
    bool idle() const;

    int schedule_slack(uint64_t deadline, uint64_t slack, tw_timer_cb *cb, void *userdata,
                       tw_timer *ret);

    /* Runs fn(ctx, begin, end) over [0, n), on the loop's thread, or split
     * with the worker thread when n is above the batch threshold (and above
     * kDirectMax); returns when all of it has run.  For the pure part of a
     * batch (per-connection layer checks, grouping, slot computation): fn
     * must touch nothing but what its indices own (no wheel, no loop, no
     * user callback), and what it writes for an index is read by the
     * caller after the return.  Not reentrant: from inside fn, or when the
     * worker cannot be started, the batch runs directly.  Loop thread
     * only; lib/conn's check of many fired connections calls it.  True
     * when the worker took a share. */
    bool parallel(size_t n, Worker::Fn fn, void *ctx);
    static constexpr size_t kDirectMax = 64;
    Worker &worker() { return worker_; }

    int post(const Command &command);
    int post_wait(const Command &command, uint64_t timeout_ns);

    void stats(tw_loop_stats *ret) const;

    bool in_turn() const { return in_turn_; }
    bool running() const { return running_; }
    struct event_base *base() const { return base_; }
    /* Asks the running turn to stop and free the loop when it ends. */
    void request_free()
    {
        free_requested_ = true;
        wheel_.request_free();
    }
    bool free_requested() const { return free_requested_; }
    ConnSet *conns() const { return conns_; }
    void set_conns(ConnSet *conns) { conns_ = conns; }
    /* Reports every queued function as cancelled. */
    void cancel_inbox();

private:
    int open_descriptors();
    int attach(struct event_base *base);
    static void on_timer(int fd, short what, void *arg);
    static void on_wake(int fd, short what, void *arg);
    /* catch_up: serve deadlines that pass meanwhile with more passes. */
    uint64_t turn(bool catch_up);
    uint64_t dispatch(uint64_t started);
    uint64_t read_clock();
    uint64_t peek_clock() const;
    /* Passes of one turn at most, when deadlines pass while it runs. */
    static constexpr unsigned kCatchUpPasses = 8;
    void run_inbox();
    void drain_fd();
    void wake();
    void rearm();
    void log(int level, const char *message) const
    {
        if (log_)
            log_(level, message, log_userdata_);
    }

    tw_loop *self_ = nullptr;
    Wheel wheel_;
    ConnSet *conns_ = nullptr;
    Inbox<Command> inbox_;
    struct event_base *base_ = nullptr;
    bool own_base_ = false;
    struct event *timer_ev_ = nullptr;
    struct event *wake_ev_ = nullptr;
    int wake_fd_ = -1;
    int timer_fd_ = -1;
    int poll_fd_ = -1;                  /* epoll of both, for driving by hand */
    std::atomic<bool> wake_pending_{false};
    int64_t wake_owed_ = 0;             /* eventfd writes cleared, not yet read */
    std::atomic<bool> stop_{false};
    std::mutex room_mutex_;             /* post_wait sleeps here for room */
    std::condition_variable room_;
    std::atomic<uint32_t> waiters_{0};

    tw_clock_fn *clock_ = nullptr;
    void *clock_userdata_ = nullptr;
    tw_log_fn *log_ = nullptr;
    void *log_userdata_ = nullptr;
    uint32_t budget_ = 0;
    uint64_t budget_ns_ = 0;
    uint64_t batch_threshold_ = 0;
    Worker worker_;
    bool in_parallel_ = false;
    bool worker_warned_ = false;

    uint64_t now_ = 0;
    uint64_t armed_ = TW_NEVER;         /* the deadline the timer descriptor is set for */
    bool timer_expired_ = false;        /* it went off and is readable until set */
    uint64_t boot_gap_ = 0;             /* CLOCK_BOOTTIME - CLOCK_MONOTONIC */
    uint64_t suspended_ = 0;            /* added to the monotonic clock */
    bool in_turn_ = false;
    bool running_ = false;              /* inside tw_loop_run */
    bool until_idle_ = false;           /* ... and it returns once idle */
    bool free_requested_ = false;

    uint64_t catch_ups_ = 0;
    uint64_t turns_ = 0, wakeups_ = 0, rearms_ = 0, fired_ = 0, budget_stops_ = 0;
    uint64_t longest_turn_ = 0, clock_backwards_ = 0, inbox_run_ = 0, inbox_high_ = 0;
    uint64_t budget_time_stops_ = 0;
    uint64_t batches_direct_ = 0, batches_handoff_ = 0, items_direct_ = 0, items_handoff_ = 0;
    std::atomic<uint64_t> refused_{0};
};

} // namespace tw

struct tw_loop {
    tw::Loop core;
};

#endif
