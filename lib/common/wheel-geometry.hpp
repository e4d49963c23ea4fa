/*
 * The wheel's geometry, written once for the wheel and for the scalar twin
 * of the batch list kernel: how a deadline becomes a tick, and a tick a
 * list.
 *
 * Ticks are deadline / tick_ns, by a shift when tick_ns is a power of two,
 * else by the high half of a 64 x 128-bit multiply with ceil(2^128 / tick_ns),
 * exact for every 64-bit deadline.  Ten levels of 64 slots cover every
 * 64-bit tick: a tick that differs from the wheel's current tick `cur`
 * first in 6-bit group L goes to level L, in the slot named by its own
 * group L; a tick <= cur goes to the due list, TW_NEVER to the never list.
 *
 * Uses: tickwheel.h (TW_NEVER), common/arith.hpp; header-only, no state.
 */
#ifndef TW_COMMON_WHEEL_GEOMETRY_HPP
#define TW_COMMON_WHEEL_GEOMETRY_HPP

#include <cstdint>

#include "common/arith.hpp"
#include "tickwheel.h"

namespace tw {

constexpr unsigned kLevelBits = 6;
constexpr unsigned kSlots = 1u << kLevelBits;
constexpr unsigned kLevels = 10;
static_assert(kLevels * kLevelBits >= 64 - 9, "levels must cover 2^64 / TW_TICK_MIN_NS ticks");

/* List ids: level * kSlots + slot, then the due list, the never list and
 * the next list (timers the running advance fires in its second pass). */
constexpr uint32_t kDueList = kLevels * kSlots;
constexpr uint32_t kNeverList = kDueList + 1;
constexpr uint32_t kNextList = kDueList + 2;
constexpr uint32_t kListCount = kDueList + 3;

/* How to divide by the tick: a shift (shift >= 0) or a reciprocal. */
struct TickDivision {
    uint64_t recip_lo = 0, recip_hi = 0;
    int shift = 0;
};

inline TickDivision tick_division(uint64_t tick_ns)
{
    TickDivision t;
    if ((tick_ns & (tick_ns - 1)) == 0) {
        t.shift = __builtin_ctzll(tick_ns);
        return t;
    }
    /* ceil(2^128 / d): exact for all n < 2^64 because 128 >= 64 + log2(d). */
    u128 c = ~u128(0) / tick_ns + 1;
    t.shift = -1;
    t.recip_lo = uint64_t(c);
    t.recip_hi = uint64_t(c >> 64);
    return t;
}

inline uint64_t tick_of(const TickDivision &t, uint64_t deadline)
{
    if (t.shift >= 0)
        return deadline >> t.shift;
    u128 lo = u128(deadline) * t.recip_lo;
    u128 hi = u128(deadline) * t.recip_hi + (lo >> 64);
    return uint64_t(hi >> 64);
}

/* n / tick for a tick fixed at run time. */
class Divider {
public:
    void init(uint64_t d)
    {
        d_ = d;
        div_ = tick_division(d);
    }
    uint64_t divide(uint64_t n) const { return tick_of(div_, n); }
    uint64_t divisor() const { return d_; }
    const TickDivision &division() const { return div_; }

private:
    uint64_t d_ = 1;
    TickDivision div_;
};

/* The list of a deadline at tick t when the wheel is at tick cur. */
inline uint32_t list_of_tick(uint64_t deadline, uint64_t t, uint64_t cur)
{
    if (deadline == TW_NEVER)
        return kNeverList;
    if (t <= cur)
        return kDueList;
    unsigned level = (63u - unsigned(__builtin_clzll(t ^ cur))) / kLevelBits;
    return level * kSlots + (unsigned(t >> (level * kLevelBits)) & (kSlots - 1));
}

inline unsigned level_of_list(uint32_t list) { return list / kSlots; }
inline uint64_t slot_bit(uint32_t list) { return uint64_t(1) << (list % kSlots); }

/* The first tick of a slot's range, with the wheel at tick cur. */
inline uint64_t slot_start_tick(uint64_t cur, unsigned level, unsigned slot)
{
    unsigned above = (level + 1) * kLevelBits;
    uint64_t high = above >= 64 ? 0 : cur >> above << above;
    return high | (uint64_t(slot) << (level * kLevelBits));
}

/* Ticks in one slot of a level. */
inline uint64_t slot_span(unsigned level)
{
    return uint64_t(1) << (level * kLevelBits);
}

} // namespace tw

#endif
