/*
 * The wheel, as wheel.hpp lays it out: setting up, the lists (append,
 * remove, their cached minima and order), arming one timer, a batch, slack
 * and periodic timers, cancelling, rescheduling, the queries and the walks.
 * The advance is in advance.cpp, the checker and statistics in verify.cpp.
 *
 * Uses: lib/pool (entries), lib/simd (the list kernel of batches),
 * lib/common; nothing above the wheel.
 */
#include "wheel/wheel.hpp"
#include "wheel/lists.hpp"
#include "common/grow.hpp"
#include "common/clock.hpp"

#include <sys/random.h>

#include <cstdlib>
#include <cstring>
#include <initializer_list>

namespace tw {

namespace {

/* A key for a wheel's handles: random when the kernel gives it, else
 * distinct enough (the wheel's address and the time) to tell wheels apart. */
uint64_t handle_key(const void *wheel)
{
    uint64_t key;
    if (getrandom(&key, sizeof(key), GRND_NONBLOCK) == ssize_t(sizeof(key)))
        return key;
    return uint64_t(reinterpret_cast<uintptr_t>(wheel)) * UINT64_C(0x9e3779b97f4a7c15) ^
           clock_ns(CLOCK_MONOTONIC);
}

} // namespace

Wheel::~Wheel()
{
    std::free(round_);
    std::free(scratch_);
    std::free(period_);
    std::free(slack_);
}

int Wheel::init(const tw_wheel_config &config, uint64_t now_ns)
{
    if (config.tick_ns < TW_TICK_MIN_NS || config.tick_ns > TW_TICK_MAX_NS)
        return TW_EINVAL;
    tick_.init(config.tick_ns);
    /* The lists' sentinels take the pool's first indices. */
    if (!pool_.init(kListCount, config.max_timers, config.initial_timers, handle_key(this)))
        return TW_ENOMEM;
    for (uint32_t list = 0; list < kListCount; list++) {
        Entry &s = pool_.at(list);
        s.next = s.prev = list;
        s.where = uint16_t(list);
    }
    round_cap_ = 256;
    round_ = static_cast<Due *>(std::malloc(round_cap_ * sizeof(Due)));
    if (!round_)
        return TW_ENOMEM;
    now_ns_ = now_ns;
    cur_ = tick_.divide(now_ns);
    return 0;
}

/* Empties a list whose members the caller has taken. */
void Wheel::clear(uint32_t list)
{
    Entry &s = pool_.at(list);
    s.next = s.prev = list;
    note_removed(list, 0, true);
}

bool Wheel::in_order(uint32_t list) const
{
    if (list < kDueList)
        return in_order_[level_of_list(list)] & slot_bit(list);
    return flat(list).in_order;
}

/* The first live deadline of a list: its minimum when it is in order. */
uint64_t Wheel::first_deadline(uint32_t list) const
{
    return empty(list) ? TW_NEVER : pool_.at(pool_.at(list).next).deadline;
}

uint64_t Wheel::list_min(uint32_t list) const
{
    uint64_t m = TW_NEVER;
    for (uint32_t i = pool_.at(list).next; i != list; i = pool_.at(i).next)
        m = min64(m, pool_.at(i).deadline);
    return m;
}

/* True when the list holds a deadline <= t. */
bool Wheel::list_has_due(uint32_t list, uint64_t t) const
{
    for (uint32_t i = pool_.at(list).next; i != list; i = pool_.at(i).next)
        if (pool_.at(i).deadline <= t)
            return true;
    return false;
}

/* Recomputes a slot's lost minimum when the slot is small enough that a
 * scan is cheap; a large slot keeps answering its start (never late). */
bool Wheel::rescan_min(uint32_t list) const
{
    uint64_t m = TW_NEVER;
    unsigned n = 0;
    for (uint32_t i = pool_.at(list).next; i != list; i = pool_.at(i).next) {
        if (++n > kRescanMax)
            return false;
        m = min64(m, pool_.at(i).deadline);
    }
    slot_min_[list] = m;
    min_known_[level_of_list(list)] |= slot_bit(list);
    return true;
}

/* Inlined into each schedule: as a call, it cost a schedule a sixth more
 * instructions (callgrind, 100k timers). */
__attribute__((always_inline)) inline uint32_t Wheel::arm(uint64_t deadline, uint16_t cb,
                                                          void *userdata)
{
    uint32_t i = pool_.alloc();
    if (!i)
        return 0;
    Entry &e = pool_.at(i);
    e.deadline = deadline;
    e.userdata = userdata;
    e.cb = cb;
    e.where = 0;
    append(arm_list(deadline), i);
    scheduled_++;
    return i;
}

__attribute__((always_inline)) inline int Wheel::arm_one(uint64_t deadline, tw_timer_cb *cb,
                                                         void *userdata, tw_timer *ret)
{
    int k = callbacks_.use(cb);
    if (k < 0)
        return k;
    uint32_t i = arm(deadline, uint16_t(k), userdata);
    if (!i) {
        callbacks_.unuse(uint16_t(k));
        return TW_ENOMEM;
    }
    *ret = handle(i, pool_.at(i));
    return 0;
}

int Wheel::schedule(uint64_t deadline, tw_timer_cb *cb, void *userdata, tw_timer *ret)
{
    return arm_one(deadline, cb, userdata, ret);
}

uint64_t Wheel::slack_instant(uint64_t deadline, uint32_t slack) const
{
    if (!slack || deadline == TW_NEVER || deadline <= now_ns_)
        return deadline;
    uint64_t last = window_end(deadline, slack);
    /* deadline > now_ns_ >= 0, so deadline - 1 does not wrap. */
    return last == deadline ? deadline : roundest_in(deadline, last);
}

/* Room in the side arrays for any entry the pool may hand out next. */
bool Wheel::grow_side(uint32_t need)
{
    return grow(&period_, &period_cap_, need, 64) && grow(&slack_, &slack_cap_, need, 64);
}

int Wheel::schedule_slack(uint64_t deadline, uint64_t slack, tw_timer_cb *cb, void *userdata,
                          tw_timer *ret)
{
    uint32_t s = clamp_u32(slack);
    if (!s)
        return arm_one(deadline, cb, userdata, ret);
    if (!pool_.reserve(1) || !grow_side(pool_.fresh() + 1))
        return TW_ENOMEM;
    int r = arm_one(slack_instant(deadline, s), cb, userdata, ret);
    if (r == 0) {
        uint32_t i = uint32_t(*ret);
        pool_.at(i).where |= Entry::kSlack;
        slack_[i] = s;
    }
    return r;
}

int Wheel::schedule_periodic(uint64_t first, uint64_t period, bool skip, tw_timer_cb *cb,
                             void *userdata, tw_timer *ret)
{
    if (!period || period >= TW_NEVER >> 1)
        return TW_EINVAL;
    if (!pool_.reserve(1) || !grow_side(pool_.fresh() + 1))
        return TW_ENOMEM;
    int r = arm_one(first, cb, userdata, ret);
    if (r == 0) {
        uint32_t i = uint32_t(*ret);
        pool_.at(i).where |= Entry::kPeriodic;
        period_[i] = period | (skip ? kPeriodSkip : 0);
    }
    return r;
}

/* The lists of a batch come from the list kernel, 64 deadlines at a time
 * into a buffer on the stack, and its entries from one pass over the free
 * list; the timers are then armed in array order, so equal deadlines keep
 * it.  While a cascade is pending or a first pass is open, arm_list may
 * differ from list_for: that rare case arms one by one. */
int Wheel::schedule_batch(size_t n, const uint64_t *deadlines, tw_timer_cb *cb,
                          void *const *userdata, tw_timer *ret)
{
    if (n > UINT32_MAX || !pool_.reserve(n))
        return TW_ENOMEM;
    if (!n)
        return 0;
    int cbi = callbacks_.use(cb, uint32_t(n));
    if (cbi < 0)
        return cbi;
    if (cascade_slot_ != kNil || phase_ == kPassOne) {
        for (size_t k = 0; k < n; k++) {
            uint32_t i = arm(deadlines[k], uint16_t(cbi), userdata ? userdata[k] : nullptr);
            ret[k] = handle(i, pool_.at(i));
        }
        return 0;
    }
    simd::ListParams p;
    static_cast<TickDivision &>(p) = tick_.division();
    p.cur = cur_;
    uint32_t lists[kBatchChunk], idx[kBatchChunk];
    for (size_t k = 0; k < n; k += kBatchChunk) {
        size_t m = n - k < kBatchChunk ? n - k : kBatchChunk;
        simd_->lists(p, m, deadlines + k, lists);
        pool_.alloc_n(m, idx);
        for (size_t j = 0; j < m; j++) {
            uint32_t i = idx[j];
            Entry &e = pool_.at(i);
            e.deadline = deadlines[k + j];
            e.userdata = userdata ? userdata[k + j] : nullptr;
            e.cb = uint16_t(cbi);
            e.where = 0;
            append(lists[j], i);
            ret[k + j] = handle(i, e);
        }
    }
    scheduled_ += n;
    return 0;
}

size_t Wheel::cancel_batch(size_t n, const tw_timer *timers)
{
    size_t done = 0;
    for (size_t k = 0; k < n; k++)
        done += cancel(timers[k]) == 0;
    return done;
}

/* The deadline after `fired` for periodic entry i: fired + period, or with
 * the skip policy the first of fired + k * period after the wheel's time.
 * TW_NEVER (parked) once that passes the end of time. */
uint64_t Wheel::next_period(uint32_t i, uint64_t fired) const
{
    uint64_t p = period_[i] & ~kPeriodSkip;
    uint64_t k = 1;
    if ((period_[i] & kPeriodSkip) && now_ns_ >= fired)
        k = (now_ns_ - fired) / p + 1;
    return sat_u128(u128(fired) + u128(k) * p);
}

int Wheel::period(tw_timer timer, uint64_t *ret) const
{
    uint32_t i = lookup(timer);
    if (!i || !(pool_.at(i).where & Entry::kPeriodic))
        return TW_ENOENT;
    *ret = period_[i] & ~kPeriodSkip;
    return 0;
}

uint64_t Wheel::cancel_all(tw_timer_cb *keep)
{
    uint64_t n = 0;
    for (uint32_t i = pool_.reserved(); i < pool_.fresh(); i++) {
        Entry &e = pool_.at(i);
        if ((!e.listed() && e.list() != Entry::kFiring) || callbacks_.fn(e.cb) == keep)
            continue;
        remove(i);
        release(i);
        n++;
    }
    cancelled_ += n;
    return n;
}

int Wheel::foreach(tw_timer_cb *keep, tw_timer_visit_fn *fn, void *ctx)
{
    for (uint32_t i = pool_.reserved(); i < pool_.fresh(); i++) {
        const Entry &e = pool_.at(i);
        if ((!e.listed() && e.list() != Entry::kFiring) || callbacks_.fn(e.cb) == keep)
            continue;
        if (int r = fn(handle(i, e), e.deadline, e.userdata, ctx))
            return r;
    }
    return 0;
}

/* The pool's live entries, less the one whose callback runs (it is not
 * armed) and those of `keep`, which the callback table counts. */
uint64_t Wheel::count(tw_timer_cb *keep) const
{
    uint64_t n = pool_.in_use();
    bool running = running_ && pool_.at(running_).list() == Entry::kRunning;
    if (running)
        n--;
    if (keep) {
        n -= callbacks_.refs_of(keep);
        if (running && callbacks_.fn(pool_.at(running_).cb) == keep)
            n++;
    }
    return n;
}

/* The lookup and the release written out, so that the common path calls
 * nothing and saves no registers: at a million timers a cancel waits on
 * two misses (the caller's handle, then the entry), and the fewer
 * instructions each takes, the more cancels the processor overlaps. */
int Wheel::cancel(tw_timer timer)
{
    uint32_t i = uint32_t(timer);
    if (!pool_.issued(i))
        return TW_ENOENT;
    Entry &e = pool_.at(i);
    uint32_t list = e.list();
    if (e.gen != uint32_t(timer >> 32) || (list >= kListCount && list != Entry::kFiring))
        return TW_ENOENT;
    remove(i);
    cancelled_++;
    uint16_t cb = e.cb;
    e.where = Entry::kFree;
    pool_.release(i);
    if (__builtin_expect(callbacks_.unused_after(cb), 0))
        callbacks_.drop_unused(cb);
    return 0;
}

int Wheel::reschedule(tw_timer timer, uint64_t deadline)
{
    uint32_t i = lookup(timer);
    if (!i)
        return TW_ENOENT;
    Entry &e = pool_.at(i);
    /* Always re-appended, even within one slot: equal deadlines fire in
     * arming order, and a reschedule is an arming. */
    if (e.list() != Entry::kRunning)
        remove(i);
    e.deadline = (e.where & Entry::kSlack) ? slack_instant(deadline, slack_[i]) : deadline;
    append(arm_list(e.deadline), i);
    rescheduled_++;
    return 0;
}

int Wheel::deadline(tw_timer timer, uint64_t *ret) const
{
    uint32_t i = lookup(timer);
    if (!i || pool_.at(i).list() == Entry::kRunning)
        return TW_ENOENT;
    *ret = pool_.at(i).deadline;
    return 0;
}

/* The minimum over every place a timer can be: the rest of the dispatch
 * round (sorted, so its first live entry), the due and next lists, a
 * cascade cut short (its timers lie at cur or later), and the lowest
 * occupied slot. */
int Wheel::next_deadline(uint64_t *ret) const
{
    uint64_t best = TW_NEVER;
    bool found = false;
    auto take = [&](uint64_t d) {
        if (d < best || !found)
            best = d;
        found = true;
    };
    for (uint32_t k = round_at_; k < round_n_; k++) {
        if (round_[k].idx != kNil) {
            take(round_[k].deadline);
            break;
        }
    }
    for (uint32_t list : {kDueList, kNextList}) {
        if (empty(list))
            continue;
        Flat &f = flat(list);
        if (!f.min_known) {
            f.min = f.in_order ? first_deadline(list) : list_min(list);
            f.min_known = true;
        }
        take(f.min);
    }
    if (cascade_slot_ != kNil && !empty(cascade_slot_))
        take(cur_ * tick_.divisor());
    for (unsigned level = 0; level < kLevels; level++) {
        if (!occupied_[level])
            continue;
        unsigned slot = unsigned(__builtin_ctzll(occupied_[level]));
        uint32_t list = level * kSlots + slot;
        if (!(min_known_[level] & slot_bit(list)) && !rescan_min(list))
            take(slot_start_tick(cur_, level, slot) * tick_.divisor());
        else
            take(slot_min_[list]);
        break;
    }
    if (!found)
        return TW_ENOENT;
    *ret = best;
    return 0;
}

} // namespace tw
