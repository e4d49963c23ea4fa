/*
 * The hierarchical timing wheel.
 *
 * Geometry: ten levels of 64 slots over ticks (deadline / tick_ns), enough
 * for any 64-bit deadline at the smallest tick (1 us leaves 55 bits of
 * ticks).  A timer whose tick differs from the wheel's current tick `cur`
 * first in 6-bit group L sits at level L, in the slot named by its own
 * group L.  A timer whose tick is <= cur sits on the due list; TW_NEVER
 * timers sit on the never list, which nothing scans.
 *
 * Invariant: an entry's list is a function of (deadline, cur) alone, but
 * for the next list (below) and a cascade cut short.  It holds because a
 * slot is cascaded exactly when cur reaches the start of its range, and it
 * buys three things: every occupied slot of a level lies after cur in that
 * level (no wrap-around, no overflow structure); timers with equal
 * deadlines always share a list, so appending at the tail and moving whole
 * lists in order keeps them in arming order; and the earliest timer is in
 * the lowest occupied level's lowest occupied slot, found with one
 * count-trailing-zeros per level.
 *
 * Exactness: an advance to time T runs in two passes.  The first fires
 * every timer that was due at T when the advance began: it visits the
 * occupied slots up to T in time order (O(levels) each), and sorts the due
 * timers of a visit by deadline (ties by list order) unless they already
 * are in order, the common case.  A timer armed while the first pass runs
 * (or while it is stopped by a budget) with a deadline <= T goes to the
 * next list, which the second pass fires, in deadline order, once the
 * first is done; timers armed while the second pass runs wait for the next
 * advance.  So timers fire in deadline order, those armed late after those
 * already due, whatever the tick, and no advance can run forever however
 * its callbacks re-arm.
 *
 * Storage: a list is a chain of 256-byte blocks of entry indices in arming
 * order; leaving a list writes a tombstone into its block, and a block is
 * freed when its last live entry leaves.  A cascade so reads indices
 * sequentially and can prefetch a block's sixty entries at once: at a
 * million timers, chasing a linked list through memory one miss at a time
 * is what makes expiry slow, not the bookkeeping.
 *
 * Each slot caches the minimum deadline of its members while it is known
 * exactly; when that member leaves, next_deadline() rescans a small slot,
 * and answers a large one's start instead (never late, rarely early).
 *
 * Callbacks are stored as 16-bit indices into a table of the distinct
 * callbacks of live timers, counted by use: a callback leaves the table
 * with its last timer, so only live timers can fill it.
 */
#ifndef TW_WHEEL_HPP
#define TW_WHEEL_HPP

#include <cstdint>

#include "common/arith.hpp"
#include "common/histogram.hpp"
#include "pool/pool.hpp"
#include "simd/simd.hpp"
#include "tickwheel.h"

namespace tw {

/* n / d for a divisor fixed at run time, by one 64x128-bit multiply with a
 * 128-bit reciprocal (exact for every 64-bit n), or a shift for powers of 2. */
class Divider {
public:
    void init(uint64_t d);
    uint64_t divide(uint64_t n) const
    {
        if (shift_ >= 0)
            return n >> shift_;
        u128 lo = u128(n) * lo_;
        u128 hi = u128(n) * hi_ + (lo >> 64);
        return uint64_t(hi >> 64);
    }
    uint64_t divisor() const { return d_; }
    /* The same division as the batch kernels take it. */
    void params(simd::ListParams *ret) const
    {
        ret->recip_lo = lo_;
        ret->recip_hi = hi_;
        ret->shift = shift_;
    }

private:
    uint64_t d_ = 1, lo_ = 0, hi_ = 0;
    int shift_ = 0;
};

class Wheel {
public:
    static constexpr unsigned kLevelBits = 6;
    static constexpr unsigned kSlots = 1u << kLevelBits;
    static constexpr unsigned kLevels = 10;
    /* List ids: the slots, then the due list, the never list and the
     * next list (due in the second pass of the running advance). */
    static constexpr uint32_t kDue = kLevels * kSlots;
    static constexpr uint32_t kNever = kDue + 1;
    static constexpr uint32_t kNext = kDue + 2;
    static constexpr uint32_t kLists = kDue + 3;
    /* Free blocks kept before any operation that may need one: one partial
     * tail per list is the most a run of cascades adds beyond what it frees. */
    static constexpr uint64_t kBlockReserve = kLists + 1;
    /* Distinct callbacks of live timers at most. */
    static constexpr uint32_t kMaxCallbacks = 0xffff;
    /* next_deadline rescans a slot whose minimum left if it has this many
     * blocks at most (240 timers); beyond, it answers the slot's start. */
    static constexpr unsigned kRescanBlocks = 4;
    /* A budgeted advance moves up to this many entries per callback of its
     * budget in cascades. */
    static constexpr uint64_t kCascadePerCallback = 4;
    /* A batch computes its lists this many at a time. */
    static constexpr size_t kBatchChunk = 64;
    /* A dispatch round prefetches the entry this many places ahead. */
    static constexpr uint32_t kPrefetchAhead = 8;

    Wheel() = default;
    Wheel(const Wheel &) = delete;
    Wheel &operator=(const Wheel &) = delete;
    ~Wheel();

    int init(const tw_wheel_config &config, uint64_t now_ns);

    int schedule(uint64_t deadline, tw_timer_cb *cb, void *userdata, tw_timer *ret);
    /* As schedule, anywhere in [deadline, deadline + slack]: filed at the
     * instant of that window with the most trailing zero bits (see
     * slack_instant), kept by reschedule. */
    int schedule_slack(uint64_t deadline, uint64_t slack, tw_timer_cb *cb, void *userdata,
                       tw_timer *ret);
    /* Where a deadline with this much slack is filed: the deadline itself
     * when the slack is 0, the deadline is TW_NEVER or already due (it then
     * fires at the next advance, inside its window if that comes in time);
     * otherwise the roundest instant r of [a, b] = [deadline, deadline +
     * slack] (b at most TW_NEVER - 1): with k the highest bit in which a - 1
     * and b differ, r is b with the bits below k cleared, so a <= r <= b.
     * Timers whose windows hold a common round instant land on it and
     * share a wake-up, at no cost in storage. */
    uint64_t slack_instant(uint64_t deadline, uint32_t slack) const;
    int schedule_batch(size_t n, const uint64_t *deadlines, tw_timer_cb *cb,
                       void *const *userdata, tw_timer *ret);
    /* A timer due at first, then every period after it; skip: after missed
     * periods, fire once and go on from the first period after now, else
     * fire once per period.  Re-armed before its callback runs. */
    int schedule_periodic(uint64_t first, uint64_t period, bool skip, tw_timer_cb *cb,
                          void *userdata, tw_timer *ret);
    /* The period of a periodic timer. */
    int period(tw_timer timer, uint64_t *ret) const;
    int cancel(tw_timer timer);
    /* Cancels every armed timer but those whose callback is `keep`;
     * returns how many. */
    uint64_t cancel_all(tw_timer_cb *keep);
    /* Calls fn for every armed timer but those whose callback is `keep`, in
     * no particular order, until it returns non-zero (its value is
     * returned).  fn may cancel, reschedule and schedule timers; those
     * armed meanwhile may or may not be visited. */
    int foreach(tw_timer_cb *keep, tw_timer_visit_fn *fn, void *ctx);
    /* Armed timers, parked ones included, but those whose callback is keep. */
    uint64_t count(tw_timer_cb *keep) const;
    /* Cancels every armed timer of timers, skipping stale handles. */
    size_t cancel_batch(size_t n, const tw_timer *timers);
    int reschedule(tw_timer timer, uint64_t deadline);
    int deadline(tw_timer timer, uint64_t *ret) const;
    int next_deadline(uint64_t *ret) const;
    /* Fires what is due at now_ns, at most max_callbacks (0: no limit).
     * An advance stopped by the limit is finished first by the next one,
     * at its own time, before that one starts its own. */
    uint64_t advance(uint64_t now_ns, uint64_t max_callbacks = 0);
    uint64_t now() const { return now_ns_; }
    void stats(tw_wheel_stats *ret) const;
    /* 0, or TW_EUCLEAN with verify_failure() naming the broken invariant. */
    int verify() const;
    const char *verify_failure() const { return verify_failure_; }

    /* The batch kernels this wheel uses; simd::kernels() by default. */
    void set_kernels(const simd::Kernels &k) { simd_ = &k; }

    bool advancing() const { return advancing_; }
    /* Asks the running advance to stop dispatching and free the wheel. */
    void request_free() { free_requested_ = true; }
    bool free_requested() const { return free_requested_; }

private:
    struct List {
        uint32_t head = kNil, tail = kNil;  /* blocks */
    };
    /* One timer of a dispatch round. */
    struct Due {
        uint64_t deadline;
        uint32_t order;     /* position in the due list: ties keep arming order */
        uint32_t idx;       /* kNil once cancelled or moved from a callback */
        bool operator<(const Due &o) const
        {
            return deadline != o.deadline ? deadline < o.deadline : order < o.order;
        }
    };
    /* What the due list and the next list keep of themselves. */
    struct Flat {
        uint64_t last = 0;      /* largest deadline appended */
        uint64_t min = 0;       /* exact when min_known */
        bool in_order = true;   /* deadlines never decrease along the list */
        bool min_known = false;
    };
    /* Where an advance is: not in one, or in its first or second pass (a
     * pass stopped by a budget stays open until the next advance). */
    enum Phase : uint8_t { kIdle, kPassOne, kPassTwo };
    /* The limits of one advance call. */
    struct Run {
        uint64_t budget, fired, work, work_limit;
    };
    struct Callback {
        tw_timer_cb *fn;
        uint32_t refs;          /* live timers using it; 0: the slot is free */
    };

    /* The entry a live handle names, or 0. */
    uint32_t lookup(tw_timer timer) const
    {
        uint32_t i = uint32_t(timer);
        if (!pool_.issued(i))
            return 0;
        const Entry &e = pool_.at(i);
        if (e.gen != uint32_t(timer >> 32) || e.state == kStateFree)
            return 0;
        return i;
    }
    static tw_timer handle(uint32_t i, const Entry &e) { return (uint64_t(e.gen) << 32) | i; }

    uint32_t list_for(uint64_t deadline) const;
    uint32_t arm_list(uint64_t deadline) const;
    uint64_t slot_start_tick(unsigned level, unsigned slot) const;
    void append(uint32_t list, uint32_t i);
    void remove(uint32_t i);
    void drop_block(uint32_t list, uint32_t b);
    void note_added(uint32_t list, uint64_t deadline, bool was_empty);
    /* The table index of cb, with n more timers counted on it. */
    int use_callback(tw_timer_cb *cb, uint32_t n = 1)
    {
        int k = cb == last_cb_ ? last_cb_index_ : intern_callback(cb);
        if (k >= 0)
            cbs_[k].refs += n;
        return k;
    }
    /* One timer less on callback k; the slot is freed with its last
     * timer, except the most recent callback's, kept for the next arm. */
    void unuse_callback(uint16_t k)
    {
        if (--cbs_[k].refs == 0 && k != last_cb_index_)
            drop_callback(k);
    }
    void release(uint32_t i)
    {
        unuse_callback(pool_.at(i).cb);
        if (periods_ && i < periods_cap_)
            periods_[i] = 0;
        pool_.release(i);
    }
    bool periodic(uint32_t i) const { return periods_ && i < periods_cap_ && periods_[i]; }
    uint64_t next_period(uint32_t i, uint64_t fired) const;
    int intern_callback(tw_timer_cb *cb);
    void drop_callback(uint16_t k);
    uint32_t cb_hash(tw_timer_cb *cb) const
    {
        uint64_t x = uint64_t(reinterpret_cast<uintptr_t>(cb)) * UINT64_C(0x9e3779b97f4a7c15);
        return uint32_t(x >> 32) & cb_hash_mask_;
    }
    uint32_t arm(uint64_t deadline, uint16_t cb, void *userdata, uint32_t slack = 0);
    Flat &flat(uint32_t list) const { return flat_[list == kNext]; }
    uint64_t first_deadline(uint32_t list) const;
    uint64_t list_min(uint32_t list) const;
    bool list_has_due(uint32_t list, uint64_t t) const;
    bool rescan_min(uint32_t list) const;
    bool cascade(uint64_t *work, uint64_t limit);
    void slot_to_due(unsigned slot);
    uint32_t gather(uint32_t list, uint64_t t, uint64_t limit);
    void sort_list(uint32_t list);
    bool run_list(uint32_t list, Run *run);
    bool pass_one(Run *run);
    bool pass_one_left() const;
    bool finish(Run *run);
    int broken(const char *what) const;
    int verify_lists(uint32_t *cb_refs, uint64_t *armed, uint64_t *chained) const;
    int verify_entries(uint32_t *cb_refs, uint64_t armed, uint64_t chained) const;

    Pool pool_;
    BlockPool blocks_;
    const simd::Kernels *simd_ = &simd::kernels();
    List lists_[kLists];
    Divider tick_;
    uint64_t now_ns_ = 0;
    uint64_t cur_ = 0;                      /* current tick */
    uint64_t occupied_[kLevels] = {};       /* slot is non-empty */
    mutable uint64_t min_known_[kLevels] = {};  /* slot_min_ is exact */
    mutable uint64_t slot_min_[kDue] = {};
    uint64_t in_order_[kLevels] = {};       /* slot's deadlines never decrease */
    uint64_t slot_last_[kDue] = {};         /* largest deadline appended */
    uint32_t cascade_slot_ = kNil;          /* the list of a slot whose cascade
                                               was cut short, or kNil */
    mutable Flat flat_[2];                  /* the due list's, the next list's */
    Phase phase_ = kIdle;
    uint64_t pass_time_ = 0;                /* the open advance's time */

    /* The current dispatch round: [round_at_, round_n_) still to fire.  A
     * budgeted advance may leave it pending until the next advance. */
    Due *round_ = nullptr;
    uint32_t round_cap_ = 0, round_n_ = 0, round_at_ = 0;
    Due *scratch_ = nullptr;                /* sort_due's */
    uint32_t scratch_cap_ = 0;
    /* Periodic timers' periods by entry index, bit 63 set for the skip
     * policy; 0 for any other timer.  Made by the first periodic timer. */
    static constexpr uint64_t kPeriodSkip = uint64_t(1) << 63;
    uint64_t *periods_ = nullptr;
    uint32_t periods_cap_ = 0;
    Histogram late_;                        /* lateness of every fire */

    Callback *cbs_ = nullptr;               /* callback table */
    uint32_t ncbs_ = 0, cbs_cap_ = 0;       /* slots handed out, allocated */
    uint16_t *cb_free_ = nullptr;           /* slots given back, a stack */
    uint32_t cb_free_n_ = 0;
    uint32_t *cb_hash_ = nullptr;           /* open addressing: index + 1 */
    uint32_t cb_hash_mask_ = 0;
    tw_timer_cb *last_cb_ = nullptr;
    uint16_t last_cb_index_ = 0xffff;

    mutable const char *verify_failure_ = nullptr;
    uint32_t running_ = 0;                  /* the entry whose callback runs */
    bool advancing_ = false;
    bool free_requested_ = false;

    uint64_t scheduled_ = 0, rescheduled_ = 0, cancelled_ = 0, fired_ = 0, cascaded_ = 0;
};

} // namespace tw

#endif
