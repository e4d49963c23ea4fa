/*
 * The hierarchical timing wheel.
 *
 * Geometry (common/wheel-geometry.hpp): ten levels of 64 slots over ticks
 * (deadline / tick_ns).  A timer whose tick differs from the wheel's
 * current tick `cur` first in 6-bit group L sits at level L, in the slot
 * named by its own group L; a timer whose tick is <= cur sits on the due
 * list; TW_NEVER timers sit on the never list, which nothing scans.
 *
 * Invariant: an entry's list is a function of (deadline, cur) alone, but
 * for the next list (below) and a cascade cut short.  It holds because a
 * slot is emptied exactly when cur reaches its range, and it buys three
 * things: every occupied slot of a level lies after cur in that level (no
 * wrap-around, no overflow structure); timers with equal deadlines always
 * share a list, so appending at the tail and moving whole lists in order
 * keeps them in arming order; and the earliest timer is in the lowest
 * occupied level's lowest occupied slot, found with one
 * count-trailing-zeros per level.
 *
 * Exactness: an advance to time T runs in two passes.  The first fires
 * every timer that was due at T when the advance began: it visits the
 * occupied slots up to T in time order (O(levels) each) and fires each
 * visit's due timers sorted by deadline (ties in list order).  A slot
 * wholly before T's tick fires straight from the slot; the slot of T's
 * tick, and with a budget every slot above level 0, is first cascaded
 * down.  A timer armed while the first pass runs (or while it is stopped
 * by a budget) with a deadline <= T goes to the next list, which the
 * second pass fires, in deadline order, once the first is done; timers
 * armed while the second pass runs wait for the next advance.  So timers
 * fire in deadline order, those armed late after those already due,
 * whatever the tick, and no advance can run forever however its callbacks
 * re-arm.
 *
 * Storage: every list is a circular doubly linked list threaded through
 * the 32-byte entries by index, its head a sentinel entry at the list's
 * own index (the pool's reserved indices).  Arming writes the entry, the
 * sentinel and the old tail; cancelling writes the two neighbours, which
 * miss in parallel.  Nothing else is allocated per timer.
 *
 * Each slot caches the minimum deadline of its members while it is known
 * exactly, and whether its deadlines never decrease along it; when the
 * minimum leaves, next_deadline() rescans a small slot and answers a
 * large one's start instead (never late, rarely early).
 */
#ifndef TW_WHEEL_HPP
#define TW_WHEEL_HPP

#include <cstdint>

#include "common/arith.hpp"
#include "common/histogram.hpp"
#include "common/wheel-geometry.hpp"
#include "pool/pool.hpp"
#include "simd/simd.hpp"
#include "tickwheel.h"
#include "wheel/callbacks.hpp"

namespace tw {

/* A timer, or the sentinel head of a list. */
struct Entry {
    uint64_t deadline;
    void *userdata;
    uint32_t gen;
    uint32_t next;          /* listed: the next in the list; free: the next free */
    uint32_t prev;          /* listed: the previous; firing: position in the round */
    uint16_t cb;            /* index into the wheel's callback table */
    uint16_t where;         /* the list id, or one of the states below; and flags */

    static constexpr uint16_t kListMask = 0x0fff;
    static constexpr uint16_t kFree = 0x0fff;
    static constexpr uint16_t kFiring = 0x0ffe;     /* due in the current round */
    static constexpr uint16_t kRunning = 0x0ffd;    /* its callback is running */
    static constexpr uint16_t kSlack = 0x1000;      /* has a slack (Wheel::slack_) */
    static constexpr uint16_t kPeriodic = 0x2000;   /* has a period (Wheel::period_) */

    uint32_t list() const { return where & kListMask; }
    bool listed() const { return list() < kListCount; }
    void set_list(uint32_t l) { where = uint16_t((where & ~kListMask) | l); }
};
static_assert(sizeof(Entry) == 32, "an entry must stay 32 bytes");
static_assert(kListCount < Entry::kRunning, "list ids and states must not meet");

class Wheel {
public:
    /* next_deadline rescans a slot whose minimum left if it has this many
     * timers at most; beyond, it answers the slot's start. */
    static constexpr unsigned kRescanMax = 256;
    /* A budgeted advance moves up to this many entries per callback of its
     * budget in cascades. */
    static constexpr uint64_t kCascadePerCallback = 4;
    /* A batch computes its lists this many at a time. */
    static constexpr size_t kBatchChunk = 64;
    /* A round of more timers than this is sorted by radix. */
    static constexpr uint32_t kRadixMin = 256;
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
     * otherwise the roundest instant of [deadline, deadline + slack] (the
     * end at most TW_NEVER - 1; see roundest_in).  Timers whose windows hold
     * a common round instant land on it and share a wake-up. */
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
    /* One timer of a dispatch round. */
    struct Due {
        uint64_t deadline;
        uint32_t order;     /* position in its list: ties keep arming order */
        uint32_t idx;       /* kNil once cancelled or moved from a callback */
        bool operator<(const Due &o) const
        {
            return deadline != o.deadline ? deadline < o.deadline : order < o.order;
        }
    };
    /* What the due list and the next list keep of themselves. */
    struct Flat {
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

    /* The entry a live handle names, or 0. */
    uint32_t lookup(tw_timer timer) const
    {
        uint32_t i = uint32_t(timer);
        if (!pool_.issued(i))
            return 0;
        const Entry &e = pool_.at(i);
        if (e.gen != uint32_t(timer >> 32) || e.list() == Entry::kFree)
            return 0;
        return i;
    }
    static tw_timer handle(uint32_t i, const Entry &e) { return (uint64_t(e.gen) << 32) | i; }

    /* Lists (wheel.cpp). */
    bool empty(uint32_t list) const { return pool_.at(list).next == list; }
    uint32_t list_for(uint64_t deadline) const
    {
        return list_of_tick(deadline, tick_.divide(deadline), cur_);
    }
    uint32_t arm_list(uint64_t deadline) const;
    void append(uint32_t list, uint32_t i);
    void remove(uint32_t i);
    void clear(uint32_t list);
    void note_removed(uint32_t list, uint64_t deadline, bool emptied);
    bool in_order(uint32_t list) const;
    Flat &flat(uint32_t list) const { return flat_[list == kNextList]; }
    uint64_t first_deadline(uint32_t list) const;
    uint64_t list_min(uint32_t list) const;
    bool list_has_due(uint32_t list, uint64_t t) const;
    bool rescan_min(uint32_t list) const;

    /* Arming and releasing (wheel.cpp). */
    uint32_t arm(uint64_t deadline, uint16_t cb, void *userdata);
    int arm_one(uint64_t deadline, tw_timer_cb *cb, void *userdata, tw_timer *ret);
    void release(uint32_t i)
    {
        Entry &e = pool_.at(i);
        callbacks_.unuse(e.cb);
        e.where = Entry::kFree;
        pool_.release(i);
    }
    bool grow_side(uint32_t need);
    uint64_t next_period(uint32_t i, uint64_t fired) const;

    /* The advance (advance.cpp). */
    bool cascade(uint64_t *work, uint64_t limit);
    void slot_to_due(uint32_t list);
    uint32_t gather(uint32_t list, uint64_t t, uint64_t limit);
    void take_round(uint32_t list, uint32_t n, bool some_left);
    void note_rest(uint32_t list, bool in_order, uint64_t last);
    void sort_round(uint32_t n, uint64_t lo, uint64_t hi);
    void sort_list(uint32_t list);
    bool run_list(uint32_t list, Run *run);
    void fire(uint32_t i);
    bool visit_slot(unsigned level, unsigned slot, uint64_t target, Run *run);
    bool pass_one(Run *run);
    bool pass_one_left() const;
    bool finish(Run *run);

    /* The checker (verify.cpp). */
    int broken(const char *what) const;
    int verify_lists(uint32_t *cb_refs, uint64_t *armed) const;
    int verify_entries(uint32_t *cb_refs, uint64_t armed) const;

    Pool<Entry> pool_;
    CallbackTable callbacks_;
    const simd::Kernels *simd_ = &simd::kernels();
    Divider tick_;
    uint64_t now_ns_ = 0;
    uint64_t cur_ = 0;                      /* current tick */
    uint64_t occupied_[kLevels] = {};       /* slot is non-empty */
    mutable uint64_t min_known_[kLevels] = {};  /* slot_min_ is exact */
    uint64_t in_order_[kLevels] = {};       /* slot's deadlines never decrease */
    mutable uint64_t slot_min_[kDueList] = {};
    uint64_t last_[kListCount] = {};        /* while a list is in order: the last
                                               deadline appended, its largest */
    uint32_t cascade_slot_ = kNil;          /* the list of a slot whose cascade
                                               was cut short, or kNil */
    mutable Flat flat_[2];                  /* the due list's, the next list's */
    Phase phase_ = kIdle;
    uint64_t pass_time_ = 0;                /* the open advance's time */

    /* The current dispatch round: [round_at_, round_n_) still to fire.  A
     * budgeted advance may leave it pending until the next advance. */
    Due *round_ = nullptr;
    uint32_t round_cap_ = 0, round_n_ = 0, round_at_ = 0;
    Due *scratch_ = nullptr;                /* the sorts' */
    uint32_t scratch_cap_ = 0;
    /* Side arrays by entry index, made by the first timer that needs one:
     * periods (bit 63 set for the skip policy) and slacks. */
    static constexpr uint64_t kPeriodSkip = uint64_t(1) << 63;
    uint64_t *period_ = nullptr;
    uint32_t *slack_ = nullptr;
    uint32_t period_cap_ = 0, slack_cap_ = 0;
    Histogram late_;                        /* lateness of every fire */

    mutable const char *verify_failure_ = nullptr;
    uint32_t running_ = 0;                  /* the entry whose callback runs */
    bool advancing_ = false;
    bool free_requested_ = false;

    uint64_t scheduled_ = 0, rescheduled_ = 0, cancelled_ = 0, fired_ = 0, cascaded_ = 0;
};

} // namespace tw

#endif
