/*
 * A reference model of the wheel's contract and a harness that drives a
 * real wheel and the model with the same operations, checking every answer
 * and every callback against the model.  The randomized model test feeds it
 * from a seeded generator, the fuzzer from its input bytes.
 *
 * The model is written from tw_wheel_advance(3) and tickwheel(3), not from
 * the code: two ordered sets of armed timers (the ones of the open
 * advance's second pass, and all others), keyed by (deadline, arming
 * sequence).  An advance to T first fires the timers that were due at T
 * when it began, then the ones armed meanwhile with a deadline <= T (by
 * those callbacks, or between budgeted calls); what the callbacks of that
 * second pass arm waits for the next advance.  A call finds an advance
 * stopped by a budget, finishes it at its own time, then runs its own.
 * Every fire must be the model's next; a budgeted call may stop early only
 * inside a first pass (moving timers down the wheel is budgeted too).
 *
 * The generator covers what the contract admits: ticks from 1 us to 1 s
 * and not powers of two, start times and advances up to 2^62 and beyond,
 * deadlines in the past, at now, at TW_NEVER - 1 and TW_NEVER, slack and
 * its reschedules, batches, budgets down to one callback (stops inside
 * cascades), callbacks that arm, re-arm themselves at now, cancel,
 * reschedule and query, handles of another wheel, and freeing the wheel
 * from a callback.
 */
#ifndef TW_TEST_WHEEL_MODEL_HPP
#define TW_TEST_WHEEL_MODEL_HPP

#include <cstdint>
#include <cstdio>
#include <map>
#include <set>
#include <tuple>
#include <vector>

#include "tickwheel.h"

namespace model {

/* Where the harness's choices come from: draw(n) is uniform in [0, n) for
 * n > 0 (any value for n = 0); done() ends a run. */
struct Source {
    virtual ~Source() = default;
    virtual uint64_t draw(uint64_t n) = 0;
    virtual bool done() const { return false; }
};

/* How a mismatch is reported: the harness stops at the first. */
struct Report {
    virtual ~Report() = default;
    virtual void mismatch(const char *what, uint64_t step) = 0;
};

class Harness {
public:
    Harness(Source &src, Report &rep) : src_(src), rep_(rep) {}
    ~Harness()
    {
        if (wheel_)
            tw_wheel_free(wheel_);
        if (other_)
            tw_wheel_free(other_);
    }

    /* Makes the wheels from choices of the source. */
    bool start()
    {
        static const uint64_t ticks[] = {TW_TICK_MIN_NS, 7777, TW_TICK_DEFAULT_NS, 10000000,
                                         999999937, TW_TICK_MAX_NS, 4096, 1000003};
        tick_ = ticks[src_.draw(sizeof(ticks) / sizeof(ticks[0]))];
        switch (src_.draw(4)) {
        case 0: now_ = 0; break;
        case 1: now_ = src_.draw(UINT64_C(1) << 40); break;
        case 2: now_ = (UINT64_C(1) << 62) - src_.draw(UINT64_C(1) << 40); break;
        default: now_ = src_.draw(0); break;
        }
        if (now_ >= TW_NEVER - 1)
            now_ = TW_NEVER - 2;
        tw_wheel_config c;
        tw_wheel_config_init(&c);
        c.tick_ns = tick_;
        c.initial_timers = uint32_t(src_.draw(3) * 100);
        if (tw_wheel_new(&c, now_, &wheel_) || tw_wheel_new(nullptr, 0, &other_))
            return mismatch("tw_wheel_new");
        /* A few timers on the other wheel, whose handles this one must refuse. */
        for (int i = 0; i < 8; i++) {
            tw_timer t;
            if ((calls_++, tw_wheel_schedule(other_, 1000 + uint64_t(i), on_other, this, &t)))
                return mismatch("schedule on the other wheel");
            foreign_.push_back(t);
        }
        return true;
    }

    /* One top-level operation; false after a mismatch or when the wheel
     * was freed. */
    bool step()
    {
        step_++;
        if (failed_ || !wheel_)
            return false;
        uint64_t op = src_.draw(100);
        if (op < 30)
            return arm_one(false);
        if (op < 34)
            return arm_batch();
        if (op < 44)
            return cancel_one(false);
        if (op < 46)
            return cancel_batch();
        if (op < 56)
            return reschedule_one(nullptr);
        if (op < 60)
            return query_one();
        if (op < 64)
            return query_next();
        if (op < 66)
            return foreign_handle();
        if (op < 67)
            return src_.draw(20) || check_verify();
        if (op < 68)
            return census();
        return advance();
    }

    /* Fires everything left: an advance far enough with no budget. */
    bool drain()
    {
        if (failed_ || !wheel_)
            return !failed_;
        uint64_t t = now_ > TW_NEVER - 1 - (UINT64_C(1) << 40) ? TW_NEVER - 1 : now_ + (UINT64_C(1) << 40);
        for (int i = 0; i < 4 && !failed_; i++)
            if (!call_advance(i == 3 ? TW_NEVER - 1 : t, 0))
                return false;
        return !wheel_ || check_verify();
    }

    /* Frees the wheel from inside a callback of the next advance, if one
     * fires; no callback may follow. */
    bool free_from_callback()
    {
        if (failed_ || !wheel_)
            return !failed_;
        free_in_callback_ = true;
        return advance_to(TW_NEVER - 1, 0);
    }

    uint64_t steps() const { return step_; }
    uint64_t calls() const { return calls_; }
    uint64_t fires() const { return fires_; }
    bool failed() const { return failed_; }

private:
    enum Phase { kIdle, kPassOne, kPassTwo };
    typedef std::tuple<uint64_t, uint64_t, tw_timer> Key;   /* deadline, sequence, handle */
    struct Timer {
        uint64_t deadline;      /* where it is filed (the instant slack chose) */
        uint64_t seq;
        uint64_t slack;
        uint64_t period;        /* 0: not periodic */
        bool skip;              /* TW_PERIODIC_SKIP */
        bool next;              /* in the open advance's second pass */
        bool running;
        size_t at;              /* its place in live_ */
    };

    bool mismatch(const char *what)
    {
        if (!failed_)
            rep_.mismatch(what, step_);
        failed_ = true;
        return false;
    }

    uint64_t pick_deadline()
    {
        uint64_t r = src_.draw(16);
        switch (r) {
        case 0: return now_ > 0 ? now_ - src_.draw(now_ < 1000000 ? now_ + 1 : 1000000) : 0;
        case 1: return now_;
        case 2: return TW_NEVER;
        case 3: return TW_NEVER - 1;
        case 4: return src_.draw(0);
        case 5:
            if (!live_.empty())         /* a twin of a live deadline */
                return timers_[live_[src_.draw(live_.size())]].deadline;
            return now_ + 1;
        case 6: {
            unsigned bits = unsigned(src_.draw(64));
            uint64_t d = now_ + src_.draw(UINT64_C(1) << bits);
            return d < now_ ? TW_NEVER - 1 : d;
        }
        case 7: return now_ - now_ % tick_ + tick_ * src_.draw(3);   /* tick edges */
        default: {
            uint64_t d = now_ + src_.draw(tick_ * 70);
            return d < now_ ? TW_NEVER - 1 : d;
        }
        }
    }

    uint64_t pick_time()
    {
        switch (src_.draw(12)) {
        case 0: return now_;
        case 1: return now_ > 5 ? now_ - src_.draw(5) : now_;      /* backwards: clamped */
        case 2: {
            unsigned bits = unsigned(src_.draw(63));
            uint64_t t = now_ + src_.draw(UINT64_C(1) << bits);
            return t < now_ ? TW_NEVER - 1 : t;
        }
        case 3: return UINT64_C(1) << 62;
        case 4:
            if (!timers_.empty()) {     /* exactly at a live deadline */
                uint64_t d = std::get<0>(normal_.empty() ? Key(now_, 0, 0) : *normal_.begin());
                return d;
            }
            return now_;
        case 5: return TW_NEVER - 1 - src_.draw(3);
        default: {
            uint64_t t = now_ + src_.draw(tick_ * 40);
            return t < now_ ? TW_NEVER - 1 : t;
        }
        }
    }

    /* A live handle (or the running one), or 0.  Picked by position, not
     * by value: handles differ from run to run, choices must not. */
    tw_timer pick_live()
    {
        if (live_.empty())
            return 0;
        return live_[src_.draw(live_.size())];
    }

    /* The model's side of arming timer h at d. */
    void file(tw_timer h, uint64_t d, uint64_t slack, bool running, uint64_t period = 0,
              bool skip = false)
    {
        Timer t;
        t.deadline = d;
        t.seq = seq_++;
        t.slack = slack;
        t.period = period;
        t.skip = skip;
        t.running = false;
        t.next = d != TW_NEVER && phase_ == kPassOne && d <= pass_time_;
        t.at = live_.size();
        (void)running;
        live_.push_back(h);
        timers_[h] = t;
        if (d != TW_NEVER)
            (t.next ? next_ : normal_).insert(Key(d, t.seq, h));
    }

    void unfile(tw_timer h)
    {
        auto it = timers_.find(h);
        if (it == timers_.end())
            return;
        const Timer &t = it->second;
        if (!t.running && t.deadline != TW_NEVER)
            (t.next ? next_ : normal_).erase(Key(t.deadline, t.seq, h));
        tw_timer moved = live_.back();
        live_[t.at] = moved;
        timers_[moved].at = t.at;
        live_.pop_back();
        timers_.erase(it);
    }

    /* The instant a timer asked for d with slack s may be filed at. */
    bool slack_ok(uint64_t asked, uint64_t slack, uint64_t got)
    {
        if (!slack || asked == TW_NEVER || asked <= now_)
            return got == asked;
        uint64_t last = slack > TW_NEVER - 1 - asked ? TW_NEVER - 1 : asked + slack;
        return got >= asked && got <= last;
    }

    bool arm_one(bool in_callback)
    {
        uint64_t d = pick_deadline();
        tw_timer h = 0;
        uint64_t kind = src_.draw(6);
        int r;
        uint64_t slack = 0;
        if (kind == 2)
            return arm_periodic();
        if (kind == 0) {
            slack = src_.draw(4) == 0 ? src_.draw(0) : src_.draw(tick_ * 8);
            r = (calls_++, tw_wheel_schedule_slack(wheel_, d, slack, on_fire, this, &h));
        } else if (kind == 1) {
            uint64_t delay = d - now_;
            if (d < now_)
                delay = 0;
            r = (calls_++, tw_wheel_schedule_relative(wheel_, delay, on_fire, this, &h));
            d = delay > TW_NEVER - now_ ? TW_NEVER : now_ + delay;
        } else {
            r = (calls_++, tw_wheel_schedule(wheel_, d, on_fire, this, &h));
        }
        if (r != 0 || h == 0)
            return mismatch("schedule refused");
        uint64_t got = d;
        if (slack) {
            if (d == TW_NEVER) {
                got = TW_NEVER;
            } else if ((calls_++, tw_wheel_deadline(wheel_, h, &got)) != 0) {
                return mismatch("deadline of a fresh slack timer");
            }
            if (!slack_ok(d, slack, got)) {
                std::fprintf(stderr, "# asked %llu slack %llu got %llu now %llu\n",
                             (unsigned long long)d, (unsigned long long)slack,
                             (unsigned long long)got, (unsigned long long)now_);
                return mismatch("slack instant outside its window");
            }
        }
        if (timers_.count(h))
            return mismatch("a live handle was handed out again");
        file(h, got, slack, false);
        (void)in_callback;
        return true;
    }

    /* The next deadline of a periodic timer that fired at `fired`, as
     * tw_wheel_schedule_periodic(3) states it. */
    uint64_t next_period(const Timer &t, uint64_t fired) const
    {
        uint64_t k = 1;
        if (t.skip && now_ >= fired)
            k = (now_ - fired) / t.period + 1;
        __extension__ unsigned __int128 n = (unsigned __int128)fired + (unsigned __int128)k * t.period;
        return n >= TW_NEVER ? TW_NEVER : uint64_t(n);
    }

    bool arm_periodic()
    {
        uint64_t first = pick_deadline();
        uint64_t period;
        switch (src_.draw(6)) {
        case 0: period = 1 + src_.draw(tick_ * 3); break;
        case 1: period = 1 + src_.draw(UINT64_C(1) << unsigned(src_.draw(62))); break;
        case 2: period = src_.draw(9) == 0 ? 0 : TW_NEVER >> 1; break;      /* refused */
        default: period = 1 + src_.draw(tick_ * 200); break;
        }
        bool skip = src_.draw(2);
        tw_timer h = 0;
        int r = (calls_++, tw_wheel_schedule_periodic(wheel_, first, period,
                                                      skip ? TW_PERIODIC_SKIP : TW_PERIODIC_CATCH_UP,
                                                      on_fire, this, &h));
        if (period == 0 || period >= TW_NEVER >> 1)
            return (r == TW_EINVAL && h == 0) || mismatch("a bad period was accepted");
        if (r != 0 || h == 0)
            return mismatch("schedule_periodic refused");
        uint64_t got = 0;
        if ((calls_++, tw_wheel_period(wheel_, h, &got)) != 0 || got != period)
            return mismatch("tw_wheel_period");
        if (timers_.count(h))
            return mismatch("a live handle was handed out again");
        file(h, first, 0, false, period, skip);
        return true;
    }

    /* tw_wheel_count and a walk agree with the model; now and then a
     * cancel of everything. */
    bool census()
    {
        size_t armed = 0;
        for (const auto &kv : timers_)
            armed += !kv.second.running;
        if ((calls_++, tw_wheel_count(wheel_)) != armed)
            return mismatch("tw_wheel_count");
        struct Walk {
            Harness *h;
            size_t seen;
            bool bad;
        } walk = {this, 0, false};
        auto visit = [](tw_timer t, uint64_t d, void *ud, void *ctx) -> int {
            Walk *w = static_cast<Walk *>(ctx);
            auto it = w->h->timers_.find(t);
            if (ud != w->h || it == w->h->timers_.end() || it->second.running ||
                it->second.deadline != d)
                w->bad = true;
            w->seen++;
            return 0;
        };
        if ((calls_++, tw_wheel_foreach(wheel_, visit, &walk)) != 0 || walk.bad || walk.seen != armed)
            return mismatch("tw_wheel_foreach");
        if (src_.draw(8))
            return true;
        size_t n = 0;
        if ((calls_++, tw_wheel_cancel_all(wheel_, &n)) != 0 || n != armed)
            return mismatch("tw_wheel_cancel_all");
        std::vector<tw_timer> gone;
        for (const auto &kv : timers_)
            if (!kv.second.running)
                gone.push_back(kv.first);
        for (tw_timer h : gone) {
            unfile(h);
            remember_dead(h);
        }
        return true;
    }

    bool arm_batch()
    {
        size_t n = size_t(src_.draw(src_.draw(4) == 0 ? 200 : 9));
        std::vector<uint64_t> ds(n);
        std::vector<tw_timer> hs(n + 1, 0);
        for (size_t k = 0; k < n; k++)
            ds[k] = src_.draw(3) == 0 && k ? ds[k - 1] : pick_deadline();
        std::vector<void *> uds(n, this);
        if ((calls_++, tw_wheel_schedule_batch(wheel_, n, ds.data(), on_fire, uds.data(), hs.data())) != 0)
            return mismatch("schedule_batch refused");
        for (size_t k = 0; k < n; k++) {
            if (!hs[k] || timers_.count(hs[k]))
                return mismatch("batch handle");
            file(hs[k], ds[k], 0, false);
        }
        return true;
    }

    bool cancel_one(bool in_callback)
    {
        tw_timer h = src_.draw(5) == 0 && !dead_.empty() ? dead_[src_.draw(dead_.size())] : pick_live();
        if (!h)
            return true;
        int want = 0;
        auto it = timers_.find(h);
        if (it == timers_.end() || it->second.running)
            want = TW_ENOENT;
        int r = (calls_++, tw_wheel_cancel(wheel_, h));
        if (r != want)
            return mismatch("cancel");
        if (!r) {
            unfile(h);
            remember_dead(h);
        }
        (void)in_callback;
        return true;
    }

    bool cancel_batch()
    {
        std::vector<tw_timer> hs;
        size_t n = size_t(src_.draw(6));
        size_t want = 0;
        std::set<tw_timer> seen;
        std::vector<tw_timer> order;
        for (size_t k = 0; k < n; k++) {
            tw_timer h = src_.draw(3) == 0 && !dead_.empty() ? dead_[src_.draw(dead_.size())]
                                                             : pick_live();
            if (!h)
                continue;
            hs.push_back(h);
            auto it = timers_.find(h);
            if (it != timers_.end() && !it->second.running && seen.insert(h).second) {
                want++;
                order.push_back(h);
            }
        }
        size_t got = 0;
        if ((calls_++, tw_wheel_cancel_batch(wheel_, hs.size(), hs.data(), &got)) != 0 || got != want)
            return mismatch("cancel_batch");
        for (tw_timer h : order) {
            unfile(h);
            remember_dead(h);
        }
        return true;
    }

    /* Reschedules a random live timer, or `self` (the running one). */
    bool reschedule_one(const tw_timer *self)
    {
        tw_timer h = self ? *self : (src_.draw(6) == 0 && !dead_.empty() ? dead_[src_.draw(dead_.size())]
                                                                       : pick_live());
        if (!h)
            return true;
        uint64_t d = self && src_.draw(2) ? now_ : pick_deadline();
        auto it = timers_.find(h);
        int r = (calls_++, tw_wheel_reschedule(wheel_, h, d));
        if (it == timers_.end())
            return r == TW_ENOENT || mismatch("reschedule of a dead handle");
        if (r != 0)
            return mismatch("reschedule refused");
        uint64_t slack = it->second.slack;
        uint64_t period = it->second.period;
        bool skip = it->second.skip;
        uint64_t got = d;
        if (slack && d != TW_NEVER) {
            if ((calls_++, tw_wheel_deadline(wheel_, h, &got)) != 0)
                return mismatch("deadline after a slack reschedule");
            if (!slack_ok(d, slack, got))
                return mismatch("rescheduled slack instant outside its window");
        }
        unfile(h);
        file(h, got, slack, false, period, skip);
        return true;
    }

    bool query_one()
    {
        tw_timer h = src_.draw(4) == 0 && !dead_.empty() ? dead_[src_.draw(dead_.size())] : pick_live();
        if (!h)
            return true;
        uint64_t d = 0;
        int r = (calls_++, tw_wheel_deadline(wheel_, h, &d));
        auto it = timers_.find(h);
        if (it == timers_.end() || it->second.running)
            return r == TW_ENOENT || mismatch("deadline of a dead or running timer");
        if (r != 0 || d != it->second.deadline)
            return mismatch("deadline of a live timer");
        return true;
    }

    /* Never later than the earliest armed deadline; TW_ENOENT exactly when
     * nothing but parked timers is armed. */
    bool query_next()
    {
        uint64_t d = 0;
        int r = (calls_++, tw_wheel_next_deadline(wheel_, &d));
        bool any = !normal_.empty() || !next_.empty();
        if (!any)
            return r == TW_ENOENT || mismatch("next deadline of a wheel with nothing armed");
        uint64_t truth = TW_NEVER;
        if (!normal_.empty())
            truth = std::get<0>(*normal_.begin());
        if (!next_.empty() && std::get<0>(*next_.begin()) < truth)
            truth = std::get<0>(*next_.begin());
        if (r != 0)
            return mismatch("next deadline missing");
        if (d > truth)
            return mismatch("next deadline later than the earliest timer");
        return true;
    }

    bool foreign_handle()
    {
        tw_timer h = foreign_[src_.draw(foreign_.size())];
        uint64_t d;
        if ((calls_++, tw_wheel_cancel(wheel_, h)) != TW_ENOENT || (calls_++, tw_wheel_reschedule(wheel_, h, now_)) != TW_ENOENT ||
            (calls_++, tw_wheel_deadline(wheel_, h, &d)) != TW_ENOENT)
            return mismatch("a handle of another wheel was accepted");
        tw_timer mine = pick_live();
        if (mine && ((calls_++, tw_wheel_cancel(other_, mine)) != TW_ENOENT ||
                     (calls_++, tw_wheel_deadline(other_, mine, &d)) != TW_ENOENT))
            return mismatch("another wheel accepted this wheel's handle");
        return true;
    }

    bool check_verify()
    {
        if ((calls_++, tw_wheel_verify(wheel_)) != 0)
            return mismatch("tw_wheel_verify");
        return true;
    }

    bool advance()
    {
        static const uint32_t budgets[] = {0, 0, 0, 1, 1, 2, 3, 7, 64};
        uint32_t budget = budgets[src_.draw(sizeof(budgets) / sizeof(budgets[0]))];
        return advance_to(pick_time(), budget);
    }

    bool advance_to(uint64_t t, uint32_t budget) { return call_advance(t, budget); }

    /* Moves the model's phase on while its pass has nothing left; starts
     * the call's own advance once the one it found open is done. */
    void settle()
    {
        for (;;) {
            if (phase_ == kPassOne &&
                (normal_.empty() || std::get<0>(*normal_.begin()) > pass_time_)) {
                phase_ = kPassTwo;
                continue;
            }
            if (phase_ == kPassTwo && next_.empty()) {
                phase_ = kIdle;
                continue;
            }
            if (phase_ == kIdle && in_call_ && !own_started_) {
                own_started_ = true;
                phase_ = kPassOne;
                pass_time_ = now_;
                continue;
            }
            return;
        }
    }

    bool call_advance(uint64_t t, uint32_t budget)
    {
        if (t > now_)
            now_ = t;
        in_call_ = true;
        own_started_ = false;
        settle();
        call_fired_ = 0;
        int r = budget ? (calls_++, tw_wheel_advance_max(wheel_, t, budget)) : (calls_++, tw_wheel_advance(wheel_, t));
        in_call_ = false;
        if (freed_) {
            wheel_ = nullptr;
            return !failed_;
        }
        if (failed_)
            return false;
        if (r < 0 || uint64_t(r) != call_fired_)
            return mismatch("advance's count differs from the callbacks run");
        if (budget && uint64_t(r) > budget)
            return mismatch("advance ran more callbacks than its budget");
        if (tw_wheel_now(wheel_) != now_)
            return mismatch("tw_wheel_now");
        in_call_ = true;
        settle();
        in_call_ = false;
        if (phase_ != kIdle) {
            if (!budget) {
                std::fprintf(stderr, "# phase %d pass time %llu now %llu tick %llu fired %d; "
                             "first normal %llu seq %llu, next %zu\n", int(phase_),
                             (unsigned long long)pass_time_, (unsigned long long)now_,
                             (unsigned long long)tick_, r,
                             normal_.empty() ? 0ull : (unsigned long long)std::get<0>(*normal_.begin()),
                             normal_.empty() ? 0ull : (unsigned long long)std::get<1>(*normal_.begin()),
                             next_.size());
                uint64_t nd = 0;
                int q = (calls_++, tw_wheel_next_deadline(wheel_, &nd));
                tw_timer h = std::get<2>(*(normal_.empty() ? next_ : normal_).begin());
                uint64_t hd = 0;
                int hq = (calls_++, tw_wheel_deadline(wheel_, h, &hd));
                std::fprintf(stderr, "# wheel next %d %llu, verify %d, first %d %llu\n", q,
                             (unsigned long long)nd, (calls_++, tw_wheel_verify(wheel_)), hq, (unsigned long long)hd);
                return mismatch("an advance without a budget left due timers");
            }
            if (phase_ == kPassTwo && uint64_t(r) < budget)
                return mismatch("a second pass stopped before its budget");
            /* A stop leaves the wheel between two passes or inside one:
             * where its invariants are easiest to break. */
            return check_verify();
        }
        return true;
    }

    static void on_other(tw_timer, uint64_t, void *) {}

    static void on_fire(tw_timer timer, uint64_t deadline_ns, void *userdata)
    {
        static_cast<Harness *>(userdata)->fired(timer, deadline_ns);
    }

    void fired(tw_timer timer, uint64_t deadline_ns)
    {
        if (failed_)
            return;
        if (freed_ || !in_call_) {
            mismatch("a callback after the wheel was freed, or outside an advance");
            return;
        }
        settle();
        const std::set<Key> &pass = phase_ == kPassOne ? normal_ : next_;
        if (phase_ == kIdle || pass.empty()) {
            mismatch("a timer fired that the model has nothing due for");
            return;
        }
        Key want = *pass.begin();
        if (phase_ == kPassOne && std::get<0>(want) > pass_time_) {
            mismatch("a timer fired before its deadline");
            return;
        }
        if (std::get<2>(want) != timer) {
            auto got = timers_.find(timer);
            if (got != timers_.end())
                std::fprintf(stderr,
                             "# phase %d pass time %llu now %llu tick %llu: wanted %llx (%llu, seq %llu), "
                             "got %llx (%llu, seq %llu, %s, %s)\n",
                             int(phase_), (unsigned long long)pass_time_, (unsigned long long)now_,
                             (unsigned long long)tick_, (unsigned long long)std::get<2>(want),
                             (unsigned long long)std::get<0>(want), (unsigned long long)std::get<1>(want),
                             (unsigned long long)timer, (unsigned long long)got->second.deadline,
                             (unsigned long long)got->second.seq, got->second.next ? "next" : "normal",
                             got->second.running ? "running" : "armed");
            mismatch(timers_.count(timer) ? "a timer fired out of order" : "an unknown timer fired");
            return;
        }
        if (deadline_ns != std::get<0>(want) || deadline_ns > now_) {
            mismatch("a callback was told the wrong deadline");
            return;
        }
        Timer &t = timers_[timer];
        (t.next ? next_ : normal_).erase(want);
        t.running = true;
        uint64_t period = t.period;
        bool skip = t.skip;
        if (period) {
            /* Re-armed before its callback, as a fresh arming. */
            uint64_t next = next_period(t, deadline_ns);
            unfile(timer);
            file(timer, next, 0, false, period, skip);
        }
        call_fired_++;
        fires_++;
        if (free_in_callback_) {
            free_in_callback_ = false;
            tw_wheel_free(wheel_);
            freed_ = true;
            return;
        }
        /* What a callback may do: anything but advance. */
        if ((calls_++, tw_wheel_advance(wheel_, now_)) != TW_EBUSY) {
            mismatch("an advance from a callback was not refused");
            return;
        }
        tw_timer self = timer;
        uint64_t d = 0;
        (void)deadline_ns;
        if (period) {
            if ((calls_++, tw_wheel_deadline(wheel_, timer, &d)) != 0 || d != timers_[timer].deadline) {
                mismatch("a periodic timer's next deadline, from its callback");
                return;
            }
        } else if ((calls_++, tw_wheel_deadline(wheel_, timer, &d)) != TW_ENOENT ||
                   (calls_++, tw_wheel_cancel(wheel_, timer)) != TW_ENOENT) {
            mismatch("the running timer answered as armed");
            return;
        }
        unsigned ops = unsigned(src_.draw(4));
        bool rearmed = false;
        for (unsigned k = 0; k < ops && !failed_; k++) {
            switch (src_.draw(8)) {
            case 0: case 1: arm_one(true); break;
            case 2: cancel_one(true); break;
            case 3: reschedule_one(nullptr); break;
            case 4: query_next(); break;
            case 5: query_one(); break;
            default:
                if (!rearmed && timers_.count(self) && (timers_[self].running || period)) {
                    reschedule_one(&self);
                    rearmed = true;
                }
                break;
            }
        }
        auto it = timers_.find(self);
        if (it != timers_.end() && it->second.running) {
            unfile(self);
            remember_dead(self);
        }
    }

    void remember_dead(tw_timer h)
    {
        if (dead_.size() < 64)
            dead_.push_back(h);
        else
            dead_[src_.draw(64)] = h;
    }

    Source &src_;
    Report &rep_;
    tw_wheel *wheel_ = nullptr, *other_ = nullptr;
    uint64_t tick_ = 0, now_ = 0, seq_ = 0, step_ = 0, fires_ = 0, calls_ = 0;
    std::map<tw_timer, Timer> timers_;
    std::vector<tw_timer> live_;
    std::set<Key> normal_, next_;
    std::vector<tw_timer> dead_, foreign_;
    Phase phase_ = kIdle;
    uint64_t pass_time_ = 0;
    uint64_t call_fired_ = 0;
    bool in_call_ = false, own_started_ = false;
    bool failed_ = false, freed_ = false, free_in_callback_ = false;
};

} // namespace model

#endif
