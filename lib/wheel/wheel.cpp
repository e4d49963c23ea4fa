/*
 * The wheel, as wheel.hpp lays it out: the tick divider; arming, batches,
 * periodic timers and the callback table; the lists and their cached
 * minima; the two passes of an advance (cascades, gathering and sorting a
 * round, dispatch); the walks; statistics and the invariant checker.
 *
 * Uses: lib/pool (entries and blocks), lib/simd (the list kernel of
 * batches), lib/common; nothing above the wheel.
 */
#include "wheel/wheel.hpp"
#include "common/arith.hpp"
#include "common/clock.hpp"
#include "common/copy-out.hpp"

#include <sys/random.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace tw {

namespace {

/* Level of the highest bit in which a timer's tick differs from cur. */
constexpr unsigned level_of_bit(unsigned bit) { return bit / Wheel::kLevelBits; }

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

void Divider::init(uint64_t d)
{
    d_ = d;
    if ((d & (d - 1)) == 0) {
        shift_ = __builtin_ctzll(d);
        return;
    }
    /* ceil(2^128 / d); exact for all n < 2^64 because 128 >= 64 + log2(d). */
    u128 c = ~u128(0) / d + 1;
    shift_ = -1;
    lo_ = uint64_t(c);
    hi_ = uint64_t(c >> 64);
}

Wheel::~Wheel()
{
    std::free(round_);
    std::free(scratch_);
    std::free(cbs_);
    std::free(cb_free_);
    std::free(periods_);
    std::free(cb_hash_);
}

int Wheel::init(const tw_wheel_config &config, uint64_t now_ns)
{
    if (config.tick_ns < TW_TICK_MIN_NS || config.tick_ns > TW_TICK_MAX_NS)
        return TW_EINVAL;
    static_assert(kLevels * kLevelBits >= 64 - 9, "levels must cover 2^64 / TW_TICK_MIN_NS ticks");
    tick_.init(config.tick_ns);
    uint64_t initial_blocks = kBlockReserve + config.initial_timers / Block::kCap;
    if (!pool_.init(config.max_timers, config.initial_timers, handle_key(this)) ||
        !blocks_.reserve(initial_blocks))
        return TW_ENOMEM;
    round_cap_ = 256;
    round_ = static_cast<Due *>(std::malloc(round_cap_ * sizeof(Due)));
    if (!round_)
        return TW_ENOMEM;
    now_ns_ = now_ns;
    cur_ = tick_.divide(now_ns);
    return 0;
}

uint32_t Wheel::list_for(uint64_t deadline) const
{
    if (deadline == TW_NEVER)
        return kNever;
    uint64_t t = tick_.divide(deadline);
    if (t <= cur_)
        return kDue;
    unsigned level = level_of_bit(63u - unsigned(__builtin_clzll(t ^ cur_)));
    return level * kSlots + (unsigned(t >> (level * kLevelBits)) & (kSlots - 1));
}

/* Where a timer armed now goes.  While the first pass of an advance to T
 * is open, a deadline <= T goes to the next list: it fires in the second
 * pass, after every timer that was due when the advance began.  While a
 * cascade is pending, a timer whose tick falls in the cascading slot joins
 * that slot's tail: placed below at once, it would overtake the slot's
 * older timers of the same deadline. */
uint32_t Wheel::arm_list(uint64_t deadline) const
{
    if (phase_ == kPassOne && deadline <= pass_time_ && deadline != TW_NEVER)
        return kNext;
    uint32_t list = list_for(deadline);
    if (cascade_slot_ != kNil && deadline != TW_NEVER) {
        uint64_t t = tick_.divide(deadline);
        unsigned shift = (cascade_slot_ / kSlots) * kLevelBits;
        if (t >= cur_ && (t - cur_) >> shift == 0)
            return cascade_slot_;
    }
    return list;
}

uint64_t Wheel::slot_start_tick(unsigned level, unsigned slot) const
{
    unsigned above = (level + 1) * kLevelBits;
    return (cur_ >> above << above) | (uint64_t(slot) << (level * kLevelBits));
}

/* Keeps the occupancy bits and the cached minima right after an addition. */
__attribute__((always_inline)) inline void Wheel::note_added(uint32_t list, uint64_t deadline,
                                                        bool was_empty)
{
    if (list < kDue) {
        unsigned level = list / kSlots;
        uint64_t bit = uint64_t(1) << (list % kSlots);
        if (was_empty) {
            occupied_[level] |= bit;
            min_known_[level] |= bit;
            in_order_[level] |= bit;
            slot_min_[list] = deadline;
        } else {
            if ((min_known_[level] & bit) && deadline < slot_min_[list])
                slot_min_[list] = deadline;
            if (deadline < slot_last_[list])
                in_order_[level] &= ~bit;
        }
        if (was_empty || deadline > slot_last_[list])
            slot_last_[list] = deadline;
    } else if (list != kNever) {
        Flat &f = flat(list);
        if (was_empty) {
            f.min = deadline;
            f.min_known = true;
            f.in_order = true;
        } else {
            if (f.min_known && deadline < f.min)
                f.min = deadline;
            if (deadline < f.last)
                f.in_order = false;
        }
        if (was_empty || deadline > f.last)
            f.last = deadline;
    }
}

__attribute__((always_inline)) inline void Wheel::append(uint32_t list, uint32_t i)
{
    List &l = lists_[list];
    bool was_empty = l.head == kNil;
    uint32_t b = l.tail;
    if (b == kNil || blocks_[b].fill == Block::kCap) {
        uint32_t nb = blocks_.take();
        Block &n = blocks_[nb];
        n.prev = b;
        n.next = kNil;
        n.live = n.fill = 0;
        n.list = list;
        if (b == kNil)
            l.head = nb;
        else
            blocks_[b].next = nb;
        l.tail = b = nb;
    }
    Block &blk = blocks_[b];
    Entry &e = pool_.at(i);
    e.pos = Block::pos(b, blk.fill);
    e.state = kStateArmed;
    blk.idx[blk.fill++] = i;
    blk.live++;
    note_added(list, e.deadline, was_empty);
}

__attribute__((noinline)) void Wheel::drop_block(uint32_t list, uint32_t b)
{
    Block &blk = blocks_[b];
    List &l = lists_[list];
    if (blk.prev == kNil)
        l.head = blk.next;
    else
        blocks_[blk.prev].next = blk.next;
    if (blk.next == kNil)
        l.tail = blk.prev;
    else
        blocks_[blk.next].prev = blk.prev;
    blocks_.give(b);
}

/* Takes an armed or firing entry out of where it is; its state is left to
 * the caller. */
__attribute__((always_inline)) inline void Wheel::remove(uint32_t i)
{
    Entry &e = pool_.at(i);
    if (e.state == kStateFiring) {
        round_[e.pos].idx = kNil;
        return;
    }
    uint32_t b = Block::block_of(e.pos);
    Block &blk = blocks_[b];
    uint32_t list = blk.list;
    blk.idx[Block::at_of(e.pos)] = kNil;
    bool emptied = false;
    if (--blk.live == 0) {
        drop_block(list, b);
        emptied = lists_[list].head == kNil;
    }
    if (list < kDue) {
        unsigned level = list / kSlots;
        uint64_t bit = uint64_t(1) << (list % kSlots);
        if (emptied)
            occupied_[level] &= ~bit;
        if (emptied || e.deadline == slot_min_[list])
            min_known_[level] &= ~bit;
    } else if (list != kNever) {
        Flat &f = flat(list);
        if (emptied || e.deadline == f.min)
            f.min_known = false;
    }
}

int Wheel::intern_callback(tw_timer_cb *cb)
{
    /* The previous callback was kept while unused, for its next arm. */
    if (last_cb_index_ != 0xffff && cbs_[last_cb_index_].refs == 0) {
        uint16_t old = last_cb_index_;
        last_cb_ = nullptr;
        last_cb_index_ = 0xffff;
        drop_callback(old);
    }
    if (cb_hash_) {
        for (uint32_t h = cb_hash(cb); cb_hash_[h]; h = (h + 1) & cb_hash_mask_) {
            uint32_t idx = cb_hash_[h] - 1;
            if (cbs_[idx].fn == cb) {
                last_cb_ = cb;
                last_cb_index_ = uint16_t(idx);
                return int(idx);
            }
        }
    }
    if (!cb_free_n_ && ncbs_ == kMaxCallbacks)
        return TW_ENOSPC;
    if (!cb_free_n_ && ncbs_ == cbs_cap_) {
        uint32_t cap = cbs_cap_ ? cbs_cap_ * 2 : 8;
        if (cap > kMaxCallbacks)
            cap = kMaxCallbacks;
        auto *cbs = static_cast<Callback *>(std::realloc(cbs_, cap * sizeof(Callback)));
        if (!cbs)
            return TW_ENOMEM;
        cbs_ = cbs;
        auto *spare = static_cast<uint16_t *>(std::realloc(cb_free_, cap * sizeof(uint16_t)));
        if (!spare)
            return TW_ENOMEM;
        cb_free_ = spare;
        /* Twice the slots, rounded to a power of two: at most half full. */
        uint32_t slots = 16;
        while (slots < cap * 2)
            slots *= 2;
        auto *table = static_cast<uint32_t *>(std::calloc(slots, sizeof(uint32_t)));
        if (!table)
            return TW_ENOMEM;
        std::free(cb_hash_);
        cb_hash_ = table;
        cb_hash_mask_ = slots - 1;
        cbs_cap_ = cap;
        for (uint32_t idx = 0; idx < ncbs_; idx++) {
            if (!cbs_[idx].refs && idx != last_cb_index_)
                continue;
            uint32_t h = cb_hash(cbs_[idx].fn);
            while (cb_hash_[h])
                h = (h + 1) & cb_hash_mask_;
            cb_hash_[h] = idx + 1;
        }
    }
    uint32_t idx = cb_free_n_ ? cb_free_[--cb_free_n_] : ncbs_++;
    cbs_[idx].fn = cb;
    cbs_[idx].refs = 0;
    uint32_t h = cb_hash(cb);
    while (cb_hash_[h])
        h = (h + 1) & cb_hash_mask_;
    cb_hash_[h] = idx + 1;
    last_cb_ = cb;
    last_cb_index_ = uint16_t(idx);
    return int(idx);
}

/* Takes callback k out of the table: out of the hash by backward shift
 * (later members of its probe run move up, so no tombstone is left), and
 * its slot onto the free stack. */
void Wheel::drop_callback(uint16_t k)
{
    uint32_t h = cb_hash(cbs_[k].fn);
    while (cb_hash_[h] != uint32_t(k) + 1)
        h = (h + 1) & cb_hash_mask_;
    for (uint32_t j = h;;) {
        cb_hash_[h] = 0;
        for (;;) {
            j = (j + 1) & cb_hash_mask_;
            if (!cb_hash_[j])
                goto dropped;
            uint32_t home = cb_hash(cbs_[cb_hash_[j] - 1].fn);
            /* The member at j may move to h unless its home lies in (h, j]. */
            bool stays = h <= j ? (home > h && home <= j) : (home > h || home <= j);
            if (!stays)
                break;
        }
        cb_hash_[h] = cb_hash_[j];
        h = j;
    }
dropped:
    cbs_[k].fn = nullptr;
    cbs_[k].refs = 0;
    cb_free_[cb_free_n_++] = k;
}

/* Inlined into each schedule: as a call, it cost a schedule a sixth more
 * instructions (callgrind, 100k timers). */
__attribute__((always_inline)) inline uint32_t Wheel::arm(uint64_t deadline, uint16_t cb,
                                                          void *userdata, uint32_t slack)
{
    uint32_t i = pool_.alloc();
    if (!i)
        return 0;
    Entry &e = pool_.at(i);
    e.deadline = deadline;
    e.userdata = userdata;
    e.cb = cb;
    e.slack = slack;
    append(arm_list(deadline), i);
    scheduled_++;
    return i;
}

int Wheel::schedule(uint64_t deadline, tw_timer_cb *cb, void *userdata, tw_timer *ret)
{
    if (blocks_.free_count() <= kBlockReserve && !blocks_.reserve(kBlockReserve + 1))
        return TW_ENOMEM;
    int cbi = use_callback(cb);
    if (cbi < 0)
        return cbi;
    uint32_t i = arm(deadline, uint16_t(cbi), userdata);
    if (!i) {
        unuse_callback(uint16_t(cbi));
        return TW_ENOMEM;
    }
    *ret = handle(i, pool_.at(i));
    return 0;
}

uint64_t Wheel::slack_instant(uint64_t deadline, uint32_t slack) const
{
    if (!slack || deadline == TW_NEVER || deadline <= now_ns_)
        return deadline;
    uint64_t last = window_end(deadline, slack);
    /* deadline > now_ns_ >= 0, so deadline - 1 does not wrap. */
    return last == deadline ? deadline : roundest_in(deadline, last);
}

int Wheel::schedule_slack(uint64_t deadline, uint64_t slack, tw_timer_cb *cb, void *userdata,
                          tw_timer *ret)
{
    if (blocks_.free_count() <= kBlockReserve && !blocks_.reserve(kBlockReserve + 1))
        return TW_ENOMEM;
    int cbi = use_callback(cb);
    if (cbi < 0)
        return cbi;
    uint32_t s = clamp_u32(slack);
    uint32_t i = arm(slack_instant(deadline, s), uint16_t(cbi), userdata, s);
    if (!i) {
        unuse_callback(uint16_t(cbi));
        return TW_ENOMEM;
    }
    *ret = handle(i, pool_.at(i));
    return 0;
}

/* The lists of a batch come from the list kernel, 64 deadlines at a time
 * into a buffer on the stack, and its entries from one pass over the free
 * list; the timers are then armed in array order, so equal deadlines keep
 * it.  While a cascade is pending or a first pass is open, arm_list may
 * differ from list_for: that rare case arms one by one.  (Prefetching the
 * tail blocks of the chunk's lists before the appends was tried and made
 * no difference measurable on the 2-vCPU guest, so it is not done.) */
int Wheel::schedule_batch(size_t n, const uint64_t *deadlines, tw_timer_cb *cb,
                          void *const *userdata, tw_timer *ret)
{
    static_assert(simd::kLevelBits == kLevelBits && simd::kLevels == kLevels &&
                      simd::kDueList == kDue && simd::kNeverList == kNever,
                  "the kernels number lists as the wheel does");
    if (n > UINT32_MAX)
        return TW_ENOMEM;
    /* Every timer may open a block of its own list at worst. */
    uint64_t blocks = kBlockReserve + (n < kLists ? n : kLists + n / Block::kCap + 1);
    if (!pool_.reserve(n) || !blocks_.reserve(blocks))
        return TW_ENOMEM;
    if (!n)
        return 0;
    int cbi = use_callback(cb, uint32_t(n));
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
    tick_.params(&p);
    p.cur = cur_;
    uint32_t lists[kBatchChunk], idx[kBatchChunk];
    uint16_t cb16 = uint16_t(cbi);
    for (size_t k = 0; k < n; k += kBatchChunk) {
        size_t m = n - k < kBatchChunk ? n - k : kBatchChunk;
        simd_->lists(p, m, deadlines + k, lists);
        pool_.alloc_n(m, idx);
        for (size_t j = 0; j < m; j++) {
            uint32_t i = idx[j];
            Entry &e = pool_.at(i);
            e.deadline = deadlines[k + j];
            e.userdata = userdata ? userdata[k + j] : nullptr;
            e.cb = cb16;
            e.slack = 0;
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
    for (size_t k = 0; k < n; k++) {
        uint32_t i = lookup(timers[k]);
        if (!i || pool_.at(i).state == kStateRunning)
            continue;
        remove(i);
        release(i);
        done++;
    }
    cancelled_ += done;
    return done;
}

int Wheel::schedule_periodic(uint64_t first, uint64_t period, bool skip, tw_timer_cb *cb,
                             void *userdata, tw_timer *ret)
{
    if (!period || period >= TW_NEVER >> 1)
        return TW_EINVAL;
    if (blocks_.free_count() <= kBlockReserve && !blocks_.reserve(kBlockReserve + 1))
        return TW_ENOMEM;
    /* Room for the period of any entry the pool may hand out now. */
    if (!pool_.reserve(1))
        return TW_ENOMEM;
    uint32_t need = pool_.fresh() + 1;
    if (need > periods_cap_) {
        uint32_t cap = periods_cap_ ? periods_cap_ : 64;
        while (cap < need)
            cap = cap > UINT32_MAX / 2 ? UINT32_MAX : cap * 2;
        auto *p = static_cast<uint64_t *>(std::realloc(periods_, size_t(cap) * sizeof(uint64_t)));
        if (!p)
            return TW_ENOMEM;
        std::memset(p + periods_cap_, 0, size_t(cap - periods_cap_) * sizeof(uint64_t));
        periods_ = p;
        periods_cap_ = cap;
    }
    int cbi = use_callback(cb);
    if (cbi < 0)
        return cbi;
    uint32_t i = arm(first, uint16_t(cbi), userdata);
    if (!i) {
        unuse_callback(uint16_t(cbi));
        return TW_ENOMEM;
    }
    periods_[i] = period | (skip ? kPeriodSkip : 0);
    *ret = handle(i, pool_.at(i));
    return 0;
}

/* The deadline after `fired` for periodic entry i: fired + period, or with
 * the skip policy the first of fired + k * period after the wheel's time.
 * TW_NEVER (parked) once that passes the end of time. */
uint64_t Wheel::next_period(uint32_t i, uint64_t fired) const
{
    uint64_t p = periods_[i] & ~kPeriodSkip;
    uint64_t k = 1;
    if ((periods_[i] & kPeriodSkip) && now_ns_ >= fired)
        k = (now_ns_ - fired) / p + 1;
    return sat_u128(u128(fired) + u128(k) * p);
}

int Wheel::period(tw_timer timer, uint64_t *ret) const
{
    uint32_t i = lookup(timer);
    if (!i || !periodic(i))
        return TW_ENOENT;
    *ret = periods_[i] & ~kPeriodSkip;
    return 0;
}

uint64_t Wheel::cancel_all(tw_timer_cb *keep)
{
    uint64_t n = 0;
    for (uint32_t i = 1; i < pool_.fresh(); i++) {
        Entry &e = pool_.at(i);
        if ((e.state != kStateArmed && e.state != kStateFiring) || cbs_[e.cb].fn == keep)
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
    for (uint32_t i = 1; i < pool_.fresh(); i++) {
        const Entry &e = pool_.at(i);
        if ((e.state != kStateArmed && e.state != kStateFiring) || cbs_[e.cb].fn == keep)
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
    if (running_ && pool_.at(running_).state == kStateRunning)
        n--;
    if (keep && cb_hash_) {
        for (uint32_t h = cb_hash(keep); cb_hash_[h]; h = (h + 1) & cb_hash_mask_) {
            const Callback &c = cbs_[cb_hash_[h] - 1];
            if (c.fn == keep) {
                n -= c.refs;
                if (running_ && pool_.at(running_).state == kStateRunning &&
                    cbs_[pool_.at(running_).cb].fn == keep)
                    n++;
                break;
            }
        }
    }
    return n;
}

int Wheel::cancel(tw_timer timer)
{
    uint32_t i = lookup(timer);
    if (!i || pool_.at(i).state == kStateRunning)
        return TW_ENOENT;
    remove(i);
    release(i);
    cancelled_++;
    return 0;
}

int Wheel::reschedule(tw_timer timer, uint64_t deadline)
{
    uint32_t i = lookup(timer);
    if (!i)
        return TW_ENOENT;
    if (blocks_.free_count() <= kBlockReserve && !blocks_.reserve(kBlockReserve + 1))
        return TW_ENOMEM;
    Entry &e = pool_.at(i);
    /* Always re-appended, even within one slot: equal deadlines fire in
     * arming order, and a reschedule is an arming. */
    if (e.state != kStateRunning)
        remove(i);
    e.deadline = e.slack ? slack_instant(deadline, e.slack) : deadline;
    append(arm_list(e.deadline), i);
    rescheduled_++;
    return 0;
}

int Wheel::deadline(tw_timer timer, uint64_t *ret) const
{
    uint32_t i = lookup(timer);
    if (!i || pool_.at(i).state == kStateRunning)
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
    for (uint32_t list : {kDue, kNext}) {
        if (lists_[list].head == kNil)
            continue;
        Flat &f = flat(list);
        if (!f.min_known) {
            f.min = f.in_order ? first_deadline(list) : list_min(list);
            f.min_known = true;
        }
        take(f.min);
    }
    if (cascade_slot_ != kNil && lists_[cascade_slot_].head != kNil)
        take(cur_ * tick_.divisor());
    for (unsigned level = 0; level < kLevels; level++) {
        if (!occupied_[level])
            continue;
        unsigned slot = unsigned(__builtin_ctzll(occupied_[level]));
        uint32_t list = level * kSlots + slot;
        uint64_t bit = uint64_t(1) << slot;
        if (!(min_known_[level] & bit) && !rescan_min(list))
            take(slot_start_tick(level, slot) * tick_.divisor());
        else
            take(slot_min_[list]);
        break;
    }
    if (!found)
        return TW_ENOENT;
    *ret = best;
    return 0;
}

/* The first live deadline of a list: its minimum when it is in order.  A
 * list's blocks are freed when their last entry leaves, so this reads one
 * block. */
uint64_t Wheel::first_deadline(uint32_t list) const
{
    for (uint32_t b = lists_[list].head; b != kNil; b = blocks_[b].next) {
        const Block &blk = blocks_[b];
        for (unsigned k = 0; k < blk.fill; k++)
            if (blk.idx[k] != kNil)
                return pool_.at(blk.idx[k]).deadline;
    }
    return TW_NEVER;
}

uint64_t Wheel::list_min(uint32_t list) const
{
    uint64_t m = TW_NEVER;
    for (uint32_t b = lists_[list].head; b != kNil; b = blocks_[b].next) {
        const Block &blk = blocks_[b];
        for (unsigned k = 0; k < blk.fill; k++)
            if (blk.idx[k] != kNil && pool_.at(blk.idx[k]).deadline < m)
                m = pool_.at(blk.idx[k]).deadline;
    }
    return m;
}

/* True when the list holds a deadline <= t. */
bool Wheel::list_has_due(uint32_t list, uint64_t t) const
{
    for (uint32_t b = lists_[list].head; b != kNil; b = blocks_[b].next) {
        const Block &blk = blocks_[b];
        for (unsigned k = 0; k < blk.fill; k++)
            if (blk.idx[k] != kNil && pool_.at(blk.idx[k]).deadline <= t)
                return true;
    }
    return false;
}

/* Recomputes a slot's lost minimum when the slot is small enough that a
 * scan is cheap; a large slot keeps answering its start (never late). */
bool Wheel::rescan_min(uint32_t list) const
{
    unsigned blocks = 0;
    for (uint32_t b = lists_[list].head; b != kNil; b = blocks_[b].next)
        if (++blocks > kRescanBlocks)
            return false;
    slot_min_[list] = list_min(list);
    min_known_[list / kSlots] |= uint64_t(1) << (list % kSlots);
    return true;
}

/* Moves the entries of a higher-level slot to their places below, in
 * order, block by block, until *work reaches limit.  Each source block is
 * freed once read, so a cascade needs at most one new partial block per
 * destination list beyond what it frees.  A cascade cut short stays
 * pending: the slot keeps its remaining blocks (a cancel still finds
 * them) and the next advance resumes it before anything fires.  Returns
 * true when the slot is done. */
bool Wheel::cascade(uint64_t *work, uint64_t limit)
{
    uint32_t list = cascade_slot_;
    uint32_t b;
    while ((b = lists_[list].head) != kNil) {
        if (*work >= limit)
            return false;
        Block &blk = blocks_[b];
        for (unsigned k = 0; k < blk.fill; k++)
            if (blk.idx[k] != kNil)
                __builtin_prefetch(&pool_.at(blk.idx[k]));
        if (blk.next != kNil)
            __builtin_prefetch(&blocks_[blk.next]);
        for (unsigned k = 0; k < blk.fill; k++) {
            uint32_t i = blk.idx[k];
            if (i == kNil)
                continue;
            append(list_for(pool_.at(i).deadline), i);
            cascaded_++;
            ++*work;
        }
        drop_block(list, b);
    }
    /* Timers armed into the slot while it was pending set its bits again. */
    uint64_t bit = uint64_t(1) << (list % kSlots);
    occupied_[list / kSlots] &= ~bit;
    min_known_[list / kSlots] &= ~bit;
    cascade_slot_ = kNil;
    return true;
}

/* A level-0 slot holds one tick, now cur: its blocks join the due list. */
void Wheel::slot_to_due(unsigned slot)
{
    uint64_t bit = uint64_t(1) << slot;
    bool known = min_known_[0] & bit;
    occupied_[0] &= ~bit;
    min_known_[0] &= ~bit;
    List &src = lists_[slot], &due = lists_[kDue];
    Flat &f = flat_[0];
    for (uint32_t b = src.head; b != kNil; b = blocks_[b].next)
        blocks_[b].list = kDue;
    bool was_empty = due.head == kNil;
    if (was_empty) {
        due.head = src.head;
    } else {
        blocks_[due.tail].next = src.head;
        blocks_[src.head].prev = due.tail;
    }
    due.tail = src.tail;
    src = List();
    /* In order if both were and the slot starts at or after the due list's
     * last deadline; a slot in order starts at its minimum. */
    bool slot_in_order = (in_order_[0] & bit) && known;
    f.in_order = slot_in_order && (was_empty || (f.in_order && f.last <= slot_min_[slot]));
    if (was_empty || slot_last_[slot] > f.last)
        f.last = slot_last_[slot];
    in_order_[0] &= ~bit;
    if (was_empty || (known && f.min_known)) {
        if (was_empty || slot_min_[slot] < f.min)
            f.min = slot_min_[slot];
        f.min_known = known;
    } else {
        f.min_known = false;
    }
}

/* Collects the timers of a flat list (the due or the next list) whose
 * deadline is <= t into the round, in deadline order, equal deadlines in
 * list (arming) order, and takes them off the list.  A list known to be
 * in order gives its first `limit` at once, so a budgeted turn does work
 * in proportion to its budget however many timers are due; otherwise the
 * whole list is walked and sorted.  If the round cannot grow, it holds the
 * earliest that fit and the rest wait for the next round.  Returns the
 * round's size. */
uint32_t Wheel::gather(uint32_t list, uint64_t t, uint64_t limit)
{
    Flat &f = flat(list);
    uint32_t n = 0, order = 0;
    bool sorted = true, heap = false;
    bool prefix = f.in_order;
    bool rest_in_order = true;
    uint64_t rest_last = 0;
    for (uint32_t b = lists_[list].head; b != kNil; b = blocks_[b].next) {
        const Block &blk = blocks_[b];
        for (unsigned k = 0; k < blk.fill; k++) {
            uint32_t i = blk.idx[k];
            if (i == kNil)
                continue;
            uint64_t d = pool_.at(i).deadline;
            if (d > t || (prefix && n == limit)) {
                if (prefix)
                    goto gathered;
                rest_in_order &= d >= rest_last;
                rest_last = d;
                continue;
            }
            Due item = {d, order++, i};
            if (n == round_cap_ && !heap) {
                uint32_t cap = round_cap_ * 2;
                auto *r = static_cast<Due *>(std::realloc(round_, cap * sizeof(Due)));
                if (r) {
                    round_ = r;
                    round_cap_ = cap;
                } else if (prefix) {
                    goto gathered;      /* the earliest that fit, in order */
                } else {
                    /* Out of memory: keep the round_cap_ earliest in a heap. */
                    std::make_heap(round_, round_ + n);
                    heap = true;
                }
            }
            if (!heap) {
                sorted &= n == 0 || !(item < round_[n - 1]);
                round_[n++] = item;
            } else if (item < round_[0]) {
                std::pop_heap(round_, round_ + n);
                round_[n - 1] = item;
                std::push_heap(round_, round_ + n);
            }
        }
    }
    if (heap)
        std::sort_heap(round_, round_ + n);
    else if (!sorted)
        std::sort(round_, round_ + n);
gathered:
    for (uint32_t k = 0; k < n; k++) {
        uint32_t i = round_[k].idx;
        remove(i);
        Entry &e = pool_.at(i);
        e.state = kStateFiring;
        e.pos = k;
    }
    if (!prefix && lists_[list].head != kNil) {
        f.in_order = rest_in_order;
        f.last = rest_last;
        if (!rest_in_order)
            sort_list(list);
    }
    return n;
}

/* Puts a flat list in deadline order (equal deadlines keep list order) and
 * packs its blocks.  A gather that leaves timers not yet due behind, out
 * of order, calls it: without it, every advance inside the current tick
 * would rescan them all, and a loop woken at each exact deadline would pay
 * the square of the tick's population. */
void Wheel::sort_list(uint32_t list)
{
    uint32_t n = 0;
    for (uint32_t b = lists_[list].head; b != kNil; b = blocks_[b].next) {
        const Block &blk = blocks_[b];
        for (unsigned k = 0; k < blk.fill; k++) {
            uint32_t i = blk.idx[k];
            if (i == kNil)
                continue;
            if (n == scratch_cap_) {
                uint32_t cap = scratch_cap_ ? scratch_cap_ * 2 : 256;
                auto *p = static_cast<Due *>(std::realloc(scratch_, cap * sizeof(Due)));
                if (!p)
                    return;     /* stays unordered: correct, only slower */
                scratch_ = p;
                scratch_cap_ = cap;
            }
            scratch_[n] = Due{pool_.at(i).deadline, n, i};
            n++;
        }
    }
    std::sort(scratch_, scratch_ + n);
    /* n fits in the blocks the list has: rewrite them front to back. */
    uint32_t b = lists_[list].head;
    unsigned k = 0;
    for (uint32_t j = 0; j < n; j++) {
        if (k == Block::kCap) {
            blocks_[b].fill = blocks_[b].live = uint16_t(k);
            b = blocks_[b].next;
            k = 0;
        }
        uint32_t i = scratch_[j].idx;
        blocks_[b].idx[k] = i;
        pool_.at(i).pos = Block::pos(b, k);
        k++;
    }
    blocks_[b].fill = blocks_[b].live = uint16_t(k);
    uint32_t spare = blocks_[b].next;
    blocks_[b].next = kNil;
    lists_[list].tail = b;
    while (spare != kNil) {
        uint32_t next = blocks_[spare].next;
        blocks_.give(spare);
        spare = next;
    }
    Flat &f = flat(list);
    f.in_order = true;
    f.last = scratch_[n - 1].deadline;
    f.min = scratch_[0].deadline;
    f.min_known = true;
}

/* Fires the timers of a flat list whose deadline is <= the open advance's
 * time, in deadline order, the rest of a round left by a budget first.
 * Timers the callbacks of a round add to the list fire in the next round.
 * False when stopped by the budget or a request to free the wheel. */
bool Wheel::run_list(uint32_t list, Run *run)
{
    for (;;) {
        if (round_at_ == round_n_) {
            round_n_ = round_at_ = 0;
            if (lists_[list].head == kNil)
                return true;
            if (run->fired == run->budget || free_requested_)
                return false;
            round_n_ = gather(list, pass_time_, run->budget - run->fired);
            if (round_n_ == 0)
                return true;
        }
        while (round_at_ < round_n_) {
            uint32_t k = round_at_;
            uint32_t i = round_[k].idx;
            if (i == kNil) {
                round_at_++;
                continue;
            }
            /* Stopped only before a timer that would fire: a round whose
             * rest was all cancelled is finished. */
            if (run->fired == run->budget || free_requested_)
                return false;
            round_at_++;
            if (k + kPrefetchAhead < round_n_ && round_[k + kPrefetchAhead].idx != kNil)
                __builtin_prefetch(&pool_.at(round_[k + kPrefetchAhead].idx));
            Entry &e = pool_.at(i);
            uint64_t deadline = e.deadline;
            uint64_t late = now_ns_ - deadline;
            late_.record(late);
            if (periodic(i)) {
                /* Armed again first, as any timer armed now: its callback
                 * may cancel, move or query it like any armed timer. */
                e.deadline = next_period(i, deadline);
                append(arm_list(e.deadline), i);
            } else {
                e.state = kStateRunning;
            }
            running_ = i;
            cbs_[e.cb].fn(handle(i, e), deadline, e.userdata);
            running_ = 0;
            /* The callback may have grown the pool: e may have moved. */
            if (pool_.at(i).state == kStateRunning)
                release(i);
            run->fired++;
            fired_++;
        }
    }
}

/* The first pass of the open advance: visits the occupied slots up to its
 * time in time order, cascading higher slots down and firing what falls
 * due.  False when stopped. */
bool Wheel::pass_one(Run *run)
{
    uint64_t target = tick_.divide(pass_time_);
    for (;;) {
        if (cascade_slot_ != kNil && !cascade(&run->work, run->work_limit))
            return false;
        if (!run_list(kDue, run))
            return false;
        unsigned level = 0;
        while (level < kLevels && !occupied_[level])
            level++;
        if (level == kLevels)
            break;
        unsigned slot = unsigned(__builtin_ctzll(occupied_[level]));
        uint64_t start = slot_start_tick(level, slot);
        if (start > target)
            break;
        cur_ = start;
        if (level > 0) {
            uint64_t bit = uint64_t(1) << slot;
            occupied_[level] &= ~bit;
            min_known_[level] &= ~bit;
            cascade_slot_ = level * kSlots + slot;
        } else {
            slot_to_due(slot);
        }
    }
    if (target > cur_)
        cur_ = target;
    return true;
}

/* After a stop in the first pass: true when a timer that was due when the
 * advance began has yet to fire (in the round, the due list, a cascade cut
 * short or a slot not yet visited).  When none has, the first pass is over
 * in all but name, so whether timers armed next belong to the second pass
 * depends only on which timers are due, never on how far the walk got.
 * Slots wholly before the time's tick hold only such timers; the slots
 * that straddle it are scanned, and so is the due list, at a cost the next
 * advance pays again in any case. */
bool Wheel::pass_one_left() const
{
    for (uint32_t k = round_at_; k < round_n_; k++)
        if (round_[k].idx != kNil)
            return true;
    if (list_has_due(kDue, pass_time_))
        return true;
    if (cascade_slot_ != kNil && list_has_due(cascade_slot_, pass_time_))
        return true;
    uint64_t target = tick_.divide(pass_time_);
    for (unsigned level = 0; level < kLevels; level++) {
        for (uint64_t bits = occupied_[level]; bits; bits &= bits - 1) {
            unsigned slot = unsigned(__builtin_ctzll(bits));
            uint64_t start = slot_start_tick(level, slot);
            if (start > target)
                break;
            if (start + (uint64_t(1) << (level * kLevelBits)) <= target ||
                list_has_due(level * kSlots + slot, pass_time_))
                return true;
        }
    }
    return false;
}

/* Runs the open advance to its end: the rest of its first pass, then its
 * second.  False when stopped. */
bool Wheel::finish(Run *run)
{
    if (phase_ == kPassOne) {
        /* A first pass stopped with nothing due left is over: its walk
         * goes on in the next advance's. */
        if (!pass_one(run)) {
            if (free_requested_ || pass_one_left())
                return false;
            round_at_ = round_n_ = 0;
        }
        phase_ = kPassTwo;
    }
    if (!run_list(kNext, run))
        return false;
    phase_ = kIdle;
    return true;
}

uint64_t Wheel::advance(uint64_t now_ns, uint64_t max_callbacks)
{
    if (now_ns < now_ns_)
        now_ns = now_ns_;
    now_ns_ = now_ns;
    Run run;
    run.budget = max_callbacks ? max_callbacks : UINT64_MAX;
    run.fired = 0;
    /* Moving an entry costs a fraction of running a callback. */
    run.work = 0;
    run.work_limit = max_callbacks ? max_callbacks * kCascadePerCallback : UINT64_MAX;
    advancing_ = true;
    /* An advance stopped by its budget is finished first, at its own time;
     * then this one runs at now_ns. */
    if (phase_ == kIdle || finish(&run)) {
        phase_ = kPassOne;
        pass_time_ = now_ns;
        finish(&run);
    }
    advancing_ = false;
    return run.fired;
}

void Wheel::stats(tw_wheel_stats *ret) const
{
    tw_wheel_stats s;
    std::memset(&s, 0, sizeof(s));
    s.now_ns = now_ns_;
    s.live = pool_.in_use();
    s.scheduled = scheduled_;
    s.rescheduled = rescheduled_;
    s.cancelled = cancelled_;
    s.fired = fired_;
    s.cascaded = cascaded_;
    s.capacity = pool_.capacity();
    s.high_water = pool_.high_water();
    s.reused = pool_.reused();
    s.late_p50_ns = late_.quantile(0.5);
    s.late_p99_ns = late_.quantile(0.99);
    s.late_max_ns = late_.max();
    s.bytes = pool_.bytes() + blocks_.bytes() + round_cap_ * sizeof(Due) +
              cbs_cap_ * (sizeof(*cbs_) + sizeof(*cb_free_)) +
              (cb_hash_ ? (cb_hash_mask_ + 1) * sizeof(*cb_hash_) : 0) + sizeof(*this);
    copy_out(s, ret);
}

/* Records which invariant broke, for verify_failure(). */
int Wheel::broken(const char *what) const
{
    verify_failure_ = what;
    return TW_EUCLEAN;
}

int Wheel::verify() const
{
    verify_failure_ = nullptr;
    /* Timers counted on each callback, to check the use counts. */
    uint32_t *cb_refs = static_cast<uint32_t *>(std::calloc(ncbs_ + 1, sizeof(uint32_t)));
    if (!cb_refs)
        return TW_ENOMEM;
    uint64_t armed = 0, chained = 0;
    int r = verify_lists(cb_refs, &armed, &chained);
    if (!r)
        r = verify_entries(cb_refs, armed, chained);
    std::free(cb_refs);
    return r;
}

/* Every list: its chain of blocks, its entries, and what the wheel caches
 * about it (occupancy, minimum, order). */
int Wheel::verify_lists(uint32_t *cb_refs, uint64_t *armed, uint64_t *chained) const
{
    for (uint32_t list = 0; list < kLists; list++) {
        const List &l = lists_[list];
        uint32_t prev = kNil;
        uint64_t n = 0, min = TW_NEVER, last = 0;
        bool ordered = true;
        for (uint32_t b = l.head; b != kNil; b = blocks_[b].next) {
            if (b >= blocks_.total() || ++*chained > blocks_.total())
                return broken("a list's chain leaves the block pool or loops");
            const Block &blk = blocks_[b];
            if (blk.prev != prev || blk.list != list)
                return broken("a block's back link or list id is wrong");
            if (blk.fill > Block::kCap || !blk.live)
                return broken("a block is overfull, or empty but still chained");
            unsigned live = 0;
            for (unsigned k = 0; k < blk.fill; k++) {
                uint32_t i = blk.idx[k];
                if (i == kNil)
                    continue;
                if (!pool_.issued(i))
                    return broken("a block names an entry never handed out");
                const Entry &e = pool_.at(i);
                if (e.state != kStateArmed || e.pos != Block::pos(b, k))
                    return broken("a listed entry is not armed at its position");
                if (e.cb >= ncbs_ || !cbs_[e.cb].fn)
                    return broken("an armed entry's callback is not in the table");
                if (list == kNext && (phase_ == kIdle || e.deadline > pass_time_))
                    return broken("the next list holds a timer no open advance fires");
                if (list != kNext && list != cascade_slot_ && list_for(e.deadline) != list)
                    return broken("an entry is not in the list its deadline names");
                cb_refs[e.cb]++;
                if (e.deadline < min)
                    min = e.deadline;
                ordered &= e.deadline >= last;
                last = e.deadline;
                live++;
            }
            if (live != blk.live)
                return broken("a block's live count is wrong");
            n += live;
            prev = b;
        }
        if (l.tail != prev)
            return broken("a list's tail is not its last block");
        if (list < kDue && list != cascade_slot_) {
            unsigned level = list / kSlots;
            uint64_t bit = uint64_t(1) << (list % kSlots);
            if (bool(occupied_[level] & bit) != (n > 0))
                return broken("a slot's occupancy bit is wrong");
            if ((min_known_[level] & bit) && (!n || slot_min_[list] != min))
                return broken("a slot's cached minimum is wrong");
            if (n && (in_order_[level] & bit) && (!ordered || last > slot_last_[list]))
                return broken("a slot marked in order is not");
        }
        if (list == kDue || list == kNext) {
            const Flat &f = flat(list);
            if (n && f.min_known && f.min != min)
                return broken("the due or next list's cached minimum is wrong");
            if (n && f.in_order && (!ordered || last > f.last))
                return broken("the due or next list, marked in order, is not");
        }
        *armed += n;
    }
    return 0;
}

/* The free lists of both pools, every entry's state, the round, and the
 * callback table's use counts. */
int Wheel::verify_entries(uint32_t *cb_refs, uint64_t armed, uint64_t chained) const
{
    uint64_t free_blocks = 0;
    for (uint32_t b = blocks_.free_head(); b != kNil; b = blocks_[b].next)
        if (b >= blocks_.total() || ++free_blocks > blocks_.total())
            return broken("the free block list leaves the pool or loops");
    uint64_t untouched = blocks_.untouched();
    if (free_blocks + untouched != blocks_.free_count() ||
        free_blocks + untouched + chained != blocks_.total())
        return broken("blocks are lost or counted twice");
    uint64_t free_listed = 0;
    for (uint32_t i = pool_.free_head(); i; i = pool_.at(i).pos) {
        if (!pool_.issued(i) || pool_.at(i).state != kStateFree || ++free_listed > pool_.fresh())
            return broken("the free entry list holds a live entry, or loops");
    }
    uint64_t counted[4] = {};
    for (uint32_t i = 1; i < pool_.fresh(); i++) {
        const Entry &e = pool_.at(i);
        if (e.state > kStateRunning)
            return broken("an entry's state is out of range");
        counted[e.state]++;
        if (e.state == kStateFiring &&
            (e.pos < round_at_ || e.pos >= round_n_ || round_[e.pos].idx != i))
            return broken("a firing entry is not where the round says");
        if (e.state == kStateFiring || e.state == kStateRunning) {
            if (e.cb >= ncbs_ || !cbs_[e.cb].fn)
                return broken("a firing entry's callback is not in the table");
            cb_refs[e.cb]++;
        }
    }
    if (counted[kStateFree] != free_listed || free_listed != pool_.free_count())
        return broken("free entries and the free list disagree");
    if (counted[kStateArmed] != armed)
        return broken("armed entries and the lists disagree");
    uint64_t pending = 0;
    for (uint32_t k = round_at_; k < round_n_; k++)
        pending += round_[k].idx != kNil;
    if (counted[kStateFiring] != pending)
        return broken("firing entries and the round disagree");
    if (!advancing_ && counted[kStateRunning])
        return broken("an entry is running outside an advance");
    if (pool_.in_use() + free_listed != uint64_t(pool_.fresh() - 1))
        return broken("the pool's use count is wrong");
    uint32_t freed = 0;
    for (uint32_t k = 0; k < ncbs_; k++) {
        if (cbs_[k].refs != cb_refs[k])
            return broken("a callback's use count is wrong");
        if (!cbs_[k].fn)
            freed++;
        else if (!cbs_[k].refs && k != last_cb_index_)
            return broken("an unused callback was kept");
    }
    if (freed != cb_free_n_)
        return broken("freed callback slots and the free stack disagree");
    return 0;
}

} // namespace tw
