/*
 * Connections on a loop driven by hand with an injected clock: the lazy
 * re-arm (later costs no wheel work, earlier costs one operation, a filed
 * time that passed wakes early and fires nothing), the kinds due at one
 * time arriving as one event, freeing from callbacks, queue mode, layers,
 * misuse, and a randomized run against a plain reference of every kind's
 * deadline.  The clock is stepped to tw_loop_next_deadline to see that a
 * deadline is met exactly, never early and never late.  A failure of the
 * random run prints its seed; `test-conn SEED [OPS]` replays it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tickwheel.h"

#define US UINT64_C(1000)
#define MS UINT64_C(1000000)
#define SEC UINT64_C(1000000000)
/* Fake time starts far from 0, so "relative to 0" mistakes show. */
#define T0 (1000 * SEC)
#define BIT(kind) TW_CONN_BIT(kind)

static uint64_t FAKE;

static uint64_t fake_clock(void *userdata)
{
    assert_ptr_equal(userdata, &FAKE);
    return FAKE;
}

/* The test's loop: a base of its own, never dispatched, driven by hand. */
static tw_loop *LOOP;

static tw_loop *start(void)
{
    tw_loop_config c;
    tw_loop_config_init(&c);
    c.clock = fake_clock;
    c.clock_userdata = &FAKE;
    FAKE = T0;
    LOOP = NULL;
    assert_int_equal(tw_loop_new(NULL, &c, &LOOP), 0);
    assert_non_null(LOOP);
    return LOOP;
}

/* After a failed assertion too, so the sanitizers report only real leaks. */
static int teardown(void **state)
{
    (void)state;
    tw_loop_free(LOOP);
    LOOP = NULL;
    return 0;
}

/* Events seen by the callbacks below, copied. */
static struct {
    size_t n;
    tw_conn_event ev[256];
} SEEN;

static void record(const tw_conn_event *e, void *userdata)
{
    assert_true(SEEN.n < sizeof(SEEN.ev) / sizeof(SEEN.ev[0]));
    assert_ptr_equal(e->userdata, userdata);
    assert_int_equal(e->conn_id, tw_conn_id(e->conn));
    assert_int_equal(e->now_ns, tw_loop_now(LOOP));
    /* Something fired, or there is no event. */
    assert_true(e->events[0] || e->events[1] || e->events[2] || e->events[3]);
    SEEN.ev[SEEN.n++] = *e;
}

static tw_conn *conn_new(uint32_t id, tw_conn_cb *cb, void *userdata)
{
    tw_conn *c = NULL;
    assert_int_equal(tw_conn_new(LOOP, id, cb, userdata, &c), 0);
    assert_non_null(c);
    assert_int_equal(tw_conn_id(c), id);
    return c;
}

/* One turn at t. */
static void turn_at(uint64_t t)
{
    FAKE = t;
    assert_true(tw_loop_process(LOOP) >= 0);
    assert_int_equal(tw_loop_now(LOOP), t);
}

static uint64_t loop_next(void)
{
    uint64_t next = 0;
    assert_int_equal(tw_loop_next_deadline(LOOP, &next), 0);
    return next;
}

static uint64_t conn_next(const tw_conn *c)
{
    uint64_t next = 0;
    assert_int_equal(tw_conn_next_deadline(c, &next), 0);
    return next;
}

static uint64_t deadline_of(const tw_conn *c, unsigned kind)
{
    uint64_t d = 0;
    assert_int_equal(tw_conn_deadline(c, kind, &d), 0);
    return d;
}

static tw_conn_stats stats(void)
{
    tw_conn_stats s;
    memset(&s, 0, sizeof(s));
    s.struct_size = sizeof(s);
    assert_int_equal(tw_conn_stats_get(LOOP, &s), 0);
    assert_int_equal(s.struct_size, sizeof(s));
    return s;
}

/* ---- the lazy re-arm --------------------------------------------------- */

static void test_lazy_rearm(void **state)
{
    (void)state;
    start();
    memset(&SEEN, 0, sizeof(SEEN));
    int tag;
    tw_conn *c = conn_new(7, record, &tag);
    assert_int_equal(tw_conn_set_idle_timeout(c, 30 * MS), 0);
    assert_int_equal(tw_conn_touch(c), 0);
    assert_int_equal(deadline_of(c, TW_CONN_IDLE), T0 + 30 * MS);
    assert_int_equal(loop_next(), T0 + 30 * MS);
    tw_conn_stats s = stats();
    assert_int_equal(s.live, 1);
    assert_int_equal(s.created, 1);
    assert_int_equal(s.arms, 1);
    assert_int_equal(s.lazy_arms, 0);
    assert_int_equal(s.wheel_ops, 1);

    /* Packets keep coming: each touch pushes the idle deadline later and
     * costs no wheel work; the wheel keeps the first filed time. */
    uint64_t last = 0;
    for (uint64_t i = 1; i <= 200; i++) {
        turn_at(T0 + i * 50 * US + 3);
        assert_int_equal(tw_conn_touch(c), 0);
        last = FAKE + 30 * MS;
        assert_int_equal(deadline_of(c, TW_CONN_IDLE), last);
        assert_int_equal(conn_next(c), last);
        assert_int_equal(loop_next(), T0 + 30 * MS);
        s = stats();
        assert_int_equal(s.arms, 1 + i);
        assert_int_equal(s.lazy_arms, i);
        assert_int_equal(s.wheel_ops, 1);
    }
    /* tw_conn_arm later is as lazy, absolute and relative. */
    assert_int_equal(tw_conn_arm(c, TW_CONN_IDLE, last + 7), 0);
    assert_int_equal(tw_conn_arm_in(c, TW_CONN_IDLE, last + 9 - FAKE), 0);
    last += 9;
    assert_int_equal(deadline_of(c, TW_CONN_IDLE), last);
    s = stats();
    assert_int_equal(s.arms, 203);
    assert_int_equal(s.lazy_arms, 202);
    assert_int_equal(s.wheel_ops, 1);
    assert_int_equal(s.wakeups, 0);
    assert_int_equal(SEEN.n, 0);

    /* The filed time passes: an early wake-up, no callback, re-filed once
     * at the true deadline. */
    turn_at(loop_next());
    assert_int_equal(FAKE, T0 + 30 * MS);
    assert_int_equal(SEEN.n, 0);
    assert_int_equal(tw_conn_armed(c), BIT(TW_CONN_IDLE));
    s = stats();
    assert_int_equal(s.wakeups, 1);
    assert_int_equal(s.early_wakeups, 1);
    assert_int_equal(s.events, 0);
    assert_int_equal(s.wheel_ops, 2);
    assert_int_equal(loop_next(), last);

    /* One nanosecond before: nothing at all. */
    turn_at(last - 1);
    assert_int_equal(SEEN.n, 0);
    assert_int_equal(stats().wakeups, 1);

    /* Exactly at the last deadline. */
    turn_at(loop_next());
    assert_int_equal(FAKE, last);
    assert_int_equal(SEEN.n, 1);
    assert_ptr_equal(SEEN.ev[0].conn, c);
    assert_int_equal(SEEN.ev[0].conn_id, 7);
    assert_ptr_equal(SEEN.ev[0].userdata, &tag);
    assert_int_equal(SEEN.ev[0].events[0], BIT(TW_CONN_IDLE));
    assert_int_equal(SEEN.ev[0].events[1], 0);
    assert_int_equal(SEEN.ev[0].now_ns, last);
    assert_int_equal(tw_conn_armed(c), 0);
    uint64_t d = 77;
    assert_int_equal(tw_conn_deadline(c, TW_CONN_IDLE, &d), TW_ENOENT);
    assert_int_equal(d, 77);
    assert_int_equal(tw_conn_next_deadline(c, &d), TW_ENOENT);
    assert_int_equal(tw_loop_next_deadline(LOOP, &d), TW_ENOENT);
    s = stats();
    assert_int_equal(s.wakeups, 2);
    assert_int_equal(s.early_wakeups, 1);
    assert_int_equal(s.events, 1);
    assert_int_equal(s.wheel_ops, 2);   /* the timer fired: nothing to cancel */

    /* Idle timeout 0: touches arm nothing. */
    assert_int_equal(tw_conn_set_idle_timeout(c, 0), 0);
    assert_int_equal(tw_conn_touch(c), 0);
    assert_int_equal(tw_conn_armed(c), 0);
    assert_int_equal(stats().arms, 203);
    tw_conn_free(c);
    assert_int_equal(stats().live, 0);
}

/* Driven by hand, the program's own work between two turns takes time: a
 * touch or a relative arm made then counts from the clock at the call, not
 * from the last turn. */
static void test_touch_between_turns_reads_the_clock(void **state)
{
    (void)state;
    start();
    memset(&SEEN, 0, sizeof(SEEN));
    tw_conn *c = conn_new(3, record, NULL);
    assert_int_equal(tw_conn_set_idle_timeout(c, 2 * SEC), 0);
    turn_at(T0 + 10 * MS);
    const uint64_t t = T0 + 210 * MS;
    FAKE = t;
    assert_int_equal(tw_conn_touch(c), 0);
    assert_int_equal(deadline_of(c, TW_CONN_IDLE), t + 2 * SEC);
    assert_int_equal(tw_conn_arm_in(c, TW_CONN_PACING, 100 * MS), 0);
    assert_int_equal(deadline_of(c, TW_CONN_PACING), t + 100 * MS);
    assert_int_equal(tw_loop_now(LOOP), t);
    assert_int_equal(loop_next(), t + 100 * MS);
    tw_conn *q = conn_new(4, NULL, NULL);
    assert_int_equal(tw_conn_arm(q, TW_CONN_PACING, t + 100 * MS), 0);

    FAKE = t + 100 * MS - 1;
    assert_true(tw_loop_process(LOOP) >= 0);
    assert_int_equal(SEEN.n, 0);
    turn_at(t + 100 * MS);
    assert_int_equal(SEEN.n, 1);
    assert_int_equal(SEEN.ev[0].events[0], BIT(TW_CONN_PACING));
    /* A queued event, polled later, carries the time it was polled at. */
    FAKE = t + 130 * MS;
    tw_conn_event ev[2];
    assert_int_equal(tw_conn_poll(LOOP, ev, 2), 1);
    assert_ptr_equal(ev[0].conn, q);
    assert_int_equal(ev[0].now_ns, t + 130 * MS);
    tw_conn_free(q);
    FAKE = t + 2 * SEC - 1;
    assert_true(tw_loop_process(LOOP) >= 0);
    assert_int_equal(SEEN.n, 1);
    turn_at(t + 2 * SEC);
    assert_int_equal(SEEN.n, 2);
    assert_int_equal(SEEN.ev[1].events[0], BIT(TW_CONN_IDLE));
    assert_int_equal(SEEN.ev[1].now_ns, t + 2 * SEC);
    tw_conn_free(c);
}

static void test_arm_earlier(void **state)
{
    (void)state;
    start();
    memset(&SEEN, 0, sizeof(SEEN));
    tw_conn *c = conn_new(1, record, NULL);
    assert_int_equal(tw_conn_arm(c, TW_CONN_IDLE, T0 + 50 * MS), 0);
    assert_int_equal(stats().wheel_ops, 1);
    /* Earlier than the filed time: exactly one reschedule each. */
    assert_int_equal(tw_conn_arm(c, TW_CONN_IDLE, T0 + 20 * MS), 0);
    tw_conn_stats s = stats();
    assert_int_equal(s.wheel_ops, 2);
    assert_int_equal(s.lazy_arms, 0);
    assert_int_equal(loop_next(), T0 + 20 * MS);
    assert_int_equal(tw_conn_arm(c, TW_CONN_CONNECT, T0 + 10 * MS + 1), 0);
    assert_int_equal(stats().wheel_ops, 3);
    assert_int_equal(loop_next(), T0 + 10 * MS + 1);
    assert_int_equal(conn_next(c), T0 + 10 * MS + 1);
    /* Equal to the filed time is not earlier. */
    assert_int_equal(tw_conn_arm(c, TW_CONN_ACK_DELAY, T0 + 10 * MS + 1), 0);
    s = stats();
    assert_int_equal(s.wheel_ops, 3);
    assert_int_equal(s.lazy_arms, 1);
    assert_int_equal(tw_conn_disarm(c, TW_CONN_ACK_DELAY), 0);
    assert_int_equal(tw_conn_disarm(c, TW_CONN_ACK_DELAY), TW_ENOENT);

    turn_at(T0 + 10 * MS);
    assert_int_equal(SEEN.n, 0);
    turn_at(loop_next());
    assert_int_equal(SEEN.n, 1);
    assert_int_equal(SEEN.ev[0].events[0], BIT(TW_CONN_CONNECT));
    assert_int_equal(SEEN.ev[0].now_ns, T0 + 10 * MS + 1);
    assert_int_equal(tw_conn_armed(c), BIT(TW_CONN_IDLE));
    /* Re-filed at the remaining kind: one schedule. */
    assert_int_equal(stats().wheel_ops, 4);
    assert_int_equal(loop_next(), T0 + 20 * MS);

    /* Relative arming counts from the loop's time; a past deadline fires
     * at the next turn. */
    assert_int_equal(tw_conn_arm_in(c, TW_CONN_PACING, 5 * MS), 0);
    assert_int_equal(deadline_of(c, TW_CONN_PACING), T0 + 15 * MS + 1);
    assert_int_equal(tw_conn_arm(c, TW_CONN_KEEPALIVE, T0), 0);
    assert_int_equal(loop_next(), T0);
    turn_at(FAKE);
    assert_int_equal(SEEN.n, 2);
    assert_int_equal(SEEN.ev[1].events[0], BIT(TW_CONN_KEEPALIVE));
    turn_at(loop_next());
    assert_int_equal(SEEN.ev[2].events[0], BIT(TW_CONN_PACING));
    assert_int_equal(SEEN.ev[2].now_ns, T0 + 15 * MS + 1);
    turn_at(loop_next());
    assert_int_equal(SEEN.n, 4);
    assert_int_equal(SEEN.ev[3].events[0], BIT(TW_CONN_IDLE));
    assert_int_equal(SEEN.ev[3].now_ns, T0 + 20 * MS);
    assert_int_equal(stats().early_wakeups, 0);

    /* A delay past the end of time saturates at TW_NEVER: armed, never due. */
    assert_int_equal(tw_conn_arm_in(c, TW_CONN_CLOSE, UINT64_MAX), 0);
    assert_int_equal(deadline_of(c, TW_CONN_CLOSE), TW_NEVER);
    uint64_t d;
    assert_int_equal(tw_conn_next_deadline(c, &d), TW_ENOENT);
    assert_int_equal(tw_loop_next_deadline(LOOP, &d), TW_ENOENT);
    tw_conn_free(c);
}

static void test_kinds_due_together(void **state)
{
    (void)state;
    start();
    memset(&SEEN, 0, sizeof(SEEN));
    tw_conn *c = conn_new(3, record, NULL);
    assert_int_equal(tw_conn_arm(c, TW_CONN_IDLE, T0 + 10 * MS), 0);
    assert_int_equal(tw_conn_arm(c, TW_CONN_CONNECT, T0 + 10 * MS), 0);
    assert_int_equal(tw_conn_arm(c, TW_CONN_PATH_VALIDATION, T0 + 10 * MS), 0);
    assert_int_equal(tw_conn_arm(c, TW_CONN_CLOSE, T0 + 5 * MS), 0);
    assert_int_equal(tw_conn_arm(c, TW_CONN_KEEPALIVE, T0 + 10 * MS + 1), 0);
    assert_int_equal(tw_conn_armed(c),
                     BIT(TW_CONN_IDLE) | BIT(TW_CONN_CONNECT) | BIT(TW_CONN_PATH_VALIDATION) |
                         BIT(TW_CONN_CLOSE) | BIT(TW_CONN_KEEPALIVE));
    /* One turn past several of them: one event with every due kind. */
    turn_at(T0 + 10 * MS);
    assert_int_equal(SEEN.n, 1);
    assert_int_equal(SEEN.ev[0].events[0], BIT(TW_CONN_IDLE) | BIT(TW_CONN_CONNECT) |
                                               BIT(TW_CONN_PATH_VALIDATION) |
                                               BIT(TW_CONN_CLOSE));
    assert_int_equal(tw_conn_armed(c), BIT(TW_CONN_KEEPALIVE));
    uint64_t d;
    const unsigned fired[] = {TW_CONN_IDLE, TW_CONN_CONNECT, TW_CONN_PATH_VALIDATION,
                              TW_CONN_CLOSE};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(tw_conn_deadline(c, fired[i], &d), TW_ENOENT);
        assert_int_equal(tw_conn_disarm(c, fired[i]), TW_ENOENT);
    }
    assert_int_equal(conn_next(c), T0 + 10 * MS + 1);
    turn_at(loop_next());
    assert_int_equal(SEEN.n, 2);
    assert_int_equal(SEEN.ev[1].events[0], BIT(TW_CONN_KEEPALIVE));
    assert_int_equal(tw_conn_armed(c), 0);

    /* Every kind at once. */
    for (unsigned k = 0; k < TW_CONN_KINDS; k++)
        assert_int_equal(tw_conn_arm(c, k, T0 + SEC - k), 0);
    turn_at(T0 + SEC);
    assert_int_equal(SEEN.n, 3);
    assert_int_equal(SEEN.ev[2].events[0], (1u << TW_CONN_KINDS) - 1);
    assert_int_equal(tw_conn_armed(c), 0);
    assert_int_equal(tw_loop_next_deadline(LOOP, &d), TW_ENOENT);
    tw_conn_free(c);
}

static void test_disarm_all_cancels(void **state)
{
    (void)state;
    start();
    memset(&SEEN, 0, sizeof(SEEN));
    tw_conn *c = conn_new(4, record, NULL);
    tw_conn *other = conn_new(5, record, NULL);
    assert_int_equal(tw_conn_arm(c, TW_CONN_IDLE, T0 + 30 * SEC), 0);
    assert_int_equal(tw_conn_arm(c, TW_CONN_ACK_DELAY, T0 + 25 * MS), 0);
    assert_int_equal(stats().wheel_ops, 2);
    assert_int_equal(tw_conn_disarm_all(c), 0);
    tw_conn_stats s = stats();
    assert_int_equal(s.wheel_ops, 3);   /* the cancel */
    assert_int_equal(tw_conn_armed(c), 0);
    /* An idle connection wakes nothing. */
    uint64_t d;
    assert_int_equal(tw_loop_next_deadline(LOOP, &d), TW_ENOENT);
    assert_int_equal(tw_conn_next_deadline(c, &d), TW_ENOENT);
    /* Again: nothing to cancel. */
    assert_int_equal(tw_conn_disarm_all(c), 0);
    assert_int_equal(stats().wheel_ops, 3);
    turn_at(T0 + 60 * SEC);
    assert_int_equal(SEEN.n, 0);
    assert_int_equal(stats().wakeups, 0);

    /* Disarming the last kind one by one cancels too; disarming one of
     * several keeps the (now early) filing. */
    assert_int_equal(tw_conn_arm_in(c, TW_CONN_IDLE, 10 * MS), 0);
    assert_int_equal(tw_conn_arm_in(c, TW_CONN_CONNECT, 20 * MS), 0);
    assert_int_equal(tw_conn_arm_in(other, TW_CONN_CONNECT, 40 * MS), 0);
    assert_int_equal(stats().wheel_ops, 5);
    assert_int_equal(tw_conn_disarm(c, TW_CONN_IDLE), 0);
    assert_int_equal(stats().wheel_ops, 5);
    assert_int_equal(conn_next(c), FAKE + 20 * MS);
    assert_int_equal(loop_next(), FAKE + 10 * MS);
    assert_int_equal(tw_conn_disarm(c, TW_CONN_CONNECT), 0);
    assert_int_equal(stats().wheel_ops, 6);
    assert_int_equal(loop_next(), FAKE + 40 * MS);
    tw_conn_free(other);
    assert_int_equal(tw_loop_next_deadline(LOOP, &d), TW_ENOENT);
    tw_conn_free(c);
}

/* ---- freeing from callbacks -------------------------------------------- */

/* What a callback does besides recording, by its connection's userdata. */
struct act {
    tw_conn *self;
    tw_conn *free_other;    /* freed from the callback */
    int free_self;
    int new_conn;           /* creates a connection armed at now */
    tw_conn *made;
    int free_loop;
};

static void acting(const tw_conn_event *e, void *userdata)
{
    struct act *a = userdata;
    record(e, userdata);
    assert_ptr_equal(e->conn, a->self);
    if (a->free_other) {
        tw_conn_free(a->free_other);
        a->free_other = NULL;
    }
    if (a->new_conn) {
        a->made = conn_new(99, record, NULL);
        assert_int_equal(tw_conn_arm(a->made, TW_CONN_IDLE, e->now_ns), 0);
    }
    if (a->free_self)
        tw_conn_free(e->conn);
    if (a->free_loop)
        tw_loop_free(LOOP);
}

static void test_free_from_callback(void **state)
{
    (void)state;
    start();
    memset(&SEEN, 0, sizeof(SEEN));
    struct act a = {0}, b = {0}, c = {0};
    a.self = conn_new(1, acting, &a);
    b.self = conn_new(2, acting, &b);
    c.self = conn_new(3, acting, &c);
    /* Equal deadlines fire in arming order: a, b, c. */
    assert_int_equal(tw_conn_arm(a.self, TW_CONN_IDLE, T0 + MS), 0);
    assert_int_equal(tw_conn_arm(b.self, TW_CONN_IDLE, T0 + MS), 0);
    assert_int_equal(tw_conn_arm(c.self, TW_CONN_IDLE, T0 + MS), 0);
    assert_int_equal(tw_conn_arm(b.self, TW_CONN_CLOSE, T0 + 2 * MS), 0);
    /* a frees itself and b, which fired in the same turn, and makes a new
     * connection that may take b's slot: neither b's callback nor the new
     * one's runs in this turn. */
    a.free_self = 1;
    a.free_other = b.self;
    a.new_conn = 1;
    turn_at(T0 + MS);
    assert_int_equal(SEEN.n, 2);
    assert_ptr_equal(SEEN.ev[0].userdata, &a);
    assert_ptr_equal(SEEN.ev[1].userdata, &c);
    tw_conn_stats s = stats();
    assert_int_equal(s.live, 2);
    assert_int_equal(s.created, 4);
    assert_int_equal(s.events, 2);
    /* Freed: refused, and nothing of theirs fires later. */
    assert_int_equal(tw_conn_arm(a.self, TW_CONN_IDLE, T0), TW_EINVAL);
    assert_int_equal(tw_conn_armed(c.self), 0);
    turn_at(T0 + SEC);
    assert_int_equal(SEEN.n, 3);
    assert_ptr_equal(SEEN.ev[2].conn, a.made);
    assert_int_equal(SEEN.ev[2].conn_id, 99);
    assert_int_equal(SEEN.ev[2].now_ns, T0 + SEC);
    tw_conn_free(a.made);
    tw_conn_free(c.self);
    assert_int_equal(stats().live, 0);
}

static void test_free_loop_from_callback(void **state)
{
    (void)state;
    start();
    memset(&SEEN, 0, sizeof(SEEN));
    struct act a = {0}, b = {0};
    a.self = conn_new(1, acting, &a);
    b.self = conn_new(2, acting, &b);
    assert_int_equal(tw_conn_arm(a.self, TW_CONN_IDLE, T0 + MS), 0);
    assert_int_equal(tw_conn_arm(b.self, TW_CONN_IDLE, T0 + MS), 0);
    /* The loop goes when the turn ends; b's callback never runs. */
    a.free_loop = 1;
    FAKE = T0 + MS;
    assert_true(tw_loop_process(LOOP) >= 0);
    LOOP = NULL;
    assert_int_equal(SEEN.n, 1);
    assert_ptr_equal(SEEN.ev[0].userdata, &a);
}

/* ---- queue mode --------------------------------------------------------- */

static void test_queue_mode(void **state)
{
    (void)state;
    start();
    tw_conn_event ev[8];
    /* A loop with no connections yet polls nothing. */
    assert_int_equal(tw_conn_poll(LOOP, ev, 8), 0);
    assert_int_equal(tw_conn_poll(LOOP, NULL, 0), 0);
    int u1, u2, u3;
    tw_conn *q1 = conn_new(11, NULL, &u1);
    tw_conn *q2 = conn_new(12, NULL, &u2);
    tw_conn *q3 = conn_new(13, NULL, &u3);
    assert_int_equal(tw_conn_arm(q2, TW_CONN_CONNECT, T0 + 10 * MS), 0);
    assert_int_equal(tw_conn_arm(q1, TW_CONN_IDLE, T0 + 10 * MS), 0);
    assert_int_equal(tw_conn_arm(q1, TW_CONN_CONNECT, T0 + 20 * MS), 0);
    assert_int_equal(tw_conn_arm(q3, TW_CONN_CLOSE, T0 + 15 * MS), 0);
    turn_at(T0 + 10 * MS);
    turn_at(T0 + 15 * MS);
    turn_at(T0 + 20 * MS);
    tw_conn_stats s = stats();
    assert_int_equal(s.events, 4);
    assert_int_equal(s.dropped, 0);
    /* Oldest first: q2 and q1 fired at 10 ms (q2 armed first), q3 at 15.
     * q1's second firing joins its queued event. */
    memset(ev, 0, sizeof(ev));
    assert_int_equal(tw_conn_poll(LOOP, ev, 1), 1);
    assert_ptr_equal(ev[0].conn, q2);
    assert_int_equal(ev[0].conn_id, 12);
    assert_ptr_equal(ev[0].userdata, &u2);
    assert_int_equal(ev[0].events[0], BIT(TW_CONN_CONNECT));
    assert_int_equal(ev[0].now_ns, T0 + 20 * MS);
    assert_int_equal(tw_conn_poll(LOOP, ev, 8), 2);
    assert_ptr_equal(ev[0].conn, q1);
    assert_int_equal(ev[0].events[0], BIT(TW_CONN_IDLE) | BIT(TW_CONN_CONNECT));
    assert_int_equal(ev[0].events[1], 0);
    assert_ptr_equal(ev[1].conn, q3);
    assert_int_equal(ev[1].events[0], BIT(TW_CONN_CLOSE));
    assert_int_equal(tw_conn_poll(LOOP, ev, 8), 0);

    /* Polled, then firing again: queued afresh. */
    assert_int_equal(tw_conn_arm(q1, TW_CONN_PACING, T0 + 21 * MS), 0);
    assert_int_equal(tw_conn_arm(q3, TW_CONN_PACING, T0 + 21 * MS), 0);
    turn_at(T0 + 21 * MS);
    /* Freeing a connection drops what it has queued; poll skips it, and a
     * connection that takes its slot does not inherit it. */
    tw_conn_free(q1);
    s = stats();
    assert_int_equal(s.dropped, 1);
    assert_int_equal(s.events, 6);
    tw_conn *q4 = conn_new(14, NULL, NULL);
    assert_int_equal(tw_conn_poll(LOOP, ev, 8), 1);
    assert_ptr_equal(ev[0].conn, q3);
    assert_int_equal(ev[0].events[0], BIT(TW_CONN_PACING));
    assert_int_equal(tw_conn_poll(LOOP, ev, 8), 0);

    /* Many connections firing in one turn: the queue grows and keeps the
     * firing order. */
    tw_conn *many[600];
    for (uint32_t i = 0; i < 600; i++) {
        many[i] = conn_new(1000 + i, NULL, NULL);
        assert_int_equal(tw_conn_arm(many[i], i % TW_CONN_KINDS, T0 + SEC + (i % 3)), 0);
    }
    turn_at(T0 + SEC + 5);
    uint32_t seen = 0;
    for (int r; (r = tw_conn_poll(LOOP, ev, 7)) > 0;) {
        for (int i = 0; i < r; i++) {
            uint32_t id = ev[i].conn_id;
            /* Deadline order, then arming order. */
            uint32_t want = (seen < 200) ? seen * 3 : (seen < 400) ? (seen - 200) * 3 + 1
                                                                   : (seen - 400) * 3 + 2;
            assert_int_equal(id, 1000 + want);
            assert_int_equal(ev[i].events[0], BIT(want % TW_CONN_KINDS));
            seen++;
        }
    }
    assert_int_equal(seen, 600);
    for (uint32_t i = 0; i < 600; i++)
        tw_conn_free(many[i]);
    tw_conn_free(q2);
    tw_conn_free(q3);
    tw_conn_free(q4);
    assert_int_equal(stats().live, 0);
}

/* A loop freed with connections live, armed, queued and in the middle of
 * everything: the sanitizer build sees that nothing leaks. */
static void test_free_loop_with_connections(void **state)
{
    (void)state;
    start();
    for (uint32_t i = 0; i < 700; i++) {
        tw_conn *c = conn_new(i, i % 2 ? NULL : record, NULL);
        assert_int_equal(tw_conn_arm(c, TW_CONN_IDLE, T0 + (i % 5) * MS), 0);
        if (i % 7 == 0)
            tw_conn_free(c);
    }
    memset(&SEEN, 0, sizeof(SEEN));
    turn_at(T0 + 2 * MS);
    assert_true(SEEN.n > 0);
    tw_conn_stats s = stats();
    assert_int_equal(s.live, 600);
    assert_true(s.bytes > 600 * sizeof(uint64_t) * TW_CONN_KINDS);
    tw_loop_free(LOOP);
    LOOP = NULL;
}

/* A function posted with a connection, cancelled when the loop is freed,
 * may still use the connection: the loop frees connections after it. */
static int CANCELED;

static void cleanup_conn(tw_loop *loop, int status, void *userdata)
{
    (void)loop;
    tw_conn *c = userdata;
    CANCELED = status;
    assert_int_equal(tw_conn_id(c), 8);
    assert_int_equal(tw_conn_disarm(c, TW_CONN_IDLE), 0);
    tw_conn_free(c);
}

static void test_posted_cleanup_on_free(void **state)
{
    (void)state;
    start();
    tw_conn *c = conn_new(8, record, NULL);
    assert_int_equal(tw_conn_arm(c, TW_CONN_IDLE, T0 + MS), 0);
    CANCELED = 0;
    assert_int_equal(tw_loop_post(LOOP, cleanup_conn, c), 0);
    tw_loop_free(LOOP);
    LOOP = NULL;
    assert_int_equal(CANCELED, TW_ECANCELED);
}

/* ---- layers ------------------------------------------------------------- */

/* A layer with one deadline of its own.  A check at or past it returns
 * bits, moves the deadline to `then` and queues `frames_per_fire` frames. */
struct fake_layer {
    uint64_t deadline;
    uint64_t then;
    uint32_t bits;
    unsigned checks;
    uint64_t checked_at;
    uint64_t frames[16];
    size_t nframes;
    size_t frames_per_fire;
    uint64_t next_frame;
    /* From inside check: move `poke`'s deadline to poke_to and tell the
     * connection (poke may be this layer). */
    struct fake_layer *poke;
    uint64_t poke_to;
    tw_conn *conn;
    unsigned number;
    int poke_ret;
};

static uint64_t fl_next(const void *layer)
{
    const struct fake_layer *l = layer;
    return l->deadline;
}

static uint32_t fl_check(void *layer, uint64_t now_ns)
{
    struct fake_layer *l = layer;
    uint32_t got = 0;
    l->checks++;
    l->checked_at = now_ns;
    if (l->deadline <= now_ns) {
        got = l->bits;
        l->deadline = l->then;
        for (size_t i = 0; i < l->frames_per_fire && l->nframes < 16; i++)
            l->frames[l->nframes++] = l->next_frame++;
    }
    if (l->poke) {
        struct fake_layer *p = l->poke;
        l->poke = NULL;
        p->deadline = l->poke_to;
        l->poke_ret = tw_conn_layer_dirty(p->conn, p->number);
    }
    return got;
}

static size_t fl_take(void *layer, uint64_t *frames, size_t cap)
{
    struct fake_layer *l = layer;
    size_t n = l->nframes < cap ? l->nframes : cap;
    memcpy(frames, l->frames, n * sizeof(frames[0]));
    memmove(l->frames, l->frames + n, (l->nframes - n) * sizeof(frames[0]));
    l->nframes -= n;
    return n;
}

/* Two counters: checks run and frames waiting. */
static size_t fl_stats(const void *layer, tw_layer_stat *out, size_t cap)
{
    const struct fake_layer *l = layer;
    const tw_layer_stat all[2] = {{"checks", l->checks}, {"frames", l->nframes}};
    for (size_t i = 0; i < 2 && i < cap; i++)
        out[i] = all[i];
    return 2;
}

static const tw_layer_ops PURE_OPS = {sizeof(tw_layer_ops), "pure", fl_next, fl_check, fl_take,
                                      TW_LAYER_PURE, fl_stats};
static const tw_layer_ops IMPURE_OPS = {sizeof(tw_layer_ops), "impure", fl_next, fl_check,
                                        fl_take, 0, NULL};
static const tw_layer_ops NOFRAMES_OPS = {sizeof(tw_layer_ops), "noframes", fl_next, fl_check,
                                          NULL, 0, NULL};

static void layer_init(struct fake_layer *l, uint64_t deadline, uint32_t bits)
{
    memset(l, 0, sizeof(*l));
    l->deadline = deadline;
    l->then = TW_NEVER;
    l->bits = bits;
    l->next_frame = 1000;
}

static unsigned add(tw_conn *c, const tw_layer_ops *ops, struct fake_layer *l)
{
    unsigned n = 0;
    assert_int_equal(tw_conn_add_layer(c, ops, l, &n), 0);
    l->conn = c;
    l->number = n;
    return n;
}

static void test_layer_dirty(void **state)
{
    (void)state;
    start();
    memset(&SEEN, 0, sizeof(SEEN));
    tw_conn *c = conn_new(1, record, NULL);
    struct fake_layer l;
    layer_init(&l, T0 + 50 * MS, 0x5);
    assert_int_equal(add(c, &IMPURE_OPS, &l), 1);
    /* Adding it files the connection at its deadline. */
    assert_int_equal(stats().wheel_ops, 1);
    assert_int_equal(loop_next(), T0 + 50 * MS);
    assert_int_equal(conn_next(c), T0 + 50 * MS);
    assert_int_equal(tw_conn_armed(c), 0);

    /* Earlier: re-filed at once, one operation. */
    l.deadline = T0 + 20 * MS;
    assert_int_equal(tw_conn_layer_dirty(c, 1), 0);
    assert_int_equal(stats().wheel_ops, 2);
    assert_int_equal(loop_next(), T0 + 20 * MS);
    assert_int_equal(conn_next(c), T0 + 20 * MS);
    turn_at(T0 + 20 * MS - 1);
    assert_int_equal(l.checks, 0);
    l.then = T0 + 80 * MS;
    turn_at(loop_next());
    assert_int_equal(l.checks, 1);
    assert_int_equal(l.checked_at, T0 + 20 * MS);
    assert_int_equal(SEEN.n, 1);
    assert_int_equal(SEEN.ev[0].events[0], 0);
    assert_int_equal(SEEN.ev[0].events[1], 0x5);
    assert_int_equal(SEEN.ev[0].events[2], 0);
    assert_int_equal(conn_next(c), T0 + 80 * MS);
    assert_int_equal(loop_next(), T0 + 80 * MS);

    /* Later: lazy, and the check does not run at the stale filed time. */
    tw_conn_stats s = stats();
    l.deadline = T0 + 90 * MS;
    assert_int_equal(tw_conn_layer_dirty(c, 1), 0);
    tw_conn_stats t = stats();
    assert_int_equal(t.wheel_ops, s.wheel_ops);
    assert_int_equal(t.lazy_arms, s.lazy_arms + 1);
    assert_int_equal(conn_next(c), T0 + 90 * MS);
    turn_at(loop_next());
    assert_int_equal(FAKE, T0 + 80 * MS);
    assert_int_equal(l.checks, 1);
    assert_int_equal(SEEN.n, 1);
    assert_int_equal(stats().early_wakeups, t.early_wakeups + 1);
    l.then = TW_NEVER;
    turn_at(loop_next());
    assert_int_equal(FAKE, T0 + 90 * MS);
    assert_int_equal(l.checks, 2);
    assert_int_equal(SEEN.n, 2);
    assert_int_equal(SEEN.ev[1].events[1], 0x5);
    /* The layer has nothing left: nor has the connection. */
    uint64_t d;
    assert_int_equal(tw_conn_next_deadline(c, &d), TW_ENOENT);
    assert_int_equal(tw_loop_next_deadline(LOOP, &d), TW_ENOENT);
    /* disarm_all leaves layers alone. */
    l.deadline = T0 + SEC;
    assert_int_equal(tw_conn_layer_dirty(c, 1), 0);
    assert_int_equal(tw_conn_arm(c, TW_CONN_IDLE, T0 + 2 * SEC), 0);
    assert_int_equal(tw_conn_disarm_all(c), 0);
    assert_int_equal(conn_next(c), T0 + SEC);
    assert_int_equal(loop_next(), T0 + SEC);
    tw_conn_free(c);
}

static void test_layers_pure_and_impure(void **state)
{
    (void)state;
    start();
    memset(&SEEN, 0, sizeof(SEEN));
    tw_conn *c = conn_new(2, record, NULL);
    struct fake_layer p, i, n;
    layer_init(&p, T0 + 10 * MS, 0x1);
    layer_init(&i, T0 + 10 * MS, 0x2);
    layer_init(&n, T0 + 30 * MS, 0x4);
    assert_int_equal(add(c, &PURE_OPS, &p), 1);
    assert_int_equal(add(c, &IMPURE_OPS, &i), 2);
    assert_int_equal(add(c, &NOFRAMES_OPS, &n), 3);
    struct fake_layer extra;
    layer_init(&extra, T0, 0x8);
    unsigned num = 77;
    assert_int_equal(tw_conn_add_layer(c, &IMPURE_OPS, &extra, &num), TW_ENOSPC);
    assert_int_equal(num, 77);
    assert_int_equal(conn_next(c), T0 + 10 * MS);

    assert_int_equal(tw_conn_arm(c, TW_CONN_RETRANSMIT, T0 + 10 * MS), 0);
    turn_at(T0 + 10 * MS);
    assert_int_equal(p.checks, 1);
    assert_int_equal(i.checks, 1);
    assert_int_equal(n.checks, 0);     /* not due: not asked */
    assert_int_equal(p.checked_at, T0 + 10 * MS);
    assert_int_equal(i.checked_at, T0 + 10 * MS);
    assert_int_equal(SEEN.n, 1);
    assert_int_equal(SEEN.ev[0].events[0], BIT(TW_CONN_RETRANSMIT));
    assert_int_equal(SEEN.ev[0].events[1], 0x1);
    assert_int_equal(SEEN.ev[0].events[2], 0x2);
    assert_int_equal(SEEN.ev[0].events[3], 0);
    /* Counters by layer: the pure one has two, the others none. */
    tw_layer_stat st[2];
    const char *name = NULL;
    assert_int_equal(tw_conn_layer_stats(c, 1, &name, st, 2), 2);
    assert_string_equal(name, "pure");
    assert_string_equal(st[0].name, "checks");
    assert_int_equal(st[0].value, 1);
    assert_int_equal(tw_conn_layer_stats(c, 1, NULL, st, 1), 2);
    assert_int_equal(tw_conn_layer_stats(c, 2, &name, st, 2), 0);
    assert_string_equal(name, "impure");
    assert_int_equal(tw_conn_layer_stats(c, 4, NULL, st, 2), TW_EINVAL);
    turn_at(loop_next());
    assert_int_equal(FAKE, T0 + 30 * MS);
    assert_int_equal(n.checks, 1);
    assert_int_equal(SEEN.ev[1].events[0], 0);
    assert_int_equal(SEEN.ev[1].events[3], 0x4);
    uint64_t d;
    assert_int_equal(tw_loop_next_deadline(LOOP, &d), TW_ENOENT);

    /* A check that finds nothing (its deadline was stale) is no event. */
    p.deadline = T0 + 40 * MS;
    assert_int_equal(tw_conn_layer_dirty(c, 1), 0);
    p.deadline = T0 + 41 * MS;          /* moved without telling */
    turn_at(T0 + 40 * MS);
    assert_int_equal(p.checks, 2);
    assert_int_equal(SEEN.n, 2);
    assert_int_equal(conn_next(c), T0 + 41 * MS);
    turn_at(loop_next());
    assert_int_equal(SEEN.n, 3);
    assert_int_equal(SEEN.ev[2].events[1], 0x1);
    tw_conn_free(c);
}

static void test_check_all_and_frames(void **state)
{
    (void)state;
    start();
    memset(&SEEN, 0, sizeof(SEEN));
    tw_conn *c = conn_new(3, record, NULL);
    struct fake_layer a, b;
    layer_init(&a, T0 + 10 * MS, 0x10);
    layer_init(&b, T0 + 10 * MS, 0x20);
    a.frames_per_fire = 3;
    b.frames_per_fire = 2;
    assert_int_equal(add(c, &IMPURE_OPS, &a), 1);
    assert_int_equal(add(c, &PURE_OPS, &b), 2);
    assert_int_equal(tw_conn_arm(c, TW_CONN_ACK_DELAY, T0 + 5 * MS), 0);
    assert_int_equal(tw_conn_arm(c, TW_CONN_IDLE, T0 + 30 * MS), 0);

    /* Nothing due yet. */
    uint64_t buf[8];
    tw_conn_result r;
    memset(&r, 0xff, sizeof(r));
    r.frames = buf;
    r.frames_cap = 3;
    assert_int_equal(tw_conn_check_all(c, T0 + MS, &r), 0);
    assert_int_equal(r.events[0], 0);
    assert_int_equal(r.events[1], 0);
    assert_int_equal(r.events[2], 0);
    assert_int_equal(r.events[3], 0);
    assert_int_equal(r.frames_n, 0);
    assert_int_equal(r.frames_more, 0);

    /* Everything due, by hand: events and frames, the buffer too small. */
    assert_int_equal(tw_conn_check_all(c, T0 + 10 * MS, &r), 1);
    assert_int_equal(r.events[0], BIT(TW_CONN_ACK_DELAY));
    assert_int_equal(r.events[1], 0x10);
    assert_int_equal(r.events[2], 0x20);
    assert_int_equal(r.frames_n, 3);
    assert_int_equal(r.frames_more, 1);
    assert_int_equal(buf[0], 1000);
    assert_int_equal(buf[1], 1001);
    assert_int_equal(buf[2], 1002);
    assert_int_equal(tw_conn_armed(c), BIT(TW_CONN_IDLE));
    /* The rest by tw_conn_take_frames. */
    assert_int_equal(tw_conn_take_frames(c, buf, 8), 2);
    assert_int_equal(buf[0], 1000);
    assert_int_equal(buf[1], 1001);
    assert_int_equal(b.nframes, 0);
    assert_int_equal(tw_conn_take_frames(c, buf, 8), 0);
    assert_int_equal(conn_next(c), T0 + 30 * MS);
    /* No buffer: frames stay with the layers. */
    a.deadline = T0 + 12 * MS;
    assert_int_equal(tw_conn_layer_dirty(c, 1), 0);
    r.frames = NULL;
    r.frames_cap = 0;
    assert_int_equal(tw_conn_check_all(c, T0 + 12 * MS, &r), 1);
    assert_int_equal(r.events[1], 0x10);
    assert_int_equal(r.frames_n, 0);
    assert_int_equal(r.frames_more, 0);
    assert_int_equal(a.nframes, 3);
    assert_int_equal(tw_conn_take_frames(c, buf, 2), 2);
    assert_int_equal(tw_conn_take_frames(c, buf, 0), 0);
    assert_int_equal(tw_conn_take_frames(c, buf, 8), 1);
    assert_int_equal(buf[0], 1005);

    /* Nothing fired by hand reaches the callback; the loop just wakes
     * early at the stale filing and files at the idle deadline. */
    turn_at(T0 + 20 * MS);
    assert_int_equal(SEEN.n, 0);
    assert_int_equal(stats().early_wakeups, 1);
    assert_int_equal(loop_next(), T0 + 30 * MS);
    turn_at(loop_next());
    assert_int_equal(SEEN.n, 1);
    assert_int_equal(SEEN.ev[0].events[0], BIT(TW_CONN_IDLE));
    assert_int_equal(SEEN.ev[0].events[1], 0);
    tw_conn_free(c);
}

static void test_dirty_from_check(void **state)
{
    (void)state;
    start();
    memset(&SEEN, 0, sizeof(SEEN));
    tw_conn *c = conn_new(4, record, NULL);
    struct fake_layer a, b;
    layer_init(&a, T0 + 10 * MS, 0x1);
    layer_init(&b, T0 + SEC, 0x2);
    assert_int_equal(add(c, &IMPURE_OPS, &a), 1);
    assert_int_equal(add(c, &IMPURE_OPS, &b), 2);
    /* a's check, inside a turn, moves b earlier and says so. */
    a.poke = &b;
    a.poke_to = T0 + 15 * MS;
    a.poke_ret = 1;
    turn_at(loop_next());
    assert_int_equal(a.checks, 1);
    assert_int_equal(a.poke_ret, 0);
    assert_int_equal(b.checks, 0);
    assert_int_equal(SEEN.n, 1);
    assert_int_equal(conn_next(c), T0 + 15 * MS);
    assert_int_equal(loop_next(), T0 + 15 * MS);
    /* b's check moves itself. */
    b.poke = &b;
    b.poke_to = T0 + 17 * MS;
    b.poke_ret = 1;
    turn_at(loop_next());
    assert_int_equal(b.checks, 1);
    assert_int_equal(b.poke_ret, 0);
    assert_int_equal(SEEN.n, 2);
    assert_int_equal(SEEN.ev[1].events[2], 0x2);
    assert_int_equal(conn_next(c), T0 + 17 * MS);
    assert_int_equal(loop_next(), T0 + 17 * MS);
    turn_at(loop_next());
    assert_int_equal(b.checks, 2);
    assert_int_equal(SEEN.n, 3);

    /* The same by hand: a's check moves b earlier, already due: b is
     * checked in the same call. */
    a.deadline = T0 + 30 * MS;
    b.deadline = T0 + 40 * MS;
    assert_int_equal(tw_conn_layer_dirty(c, 1), 0);
    assert_int_equal(tw_conn_layer_dirty(c, 2), 0);
    assert_int_equal(loop_next(), T0 + 30 * MS);
    a.poke = &b;
    a.poke_to = T0 + 25 * MS;
    a.poke_ret = 1;
    tw_conn_result r;
    memset(&r, 0, sizeof(r));
    assert_int_equal(tw_conn_check_all(c, T0 + 30 * MS, &r), 1);
    assert_int_equal(a.poke_ret, 0);
    assert_int_equal(a.checks, 2);
    assert_int_equal(b.checks, 3);
    assert_int_equal(r.events[1], 0x1);
    assert_int_equal(r.events[2], 0x2);
    /* Nothing left: the wheel timer is gone. */
    uint64_t d;
    assert_int_equal(tw_conn_next_deadline(c, &d), TW_ENOENT);
    assert_int_equal(tw_loop_next_deadline(LOOP, &d), TW_ENOENT);

    /* By hand again, b moved to a time not yet due: it waits for it. */
    a.deadline = T0 + 30 * MS;
    assert_int_equal(tw_conn_layer_dirty(c, 1), 0);
    a.poke = &b;
    a.poke_to = T0 + 35 * MS;
    a.poke_ret = 1;
    assert_int_equal(tw_conn_check_all(c, T0 + 30 * MS, &r), 1);
    assert_int_equal(a.poke_ret, 0);
    assert_int_equal(b.checks, 3);
    assert_int_equal(conn_next(c), T0 + 35 * MS);
    assert_true(loop_next() <= T0 + 35 * MS);
    size_t seen = SEEN.n;
    turn_at(T0 + 35 * MS - 1);
    assert_int_equal(SEEN.n, seen);
    turn_at(T0 + 35 * MS);
    assert_int_equal(b.checks, 4);
    assert_int_equal(SEEN.n, seen + 1);
    assert_int_equal(SEEN.ev[seen].events[2], 0x2);
    tw_conn_free(c);
}

/* ---- bad input ---------------------------------------------------------- */

/* The reliability layers a connection had stay the caller's after the loop
 * is freed with the connection still on it: calls that move their deadline
 * must not reach the freed connection.  Freed between turns and from
 * inside a connection's callback, with both recovery modes and a layer of
 * another kind beside them. */
static tw_recovery *recovery_for(uint32_t mode)
{
    tw_recovery_config rc;
    tw_recovery_config_init(&rc);
    rc.mode = mode;
    rc.is_server = 1;
    tw_recovery *r = NULL;
    assert_int_equal(tw_recovery_new(&rc, &r), 0);
    assert_int_equal(tw_recovery_set_handshake_confirmed(r), 0);
    return r;
}

/* Sends, acknowledges and times out on r, as a caller still would. */
static void use_recovery(tw_recovery *r, uint64_t pn, uint64_t now)
{
    assert_int_equal(tw_recovery_on_sent(r, TW_PN_APPLICATION, pn, now, 1200,
                                         TW_RECOVERY_ACK_ELICITING, pn + 1), 0);
    assert_int_equal(tw_recovery_on_sent(r, TW_PN_APPLICATION, pn + 1, now, 1200,
                                         TW_RECOVERY_ACK_ELICITING, pn + 2), 0);
    const tw_ack_range ack = {pn + 1, pn + 1};
    assert_int_equal(tw_recovery_on_ack(r, TW_PN_APPLICATION, &ack, 1, 0, now + 10 * MS), 0);
    uint64_t at;
    assert_int_equal(tw_recovery_next_deadline(r, &at), 0);
    uint32_t ev = 0;
    assert_int_equal(tw_recovery_check(r, at, &ev), 0);
    assert_true(ev != 0);
}

static void free_loop_cb(const tw_conn_event *e, void *userdata)
{
    (void)e;
    (void)userdata;
    tw_loop_free(LOOP);
}

static void test_free_loop_with_recovery(void **state)
{
    (void)state;
    for (int from_callback = 0; from_callback < 2; from_callback++) {
        start();
        tw_recovery *quic = recovery_for(TW_RECOVERY_RFC9002);
        tw_recovery *tcp = recovery_for(TW_RECOVERY_RFC6298);
        struct fake_layer other;
        layer_init(&other, T0 + 5 * SEC, 1);
        tw_conn *a = conn_new(1, from_callback ? free_loop_cb : record, NULL);
        tw_conn *b = conn_new(2, record, NULL);
        unsigned n;
        assert_int_equal(tw_conn_add_recovery(a, quic, &n), 0);
        assert_int_equal(tw_conn_add_layer(a, &PURE_OPS, &other, &n), 0);
        assert_int_equal(tw_conn_add_recovery(a, tcp, &n), 0);
        /* b's reliability layer was given back already: it is not b's. */
        tw_recovery *gone = recovery_for(TW_RECOVERY_RFC9002);
        assert_int_equal(tw_conn_add_recovery(b, gone, &n), 0);
        tw_conn_free(b);
        use_recovery(quic, 0, T0);
        use_recovery(tcp, 0, T0);
        if (from_callback) {
            assert_int_equal(tw_conn_arm(a, TW_CONN_IDLE, T0 + MS), 0);
            FAKE = T0 + MS;
            assert_true(tw_loop_process(LOOP) >= 0);
        } else {
            tw_loop_free(LOOP);
        }
        LOOP = NULL;
        use_recovery(quic, 10, T0 + 10 * SEC);
        use_recovery(tcp, 10, T0 + 10 * SEC);
        assert_int_equal(tw_recovery_discard_space(quic, TW_PN_INITIAL), 0);
        tw_recovery_free(quic);
        tw_recovery_free(tcp);
        tw_recovery_free(gone);
    }
}

/* ---- the ends of time ---------------------------------------------------- */

/* A kind armed at TW_NEVER stays armed and never fires, not even at the
 * last instant the clock can show, by a turn or by hand; a layer with no
 * deadline is not checked then either. */
static void test_never_fires_at_the_end_of_time(void **state)
{
    (void)state;
    start();
    memset(&SEEN, 0, sizeof(SEEN));
    tw_conn *c = conn_new(1, record, NULL);
    struct fake_layer none;
    layer_init(&none, TW_NEVER, 1);
    unsigned n;
    assert_int_equal(tw_conn_add_layer(c, &PURE_OPS, &none, &n), 0);
    assert_int_equal(tw_conn_arm(c, TW_CONN_IDLE, TW_NEVER), 0);
    assert_int_equal(tw_conn_arm(c, TW_CONN_CONNECT, T0 + MS), 0);
    turn_at(UINT64_MAX);
    assert_int_equal(SEEN.n, 1);
    assert_int_equal(SEEN.ev[0].events[0], BIT(TW_CONN_CONNECT));
    assert_int_equal(SEEN.ev[0].events[1], 0);
    assert_int_equal(none.checks, 0);
    assert_int_equal(tw_conn_armed(c), BIT(TW_CONN_IDLE));
    assert_int_equal(deadline_of(c, TW_CONN_IDLE), TW_NEVER);
    uint64_t d;
    assert_int_equal(tw_conn_next_deadline(c, &d), TW_ENOENT);
    assert_int_equal(tw_loop_next_deadline(LOOP, &d), TW_ENOENT);
    turn_at(UINT64_MAX);
    assert_int_equal(SEEN.n, 1);

    tw_conn_result r;
    memset(&r, 0, sizeof(r));
    assert_int_equal(tw_conn_arm(c, TW_CONN_CLOSE, TW_NEVER), 0);
    assert_int_equal(tw_conn_check_all(c, UINT64_MAX, &r), 0);
    assert_int_equal(r.events[0], 0);
    assert_int_equal(r.events[1], 0);
    assert_int_equal(none.checks, 0);
    assert_int_equal(tw_conn_armed(c), BIT(TW_CONN_IDLE) | BIT(TW_CONN_CLOSE));
    tw_conn_free(c);
}

/* A window that reaches past the end of time, deadline + slack above
 * TW_NEVER, still ends in time: the kind fires by TW_NEVER - 1, and the
 * loop reports when it needs to run for it. */
static void test_slack_past_the_end_of_time(void **state)
{
    (void)state;
    start();
    memset(&SEEN, 0, sizeof(SEEN));
    const uint64_t at = TW_NEVER - 5 * MS;
    tw_conn *c = conn_new(1, record, NULL);
    assert_int_equal(tw_conn_set_slack(c, TW_CONN_IDLE, 10 * MS), 0);
    assert_int_equal(tw_conn_arm(c, TW_CONN_IDLE, at), 0);
    assert_int_equal(conn_next(c), at);
    uint64_t next = loop_next();
    assert_true(next >= at);
    assert_true(next < TW_NEVER);
    turn_at(next);
    assert_int_equal(SEEN.n, 1);
    assert_int_equal(SEEN.ev[0].events[0], BIT(TW_CONN_IDLE));
    assert_int_equal(tw_conn_armed(c), 0);

    /* The same when another kind's firing files the connection again. */
    tw_conn *d = conn_new(2, record, NULL);
    assert_int_equal(tw_conn_set_slack(d, TW_CONN_KEEPALIVE, UINT32_MAX), 0);
    assert_int_equal(tw_conn_arm(d, TW_CONN_KEEPALIVE, TW_NEVER - 1), 0);
    assert_int_equal(tw_conn_arm(d, TW_CONN_CLOSE, next), 0);
    turn_at(next);
    assert_int_equal(SEEN.n, 2);
    assert_int_equal(SEEN.ev[1].events[0], BIT(TW_CONN_CLOSE));
    assert_int_equal(loop_next(), TW_NEVER - 1);
    turn_at(TW_NEVER - 1);
    assert_int_equal(SEEN.n, 3);
    assert_int_equal(SEEN.ev[2].events[0], BIT(TW_CONN_KEEPALIVE));
    tw_conn_free(c);
    tw_conn_free(d);
}

/* In one turn, another connection's callback moves a kind of b earlier,
 * asks b's next deadline, then moves it later: the answer follows, exact
 * at every moment, and b is filed for its true next deadline. */
struct mover {
    tw_conn *target;
    uint64_t seen_early, seen_late;
};

static void move_later_cb(const tw_conn_event *e, void *userdata)
{
    struct mover *m = userdata;
    (void)e;
    if (!m->target)
        return;
    assert_int_equal(tw_conn_arm(m->target, TW_CONN_IDLE, T0 + 5 * MS), 0);
    m->seen_early = conn_next(m->target);
    assert_int_equal(tw_conn_arm(m->target, TW_CONN_IDLE, T0 + 50 * MS), 0);
    m->seen_late = conn_next(m->target);
    m->target = NULL;
}

static void test_next_deadline_exact_across_callbacks(void **state)
{
    (void)state;
    start();
    memset(&SEEN, 0, sizeof(SEEN));
    struct mover m = {0};
    tw_conn *a = conn_new(1, move_later_cb, &m);
    tw_conn *b = conn_new(2, record, NULL);
    assert_int_equal(tw_conn_arm(a, TW_CONN_CONNECT, T0 + MS), 0);
    assert_int_equal(tw_conn_arm(b, TW_CONN_CONNECT, T0 + MS), 0);
    assert_int_equal(tw_conn_arm(b, TW_CONN_CLOSE, T0 + 80 * MS), 0);
    m.target = b;
    turn_at(T0 + MS);
    assert_int_equal(m.seen_early, T0 + 5 * MS);
    assert_int_equal(m.seen_late, T0 + 50 * MS);
    assert_int_equal(SEEN.n, 1);
    assert_int_equal(SEEN.ev[0].events[0], BIT(TW_CONN_CONNECT));
    assert_int_equal(conn_next(b), T0 + 50 * MS);
    assert_int_equal(loop_next(), T0 + 50 * MS);
    turn_at(T0 + 50 * MS);
    assert_int_equal(SEEN.n, 2);
    assert_int_equal(SEEN.ev[1].events[0], BIT(TW_CONN_IDLE));
    assert_int_equal(conn_next(b), T0 + 80 * MS);
    tw_conn_free(a);
    tw_conn_free(b);
}

/* An impure layer's check may free its own connection, or the loop: the
 * connection's event then goes nowhere, and a connection that takes the
 * freed one's place is not disturbed by what the old one left. */
struct freeing_layer {
    uint64_t deadline;
    tw_conn *conn;
    int free_conn, free_loop;
};

static uint64_t freeing_next(const void *layer)
{
    return ((const struct freeing_layer *)layer)->deadline;
}

static uint32_t freeing_check(void *layer, uint64_t now_ns)
{
    struct freeing_layer *l = layer;
    if (l->deadline > now_ns)
        return 0;
    l->deadline = TW_NEVER;
    if (l->free_conn)
        tw_conn_free(l->conn);
    if (l->free_loop)
        tw_loop_free(LOOP);
    return 1;
}

static const tw_layer_ops FREEING_OPS = {sizeof(tw_layer_ops), "freeing", freeing_next,
                                         freeing_check, NULL, 0, NULL};

static void test_impure_check_frees(void **state)
{
    (void)state;
    start();
    memset(&SEEN, 0, sizeof(SEEN));
    struct freeing_layer l = {T0 + MS, NULL, 1, 0};
    unsigned n;
    /* The connection is freed by its own check, with kinds still armed for
     * later: no event, and nothing of it stays in the wheel. */
    l.conn = conn_new(1, record, NULL);
    assert_int_equal(tw_conn_add_layer(l.conn, &FREEING_OPS, &l, &n), 0);
    assert_int_equal(tw_conn_arm(l.conn, TW_CONN_IDLE, T0 + MS), 0);
    assert_int_equal(tw_conn_arm(l.conn, TW_CONN_CLOSE, T0 + 5 * MS), 0);
    turn_at(T0 + MS);
    assert_int_equal(SEEN.n, 0);
    assert_int_equal(stats().live, 0);
    uint64_t d;
    assert_int_equal(tw_loop_next_deadline(LOOP, &d), TW_ENOENT);
    /* The same slot, a new connection: it fires at its own deadline only. */
    tw_conn *b = conn_new(2, record, NULL);
    assert_int_equal(tw_conn_arm(b, TW_CONN_KEEPALIVE, T0 + 9 * MS), 0);
    turn_at(T0 + 5 * MS);
    assert_int_equal(SEEN.n, 0);
    assert_int_equal(conn_next(b), T0 + 9 * MS);
    assert_int_equal(loop_next(), T0 + 9 * MS);
    turn_at(T0 + 9 * MS);
    assert_int_equal(SEEN.n, 1);
    assert_ptr_equal(SEEN.ev[0].conn, b);
    assert_int_equal(SEEN.ev[0].events[0], BIT(TW_CONN_KEEPALIVE));
    tw_conn_free(b);

    /* The same by hand. */
    l.deadline = T0 + 10 * MS;
    l.conn = conn_new(3, record, NULL);
    assert_int_equal(tw_conn_add_layer(l.conn, &FREEING_OPS, &l, &n), 0);
    assert_int_equal(tw_conn_arm(l.conn, TW_CONN_CLOSE, T0 + 20 * MS), 0);
    tw_conn_result r;
    memset(&r, 0, sizeof(r));
    assert_int_equal(tw_conn_check_all(l.conn, T0 + 10 * MS, &r), 1);
    assert_int_equal(r.events[1], 1);
    assert_int_equal(stats().live, 0);
    assert_int_equal(tw_loop_next_deadline(LOOP, &d), TW_ENOENT);

    /* The loop, freed by a check: the turn delivers nothing more. */
    l.deadline = T0 + 30 * MS;
    l.free_conn = 0;
    l.free_loop = 1;
    l.conn = conn_new(4, record, NULL);
    assert_int_equal(tw_conn_add_layer(l.conn, &FREEING_OPS, &l, &n), 0);
    assert_int_equal(tw_conn_arm(l.conn, TW_CONN_IDLE, T0 + 30 * MS), 0);
    FAKE = T0 + 30 * MS;
    assert_true(tw_loop_process(LOOP) >= 0);
    LOOP = NULL;
    assert_int_equal(SEEN.n, 1);
}

/* A reliability layer is the layer of one connection at a time: a second
 * connection would take its notify callback from the first, whose cached
 * deadline would then go stale.  Once the first is freed, it may move. */
static void test_recovery_on_one_connection(void **state)
{
    (void)state;
    start();
    memset(&SEEN, 0, sizeof(SEEN));
    tw_recovery *r = NULL;
    assert_int_equal(tw_recovery_new(NULL, &r), 0);
    tw_conn *a = conn_new(1, record, NULL);
    tw_conn *b = conn_new(2, record, NULL);
    unsigned n;
    assert_int_equal(tw_conn_add_recovery(a, r, &n), 0);
    assert_int_equal(tw_conn_add_recovery(b, r, &n), TW_EINVAL);
    assert_int_equal(tw_conn_layer_stats(b, 1, NULL, NULL, 0), TW_EINVAL);
    /* a still hears of every move of the deadline. */
    assert_int_equal(tw_recovery_on_sent(r, TW_PN_INITIAL, 0, T0, 1200,
                                         TW_RECOVERY_ACK_ELICITING, 7), 0);
    uint64_t pto;
    assert_int_equal(tw_recovery_next_deadline(r, &pto), 0);
    assert_int_equal(conn_next(a), pto);
    tw_conn_free(a);
    assert_int_equal(tw_conn_add_recovery(b, r, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(conn_next(b), pto);
    tw_conn_free(b);
    tw_recovery_free(r);
}

static void test_bad_input(void **state)
{
    (void)state;
    start();
    tw_conn *c = NULL;
    uint64_t d = 5;
    unsigned n = 5;
    uint64_t frames[4];
    tw_conn_event ev[2];
    tw_conn_result r;
    memset(&r, 0, sizeof(r));

    assert_int_equal(tw_conn_new(NULL, 1, record, NULL, &c), TW_EINVAL);
    assert_null(c);
    assert_int_equal(tw_conn_new(LOOP, 1, record, NULL, NULL), TW_EINVAL);

    /* NULL connection. */
    tw_conn_free(NULL);
    assert_int_equal(tw_conn_id(NULL), 0);
    assert_int_equal(tw_conn_arm(NULL, 0, T0), TW_EINVAL);
    assert_int_equal(tw_conn_arm_in(NULL, 0, MS), TW_EINVAL);
    assert_int_equal(tw_conn_disarm(NULL, 0), TW_EINVAL);
    assert_int_equal(tw_conn_disarm_all(NULL), TW_EINVAL);
    assert_int_equal(tw_conn_deadline(NULL, 0, &d), TW_EINVAL);
    assert_int_equal(tw_conn_armed(NULL), 0);
    assert_int_equal(tw_conn_set_idle_timeout(NULL, MS), TW_EINVAL);
    assert_int_equal(tw_conn_touch(NULL), TW_EINVAL);
    assert_int_equal(tw_conn_add_layer(NULL, &IMPURE_OPS, NULL, &n), TW_EINVAL);
    assert_int_equal(tw_conn_layer_dirty(NULL, 1), TW_EINVAL);
    assert_int_equal(tw_conn_next_deadline(NULL, &d), TW_EINVAL);
    assert_int_equal(tw_conn_check_all(NULL, T0, &r), TW_EINVAL);
    assert_int_equal(tw_conn_take_frames(NULL, frames, 4), 0);
    assert_int_equal(d, 5);
    assert_int_equal(n, 5);

    c = conn_new(42, record, NULL);
    /* Kinds out of range. */
    const unsigned bad_kinds[] = {TW_CONN_KINDS, TW_CONN_KINDS + 1, 32, ~0u};
    for (size_t i = 0; i < sizeof(bad_kinds) / sizeof(bad_kinds[0]); i++) {
        assert_int_equal(tw_conn_arm(c, bad_kinds[i], T0), TW_EINVAL);
        assert_int_equal(tw_conn_arm_in(c, bad_kinds[i], MS), TW_EINVAL);
        assert_int_equal(tw_conn_disarm(c, bad_kinds[i]), TW_EINVAL);
        assert_int_equal(tw_conn_deadline(c, bad_kinds[i], &d), TW_EINVAL);
    }
    assert_int_equal(tw_conn_armed(c), 0);
    /* NULL out-parameters. */
    assert_int_equal(tw_conn_arm(c, TW_CONN_IDLE, T0 + MS), 0);
    assert_int_equal(tw_conn_deadline(c, TW_CONN_IDLE, NULL), TW_EINVAL);
    assert_int_equal(tw_conn_next_deadline(c, NULL), TW_EINVAL);
    assert_int_equal(tw_conn_check_all(c, T0, NULL), TW_EINVAL);
    r.frames = NULL;
    r.frames_cap = 4;
    assert_int_equal(tw_conn_check_all(c, T0 + SEC, &r), TW_EINVAL);
    assert_int_equal(tw_conn_armed(c), BIT(TW_CONN_IDLE));    /* nothing fired */
    assert_int_equal(tw_conn_take_frames(c, NULL, 4), 0);
    assert_int_equal(tw_conn_take_frames(c, frames, 4), 0);   /* no layers */

    /* Layer operations. */
    struct fake_layer l;
    layer_init(&l, T0 + MS, 1);
    tw_layer_ops ops = IMPURE_OPS;
    assert_int_equal(tw_conn_add_layer(c, NULL, &l, &n), TW_EINVAL);
    assert_int_equal(tw_conn_add_layer(c, &ops, &l, NULL), TW_EINVAL);
    const size_t bad_sizes[] = {0, sizeof(size_t), sizeof(ops) - 1, sizeof(ops) + 1};
    for (size_t i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++) {
        ops.struct_size = bad_sizes[i];
        assert_int_equal(tw_conn_add_layer(c, &ops, &l, &n), TW_EINVAL);
    }
    ops = IMPURE_OPS;
    ops.next_deadline = NULL;
    assert_int_equal(tw_conn_add_layer(c, &ops, &l, &n), TW_EINVAL);
    ops = IMPURE_OPS;
    ops.check = NULL;
    assert_int_equal(tw_conn_add_layer(c, &ops, &l, &n), TW_EINVAL);
    assert_int_equal(n, 5);
    /* Layer numbers: 0 is the connection layer, none added yet. */
    assert_int_equal(tw_conn_layer_dirty(c, 0), TW_EINVAL);
    assert_int_equal(tw_conn_layer_dirty(c, 1), TW_EINVAL);
    assert_int_equal(add(c, &IMPURE_OPS, &l), 1);
    assert_int_equal(tw_conn_layer_dirty(c, 0), TW_EINVAL);
    assert_int_equal(tw_conn_layer_dirty(c, 1), 0);
    assert_int_equal(tw_conn_layer_dirty(c, 2), TW_EINVAL);
    assert_int_equal(tw_conn_layer_dirty(c, TW_CONN_MAX_LAYERS), TW_EINVAL);
    assert_int_equal(tw_conn_layer_dirty(c, ~0u), TW_EINVAL);

    /* The loop side. */
    assert_int_equal(tw_conn_poll(NULL, ev, 2), TW_EINVAL);
    assert_int_equal(tw_conn_poll(LOOP, NULL, 2), TW_EINVAL);
    assert_int_equal(tw_conn_poll(LOOP, NULL, 0), 0);
    tw_conn_stats s;
    memset(&s, 0, sizeof(s));
    s.struct_size = sizeof(s);
    assert_int_equal(tw_conn_stats_get(NULL, &s), TW_EINVAL);
    assert_int_equal(tw_conn_stats_get(LOOP, NULL), TW_EINVAL);
    const size_t small[] = {0, 1, sizeof(size_t)};
    for (size_t i = 0; i < sizeof(small) / sizeof(small[0]); i++) {
        s.struct_size = small[i];
        assert_int_equal(tw_conn_stats_get(LOOP, &s), TW_EINVAL);
    }

    /* A freed connection: refused until its slot is reused. */
    tw_conn_free(c);
    assert_int_equal(tw_conn_id(c), 0);
    assert_int_equal(tw_conn_arm(c, 0, T0), TW_EINVAL);
    assert_int_equal(tw_conn_arm_in(c, 0, MS), TW_EINVAL);
    assert_int_equal(tw_conn_disarm(c, 0), TW_EINVAL);
    assert_int_equal(tw_conn_disarm_all(c), TW_EINVAL);
    assert_int_equal(tw_conn_deadline(c, 0, &d), TW_EINVAL);
    assert_int_equal(tw_conn_armed(c), 0);
    assert_int_equal(tw_conn_set_idle_timeout(c, MS), TW_EINVAL);
    assert_int_equal(tw_conn_touch(c), TW_EINVAL);
    assert_int_equal(tw_conn_add_layer(c, &IMPURE_OPS, &l, &n), TW_EINVAL);
    assert_int_equal(tw_conn_layer_dirty(c, 1), TW_EINVAL);
    assert_int_equal(tw_conn_next_deadline(c, &d), TW_EINVAL);
    r.frames = frames;
    assert_int_equal(tw_conn_check_all(c, T0 + SEC, &r), TW_EINVAL);
    assert_int_equal(tw_conn_take_frames(c, frames, 4), 0);
    tw_conn_free(c);                    /* twice: a no-op */
    assert_int_equal(l.checks, 0);
    assert_int_equal(d, 5);
    assert_int_equal(stats().live, 0);

    /* Nothing refused ever fires. */
    memset(&SEEN, 0, sizeof(SEEN));
    turn_at(T0 + 10 * SEC);
    assert_int_equal(SEEN.n, 0);
    assert_int_equal(stats().wakeups, 0);
}

static void test_stats_struct_size(void **state)
{
    (void)state;
    start();
    struct {
        tw_conn_stats s;
        uint64_t guard;
    } box;
    /* Smaller than the first field: refused, with connections or not. */
    const size_t small[] = {0, 1, sizeof(size_t), sizeof(size_t) + sizeof(uint64_t) - 1};
    for (size_t i = 0; i < sizeof(small) / sizeof(small[0]); i++) {
        memset(&box, 0xab, sizeof(box));
        box.s.struct_size = small[i];
        assert_int_equal(tw_conn_stats_get(LOOP, &box.s), TW_EINVAL);
        assert_int_equal(box.s.live, UINT64_C(0xabababababababab));
    }
    /* No connection yet: zeros. */
    memset(&box, 0xab, sizeof(box));
    box.s.struct_size = sizeof(box);
    assert_int_equal(tw_conn_stats_get(LOOP, &box.s), 0);
    assert_int_equal(box.s.struct_size, sizeof(box.s));
    assert_int_equal(box.s.live, 0);
    assert_int_equal(box.s.bytes, 0);
    assert_int_equal(box.guard, UINT64_C(0xabababababababab));

    tw_conn *c = conn_new(1, record, NULL);
    assert_int_equal(tw_conn_arm(c, TW_CONN_IDLE, T0 + MS), 0);
    /* An older, shorter struct: only its fields are written. */
    memset(&box, 0xab, sizeof(box));
    box.s.struct_size = offsetof(tw_conn_stats, created) + sizeof(uint64_t);
    assert_int_equal(tw_conn_stats_get(LOOP, &box.s), 0);
    assert_int_equal(box.s.struct_size, offsetof(tw_conn_stats, created) + sizeof(uint64_t));
    assert_int_equal(box.s.live, 1);
    assert_int_equal(box.s.created, 1);
    assert_int_equal(box.s.arms, UINT64_C(0xabababababababab));
    /* A newer, longer one: nothing past ours. */
    memset(&box, 0xab, sizeof(box));
    box.s.struct_size = sizeof(box);
    assert_int_equal(tw_conn_stats_get(LOOP, &box.s), 0);
    assert_int_equal(box.s.struct_size, sizeof(box.s));
    assert_int_equal(box.s.arms, 1);
    assert_int_equal(box.s.wheel_ops, 1);
    assert_int_equal(box.s.batches_direct + box.s.batches_handoff, 0);
    assert_true(box.s.bytes > 0);
    assert_int_equal(box.guard, UINT64_C(0xabababababababab));
    turn_at(T0 + MS);
    tw_conn_stats s = stats();
    assert_int_equal(s.batches_direct + s.batches_handoff, 1);
    assert_int_equal(s.wakeups, 1);
    assert_int_equal(s.events, 1);
    tw_conn_free(c);
}

/* ---- randomized model --------------------------------------------------- */

/* A few hundred connections under random arms (earlier, later, past,
 * never), disarms, touches, frees and creations, callbacks that re-arm and
 * free, and clock steps to the loop's next deadline, past it or anywhere.
 * The reference is a deadline per kind.  Every reported kind was armed and
 * due; after every turn no armed kind is due (so each was reported at the
 * first turn at or past its deadline); the connection's next deadline is
 * the reference's minimum after every operation; the loop's is never
 * later than the earliest of all, and absent when nothing is armed. */
#define MN 300

struct mconn {
    tw_conn *conn;              /* NULL: the slot is empty */
    uint32_t id;
    int queue;                  /* no callback: polled */
    uint32_t armed;
    uint64_t deadline[TW_CONN_KINDS];
    uint64_t idle;
};

static struct {
    unsigned seed;
    uint64_t step;
    uint64_t rng;
    uint32_t next_id;
    struct mconn c[MN];
    uint64_t arms, taken, turns, freed_in_cb;
} MD;

#define CHECK(cond)                                                                         \
    do {                                                                                    \
        if (!(cond))                                                                        \
            fail_msg("seed %u step %llu: %s", MD.seed, (unsigned long long)MD.step, #cond); \
    } while (0)

static uint64_t rnd(void)
{
    /* splitmix64 */
    uint64_t z = (MD.rng += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static uint64_t below(uint64_t n)
{
    return n ? rnd() % n : 0;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return b > TW_NEVER - a ? TW_NEVER : a + b;
}

static uint64_t model_min(const struct mconn *m)
{
    uint64_t min = TW_NEVER;
    for (unsigned k = 0; k < TW_CONN_KINDS; k++)
        if ((m->armed & BIT(k)) && m->deadline[k] < min)
            min = m->deadline[k];
    return min;
}

static void model_arm(struct mconn *m, unsigned kind, uint64_t at)
{
    m->armed |= BIT(kind);
    m->deadline[kind] = at;
    MD.arms++;
}

static void check_conn(const struct mconn *m)
{
    if (!m->conn)
        return;
    CHECK(tw_conn_id(m->conn) == m->id);
    CHECK(tw_conn_armed(m->conn) == m->armed);
    for (unsigned k = 0; k < TW_CONN_KINDS; k++) {
        uint64_t d = 0;
        int r = tw_conn_deadline(m->conn, k, &d);
        if (m->armed & BIT(k))
            CHECK(r == 0 && d == m->deadline[k]);
        else
            CHECK(r == TW_ENOENT);
    }
    uint64_t min = model_min(m), d = 0;
    int r = tw_conn_next_deadline(m->conn, &d);
    if (min == TW_NEVER)
        CHECK(r == TW_ENOENT);
    else
        CHECK(r == 0 && d == min);
}

/* One event, from the callback or the queue: every kind in it was armed
 * and due; the reference forgets them. */
static void model_take(struct mconn *m, const tw_conn_event *e)
{
    uint64_t now = tw_loop_now(LOOP);
    CHECK(m->conn != NULL && e->conn == m->conn);
    CHECK(e->conn_id == m->id);
    CHECK(e->userdata == m);
    CHECK(e->now_ns == now);
    CHECK(e->events[0] != 0);
    CHECK(e->events[1] == 0 && e->events[2] == 0 && e->events[3] == 0);
    CHECK((e->events[0] & ~m->armed) == 0);
    for (unsigned k = 0; k < TW_CONN_KINDS; k++) {
        if (!(e->events[0] & BIT(k)))
            continue;
        CHECK(m->deadline[k] <= now);
        m->armed &= ~BIT(k);
        m->deadline[k] = TW_NEVER;
    }
    MD.taken++;
}

static void model_free(struct mconn *m)
{
    tw_conn *old = m->conn;
    tw_conn_free(old);
    m->conn = NULL;
    m->armed = 0;
    /* Refused until the slot is reused. */
    CHECK(tw_conn_arm(old, 0, FAKE) == TW_EINVAL);
    CHECK(tw_conn_armed(old) == 0);
}

static void model_cb(const tw_conn_event *e, void *userdata)
{
    struct mconn *m = userdata;
    CHECK(!m->queue);
    model_take(m, e);
    uint64_t r = below(32);
    if (r == 0) {
        model_free(m);
        MD.freed_in_cb++;
    } else if (r == 1) {
        /* Another connection, perhaps one due later in this turn. */
        struct mconn *o = &MD.c[below(MN)];
        if (o->conn && o != m) {
            model_free(o);
            MD.freed_in_cb++;
        }
    } else if (r < 8) {
        unsigned k = (unsigned)below(TW_CONN_KINDS);
        uint64_t at = sat_add(e->now_ns, 1 + below(50 * MS));
        CHECK(tw_conn_arm(m->conn, k, at) == 0);
        model_arm(m, k, at);
    }
    check_conn(m);
}

static void model_new(struct mconn *m)
{
    memset(m, 0, sizeof(*m));
    m->id = MD.next_id++;
    m->queue = below(3) == 0;
    m->idle = below(4) ? 1 + below(50 * MS) : 0;
    for (unsigned k = 0; k < TW_CONN_KINDS; k++)
        m->deadline[k] = TW_NEVER;
    CHECK(tw_conn_new(LOOP, m->id, m->queue ? NULL : model_cb, m, &m->conn) == 0);
    CHECK(m->conn != NULL);
    CHECK(tw_conn_set_idle_timeout(m->conn, m->idle) == 0);
}

/* A deadline for an arm: past, near, far, never, or around the current. */
static uint64_t model_deadline(const struct mconn *m, unsigned kind, uint64_t now)
{
    uint64_t cur = m->deadline[kind];
    switch (below(8)) {
    case 0:
        return now - below(5 * MS);
    case 1:
    case 2:
        return now + below(5 * MS);
    case 3:
        return now + below(500 * MS);
    case 4:
        return below(16) ? now + below(30 * MS) : TW_NEVER;
    case 5:                     /* earlier than it is armed at */
        if ((m->armed & BIT(kind)) && cur != TW_NEVER)
            return cur - below((cur > now ? cur - now : 0) + 2 * MS);
        return now + below(MS);
    default:                    /* later */
        return (m->armed & BIT(kind)) ? sat_add(cur, below(50 * MS)) : now + below(80 * MS);
    }
}

static void model_op(struct mconn *m)
{
    uint64_t now = tw_loop_now(LOOP);
    uint64_t op = below(100);
    if (!m->conn) {
        if (op < 50)
            model_new(m);
        return;
    }
    unsigned k = (unsigned)below(TW_CONN_KINDS);
    if (op < 30) {
        uint64_t at = model_deadline(m, k, now);
        CHECK(tw_conn_arm(m->conn, k, at) == 0);
        model_arm(m, k, at);
    } else if (op < 40) {
        uint64_t delay = below(64) ? below(100 * MS) : UINT64_MAX - below(2);
        CHECK(tw_conn_arm_in(m->conn, k, delay) == 0);
        model_arm(m, k, sat_add(now, delay));
    } else if (op < 50) {
        int want = (m->armed & BIT(k)) ? 0 : TW_ENOENT;
        CHECK(tw_conn_disarm(m->conn, k) == want);
        m->armed &= ~BIT(k);
        m->deadline[k] = TW_NEVER;
    } else if (op < 53) {
        CHECK(tw_conn_disarm_all(m->conn) == 0);
        m->armed = 0;
        for (unsigned j = 0; j < TW_CONN_KINDS; j++)
            m->deadline[j] = TW_NEVER;
    } else if (op < 68) {
        CHECK(tw_conn_touch(m->conn) == 0);
        if (m->idle)
            model_arm(m, TW_CONN_IDLE, sat_add(now, m->idle));
    } else if (op < 72) {
        m->idle = below(4) ? 1 + below(50 * MS) : 0;
        CHECK(tw_conn_set_idle_timeout(m->conn, m->idle) == 0);
    } else if (op < 76) {
        model_free(m);
    }
}

static void model_turn(void)
{
    uint64_t next = 0;
    int have = tw_loop_next_deadline(LOOP, &next) == 0;
    uint64_t to = FAKE;
    switch (below(10)) {
    case 0: case 1: case 2: case 3:
        if (have)
            to = next;
        break;
    case 4: case 5:
        if (have)
            to = next + below(2 * MS);
        break;
    case 6: case 7:
        to = FAKE + below(3 * MS);
        break;
    case 8:
        to = FAKE + below(300 * MS);
        break;
    default:
        break;
    }
    FAKE = to > FAKE ? to : FAKE;
    CHECK(tw_loop_process(LOOP) >= 0);
    uint64_t now = tw_loop_now(LOOP);
    CHECK(now == FAKE);
    MD.turns++;
    tw_conn_event ev[16];
    int r;
    size_t cap = 1 + below(16);
    while ((r = tw_conn_poll(LOOP, ev, cap)) > 0) {
        CHECK((size_t)r <= cap);
        for (int i = 0; i < r; i++) {
            struct mconn *m = ev[i].userdata;
            CHECK(m >= MD.c && m < MD.c + MN && m->queue);
            model_take(m, &ev[i]);
        }
    }
    CHECK(r == 0);
    /* Nothing armed is due any more: never late, nothing lost. */
    uint64_t gmin = TW_NEVER;
    for (size_t i = 0; i < MN; i++) {
        struct mconn *m = &MD.c[i];
        if (!m->conn)
            continue;
        uint64_t min = model_min(m);
        CHECK(min > now);
        gmin = min < gmin ? min : gmin;
        check_conn(m);
    }
    /* The loop sleeps no later than the earliest deadline, and an idle set
     * of connections keeps no wheel timer. */
    have = tw_loop_next_deadline(LOOP, &next) == 0;
    if (gmin == TW_NEVER) {
        CHECK(!have);
    } else {
        CHECK(have && next <= gmin && next > now);
    }
}

static void run(unsigned seed, uint64_t ops)
{
    memset(&MD, 0, sizeof(MD));
    MD.seed = seed;
    MD.rng = seed;
    MD.next_id = 1;
    start();
    for (size_t i = 0; i < MN; i += 2)
        model_new(&MD.c[i]);
    for (MD.step = 0; MD.step < ops; MD.step++) {
        /* Half the operations go to a few busy connections, which so see
         * their kinds re-armed before they fire. */
        struct mconn *m = &MD.c[below(2) ? below(16) : below(MN)];
        model_op(m);
        check_conn(m);
        if (below(6) == 0)
            model_turn();
    }
    /* Everything that is armed fires at last. */
    FAKE = TW_NEVER - 1;
    model_turn();
    uint64_t live = 0;
    for (size_t i = 0; i < MN; i++)
        live += MD.c[i].conn != NULL;
    tw_conn_stats s = stats();
    CHECK(s.live == live);
    CHECK(s.arms == MD.arms);
    /* Events freed before they were polled are dropped, all others seen. */
    CHECK(s.events == MD.taken + s.dropped);
    /* A wake-up is an early one or a connection-turn with an event. */
    CHECK(s.wakeups == s.early_wakeups + s.events);
    printf("seed %u: %llu steps, %llu turns, %llu events, %llu early wake-ups, "
           "%llu of %llu arms lazy, %llu wheel ops, %llu freed in callbacks\n",
           seed, (unsigned long long)ops, (unsigned long long)MD.turns,
           (unsigned long long)s.events, (unsigned long long)s.early_wakeups,
           (unsigned long long)s.lazy_arms, (unsigned long long)s.arms,
           (unsigned long long)s.wheel_ops, (unsigned long long)MD.freed_in_cb);
    /* The run reached the paths it is meant to test. */
    CHECK(s.events > ops / 20 && s.early_wakeups > ops / 1000 && s.lazy_arms > ops / 20);
    CHECK(MD.freed_in_cb > 0);
    tw_loop_free(LOOP);
    LOOP = NULL;
}

static unsigned ARG_SEED;
static uint64_t ARG_OPS;

static void test_random_model(void **state)
{
    (void)state;
    if (ARG_OPS) {
        run(ARG_SEED, ARG_OPS);
        return;
    }
    for (unsigned seed = 1; seed <= 6; seed++)
        run(seed, 60000);
}

/* ---- a large batch shared with the worker ------------------------------ */

#define HANDOFF_CONNS 600

static uint32_t HANDOFF_BITS[HANDOFF_CONNS][2];

static void handoff_record(const tw_conn_event *e, void *userdata)
{
    size_t i = (size_t)(uintptr_t)userdata;
    assert_true(i < HANDOFF_CONNS);
    HANDOFF_BITS[i][0] |= e->events[0];
    HANDOFF_BITS[i][1] |= e->events[1];
}

/* 600 connections with a reliability layer each, all due in one turn: the
 * pure phase is shared with the worker past the threshold, and every
 * connection reports the same as on the direct path. */
static void run_handoff(uint32_t threshold, uint64_t *handoffs)
{
    tw_loop_config c;
    tw_loop_config_init(&c);
    c.clock = fake_clock;
    c.clock_userdata = &FAKE;
    c.batch_threshold = threshold;
    FAKE = T0;
    assert_int_equal(tw_loop_new(NULL, &c, &LOOP), 0);
    static tw_conn *conns[HANDOFF_CONNS];
    static tw_recovery *recs[HANDOFF_CONNS];
    memset(HANDOFF_BITS, 0, sizeof(HANDOFF_BITS));
    for (size_t i = 0; i < HANDOFF_CONNS; i++) {
        conns[i] = conn_new((uint32_t)i, handoff_record, (void *)(uintptr_t)i);
        tw_recovery_config rc;
        tw_recovery_config_init(&rc);
        rc.is_server = 1;
        assert_int_equal(tw_recovery_new(&rc, &recs[i]), 0);
        assert_int_equal(tw_recovery_set_handshake_confirmed(recs[i]), 0);
        unsigned layer;
        assert_int_equal(tw_conn_add_recovery(conns[i], recs[i], &layer), 0);
        assert_int_equal(layer, 1);
        assert_int_equal(tw_recovery_on_sent(recs[i], TW_PN_APPLICATION, 0, T0, 1200,
                                             TW_RECOVERY_ACK_ELICITING, i + 1), 0);
        /* Half of them have an idle timeout due in the same turn. */
        if (i % 2)
            assert_int_equal(tw_conn_arm(conns[i], TW_CONN_IDLE, T0 + 100 * MS), 0);
    }
    uint64_t pto;
    assert_int_equal(tw_conn_next_deadline(conns[0], &pto), 0);
    assert_true(pto > T0 + 100 * MS);
    turn_at(pto);
    for (size_t i = 0; i < HANDOFF_CONNS; i++) {
        assert_int_equal(HANDOFF_BITS[i][0], i % 2 ? BIT(TW_CONN_IDLE) : 0);
        assert_true(HANDOFF_BITS[i][1] & TW_RECOVERY_PTO);
        uint64_t f[4];
        /* The probe hands the packet's frames back. */
        assert_int_equal(tw_conn_take_frames(conns[i], f, 4), 1);
        assert_int_equal(f[0], i + 1);
    }
    tw_conn_stats s = stats();
    assert_int_equal(s.events, HANDOFF_CONNS);
    *handoffs = s.batches_handoff;
    tw_loop_stats ls;
    ls.struct_size = sizeof(ls);
    assert_int_equal(tw_loop_stats_get(LOOP, &ls), 0);
    assert_int_equal(ls.batches_handoff, s.batches_handoff);
    /* The reliability layer's counters, through the connection. */
    tw_layer_stat st[16];
    const char *name = NULL;
    int n = tw_conn_layer_stats(conns[0], 1, &name, st, 16);
    assert_int_equal(n, 8);
    assert_string_equal(name, "recovery");
    assert_string_equal(st[0].name, "sent");
    assert_int_equal(st[0].value, 1);
    assert_string_equal(st[3].name, "pto");
    assert_int_equal(st[3].value, 1);
    assert_int_equal(tw_conn_layer_stats(conns[0], 1, NULL, st, 2), 8);
    assert_int_equal(tw_conn_layer_stats(conns[0], 2, NULL, st, 2), TW_EINVAL);
    assert_int_equal(tw_conn_layer_stats(conns[0], 0, NULL, st, 2), TW_EINVAL);
    assert_int_equal(tw_conn_layer_stats(conns[0], 1, NULL, NULL, 2), TW_EINVAL);
    assert_int_equal(tw_conn_layer_stats(NULL, 1, NULL, st, 2), TW_EINVAL);
    for (size_t i = 0; i < HANDOFF_CONNS; i++) {
        tw_conn_free(conns[i]);
        tw_recovery_free(recs[i]);
    }
    tw_loop_free(LOOP);
    LOOP = NULL;
}

static void test_batch_handoff(void **state)
{
    (void)state;
    uint64_t handoffs;
    run_handoff(UINT32_MAX, &handoffs);
    assert_int_equal(handoffs, 0);
    run_handoff(64, &handoffs);
    assert_int_equal(handoffs, 1);
}

/* ---- slack ------------------------------------------------------------- */

/* r is the roundest instant of [a, b]: inside it, and no multiple of twice
 * r's lowest set bit lies in it. */
static void assert_roundest(uint64_t r, uint64_t a, uint64_t b)
{
    assert_true(a <= r && r <= b);
    if (r == 0)
        return;
    uint64_t step = (r & -r) << 1;
    if (step == 0)
        return;
    uint64_t below = r & ~(step - 1);           /* the multiple at or below r */
    assert_true(below < a);
    assert_true(below + step > b);
}

static unsigned SLACK_EVENTS;
static uint64_t SLACK_AT[400];

static void slack_record(const tw_conn_event *e, void *userdata)
{
    size_t i = (size_t)(uintptr_t)userdata;
    assert_int_equal(e->events[0], BIT(TW_CONN_IDLE));
    SLACK_AT[i] = e->now_ns;
    SLACK_EVENTS++;
}

static void test_slack(void **state)
{
    (void)state;
    start();
    tw_conn *c = conn_new(1, record, NULL);
    uint64_t d = T0 + 100 * MS + 123;
    assert_int_equal(tw_conn_set_slack(c, TW_CONN_IDLE, 10 * MS), 0);
    assert_int_equal(tw_conn_arm(c, TW_CONN_IDLE, d), 0);
    uint64_t at = loop_next();
    assert_roundest(at, d, d + 10 * MS);
    assert_true(at > d);
    /* Re-armed later inside the window of the filed instant: lazy. */
    tw_conn_stats before = stats();
    assert_int_equal(tw_conn_arm(c, TW_CONN_IDLE, at - 1), 0);
    assert_int_equal(stats().wheel_ops, before.wheel_ops);
    assert_int_equal(loop_next(), at);
    /* Less slack re-files: with none the deadline itself. */
    assert_int_equal(tw_conn_set_slack(c, TW_CONN_IDLE, 0), 0);
    assert_int_equal(loop_next(), at - 1);
    assert_int_equal(tw_conn_set_slack(c, TW_CONN_IDLE, 10 * MS), 0);
    /* Filed at at - 1, which stays inside every window: arming a kind
     * without slack after it, and IDLE back at d, is lazy. */
    before = stats();
    assert_int_equal(tw_conn_arm(c, TW_CONN_PACING, at + 5), 0);
    assert_int_equal(tw_conn_arm(c, TW_CONN_IDLE, d), 0);
    assert_int_equal(stats().wheel_ops, before.wheel_ops);
    uint64_t at2 = loop_next();
    assert_int_equal(at2, at - 1);
    /* A kind without slack ending before the filed instant re-files at the
     * roundest instant of the narrower span. */
    assert_int_equal(tw_conn_arm(c, TW_CONN_PACING, d + 50), 0);
    at2 = loop_next();
    assert_roundest(at2, d, d + 50);
    SEEN.n = 0;
    turn_at(at2 - 1);
    assert_int_equal(SEEN.n, 0);
    turn_at(at2);
    assert_int_equal(SEEN.n, 1);
    assert_true(SEEN.ev[0].events[0] & BIT(TW_CONN_IDLE));
    assert_int_equal(tw_conn_set_slack(c, TW_CONN_KINDS, 1), TW_EINVAL);
    assert_int_equal(tw_conn_set_slack(NULL, TW_CONN_IDLE, 1), TW_EINVAL);

    /* 400 idle timeouts 7 us apart, each with 2 ms of slack: few wake-ups,
     * every one inside its window. */
    static tw_conn *many[400];
    uint64_t base = T0 + 10 * SEC;
    for (size_t i = 0; i < 400; i++) {
        many[i] = conn_new((uint32_t)(100 + i), slack_record, (void *)(uintptr_t)i);
        assert_int_equal(tw_conn_set_slack(many[i], TW_CONN_IDLE, 2 * MS), 0);
        assert_int_equal(tw_conn_arm(many[i], TW_CONN_IDLE, base + i * 7 * US), 0);
    }
    unsigned turns = 0;
    SLACK_EVENTS = 0;
    while (SLACK_EVENTS < 400) {
        turn_at(loop_next());
        turns++;
        assert_true(turns <= 400);
    }
    for (size_t i = 0; i < 400; i++) {
        assert_true(SLACK_AT[i] >= base + i * 7 * US);
        assert_true(SLACK_AT[i] <= base + i * 7 * US + 2 * MS);
    }
    /* 2.8 ms of deadlines and 2 ms windows: a handful of round instants. */
    assert_true(turns <= 4);
    for (size_t i = 0; i < 400; i++)
        tw_conn_free(many[i]);
}

/* The documented shard of an id, written out again from the man page. */
static uint32_t reference_shard(uint32_t id, uint32_t nshards)
{
    uint32_t h = id;
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return (uint32_t)(((uint64_t)h * nshards) >> 32);
}

static uint32_t xorshift32(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

#define NIDS 1000

static void check_shards(size_t n, const uint32_t *ids, uint32_t nshards)
{
    static uint32_t shards[NIDS + 1];
    shards[n] = 0xdeadbeefu;
    assert_int_equal(tw_conn_id_shards(n, ids, nshards, shards), 0);
    assert_int_equal(shards[n], 0xdeadbeefu);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(shards[i], reference_shard(ids[i], nshards));
        assert_true(shards[i] < nshards);
    }
}

static void test_id_shards(void **state)
{
    (void)state;
    static const uint32_t edges[] = {0, 1, 2, 0x7fffffffu, 0x80000000u, 0xfffffffeu,
                                     UINT32_MAX, 0x12345678u};
    static const uint32_t counts[] = {1, 2, 3, 7, 64, 1000, 0x80000000u, UINT32_MAX};
    static uint32_t ids[NIDS], copy[NIDS], inplace[NIDS];
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < NIDS; i++)
        ids[i] = i < 8 ? edges[i] : xorshift32(&x);
    for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
        /* Every length around the vector width, then a long run. */
        for (size_t n = 0; n <= 40; n++)
            check_shards(n, ids, counts[c]);
        check_shards(NIDS, ids, counts[c]);
        /* In place: ret may be the ids. */
        memcpy(inplace, ids, sizeof(ids));
        assert_int_equal(tw_conn_id_shards(NIDS, ids, counts[c], copy), 0);
        assert_int_equal(tw_conn_id_shards(NIDS, inplace, counts[c], inplace), 0);
        assert_memory_equal(inplace, copy, sizeof(inplace));
    }
}

static void test_id_shards_spread(void **state)
{
    (void)state;
    /* Consecutive ids, the worst case for a plain modulo of a hash-less id
     * over a power of two of shards sharing a factor with the stride. */
    enum { SHARDS = 12, PER = 4096 };
    static uint32_t ids[SHARDS * PER], shards[SHARDS * PER];
    for (uint32_t stride = 1; stride <= 64; stride *= 4) {
        uint32_t count[SHARDS] = {0};
        for (uint32_t i = 0; i < SHARDS * PER; i++)
            ids[i] = i * stride;
        assert_int_equal(tw_conn_id_shards(SHARDS * PER, ids, SHARDS, shards), 0);
        for (uint32_t i = 0; i < SHARDS * PER; i++)
            count[shards[i]]++;
        for (uint32_t s = 0; s < SHARDS; s++)
            assert_true(count[s] > PER * 9 / 10 && count[s] < PER * 11 / 10);
    }
}

static void test_id_group(void **state)
{
    (void)state;
    static uint32_t ids[NIDS], order[NIDS + 1], offsets[1002];
    const uint32_t counts[] = {1, 2, 5, 64, 1000};
    uint32_t x = 88675123u;
    for (size_t i = 0; i < NIDS; i++)
        ids[i] = i % 5 == 0 ? 77u : xorshift32(&x);   /* one crowded shard */
    for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
        uint32_t ns = counts[c];
        const size_t lengths[] = {0, 1, 7, 8, 9, 255, 256, 257, NIDS};
        for (size_t l = 0; l < sizeof(lengths) / sizeof(lengths[0]); l++) {
            size_t n = lengths[l], largest = 12345, biggest = 0;
            order[n] = offsets[ns + 1] = 0xdeadbeefu;
            assert_int_equal(tw_conn_id_group(n, ids, ns, offsets, order, &largest), 0);
            assert_int_equal(order[n], 0xdeadbeefu);
            assert_int_equal(offsets[ns + 1], 0xdeadbeefu);
            assert_int_equal(offsets[0], 0);
            assert_int_equal(offsets[ns], n);
            for (uint32_t s = 0; s < ns; s++) {
                assert_true(offsets[s] <= offsets[s + 1]);
                if (offsets[s + 1] - offsets[s] > biggest)
                    biggest = offsets[s + 1] - offsets[s];
                for (uint32_t at = offsets[s]; at < offsets[s + 1]; at++) {
                    assert_true(order[at] < n);
                    assert_int_equal(reference_shard(ids[order[at]], ns), s);
                    if (at > offsets[s])
                        assert_true(order[at - 1] < order[at]);
                }
            }
            /* Each position once: the groups hold n positions, ascending
             * within each and all in range, so a repeat would need two
             * groups to share a position, whose shard is one. */
            assert_int_equal(largest, biggest);
            if (n >= 5 && ns > 1)
                assert_true(largest >= (n + 4) / 5);   /* the crowded shard */
        }
        assert_int_equal(tw_conn_id_group(NIDS, ids, ns, offsets, order, NULL), 0);
    }
}

static void test_id_bad_input(void **state)
{
    (void)state;
    uint32_t ids[4] = {1, 2, 3, 4}, out[4] = {9, 9, 9, 9}, offsets[3] = {9, 9, 9};
    size_t largest = 7;
    assert_int_equal(tw_conn_id_shards(4, ids, 0, out), TW_EINVAL);
    assert_int_equal(tw_conn_id_shards(4, NULL, 2, out), TW_EINVAL);
    assert_int_equal(tw_conn_id_shards(4, ids, 2, NULL), TW_EINVAL);
    assert_int_equal(out[0], 9);
    assert_int_equal(tw_conn_id_shards(0, NULL, 2, NULL), 0);

    assert_int_equal(tw_conn_id_group(4, ids, 0, offsets, out, &largest), TW_EINVAL);
    assert_int_equal(largest, 0);
    largest = 7;
    assert_int_equal(tw_conn_id_group(4, ids, UINT32_MAX, offsets, out, &largest), TW_EINVAL);
    assert_int_equal(largest, 0);
    assert_int_equal(tw_conn_id_group(4, ids, 2, NULL, out, NULL), TW_EINVAL);
    assert_int_equal(tw_conn_id_group(4, NULL, 2, offsets, out, NULL), TW_EINVAL);
    assert_int_equal(tw_conn_id_group(4, ids, 2, offsets, NULL, NULL), TW_EINVAL);
#if SIZE_MAX > UINT32_MAX
    assert_int_equal(tw_conn_id_group((size_t)UINT32_MAX + 1, ids, 2, offsets, out, NULL),
                     TW_EINVAL);
#endif
    assert_int_equal(out[0], 9);
    assert_int_equal(offsets[0], 9);
    /* No ids: empty groups, offsets still written. */
    largest = 7;
    assert_int_equal(tw_conn_id_group(0, NULL, 2, offsets, NULL, &largest), 0);
    assert_int_equal(offsets[0], 0);
    assert_int_equal(offsets[1], 0);
    assert_int_equal(offsets[2], 0);
    assert_int_equal(largest, 0);
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        ARG_SEED = (unsigned)strtoul(argv[1], NULL, 0);
        ARG_OPS = argc > 2 ? strtoull(argv[2], NULL, 0) : 60000;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_lazy_rearm, teardown),
        cmocka_unit_test_teardown(test_touch_between_turns_reads_the_clock, teardown),
        cmocka_unit_test_teardown(test_arm_earlier, teardown),
        cmocka_unit_test_teardown(test_kinds_due_together, teardown),
        cmocka_unit_test_teardown(test_disarm_all_cancels, teardown),
        cmocka_unit_test_teardown(test_free_from_callback, teardown),
        cmocka_unit_test_teardown(test_free_loop_from_callback, teardown),
        cmocka_unit_test_teardown(test_queue_mode, teardown),
        cmocka_unit_test_teardown(test_free_loop_with_connections, teardown),
        cmocka_unit_test_teardown(test_posted_cleanup_on_free, teardown),
        cmocka_unit_test_teardown(test_layer_dirty, teardown),
        cmocka_unit_test_teardown(test_layers_pure_and_impure, teardown),
        cmocka_unit_test_teardown(test_check_all_and_frames, teardown),
        cmocka_unit_test_teardown(test_dirty_from_check, teardown),
        cmocka_unit_test_teardown(test_free_loop_with_recovery, teardown),
        cmocka_unit_test_teardown(test_never_fires_at_the_end_of_time, teardown),
        cmocka_unit_test_teardown(test_slack_past_the_end_of_time, teardown),
        cmocka_unit_test_teardown(test_next_deadline_exact_across_callbacks, teardown),
        cmocka_unit_test_teardown(test_impure_check_frees, teardown),
        cmocka_unit_test_teardown(test_recovery_on_one_connection, teardown),
        cmocka_unit_test_teardown(test_bad_input, teardown),
        cmocka_unit_test_teardown(test_stats_struct_size, teardown),
        cmocka_unit_test_teardown(test_random_model, teardown),
        cmocka_unit_test_teardown(test_batch_handoff, teardown),
        cmocka_unit_test_teardown(test_slack, teardown),
        cmocka_unit_test(test_id_shards),
        cmocka_unit_test(test_id_shards_spread),
        cmocka_unit_test(test_id_group),
        cmocka_unit_test(test_id_bad_input),
    };
    return cmocka_run_group_tests_name("conn", tests, NULL, NULL);
}
