/*
 * Zero heap allocations in steady state.  This program interposes the
 * allocator (glibc's __libc_* entry points underneath) and counts every
 * call while a warm wheel schedules, cancels, reschedules and fires at a
 * steady population, one by one and in batches of up to 64; while a warm
 * reliability layer sends and acks at a steady window, with losses and
 * probe timeouts; and while connections on a loop driven by hand are
 * armed, touched, fired (by callback and by queue) and re-armed; and
 * while connection ids are sharded and grouped.  Built
 * only without sanitizers, which own malloc.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "tickwheel.h"

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void __libc_free(void *p);

static int COUNTING;
static unsigned long CALLS;

void *malloc(size_t size)
{
    CALLS += COUNTING;
    return __libc_malloc(size);
}

void *calloc(size_t n, size_t size)
{
    CALLS += COUNTING;
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t size)
{
    CALLS += COUNTING;
    return __libc_realloc(p, size);
}

void free(void *p)
{
    CALLS += COUNTING && p;
    __libc_free(p);
}

#define N 50000
#define MS UINT64_C(1000000)

static tw_timer TIMERS[N];
static uint64_t RNG = 88172645463325252u;
static unsigned long FIRED;

static uint64_t next_random(void)
{
    RNG ^= RNG << 13;
    RNG ^= RNG >> 7;
    RNG ^= RNG << 17;
    return RNG;
}

static tw_wheel *WHEEL;
static uint64_t NOW;

static uint64_t random_delay(void)
{
    return MS + next_random() % (30000 * MS);
}

/* A fired timer re-arms itself, so the population stays at N. */
static void rearm(tw_timer timer, uint64_t deadline_ns, void *userdata)
{
    tw_timer *slot = userdata;
    assert_int_equal(*slot, timer);
    assert_true(deadline_ns <= NOW);
    FIRED++;
    assert_int_equal(tw_wheel_reschedule(WHEEL, timer, NOW + random_delay()), 0);
}

/* Replaces a run of up to 64 timers by one cancel batch and one schedule
 * batch: the direct path, which allocates nothing once warm. */
static void batch(size_t k, size_t n)
{
    uint64_t deadlines[64];
    void *userdata[64];
    size_t cancelled = 0;
    for (size_t j = 0; j < n; j++) {
        deadlines[j] = NOW + random_delay();
        userdata[j] = &TIMERS[k + j];
    }
    assert_int_equal(tw_wheel_cancel_batch(WHEEL, n, &TIMERS[k], &cancelled), 0);
    assert_int_equal(cancelled, n);
    assert_int_equal(tw_wheel_schedule_batch(WHEEL, n, deadlines, rearm, userdata, &TIMERS[k]),
                     0);
}

static void churn(unsigned long steps)
{
    for (unsigned long s = 0; s < steps; s++) {
        size_t k = next_random() % N;
        if (s % 16 == 15) {
            batch(k % (N - 64), 1 + k % 64);
            continue;
        }
        switch (s % 4) {
        case 0:
            assert_int_equal(tw_wheel_cancel(WHEEL, TIMERS[k]), 0);
            assert_int_equal(tw_wheel_schedule(WHEEL, NOW + random_delay(), rearm, &TIMERS[k],
                                               &TIMERS[k]), 0);
            break;
        case 1:
            assert_int_equal(tw_wheel_reschedule(WHEEL, TIMERS[k], NOW + random_delay()), 0);
            break;
        case 2: {
            uint64_t next;
            assert_int_equal(tw_wheel_next_deadline(WHEEL, &next), 0);
            break;
        }
        default:
            NOW += MS / 4;
            assert_true(tw_wheel_advance(WHEEL, NOW) >= 0);
            break;
        }
    }
}

static void test_steady_state_allocates_nothing(void **state)
{
    (void)state;
    assert_int_equal(tw_wheel_new(NULL, NOW, &WHEEL), 0);
    for (size_t k = 0; k < N; k++)
        assert_int_equal(tw_wheel_schedule(WHEEL, NOW + random_delay(), rearm, &TIMERS[k],
                                           &TIMERS[k]), 0);
    /* Warm: more than one full turn of the 30 s delay range (a quarter
     * millisecond every fourth step), so the pools reach their size. */
    churn(1000000);

    COUNTING = 1;
    unsigned long fired_before = FIRED;
    churn(400000);
    COUNTING = 0;
    assert_int_equal(CALLS, 0);
    assert_true(FIRED > fired_before);  /* the expiry path was exercised */
    assert_int_equal(tw_wheel_verify(WHEEL), 0);

    /* The counter sees the library's own allocations. */
    tw_wheel *other;
    COUNTING = 1;
    assert_int_equal(tw_wheel_new(NULL, 0, &other), 0);
    tw_wheel_free(other);
    COUNTING = 0;
    assert_true(CALLS >= 2);
    tw_wheel_free(WHEEL);
}

static unsigned long PERIODIC_FIRED;

static void periodic_fired(tw_timer timer, uint64_t deadline_ns, void *userdata)
{
    (void)timer;
    (void)deadline_ns;
    (void)userdata;
    PERIODIC_FIRED++;
}

/* Periodic timers, a thousand of them, re-armed once per period: after the
 * first periods, not one allocation. */
static void test_periodic_allocates_nothing(void **state)
{
    (void)state;
    tw_wheel *w;
    tw_timer t;
    uint64_t now = NOW;
    assert_int_equal(tw_wheel_new(NULL, now, &w), 0);
    for (uint64_t k = 0; k < 1000; k++)
        assert_int_equal(tw_wheel_schedule_periodic(w, now + k * 7919, MS + k * 997,
                                                    k % 2 ? TW_PERIODIC_SKIP : TW_PERIODIC_CATCH_UP,
                                                    periodic_fired, NULL, &t), 0);
    for (int i = 0; i < 20000; i++)
        assert_true(tw_wheel_advance(w, now += MS / 3) >= 0);
    CALLS = 0;
    COUNTING = 1;
    unsigned long before = PERIODIC_FIRED;
    for (int i = 0; i < 60000; i++)
        assert_true(tw_wheel_advance(w, now += MS / 3) >= 0);
    COUNTING = 0;
    assert_int_equal(CALLS, 0);
    assert_true(PERIODIC_FIRED - before > 100000);
    assert_int_equal(tw_wheel_verify(w), 0);
    tw_wheel_free(w);
}

/* A window of 64 packets; every ACK covers two, one packet in 50 is never
 * acked (lost by threshold), and every 1000th step the ACKs stop long
 * enough for a probe timeout. */
static uint64_t RPN, RACKED;

static void recovery_steps(tw_recovery *r, unsigned long steps)
{
    uint64_t f[64];
    for (unsigned long s = 0; s < steps; s++) {
        NOW += 100000;
        assert_int_equal(tw_recovery_on_sent(r, TW_PN_APPLICATION, RPN, NOW, 1200,
                                             TW_RECOVERY_ACK_ELICITING, RPN + 1), 0);
        RPN++;
        if (s % 1000 == 999) {
            uint64_t deadline;
            assert_int_equal(tw_recovery_next_deadline(r, &deadline), 0);
            NOW = deadline;
            uint32_t ev;
            assert_int_equal(tw_recovery_check(r, NOW, &ev), 0);
            assert_true(ev & TW_RECOVERY_PTO);
        }
        while (RACKED + 64 < RPN) {
            uint64_t hi = RACKED + 1;
            tw_ack_range a = {RACKED, hi % 50 != 49 ? hi : RACKED};
            assert_int_equal(tw_recovery_on_ack(r, TW_PN_APPLICATION, &a, 1, 1000000, NOW), 0);
            RACKED += 2;
        }
        uint64_t deadline;
        uint32_t ev;
        assert_int_equal(tw_recovery_next_deadline(r, &deadline), 0);
        assert_int_equal(tw_recovery_check(r, NOW, &ev), 0);
        while (tw_recovery_take_retired(r, f, 64) == 64)
            ;
        while (tw_recovery_take_frames(r, f, 64) == 64)
            ;
    }
}

static void test_recovery_steady_state_allocates_nothing(void **state)
{
    (void)state;
    tw_recovery *r;
    tw_recovery_config c;
    tw_recovery_config_init(&c);
    c.is_server = 1;
    assert_int_equal(tw_recovery_new(&c, &r), 0);
    assert_int_equal(tw_recovery_set_handshake_confirmed(r), 0);
    recovery_steps(r, 20000);

    tw_recovery_stats before = {.struct_size = sizeof(before)};
    assert_int_equal(tw_recovery_stats_get(r, &before), 0);
    CALLS = 0;
    COUNTING = 1;
    recovery_steps(r, 200000);
    COUNTING = 0;
    assert_int_equal(CALLS, 0);
    tw_recovery_stats after = {.struct_size = sizeof(after)};
    assert_int_equal(tw_recovery_stats_get(r, &after), 0);
    /* Every path was exercised: acks, losses, probe timeouts. */
    assert_true(after.acked > before.acked);
    assert_true(after.lost > before.lost);
    assert_true(after.pto > before.pto);
    assert_int_equal(after.bytes, before.bytes);

    COUNTING = 1;
    tw_recovery_free(r);
    COUNTING = 0;
    assert_true(CALLS >= 2);
}

/* Connections: half with a callback, half queued; whatever fires is
 * re-armed, so every connection keeps a few kinds armed. */
#define NC 1000

static tw_conn *CONNS[NC];
static tw_loop *LOOP;
static uint64_t CNOW;
static unsigned long CONN_EVENTS;

static uint64_t conn_clock(void *userdata)
{
    (void)userdata;
    return CNOW;
}

static uint64_t conn_delay(void)
{
    return MS + next_random() % (3000 * MS);
}

static void rearm_fired(const tw_conn_event *e)
{
    assert_true(e->events[0] != 0);
    assert_true(e->now_ns <= CNOW);
    CONN_EVENTS++;
    for (unsigned k = 0; k < TW_CONN_KINDS; k++)
        if (e->events[0] & TW_CONN_BIT(k))
            assert_int_equal(tw_conn_arm_in(e->conn, k, conn_delay()), 0);
}

static void conn_fired(const tw_conn_event *e, void *userdata)
{
    assert_ptr_equal(userdata, LOOP);
    rearm_fired(e);
}

static void conn_churn(unsigned long steps)
{
    tw_conn_event ev[16];
    for (unsigned long s = 0; s < steps; s++) {
        tw_conn *c = CONNS[next_random() % NC];
        switch (s % 4) {
        case 0:
            assert_int_equal(tw_conn_touch(c), 0);
            break;
        case 1: {
            /* Earlier or later than what is filed. */
            unsigned k = 1 + (unsigned)(next_random() % (TW_CONN_KINDS - 1));
            assert_int_equal(tw_conn_arm_in(c, k, conn_delay()), 0);
            break;
        }
        case 2: {
            int n;
            while ((n = tw_conn_poll(LOOP, ev, 16)) > 0)
                for (int i = 0; i < n; i++)
                    rearm_fired(&ev[i]);
            assert_int_equal(n, 0);
            break;
        }
        default:
            CNOW += MS / 4;
            assert_true(tw_loop_process(LOOP) >= 0);
            break;
        }
    }
}

static void test_connections_allocate_nothing(void **state)
{
    (void)state;
    tw_loop_config config;
    tw_loop_config_init(&config);
    config.clock = conn_clock;
    CNOW = 1000 * 1000 * MS;
    assert_int_equal(tw_loop_new(NULL, &config, &LOOP), 0);
    for (size_t i = 0; i < NC; i++) {
        assert_int_equal(tw_conn_new(LOOP, (uint32_t)i, i % 2 ? conn_fired : NULL, LOOP,
                                     &CONNS[i]), 0);
        assert_int_equal(tw_conn_set_idle_timeout(CONNS[i], 2000 * MS), 0);
        assert_int_equal(tw_conn_touch(CONNS[i]), 0);
        assert_int_equal(tw_conn_arm_in(CONNS[i], TW_CONN_KEEPALIVE, conn_delay()), 0);
    }
    /* Warm: more than one turn of the 3 s delay range. */
    conn_churn(200000);

    tw_conn_stats before;
    before.struct_size = sizeof(before);
    assert_int_equal(tw_conn_stats_get(LOOP, &before), 0);
    unsigned long events = CONN_EVENTS;
    CALLS = 0;
    COUNTING = 1;
    conn_churn(100000);
    COUNTING = 0;
    assert_int_equal(CALLS, 0);
    tw_conn_stats after;
    after.struct_size = sizeof(after);
    assert_int_equal(tw_conn_stats_get(LOOP, &after), 0);
    /* The paths meant: events both ways, lazy arms, early wake-ups. */
    assert_true(CONN_EVENTS > events + 1000);
    assert_true(after.lazy_arms > before.lazy_arms + 1000);
    assert_true(after.early_wakeups > before.early_wakeups);
    assert_true(after.events > before.events);
    assert_int_equal(after.live, NC);
    for (size_t i = 0; i < NC; i++)
        tw_conn_free(CONNS[i]);
    tw_loop_free(LOOP);
}

static void test_id_grouping_allocates_nothing(void **state)
{
    (void)state;
    static uint32_t ids[4096], shards[4096], order[4096], offsets[17];
    for (uint32_t i = 0; i < 4096; i++)
        ids[i] = (uint32_t)next_random();
    size_t largest = 0;
    CALLS = 0;
    COUNTING = 1;
    assert_int_equal(tw_conn_id_shards(4096, ids, 16, shards), 0);
    assert_int_equal(tw_conn_id_group(4096, ids, 16, offsets, order, &largest), 0);
    COUNTING = 0;
    assert_int_equal(CALLS, 0);
    assert_int_equal(offsets[16], 4096);
    assert_true(largest >= 4096 / 16);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_steady_state_allocates_nothing),
        cmocka_unit_test(test_periodic_allocates_nothing),
        cmocka_unit_test(test_recovery_steady_state_allocates_nothing),
        cmocka_unit_test(test_connections_allocate_nothing),
        cmocka_unit_test(test_id_grouping_allocates_nothing),
    };
    return cmocka_run_group_tests_name("alloc", tests, NULL, NULL);
}
