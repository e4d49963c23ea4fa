/*
 * Reading a kernel clock as nanoseconds, for the tools in C and C++:
 * tw-sim times its run and its CPU, tw-bench and tw-bench-internal their
 * timed loops.  A clock that cannot be read ends the process (status 1):
 * a figure taken from it would be wrong.
 *
 * Uses: nothing of the library; header-only.
 */
#ifndef TW_TOOLS_CLOCK_H
#define TW_TOOLS_CLOCK_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    if (clock_gettime(id, &ts) != 0) {
        perror("clock_gettime");
        _Exit(1);
    }
    return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

static inline uint64_t mono_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}

#endif
