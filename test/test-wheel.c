/*
 * Behaviour of the wheel through its public API: firing rules, ordering,
 * reentrancy and the edges of time.  Time is injected; nothing sleeps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tickwheel.h"

#define MS UINT64_C(1000000)
#define SEC UINT64_C(1000000000)

/* A log of fired timers shared by the callbacks below. */
struct log {
    tw_wheel *wheel;
    size_t n;
    uintptr_t ids[4096];
    uint64_t deadlines[4096];
    uint64_t now[4096];
};

static struct log LOG;

static void record(tw_timer timer, uint64_t deadline_ns, void *userdata)
{
    (void)timer;
    assert_true(LOG.n < sizeof(LOG.ids) / sizeof(LOG.ids[0]));
    LOG.ids[LOG.n] = (uintptr_t)userdata;
    LOG.deadlines[LOG.n] = deadline_ns;
    LOG.now[LOG.n] = tw_wheel_now(LOG.wheel);
    LOG.n++;
}

static tw_wheel *new_wheel(uint64_t tick_ns, uint64_t now)
{
    tw_wheel_config c;
    tw_wheel *w = NULL;
    tw_wheel_config_init(&c);
    c.tick_ns = tick_ns;
    assert_int_equal(tw_wheel_new(&c, now, &w), 0);
    memset(&LOG, 0, sizeof(LOG));
    LOG.wheel = w;
    return w;
}

static tw_timer arm(tw_wheel *w, uint64_t deadline, uintptr_t id)
{
    tw_timer t = 0;
    assert_int_equal(tw_wheel_schedule(w, deadline, record, (void *)id, &t), 0);
    assert_int_not_equal(t, 0);
    return t;
}

static void test_fires_at_deadline_not_before(void **state)
{
    (void)state;
    tw_wheel *w = new_wheel(TW_TICK_DEFAULT_NS, 0);
    arm(w, 5 * MS + 1, 1);
    assert_int_equal(tw_wheel_advance(w, 5 * MS), 0);
    assert_int_equal(LOG.n, 0);
    assert_int_equal(tw_wheel_advance(w, 5 * MS + 1), 1);
    assert_int_equal(LOG.n, 1);
    assert_int_equal(LOG.deadlines[0], 5 * MS + 1);
    assert_int_equal(tw_wheel_advance(w, 10 * SEC), 0);
    assert_int_equal(tw_wheel_verify(w), 0);
    tw_wheel_free(w);
}

static void test_zero_delay_and_past_deadline(void **state)
{
    (void)state;
    tw_wheel *w = new_wheel(TW_TICK_DEFAULT_NS, 7 * SEC);
    tw_timer t;
    assert_int_equal(tw_wheel_schedule_relative(w, 0, record, (void *)1, &t), 0);
    arm(w, 1, 2);           /* long past */
    arm(w, 0, 3);
    uint64_t next;
    assert_int_equal(tw_wheel_next_deadline(w, &next), 0);
    assert_int_equal(next, 0);
    /* Due at the next advance, even one that does not move time. */
    assert_int_equal(tw_wheel_advance(w, 7 * SEC), 3);
    assert_int_equal(LOG.ids[0], 3);
    assert_int_equal(LOG.ids[1], 2);
    assert_int_equal(LOG.ids[2], 1);
    tw_wheel_free(w);
}

static void test_equal_deadlines_fire_in_arming_order(void **state)
{
    (void)state;
    tw_wheel *w = new_wheel(TW_TICK_DEFAULT_NS, 0);
    /* Armed at different times, so they start in different levels. */
    arm(w, 100 * SEC, 1);
    tw_wheel_advance(w, 90 * SEC);
    arm(w, 100 * SEC, 2);
    tw_wheel_advance(w, 99 * SEC + 990 * MS);
    arm(w, 100 * SEC, 3);
    tw_timer t4 = arm(w, 100 * SEC, 4);
    arm(w, 100 * SEC, 5);
    /* Re-arming at the same deadline counts as arming last. */
    assert_int_equal(tw_wheel_reschedule(w, t4, 100 * SEC), 0);
    assert_int_equal(tw_wheel_verify(w), 0);
    assert_int_equal(tw_wheel_advance(w, 200 * SEC), 5);
    uintptr_t want[] = {1, 2, 3, 5, 4};
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(LOG.ids[i], want[i]);
    tw_wheel_free(w);
}

static void test_deadline_order_within_one_tick(void **state)
{
    (void)state;
    tw_wheel *w = new_wheel(TW_TICK_DEFAULT_NS, 0);
    uint64_t base = 3 * SEC;
    uint64_t offs[] = {999999, 5, 500000, 0, 5, 123456, 999998};
    for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++)
        arm(w, base + offs[i], i);
    /* Half the tick: only the early half fires, in order. */
    assert_int_equal(tw_wheel_advance(w, base + 500000), 5);
    uintptr_t first[] = {3, 1, 4, 5, 2};
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(LOG.ids[i], first[i]);
    uint64_t next;
    assert_int_equal(tw_wheel_next_deadline(w, &next), 0);
    assert_int_equal(next, base + 999998);
    assert_int_equal(tw_wheel_advance(w, base + SEC), 2);
    assert_int_equal(LOG.ids[5], 6);
    assert_int_equal(LOG.ids[6], 0);
    assert_int_equal(tw_wheel_verify(w), 0);
    tw_wheel_free(w);
}

static void test_every_level_boundary(void **state)
{
    (void)state;
    /* Deadlines on both sides of each level's span, at tick 1 us. */
    const uint64_t tick = TW_TICK_MIN_NS;
    tw_wheel *w = new_wheel(tick, 0);
    uint64_t ds[64];
    size_t n = 0;
    for (unsigned bits = 6; bits < 60; bits += 6) {
        uint64_t t = UINT64_C(1) << bits;
        if (t > (UINT64_MAX - 1) / tick)
            break;
        ds[n++] = (t - 1) * tick;
        ds[n++] = t * tick;
        ds[n++] = t * tick + 1;
    }
    ds[n++] = UINT64_MAX - 1;
    for (size_t i = 0; i < n; i++)
        arm(w, ds[i], i);
    assert_int_equal(tw_wheel_verify(w), 0);
    /* Walk time along the deadlines: each fires exactly at its own. */
    for (size_t i = 0; i < n; i++) {
        uint64_t next;
        assert_int_equal(tw_wheel_next_deadline(w, &next), 0);
        assert_true(next <= ds[i]);
        if (ds[i] > 0)
            assert_int_equal(tw_wheel_advance(w, ds[i] - 1), 0);
        assert_int_equal(tw_wheel_advance(w, ds[i]), 1);
        assert_int_equal(LOG.ids[i], i);
        assert_int_equal(tw_wheel_verify(w), 0);
    }
    uint64_t next;
    assert_int_equal(tw_wheel_next_deadline(w, &next), TW_ENOENT);
    tw_wheel_free(w);
}

static void test_never(void **state)
{
    (void)state;
    tw_wheel *w = new_wheel(TW_TICK_DEFAULT_NS, 0);
    tw_timer t = arm(w, TW_NEVER, 1);
    uint64_t next;
    assert_int_equal(tw_wheel_next_deadline(w, &next), TW_ENOENT);
    assert_int_equal(tw_wheel_advance(w, UINT64_MAX), 0);
    assert_int_equal(tw_wheel_advance(w, UINT64_MAX), 0);
    /* A parked timer can be brought back. */
    uint64_t d;
    assert_int_equal(tw_wheel_deadline(w, t, &d), 0);
    assert_int_equal(d, TW_NEVER);
    assert_int_equal(tw_wheel_reschedule(w, t, UINT64_MAX - 1), 0);
    assert_int_equal(tw_wheel_advance(w, UINT64_MAX), 1);
    /* A relative delay past the range saturates to never. */
    tw_wheel *w2 = new_wheel(TW_TICK_DEFAULT_NS, 10);
    assert_int_equal(tw_wheel_schedule_relative(w2, UINT64_MAX - 5, record, NULL, &t), 0);
    assert_int_equal(tw_wheel_deadline(w2, t, &d), 0);
    assert_int_equal(d, TW_NEVER);
    tw_wheel_free(w2);
    tw_wheel_free(w);
}

static void test_cancel_and_stale_handles(void **state)
{
    (void)state;
    tw_wheel *w = new_wheel(TW_TICK_DEFAULT_NS, 0);
    tw_timer a = arm(w, 10 * MS, 1);
    tw_timer b = arm(w, 10 * MS, 2);
    assert_int_not_equal(a, b);
    assert_int_equal(tw_wheel_cancel(w, a), 0);
    assert_int_equal(tw_wheel_cancel(w, a), TW_ENOENT);
    assert_int_equal(tw_wheel_reschedule(w, a, 1), TW_ENOENT);
    /* The slot is reused at once; the old handle must not reach the new timer. */
    tw_timer c = arm(w, 20 * MS, 3);
    assert_int_equal((uint32_t)c, (uint32_t)a);
    assert_int_equal(tw_wheel_cancel(w, a), TW_ENOENT);
    uint64_t d;
    assert_int_equal(tw_wheel_deadline(w, a, &d), TW_ENOENT);
    assert_int_equal(tw_wheel_advance(w, SEC), 2);
    assert_int_equal(tw_wheel_cancel(w, b), TW_ENOENT);
    assert_int_equal(tw_wheel_cancel(w, c), TW_ENOENT);
    assert_int_equal(tw_wheel_cancel(w, 0), TW_ENOENT);
    assert_int_equal(tw_wheel_cancel(w, UINT64_MAX), TW_ENOENT);
    assert_int_equal(tw_wheel_verify(w), 0);
    tw_wheel_free(w);
}

static void test_time_backwards_is_clamped(void **state)
{
    (void)state;
    tw_wheel *w = new_wheel(TW_TICK_DEFAULT_NS, 0);
    arm(w, 5 * SEC, 1);
    assert_int_equal(tw_wheel_advance(w, 4 * SEC), 0);
    assert_int_equal(tw_wheel_advance(w, 1 * SEC), 0);
    assert_int_equal(tw_wheel_now(w), 4 * SEC);
    assert_int_equal(tw_wheel_advance(w, 5 * SEC), 1);
    assert_int_equal(tw_wheel_verify(w), 0);
    tw_wheel_free(w);
}

static void test_ten_ms_tick(void **state)
{
    (void)state;
    /* The seed's 10 ms granularity: ticks that are not a power of two. */
    tw_wheel *w = new_wheel(10 * MS, 0);
    for (uintptr_t i = 0; i < 600; i++)
        arm(w, i * 7 * MS + (i % 3), i);
    for (uint64_t now = 0; now <= 5 * SEC; now += 3 * MS + 1) {
        tw_wheel_advance(w, now);
        for (size_t k = 0; k < LOG.n; k++)
            assert_true(LOG.deadlines[k] <= LOG.now[k]);
    }
    assert_int_equal(LOG.n, 600);
    for (size_t k = 0; k < LOG.n; k++) {
        assert_int_equal(LOG.ids[k], k);
        assert_true(LOG.now[k] - LOG.deadlines[k] < 3 * MS + 1);
    }
    tw_wheel_free(w);
}

/* Reentrancy: what a callback may do to its wheel. */
static tw_timer R_SELF, R_VICTIM, R_MOVED;
static int R_RESULT;
static unsigned R_RUNS;

static void cancel_other(tw_timer timer, uint64_t deadline_ns, void *userdata)
{
    record(timer, deadline_ns, userdata);
    R_RESULT = tw_wheel_cancel(LOG.wheel, R_VICTIM);
    assert_int_equal(tw_wheel_reschedule(LOG.wheel, R_MOVED, tw_wheel_now(LOG.wheel) + SEC), 0);
    /* Not armed while running. */
    assert_int_equal(tw_wheel_cancel(LOG.wheel, timer), TW_ENOENT);
}

static void test_cancel_others_from_callback(void **state)
{
    (void)state;
    tw_wheel *w = new_wheel(TW_TICK_DEFAULT_NS, 0);
    tw_timer t;
    assert_int_equal(tw_wheel_schedule(w, 10 * MS, cancel_other, (void *)1, &t), 0);
    R_VICTIM = arm(w, 10 * MS, 2);   /* due in the same batch, after */
    R_MOVED = arm(w, 10 * MS, 3);
    assert_int_equal(tw_wheel_advance(w, 10 * MS), 1);
    assert_int_equal(R_RESULT, 0);
    assert_int_equal(LOG.n, 1);
    assert_int_equal(tw_wheel_cancel(w, t), TW_ENOENT);   /* stale after firing */
    assert_int_equal(tw_wheel_advance(w, 10 * MS + SEC), 1);
    assert_int_equal(LOG.ids[1], 3);
    assert_int_equal(tw_wheel_verify(w), 0);
    tw_wheel_free(w);
}

static void periodic(tw_timer timer, uint64_t deadline_ns, void *userdata)
{
    record(timer, deadline_ns, userdata);
    R_RUNS++;
    if (R_RUNS < 5)
        assert_int_equal(tw_wheel_reschedule(LOG.wheel, timer, deadline_ns + 10 * MS), 0);
}

static void test_reschedule_self(void **state)
{
    (void)state;
    tw_wheel *w = new_wheel(TW_TICK_DEFAULT_NS, 0);
    R_RUNS = 0;
    assert_int_equal(tw_wheel_schedule(w, 10 * MS, periodic, NULL, &R_SELF), 0);
    /* Re-armed from the callback of a timer that was due when the advance
     * began, it fires again in the same advance; re-armed from that second
     * callback, it waits for the next advance, even one to the same time. */
    assert_int_equal(tw_wheel_advance(w, 35 * MS), 2);
    assert_int_equal(R_RUNS, 2);
    assert_int_equal(tw_wheel_advance(w, 35 * MS), 1);
    assert_int_equal(tw_wheel_cancel(w, R_SELF), 0);
    assert_int_equal(tw_wheel_advance(w, SEC), 0);
    assert_int_equal(R_RUNS, 3);
    assert_int_equal(LOG.deadlines[2], 30 * MS);
    tw_wheel_free(w);
}

static void arm_due_now(tw_timer timer, uint64_t deadline_ns, void *userdata)
{
    record(timer, deadline_ns, userdata);
    if ((uintptr_t)userdata == 1) {
        arm(LOG.wheel, 0, 10);                                    /* past: same advance */
        arm(LOG.wheel, tw_wheel_now(LOG.wheel), 11);              /* now: same advance */
        arm(LOG.wheel, tw_wheel_now(LOG.wheel) + 1, 12);          /* future: not */
        R_RESULT = tw_wheel_advance(LOG.wheel, SEC);
    }
}

static void test_schedule_from_callback(void **state)
{
    (void)state;
    tw_wheel *w = new_wheel(TW_TICK_DEFAULT_NS, 0);
    tw_timer t;
    assert_int_equal(tw_wheel_schedule(w, 5 * MS, arm_due_now, (void *)1, &t), 0);
    arm(w, 5 * MS, 2);
    assert_int_equal(tw_wheel_advance(w, 5 * MS), 4);
    assert_int_equal(R_RESULT, TW_EBUSY);
    uintptr_t want[] = {1, 2, 10, 11};
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(LOG.ids[i], want[i]);
    assert_int_equal(tw_wheel_advance(w, 5 * MS + 1), 1);
    assert_int_equal(LOG.ids[4], 12);
    tw_wheel_free(w);
}

static void free_wheel(tw_timer timer, uint64_t deadline_ns, void *userdata)
{
    record(timer, deadline_ns, userdata);
    tw_wheel_free(LOG.wheel);
}

static void test_free_from_callback(void **state)
{
    (void)state;
    tw_wheel *w = new_wheel(TW_TICK_DEFAULT_NS, 0);
    tw_timer t;
    arm(w, 1 * MS, 1);
    assert_int_equal(tw_wheel_schedule(w, 2 * MS, free_wheel, (void *)2, &t), 0);
    arm(w, 2 * MS, 3);
    arm(w, 3 * MS, 4);
    /* The wheel is gone when advance returns; nothing after the free fires. */
    assert_int_equal(tw_wheel_advance(w, SEC), 2);
    assert_int_equal(LOG.n, 2);
    assert_int_equal(LOG.ids[1], 2);
}

static void test_free_with_timers_armed(void **state)
{
    (void)state;
    tw_wheel *w = new_wheel(TW_TICK_DEFAULT_NS, 0);
    for (uintptr_t i = 0; i < 10000; i++)
        arm(w, i * MS, i);
    tw_wheel_free(w);
    assert_int_equal(LOG.n, 0);
}

static void test_next_deadline_tracks_cancel(void **state)
{
    (void)state;
    tw_wheel *w = new_wheel(TW_TICK_DEFAULT_NS, 0);
    uint64_t next;
    assert_int_equal(tw_wheel_next_deadline(w, &next), TW_ENOENT);
    tw_timer a = arm(w, 10 * MS + 5, 1);
    arm(w, 10 * MS + 7, 2);
    tw_timer c = arm(w, 40 * SEC + 3, 3);
    assert_int_equal(tw_wheel_next_deadline(w, &next), 0);
    assert_int_equal(next, 10 * MS + 5);
    assert_int_equal(tw_wheel_cancel(w, a), 0);
    /* The slot's minimum left: the answer may be the slot's start, never later. */
    assert_int_equal(tw_wheel_next_deadline(w, &next), 0);
    assert_true(next <= 10 * MS + 7 && next >= 10 * MS);
    assert_int_equal(tw_wheel_advance(w, next), next == 10 * MS + 7 ? 1 : 0);
    tw_wheel_advance(w, 10 * MS + 7);
    assert_int_equal(LOG.n, 1);
    assert_int_equal(tw_wheel_next_deadline(w, &next), 0);
    assert_int_equal(next, 40 * SEC + 3);
    assert_int_equal(tw_wheel_cancel(w, c), 0);
    assert_int_equal(tw_wheel_next_deadline(w, &next), TW_ENOENT);
    tw_wheel_free(w);
}

static void test_batch(void **state)
{
    (void)state;
    tw_wheel *w = new_wheel(TW_TICK_DEFAULT_NS, 0);
    uint64_t ds[100];
    void *uds[100];
    tw_timer ts[100];
    for (size_t i = 0; i < 100; i++) {
        ds[i] = (100 - i) * MS;
        uds[i] = (void *)(uintptr_t)i;
    }
    assert_int_equal(tw_wheel_schedule_batch(w, 100, ds, record, uds, ts), 0);
    assert_int_equal(tw_wheel_cancel(w, ts[0]), 0);
    assert_int_equal(tw_wheel_advance(w, SEC), 99);
    for (size_t i = 0; i < 99; i++)
        assert_int_equal(LOG.ids[i], 99 - i);
    assert_int_equal(tw_wheel_schedule_batch(w, 0, NULL, record, NULL, NULL), 0);
    tw_wheel_free(w);
}

/* Equal deadlines fire in arming order: timers armed one by one before a
 * batch, the batch in array order (across its 64-deadline chunks and every
 * level), and timers armed after it. */
static void test_batch_keeps_arming_order(void **state)
{
    (void)state;
    tw_wheel *w = new_wheel(TW_TICK_DEFAULT_NS, 3 * MS);
    static uint64_t ds[300];
    static void *uds[300];
    static tw_timer ts[300];
    const uint64_t when[3] = {3 * MS, 70 * MS, 5000 * MS + 3};
    arm(w, when[0], 1000);
    arm(w, when[1], 1001);
    arm(w, when[2], 1002);
    for (size_t i = 0; i < 300; i++) {
        ds[i] = when[i % 3];
        uds[i] = (void *)(uintptr_t)i;
    }
    assert_int_equal(tw_wheel_schedule_batch(w, 300, ds, record, uds, ts), 0);
    arm(w, when[0], 2000);
    arm(w, when[1], 2001);
    arm(w, when[2], 2002);
    assert_int_equal(tw_wheel_verify(w), 0);
    assert_int_equal(tw_wheel_advance(w, 10 * SEC), 306);
    size_t k = 0;
    for (size_t d = 0; d < 3; d++) {
        assert_int_equal(LOG.ids[k++], 1000 + d);
        for (size_t i = d; i < 300; i += 3) {
            assert_int_equal(LOG.ids[k], i);
            assert_int_equal(LOG.deadlines[k], when[d]);
            k++;
        }
        assert_int_equal(LOG.ids[k++], 2000 + d);
    }
    tw_wheel_free(w);
}

/* A batch armed while a budgeted advance left a cascade pending lands
 * behind the older timers of its deadline. */
static void test_batch_during_pending_cascade(void **state)
{
    (void)state;
    tw_wheel *w = new_wheel(TW_TICK_DEFAULT_NS, 0);
    uint64_t ds[100];
    void *uds[100];
    tw_timer ts[100];
    for (uintptr_t i = 0; i < 100; i++)
        arm(w, 100 * MS, i);
    /* 100 ms is a level-1 slot: a budget of 1 moves four entries and stops. */
    assert_int_equal(tw_wheel_advance_max(w, 100 * MS, 1), 0);
    for (size_t i = 0; i < 100; i++) {
        ds[i] = i % 2 ? 100 * MS : 101 * MS;
        uds[i] = (void *)(uintptr_t)(100 + i);
    }
    assert_int_equal(tw_wheel_schedule_batch(w, 100, ds, record, uds, ts), 0);
    assert_int_equal(tw_wheel_verify(w), 0);
    assert_int_equal(tw_wheel_advance(w, SEC), 200);
    for (size_t i = 0; i < 100; i++)
        assert_int_equal(LOG.ids[i], i);
    for (size_t i = 0; i < 50; i++) {
        assert_int_equal(LOG.ids[100 + i], 100 + 2 * i + 1);
        assert_int_equal(LOG.ids[150 + i], 100 + 2 * i);
    }
    tw_wheel_free(w);
}

static tw_timer CANCEL_SET[4];
static size_t CANCELLED_IN_CB;

/* Cancels the whole set, itself among it: it is running, so not armed. */
static void cancel_set(tw_timer timer, uint64_t deadline_ns, void *userdata)
{
    (void)timer;
    (void)deadline_ns;
    (void)userdata;
    assert_int_equal(tw_wheel_cancel_batch(LOG.wheel, 4, CANCEL_SET, &CANCELLED_IN_CB), 0);
}

static void test_cancel_batch(void **state)
{
    (void)state;
    tw_wheel *w = new_wheel(TW_TICK_DEFAULT_NS, 0);
    uint64_t ds[6] = {5 * MS, 6 * MS, 7 * MS, 8 * MS, TW_NEVER, 9 * MS};
    tw_timer ts[6];
    size_t n = 99;
    assert_int_equal(tw_wheel_schedule_batch(w, 6, ds, record, NULL, ts), 0);
    assert_int_equal(tw_wheel_advance(w, 5 * MS), 1);         /* ts[0] is stale now */
    assert_int_equal(tw_wheel_cancel(w, ts[1]), 0);           /* ts[1] too */
    /* Stale, zero, repeated and never-issued handles are skipped. */
    tw_timer set[8] = {ts[0], ts[1], 0, ts[2], ts[2], ts[4], (tw_timer)77 << 32 | 123456, ts[3]};
    assert_int_equal(tw_wheel_cancel_batch(w, 8, set, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(tw_wheel_cancel_batch(w, 8, set, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(tw_wheel_cancel_batch(w, 0, NULL, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(tw_wheel_cancel_batch(w, 1, &ts[5], NULL), 0);
    assert_int_equal(tw_wheel_advance(w, 10 * SEC), 0);
    assert_int_equal(LOG.n, 1);
    assert_int_equal(tw_wheel_next_deadline(w, &ds[0]), TW_ENOENT);
    assert_int_equal(tw_wheel_verify(w), 0);

    /* From a callback: the running timer is skipped, the others go, one of
     * them due in the same advance. */
    tw_timer t;
    assert_int_equal(tw_wheel_schedule(w, 20 * SEC, cancel_set, NULL, &CANCEL_SET[0]), 0);
    CANCEL_SET[1] = arm(w, 20 * SEC, 1);
    CANCEL_SET[2] = arm(w, 30 * SEC, 2);
    CANCEL_SET[3] = CANCEL_SET[0];
    t = arm(w, 20 * SEC, 3);
    assert_int_equal(tw_wheel_advance(w, 40 * SEC), 2);
    assert_int_equal(CANCELLED_IN_CB, 2);
    assert_int_equal(LOG.n, 2);
    assert_int_equal(LOG.ids[1], 3);
    assert_int_equal(tw_wheel_cancel(w, t), TW_ENOENT);
    tw_wheel_stats s;
    s.struct_size = sizeof(s);
    assert_int_equal(tw_wheel_stats_get(w, &s), 0);
    assert_int_equal(s.live, 0);
    assert_int_equal(s.cancelled, 7);
    assert_int_equal(tw_wheel_verify(w), 0);
    tw_wheel_free(w);
}

static void test_advance_budget(void **state)
{
    (void)state;
    tw_wheel *w = new_wheel(TW_TICK_DEFAULT_NS, 0);
    tw_timer t[10];
    for (uintptr_t i = 0; i < 10; i++)
        t[i] = arm(w, (10 - i / 2) * MS, i);     /* pairs of equal deadlines */
    /* Three at a time, the round left pending between calls. */
    assert_int_equal(tw_wheel_advance_max(w, SEC, 3), 3);
    uint64_t next;
    assert_int_equal(tw_wheel_next_deadline(w, &next), 0);
    assert_true(next <= SEC);
    assert_int_equal(tw_wheel_verify(w), 0);
    /* A pending timer can be cancelled or moved away before it fires. */
    assert_int_equal(tw_wheel_cancel(w, t[4]), 0);          /* 8 ms, not yet fired */
    assert_int_equal(tw_wheel_reschedule(w, t[1], 2 * SEC), 0);
    assert_int_equal(tw_wheel_advance_max(w, SEC, 3), 3);
    assert_int_equal(tw_wheel_advance_max(w, SEC, 0), 2);
    assert_int_equal(LOG.n, 8);
    uintptr_t want[] = {8, 9, 6, 7, 5, 2, 3, 0};
    for (size_t i = 0; i < 8; i++)
        assert_int_equal(LOG.ids[i], want[i]);
    assert_int_equal(tw_wheel_advance(w, 2 * SEC), 1);
    assert_int_equal(LOG.ids[8], 1);
    assert_int_equal(tw_wheel_verify(w), 0);
    tw_wheel_free(w);
}

static void test_arming_order_across_a_pending_cascade(void **state)
{
    (void)state;
    tw_wheel *w = new_wheel(TW_TICK_DEFAULT_NS, 0);
    /* One level-1 slot, [64, 128) ms: a hundred timers at 70 ms fill its
     * first two blocks, then A at 100 ms. */
    for (uintptr_t i = 0; i < 100; i++)
        arm(w, 70 * MS, i);
    arm(w, 100 * MS, 1000);
    /* A budget of one callback allows four moves: the cascade stops after
     * its first block and stays pending, A still in the slot. */
    assert_int_equal(tw_wheel_advance_max(w, 64 * MS, 1), 0);
    uint64_t next;
    assert_int_equal(tw_wheel_next_deadline(w, &next), 0);
    assert_true(next <= 64 * MS);
    assert_int_equal(tw_wheel_verify(w), 0);
    /* B, armed now at A's deadline, must still fire after A. */
    arm(w, 100 * MS, 2000);
    assert_int_equal(tw_wheel_verify(w), 0);
    assert_int_equal(tw_wheel_advance(w, SEC), 102);
    assert_int_equal(LOG.ids[100], 1000);
    assert_int_equal(LOG.ids[101], 2000);
    tw_wheel_free(w);
}

/* Timers inside the current tick arrive out of order (armed late first);
 * a loop then advances to each exact deadline in turn.  Every advance fires
 * exactly the timers of its deadline, ties in arming order, with cancels
 * and re-arms mixed in, and the wheel stays consistent. */
static void test_exact_advances_inside_one_tick(void **state)
{
    (void)state;
    const uint64_t t0 = 1000 * SEC;
    tw_wheel *w = new_wheel(MS, t0);
    /* Cascade them into the due list together: a level-0 slot one tick on. */
    tw_timer t[300];
    for (unsigned i = 0; i < 300; i++) {
        uint64_t off = (299 - i) / 2 * 1000 + 100;    /* pairs share a deadline */
        t[i] = arm(w, t0 + MS + off, i);
    }
    assert_int_equal(tw_wheel_cancel(w, t[10]), 0);
    assert_int_equal(tw_wheel_advance(w, t0 + MS), 0);   /* the tick starts: nothing due */
    assert_int_equal(tw_wheel_verify(w), 0);
    size_t seen = 0;
    for (unsigned step = 0; step < 150; step++) {
        uint64_t at = t0 + MS + step * 1000 + 100;
        uint64_t next;
        assert_int_equal(tw_wheel_next_deadline(w, &next), 0);
        assert_int_equal(next, at);
        LOG.n = 0;
        int fired = tw_wheel_advance(w, at);
        /* Deadline step belongs to ids 299 - 2 step and 298 - 2 step. */
        uintptr_t a = 298 - 2 * step, b = 299 - 2 * step;
        unsigned expect = (a != 10) + (b != 10);
        assert_int_equal(fired, expect);
        assert_int_equal(LOG.n, expect);
        size_t k = 0;
        if (a != 10)
            assert_int_equal(LOG.ids[k++], a);     /* armed first */
        if (b != 10)
            assert_int_equal(LOG.ids[k++], b);
        for (size_t j = 0; j < LOG.n; j++)
            assert_int_equal(LOG.deadlines[j], at);
        seen += LOG.n;
        if (step % 16 == 0)
            assert_int_equal(tw_wheel_verify(w), 0);
        if (step == 40) {
            /* An out-of-order arrival after the list was put in order. */
            arm(w, at + 1500, 1000);
        }
        if (step == 41) {
            LOG.n = 0;
            assert_int_equal(tw_wheel_advance(w, at + 500), 1);
            assert_int_equal(LOG.ids[0], 1000);
            seen++;
        }
    }
    assert_int_equal(seen, 300);
    assert_int_equal(tw_wheel_next_deadline(w, &(uint64_t){0}), TW_ENOENT);
    tw_wheel_free(w);
}

/* Slack: the filed instant lies in [deadline, deadline + slack], is the
 * deadline itself for slack 0, and the timer never fires before it. */
static uint64_t filed_of(const tw_wheel *w, tw_timer t)
{
    uint64_t d = 0;
    assert_int_equal(tw_wheel_deadline(w, t, &d), 0);
    return d;
}

static void test_slack_window(void **state)
{
    (void)state;
    tw_wheel *w = new_wheel(TW_TICK_MIN_NS, SEC);
    uint64_t x = 12345;
    for (uintptr_t i = 0; i < 2000; i++) {
        x = x * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
        uint64_t d = SEC + 1 + (x >> 40);                  /* up to ~16.7 ms ahead */
        uint64_t slack = i % 4 == 0 ? 0 : (x >> 20) % (i % 3 == 0 ? 1000 : 5 * MS);
        tw_timer t = 0;
        assert_int_equal(tw_wheel_schedule_slack(w, d, slack, record, (void *)i, &t), 0);
        uint64_t f = filed_of(w, t);
        assert_true(f >= d && f <= d + slack);
        if (slack == 0)
            assert_int_equal(f, d);
        /* The roundest instant: no multiple of a larger power of 2 fits. */
        if (f != d) {
            unsigned tz = (unsigned)__builtin_ctzll(f);
            uint64_t step = UINT64_C(1) << (tz + 1);
            uint64_t above = (d + step - 1) / step * step;
            assert_true(above > d + slack);
        }
    }
    assert_int_equal(tw_wheel_verify(w), 0);
    /* Fired in order of the filed instants, never before them. */
    for (uint64_t now = SEC; LOG.n < 2000; now += 997)
        assert_true(tw_wheel_advance(w, now) >= 0);
    for (size_t i = 0; i < LOG.n; i++) {
        assert_true(LOG.deadlines[i] <= LOG.now[i]);
        assert_true(LOG.now[i] - LOG.deadlines[i] < 997);
    }
    tw_wheel_free(w);
}

static void test_slack_coalesces(void **state)
{
    (void)state;
    /* 1000 deadlines 1 us apart, 1 ms of slack: a handful of instants. */
    tw_wheel *w = new_wheel(TW_TICK_DEFAULT_NS, SEC);
    tw_timer t;
    uint64_t distinct[1000];
    size_t n = 0;
    for (uintptr_t i = 0; i < 1000; i++) {
        uint64_t d = 3 * SEC + 123457 + i * 1000;
        assert_int_equal(tw_wheel_schedule_slack(w, d, MS, record, (void *)i, &t), 0);
        uint64_t f = filed_of(w, t);
        size_t k = 0;
        while (k < n && distinct[k] != f)
            k++;
        if (k == n)
            distinct[n++] = f;
    }
    /* Each 1 ms window holds a multiple of 2^19 ns; 2 ms hold at most 4. */
    assert_true(n >= 1 && n <= 4);
    /* Without slack, each its own instant. */
    assert_int_equal(tw_wheel_schedule_slack(w, 4 * SEC + 1, 0, record, NULL, &t), 0);
    assert_int_equal(filed_of(w, t), 4 * SEC + 1);
    tw_wheel_free(w);
}

static void test_slack_kept_by_reschedule(void **state)
{
    (void)state;
    tw_wheel *w = new_wheel(TW_TICK_DEFAULT_NS, SEC);
    tw_timer t, plain;
    assert_int_equal(tw_wheel_schedule_slack(w, 2 * SEC + 7, MS, record, (void *)1, &t), 0);
    uint64_t d2 = 5 * SEC + 333333;
    assert_int_equal(tw_wheel_reschedule(w, t, d2), 0);
    uint64_t f = filed_of(w, t);
    assert_true(f > d2 && f <= d2 + MS);
    assert_true(__builtin_ctzll(f) >= 19);
    /* A freed slack entry reused by a plain schedule is exact again. */
    assert_int_equal(tw_wheel_cancel(w, t), 0);
    plain = arm(w, 6 * SEC + 3, 2);
    assert_int_equal((uint32_t)plain, (uint32_t)t);
    assert_int_equal(tw_wheel_reschedule(w, plain, 7 * SEC + 5), 0);
    assert_int_equal(filed_of(w, plain), 7 * SEC + 5);
    /* Already due: filed at the deadline, fires at the next advance. */
    assert_int_equal(tw_wheel_schedule_slack(w, SEC - 5, MS, record, (void *)3, &t), 0);
    assert_int_equal(filed_of(w, t), SEC - 5);
    assert_int_equal(tw_wheel_advance(w, SEC), 1);
    assert_int_equal(LOG.ids[0], 3);
    assert_int_equal(tw_wheel_verify(w), 0);
    tw_wheel_free(w);
}

static void test_slack_edges(void **state)
{
    (void)state;
    tw_wheel *w = new_wheel(TW_TICK_DEFAULT_NS, 0);
    tw_timer t;
    uint64_t next;
    /* Deadline 0 at time 0: due now, nothing to round. */
    assert_int_equal(tw_wheel_schedule_slack(w, 0, SEC, record, (void *)1, &t), 0);
    assert_int_equal(filed_of(w, t), 0);
    assert_int_equal(tw_wheel_advance(w, 0), 1);
    /* TW_NEVER stays never, whatever the slack. */
    assert_int_equal(tw_wheel_schedule_slack(w, TW_NEVER, MS, record, (void *)2, &t), 0);
    assert_int_equal(filed_of(w, t), TW_NEVER);
    assert_int_equal(tw_wheel_next_deadline(w, &next), TW_ENOENT);
    assert_int_equal(tw_wheel_cancel(w, t), 0);
    /* Near the top: the window ends at TW_NEVER - 1, never at never. */
    assert_int_equal(tw_wheel_schedule_slack(w, TW_NEVER - 1, MS, record, (void *)3, &t), 0);
    assert_int_equal(filed_of(w, t), TW_NEVER - 1);
    assert_int_equal(tw_wheel_cancel(w, t), 0);
    assert_int_equal(tw_wheel_schedule_slack(w, TW_NEVER - 10, 100, record, (void *)4, &t), 0);
    uint64_t f = filed_of(w, t);
    assert_true(f >= TW_NEVER - 10 && f <= TW_NEVER - 1);
    assert_int_equal(tw_wheel_cancel(w, t), 0);
    /* A slack past 32 bits is taken as UINT32_MAX ns. */
    assert_int_equal(tw_wheel_schedule_slack(w, SEC + 1, UINT64_MAX, record, (void *)5, &t), 0);
    f = filed_of(w, t);
    assert_true(f >= SEC + 1 && f <= SEC + 1 + UINT32_MAX);
    assert_int_equal(tw_wheel_reschedule(w, t, 3 * SEC + 1), 0);
    f = filed_of(w, t);
    assert_true(f >= 3 * SEC + 1 && f <= 3 * SEC + 1 + UINT32_MAX);
    assert_int_equal(tw_wheel_cancel(w, t), 0);
    /* Never before the deadline across every power of two. */
    for (unsigned b = 1; b < 63; b++) {
        uint64_t d = (UINT64_C(1) << b) + 1;
        assert_int_equal(tw_wheel_schedule_slack(w, d, (UINT64_C(1) << b) - 2, record, NULL,
                                                 &t), 0);
        f = filed_of(w, t);
        assert_true(f >= d && f <= d + (UINT64_C(1) << b) - 2);
        assert_int_equal(tw_wheel_cancel(w, t), 0);
    }
    assert_int_equal(tw_wheel_verify(w), 0);
    tw_wheel_free(w);
}

static void test_slack_bad_input(void **state)
{
    (void)state;
    tw_wheel *w = new_wheel(TW_TICK_DEFAULT_NS, 0);
    tw_timer t = 77;
    assert_int_equal(tw_wheel_schedule_slack(NULL, 1, 1, record, NULL, &t), TW_EINVAL);
    assert_int_equal(t, 0);
    t = 77;
    assert_int_equal(tw_wheel_schedule_slack(w, 1, 1, NULL, NULL, &t), TW_EINVAL);
    assert_int_equal(t, 0);
    assert_int_equal(tw_wheel_schedule_slack(w, 1, 1, record, NULL, NULL), TW_EINVAL);
    assert_int_equal(tw_wheel_advance(w, SEC), 0);
    assert_int_equal(LOG.n, 0);
    tw_wheel_free(w);
}

/* An entry that held a slack timer and is reused by a batch carries no
 * slack: rescheduling it lands on the exact deadline. */
static void test_batch_reuse_drops_slack(void **state)
{
    (void)state;
    const uint64_t t0 = 1000 * SEC;
    tw_wheel *w = new_wheel(MS, t0);
    tw_timer s;
    assert_int_equal(tw_wheel_schedule_slack(w, t0 + 5 * MS + 1, 100 * MS, record, NULL, &s), 0);
    assert_int_equal(tw_wheel_cancel(w, s), 0);
    uint64_t d[1] = {t0 + 7 * MS};
    tw_timer b[1];
    assert_int_equal(tw_wheel_schedule_batch(w, 1, d, record, NULL, b), 0);
    assert_int_equal(b[0] & 0xffffffffu, s & 0xffffffffu);     /* the same entry */
    assert_int_equal(tw_wheel_reschedule(w, b[0], t0 + 9 * MS + 3), 0);
    uint64_t got;
    assert_int_equal(tw_wheel_deadline(w, b[0], &got), 0);
    assert_int_equal(got, t0 + 9 * MS + 3);
    tw_wheel_free(w);
}

/* A slack timer moved by reschedule is filed by the instant it keeps, not
 * by the deadline asked for: the wheel's next deadline and order hold. */
static void test_slack_reschedule_filed_by_instant(void **state)
{
    (void)state;
    tw_wheel *w = new_wheel(TW_TICK_DEFAULT_NS, 0);
    tw_timer s, p;
    uint64_t d, next;
    assert_int_equal(tw_wheel_schedule_slack(w, 100 * MS, 4 * SEC, record, (void *)1, &s), 0);
    assert_int_equal(tw_wheel_reschedule(w, s, 60 * MS + 1), 0);
    assert_int_equal(tw_wheel_deadline(w, s, &d), 0);
    assert_true(d >= 60 * MS + 1 && d <= 60 * MS + 1 + 4 * SEC);
    assert_int_equal(tw_wheel_schedule(w, 65 * MS, record, (void *)2, &p), 0);
    assert_int_equal(tw_wheel_verify(w), 0);
    assert_int_equal(tw_wheel_next_deadline(w, &next), 0);
    assert_int_equal(next, 65 * MS);
    assert_int_equal(tw_wheel_advance(w, d), 2);
    assert_int_equal(LOG.ids[0], 2);
    assert_int_equal(LOG.ids[1], 1);
    assert_int_equal(LOG.deadlines[1], d);
    tw_wheel_free(w);
}

static tw_timer ORDER_Z;

static void arm_z_in_past(tw_timer timer, uint64_t deadline_ns, void *userdata)
{
    record(timer, deadline_ns, userdata);
    assert_int_equal(tw_wheel_schedule(LOG.wheel, 5 * MS, record, (void *)3, &ORDER_Z), 0);
}

/* A timer armed from a callback, already due, fires after every timer
 * that was due when the advance began, whatever the tick. */
static void test_armed_in_callback_after_due_any_tick(void **state)
{
    (void)state;
    const uint64_t ticks[] = {1000, 7777, MS, 10 * MS, 999999937};
    for (size_t k = 0; k < sizeof(ticks) / sizeof(ticks[0]); k++) {
        tw_wheel *w = new_wheel(ticks[k], 0);
        tw_timer x;
        assert_int_equal(tw_wheel_schedule(w, 10 * MS, arm_z_in_past, (void *)1, &x), 0);
        arm(w, 10 * MS + 500 * 1000, 2);
        assert_int_equal(tw_wheel_advance(w, 100 * MS), 3);
        assert_int_equal(LOG.n, 3);
        assert_int_equal(LOG.ids[0], 1);
        assert_int_equal(LOG.ids[1], 2);
        assert_int_equal(LOG.ids[2], 3);
        assert_int_equal(tw_wheel_verify(w), 0);
        tw_wheel_free(w);
    }
}

/* Timers left due by a budget stop fire first at the next advance, before
 * one armed in the meantime with an earlier deadline; also when the stop
 * came inside a cascade (300 timers fill several blocks). */
static void test_budget_stop_keeps_order(void **state)
{
    (void)state;
    const uint64_t ticks[] = {1000, MS, 10 * MS};
    const uintptr_t counts[] = {10, 300};
    const uint64_t at = 5 * SEC + 17;
    const uint64_t ends[] = {at, at + MS, 6 * SEC};
    for (size_t k = 0; k < 3; k++)
        for (size_t c = 0; c < 2; c++)
            for (size_t e = 0; e < 3; e++)
                for (uint32_t budget = 1; budget <= 3; budget++) {
                    tw_wheel *w = new_wheel(ticks[k], 0);
                    uint64_t D = ends[e];
                    uintptr_t n = counts[c];
                    for (uintptr_t id = 1; id <= n; id++)
                        arm(w, at, id);
                    int fired = tw_wheel_advance_max(w, D, budget);
                    assert_true(fired >= 0 && fired <= (int)budget);
                    assert_int_equal(tw_wheel_verify(w), 0);
                    arm(w, D - 5 * MS, 9999);
                    assert_int_equal(tw_wheel_verify(w), 0);
                    assert_int_equal(tw_wheel_advance(w, D), (int)n + 1 - fired);
                    assert_int_equal(LOG.n, n + 1);
                    for (uintptr_t id = 1; id <= n; id++)
                        assert_int_equal(LOG.ids[id - 1], id);
                    assert_int_equal(LOG.ids[n], 9999);
                    assert_int_equal(tw_wheel_verify(w), 0);
                    tw_wheel_free(w);
                }
}

static void rearm_at_now(tw_timer timer, uint64_t deadline_ns, void *userdata)
{
    record(timer, deadline_ns, userdata);
    if (LOG.n < 4000)
        assert_int_equal(tw_wheel_reschedule(LOG.wheel, timer, tw_wheel_now(LOG.wheel)), 0);
}

static void new_at_now(tw_timer timer, uint64_t deadline_ns, void *userdata)
{
    tw_timer t;
    record(timer, deadline_ns, userdata);
    if (LOG.n < 4000)
        assert_int_equal(tw_wheel_schedule(LOG.wheel, tw_wheel_now(LOG.wheel), new_at_now,
                                           userdata, &t), 0);
}

/* A callback that re-arms its timer at now, or arms a new one at now,
 * cannot keep an advance going: each advance fires it twice at most. */
static void test_rearm_at_now_returns(void **state)
{
    (void)state;
    tw_timer_cb *cbs[] = {rearm_at_now, new_at_now};
    for (size_t k = 0; k < 2; k++) {
        tw_wheel *w = new_wheel(TW_TICK_DEFAULT_NS, 0);
        tw_timer t;
        assert_int_equal(tw_wheel_schedule(w, 3 * MS, cbs[k], (void *)1, &t), 0);
        assert_int_equal(tw_wheel_advance(w, 3 * MS), 2);
        assert_int_equal(tw_wheel_advance(w, 3 * MS), 2);
        assert_int_equal(tw_wheel_advance(w, SEC), 2);
        assert_int_equal(LOG.n, 6);
        uint64_t next;
        assert_int_equal(tw_wheel_next_deadline(w, &next), 0);
        assert_true(next <= SEC);
        assert_int_equal(tw_wheel_verify(w), 0);
        tw_wheel_free(w);
    }
}

/* A budget stop inside a cascade, then the last timer cancelled: the
 * wheel is empty and says so. */
static void test_next_deadline_empty_after_cascade_stop(void **state)
{
    (void)state;
    tw_wheel *w = new_wheel(1000, 0);
    tw_timer ts[300];
    uint64_t next;
    for (int i = 0; i < 300; i++)
        ts[i] = arm(w, 10 * SEC + (uint64_t)i * 1000, 1);
    /* Budget 1 moves 4 entries, a block at least: the cascade of the slot
     * stops before any of them is due. */
    assert_int_equal(tw_wheel_advance_max(w, 10 * SEC, 1), 0);
    for (int i = 0; i < 300; i++)
        assert_int_equal(tw_wheel_cancel(w, ts[i]), 0);
    assert_int_equal(tw_wheel_verify(w), 0);
    assert_int_equal(tw_wheel_next_deadline(w, &next), TW_ENOENT);
    assert_int_equal(tw_wheel_advance(w, 20 * SEC), 0);
    assert_int_equal(tw_wheel_next_deadline(w, &next), TW_ENOENT);
    tw_wheel_free(w);
}

/* Every wheel's handles are its own: another wheel's are refused. */
static void test_handles_of_another_wheel(void **state)
{
    (void)state;
    tw_wheel *a = new_wheel(TW_TICK_DEFAULT_NS, 0), *b = new_wheel(TW_TICK_DEFAULT_NS, 0);
    tw_timer ta[64], tb[64];
    uint64_t d;
    for (int i = 0; i < 64; i++) {
        assert_int_equal(tw_wheel_schedule(a, SEC, record, NULL, &ta[i]), 0);
        assert_int_equal(tw_wheel_schedule(b, SEC, record, NULL, &tb[i]), 0);
    }
    for (int i = 0; i < 64; i++) {
        assert_int_equal(tw_wheel_cancel(b, ta[i]), TW_ENOENT);
        assert_int_equal(tw_wheel_reschedule(b, ta[i], 5), TW_ENOENT);
        assert_int_equal(tw_wheel_deadline(b, ta[i], &d), TW_ENOENT);
        assert_int_equal(tw_wheel_cancel(a, tb[i]), TW_ENOENT);
    }
    for (int i = 0; i < 64; i++) {
        assert_int_equal(tw_wheel_cancel(a, ta[i]), 0);
        assert_int_equal(tw_wheel_cancel(b, tb[i]), 0);
    }
    assert_int_equal(tw_wheel_verify(a), 0);
    assert_int_equal(tw_wheel_verify(b), 0);
    tw_wheel_free(a);
    tw_wheel_free(b);
}

static uint64_t P_LAST, P_RUNS, P_DRIFT;

static void periodic_count(tw_timer timer, uint64_t deadline_ns, void *userdata)
{
    (void)timer;
    uint64_t period = (uint64_t)(uintptr_t)userdata;
    if (P_RUNS && deadline_ns != P_LAST + period)
        P_DRIFT++;
    P_LAST = deadline_ns;
    P_RUNS++;
}

/* A million periods of a period no tick divides, one advance each: every
 * deadline is the first + k * period exactly, none fires early. */
static void test_periodic_million_no_drift(void **state)
{
    (void)state;
    tw_wheel *w = new_wheel(TW_TICK_DEFAULT_NS, 0);
    const uint64_t first = 3 * MS + 7, period = 1234567;
    tw_timer t;
    P_LAST = P_RUNS = P_DRIFT = 0;
    assert_int_equal(tw_wheel_schedule_periodic(w, first, period, TW_PERIODIC_CATCH_UP,
                                                periodic_count, (void *)(uintptr_t)period, &t), 0);
    uint64_t p;
    assert_int_equal(tw_wheel_period(w, t, &p), 0);
    assert_int_equal(p, period);
    for (uint64_t k = 0; k < 1000000; k++) {
        uint64_t due = first + k * period;
        assert_int_equal(tw_wheel_advance(w, due - 1), 0);
        assert_int_equal(tw_wheel_advance(w, due), 1);
    }
    assert_int_equal(P_RUNS, 1000000);
    assert_int_equal(P_DRIFT, 0);
    assert_int_equal(P_LAST, first + 999999 * period);
    uint64_t d;
    assert_int_equal(tw_wheel_deadline(w, t, &d), 0);
    assert_int_equal(d, first + 1000000 * period);
    assert_int_equal(tw_wheel_verify(w), 0);
    tw_wheel_free(w);
}

/* Missed periods: catch-up fires one per period (at most two per advance,
 * the rest at once in the next advances); skip fires once and goes on
 * from the first period after now. */
static void test_periodic_missed_periods(void **state)
{
    (void)state;
    tw_wheel *w = new_wheel(TW_TICK_DEFAULT_NS, 0);
    tw_timer c, k;
    P_LAST = P_RUNS = P_DRIFT = 0;
    assert_int_equal(tw_wheel_schedule_periodic(w, 10 * MS, 10 * MS, TW_PERIODIC_CATCH_UP,
                                                periodic_count, (void *)(uintptr_t)(10 * MS), &c), 0);
    assert_int_equal(tw_wheel_advance(w, 55 * MS), 2);
    assert_int_equal(tw_wheel_advance(w, 55 * MS), 2);
    assert_int_equal(tw_wheel_advance(w, 55 * MS), 1);
    assert_int_equal(tw_wheel_advance(w, 55 * MS), 0);
    assert_int_equal(P_RUNS, 5);
    assert_int_equal(P_DRIFT, 0);
    assert_int_equal(P_LAST, 50 * MS);
    assert_int_equal(tw_wheel_cancel(w, c), 0);
    assert_int_equal(tw_wheel_schedule_periodic(w, 60 * MS, 10 * MS, TW_PERIODIC_SKIP, record,
                                                (void *)7, &k), 0);
    assert_int_equal(tw_wheel_advance(w, 95 * MS), 1);
    assert_int_equal(LOG.deadlines[LOG.n - 1], 60 * MS);
    uint64_t d;
    assert_int_equal(tw_wheel_deadline(w, k, &d), 0);
    assert_int_equal(d, 100 * MS);
    assert_int_equal(tw_wheel_advance(w, 100 * MS), 1);
    assert_int_equal(LOG.deadlines[LOG.n - 1], 100 * MS);
    assert_int_equal(tw_wheel_verify(w), 0);
    tw_wheel_free(w);
}

static tw_timer P_SELF;

static void periodic_stop_third(tw_timer timer, uint64_t deadline_ns, void *userdata)
{
    record(timer, deadline_ns, userdata);
    uint64_t d;
    /* Armed again already: its next deadline, and a cancel that stops it. */
    assert_int_equal(tw_wheel_deadline(LOG.wheel, timer, &d), 0);
    assert_int_equal(d, deadline_ns + 5 * MS);
    if (LOG.n == 2)
        assert_int_equal(tw_wheel_reschedule(LOG.wheel, timer, deadline_ns + 20 * MS), 0);
    if (LOG.n == 3)
        assert_int_equal(tw_wheel_cancel(LOG.wheel, timer), 0);
}

static void test_periodic_cancel_and_move_from_callback(void **state)
{
    (void)state;
    tw_wheel *w = new_wheel(TW_TICK_DEFAULT_NS, 0);
    assert_int_equal(tw_wheel_schedule_periodic(w, 5 * MS, 5 * MS, TW_PERIODIC_CATCH_UP,
                                                periodic_stop_third, NULL, &P_SELF), 0);
    for (uint64_t t = 1; t <= 100; t++)
        assert_true(tw_wheel_advance(w, t * MS) >= 0);
    assert_int_equal(LOG.n, 3);
    assert_int_equal(LOG.deadlines[0], 5 * MS);
    assert_int_equal(LOG.deadlines[1], 10 * MS);
    assert_int_equal(LOG.deadlines[2], 30 * MS);     /* moved, then the period from there */
    assert_int_equal(tw_wheel_cancel(w, P_SELF), TW_ENOENT);
    assert_int_equal(tw_wheel_count(w), 0);
    tw_wheel_free(w);
}

static void test_periodic_bad_input(void **state)
{
    (void)state;
    tw_wheel *w = new_wheel(TW_TICK_DEFAULT_NS, 0);
    tw_timer t = 1, plain;
    uint64_t p;
    assert_int_equal(tw_wheel_schedule_periodic(w, MS, 0, 0, record, NULL, &t), TW_EINVAL);
    assert_int_equal(t, 0);
    assert_int_equal(tw_wheel_schedule_periodic(w, MS, TW_NEVER, 0, record, NULL, &t), TW_EINVAL);
    assert_int_equal(tw_wheel_schedule_periodic(w, MS, MS, 2, record, NULL, &t), TW_EINVAL);
    assert_int_equal(tw_wheel_schedule_periodic(w, MS, MS, 0, NULL, NULL, &t), TW_EINVAL);
    assert_int_equal(tw_wheel_schedule_periodic(NULL, MS, MS, 0, record, NULL, &t), TW_EINVAL);
    assert_int_equal(tw_wheel_schedule_periodic(w, MS, MS, 0, record, NULL, NULL), TW_EINVAL);
    plain = arm(w, MS, 1);
    assert_int_equal(tw_wheel_period(w, plain, &p), TW_ENOENT);
    assert_int_equal(tw_wheel_period(w, plain, NULL), TW_EINVAL);
    /* A period that would pass the end of time parks the timer. */
    assert_int_equal(tw_wheel_schedule_periodic(w, TW_NEVER - 10, (TW_NEVER >> 1) - 1, 0, record,
                                                (void *)2, &t), 0);
    assert_int_equal(tw_wheel_advance(w, TW_NEVER - 1), 2);
    uint64_t next;
    assert_int_equal(tw_wheel_next_deadline(w, &next), TW_ENOENT);
    assert_int_equal(tw_wheel_count(w), 1);
    assert_int_equal(tw_wheel_verify(w), 0);
    tw_wheel_free(w);
}

static int visit_sum(tw_timer timer, uint64_t deadline_ns, void *userdata, void *ctx)
{
    uint64_t *sum = ctx;
    (void)timer;
    (void)deadline_ns;
    sum[0] += (uintptr_t)userdata;
    sum[1]++;
    return sum[1] == sum[2] ? 7 : 0;
}

static int visit_cancel(tw_timer timer, uint64_t deadline_ns, void *userdata, void *ctx)
{
    (void)deadline_ns;
    (void)userdata;
    assert_int_equal(tw_wheel_cancel(ctx, timer), 0);
    return 0;
}

/* count, foreach (also cancelling as it walks) and cancel_all. */
static void test_count_walk_cancel_all(void **state)
{
    (void)state;
    tw_wheel *w = new_wheel(TW_TICK_DEFAULT_NS, 0);
    size_t n = 99;
    assert_int_equal(tw_wheel_count(w), 0);
    for (uintptr_t i = 1; i <= 100; i++)
        arm(w, i % 3 ? i * MS : TW_NEVER, i);
    assert_int_equal(tw_wheel_count(w), 100);
    uint64_t sum[3] = {0, 0, 0};
    assert_int_equal(tw_wheel_foreach(w, visit_sum, sum), 0);
    assert_int_equal(sum[0], 5050);
    assert_int_equal(sum[1], 100);
    uint64_t stop[3] = {0, 0, 10};
    assert_int_equal(tw_wheel_foreach(w, visit_sum, stop), 7);
    assert_int_equal(stop[1], 10);
    assert_int_equal(tw_wheel_advance(w, 10 * MS), 7);
    assert_int_equal(tw_wheel_count(w), 93);
    assert_int_equal(tw_wheel_cancel_all(w, &n), 0);
    assert_int_equal(n, 93);
    assert_int_equal(tw_wheel_count(w), 0);
    uint64_t next;
    assert_int_equal(tw_wheel_next_deadline(w, &next), TW_ENOENT);
    for (uintptr_t i = 1; i <= 50; i++)
        arm(w, SEC + i, i);
    assert_int_equal(tw_wheel_foreach(w, visit_cancel, w), 0);
    assert_int_equal(tw_wheel_count(w), 0);
    assert_int_equal(tw_wheel_foreach(w, NULL, NULL), TW_EINVAL);
    assert_int_equal(tw_wheel_cancel_all(NULL, NULL), TW_EINVAL);
    assert_int_equal(tw_wheel_verify(w), 0);
    tw_wheel_free(w);
}

static void cancel_everything(tw_timer timer, uint64_t deadline_ns, void *userdata)
{
    size_t n = 0;
    uint64_t d;
    record(timer, deadline_ns, userdata);
    if (LOG.n > 1)
        return;
    assert_int_equal(tw_wheel_cancel_all(LOG.wheel, &n), 0);
    assert_int_equal(n, 3);     /* two still due in this advance, one later */
    /* The running timer is not armed, and stays as it is. */
    assert_int_equal(tw_wheel_deadline(LOG.wheel, timer, &d), TW_ENOENT);
    assert_int_equal(tw_wheel_reschedule(LOG.wheel, timer, deadline_ns + SEC), 0);
}

/* Called from a callback, cancel-all also cancels the timers still due in
 * the running advance. */
static void test_cancel_all_from_callback(void **state)
{
    (void)state;
    tw_wheel *w = new_wheel(TW_TICK_DEFAULT_NS, 0);
    tw_timer t;
    assert_int_equal(tw_wheel_schedule(w, 5 * MS, cancel_everything, (void *)1, &t), 0);
    arm(w, 5 * MS, 2);
    arm(w, 6 * MS, 3);
    arm(w, 2 * SEC, 4);
    assert_int_equal(tw_wheel_advance(w, 10 * MS), 1);
    assert_int_equal(LOG.n, 1);
    assert_int_equal(tw_wheel_count(w), 1);     /* the one it re-armed */
    assert_int_equal(tw_wheel_advance(w, 3 * SEC), 1);
    assert_int_equal(LOG.ids[1], 1);
    assert_int_equal(tw_wheel_verify(w), 0);
    tw_wheel_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fires_at_deadline_not_before),
        cmocka_unit_test(test_zero_delay_and_past_deadline),
        cmocka_unit_test(test_equal_deadlines_fire_in_arming_order),
        cmocka_unit_test(test_deadline_order_within_one_tick),
        cmocka_unit_test(test_every_level_boundary),
        cmocka_unit_test(test_never),
        cmocka_unit_test(test_cancel_and_stale_handles),
        cmocka_unit_test(test_time_backwards_is_clamped),
        cmocka_unit_test(test_ten_ms_tick),
        cmocka_unit_test(test_cancel_others_from_callback),
        cmocka_unit_test(test_reschedule_self),
        cmocka_unit_test(test_schedule_from_callback),
        cmocka_unit_test(test_free_from_callback),
        cmocka_unit_test(test_free_with_timers_armed),
        cmocka_unit_test(test_next_deadline_tracks_cancel),
        cmocka_unit_test(test_batch),
        cmocka_unit_test(test_batch_keeps_arming_order),
        cmocka_unit_test(test_batch_during_pending_cascade),
        cmocka_unit_test(test_cancel_batch),
        cmocka_unit_test(test_advance_budget),
        cmocka_unit_test(test_arming_order_across_a_pending_cascade),
        cmocka_unit_test(test_exact_advances_inside_one_tick),
        cmocka_unit_test(test_batch_reuse_drops_slack),
        cmocka_unit_test(test_slack_window),
        cmocka_unit_test(test_slack_coalesces),
        cmocka_unit_test(test_slack_kept_by_reschedule),
        cmocka_unit_test(test_slack_edges),
        cmocka_unit_test(test_slack_bad_input),
        cmocka_unit_test(test_slack_reschedule_filed_by_instant),
        cmocka_unit_test(test_armed_in_callback_after_due_any_tick),
        cmocka_unit_test(test_budget_stop_keeps_order),
        cmocka_unit_test(test_rearm_at_now_returns),
        cmocka_unit_test(test_next_deadline_empty_after_cascade_stop),
        cmocka_unit_test(test_handles_of_another_wheel),
        cmocka_unit_test(test_periodic_million_no_drift),
        cmocka_unit_test(test_periodic_missed_periods),
        cmocka_unit_test(test_periodic_cancel_and_move_from_callback),
        cmocka_unit_test(test_periodic_bad_input),
        cmocka_unit_test(test_count_walk_cancel_all),
        cmocka_unit_test(test_cancel_all_from_callback),
    };
    return cmocka_run_group_tests_name("wheel", tests, NULL, NULL);
}
