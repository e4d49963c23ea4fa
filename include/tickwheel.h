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
    XX(ETIMEDOUT, -110, "timed out")                                           \
    XX(EUCLEAN, -117, "internal invariant violated")                           \
    XX(ECANCELED, -125, "cancelled: the loop was freed first")

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
    /* How late timers fired: the advance's now minus the deadline, in ns,
     * over every fire; percentiles are upper bounds of log2 buckets. */
    uint64_t late_p50_ns;
    uint64_t late_p99_ns;
    uint64_t late_max_ns;
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
/* As tw_wheel_schedule, for a timer that may fire anywhere in [deadline_ns,
 * deadline_ns + slack_ns], never before deadline_ns: it is filed at the
 * roundest instant of that window, so timers with overlapping windows share
 * a wake-up.  The slack (at most UINT32_MAX ns, about 4.29 s; more is taken
 * as that) stays with the timer through tw_wheel_reschedule.  The callback
 * and tw_wheel_deadline see the filed instant.  Slack 0 is exact. */
TW__PUBLIC int tw_wheel_schedule_slack(tw_wheel *wheel, uint64_t deadline_ns, uint64_t slack_ns,
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
/* A time never later than the earliest armed deadline: exact, unless the
 * earliest member of that timer's slot left and the slot holds over 240
 * timers, when it is the slot's start.  TW_ENOENT when nothing will fire. */
TW__PUBLIC int tw_wheel_next_deadline(const tw_wheel *wheel,
                                      uint64_t *ret) TW__NOEXCEPT;
/* Moves the wheel's time to now_ns (earlier times are clamped) and runs the
 * callbacks of every timer due, in deadline order, equal deadlines in the
 * order they were armed.  Returns how many fired (saturating at INT32_MAX).
 * TW_EBUSY when called from one of this wheel's callbacks. */
TW__PUBLIC int tw_wheel_advance(tw_wheel *wheel, uint64_t now_ns) TW__NOEXCEPT;
/* As tw_wheel_advance, but returns after at most max_callbacks callbacks
 * (0: no limit), or once it has moved 4 * max_callbacks timers between
 * levels; the timers still due stay due, in order, and fire first at the
 * next advance.  tw_wheel_next_deadline then answers a time <= now. */
TW__PUBLIC int tw_wheel_advance_max(tw_wheel *wheel, uint64_t now_ns,
                                    uint32_t max_callbacks) TW__NOEXCEPT;
/* The wheel's time: the larger of the creation time and the last advance. */
TW__PUBLIC uint64_t tw_wheel_now(const tw_wheel *wheel) TW__NOEXCEPT;
TW__PUBLIC int tw_wheel_stats_get(const tw_wheel *wheel,
                                  tw_wheel_stats *ret) TW__NOEXCEPT;
/* Checks every internal invariant; 0 or TW_EUCLEAN.  O(timers). */
TW__PUBLIC int tw_wheel_verify(const tw_wheel *wheel) TW__NOEXCEPT;


/*
 * The loop: a wheel on one libevent event_base, with one timer event armed
 * at the earliest deadline (no periodic tick: an idle loop never wakes), a
 * clock read once per turn, and a bounded inbox through which other threads
 * reach it.  Everything but the tw_loop_post* family and tw_loop_stop runs
 * on the loop's thread.
 */
struct event_base;
typedef struct tw_loop tw_loop;
/* Monotonic nanoseconds; the default reads CLOCK_MONOTONIC. */
typedef uint64_t tw_clock_fn(void *userdata);
/* A posted function: status 0 when it runs on the loop's thread, or
 * TW_ECANCELED when the loop is freed first (then on the freeing thread). */
typedef void tw_loop_fn(tw_loop *loop, int status, void *userdata);
/* Warnings: level 0 is a warning, 1 information. */
typedef void tw_log_fn(int level, const char *message, void *userdata);

typedef struct tw_loop_config {
    size_t struct_size;       /* sizeof(tw_loop_config), set by _init */
    uint64_t tick_ns;         /* the wheel's tick; default 1 ms */
    uint32_t max_timers;      /* as tw_wheel_config; 0: no limit */
    uint32_t inbox_capacity;  /* commands, rounded up to a power of 2; default 4096 */
    uint32_t budget_callbacks; /* callbacks per loop turn, 0: no limit; default 5000 */
    tw_clock_fn *clock;       /* NULL: CLOCK_MONOTONIC */
    void *clock_userdata;
    tw_log_fn *log;           /* NULL: silent */
    void *log_userdata;
    uint32_t batch_threshold; /* items above which a batch's pure work is shared
                                 with a worker thread; 0: the default, never
                                 below 64; UINT32_MAX: never */
    uint64_t budget_ns;       /* time per loop turn, checked every 64 callbacks;
                                 0: no limit; default 500 us */
} tw_loop_config;

typedef struct tw_loop_stats {
    size_t struct_size;       /* the caller sets sizeof(tw_loop_stats) */
    uint64_t now_ns;          /* the clock as read at the start of the last turn */
    uint64_t turns;           /* times the loop ran: timer event, inbox, by hand */
    uint64_t wakeups;         /* timer event callbacks */
    uint64_t rearms;          /* times the timer event was re-armed */
    uint64_t fired;
    uint64_t budget_stops;    /* turns that left due timers for the next turn */
    uint64_t longest_turn_ns;
    uint64_t late_p50_ns;     /* lateness: turn start minus deadline */
    uint64_t late_p99_ns;
    uint64_t late_max_ns;
    uint64_t inbox_depth;     /* commands waiting now */
    uint64_t inbox_high_water;
    uint64_t inbox_refused;   /* posts answered TW_EAGAIN or TW_ETIMEDOUT */
    uint64_t inbox_run;       /* commands carried out */
    uint64_t clock_backwards; /* clock readings clamped to the previous one */
    uint64_t suspend_ns;      /* total suspend time seen (CLOCK_BOOTTIME gap) */
    uint64_t budget_time_stops; /* budget stops because budget_ns was spent */
    uint64_t batches_direct;  /* batches run on the loop's thread alone */
    uint64_t batches_handoff; /* batches shared with the worker thread */
    uint64_t items_direct;
    uint64_t items_handoff;
} tw_loop_stats;

TW__PUBLIC void tw_loop_config_init(tw_loop_config *config) TW__NOEXCEPT;
/* A loop on base, which it never dispatches itself and which must outlive
 * it (free the loop first); base NULL gives the loop a base of its own,
 * with precise timers, run by tw_loop_run.  The caller owns the loop and
 * frees it with tw_loop_free. */
TW__PUBLIC int tw_loop_new(struct event_base *base, const tw_loop_config *config,
                           tw_loop **ret) TW__NOEXCEPT;
/* Drops armed timers without their callbacks, reports every posted function
 * not yet run with TW_ECANCELED, and frees the loop (and its own base).
 * From one of the loop's callbacks, the free happens when the turn ends.
 * No other thread may post to a loop being freed. */
TW__PUBLIC void tw_loop_free(tw_loop *loop) TW__NOEXCEPT;
/* Dispatches the loop's own base until tw_loop_stop; TW_EINVAL for a loop
 * embedded in a caller's base. */
TW__PUBLIC int tw_loop_run(tw_loop *loop) TW__NOEXCEPT;
/* Makes tw_loop_run return after the current turn.  Any thread. */
TW__PUBLIC int tw_loop_stop(tw_loop *loop) TW__NOEXCEPT;
/* One turn by hand, for a loop driven from another event loop: reads the
 * clock, runs the inbox, fires what is due and re-arms.  Returns how many
 * timers fired. */
TW__PUBLIC int tw_loop_process(tw_loop *loop) TW__NOEXCEPT;
/* A descriptor that polls readable while posted commands wait: a loop
 * driven by hand watches it beside tw_loop_next_deadline and calls
 * tw_loop_process.  Owned by the loop. */
TW__PUBLIC int tw_loop_fd(const tw_loop *loop) TW__NOEXCEPT;
/* The time the loop's clock gave at the start of the current turn. */
TW__PUBLIC uint64_t tw_loop_now(const tw_loop *loop) TW__NOEXCEPT;
/* The earliest time the loop needs to run again; TW_ENOENT when idle. */
TW__PUBLIC int tw_loop_next_deadline(const tw_loop *loop, uint64_t *ret) TW__NOEXCEPT;

/* As the tw_wheel_ functions, on the loop's thread. */
TW__PUBLIC int tw_loop_schedule(tw_loop *loop, uint64_t deadline_ns, tw_timer_cb *cb,
                                void *userdata, tw_timer *ret) TW__NOEXCEPT;
/* Relative to tw_loop_now. */
TW__PUBLIC int tw_loop_schedule_relative(tw_loop *loop, uint64_t delay_ns, tw_timer_cb *cb,
                                         void *userdata, tw_timer *ret) TW__NOEXCEPT;
/* As tw_wheel_schedule_slack: fires in [deadline_ns, deadline_ns + slack_ns]. */
TW__PUBLIC int tw_loop_schedule_slack(tw_loop *loop, uint64_t deadline_ns, uint64_t slack_ns,
                                      tw_timer_cb *cb, void *userdata,
                                      tw_timer *ret) TW__NOEXCEPT;
TW__PUBLIC int tw_loop_cancel(tw_loop *loop, tw_timer timer) TW__NOEXCEPT;
TW__PUBLIC int tw_loop_reschedule(tw_loop *loop, tw_timer timer,
                                  uint64_t deadline_ns) TW__NOEXCEPT;

/* From any thread: queues fn to run on the loop's thread.  TW_EAGAIN when
 * the inbox is full (nothing queued).  Every accepted function runs exactly
 * once, or is reported TW_ECANCELED when the loop is freed. */
TW__PUBLIC int tw_loop_post(tw_loop *loop, tw_loop_fn *fn, void *userdata) TW__NOEXCEPT;
/* As tw_loop_post, but waits up to timeout_ns for room; TW_ETIMEDOUT. */
TW__PUBLIC int tw_loop_post_wait(tw_loop *loop, tw_loop_fn *fn, void *userdata,
                                 uint64_t timeout_ns) TW__NOEXCEPT;
/* From any thread: queued timer commands.  A timer scheduled this way is
 * known to its callback by the handle it receives; cancel and reschedule
 * take a handle the caller got from the loop's thread, and a stale one is
 * ignored. */
TW__PUBLIC int tw_loop_post_schedule(tw_loop *loop, uint64_t deadline_ns, tw_timer_cb *cb,
                                     void *userdata) TW__NOEXCEPT;
TW__PUBLIC int tw_loop_post_cancel(tw_loop *loop, tw_timer timer) TW__NOEXCEPT;
TW__PUBLIC int tw_loop_post_reschedule(tw_loop *loop, tw_timer timer,
                                       uint64_t deadline_ns) TW__NOEXCEPT;

TW__PUBLIC int tw_loop_stats_get(const tw_loop *loop, tw_loop_stats *ret) TW__NOEXCEPT;

#if defined(__cplusplus)
}
#endif

#endif
