/*
 * Reading a kernel clock as nanoseconds.  Only lib/loop reads clocks for
 * time: the loop's time (CLOCK_MONOTONIC, CLOCK_BOOTTIME for suspends) and
 * the worker's bound on how long it spins.  The wheel and the layers are
 * given the time as an argument (the wheel reads one only to seed its
 * handle key when the kernel has no random bytes).
 *
 * Uses: nothing of the library; header-only.
 */
#ifndef TW_COMMON_CLOCK_HPP
#define TW_COMMON_CLOCK_HPP

#include <cstdint>

#include <time.h>

namespace tw {

constexpr uint64_t kNsPerSec = 1000000000u;

inline uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return uint64_t(ts.tv_sec) * kNsPerSec + uint64_t(ts.tv_nsec);
}

} // namespace tw

#endif
