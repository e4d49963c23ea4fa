/*
 * The inbox under threads: producers post through a small inbox to a loop
 * run by tw_loop_run on the main thread, or driven by hand through
 * tw_loop_fd.  Every command runs exactly once,
 * in order per producer, and a full inbox pushes back instead of growing.
 * Synchronisation is by joins, semaphores and the loop's own completion;
 * nothing sleeps.  Producers never call cmocka (it is not thread-safe):
 * they count what went wrong, and the main thread asserts after the joins.
 */
#define _POSIX_C_SOURCE 200809L

#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tickwheel.h"

#define SEC UINT64_C(1000000000)
#define PER_PRODUCER 200000u
#define MAX_PRODUCERS 4
#define CAPACITY 256

enum way { POST, POST_WAIT, POST_SCHEDULE };

struct producer {
    pthread_t thread;
    unsigned index;
    enum way way;
    uint32_t count;
    uint64_t refused;       /* answers TW_EAGAIN or TW_ETIMEDOUT */
    uint64_t timeouts;
    int error;              /* the first unexpected answer */
};

/* Written by the loop's thread only, read after tw_loop_run returns. */
static struct {
    tw_loop *loop;
    pthread_t loop_thread;
    uint64_t total;
    uint64_t ran;
    uint32_t next[MAX_PRODUCERS];
    uint8_t seen[MAX_PRODUCERS * PER_PRODUCER];
    uint64_t duplicates, out_of_order, bad_status, bad_loop, bad_thread, bad_handle;
} S;

/* Set by a producer that met an unexpected answer, so the others give up. */
static int GIVE_UP;

static void *id_of(unsigned producer, uint32_t seq)
{
    return (void *)((uintptr_t)producer * PER_PRODUCER + seq);
}

static void account(tw_loop *loop, void *userdata)
{
    uintptr_t id = (uintptr_t)userdata;
    unsigned p = (unsigned)(id / PER_PRODUCER);
    uint32_t seq = (uint32_t)(id % PER_PRODUCER);
    if (loop != S.loop)
        S.bad_loop++;
    if (!pthread_equal(pthread_self(), S.loop_thread))
        S.bad_thread++;
    if (p >= MAX_PRODUCERS) {
        S.bad_handle++;
        return;
    }
    if (S.seen[id]++)
        S.duplicates++;
    if (seq != S.next[p])
        S.out_of_order++;
    S.next[p] = seq + 1;
    if (++S.ran == S.total)
        tw_loop_stop(loop);
}

static void consume(tw_loop *loop, int status, void *userdata)
{
    if (status != 0)
        S.bad_status++;
    account(loop, userdata);
}

static void consume_timer(tw_timer timer, uint64_t deadline_ns, void *userdata)
{
    (void)deadline_ns;
    if (timer == 0)
        S.bad_handle++;
    account(S.loop, userdata);
}

static void *produce(void *arg)
{
    struct producer *p = arg;
    for (uint32_t seq = 0; seq < p->count; seq++) {
        void *ud = id_of(p->index, seq);
        for (;;) {
            int r;
            if (p->way == POST)
                r = tw_loop_post(S.loop, consume, ud);
            else if (p->way == POST_WAIT)
                r = tw_loop_post_wait(S.loop, consume, ud, SEC);
            else
                r = tw_loop_post_schedule(S.loop, 0, consume_timer, ud);
            if (r == 0)
                break;
            if (__atomic_load_n(&GIVE_UP, __ATOMIC_RELAXED))
                return NULL;
            if (r == TW_EAGAIN && p->way != POST_WAIT) {
                p->refused++;
                sched_yield();
                continue;
            }
            if (r == TW_ETIMEDOUT && p->way == POST_WAIT) {
                p->refused++;
                p->timeouts++;
                continue;
            }
            /* Unexpected: stop the loop so the test ends and reports it. */
            p->error = r;
            __atomic_store_n(&GIVE_UP, 1, __ATOMIC_RELAXED);
            tw_loop_stop(S.loop);
            return NULL;
        }
    }
    return NULL;
}

/* A loop driven by hand: poll tw_loop_fd with no timeout of the test's
 * own (10 s only so that a lost wake-up fails instead of hanging), run a
 * turn when it is readable.  Returns the wake-ups; *lost counts polls that
 * timed out with commands still to run. */
static uint64_t drive_by_hand(uint64_t *lost)
{
    struct pollfd p = {.fd = tw_loop_fd(S.loop), .events = POLLIN};
    uint64_t wakeups = 0;
    while (S.ran < S.total && !__atomic_load_n(&GIVE_UP, __ATOMIC_RELAXED)) {
        int r = poll(&p, 1, 10000);
        if (r == 0) {
            ++*lost;
            break;
        }
        if (r == 1) {
            wakeups++;
            tw_loop_process(S.loop);
        }
    }
    return wakeups;
}

static void run_producers_on(unsigned n, const enum way *ways, uint32_t count, int by_hand)
{
    memset(&S, 0, sizeof(S));
    GIVE_UP = 0;
    tw_loop_config c;
    tw_loop_config_init(&c);
    c.inbox_capacity = CAPACITY;
    assert_int_equal(tw_loop_new(NULL, &c, &S.loop), 0);
    S.loop_thread = pthread_self();
    S.total = (uint64_t)n * count;

    struct producer ps[MAX_PRODUCERS];
    memset(ps, 0, sizeof(ps));
    /* Producers start before the loop runs: the first posts find it idle. */
    for (unsigned i = 0; i < n; i++) {
        ps[i].index = i;
        ps[i].way = ways[i];
        ps[i].count = count;
        assert_int_equal(pthread_create(&ps[i].thread, NULL, produce, &ps[i]), 0);
    }
    uint64_t lost = 0, wakeups = 0;
    if (by_hand)
        wakeups = drive_by_hand(&lost);
    else
        assert_int_equal(tw_loop_run(S.loop), 0);
    uint64_t refused = 0, timeouts = 0;
    for (unsigned i = 0; i < n; i++) {
        assert_int_equal(pthread_join(ps[i].thread, NULL), 0);
        if (ps[i].error)
            fail_msg("producer %u: unexpected %s", i, tw_err_name(ps[i].error));
        refused += ps[i].refused;
        timeouts += ps[i].timeouts;
    }

    assert_int_equal(S.ran, S.total);
    assert_int_equal(S.duplicates, 0);
    assert_int_equal(S.out_of_order, 0);
    assert_int_equal(S.bad_status, 0);
    assert_int_equal(S.bad_loop, 0);
    assert_int_equal(S.bad_thread, 0);
    assert_int_equal(S.bad_handle, 0);
    for (unsigned i = 0; i < n; i++)
        assert_int_equal(S.next[i], count);
    for (unsigned i = 0; i < n; i++)
        for (uint32_t seq = 0; seq < count; seq++)
            if (S.seen[(uintptr_t)id_of(i, seq)] != 1)
                fail_msg("producer %u, sequence %u ran %u times", i, seq,
                         S.seen[(uintptr_t)id_of(i, seq)]);

    tw_loop_stats s;
    memset(&s, 0, sizeof(s));
    s.struct_size = sizeof(s);
    assert_int_equal(tw_loop_stats_get(S.loop, &s), 0);
    printf("# %u producers: %llu refused (%llu timeouts), high water %llu, %llu turns\n", n,
           (unsigned long long)s.inbox_refused, (unsigned long long)timeouts,
           (unsigned long long)s.inbox_high_water, (unsigned long long)s.turns);
    /* Back-pressure happened, was counted exactly, and the inbox never grew. */
    assert_true(s.inbox_refused > 0);
    assert_int_equal(s.inbox_refused, refused);
    assert_true(s.inbox_high_water > 0);
    assert_true(s.inbox_high_water <= CAPACITY);
    assert_int_equal(s.inbox_depth, 0);
    assert_int_equal(s.inbox_run, S.total);
    assert_true(s.turns > 0);
    if (by_hand) {
        printf("# by hand: %llu wake-ups for %llu commands\n", (unsigned long long)wakeups,
               (unsigned long long)S.total);
        assert_int_equal(lost, 0);
        /* The last command's tw_loop_stop wrote the descriptor: one more
         * turn, then it must be quiet, every write read. */
        tw_loop_process(S.loop);
        struct pollfd p = {.fd = tw_loop_fd(S.loop), .events = POLLIN};
        assert_int_equal(poll(&p, 1, 0), 0);
    }
    /* Nothing is left to cancel: consume would count a non-zero status. */
    tw_loop_free(S.loop);
    assert_int_equal(S.bad_status, 0);
    assert_int_equal(S.ran, S.total);
}

static void run_producers(unsigned n, const enum way *ways, uint32_t count)
{
    run_producers_on(n, ways, count, 0);
}

static void test_two_producers(void **state)
{
    (void)state;
    const enum way ways[] = {POST, POST_WAIT};
    run_producers(2, ways, PER_PRODUCER);
}

/* The same through tw_loop_fd and tw_loop_process: no lost wake-up, and
 * the descriptor quiet once everything ran. */
static void test_two_producers_by_hand(void **state)
{
    (void)state;
    const enum way ways[] = {POST, POST_WAIT};
    run_producers_on(2, ways, PER_PRODUCER, 1);
}

static void test_four_producers(void **state)
{
    (void)state;
    const enum way ways[] = {POST, POST_WAIT, POST, POST_WAIT};
    run_producers(4, ways, PER_PRODUCER);
}

static void test_posted_timers(void **state)
{
    (void)state;
    /* Timers armed through the inbox at a past deadline: equal deadlines
     * fire in arming order, so each producer's order survives; a function
     * producer rides along on the same inbox. */
    const enum way ways[] = {POST_SCHEDULE, POST_SCHEDULE, POST_WAIT};
    run_producers(3, ways, 50000);
    /* Checked inside: every timer fired once with a non-zero handle. */
}

/* tw_loop_stop from another thread wakes an idle loop. */
static sem_t RUNNING;

static void announce(tw_loop *loop, int status, void *userdata)
{
    (void)loop;
    (void)userdata;
    if (status == 0)
        sem_post(&RUNNING);
}

static void *stopper(void *arg)
{
    tw_loop *loop = arg;
    while (sem_wait(&RUNNING) != 0)
        ;
    /* The loop is inside tw_loop_run, idle or about to be. */
    intptr_t r = tw_loop_stop(loop);
    return (void *)r;
}

static void test_stop_from_another_thread(void **state)
{
    (void)state;
    tw_loop *loop = NULL;
    assert_int_equal(sem_init(&RUNNING, 0, 0), 0);
    assert_int_equal(tw_loop_new(NULL, NULL, &loop), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, stopper, loop), 0);
    assert_int_equal(tw_loop_post(loop, announce, NULL), 0);
    assert_int_equal(tw_loop_run(loop), 0);
    void *r = NULL;
    assert_int_equal(pthread_join(t, &r), 0);
    assert_int_equal((intptr_t)r, 0);
    tw_loop_stats s;
    memset(&s, 0, sizeof(s));
    s.struct_size = sizeof(s);
    assert_int_equal(tw_loop_stats_get(loop, &s), 0);
    assert_int_equal(s.inbox_run, 1);
    assert_int_equal(s.wakeups, 0);
    tw_loop_free(loop);
    sem_destroy(&RUNNING);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_producers),
        cmocka_unit_test(test_two_producers_by_hand),
        cmocka_unit_test(test_four_producers),
        cmocka_unit_test(test_posted_timers),
        cmocka_unit_test(test_stop_from_another_thread),
    };
    return cmocka_run_group_tests_name("inbox", tests, NULL, NULL);
}
