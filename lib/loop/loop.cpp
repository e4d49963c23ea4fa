/*
 * The loop, as loop.hpp lays it out: its descriptors and base, the clock
 * and suspends, a turn (the inbox, the budgeted dispatch, catch-up
 * passes), the setting of the timer descriptor, the hand-off of batches
 * to the worker, and the producers' side of the inbox.
 *
 * Uses: as loop.hpp; epoll, eventfd and timerfd.
 */
#include "loop/loop.hpp"
#include "common/clock.hpp"
#include "common/copy-out.hpp"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <new>

#include <event2/event.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

namespace tw {

namespace {

/* The code for a descriptor the kernel would not create. */
int fd_error()
{
    return errno == EMFILE || errno == ENFILE ? TW_EMFILE : TW_ENOMEM;
}

/* libevent ends the process when a new base cannot get the descriptors
 * it needs: the epoll one and a pair for signals. */
constexpr int kBaseDescriptors = 3;

/* True when n (at most kBaseDescriptors) more descriptors can be opened. */
bool descriptors_left(int n)
{
    int fds[kBaseDescriptors];
    int k = 0;
    while (k < n && k < kBaseDescriptors && (fds[k] = eventfd(0, EFD_CLOEXEC)) >= 0)
        k++;
    for (int i = 0; i < k; i++)
        close(fds[i]);
    return k == n;
}

/* A growth of BOOTTIME - MONOTONIC below this is read-out jitter. */
constexpr uint64_t kSuspendMinNs = 1000000;

/* The farthest the timer descriptor is set, ~146 years: below the
 * kernel's limit; a later deadline is reached by setting it again. */
constexpr uint64_t kArmMaxNs = uint64_t(1) << 62;

/* CLOCK_BOOTTIME - CLOCK_MONOTONIC, read MONOTONIC first so the result is
 * never below the true difference (which only a suspend changes), and
 * measured again, up to kBootGapTries times, while a preemption between
 * the reads may have inflated it by more than kBootGapReadNs. */
constexpr int kBootGapTries = 8;
constexpr uint64_t kBootGapReadNs = 4000;

uint64_t boot_gap()
{
    uint64_t gap = 0;
    for (int attempt = 0; attempt < kBootGapTries; attempt++) {
        uint64_t mono = clock_ns(CLOCK_MONOTONIC);
        gap = clock_ns(CLOCK_BOOTTIME) - mono;
        if (clock_ns(CLOCK_MONOTONIC) - mono < kBootGapReadNs)
            break;
    }
    return gap;
}

/* Under a time budget, the turn dispatches in chunks of callbacks and
 * reads the clock between them: 64 at first, doubling up to 1024 while a
 * chunk takes under 1/16 of the budget.  A chunk costs an advance and a
 * next-deadline (~250 ns): at 64 trivial callbacks that was 13 % of a mass
 * expiry, and cheap callbacks is where a larger chunk overshoots least. */
constexpr uint64_t kTimeCheckFirst = 64;
constexpr uint64_t kTimeCheckMax = 1024;
constexpr uint64_t kTimeCheckGrowShare = 16;

/* The batch size above which the worker takes part by default: the
 * crossover measured by tw-bench-internal --handoff on a 2-vCPU KVM
 * guest for ~80 ns per item (a layer check of a connection).  Cold, the
 * worker asleep and woken by a futex (~15 us there): even at 1024 items,
 * 0.63 of the direct time at 4096.  Warm, back to back: ahead from 32. */
constexpr uint64_t kDefaultBatchThreshold = 1024;

} // namespace

Loop::~Loop()
{
    /* Cancelled functions may still use connections: free those after. */
    cancel_inbox();
    if (conns_)
        conns_free(conns_);
    if (timer_ev_)
        event_free(timer_ev_);
    if (wake_ev_)
        event_free(wake_ev_);
    if (timer_fd_ >= 0)
        close(timer_fd_);
    if (poll_fd_ >= 0)
        close(poll_fd_);
    if (wake_fd_ >= 0)
        close(wake_fd_);
    if (own_base_ && base_)
        event_base_free(base_);
}

int Loop::init(tw_loop *self, struct event_base *base, const tw_loop_config &config)
{
    self_ = self;
    clock_ = config.clock;
    clock_userdata_ = config.clock_userdata;
    log_ = config.log;
    log_userdata_ = config.log_userdata;
    budget_ = config.budget_callbacks;
    budget_ns_ = config.budget_ns;
    batch_threshold_ = config.batch_threshold ? config.batch_threshold : kDefaultBatchThreshold;
    if (batch_threshold_ < kDirectMax)
        batch_threshold_ = kDirectMax;
    if (!clock_)
        boot_gap_ = boot_gap();
    now_ = clock_ ? clock_(clock_userdata_) : clock_ns(CLOCK_MONOTONIC);

    tw_wheel_config wc;
    tw_wheel_config_init(&wc);
    wc.tick_ns = config.tick_ns;
    wc.max_timers = config.max_timers;
    int r = wheel_.init(wc, now_);
    if (r < 0)
        return r;
    if (!inbox_.init(config.inbox_capacity))
        return TW_ENOMEM;
    r = open_descriptors();
    return r < 0 ? r : attach(base);
}

/* The wake-up eventfd, the timerfd (built-in clock only) and the epoll
 * descriptor over both. */
int Loop::open_descriptors()
{
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0)
        return fd_error();
    /* With its own clock the loop times itself, absolute on CLOCK_BOOTTIME
     * (see rearm): the base only polls the descriptor, so its own timer
     * settings and clock do not matter.  An injected clock has no kernel
     * counterpart; its loop keeps a libevent timer event (see rearm). */
    if (!clock_) {
        timer_fd_ = timerfd_create(CLOCK_BOOTTIME, TFD_NONBLOCK | TFD_CLOEXEC);
        if (timer_fd_ < 0)
            return fd_error();
    }
    /* One descriptor for a caller that drives the loop by hand: readable
     * while a post waits or the timer descriptor went off. */
    poll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    if (poll_fd_ < 0)
        return fd_error();
    for (int fd : {wake_fd_, timer_fd_}) {
        if (fd < 0)
            continue;
        struct epoll_event ev;
        std::memset(&ev, 0, sizeof(ev));
        ev.events = EPOLLIN;
        ev.data.fd = fd;
        if (epoll_ctl(poll_fd_, EPOLL_CTL_ADD, fd, &ev) < 0)
            return TW_ENOMEM;
    }
    return 0;
}

/* The caller's base, or one of the loop's own, and the loop's events on it. */
int Loop::attach(struct event_base *base)
{
    if (!base) {
        /* libevent ends the process when a new base cannot get the
         * descriptors it needs (the epoll one, a pair for signals): refuse
         * cleanly when fewer are left.  Another thread may take them in
         * between; this is the common case of a process at its limit. */
        if (!descriptors_left(kBaseDescriptors))
            return TW_EMFILE;
        base = event_base_new();
        if (!base)
            return fd_error();
        own_base_ = true;
    }
    base_ = base;
    if (clock_)
        timer_ev_ = event_new(base_, -1, 0, on_timer, this);
    else
        timer_ev_ = event_new(base_, timer_fd_, EV_READ | EV_PERSIST, on_timer, this);
    wake_ev_ = event_new(base_, wake_fd_, EV_READ | EV_PERSIST, on_wake, this);
    if (!timer_ev_ || !wake_ev_ || (!clock_ && event_add(timer_ev_, nullptr) < 0) ||
        event_add(wake_ev_, nullptr) < 0)
        return TW_ENOMEM;
    return 0;
}

/* The clock as read_clock would give it, without its side effects. */
uint64_t Loop::peek_clock() const
{
    return clock_ ? clock_(clock_userdata_) : clock_ns(CLOCK_MONOTONIC) + suspended_;
}

uint64_t Loop::read_clock()
{
    uint64_t t;
    if (clock_) {
        t = clock_(clock_userdata_);
    } else {
        uint64_t mono = clock_ns(CLOCK_MONOTONIC);
        uint64_t gap = clock_ns(CLOCK_BOOTTIME) - mono;
        if (gap > boot_gap_ + kSuspendMinNs && (gap = boot_gap()) > boot_gap_ + kSuspendMinNs) {
            suspended_ += gap - boot_gap_;
            boot_gap_ = gap;
            log(1, "suspend detected: timers that fell due during it fire now");
        } else if (gap < boot_gap_) {
            boot_gap_ = gap;    /* a tighter bound */
        }
        t = mono + suspended_;
    }
    if (t < now_) {
        clock_backwards_++;
        t = now_;
    }
    return t;
}

void Loop::on_timer(int, short, void *arg)
{
    Loop *loop = static_cast<Loop *>(arg);
    loop->wakeups_++;
    loop->timer_expired_ = true;
    loop->turn(true);
    if (loop->free_requested_ && !loop->running_)
        delete loop->self_;
}

void Loop::on_wake(int fd, short, void *arg)
{
    Loop *loop = static_cast<Loop *>(arg);
    loop->drain_fd();
    (void)fd;
    loop->turn(true);
    if (loop->free_requested_ && !loop->running_)
        delete loop->self_;
}

uint64_t Loop::turn(bool catch_up)
{
    uint64_t started = clock_ns(CLOCK_MONOTONIC);
    in_turn_ = true;
    uint64_t fired = 0;
    /* A deadline that passed while this turn ran is served by another pass
     * at once, rather than by a trip through the event base: setting the
     * timer descriptor costs a timerfd_settime and a poll, several microseconds
     * on a virtual machine, which at tens of thousands of wake-ups a second
     * was a third of a busy loop's CPU.  A pass that stopped on a budget
     * does go back to the base, so I/O gets its turn. */
    for (unsigned pass = 0;; pass++) {
        now_ = read_clock();
        turns_++;
        run_inbox();
        if (free_requested_)
            break;
        uint64_t ran = dispatch(pass ? clock_ns(CLOCK_MONOTONIC) : started);
        if (conns_) {
            uint64_t none = conns_after_advance(conns_, now_);
            ran -= none < ran ? none : ran;
        }
        fired += ran;
        uint64_t next;
        if (free_requested_ || wheel_.next_deadline(&next) < 0)
            break;
        if (next <= now_) {
            if (budget_ || budget_ns_)
                budget_stops_++;
            break;
        }
        if (!catch_up || pass + 1 == kCatchUpPasses || stop_.load(std::memory_order_relaxed))
            break;
        uint64_t t = peek_clock();
        /* More passes only while the turn is inside its time budget. */
        if (next > t || (budget_ns_ && !clock_ && clock_ns(CLOCK_MONOTONIC) - started >= budget_ns_))
            break;
        catch_ups_++;
    }
    fired_ += fired;
    in_turn_ = false;
    if (stop_.exchange(false) && running_)
        event_base_loopbreak(base_);
    if (free_requested_) {
        if (running_)
            event_base_loopbreak(base_);
        return fired;
    }
    rearm();
    if (until_idle_ && running_ && idle())
        event_base_loopbreak(base_);
    uint64_t took = clock_ns(CLOCK_MONOTONIC) - started;
    if (took > longest_turn_)
        longest_turn_ = took;
    return fired;
}

/* Fires what is due at now_ within the budgets.  Without a time budget,
 * one budgeted advance.  With one, advances of a chunk of callbacks (and
 * four times as many cascade moves) each, reading the clock between them
 * while timers remain due: the injected clock when there is one (so tests
 * drive the budget), else CLOCK_MONOTONIC against the turn's start.
 * Each chunk counts fully against the callback budget, so a turn moves at
 * most 4 * budget_callbacks timers down the wheel, as one advance would. */
uint64_t Loop::dispatch(uint64_t started)
{
    /* At the clock's last instant every deadline but TW_NEVER has passed:
     * the wheel is taken no further than that, so a timer parked at
     * TW_NEVER stays parked whatever the wheel makes of that instant. */
    const uint64_t until = now_ < TW_NEVER ? now_ : TW_NEVER - 1;
    if (!budget_ns_)
        return wheel_.advance(until, budget_);
    uint64_t start = clock_ ? now_ : started;
    uint64_t left = budget_ ? budget_ : UINT64_MAX, fired = 0;
    uint64_t chunk = kTimeCheckFirst, last = start;
    for (;;) {
        uint64_t step = left < chunk ? left : chunk;
        fired += wheel_.advance(until, step);
        uint64_t next;
        if (free_requested_ || wheel_.next_deadline(&next) < 0 || next > now_)
            return fired;
        left -= step;
        if (!left)
            return fired;
        uint64_t t = clock_ ? clock_(clock_userdata_) : clock_ns(CLOCK_MONOTONIC);
        if (t >= start && t - start >= budget_ns_) {
            budget_time_stops_++;
            return fired;
        }
        if (chunk < kTimeCheckMax && (t < last || t - last < budget_ns_ / kTimeCheckGrowShare))
            chunk *= 2;
        last = t;
    }
}

bool Loop::parallel(size_t n, Worker::Fn fn, void *ctx)
{
    if (!n)
        return false;
    if (n > kDirectMax && n > batch_threshold_ && !in_parallel_ && n <= SIZE_MAX / 2) {
        in_parallel_ = true;
        bool shared = worker_.split(n, fn, ctx);
        in_parallel_ = false;
        if (shared) {
            worker_warned_ = false;
            batches_handoff_++;
            items_handoff_ += n;
            return true;
        }
        if (!worker_warned_)
            log(0, "the worker thread could not be started: large batches run on the loop's "
                   "thread alone");
        worker_warned_ = true;
    }
    batches_direct_++;
    items_direct_ += n;
    fn(ctx, 0, n);
    return false;
}

void Loop::run_inbox()
{
    /* Cleared before draining: a post that finds it set has been seen.
     * Whoever set it writes the eventfd once, now or soon: owed. */
    if (wake_pending_.exchange(false, std::memory_order_acq_rel))
        wake_owed_++;
    uint64_t depth = inbox_.depth();
    if (depth > inbox_high_)
        inbox_high_ = depth;
    Command c;
    uint64_t n = 0, limit = inbox_.capacity();
    while (n < limit && !free_requested_ && inbox_.pop(&c)) {
        n++;
        inbox_run_++;
        switch (c.kind) {
        case Command::kRun:
            c.fn(self_, 0, c.userdata);
            break;
        case Command::kSchedule: {
            tw_timer t;
            if (wheel_.schedule(c.deadline, c.cb, c.userdata, &t) < 0)
                log(0, "a posted schedule failed: no room for another timer");
            break;
        }
        case Command::kCancel:
            wheel_.cancel(c.timer);
            break;
        case Command::kReschedule:
            wheel_.reschedule(c.timer, c.deadline);
            break;
        }
    }
    inbox_.publish();
    /* A read-modify-write, not a load: either it sees a producer that is
     * about to wait, or that producer's own increment comes after it and
     * then sees the cells freed above. */
    if (n && waiters_.fetch_add(0, std::memory_order_acq_rel)) {
        std::lock_guard<std::mutex> lock(room_mutex_);
        room_.notify_all();
    }
    /* A full drain may have left more: come back rather than starve timers. */
    if (n == limit && !free_requested_)
        wake();
}

void Loop::wake()
{
    if (!wake_pending_.exchange(true, std::memory_order_acq_rel)) {
        uint64_t one = 1;
        ssize_t r = write(wake_fd_, &one, sizeof(one));
        (void)r;    /* only fails when the counter is already huge: awake */
    }
}

/*
 * Sets the timer to the earliest deadline, when that changed or the timer
 * went off (a timer descriptor then stays readable until set again).
 *
 * With the built-in clock, loop time is CLOCK_MONOTONIC + suspended_, and
 * CLOCK_BOOTTIME is CLOCK_MONOTONIC + the gap, which grows only by each
 * suspend, as suspended_ does once read_clock has seen it.  So loop time t
 * is BOOTTIME t - suspended_ + gap: set absolute, the descriptor goes off
 * on the deadline to the nanosecond, after a suspend too (a timer that
 * fell due during one fires on resume), and never early, since boot_gap_
 * is never below the true gap.  Each setting is a system call, as
 * libevent's own precise timer makes one per dispatch.
 *
 * An injected clock has no kernel counterpart: its loop gives libevent the
 * delay from now_ in whole microseconds, rounded up.  Simulations drive
 * such loops by hand at millions of turns a second; libevent's event_add
 * keeps that free of system calls.
 */
void Loop::rearm()
{
    uint64_t next;
    if (wheel_.next_deadline(&next) < 0)
        next = TW_NEVER;
    if (next == armed_ && !timer_expired_)
        return;
    armed_ = next;
    timer_expired_ = false;
    rearms_++;
    if (clock_) {
        if (next == TW_NEVER) {
            event_del(timer_ev_);
            return;
        }
        uint64_t delay = next > now_ ? next - now_ : 0;
        uint64_t us = delay / 1000 + (delay % 1000 != 0);
        struct timeval tv;
        tv.tv_sec = time_t(us / 1000000);
        tv.tv_usec = suseconds_t(us % 1000000);
        event_add(timer_ev_, &tv);
        return;
    }
    struct itimerspec its;
    std::memset(&its, 0, sizeof(its));
    if (next != TW_NEVER) {
        /* Due: 1 ns after the epoch has passed at once (0 disarms). */
        uint64_t at = 1;
        if (next > now_) {
            uint64_t d = next - suspended_;
            at = (d < kArmMaxNs ? d : kArmMaxNs) + boot_gap_;
        }
        its.it_value.tv_sec = time_t(at / kNsPerSec);
        its.it_value.tv_nsec = long(at % kNsPerSec);
    }
    timerfd_settime(timer_fd_, TFD_TIMER_ABSTIME, &its, nullptr);
}

int Loop::run(bool until_idle)
{
    if (!own_base_)
        return TW_EINVAL;
    running_ = true;
    until_idle_ = until_idle;
    rearm();
    if (!until_idle || !idle())
        event_base_loop(base_, 0);
    running_ = until_idle_ = false;
    return 0;
}

bool Loop::idle() const
{
    uint64_t next;
    return wheel_.next_deadline(&next) < 0 && inbox_.depth() == 0;
}

int Loop::schedule_periodic(uint64_t first, uint64_t period, bool skip, tw_timer_cb *cb,
                            void *userdata, tw_timer *ret)
{
    int r = wheel_.schedule_periodic(first, period, skip, cb, userdata, ret);
    if (r == 0 && !in_turn_ && first < armed_)
        rearm();
    return r;
}

int Loop::foreach(tw_timer_cb *keep, tw_timer_visit_fn *fn, void *ctx)
{
    int r = wheel_.foreach(keep, fn, ctx);
    if (!in_turn_)
        rearm();
    return r;
}

uint64_t Loop::cancel_all(tw_timer_cb *keep)
{
    uint64_t n = wheel_.cancel_all(keep);
    if (!in_turn_)
        rearm();
    return n;
}

void Loop::stop()
{
    stop_.store(true);
    wake();
}

/* Empties the wake-up descriptor, and settles the writes it held against
 * those owed.  The base's callback always reads (the descriptor polled
 * readable); tw_loop_process reads when a write is owed or may be coming. */
void Loop::drain_fd()
{
    uint64_t count;
    if (read(wake_fd_, &count, sizeof(count)) == sizeof(count))
        wake_owed_ -= int64_t(count);
}

/* A turn by hand reads the eventfd only when a write is owed or may be in
 * flight, not on every call: a simulation makes millions of them, and the
 * read was its only system call.  Each write goes with one setting of
 * wake_pending_ by its writer; run_inbox counts each clearing it sees, so
 * writes_landed - writes_read <= wake_owed_ while the flag is clear, and a
 * write that lands after its clearing is read by a later turn, which its
 * landing wakes. */
uint64_t Loop::process()
{
    if (wake_owed_ > 0 || wake_pending_.load(std::memory_order_acquire))
        drain_fd();
    return turn(false);
}

int Loop::schedule(uint64_t deadline, tw_timer_cb *cb, void *userdata, tw_timer *ret)
{
    int r = wheel_.schedule(deadline, cb, userdata, ret);
    if (r == 0 && !in_turn_ && deadline < armed_)
        rearm();
    return r;
}

/* Any size runs here, on the loop's thread, without allocating once the
 * wheel is warm: arming is the wheel's work alone. */
int Loop::schedule_batch(size_t n, const uint64_t *deadlines, tw_timer_cb *cb,
                         void *const *userdata, tw_timer *ret)
{
    int r = wheel_.schedule_batch(n, deadlines, cb, userdata, ret);
    if (r == 0 && !in_turn_) {
        uint64_t first = TW_NEVER;
        for (size_t k = 0; k < n; k++)
            first = deadlines[k] < first ? deadlines[k] : first;
        if (first < armed_)
            rearm();
    }
    return r;
}

/* Outside a turn, the event follows the earliest deadline at once: when
 * the timer it is armed for leaves or moves, and when one comes earlier. */
int Loop::schedule_slack(uint64_t deadline, uint64_t slack, tw_timer_cb *cb, void *userdata,
                         tw_timer *ret)
{
    int r = wheel_.schedule_slack(deadline, slack, cb, userdata, ret);
    uint64_t filed;
    if (r == 0 && !in_turn_ && wheel_.deadline(*ret, &filed) == 0 && filed < armed_)
        rearm();
    return r;
}

int Loop::cancel(tw_timer timer)
{
    uint64_t old;
    bool was_first = !in_turn_ && wheel_.deadline(timer, &old) == 0 && old <= armed_;
    int r = wheel_.cancel(timer);
    if (r == 0 && was_first)
        rearm();
    return r;
}

int Loop::reschedule(tw_timer timer, uint64_t deadline)
{
    uint64_t old;
    bool was_first = !in_turn_ && wheel_.deadline(timer, &old) == 0 && old <= armed_;
    int r = wheel_.reschedule(timer, deadline);
    if (r == 0 && !in_turn_ && (was_first || deadline < armed_))
        rearm();
    return r;
}

int Loop::post(const Command &command)
{
    if (!inbox_.push(command)) {
        refused_.fetch_add(1, std::memory_order_relaxed);
        return TW_EAGAIN;
    }
    wake();
    return 0;
}

int Loop::post_wait(const Command &command, uint64_t timeout_ns)
{
    if (inbox_.push(command)) {
        wake();
        return 0;
    }
    auto until = std::chrono::steady_clock::now() + std::chrono::nanoseconds(
                     timeout_ns > uint64_t(INT64_MAX) / 2 ? INT64_MAX / 2 : int64_t(timeout_ns));
    std::unique_lock<std::mutex> lock(room_mutex_);
    waiters_.fetch_add(1, std::memory_order_acq_rel);
    bool pushed;
    for (;;) {
        pushed = inbox_.push(command);
        if (pushed || room_.wait_until(lock, until) == std::cv_status::timeout) {
            pushed = pushed || inbox_.push(command);
            break;
        }
    }
    waiters_.fetch_sub(1, std::memory_order_relaxed);
    lock.unlock();
    if (!pushed) {
        refused_.fetch_add(1, std::memory_order_relaxed);
        return TW_ETIMEDOUT;
    }
    wake();
    return 0;
}

void Loop::cancel_inbox()
{
    Command c;
    while (inbox_.pop(&c))
        if (c.kind == Command::kRun)
            c.fn(self_, TW_ECANCELED, c.userdata);
    inbox_.publish();
}

void Loop::stats(tw_loop_stats *ret) const
{
    tw_wheel_stats w;
    w.struct_size = sizeof(w);
    wheel_.stats(&w);
    tw_loop_stats s;
    std::memset(&s, 0, sizeof(s));
    s.now_ns = now_;
    s.turns = turns_;
    s.wakeups = wakeups_;
    s.rearms = rearms_;
    s.fired = fired_;
    s.budget_stops = budget_stops_;
    s.longest_turn_ns = longest_turn_;
    s.late_p50_ns = w.late_p50_ns;
    s.late_p99_ns = w.late_p99_ns;
    s.late_max_ns = w.late_max_ns;
    s.inbox_depth = inbox_.depth();
    s.inbox_high_water = inbox_high_ > s.inbox_depth ? inbox_high_ : s.inbox_depth;
    s.inbox_refused = refused_.load(std::memory_order_relaxed);
    s.inbox_run = inbox_run_;
    s.clock_backwards = clock_backwards_;
    s.suspend_ns = suspended_;
    s.budget_time_stops = budget_time_stops_;
    s.batches_direct = batches_direct_;
    s.batches_handoff = batches_handoff_;
    s.items_direct = items_direct_;
    s.items_handoff = items_handoff_;
    s.catch_ups = catch_ups_;
    copy_out(s, ret);
}

} // namespace tw
