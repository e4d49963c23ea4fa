/*
 * The arithmetic rules every part of the library shares, written once.
 *
 * Times are uint64_t nanoseconds and TW_NEVER (UINT64_MAX) means "never":
 * a sum of times saturates there rather than wrapping to the past.  A sum
 * that must stay a real instant (the end of a slack window) saturates one
 * below it instead.  Counts handed to C as int saturate at INT_MAX.
 *
 * Uses: tickwheel.h (TW_NEVER) only; header-only, no state.
 */
#ifndef TW_COMMON_ARITH_HPP
#define TW_COMMON_ARITH_HPP

#include <climits>
#include <cstdint>

#include "tickwheel.h"

namespace tw {

/* Products of 64-bit times and counts are formed in 128 bits. */
__extension__ typedef unsigned __int128 u128;

inline uint64_t min64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

inline uint64_t max64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

/* a + b, or TW_NEVER when the sum passes the end of time. */
inline uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > TW_NEVER - b ? TW_NEVER : a + b;
}

/* A 128-bit product or sum as a time: TW_NEVER when it does not fit. */
inline uint64_t sat_u128(u128 v)
{
    return v >= TW_NEVER ? TW_NEVER : uint64_t(v);
}

/* The end of a window that may fire up to slack after deadline.  A sum
 * past the end of time saturates at TW_NEVER - 1, not at TW_NEVER, which
 * would mean never and leave a window that must fire unfiled; a deadline
 * of TW_NEVER stays never. */
inline uint64_t window_end(uint64_t deadline, uint32_t slack)
{
    if (deadline == TW_NEVER)
        return TW_NEVER;
    return deadline > TW_NEVER - 1 - slack ? TW_NEVER - 1 : deadline + slack;
}

/* The instant of [first, last] with the most trailing zero bits: the bits
 * above the highest one in which first - 1 and last differ, then zeros.
 * Timers filed there from overlapping windows share one wake-up.  Needs
 * 0 < first < last. */
inline uint64_t roundest_in(uint64_t first, uint64_t last)
{
    unsigned k = 63u - unsigned(__builtin_clzll((first - 1) ^ last));
    return last & ~((uint64_t(1) << k) - 1);
}

/* A slack as the 32 bits it is kept in: at most UINT32_MAX ns (~4.29 s). */
inline uint32_t clamp_u32(uint64_t v)
{
    return v > UINT32_MAX ? UINT32_MAX : uint32_t(v);
}

/* A count returned through an int: INT_MAX when it does not fit. */
inline int clamp_int(uint64_t n)
{
    return n > uint64_t(INT_MAX) ? INT_MAX : int(n);
}

} // namespace tw

#endif
