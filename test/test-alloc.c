/*
 * Zero heap allocations in steady state.  This program interposes the
 * allocator (glibc's __libc_* entry points underneath) and counts every
 * call while a warm wheel schedules, cancels, reschedules and fires at a
 * steady population, one by one and in batches of up to 64.  Built only without sanitizers, which own malloc.
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_steady_state_allocates_nothing),
    };
    return cmocka_run_group_tests_name("alloc", tests, NULL, NULL);
}
