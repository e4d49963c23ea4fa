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
    XX(EMFILE, -24, "no file descriptor available")                            \
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
/* A walk's visitor: non-zero stops the walk and is what the walk returns. */
typedef int tw_timer_visit_fn(tw_timer timer, uint64_t deadline_ns, void *userdata, void *ctx);
/* Periodic timers: what a timer does about periods missed at once. */
#define TW_PERIODIC_CATCH_UP 0u   /* fires once for each, one after the other */
#define TW_PERIODIC_SKIP 1u       /* fires once, then at the first period after now */

typedef struct tw_wheel_config {
    size_t struct_size;       /* sizeof(tw_wheel_config), set by _init */
    uint64_t tick_ns;         /* TW_TICK_MIN_NS .. TW_TICK_MAX_NS; default 1 ms */
    uint32_t max_timers;      /* live timers at most; 0: no limit but memory */
    uint32_t initial_timers;  /* entries allocated up front by tw_wheel_new */
} tw_wheel_config;

typedef struct tw_wheel_stats {
    size_t struct_size;       /* the caller sets sizeof(tw_wheel_stats) */
    uint64_t now_ns;          /* the wheel's time, as tw_wheel_now gives it */
    uint64_t live;            /* timers armed, and the one whose callback runs */
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
     * over every fire; percentiles within 1 %. */
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
/* Arms a timer due at first_ns, then at first_ns + k * period_ns for every
 * k (never drifting); flags is a TW_PERIODIC_* policy.  Re-armed before
 * each callback runs, so the callback may cancel or move it. */
TW__PUBLIC int tw_wheel_schedule_periodic(tw_wheel *wheel, uint64_t first_ns,
                                          uint64_t period_ns, unsigned flags,
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
/* Disarms every armed timer of timers[0 .. n); handles that are stale, 0
 * or repeated are skipped, not errors.  *ret (may be NULL) counts the
 * timers disarmed. */
TW__PUBLIC int tw_wheel_cancel_batch(tw_wheel *wheel, size_t n, const tw_timer *timers,
                                     size_t *ret) TW__NOEXCEPT;
/* Moves an armed timer, or re-arms the one whose callback is running, to
 * deadline_ns.  The handle stays the same. */
TW__PUBLIC int tw_wheel_reschedule(tw_wheel *wheel, tw_timer timer,
                                   uint64_t deadline_ns) TW__NOEXCEPT;
/* The deadline an armed timer will fire at. */
TW__PUBLIC int tw_wheel_deadline(const tw_wheel *wheel, tw_timer timer,
                                 uint64_t *ret) TW__NOEXCEPT;
/* The period of a periodic timer; TW_ENOENT for any other. */
TW__PUBLIC int tw_wheel_period(const tw_wheel *wheel, tw_timer timer,
                               uint64_t *ret) TW__NOEXCEPT;
/* Armed timers, parked ones included; the one whose callback runs is not. */
TW__PUBLIC size_t tw_wheel_count(const tw_wheel *wheel) TW__NOEXCEPT;
/* Calls fn for every armed timer, in no particular order, until it returns
 * non-zero; fn may cancel, reschedule or schedule timers. */
TW__PUBLIC int tw_wheel_foreach(tw_wheel *wheel, tw_timer_visit_fn *fn,
                                void *ctx) TW__NOEXCEPT;
/* Cancels every armed timer; *ret (may be NULL) counts them. */
TW__PUBLIC int tw_wheel_cancel_all(tw_wheel *wheel, size_t *ret) TW__NOEXCEPT;
/* A time never later than the earliest armed deadline, and usually that
 * deadline (tw_wheel_advance(3) says when it is earlier).  TW_ENOENT when
 * nothing will fire. */
TW__PUBLIC int tw_wheel_next_deadline(const tw_wheel *wheel,
                                      uint64_t *ret) TW__NOEXCEPT;
/* Moves the wheel's time to now_ns (earlier times are clamped) and runs the
 * callbacks of every timer due, in deadline order, equal deadlines in the
 * order they were armed; then, once, those its callbacks armed due.
 * Returns how many fired (saturating at INT32_MAX).  TW_EBUSY when called
 * from one of this wheel's callbacks. */
TW__PUBLIC int tw_wheel_advance(tw_wheel *wheel, uint64_t now_ns) TW__NOEXCEPT;
/* As tw_wheel_advance, but returns after at most max_callbacks callbacks
 * (0: no limit), or sooner once it has moved as many timers between levels
 * as tw_wheel_advance(3) allows for that budget; the timers still due stay
 * due, in order, and fire first at the next advance.
 * tw_wheel_next_deadline then answers a time <= now. */
TW__PUBLIC int tw_wheel_advance_max(tw_wheel *wheel, uint64_t now_ns,
                                    uint32_t max_callbacks) TW__NOEXCEPT;
/* The wheel's time: the larger of the creation time and the last advance. */
TW__PUBLIC uint64_t tw_wheel_now(const tw_wheel *wheel) TW__NOEXCEPT;
TW__PUBLIC int tw_wheel_stats_get(const tw_wheel *wheel,
                                  tw_wheel_stats *ret) TW__NOEXCEPT;
/* Checks every internal invariant; 0 or TW_EUCLEAN.  O(timers). */
TW__PUBLIC int tw_wheel_verify(const tw_wheel *wheel) TW__NOEXCEPT;


/*
 * The loop: a wheel on one libevent event_base, with one timer descriptor set
 * at the earliest deadline (no periodic tick: an idle loop never wakes), a
 * clock read once per turn (and again by calls that need the time between
 * turns), and a bounded inbox through which other threads reach it.
 * Everything but the tw_loop_post* family and tw_loop_stop runs on the
 * loop's thread.
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
    uint64_t budget_ns;       /* time per loop turn, checked between chunks of
                                 callbacks (tw_loop_new(3)); 0: no limit;
                                 default 500 us */
} tw_loop_config;

typedef struct tw_loop_stats {
    size_t struct_size;       /* the caller sets sizeof(tw_loop_stats) */
    uint64_t now_ns;          /* the loop's time as last read, in or between turns */
    uint64_t turns;           /* times the loop ran: timer, inbox, by hand,
                                 and each catch-up pass */
    uint64_t wakeups;         /* the timer descriptor went off */
    uint64_t rearms;          /* times the timer descriptor was set */
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
    uint64_t catch_ups;       /* extra passes of a turn for deadlines passed meanwhile */
} tw_loop_stats;

TW__PUBLIC void tw_loop_config_init(tw_loop_config *config) TW__NOEXCEPT;
/* A loop on base, which it never dispatches itself and which must outlive
 * it (free the loop first); base NULL gives the loop a base of its own,
 * run by tw_loop_run.  Either way the loop times itself with a timerfd the
 * base polls, so the base needs no particular configuration.  The caller
 * owns the loop and frees it with tw_loop_free. */
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
/* As tw_loop_run, but returns as well once nothing is armed to fire (parked
 * timers aside: connections count by their armed kinds) and no posted
 * command waits. */
TW__PUBLIC int tw_loop_run_until_idle(tw_loop *loop) TW__NOEXCEPT;
/* Makes tw_loop_run return after the current turn.  Any thread. */
TW__PUBLIC int tw_loop_stop(tw_loop *loop) TW__NOEXCEPT;
/* One turn by hand, for a loop driven from another event loop: reads the
 * clock, runs the inbox, fires what is due and re-arms.  Returns how many
 * timers fired. */
TW__PUBLIC int tw_loop_process(tw_loop *loop) TW__NOEXCEPT;
/* A descriptor that polls readable while posted commands wait or, with
 * the built-in clock, a timer is due: a loop driven by hand polls it
 * alone, with no timeout, and calls tw_loop_process when it is readable.
 * Owned by the loop. */
TW__PUBLIC int tw_loop_fd(const tw_loop *loop) TW__NOEXCEPT;
/* The loop's time: inside a turn, the clock as read at the turn's start;
 * outside one, the clock read afresh.  Relative deadlines and touches
 * count from it. */
TW__PUBLIC uint64_t tw_loop_now(const tw_loop *loop) TW__NOEXCEPT;
/* The earliest time the loop needs to run again; TW_ENOENT when idle. */
TW__PUBLIC int tw_loop_next_deadline(const tw_loop *loop, uint64_t *ret) TW__NOEXCEPT;

/* As the tw_wheel_ functions, on the loop's thread. */
TW__PUBLIC int tw_loop_schedule(tw_loop *loop, uint64_t deadline_ns, tw_timer_cb *cb,
                                void *userdata, tw_timer *ret) TW__NOEXCEPT;
/* Relative to tw_loop_now. */
TW__PUBLIC int tw_loop_schedule_relative(tw_loop *loop, uint64_t delay_ns, tw_timer_cb *cb,
                                         void *userdata, tw_timer *ret) TW__NOEXCEPT;
/* As tw_wheel_schedule_batch; re-arms the loop's event when the batch
 * brings the earliest deadline forward. */
TW__PUBLIC int tw_loop_schedule_batch(tw_loop *loop, size_t n, const uint64_t *deadlines_ns,
                                      tw_timer_cb *cb, void *const *userdata,
                                      tw_timer *ret) TW__NOEXCEPT;
/* As tw_wheel_schedule_slack: fires in [deadline_ns, deadline_ns + slack_ns]. */
TW__PUBLIC int tw_loop_schedule_slack(tw_loop *loop, uint64_t deadline_ns, uint64_t slack_ns,
                                      tw_timer_cb *cb, void *userdata,
                                      tw_timer *ret) TW__NOEXCEPT;
TW__PUBLIC int tw_loop_cancel(tw_loop *loop, tw_timer timer) TW__NOEXCEPT;
/* As tw_wheel_schedule_periodic, tw_wheel_deadline and tw_wheel_period. */
TW__PUBLIC int tw_loop_schedule_periodic(tw_loop *loop, uint64_t first_ns, uint64_t period_ns,
                                         unsigned flags, tw_timer_cb *cb, void *userdata,
                                         tw_timer *ret) TW__NOEXCEPT;
TW__PUBLIC int tw_loop_deadline(const tw_loop *loop, tw_timer timer,
                                uint64_t *ret) TW__NOEXCEPT;
TW__PUBLIC int tw_loop_period(const tw_loop *loop, tw_timer timer,
                              uint64_t *ret) TW__NOEXCEPT;
/* As tw_wheel_count, tw_wheel_foreach and tw_wheel_cancel_all, over the
 * loop's timers (its connections' are not among them). */
TW__PUBLIC size_t tw_loop_count(const tw_loop *loop) TW__NOEXCEPT;
TW__PUBLIC int tw_loop_foreach_timer(tw_loop *loop, tw_timer_visit_fn *fn,
                                     void *ctx) TW__NOEXCEPT;
TW__PUBLIC int tw_loop_cancel_all(tw_loop *loop, size_t *ret) TW__NOEXCEPT;
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

/*
 * The reliability layer: an RTT estimator, loss detection and the probe
 * timeout of RFC 9002 (QUIC), or the retransmission timeout of RFC 6298
 * (TCP), over the packets a connection sent, with the caller's frame
 * handles.  Pure computation: no clock reads, no timers of its own.  It
 * keeps one loss-detection deadline for the whole connection (the earliest
 * over the three packet-number spaces, never one per packet), which the
 * caller arms wherever it keeps timers and hands back to tw_recovery_check.
 * Times are absolute nanoseconds; a time earlier than the latest one seen is
 * taken as that one.  Semantics and every choice the RFCs leave open:
 * tw_recovery_new(3).
 */
typedef struct tw_recovery tw_recovery;

/* Packet-number spaces. */
enum { TW_PN_INITIAL, TW_PN_HANDSHAKE, TW_PN_APPLICATION, TW_PN_SPACES };
/* Modes. */
enum { TW_RECOVERY_RFC9002 = 0, TW_RECOVERY_RFC6298 = 1 };

/* Events answered by tw_recovery_check. */
#define TW_RECOVERY_LOSS (1u << 0)  /* packets declared lost by time threshold */
#define TW_RECOVERY_PTO (1u << 1)   /* probe timeout: send one or two probes */
#define TW_RECOVERY_RTO (1u << 2)   /* RFC 6298 timeout: the oldest packet was lost */
/* The packet-number space the events of a check are about. */
#define TW_RECOVERY_EVENT_SPACE(events) (((events) >> 8) & 3u)

/* Flags of tw_recovery_on_sent. */
#define TW_RECOVERY_ACK_ELICITING (1u << 0) /* elicits an ACK; counts in flight */
#define TW_RECOVERY_RETRANSMISSION (1u << 1) /* carries a retransmission (Karn) */

/* An inclusive range of acknowledged packet numbers. */
typedef struct tw_ack_range {
    uint64_t smallest;
    uint64_t largest;
} tw_ack_range;

typedef struct tw_recovery_config {
    size_t struct_size;        /* sizeof(tw_recovery_config), set by _init */
    uint32_t mode;             /* TW_RECOVERY_RFC9002 (default) or _RFC6298 */
    uint32_t is_server;        /* 1: the peer's address needs no validation */
    uint64_t initial_rtt_ns;   /* kInitialRtt; default 333 ms */
    uint64_t max_ack_delay_ns; /* the peer's max_ack_delay; default 25 ms */
    uint64_t granularity_ns;   /* kGranularity, and G of RFC 6298; default 1 ms */
    uint32_t packet_threshold; /* kPacketThreshold; default 3 */
    uint32_t time_threshold_num; /* kTimeThreshold as a fraction; default 9/8 */
    uint32_t time_threshold_den;
    uint32_t max_in_flight;    /* packets tracked at most; 0: no limit */
    uint64_t rto_initial_ns;   /* RFC 6298; default 1 s */
    uint64_t rto_min_ns;       /* default 1 s */
    uint64_t rto_max_ns;       /* at least 60 s; default 60 s */
} tw_recovery_config;

/* The RTT estimate; the caller sets struct_size. */
typedef struct tw_rtt {
    size_t struct_size;
    uint64_t latest_ns;        /* 0 before the first sample */
    uint64_t smoothed_ns;      /* kInitialRtt before the first sample */
    uint64_t rttvar_ns;        /* kInitialRtt / 2 before the first sample */
    uint64_t min_ns;           /* 0 before the first sample */
    uint64_t pto_ns;           /* smoothed + max(4 rttvar, G) + max_ack_delay */
    uint64_t pto_initial_ns;   /* the same with kInitialRtt: a new path's PTO */
    uint64_t rto_ns;           /* RFC 6298 RTO, with its backoff */
    uint64_t samples;          /* RTT samples taken */
    uint32_t pto_count;        /* probe timeouts since the last reset */
    uint32_t rto_backoff;      /* RTO doublings since the last sample */
} tw_rtt;

typedef struct tw_recovery_stats {
    size_t struct_size;        /* the caller sets sizeof(tw_recovery_stats) */
    uint64_t sent;             /* packets recorded by on_sent */
    uint64_t acked;            /* packets newly acknowledged */
    uint64_t lost;             /* packets declared lost (threshold or RTO) */
    uint64_t discarded;        /* packets dropped with their space's keys */
    uint64_t pto;              /* probe timeouts fired */
    uint64_t rto;              /* RFC 6298 timeouts fired */
    uint64_t packets_in_flight; /* tracked packets not yet acked or lost */
    uint64_t ack_eliciting_in_flight;
    uint64_t bytes_in_flight;  /* bytes of ack-eliciting packets in flight */
    uint64_t frames_queued;    /* handles waiting for tw_recovery_take_frames */
    uint64_t retired_queued;   /* handles waiting for tw_recovery_take_retired */
    uint64_t bytes;            /* heap held */
} tw_recovery_stats;

/* Called at the end of a call that moved the loss-detection deadline. */
typedef void tw_recovery_notify_fn(tw_recovery *recovery, void *userdata);

TW__PUBLIC void tw_recovery_config_init(tw_recovery_config *config) TW__NOEXCEPT;
/* config NULL gives the defaults.  The caller owns the object and frees it
 * with tw_recovery_free; frame handles still tracked or queued are dropped. */
TW__PUBLIC int tw_recovery_new(const tw_recovery_config *config,
                               tw_recovery **ret) TW__NOEXCEPT;
TW__PUBLIC void tw_recovery_free(tw_recovery *recovery) TW__NOEXCEPT;

/* Records packet pn of space, sent at now_ns, carrying the caller's opaque
 * frames handle (0: nothing to report).  pn increases within a space.
 * TW_EAGAIN when max_in_flight packets are tracked (nothing recorded). */
TW__PUBLIC int tw_recovery_on_sent(tw_recovery *recovery, unsigned space, uint64_t pn,
                                   uint64_t now_ns, uint32_t bytes, unsigned flags,
                                   uint64_t frames) TW__NOEXCEPT;
/* An ACK of space received at now_ns: n ranges, largest first, disjoint;
 * ack_delay_ns as the peer reported it.  Acked handles are retired, lost
 * ones queued for retransmission. */
TW__PUBLIC int tw_recovery_on_ack(tw_recovery *recovery, unsigned space,
                                  const tw_ack_range *ranges, size_t n,
                                  uint64_t ack_delay_ns, uint64_t now_ns) TW__NOEXCEPT;
/* The loss-detection deadline; TW_ENOENT when none is armed. */
TW__PUBLIC int tw_recovery_next_deadline(const tw_recovery *recovery,
                                         uint64_t *ret) TW__NOEXCEPT;
/* Runs the loss-detection timeout if it is due at now_ns; *ret gets the
 * TW_RECOVERY_* events (0: nothing was due) and their space. */
TW__PUBLIC int tw_recovery_check(tw_recovery *recovery, uint64_t now_ns,
                                 uint32_t *ret) TW__NOEXCEPT;
/* Moves up to cap handles to retransmit into frames, oldest first; what
 * does not fit stays queued.  Returns how many were moved. */
TW__PUBLIC size_t tw_recovery_take_frames(tw_recovery *recovery, uint64_t *frames,
                                          size_t cap) TW__NOEXCEPT;
/* The same for retired handles: packets acknowledged or discarded, whose
 * frames the caller may free. */
TW__PUBLIC size_t tw_recovery_take_retired(tw_recovery *recovery, uint64_t *frames,
                                           size_t cap) TW__NOEXCEPT;
/* fn NULL removes the callback. */
TW__PUBLIC int tw_recovery_set_notify(tw_recovery *recovery, tw_recovery_notify_fn *fn,
                                      void *userdata) TW__NOEXCEPT;
/* The keys of space (Initial or Handshake) are discarded: its packets are
 * retired and its deadlines reset. */
TW__PUBLIC int tw_recovery_discard_space(tw_recovery *recovery, unsigned space) TW__NOEXCEPT;
/* The handshake is confirmed (RFC 9001 s4.1.2). */
TW__PUBLIC int tw_recovery_set_handshake_confirmed(tw_recovery *recovery) TW__NOEXCEPT;
/* A server blocked by the anti-amplification limit arms no timer. */
TW__PUBLIC int tw_recovery_set_amplification_limited(tw_recovery *recovery,
                                                     int limited) TW__NOEXCEPT;
TW__PUBLIC int tw_recovery_rtt(const tw_recovery *recovery, tw_rtt *ret) TW__NOEXCEPT;
TW__PUBLIC int tw_recovery_stats_get(const tw_recovery *recovery,
                                     tw_recovery_stats *ret) TW__NOEXCEPT;

/* RFC 9000 s10.1: the smaller of the advertised idle timeouts that are not
 * 0, raised to 3 * pto_ns; TW_NEVER when both are 0. */
TW__PUBLIC uint64_t tw_idle_timeout_ns(uint64_t local_idle_ns, uint64_t peer_idle_ns,
                                       uint64_t pto_ns) TW__NOEXCEPT;
/* RFC 9000 s8.2.4: 3 * max(pto_ns, pto_initial_ns), the latter the PTO of a
 * new path with kInitialRtt (tw_rtt.pto_initial_ns). */
TW__PUBLIC uint64_t tw_path_validation_timeout_ns(uint64_t pto_ns,
                                                  uint64_t pto_initial_ns) TW__NOEXCEPT;

/*
 * Connections: the typed timers of one connection (the connection layer),
 * the layers beside it, and ONE wheel timer per connection, filed at the
 * earliest deadline of them all.  Re-arming a kind later touches no wheel
 * state (the timer fires early, finds nothing due, and is re-filed at the
 * true earliest deadline); re-arming earlier is one O(1) reschedule.  All
 * of it runs on the loop's thread.
 */
typedef struct tw_conn tw_conn;

/* The kinds of the connection layer. */
enum {
    TW_CONN_IDLE,             /* idle timeout (RFC 9000 10.1) */
    TW_CONN_CONNECT,          /* handshake must complete */
    TW_CONN_PATH_VALIDATION,  /* a path challenge awaits its response */
    TW_CONN_RETRANSMIT,       /* loss detection, when kept by the caller */
    TW_CONN_ACK_DELAY,        /* an acknowledgement is owed */
    TW_CONN_KEEPALIVE,
    TW_CONN_PACING,           /* the pacer allows the next packet */
    TW_CONN_CLOSE,            /* closing or draining ends */
    TW_CONN_KINDS
};
#define TW_CONN_BIT(kind) (1u << (kind))
/* Layer 0 is the connection layer; the others are added in order. */
#define TW_CONN_MAX_LAYERS 4

typedef struct tw_conn_event {
    tw_conn *conn;
    uint32_t conn_id;
    uint32_t reserved;
    /* Per layer: what fired.  events[0] holds TW_CONN_BIT()s of the kinds
     * whose deadlines passed (they are disarmed); the others hold the bits
     * the layer's check returned. */
    uint32_t events[TW_CONN_MAX_LAYERS];
    uint64_t now_ns;          /* the loop time they fired at */
    void *userdata;           /* the connection's */
} tw_conn_event;

/* Called on the loop's thread, once per connection and turn with
 * something fired.  It may arm, disarm and free any connection. */
typedef void tw_conn_cb(const tw_conn_event *event, void *userdata);

/* One counter of a layer: a static name and its value. */
typedef struct tw_layer_stat {
    const char *name;
    uint64_t value;
} tw_layer_stat;

/* A layer: an object with its own deadlines, kept by the caller. */
typedef struct tw_layer_ops {
    size_t struct_size;       /* sizeof(tw_layer_ops) */
    const char *name;
    /* The layer's earliest deadline, TW_NEVER when it has none. */
    uint64_t (*next_deadline)(const void *layer);
    /* Runs what is due at now_ns; returns event bits, 0 when nothing. */
    uint32_t (*check)(void *layer, uint64_t now_ns);
    /* Moves up to cap frame handles to retransmit into frames; returns how
     * many.  NULL: the layer has none. */
    size_t (*take_frames)(void *layer, uint64_t *frames, size_t cap);
    /* TW_LAYER_PURE: check touches nothing but the layer and calls nothing
     * back, so a large batch may run it on the loop's worker thread. */
    uint32_t flags;
    /* Writes up to cap of the layer's counters, named, into out; returns
     * how many it has.  NULL: none. */
    size_t (*stats)(const void *layer, tw_layer_stat *out, size_t cap);
} tw_layer_ops;
#define TW_LAYER_PURE 1u

typedef struct tw_conn_result {
    uint32_t events[TW_CONN_MAX_LAYERS];
    uint64_t *frames;         /* in: the caller's buffer, or NULL */
    size_t frames_cap;        /* in: its room */
    size_t frames_n;          /* out: frames written */
    int frames_more;          /* out: 1 when frames stayed queued */
} tw_conn_result;

typedef struct tw_conn_stats {
    size_t struct_size;       /* the caller sets sizeof(tw_conn_stats) */
    uint64_t live;            /* connections now */
    uint64_t created;
    uint64_t arms;            /* tw_conn_arm and touches */
    uint64_t lazy_arms;       /* arms that needed no wheel operation */
    uint64_t wheel_ops;       /* schedules, reschedules and cancels done */
    uint64_t wakeups;         /* the connection's wheel timer fired */
    uint64_t early_wakeups;   /* ... and nothing was due: the lazy re-arm's cost */
    uint64_t events;          /* connection-turns with something fired */
    uint64_t dropped;         /* queued events dropped: by tw_conn_free, or
                                 for want of memory to queue them */
    uint64_t batches_direct;  /* fired batches computed on the loop's thread */
    uint64_t batches_handoff; /* ... with the worker's help */
    uint64_t bytes;           /* memory held for connections */
} tw_conn_stats;

/* A connection on loop with the caller's id.  cb NULL queues its events
 * for tw_conn_poll instead. */
TW__PUBLIC int tw_conn_new(tw_loop *loop, uint32_t conn_id, tw_conn_cb *cb,
                           void *userdata, tw_conn **ret) TW__NOEXCEPT;
/* Cancels every timer and drops queued events: no callback reaches the
 * connection after this, also when freed from inside its own callback.
 * Its layers are the caller's and stay untouched.  NULL is a no-op. */
TW__PUBLIC void tw_conn_free(tw_conn *conn) TW__NOEXCEPT;
/* Calls fn for every connection of the loop, in no particular order, until
 * it returns non-zero (its value is returned); fn may free connections. */
typedef int tw_conn_visit_fn(tw_conn *conn, void *userdata, void *ctx);
TW__PUBLIC int tw_loop_foreach_conn(tw_loop *loop, tw_conn_visit_fn *fn,
                                    void *ctx) TW__NOEXCEPT;
TW__PUBLIC uint32_t tw_conn_id(const tw_conn *conn) TW__NOEXCEPT;
/* Arms kind at deadline_ns (absolute), or at tw_loop_now + delay_ns. */
TW__PUBLIC int tw_conn_arm(tw_conn *conn, unsigned kind, uint64_t deadline_ns) TW__NOEXCEPT;
TW__PUBLIC int tw_conn_arm_in(tw_conn *conn, unsigned kind, uint64_t delay_ns) TW__NOEXCEPT;
/* TW_ENOENT when kind was not armed. */
TW__PUBLIC int tw_conn_disarm(tw_conn *conn, unsigned kind) TW__NOEXCEPT;
/* Disarms every kind; the layers keep theirs. */
TW__PUBLIC int tw_conn_disarm_all(tw_conn *conn) TW__NOEXCEPT;
/* The deadline kind is armed at; TW_ENOENT when it is not. */
TW__PUBLIC int tw_conn_deadline(const tw_conn *conn, unsigned kind, uint64_t *ret) TW__NOEXCEPT;
/* Bit k set when kind k is armed. */
TW__PUBLIC uint32_t tw_conn_armed(const tw_conn *conn) TW__NOEXCEPT;
/* The idle timeout TW_CONN_IDLE is re-armed with by tw_conn_touch; 0 stops
 * touches from arming anything. */
TW__PUBLIC int tw_conn_set_idle_timeout(tw_conn *conn, uint64_t timeout_ns) TW__NOEXCEPT;
/* Lets kind fire up to slack_ns (saturating at UINT32_MAX ns, ~4.3 s)
 * after its deadline, never before it.  The connection's timer is then
 * filed at the roundest instant (most trailing zero bits) of the span its
 * windows allow, so connections whose windows overlap share a wake-up. */
TW__PUBLIC int tw_conn_set_slack(tw_conn *conn, unsigned kind, uint64_t slack_ns) TW__NOEXCEPT;
/* Activity: re-arms TW_CONN_IDLE at tw_loop_now + the idle timeout. */
TW__PUBLIC int tw_conn_touch(tw_conn *conn) TW__NOEXCEPT;

/* Adds a layer; *ret gets its number (1 ..).  ops must outlive the
 * connection.  TW_ENOSPC past TW_CONN_MAX_LAYERS - 1. */
TW__PUBLIC int tw_conn_add_layer(tw_conn *conn, const tw_layer_ops *ops, void *layer,
                                 unsigned *ret) TW__NOEXCEPT;
/* Adds recovery as a layer, pure (a large batch may check it on the loop's
 * worker thread), and takes over its notify callback to keep it marked
 * dirty, until the connection is freed (by tw_conn_free or with its
 * loop).  recovery must outlive the connection; TW_EINVAL while it is a
 * layer of a connection already. */
TW__PUBLIC int tw_conn_add_recovery(tw_conn *conn, tw_recovery *recovery,
                                    unsigned *ret) TW__NOEXCEPT;
/* The name and counters of layer (1 ..): up to cap into out; returns how
 * many the layer has (0 without a stats function), or a TW_E* code. */
TW__PUBLIC int tw_conn_layer_stats(const tw_conn *conn, unsigned layer, const char **name,
                                   tw_layer_stat *out, size_t cap) TW__NOEXCEPT;
/* Tells the connection that layer's deadline may have changed. */
TW__PUBLIC int tw_conn_layer_dirty(tw_conn *conn, unsigned layer) TW__NOEXCEPT;
/* The unified next wake-up: the earliest deadline over every armed kind
 * and every layer; TW_ENOENT when none. */
TW__PUBLIC int tw_conn_next_deadline(const tw_conn *conn, uint64_t *ret) TW__NOEXCEPT;
/* Fires, by hand, whatever of the connection is due at now_ns: the kinds
 * and the layers' checks; the frames the layers hand back go to ret's
 * buffer.  Returns 1 when something fired, else 0.  Nothing goes to the
 * callback or the queue. */
TW__PUBLIC int tw_conn_check_all(tw_conn *conn, uint64_t now_ns, tw_conn_result *ret) TW__NOEXCEPT;
/* Moves up to cap frames to retransmit from the layers into frames. */
TW__PUBLIC size_t tw_conn_take_frames(tw_conn *conn, uint64_t *frames, size_t cap) TW__NOEXCEPT;

/* Queue mode: moves up to cap queued events into events, oldest first;
 * returns how many. */
TW__PUBLIC int tw_conn_poll(tw_loop *loop, tw_conn_event *events, size_t cap) TW__NOEXCEPT;
TW__PUBLIC int tw_conn_stats_get(const tw_loop *loop, tw_conn_stats *ret) TW__NOEXCEPT;

/* Spreading connections over loops (threads, sockets: any nshards places).
 * The shard of an id is (h * nshards) >> 32, h the murmur3 32-bit
 * finaliser of the id: uniform for any nshards, the same in every process
 * and version.  Writes the shard of each of n ids to ret. */
TW__PUBLIC int tw_conn_id_shards(size_t n, const uint32_t *conn_ids, uint32_t nshards,
                                 uint32_t *ret) TW__NOEXCEPT;
/* Groups n ids (n < 2^32) by shard, stably: order[offsets[s] ..
 * offsets[s + 1]) are the positions in conn_ids of shard s's ids,
 * ascending; offsets has nshards + 1 entries.  *largest (may be NULL) gets
 * the largest group's size.  Allocates nothing. */
TW__PUBLIC int tw_conn_id_group(size_t n, const uint32_t *conn_ids, uint32_t nshards,
                                uint32_t *offsets, uint32_t *order,
                                size_t *largest) TW__NOEXCEPT;

#if defined(__cplusplus)
}
#endif

#endif
