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
 * Invariant: an entry's list is a function of (deadline, cur) alone.  It
 * holds because a slot is cascaded exactly when cur reaches the start of
 * its range, and it buys three things: every occupied slot of a level lies
 * after cur in that level (no wrap-around, no overflow structure); timers
 * with equal deadlines always share a list, so appending at the tail and
 * moving whole lists in order keeps them in arming order; and the earliest
 * timer is in the lowest occupied level's lowest occupied slot, found with
 * one count-trailing-zeros per level.
 *
 * Exactness: advance(now) visits occupied slots in time order (O(levels)
 * each), so every timer whose deadline is <= now fires, and none other.
 * Within a visit, the due list is merge-sorted by deadline (stable) unless
 * it is already in order, which is the common case.
 *
 * Each slot caches the minimum deadline of its members while it is known
 * exactly; cancelling that member drops the cache until the slot empties,
 * and next_deadline() then answers the slot's start instead (never late).
 */
#ifndef TW_WHEEL_HPP
#define TW_WHEEL_HPP

#include <cstdint>

#include "pool/pool.hpp"
#include "tickwheel.h"

namespace tw {

__extension__ typedef unsigned __int128 u128;

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

private:
    uint64_t d_ = 1, lo_ = 0, hi_ = 0;
    int shift_ = 0;
};

class Wheel {
public:
    static constexpr unsigned kLevelBits = 6;
    static constexpr unsigned kSlots = 1u << kLevelBits;
    static constexpr unsigned kLevels = 10;
    static constexpr uint32_t kDue = kLevels * kSlots;
    static constexpr uint32_t kFiring = kDue + 1;
    static constexpr uint32_t kNever = kDue + 2;
    static constexpr uint32_t kSentinels = kDue + 3;
    static constexpr uint32_t kMaxCallbacks = 0xffff;

    Wheel() = default;
    Wheel(const Wheel &) = delete;
    Wheel &operator=(const Wheel &) = delete;
    ~Wheel();

    int init(const tw_wheel_config &config, uint64_t now_ns);

    int schedule(uint64_t deadline, tw_timer_cb *cb, void *userdata, tw_timer *ret);
    int schedule_batch(size_t n, const uint64_t *deadlines, tw_timer_cb *cb,
                       void *const *userdata, tw_timer *ret);
    int cancel(tw_timer timer);
    int reschedule(tw_timer timer, uint64_t deadline);
    int deadline(tw_timer timer, uint64_t *ret) const;
    int next_deadline(uint64_t *ret) const;
    uint64_t advance(uint64_t now_ns);
    uint64_t now() const { return now_ns_; }
    void stats(tw_wheel_stats *ret) const;
    int verify() const;

    bool advancing() const { return advancing_; }
    /* Asks the running advance to stop dispatching and free the wheel. */
    void request_free() { free_requested_ = true; }
    bool free_requested() const { return free_requested_; }

private:
    /* The entry a live handle names, or 0. */
    uint32_t lookup(tw_timer timer) const
    {
        uint32_t i = uint32_t(timer);
        if (!pool_.issued(i))
            return 0;
        const Entry &e = pool_.at(i);
        if (e.gen != uint32_t(timer >> 32) || e.where == kWhereFree)
            return 0;
        return i;
    }
    static tw_timer handle(uint32_t i, const Entry &e) { return (uint64_t(e.gen) << 32) | i; }

    uint32_t list_for(uint64_t deadline) const;
    uint64_t slot_start_tick(unsigned level, unsigned slot) const;
    void link_tail(uint32_t list, uint32_t i);
    void unlink(uint32_t i);
    void splice_tail(uint32_t to, uint32_t from);
    int callback_index(tw_timer_cb *cb);
    uint32_t arm(uint64_t deadline, uint16_t cb, void *userdata);
    void cascade(unsigned level, unsigned slot);
    uint64_t run_due(uint64_t now_ns);
    void sort_due();
    bool list_empty(uint32_t list) const { return pool_.at(list).next == list; }

    Pool pool_;
    Divider tick_;
    uint64_t now_ns_ = 0;
    uint64_t cur_ = 0;                      /* current tick */
    uint64_t occupied_[kLevels] = {};       /* slot is non-empty */
    uint64_t min_known_[kLevels] = {};      /* slot_min_ is exact */
    uint64_t slot_min_[kDue] = {};
    mutable uint64_t due_min_ = 0;
    mutable bool due_min_known_ = false;

    tw_timer_cb **cbs_ = nullptr;           /* callback table */
    uint32_t ncbs_ = 0, cbs_cap_ = 0;
    uint32_t *cb_hash_ = nullptr;           /* open addressing: index + 1 */
    uint32_t cb_hash_mask_ = 0;
    tw_timer_cb *last_cb_ = nullptr;
    uint16_t last_cb_index_ = 0;

    bool advancing_ = false;
    bool free_requested_ = false;

    uint64_t scheduled_ = 0, rescheduled_ = 0, cancelled_ = 0, fired_ = 0, cascaded_ = 0;
};

} // namespace tw

#endif
