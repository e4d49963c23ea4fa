/*
 * tickwheel -- the timer engine of an event-loop protocol stack.
 *
 * A tickless hierarchical timing wheel with nanosecond deadlines.  Timers
 * are armed at absolute CLOCK_MONOTONIC nanoseconds (or relative to the
 * wheel's current time) and fire from tw_wheel_advance() in deadline order,
 * never before their deadline and never more than one tick after it.
 * Schedule, cancel and reschedule cost O(1); the next deadline and an
 * advance over an idle gap cost O(levels), never O(elapsed ticks).
 *
 * Conventions: functions return 0 (or a count) on success and a negative
 * TW_E* code on failure; out-parameters come last and are named ret;
 * UINT64_MAX as a deadline means "never".  Nothing here keeps global state;
 * every object is created by the caller and is used from one thread at a
 * time.  Full semantics live in tickwheel(3) and the per-family pages.
 */
#ifndef TICKWHEEL_H
#define TICKWHEEL_H

#include <stddef.h>
#include <stdint.h>

#include "tickwheel-version.h"

#if defined(__cplusplus)
#define TW__NOEXCEPT noexcept
extern "C" {
#else
#define TW__NOEXCEPT
#endif

#if defined(__GNUC__)
#define TW__PUBLIC __attribute__((visibility("default")))
#else
#define TW__PUBLIC
#endif

/* Error codes: negative, with the values of the Linux errno they resemble. */
#define TW__ERRNO_MAP(XX)                                                      \
    XX(ENOENT, -2, "no such timer: fired, cancelled or never valid")           \
    XX(EAGAIN, -11, "resource temporarily unavailable")                        \
    XX(ENOMEM, -12, "out of memory or timer limit reached")                    \
    XX(EBUSY, -16, "operation not allowed while the wheel is advancing")       \
    XX(EINVAL, -22, "invalid argument")                                        \
    XX(ENOSPC, -28, "too many distinct callbacks")                             \
    XX(ERANGE, -34, "value out of range")                                      \
    XX(EUCLEAN, -117, "internal invariant violated")

enum {
#define TW__ERRNO_ENUM(name, value, text) TW_##name = value,
    TW__ERRNO_MAP(TW__ERRNO_ENUM)
#undef TW__ERRNO_ENUM
    TW__ERRNO_END = 0
};

/* "invalid argument" for TW_EINVAL; "unknown error" for anything else. */
TW__PUBLIC const char *tw_strerror(int err) TW__NOEXCEPT;
/* "TW_EINVAL" for TW_EINVAL; NULL for a value that is not a TW_E* code. */
TW__PUBLIC const char *tw_err_name(int err) TW__NOEXCEPT;
/* The library's version as "MAJOR.MINOR.PATCH"; see tickwheel-version.h. */
TW__PUBLIC const char *tw_version(void) TW__NOEXCEPT;

#define TW_NEVER UINT64_MAX

/* Limits of the tick, the granularity of the wheel's lowest level. */
#define TW_TICK_MIN_NS UINT64_C(1000)
#define TW_TICK_MAX_NS UINT64_C(1000000000)
#define TW_TICK_DEFAULT_NS UINT64_C(1000000)

typedef struct tw_wheel tw_wheel;
/* A timer handle: a slot index and a generation.  0 is never a valid timer;
 * a handle whose timer fired or was cancelled answers TW_ENOENT and never
 * refers to another timer (until its slot is reused 2^32 times). */
typedef uint64_t tw_timer;
typedef void tw_timer_cb(tw_timer timer, uint64_t deadline_ns, void *userdata);

typedef struct tw_wheel_config {
    size_t struct_size;       /* sizeof(tw_wheel_config), set by _init */
    uint64_t tick_ns;         /* TW_TICK_MIN_NS .. TW_TICK_MAX_NS; default 1 ms */
    uint32_t max_timers;      /* live timers at most; 0: no limit but memory */
    uint32_t initial_timers;  /* entries allocated up front by tw_wheel_new */
} tw_wheel_config;

typedef struct tw_wheel_stats {
    size_t struct_size;       /* the caller sets sizeof(tw_wheel_stats) */
    uint64_t now_ns;          /* the time of the last advance */
    uint64_t live;            /* timers armed now */
    uint64_t scheduled;       /* successful schedules, batches counted per timer */
    uint64_t rescheduled;
    uint64_t cancelled;
    uint64_t fired;
    uint64_t cascaded;        /* entries moved to a lower level */
    uint64_t capacity;        /* entries allocated */
    uint64_t high_water;      /* most entries in use at once */
    uint64_t reused;          /* schedules served from the free list */
    uint64_t bytes;           /* heap held by the wheel */
} tw_wheel_stats;

/* Fills config with the defaults and sets its struct_size. */
TW__PUBLIC void tw_wheel_config_init(tw_wheel_config *config) TW__NOEXCEPT;

/* Creates a wheel whose time starts at now_ns.  config NULL gives the
 * defaults.  The caller owns the wheel and frees it with tw_wheel_free();
 * every handle it gave out becomes invalid then. */
TW__PUBLIC int tw_wheel_new(const tw_wheel_config *config, uint64_t now_ns,
                            tw_wheel **ret) TW__NOEXCEPT;
/* Frees the wheel; armed timers are dropped without their callbacks.
 * Called from a callback, the free happens when the advance returns.
 * NULL is a no-op. */
TW__PUBLIC void tw_wheel_free(tw_wheel *wheel) TW__NOEXCEPT;

/* Arms cb(timer, deadline_ns, userdata) at deadline_ns.  A deadline at or
 * before now is due at the next advance; TW_NEVER arms a timer that never
 * fires until rescheduled.  On failure cb never runs and *ret is 0. */
TW__PUBLIC int tw_wheel_schedule(tw_wheel *wheel, uint64_t deadline_ns,
                                 tw_timer_cb *cb, void *userdata,
                                 tw_timer *ret) TW__NOEXCEPT;
/* As tw_wheel_schedule at now + delay_ns; a sum past the 64-bit range
 * saturates to TW_NEVER. */
TW__PUBLIC int tw_wheel_schedule_relative(tw_wheel *wheel, uint64_t delay_ns,
                                          tw_timer_cb *cb, void *userdata,
                                          tw_timer *ret) TW__NOEXCEPT;
/* Arms n timers with one callback; userdata may be NULL (all NULL).  All or
 * nothing: on failure no timer is armed and ret is untouched. */
TW__PUBLIC int tw_wheel_schedule_batch(tw_wheel *wheel, size_t n,
                                       const uint64_t *deadlines_ns,
                                       tw_timer_cb *cb, void *const *userdata,
                                       tw_timer *ret) TW__NOEXCEPT;
/* Disarms an armed timer.  TW_ENOENT: it fired, was cancelled or was never
 * valid; a timer inside its own callback is not armed. */
TW__PUBLIC int tw_wheel_cancel(tw_wheel *wheel, tw_timer timer) TW__NOEXCEPT;
/* Moves an armed timer, or re-arms the one whose callback is running, to
 * deadline_ns.  The handle stays the same. */
TW__PUBLIC int tw_wheel_reschedule(tw_wheel *wheel, tw_timer timer,
                                   uint64_t deadline_ns) TW__NOEXCEPT;
/* The deadline an armed timer will fire at. */
TW__PUBLIC int tw_wheel_deadline(const tw_wheel *wheel, tw_timer timer,
                                 uint64_t *ret) TW__NOEXCEPT;
/* A time never later than the earliest armed deadline (exact unless that
 * timer sits in a level above 0 whose earliest member was cancelled, when
 * it is the start of that level's slot).  TW_ENOENT when nothing will fire. */
TW__PUBLIC int tw_wheel_next_deadline(const tw_wheel *wheel,
                                      uint64_t *ret) TW__NOEXCEPT;
/* Moves the wheel's time to now_ns (earlier times are clamped) and runs the
 * callbacks of every timer due, in deadline order, equal deadlines in the
 * order they were armed.  Returns how many fired (saturating at INT32_MAX).
 * TW_EBUSY when called from one of this wheel's callbacks. */
TW__PUBLIC int tw_wheel_advance(tw_wheel *wheel, uint64_t now_ns) TW__NOEXCEPT;
/* The wheel's time: the larger of the creation time and the last advance. */
TW__PUBLIC uint64_t tw_wheel_now(const tw_wheel *wheel) TW__NOEXCEPT;
TW__PUBLIC int tw_wheel_stats_get(const tw_wheel *wheel,
                                  tw_wheel_stats *ret) TW__NOEXCEPT;
/* Checks every internal invariant; 0 or TW_EUCLEAN.  O(timers). */
TW__PUBLIC int tw_wheel_verify(const tw_wheel *wheel) TW__NOEXCEPT;

#if defined(__cplusplus)
}
#endif

#endif
