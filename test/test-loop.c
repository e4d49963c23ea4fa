/*
 * Behaviour of the loop with an injected clock: firing rules, the time
 * cached per turn, the callback budget, the inbox seen from the loop's own
 * thread, reentrancy (free and cancel from a callback), misuse, and a
 * process out of file descriptors.  Loops
 * live on a base the test creates (embedded) or on their own; they are
 * driven by hand with tw_loop_process, or by their base with non-blocking
 * dispatches when every deadline involved is already due.  Nothing sleeps.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "tickwheel.h"

#define MS UINT64_C(1000000)
#define SEC UINT64_C(1000000000)
/* Fake time starts far from 0, so "relative to 0" mistakes show. */
#define T0 (1000 * SEC)

/* The injected clock: returns FAKE and counts its readings. */
static uint64_t FAKE;
static uint64_t CLOCK_READS;

static uint64_t fake_clock(void *userdata)
{
    assert_ptr_equal(userdata, &FAKE);
    CLOCK_READS++;
    return FAKE;
}

static tw_loop_config fake_config(void)
{
    tw_loop_config c;
    tw_loop_config_init(&c);
    c.clock = fake_clock;
    c.clock_userdata = &FAKE;
    return c;
}

/* A log of fired timers shared by the callbacks below. */
struct log {
    tw_loop *loop;
    size_t n;
    uintptr_t ids[4096];
    uint64_t deadlines[4096];
    uint64_t now[4096];
    tw_timer timers[4096];
};

static struct log LOG;

static void record(tw_timer timer, uint64_t deadline_ns, void *userdata)
{
    assert_true(LOG.n < sizeof(LOG.ids) / sizeof(LOG.ids[0]));
    LOG.ids[LOG.n] = (uintptr_t)userdata;
    LOG.deadlines[LOG.n] = deadline_ns;
    LOG.now[LOG.n] = tw_loop_now(LOG.loop);
    LOG.timers[LOG.n] = timer;
    /* Never before the deadline, by the loop's own time. */
    assert_true(deadline_ns <= LOG.now[LOG.n]);
    LOG.n++;
}

/* A log of posted functions. */
struct posts {
    size_t n;
    uintptr_t ids[8192];
    int status[8192];
    const tw_loop *loops[8192];
};

static struct posts POSTS;

static void posted(tw_loop *loop, int status, void *userdata)
{
    assert_true(POSTS.n < sizeof(POSTS.ids) / sizeof(POSTS.ids[0]));
    POSTS.ids[POSTS.n] = (uintptr_t)userdata;
    POSTS.status[POSTS.n] = status;
    POSTS.loops[POSTS.n] = loop;
    POSTS.n++;
}

/* A loop on base (NULL: its own) with the fake clock at T0. */
static tw_loop *start(struct event_base *base, const tw_loop_config *config)
{
    tw_loop_config c = fake_config();
    tw_loop *loop = NULL;
    if (config)
        c = *config;
    FAKE = T0;
    CLOCK_READS = 0;
    memset(&LOG, 0, sizeof(LOG));
    memset(&POSTS, 0, sizeof(POSTS));
    assert_int_equal(tw_loop_new(base, &c, &loop), 0);
    assert_non_null(loop);
    LOG.loop = loop;
    return loop;
}

/* The caller's base, when the test has one. */
static struct event_base *BASE;

static struct event_base *new_base(void)
{
    BASE = event_base_new();
    assert_non_null(BASE);
    return BASE;
}

/* Frees the test's loop, then its base: the order the header asks for. */
static void drop_loop(void)
{
    tw_loop_free(LOG.loop);
    LOG.loop = NULL;
}

static void drop_base(void)
{
    if (BASE)
        event_base_free(BASE);
    BASE = NULL;
}

static void finish(void)
{
    drop_loop();
    drop_base();
}

/* After a failed assertion too, so the sanitizers report only real leaks. */
static int teardown(void **state)
{
    (void)state;
    finish();
    return 0;
}

static tw_timer arm(tw_loop *loop, uint64_t deadline, uintptr_t id)
{
    tw_timer t = 0;
    assert_int_equal(tw_loop_schedule(loop, deadline, record, (void *)id, &t), 0);
    assert_int_not_equal(t, 0);
    return t;
}

static tw_loop_stats stats_of(const tw_loop *loop)
{
    tw_loop_stats s;
    memset(&s, 0, sizeof(s));
    s.struct_size = sizeof(s);
    assert_int_equal(tw_loop_stats_get(loop, &s), 0);
    return s;
}

static uint64_t next_of(const tw_loop *loop)
{
    uint64_t next = 0;
    assert_int_equal(tw_loop_next_deadline(loop, &next), 0);
    return next;
}

static void test_config_defaults(void **state)
{
    (void)state;
    tw_loop_config c;
    memset(&c, 0xab, sizeof(c));
    tw_loop_config_init(&c);
    assert_int_equal(c.struct_size, sizeof(c));
    assert_int_equal(c.tick_ns, TW_TICK_DEFAULT_NS);
    assert_int_equal(c.max_timers, 0);
    assert_int_equal(c.inbox_capacity, 4096);
    assert_int_equal(c.budget_callbacks, 5000);
    assert_int_equal(c.budget_ns, 500 * UINT64_C(1000));
    assert_int_equal(c.batch_threshold, 0);
    assert_null(c.clock);
    assert_null(c.clock_userdata);
    assert_null(c.log);
    assert_null(c.log_userdata);
    tw_loop_config_init(NULL);
    /* NULL config: the defaults, on a base of its own. */
    tw_loop *loop = NULL;
    assert_int_equal(tw_loop_new(NULL, NULL, &loop), 0);
    assert_non_null(loop);
    LOG.loop = loop;
    drop_loop();
    tw_loop_free(NULL);
}

static void test_fires_at_deadline_not_before(void **state)
{
    (void)state;
    struct event_base *base = new_base();
    tw_loop *loop = start(base, NULL);
    arm(loop, T0 + 5 * MS + 1, 1);
    FAKE = T0 + 5 * MS;
    assert_int_equal(tw_loop_process(loop), 0);
    assert_int_equal(LOG.n, 0);
    FAKE = T0 + 5 * MS + 1;
    assert_int_equal(tw_loop_process(loop), 1);
    assert_int_equal(LOG.n, 1);
    assert_int_equal(LOG.ids[0], 1);
    assert_int_equal(LOG.deadlines[0], T0 + 5 * MS + 1);
    assert_int_equal(LOG.now[0], T0 + 5 * MS + 1);
    FAKE = T0 + 10 * SEC;
    assert_int_equal(tw_loop_process(loop), 0);
    assert_int_equal(LOG.n, 1);
    finish();
}

static void test_deadline_order(void **state)
{
    (void)state;
    struct event_base *base = new_base();
    tw_loop *loop = start(base, NULL);
    /* Shuffled deadlines, three equal ones, one far and one past. */
    const uint64_t offs[] = {30 * MS, 7, 2 * SEC, 30 * MS, 999999, 0, 30 * MS, 45 * SEC};
    const uintptr_t want[] = {5, 1, 4, 0, 3, 6, 2, 7};
    const size_t n = sizeof(offs) / sizeof(offs[0]);
    for (size_t i = 0; i < n; i++)
        arm(loop, T0 + offs[i], i);
    arm(loop, 1, 100);      /* long past: due at the next turn */
    FAKE = T0;
    assert_int_equal(tw_loop_process(loop), 2);
    assert_int_equal(LOG.ids[0], 100);
    assert_int_equal(LOG.ids[1], 5);
    FAKE = T0 + 60 * SEC;
    assert_int_equal(tw_loop_process(loop), (int)n - 1);
    assert_int_equal(LOG.n, n + 1);
    for (size_t i = 1; i < n; i++) {
        assert_int_equal(LOG.ids[i + 1], want[i]);
        assert_int_equal(LOG.deadlines[i + 1], T0 + offs[want[i]]);
        assert_int_equal(LOG.now[i + 1], T0 + 60 * SEC);
    }
    finish();
}

/* Moves the clock inside a turn: the turn's time must not follow. */
static void move_clock(tw_timer timer, uint64_t deadline_ns, void *userdata)
{
    record(timer, deadline_ns, userdata);
    FAKE += 5 * SEC;
    tw_timer t;
    assert_int_equal(tw_loop_schedule_relative(LOG.loop, 1 * MS, record, (void *)50, &t), 0);
}

static void test_now_is_turn_start(void **state)
{
    (void)state;
    tw_loop *loop = start(NULL, NULL);     /* a base of its own, driven by hand */
    tw_timer t;
    assert_int_equal(tw_loop_schedule(loop, T0 + 10 * MS, move_clock, (void *)1, &t), 0);
    arm(loop, T0 + 10 * MS, 2);
    arm(loop, T0 + 20 * MS, 3);
    FAKE = T0 + 15 * MS;
    /* T0 + 20 ms is not due: the turn runs at T0 + 15 ms whatever the
     * clock says later; the timer armed inside, at turn + 1 ms, waits too. */
    assert_int_equal(tw_loop_process(loop), 2);
    assert_int_equal(LOG.now[0], T0 + 15 * MS);
    assert_int_equal(LOG.now[1], T0 + 15 * MS);
    tw_loop_stats s = stats_of(loop);
    assert_int_equal(s.now_ns, T0 + 15 * MS);
    assert_int_equal(next_of(loop), T0 + 16 * MS);
    /* After the turn, asking the time reads the clock. */
    assert_int_equal(tw_loop_now(loop), T0 + 5 * SEC + 15 * MS);
    /* The next turn reads the clock again: both due, in deadline order. */
    assert_int_equal(tw_loop_process(loop), 2);
    assert_int_equal(tw_loop_now(loop), T0 + 5 * SEC + 15 * MS);
    assert_int_equal(LOG.ids[2], 50);
    assert_int_equal(LOG.deadlines[2], T0 + 16 * MS);
    assert_int_equal(LOG.ids[3], 3);
    assert_int_equal(LOG.now[3], T0 + 5 * SEC + 15 * MS);
    s = stats_of(loop);
    assert_int_equal(s.now_ns, T0 + 5 * SEC + 15 * MS);
    drop_loop();
}

/* Everything a callback may ask about time, none of which reads the clock
 * inside a turn. */
static void busy(tw_timer timer, uint64_t deadline_ns, void *userdata)
{
    record(timer, deadline_ns, userdata);
    tw_timer t;
    uint64_t next;
    (void)tw_loop_now(LOG.loop);
    (void)stats_of(LOG.loop);
    (void)tw_loop_next_deadline(LOG.loop, &next);
    if ((uintptr_t)userdata < 3)
        assert_int_equal(tw_loop_schedule_relative(LOG.loop, 10 * MS, busy,
                                                   (void *)((uintptr_t)userdata + 1), &t), 0);
}

static void test_clock_read_once_per_turn(void **state)
{
    (void)state;
    struct event_base *base = new_base();
    tw_loop *loop = start(base, NULL);
    tw_timer t;
    assert_int_equal(tw_loop_schedule_relative(loop, 10 * MS, busy, (void *)1, &t), 0);
    assert_int_equal(tw_loop_post(loop, posted, (void *)1), 0);
    uint64_t next;
    (void)tw_loop_next_deadline(loop, &next);
    (void)tw_loop_now(loop);
    /* Each turn reads the clock once; its callbacks and posted functions
     * never do. */
    uint64_t reads = CLOCK_READS;
    for (int i = 1; i <= 4; i++) {
        FAKE += 10 * MS;
        assert_int_equal(tw_loop_process(loop), i < 4 ? 1 : 0);
        assert_int_equal(CLOCK_READS, reads + (uint64_t)i);
    }
    assert_int_equal(LOG.n, 3);
    assert_int_equal(POSTS.n, 1);
    finish();
}

static void test_next_deadline(void **state)
{
    (void)state;
    struct event_base *base = new_base();
    tw_loop *loop = start(base, NULL);
    uint64_t next = 77;
    assert_int_equal(tw_loop_next_deadline(loop, &next), TW_ENOENT);
    tw_timer a = arm(loop, T0 + 30 * MS, 1);
    tw_timer b = arm(loop, T0 + 10 * MS + 5, 2);
    arm(loop, T0 + 50 * SEC, 3);
    assert_int_equal(next_of(loop), T0 + 10 * MS + 5);
    assert_int_equal(tw_loop_cancel(loop, b), 0);
    next = next_of(loop);
    assert_true(next >= T0 + 10 * MS && next <= T0 + 30 * MS);
    assert_int_equal(tw_loop_cancel(loop, a), 0);
    next = next_of(loop);
    assert_true(next <= T0 + 50 * SEC);
    /* Due but not yet run: the deadline, which is in the past. */
    FAKE = T0 + 60 * SEC;
    assert_true(next_of(loop) <= FAKE);
    assert_int_equal(tw_loop_process(loop), 1);
    assert_int_equal(tw_loop_next_deadline(loop, &next), TW_ENOENT);
    /* A timer that never fires does not make the loop busy. */
    arm(loop, TW_NEVER, 4);
    assert_int_equal(tw_loop_next_deadline(loop, &next), TW_ENOENT);
    finish();
}

/* A timer armed at TW_NEVER never fires, even in a turn at the last
 * instant the clock can show, and also when a budget left older timers
 * due there; one armed just before it does fire. */
static void test_never_at_the_end_of_time(void **state)
{
    (void)state;
    tw_loop_config c = fake_config();
    c.budget_callbacks = 1;
    tw_loop *loop = start(NULL, &c);
    arm(loop, T0 + MS, 1);
    arm(loop, T0 + 2 * MS, 2);
    FAKE = UINT64_MAX;
    assert_int_equal(tw_loop_process(loop), 1);
    arm(loop, TW_NEVER, 3);
    tw_timer t;
    assert_int_equal(tw_loop_schedule_slack(loop, TW_NEVER, MS, record, (void *)4, &t), 0);
    arm(loop, TW_NEVER - 1, 5);
    assert_int_equal(tw_loop_process(loop), 1);
    assert_int_equal(tw_loop_process(loop), 1);
    assert_int_equal(tw_loop_process(loop), 0);
    assert_int_equal(tw_loop_process(loop), 0);
    assert_int_equal(LOG.n, 3);
    assert_int_equal(LOG.ids[0], 1);
    assert_int_equal(LOG.ids[1], 2);
    assert_int_equal(LOG.ids[2], 5);
    assert_int_equal(tw_loop_now(loop), UINT64_MAX);
    uint64_t next;
    assert_int_equal(tw_loop_next_deadline(loop, &next), TW_ENOENT);
    finish();
}

static void test_relative_to_loop_now(void **state)
{
    (void)state;
    struct event_base *base = new_base();
    tw_loop *loop = start(base, NULL);
    tw_timer t;
    /* Before the first turn, a call reads the clock, not the time the loop
     * was created at. */
    FAKE = T0 + 1 * MS;
    assert_int_equal(tw_loop_schedule_relative(loop, 9 * MS, record, (void *)1, &t), 0);
    assert_int_equal(next_of(loop), T0 + 10 * MS);
    FAKE = T0 + 2 * MS;
    assert_int_equal(tw_loop_process(loop), 0);
    /* Between turns too: the clock moved on since the last one began. */
    FAKE = T0 + 3 * SEC;
    assert_int_equal(tw_loop_schedule_relative(loop, 10 * MS, record, (void *)2, &t), 0);
    assert_int_equal(tw_loop_now(loop), T0 + 3 * SEC);
    assert_int_equal(tw_loop_process(loop), 1);
    assert_int_equal(LOG.ids[0], 1);
    assert_int_equal(LOG.deadlines[0], T0 + 10 * MS);
    uint64_t d = next_of(loop);
    assert_int_equal(d, T0 + 3 * SEC + 10 * MS);
    FAKE = d - 1;
    assert_int_equal(tw_loop_process(loop), 0);
    FAKE = d;
    assert_int_equal(tw_loop_process(loop), 1);
    assert_int_equal(LOG.ids[1], 2);
    assert_int_equal(LOG.deadlines[1], T0 + 3 * SEC + 10 * MS);
    /* Zero delay: due at the next turn even if the clock stands still. */
    assert_int_equal(tw_loop_schedule_relative(loop, 0, record, (void *)3, &t), 0);
    assert_int_equal(tw_loop_process(loop), 1);
    assert_int_equal(LOG.deadlines[2], d);
    /* A delay past the 64-bit range saturates to never. */
    assert_int_equal(tw_loop_schedule_relative(loop, UINT64_MAX - 5, record, (void *)4, &t), 0);
    assert_int_equal(tw_loop_next_deadline(loop, &d), TW_ENOENT);
    FAKE = UINT64_MAX - 1;
    assert_int_equal(tw_loop_process(loop), 0);
    assert_int_equal(tw_loop_cancel(loop, t), 0);
    finish();
}

static void test_cancel_reschedule_and_stale(void **state)
{
    (void)state;
    struct event_base *base = new_base();
    tw_loop *loop = start(base, NULL);
    tw_timer a = arm(loop, T0 + 10 * MS, 1);
    tw_timer b = arm(loop, T0 + 10 * MS, 2);
    assert_int_not_equal(a, b);
    assert_int_equal(tw_loop_cancel(loop, a), 0);
    assert_int_equal(tw_loop_cancel(loop, a), TW_ENOENT);
    assert_int_equal(tw_loop_reschedule(loop, a, T0), TW_ENOENT);
    /* A new timer may take a's slot; a's handle must not reach it. */
    tw_timer c = arm(loop, T0 + 12 * MS, 3);
    assert_int_equal(tw_loop_cancel(loop, a), TW_ENOENT);
    assert_int_equal(tw_loop_reschedule(loop, b, T0 + 20 * MS), 0);
    assert_int_equal(next_of(loop), T0 + 12 * MS);
    FAKE = T0 + 15 * MS;
    assert_int_equal(tw_loop_process(loop), 1);
    assert_int_equal(LOG.ids[0], 3);
    FAKE = T0 + 20 * MS - 1;
    assert_int_equal(tw_loop_process(loop), 0);
    FAKE = T0 + 20 * MS;
    assert_int_equal(tw_loop_process(loop), 1);
    assert_int_equal(LOG.ids[1], 2);
    assert_int_equal(LOG.deadlines[1], T0 + 20 * MS);
    assert_int_equal(LOG.timers[1], b);
    /* Fired handles are stale. */
    assert_int_equal(tw_loop_cancel(loop, b), TW_ENOENT);
    assert_int_equal(tw_loop_reschedule(loop, b, T0 + SEC), TW_ENOENT);
    assert_int_equal(tw_loop_cancel(loop, c), TW_ENOENT);
    assert_int_equal(tw_loop_cancel(loop, 0), TW_ENOENT);
    assert_int_equal(tw_loop_cancel(loop, UINT64_MAX), TW_ENOENT);
    /* Rescheduled into the past: due at the next turn. */
    tw_timer d = arm(loop, T0 + SEC, 4);
    assert_int_equal(tw_loop_reschedule(loop, d, 5), 0);
    assert_int_equal(tw_loop_process(loop), 1);
    assert_int_equal(LOG.ids[2], 4);
    assert_int_equal(LOG.deadlines[2], 5);
    assert_int_equal(LOG.n, 3);
    finish();
}

static unsigned PERIODIC_RUNS;

static void periodic(tw_timer timer, uint64_t deadline_ns, void *userdata)
{
    record(timer, deadline_ns, userdata);
    PERIODIC_RUNS++;
    /* Not armed while running: cancel answers TW_ENOENT, reschedule re-arms. */
    assert_int_equal(tw_loop_cancel(LOG.loop, timer), TW_ENOENT);
    if (PERIODIC_RUNS < 5)
        assert_int_equal(tw_loop_reschedule(LOG.loop, timer, deadline_ns + 10 * MS), 0);
}

static void test_reschedule_self(void **state)
{
    (void)state;
    struct event_base *base = new_base();
    tw_loop *loop = start(base, NULL);
    tw_timer t;
    PERIODIC_RUNS = 0;
    assert_int_equal(tw_loop_schedule(loop, T0 + 10 * MS, periodic, NULL, &t), 0);
    /* Re-armed deadlines that fall inside the turn's time fire in it. */
    FAKE = T0 + 35 * MS;
    assert_int_equal(tw_loop_process(loop), 3);
    assert_int_equal(PERIODIC_RUNS, 3);
    assert_int_equal(LOG.deadlines[2], T0 + 30 * MS);
    assert_int_equal(next_of(loop), T0 + 40 * MS);
    assert_int_equal(tw_loop_cancel(loop, t), 0);
    FAKE = T0 + SEC;
    assert_int_equal(tw_loop_process(loop), 0);
    assert_int_equal(PERIODIC_RUNS, 3);
    finish();
}

static void test_clock_backwards_clamped(void **state)
{
    (void)state;
    struct event_base *base = new_base();
    tw_loop *loop = start(base, NULL);
    FAKE = T0 + 10 * SEC;
    arm(loop, T0 + 10 * SEC + 1, 1);
    assert_int_equal(tw_loop_process(loop), 0);
    assert_int_equal(stats_of(loop).clock_backwards, 0);
    FAKE = T0 + 10 * SEC;            /* equal is not backwards */
    assert_int_equal(tw_loop_process(loop), 0);
    assert_int_equal(stats_of(loop).clock_backwards, 0);
    FAKE = T0 + 5 * SEC;
    assert_int_equal(tw_loop_process(loop), 0);
    assert_int_equal(stats_of(loop).clock_backwards, 1);
    assert_int_equal(stats_of(loop).now_ns, T0 + 10 * SEC);
    /* Outside a turn, each reading of the time is clamped and counted. */
    assert_int_equal(tw_loop_now(loop), T0 + 10 * SEC);
    assert_int_equal(stats_of(loop).clock_backwards, 2);
    FAKE = 3;
    assert_int_equal(tw_loop_process(loop), 0);
    assert_int_equal(stats_of(loop).clock_backwards, 3);
    /* Relative deadlines count from the clamped time. */
    tw_timer t;
    assert_int_equal(tw_loop_schedule_relative(loop, 1 * MS, record, (void *)2, &t), 0);
    assert_int_equal(stats_of(loop).clock_backwards, 4);
    assert_int_equal(tw_loop_now(loop), T0 + 10 * SEC);
    assert_int_equal(stats_of(loop).clock_backwards, 5);
    assert_int_equal(next_of(loop), T0 + 10 * SEC + 1);
    FAKE = T0 + 10 * SEC + 1;
    assert_int_equal(tw_loop_process(loop), 1);
    assert_int_equal(LOG.ids[0], 1);
    assert_int_equal(tw_loop_now(loop), T0 + 10 * SEC + 1);
    FAKE = T0 + 10 * SEC + 1 * MS;
    assert_int_equal(tw_loop_process(loop), 1);
    assert_int_equal(LOG.ids[1], 2);
    assert_int_equal(LOG.deadlines[1], T0 + 10 * SEC + 1 * MS);
    assert_int_equal(stats_of(loop).clock_backwards, 5);
    finish();
}

/* The budget: a storm at one deadline, in arming order, over several turns. */
static uintptr_t BUDGET_NEXT;
static uint64_t BUDGET_TURN[10000];

static void in_order(tw_timer timer, uint64_t deadline_ns, void *userdata)
{
    (void)timer;
    (void)deadline_ns;
    assert_int_equal((uintptr_t)userdata, BUDGET_NEXT);
    assert_true(deadline_ns <= tw_loop_now(LOG.loop));
    BUDGET_TURN[BUDGET_NEXT] = stats_of(LOG.loop).turns;
    BUDGET_NEXT++;
}

static void test_budget(void **state)
{
    (void)state;
    struct event_base *base = new_base();
    tw_loop_config c = fake_config();
    c.budget_callbacks = 1000;
    tw_loop *loop = start(base, &c);
    const uint64_t d = T0 + 7 * MS;
    tw_timer t;
    BUDGET_NEXT = 0;
    for (uintptr_t i = 0; i < 10000; i++)
        assert_int_equal(tw_loop_schedule(loop, d, in_order, (void *)i, &t), 0);
    FAKE = d;
    for (uint64_t turn = 1; turn <= 10; turn++) {
        assert_int_equal(tw_loop_process(loop), 1000);
        assert_int_equal(BUDGET_NEXT, 1000 * turn);
        tw_loop_stats s = stats_of(loop);
        assert_int_equal(s.fired, 1000 * turn);
        if (turn < 10) {
            /* Due timers remain: the loop must run again now. */
            assert_true(next_of(loop) <= tw_loop_now(loop));
            assert_int_equal(s.budget_stops, turn);
        }
    }
    uint64_t next;
    assert_int_equal(tw_loop_next_deadline(loop, &next), TW_ENOENT);
    assert_int_equal(tw_loop_process(loop), 0);
    tw_loop_stats s = stats_of(loop);
    assert_int_equal(s.fired, 10000);
    assert_int_equal(s.budget_stops, 9);
    assert_int_equal(BUDGET_NEXT, 10000);
    finish();
}

static void test_budget_resumes_through_base(void **state)
{
    (void)state;
    /* Embedded and dispatched by its base: after a budget stop the loop's
     * event must come back at once, without anything else happening. */
    struct event_base *base = new_base();
    tw_loop_config c = fake_config();
    c.budget_callbacks = 1000;
    tw_loop *loop = start(base, &c);
    tw_timer t;
    BUDGET_NEXT = 0;
    for (uintptr_t i = 0; i < 3000; i++)
        assert_int_equal(tw_loop_schedule(loop, T0, in_order, (void *)i, &t), 0);
    /* Due at once: only the loop's own event can run them. */
    for (int i = 0; i < 1000 && BUDGET_NEXT < 3000; i++)
        assert_true(event_base_loop(base, EVLOOP_NONBLOCK) >= 0);
    assert_int_equal(BUDGET_NEXT, 3000);
    tw_loop_stats s = stats_of(loop);
    assert_int_equal(s.fired, 3000);
    assert_int_equal(s.budget_stops, 2);
    assert_true(s.wakeups >= 3);
    /* No turn ran more than the budget. */
    size_t run = 1;
    for (size_t i = 1; i < 3000; i++) {
        run = BUDGET_TURN[i] == BUDGET_TURN[i - 1] ? run + 1 : 1;
        assert_true(run <= 1000);
    }
    finish();
}


/* The time budget: each callback costs 10 us of fake time. */
static uint64_t TICK_PER_CALLBACK;

static void costly(tw_timer timer, uint64_t deadline_ns, void *userdata)
{
    in_order(timer, deadline_ns, userdata);
    FAKE += TICK_PER_CALLBACK;
}

static void test_time_budget(void **state)
{
    (void)state;
    struct event_base *base = new_base();
    tw_loop_config c = fake_config();
    c.budget_callbacks = 0;
    c.budget_ns = 1 * MS;
    tw_loop *loop = start(base, &c);
    TICK_PER_CALLBACK = 10 * 1000;
    BUDGET_NEXT = 0;
    tw_timer t;
    for (uintptr_t i = 0; i < 1000; i++)
        assert_int_equal(tw_loop_schedule(loop, T0 + 7 * MS, costly, (void *)i, &t), 0);
    FAKE = T0 + 7 * MS;
    /* The clock is read every 64 callbacks: 640 us, then 1280 us >= 1 ms. */
    for (uint64_t turn = 1; turn <= 7; turn++) {
        uint64_t reads = CLOCK_READS;
        assert_int_equal(tw_loop_process(loop), 128);
        assert_int_equal(BUDGET_NEXT, 128 * turn);
        assert_int_equal(CLOCK_READS, reads + 3);     /* turn start, two checks */
        assert_true(next_of(loop) <= tw_loop_now(loop));
        tw_loop_stats s = stats_of(loop);
        assert_int_equal(s.budget_time_stops, turn);
        assert_int_equal(s.budget_stops, turn);
    }
    /* The rest, in order, and nothing lost. */
    assert_int_equal(tw_loop_process(loop), 1000 - 7 * 128);
    assert_int_equal(BUDGET_NEXT, 1000);
    uint64_t next;
    assert_int_equal(tw_loop_next_deadline(loop, &next), TW_ENOENT);
    tw_loop_stats s = stats_of(loop);
    assert_int_equal(s.fired, 1000);
    assert_int_equal(s.budget_time_stops, 7);
    assert_int_equal(s.budget_stops, 7);
    finish();
}

static void test_time_and_callback_budgets(void **state)
{
    (void)state;
    struct event_base *base = new_base();
    tw_loop_config c = fake_config();
    c.budget_callbacks = 100;           /* chunks of 64, then 36 */
    c.budget_ns = 10 * MS;
    tw_loop *loop = start(base, &c);
    TICK_PER_CALLBACK = 1000;
    BUDGET_NEXT = 0;
    tw_timer t;
    for (uintptr_t i = 0; i < 1000; i++)
        assert_int_equal(tw_loop_schedule(loop, T0 + 2, costly, (void *)i, &t), 0);
    FAKE = T0 + 2;
    size_t fired = 0;
    for (int turn = 0; turn < 10; turn++) {
        int n = tw_loop_process(loop);
        assert_int_equal(n, 100);       /* the callback budget stops first */
        fired += (size_t)n;
    }
    assert_int_equal(fired, 1000);
    tw_loop_stats s = stats_of(loop);
    assert_int_equal(s.budget_time_stops, 0);
    assert_int_equal(s.budget_stops, 9);
    finish();
}

static void test_time_budget_off(void **state)
{
    (void)state;
    struct event_base *base = new_base();
    tw_loop_config c = fake_config();
    c.budget_callbacks = 0;
    c.budget_ns = 0;
    tw_loop *loop = start(base, &c);
    TICK_PER_CALLBACK = SEC;
    BUDGET_NEXT = 0;
    tw_timer t;
    for (uintptr_t i = 0; i < 1000; i++)
        assert_int_equal(tw_loop_schedule(loop, T0, costly, (void *)i, &t), 0);
    uint64_t reads = CLOCK_READS;
    assert_int_equal(tw_loop_process(loop), 1000);
    assert_int_equal(CLOCK_READS, reads + 1);
    assert_int_equal(stats_of(loop).budget_stops, 0);
    finish();
}

/* Cheap callbacks: the chunk doubles from 64 to 1024, so the clock is read
 * after 64, 192, 448, 960, 1984, 3008 and 4032 callbacks. */
static void test_time_budget_chunks_grow(void **state)
{
    (void)state;
    struct event_base *base = new_base();
    tw_loop_config c = fake_config();
    c.budget_callbacks = 0;
    tw_loop *loop = start(base, &c);
    TICK_PER_CALLBACK = 0;
    BUDGET_NEXT = 0;
    tw_timer t;
    for (uintptr_t i = 0; i < 5000; i++)
        assert_int_equal(tw_loop_schedule(loop, T0, costly, (void *)i, &t), 0);
    uint64_t reads = CLOCK_READS;
    assert_int_equal(tw_loop_process(loop), 5000);
    assert_int_equal(CLOCK_READS, reads + 1 + 7);
    assert_int_equal(stats_of(loop).budget_stops, 0);
    finish();
}

/* A callback that overruns the whole budget: the chunk still ends. */
static void test_time_budget_overrun(void **state)
{
    (void)state;
    struct event_base *base = new_base();
    tw_loop_config c = fake_config();
    tw_loop *loop = start(base, &c);
    TICK_PER_CALLBACK = SEC;
    BUDGET_NEXT = 0;
    tw_timer t;
    for (uintptr_t i = 0; i < 200; i++)
        assert_int_equal(tw_loop_schedule(loop, T0, costly, (void *)i, &t), 0);
    assert_int_equal(tw_loop_process(loop), 64);
    assert_int_equal(tw_loop_process(loop), 64);
    assert_int_equal(tw_loop_process(loop), 64);
    assert_int_equal(tw_loop_process(loop), 8);
    assert_int_equal(BUDGET_NEXT, 200);
    assert_int_equal(stats_of(loop).budget_time_stops, 3);
    finish();
}

/* Slack through the loop: never early, within the window, and timers
 * with overlapping windows share turns. */
static uint64_t SLACK_WANTED[4096];
static uint64_t SLACK_NS;

static void slack_fired(tw_timer timer, uint64_t deadline_ns, void *userdata)
{
    record(timer, deadline_ns, userdata);
    uint64_t now = tw_loop_now(LOG.loop);
    uint64_t wanted = SLACK_WANTED[(uintptr_t)userdata];
    assert_true(now >= wanted);
    assert_true(deadline_ns >= wanted && deadline_ns <= wanted + SLACK_NS);
    assert_int_equal(now, deadline_ns);     /* driven to each next deadline */
}

/* Turns a loop driven by hand to each next deadline needs to fire all. */
static uint64_t turns_to_drain(tw_loop *loop)
{
    uint64_t next, turns = 0;
    while (tw_loop_next_deadline(loop, &next) == 0) {
        FAKE = next > FAKE ? next : FAKE;
        assert_true(tw_loop_process(loop) > 0);
        turns++;
    }
    return turns;
}

static uint64_t slack_run(uint64_t slack)
{
    struct event_base *base = new_base();
    tw_loop *loop = start(base, NULL);
    SLACK_NS = slack;
    tw_timer t;
    /* 1000 timers every 100 us over 100 ms. */
    for (uintptr_t i = 0; i < 1000; i++) {
        SLACK_WANTED[i] = T0 + 1 + i * 100 * 1000;
        assert_int_equal(tw_loop_schedule_slack(loop, SLACK_WANTED[i], slack, slack_fired,
                                                (void *)i, &t), 0);
    }
    uint64_t turns = turns_to_drain(loop);
    tw_loop_stats s = stats_of(loop);
    assert_int_equal(s.fired, 1000);
    assert_int_equal(LOG.n, 1000);
    assert_int_equal(s.turns, turns);
    finish();
    return turns;
}

static void test_slack_coalesces_turns(void **state)
{
    (void)state;
    assert_int_equal(slack_run(0), 1000);
    /* A 1 ms window always holds a multiple of 2^19 ns: ~100 ms / 0.52 ms. */
    uint64_t turns = slack_run(MS);
    assert_true(turns <= 100 * MS / (UINT64_C(1) << 19) + 2);
    assert_true(turns >= 100 * MS / (UINT64_C(1) << 20));
    /* 10 ms of slack: fewer still. */
    assert_true(slack_run(10 * MS) <= 100 * MS / (UINT64_C(1) << 22) + 2);
}

static void test_slack_event_and_reschedule(void **state)
{
    (void)state;
    struct event_base *base = new_base();
    tw_loop *loop = start(base, NULL);
    tw_timer a, b;
    /* The event follows a slack timer's filed instant. */
    assert_int_equal(tw_loop_schedule_slack(loop, T0 + 3 * MS, MS, record, (void *)1, &a), 0);
    uint64_t f = next_of(loop);
    assert_true(f >= T0 + 3 * MS && f <= T0 + 4 * MS);
    assert_int_equal(stats_of(loop).rearms, 1);
    /* The slack survives a reschedule through the loop. */
    assert_int_equal(tw_loop_reschedule(loop, a, T0 + 9 * MS + 17), 0);
    f = next_of(loop);
    assert_true(f >= T0 + 9 * MS + 17 && f <= T0 + 10 * MS + 17 && f % (1 << 19) == 0);
    /* Slack 0 is exact; bad input fails with the callback never run. */
    assert_int_equal(tw_loop_schedule_slack(loop, T0 + 2 * MS + 3, 0, record, (void *)2, &b), 0);
    assert_int_equal(next_of(loop), T0 + 2 * MS + 3);
    b = 77;
    assert_int_equal(tw_loop_schedule_slack(NULL, T0, 1, record, NULL, &b), TW_EINVAL);
    assert_int_equal(b, 0);
    b = 77;
    assert_int_equal(tw_loop_schedule_slack(loop, T0, 1, NULL, NULL, &b), TW_EINVAL);
    assert_int_equal(b, 0);
    assert_int_equal(tw_loop_schedule_slack(loop, T0, 1, record, NULL, NULL), TW_EINVAL);
    FAKE = T0 + 20 * MS;
    assert_int_equal(tw_loop_process(loop), 2);
    assert_int_equal(LOG.ids[0], 2);
    assert_int_equal(LOG.ids[1], 1);
    finish();
}

/* Reentrancy: a callback that frees the loop, or cancels another timer. */
static void free_loop(tw_timer timer, uint64_t deadline_ns, void *userdata)
{
    record(timer, deadline_ns, userdata);
    /* Queued from the loop's thread, never run: reported at the free. */
    assert_int_equal(tw_loop_post(LOG.loop, posted, (void *)9), 0);
    tw_loop_free(LOG.loop);
    LOG.loop = NULL;
}

static void test_free_from_callback(void **state)
{
    (void)state;
    struct event_base *base = new_base();
    tw_loop *loop = start(base, NULL);
    tw_timer t;
    arm(loop, T0 + 1 * MS, 1);
    assert_int_equal(tw_loop_schedule(loop, T0 + 2 * MS, free_loop, (void *)2, &t), 0);
    arm(loop, T0 + 2 * MS, 3);
    arm(loop, T0 + 3 * MS, 4);
    arm(loop, T0 + 1 * SEC, 5);
    FAKE = T0 + 10 * MS;
    /* The loop is gone when the turn ends; nothing after the free fires. */
    assert_int_equal(tw_loop_process(loop), 2);
    assert_int_equal(LOG.n, 2);
    assert_int_equal(LOG.ids[0], 1);
    assert_int_equal(LOG.ids[1], 2);
    assert_int_equal(POSTS.n, 1);
    assert_int_equal(POSTS.ids[0], 9);
    assert_int_equal(POSTS.status[0], TW_ECANCELED);
    assert_ptr_equal(POSTS.loops[0], loop);
    /* The caller's base outlives the loop and holds nothing of it. */
    assert_int_equal(event_base_loop(base, EVLOOP_NONBLOCK), 1);
    drop_base();
    assert_int_equal(LOG.n, 2);
}

static void test_free_from_callback_during_run(void **state)
{
    (void)state;
    /* On its own base, inside tw_loop_run: the base goes with the loop, so
     * it must not be freed under its own dispatch. */
    tw_loop *loop = start(NULL, NULL);
    tw_timer t;
    arm(loop, T0 - 1, 1);
    assert_int_equal(tw_loop_schedule(loop, T0, free_loop, (void *)2, &t), 0);
    arm(loop, T0, 3);
    (void)tw_loop_run(loop);
    assert_int_equal(LOG.n, 2);
    assert_int_equal(LOG.ids[1], 2);
    assert_int_equal(POSTS.n, 1);
    assert_int_equal(POSTS.status[0], TW_ECANCELED);
}

static void free_from_fn(tw_loop *loop, int status, void *userdata)
{
    posted(loop, status, userdata);
    tw_loop_free(loop);
    LOG.loop = NULL;
}

static void test_free_from_posted_function(void **state)
{
    (void)state;
    struct event_base *base = new_base();
    tw_loop *loop = start(base, NULL);
    assert_int_equal(tw_loop_post(loop, posted, (void *)1), 0);
    assert_int_equal(tw_loop_post(loop, free_from_fn, (void *)2), 0);
    assert_int_equal(tw_loop_post(loop, posted, (void *)3), 0);
    assert_int_equal(tw_loop_post(loop, posted, (void *)4), 0);
    (void)tw_loop_process(loop);
    /* Before the free: run.  After it: run in that turn or cancelled, but
     * each exactly once. */
    assert_int_equal(POSTS.n, 4);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(POSTS.ids[i], i + 1);
        if (i < 2)
            assert_int_equal(POSTS.status[i], 0);
        else
            assert_true(POSTS.status[i] == 0 || POSTS.status[i] == TW_ECANCELED);
        assert_ptr_equal(POSTS.loops[i], loop);
    }
    assert_int_equal(event_base_loop(base, EVLOOP_NONBLOCK), 1);
    drop_base();
}

static unsigned CALLER_EVENTS;

static void caller_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    CALLER_EVENTS++;
}

static void test_embedded_never_dispatches(void **state)
{
    (void)state;
    /* The caller's base is the caller's to dispatch: an active event of
     * the caller's must not run from inside the loop's calls. */
    struct event_base *base = new_base();
    struct event *ev = event_new(base, -1, 0, caller_event, NULL);
    assert_non_null(ev);
    CALLER_EVENTS = 0;
    event_active(ev, EV_TIMEOUT, 0);
    tw_loop *loop = start(base, NULL);
    arm(loop, T0, 1);
    assert_int_equal(tw_loop_post(loop, posted, NULL), 0);
    assert_int_equal(tw_loop_process(loop), 1);
    assert_int_equal(tw_loop_post_wait(loop, posted, NULL, 0), 0);
    assert_int_equal(tw_loop_process(loop), 0);
    assert_int_equal(POSTS.n, 2);
    drop_loop();
    assert_int_equal(CALLER_EVENTS, 0);
    assert_true(event_base_loop(base, EVLOOP_NONBLOCK) >= 0);
    assert_int_equal(CALLER_EVENTS, 1);
    event_free(ev);
    drop_base();
}

/* The caller's own code on the caller's base, between the loop's turns:
 * 200 ms of it pass, then it arms a relative timer and a connection's
 * timers.  In a posted function, inside a turn, the same calls count from
 * the turn's time instead. */
struct fresh {
    tw_loop *loop;
    tw_conn *conn;
    uint64_t now;               /* tw_loop_now as the caller saw it */
    uint32_t conn_events;
    uint64_t conn_now;
};

static void fresh_arm(struct fresh *f)
{
    FAKE += 200 * MS;
    tw_timer t;
    assert_int_equal(tw_loop_schedule_relative(f->loop, 100 * MS, record, (void *)1, &t), 0);
    assert_int_equal(tw_conn_touch(f->conn), 0);
    assert_int_equal(tw_conn_arm_in(f->conn, TW_CONN_ACK_DELAY, 25 * MS), 0);
    f->now = tw_loop_now(f->loop);
}

static void fresh_caller_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    fresh_arm(arg);
}

static void fresh_posted(tw_loop *loop, int status, void *userdata)
{
    (void)loop;
    assert_int_equal(status, 0);
    fresh_arm(userdata);
}

static void fresh_conn_event(const tw_conn_event *e, void *userdata)
{
    struct fresh *f = userdata;
    f->conn_events |= e->events[0];
    f->conn_now = e->now_ns;
}

static void test_relative_outside_a_turn_reads_the_clock(void **state)
{
    (void)state;
    struct event_base *base = new_base();
    tw_loop *loop = start(base, NULL);
    struct fresh f = {.loop = loop};
    assert_int_equal(tw_conn_new(loop, 9, fresh_conn_event, &f, &f.conn), 0);
    assert_int_equal(tw_conn_set_idle_timeout(f.conn, 2 * SEC), 0);
    FAKE = T0 + 50 * MS;
    assert_int_equal(tw_loop_process(loop), 0);
    uint64_t turns = stats_of(loop).turns;

    struct event *ev = event_new(base, -1, 0, fresh_caller_event, &f);
    assert_non_null(ev);
    event_active(ev, EV_TIMEOUT, 0);
    assert_true(event_base_loop(base, EVLOOP_NONBLOCK) >= 0);
    event_free(ev);
    /* No turn ran; the calls counted from T0 + 250 ms, not T0 + 50 ms. */
    assert_int_equal(stats_of(loop).turns, turns);
    const uint64_t t = T0 + 250 * MS;
    assert_int_equal(f.now, t);
    assert_int_equal(tw_loop_now(loop), t);
    uint64_t d = 0;
    assert_int_equal(tw_conn_deadline(f.conn, TW_CONN_IDLE, &d), 0);
    assert_int_equal(d, t + 2 * SEC);
    assert_int_equal(tw_conn_deadline(f.conn, TW_CONN_ACK_DELAY, &d), 0);
    assert_int_equal(d, t + 25 * MS);
    assert_int_equal(next_of(loop), t + 25 * MS);

    /* Each fires at its deadline counted from t, none before. */
    FAKE = t + 25 * MS - 1;
    assert_int_equal(tw_loop_process(loop), 0);
    assert_int_equal(f.conn_events, 0);
    FAKE = t + 25 * MS;
    assert_int_equal(tw_loop_process(loop), 1);
    assert_int_equal(f.conn_events, TW_CONN_BIT(TW_CONN_ACK_DELAY));
    FAKE = t + 100 * MS - 1;
    assert_int_equal(tw_loop_process(loop), 0);
    assert_int_equal(LOG.n, 0);
    FAKE = t + 100 * MS;
    assert_int_equal(tw_loop_process(loop), 1);
    assert_int_equal(LOG.n, 1);
    assert_int_equal(LOG.deadlines[0], t + 100 * MS);
    f.conn_events = 0;
    FAKE = t + 2 * SEC - 1;
    assert_true(tw_loop_process(loop) >= 0);
    assert_int_equal(f.conn_events, 0);
    FAKE = t + 2 * SEC;
    assert_true(tw_loop_process(loop) >= 0);
    assert_int_equal(f.conn_events, TW_CONN_BIT(TW_CONN_IDLE));
    assert_int_equal(f.conn_now, t + 2 * SEC);

    /* Inside a turn (a posted function), the turn's time stays the time. */
    const uint64_t u = T0 + 10 * SEC;
    FAKE = u;
    LOG.n = 0;
    assert_int_equal(tw_loop_post(loop, fresh_posted, &f), 0);
    assert_int_equal(tw_loop_process(loop), 0);
    assert_int_equal(FAKE, u + 200 * MS);
    assert_int_equal(f.now, u);
    assert_int_equal(tw_conn_deadline(f.conn, TW_CONN_IDLE, &d), 0);
    assert_int_equal(d, u + 2 * SEC);
    assert_int_equal(tw_conn_deadline(f.conn, TW_CONN_ACK_DELAY, &d), 0);
    assert_int_equal(d, u + 25 * MS);
    FAKE = u + 100 * MS;
    assert_true(tw_loop_process(loop) >= 1);
    assert_int_equal(LOG.n, 1);
    assert_int_equal(LOG.deadlines[0], u + 100 * MS);
    tw_conn_free(f.conn);
    finish();
}

static tw_timer VICTIM, MOVED;
static int CANCEL_RESULT;

static void cancel_other(tw_timer timer, uint64_t deadline_ns, void *userdata)
{
    record(timer, deadline_ns, userdata);
    CANCEL_RESULT = tw_loop_cancel(LOG.loop, VICTIM);
    assert_int_equal(tw_loop_reschedule(LOG.loop, MOVED, tw_loop_now(LOG.loop) + SEC), 0);
}

static void test_cancel_other_from_callback(void **state)
{
    (void)state;
    struct event_base *base = new_base();
    tw_loop *loop = start(base, NULL);
    tw_timer t;
    assert_int_equal(tw_loop_schedule(loop, T0 + 10 * MS, cancel_other, (void *)1, &t), 0);
    VICTIM = arm(loop, T0 + 10 * MS, 2);     /* due in the same turn, after */
    MOVED = arm(loop, T0 + 11 * MS, 3);
    arm(loop, T0 + 12 * MS, 4);
    FAKE = T0 + 20 * MS;
    CANCEL_RESULT = 1;
    assert_int_equal(tw_loop_process(loop), 2);
    assert_int_equal(CANCEL_RESULT, 0);
    assert_int_equal(LOG.n, 2);
    assert_int_equal(LOG.ids[1], 4);
    assert_int_equal(tw_loop_cancel(loop, VICTIM), TW_ENOENT);
    assert_int_equal(next_of(loop), T0 + 20 * MS + SEC);
    FAKE = T0 + 20 * MS + SEC;
    assert_int_equal(tw_loop_process(loop), 1);
    assert_int_equal(LOG.ids[2], 3);
    finish();
}

/* tw_loop_process counts the callbacks its turn ran.  A connection whose
 * wheel timer went off but which was freed before its turn to be processed
 * (by another connection's callback, by a timer callback of the same turn,
 * or with the loop) runs nothing, and counts nowhere. */
static tw_conn *DOOMED;
static unsigned CONN_CALLS;

static void free_doomed_conn(const tw_conn_event *e, void *userdata)
{
    (void)e;
    (void)userdata;
    CONN_CALLS++;
    tw_conn_free(DOOMED);
    DOOMED = NULL;
}

static void free_doomed_timer(tw_timer timer, uint64_t deadline_ns, void *userdata)
{
    (void)timer;
    (void)deadline_ns;
    (void)userdata;
    tw_conn_free(DOOMED);
    DOOMED = NULL;
}

static void free_loop_timer(tw_timer timer, uint64_t deadline_ns, void *userdata)
{
    (void)timer;
    (void)deadline_ns;
    tw_loop_free(userdata);
}

static void test_process_counts_no_freed_connection(void **state)
{
    (void)state;
    tw_loop *loop = start(NULL, NULL);
    tw_conn *a, *b;
    CONN_CALLS = 0;
    /* a and b due in one turn; a's callback frees b first. */
    assert_int_equal(tw_conn_new(loop, 1, free_doomed_conn, NULL, &a), 0);
    assert_int_equal(tw_conn_new(loop, 2, free_doomed_conn, NULL, &b), 0);
    assert_int_equal(tw_conn_arm(a, TW_CONN_IDLE, T0 + MS), 0);
    assert_int_equal(tw_conn_arm(b, TW_CONN_IDLE, T0 + MS), 0);
    DOOMED = b;
    FAKE = T0 + MS;
    assert_int_equal(tw_loop_process(loop), 1);
    assert_int_equal(CONN_CALLS, 1);
    assert_int_equal(stats_of(loop).fired, 1);

    /* b's wheel timer goes off before a timer of the same deadline that
     * frees it: only that timer ran. */
    assert_int_equal(tw_conn_new(loop, 2, free_doomed_conn, NULL, &b), 0);
    assert_int_equal(tw_conn_arm(b, TW_CONN_IDLE, T0 + 2 * MS), 0);
    tw_timer t;
    assert_int_equal(tw_loop_schedule(loop, T0 + 2 * MS, free_doomed_timer, NULL, &t), 0);
    DOOMED = b;
    FAKE = T0 + 2 * MS;
    assert_int_equal(tw_loop_process(loop), 1);
    assert_int_equal(CONN_CALLS, 1);
    assert_int_equal(stats_of(loop).fired, 2);
    tw_conn_stats cs;
    cs.struct_size = sizeof(cs);
    assert_int_equal(tw_conn_stats_get(loop, &cs), 0);
    assert_int_equal(cs.wakeups, 1);

    /* The loop itself freed by a timer after a's wheel timer went off. */
    assert_int_equal(tw_conn_arm(a, TW_CONN_IDLE, T0 + 3 * MS), 0);
    assert_int_equal(tw_loop_schedule(loop, T0 + 3 * MS, free_loop_timer, loop, &t), 0);
    FAKE = T0 + 3 * MS;
    assert_int_equal(tw_loop_process(loop), 1);
    LOG.loop = NULL;
    assert_int_equal(CONN_CALLS, 1);
}

static void test_free_with_timers_armed(void **state)
{
    (void)state;
    struct event_base *base = new_base();
    tw_loop *loop = start(base, NULL);
    for (uintptr_t i = 0; i < 10000; i++)
        arm(loop, T0 + i * MS, i);
    FAKE = T0 + 20 * SEC;     /* all due, none run */
    drop_loop();
    assert_int_equal(LOG.n, 0);
    assert_int_equal(event_base_loop(base, EVLOOP_NONBLOCK), 1);
    drop_base();
    /* The same on a base of its own. */
    loop = start(NULL, NULL);
    for (uintptr_t i = 0; i < 1000; i++)
        arm(loop, T0 - i, i);
    drop_loop();
    assert_int_equal(LOG.n, 0);
}

static void test_free_with_posts_pending(void **state)
{
    (void)state;
    struct event_base *base = new_base();
    tw_loop *loop = start(base, NULL);
    for (uintptr_t i = 0; i < 5; i++)
        assert_int_equal(tw_loop_post(loop, posted, (void *)i), 0);
    assert_int_equal(tw_loop_post_wait(loop, posted, (void *)5, SEC), 0);
    assert_int_equal(tw_loop_post_schedule(loop, T0, record, (void *)6), 0);
    FAKE = T0 + SEC;
    drop_loop();
    /* Each exactly once, cancelled; the queued timer never armed, never ran. */
    assert_int_equal(POSTS.n, 6);
    unsigned seen = 0;
    for (size_t i = 0; i < POSTS.n; i++) {
        assert_int_equal(POSTS.status[i], TW_ECANCELED);
        assert_ptr_equal(POSTS.loops[i], loop);
        assert_true(POSTS.ids[i] < 6);
        assert_false(seen & (1u << POSTS.ids[i]));
        seen |= 1u << POSTS.ids[i];
    }
    assert_int_equal(LOG.n, 0);
    drop_base();
    /* On a base of its own, with a full inbox. */
    tw_loop_config c = fake_config();
    c.inbox_capacity = 8;
    loop = start(NULL, &c);
    int r;
    uintptr_t accepted = 0;
    while ((r = tw_loop_post(loop, posted, (void *)accepted)) == 0)
        accepted++;
    assert_int_equal(r, TW_EAGAIN);
    assert_int_equal(accepted, 8);
    drop_loop();
    assert_int_equal(POSTS.n, 8);
    for (size_t i = 0; i < POSTS.n; i++)
        assert_int_equal(POSTS.status[i], TW_ECANCELED);
}

static void test_bad_input(void **state)
{
    (void)state;
    tw_loop *loop = NULL;
    tw_loop_config c = fake_config();
    assert_int_equal(tw_loop_new(NULL, NULL, NULL), TW_EINVAL);
    assert_int_equal(tw_loop_new(NULL, &c, NULL), TW_EINVAL);
    const size_t bad_sizes[] = {0, 1, sizeof(c) - 1, sizeof(c) + 8};
    for (size_t i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++) {
        c = fake_config();
        c.struct_size = bad_sizes[i];
        assert_int_equal(tw_loop_new(NULL, &c, &loop), TW_EINVAL);
    }

    struct event_base *base = new_base();
    loop = start(base, NULL);
    tw_timer t = 77;
    uint64_t v = 0;
    tw_loop_stats s;
    memset(&s, 0, sizeof(s));
    s.struct_size = sizeof(s);

    /* A NULL loop. */
    assert_int_equal(tw_loop_run(NULL), TW_EINVAL);
    assert_int_equal(tw_loop_stop(NULL), TW_EINVAL);
    assert_int_equal(tw_loop_process(NULL), TW_EINVAL);
    assert_int_equal(tw_loop_next_deadline(NULL, &v), TW_EINVAL);
    assert_int_equal(tw_loop_schedule(NULL, T0, record, NULL, &t), TW_EINVAL);
    assert_int_equal(tw_loop_schedule_relative(NULL, 1, record, NULL, &t), TW_EINVAL);
    assert_int_equal(tw_loop_cancel(NULL, 1), TW_EINVAL);
    assert_int_equal(tw_loop_reschedule(NULL, 1, T0), TW_EINVAL);
    assert_int_equal(tw_loop_post(NULL, posted, NULL), TW_EINVAL);
    assert_int_equal(tw_loop_post_wait(NULL, posted, NULL, 0), TW_EINVAL);
    assert_int_equal(tw_loop_post_schedule(NULL, T0, record, NULL), TW_EINVAL);
    assert_int_equal(tw_loop_post_cancel(NULL, 1), TW_EINVAL);
    assert_int_equal(tw_loop_post_reschedule(NULL, 1, T0), TW_EINVAL);
    assert_int_equal(tw_loop_stats_get(NULL, &s), TW_EINVAL);
    (void)tw_loop_now(NULL);
    tw_loop_free(NULL);

    /* NULL callbacks and out-parameters. */
    assert_int_equal(tw_loop_schedule(loop, T0, NULL, NULL, &t), TW_EINVAL);
    assert_int_equal(tw_loop_schedule(loop, T0, record, NULL, NULL), TW_EINVAL);
    assert_int_equal(tw_loop_schedule_relative(loop, 1, NULL, NULL, &t), TW_EINVAL);
    assert_int_equal(tw_loop_schedule_relative(loop, 1, record, NULL, NULL), TW_EINVAL);
    assert_int_equal(tw_loop_post(loop, NULL, NULL), TW_EINVAL);
    assert_int_equal(tw_loop_post_wait(loop, NULL, NULL, SEC), TW_EINVAL);
    assert_int_equal(tw_loop_post_schedule(loop, T0, NULL, NULL), TW_EINVAL);
    assert_int_equal(tw_loop_next_deadline(loop, NULL), TW_EINVAL);
    assert_int_equal(tw_loop_stats_get(loop, NULL), TW_EINVAL);

    /* Embedded: the caller dispatches the base, never tw_loop_run. */
    assert_int_equal(tw_loop_run(loop), TW_EINVAL);

    /* Stale and never-valid handles. */
    assert_int_equal(tw_loop_cancel(loop, 0), TW_ENOENT);
    assert_int_equal(tw_loop_cancel(loop, 12345), TW_ENOENT);
    assert_int_equal(tw_loop_reschedule(loop, 0, T0), TW_ENOENT);
    assert_int_equal(tw_loop_reschedule(loop, UINT64_MAX, T0), TW_ENOENT);

    /* Stats smaller than their first field. */
    s.struct_size = 0;
    assert_int_equal(tw_loop_stats_get(loop, &s), TW_EINVAL);
    s.struct_size = sizeof(size_t);
    assert_int_equal(tw_loop_stats_get(loop, &s), TW_EINVAL);

    /* The loop still works, and no failed call's callback ever runs. */
    FAKE = T0 + SEC;
    assert_int_equal(tw_loop_process(loop), 0);
    assert_int_equal(LOG.n, 0);
    assert_int_equal(POSTS.n, 0);
    arm(loop, T0, 1);
    assert_int_equal(tw_loop_process(loop), 1);
    finish();
}

static void test_bad_tick(void **state)
{
    (void)state;
    /* As tw_wheel_config: outside TW_TICK_MIN_NS .. TW_TICK_MAX_NS. */
    const uint64_t bad_ticks[] = {1, TW_TICK_MIN_NS - 1, TW_TICK_MAX_NS + 1, UINT64_MAX};
    for (size_t i = 0; i < sizeof(bad_ticks) / sizeof(bad_ticks[0]); i++) {
        struct event_base *base = i % 2 ? new_base() : NULL;
        tw_loop_config c = fake_config();
        tw_loop *loop = NULL;
        c.tick_ns = bad_ticks[i];
        assert_int_equal(tw_loop_new(base, &c, &loop), TW_EINVAL);
        drop_base();
    }
    const uint64_t good_ticks[] = {TW_TICK_MIN_NS, 10 * MS, TW_TICK_MAX_NS};
    for (size_t i = 0; i < sizeof(good_ticks) / sizeof(good_ticks[0]); i++) {
        tw_loop_config c = fake_config();
        c.tick_ns = good_ticks[i];
        tw_loop *loop = start(NULL, &c);
        arm(loop, T0 + 1, 1);
        FAKE = T0 + 1;
        assert_int_equal(tw_loop_process(loop), 1);
        drop_loop();
    }
}

static void test_stats_struct_size(void **state)
{
    (void)state;
    struct event_base *base = new_base();
    tw_loop *loop = start(base, NULL);
    arm(loop, T0, 1);
    FAKE = T0 + 5 * MS;
    assert_int_equal(tw_loop_process(loop), 1);
    /* An older, shorter struct: only its fields are written. */
    struct {
        tw_loop_stats s;
        uint64_t guard;
    } box;
    memset(&box, 0xab, sizeof(box));
    box.s.struct_size = offsetof(tw_loop_stats, turns) + sizeof(uint64_t);
    assert_int_equal(tw_loop_stats_get(loop, &box.s), 0);
    assert_int_equal(box.s.now_ns, T0 + 5 * MS);
    assert_int_equal(box.s.turns, 1);
    assert_int_equal(box.s.wakeups, UINT64_C(0xabababababababab));
    assert_int_equal(box.guard, UINT64_C(0xabababababababab));
    /* The full struct: nothing past it. */
    memset(&box, 0xab, sizeof(box));
    box.s.struct_size = sizeof(box.s);
    assert_int_equal(tw_loop_stats_get(loop, &box.s), 0);
    assert_int_equal(box.s.struct_size, sizeof(box.s));
    assert_int_equal(box.s.fired, 1);
    assert_int_equal(box.guard, UINT64_C(0xabababababababab));
    finish();
}

static void test_stats_counts(void **state)
{
    (void)state;
    struct event_base *base = new_base();
    tw_loop *loop = start(base, NULL);
    tw_loop_stats s = stats_of(loop);
    assert_int_equal(s.turns, 0);
    assert_int_equal(s.fired, 0);
    assert_int_equal(s.inbox_depth, 0);
    arm(loop, T0 + 10 * MS, 1);
    arm(loop, T0 + 12 * MS, 2);
    FAKE = T0 + 15 * MS;
    assert_int_equal(tw_loop_process(loop), 2);
    FAKE = T0 + 16 * MS;
    assert_int_equal(tw_loop_process(loop), 0);
    s = stats_of(loop);
    assert_int_equal(s.turns, 2);
    assert_int_equal(s.fired, 2);
    assert_int_equal(s.wakeups, 0);          /* by hand, not the timer event */
    assert_int_equal(s.budget_stops, 0);
    /* Lateness is turn start minus deadline: 5 ms and 3 ms. */
    assert_int_equal(s.late_max_ns, 5 * MS);
    /* Percentiles within 1 %: the median is the earlier, p99 the later. */
    assert_true(s.late_p50_ns >= 3 * MS - 30000 && s.late_p50_ns <= 3 * MS + 30000);
    assert_true(s.late_p99_ns >= 5 * MS - 50000 && s.late_p99_ns <= 5 * MS);
    assert_true(s.late_p50_ns <= s.late_p99_ns);
    assert_int_equal(s.clock_backwards, 0);
    finish();
}

static void test_max_timers(void **state)
{
    (void)state;
    struct event_base *base = new_base();
    tw_loop_config c = fake_config();
    c.max_timers = 3;
    tw_loop *loop = start(base, &c);
    arm(loop, T0 + 1 * MS, 1);
    arm(loop, T0 + 2 * MS, 2);
    arm(loop, T0 + 3 * MS, 3);
    tw_timer t = 77;
    assert_int_equal(tw_loop_schedule(loop, T0, record, (void *)4, &t), TW_ENOMEM);
    assert_int_equal(t, 0);
    assert_int_equal(tw_loop_schedule_relative(loop, 0, record, (void *)5, &t), TW_ENOMEM);
    FAKE = T0 + 1 * MS;
    assert_int_equal(tw_loop_process(loop), 1);
    arm(loop, T0 + 4 * MS, 6);
    FAKE = T0 + SEC;
    assert_int_equal(tw_loop_process(loop), 3);
    assert_int_equal(LOG.n, 4);
    for (size_t i = 0; i < LOG.n; i++)
        assert_true(LOG.ids[i] != 4 && LOG.ids[i] != 5);
    /* A posted schedule past the limit is dropped at the turn: never runs. */
    arm(loop, T0 + 2 * SEC, 7);
    arm(loop, T0 + 2 * SEC, 8);
    assert_int_equal(tw_loop_post_schedule(loop, T0, record, (void *)9), 0);
    assert_int_equal(tw_loop_post_schedule(loop, T0, record, (void *)10), 0);
    assert_int_equal(tw_loop_process(loop), 1);
    FAKE = T0 + 3 * SEC;
    assert_int_equal(tw_loop_process(loop), 2);
    assert_int_equal(LOG.n, 7);
    assert_int_equal(LOG.ids[4], 9);
    assert_int_equal(LOG.ids[5], 7);
    assert_int_equal(LOG.ids[6], 8);
    finish();
}

static void test_post_runs_once_at_next_process(void **state)
{
    (void)state;
    struct event_base *base = new_base();
    tw_loop *loop = start(base, NULL);
    for (uintptr_t i = 0; i < 10; i++)
        assert_int_equal(tw_loop_post(loop, posted, (void *)i), 0);
    assert_int_equal(POSTS.n, 0);
    assert_int_equal(stats_of(loop).inbox_depth, 10);
    /* Functions run before the turn's timers, and count none. */
    arm(loop, T0, 100);
    assert_int_equal(tw_loop_process(loop), 1);
    assert_int_equal(POSTS.n, 10);
    for (size_t i = 0; i < 10; i++) {
        assert_int_equal(POSTS.ids[i], i);       /* FIFO from one thread */
        assert_int_equal(POSTS.status[i], 0);
        assert_ptr_equal(POSTS.loops[i], loop);
    }
    assert_int_equal(tw_loop_process(loop), 0);
    assert_int_equal(POSTS.n, 10);
    tw_loop_stats s = stats_of(loop);
    assert_int_equal(s.inbox_run, 10);
    assert_int_equal(s.inbox_depth, 0);
    assert_int_equal(s.inbox_high_water, 10);
    assert_int_equal(s.inbox_refused, 0);
    drop_loop();
    assert_int_equal(POSTS.n, 10);           /* nothing left to cancel */
    drop_base();
}

static void test_post_wakes_embedded_base(void **state)
{
    (void)state;
    /* A post must make the caller's base run the loop: no polling. */
    struct event_base *base = new_base();
    tw_loop *loop = start(base, NULL);
    assert_int_equal(tw_loop_post(loop, posted, (void *)1), 0);
    for (int i = 0; i < 100 && POSTS.n == 0; i++)
        assert_true(event_base_loop(base, EVLOOP_NONBLOCK) >= 0);
    assert_int_equal(POSTS.n, 1);
    assert_int_equal(POSTS.status[0], 0);
    /* A timer armed from outside a turn arms the base's event too. */
    arm(loop, T0, 2);
    for (int i = 0; i < 100 && LOG.n == 0; i++)
        assert_true(event_base_loop(base, EVLOOP_NONBLOCK) >= 0);
    assert_int_equal(LOG.n, 1);
    tw_loop_stats s = stats_of(loop);
    assert_true(s.turns >= 2);
    assert_true(s.wakeups >= 1);
    assert_int_equal(s.inbox_run, 1);
    finish();
}

static void test_inbox_full(void **state)
{
    (void)state;
    struct event_base *base = new_base();
    tw_loop_config c = fake_config();
    c.inbox_capacity = 8;
    tw_loop *loop = start(base, &c);
    for (uintptr_t i = 0; i < 8; i++)
        assert_int_equal(tw_loop_post(loop, posted, (void *)i), 0);
    tw_loop_stats s = stats_of(loop);
    assert_int_equal(s.inbox_depth, 8);
    assert_int_equal(s.inbox_high_water, 8);
    assert_int_equal(s.inbox_refused, 0);
    /* Full: refused, nothing queued, each refusal counted. */
    assert_int_equal(tw_loop_post(loop, posted, (void *)100), TW_EAGAIN);
    assert_int_equal(stats_of(loop).inbox_refused, 1);
    assert_int_equal(tw_loop_post_wait(loop, posted, (void *)101, 0), TW_ETIMEDOUT);
    assert_int_equal(stats_of(loop).inbox_refused, 2);
    assert_int_equal(tw_loop_post_wait(loop, posted, (void *)102, 1 * MS), TW_ETIMEDOUT);
    assert_int_equal(stats_of(loop).inbox_refused, 3);
    /* Timer commands share the inbox. */
    assert_int_equal(tw_loop_post_schedule(loop, T0, record, (void *)103), TW_EAGAIN);
    assert_int_equal(stats_of(loop).inbox_refused, 4);
    s = stats_of(loop);
    assert_int_equal(s.inbox_depth, 8);
    assert_int_equal(s.inbox_high_water, 8);
    assert_int_equal(tw_loop_process(loop), 0);
    assert_int_equal(POSTS.n, 8);
    for (size_t i = 0; i < 8; i++) {
        assert_int_equal(POSTS.ids[i], i);
        assert_int_equal(POSTS.status[i], 0);
    }
    assert_int_equal(LOG.n, 0);
    s = stats_of(loop);
    assert_int_equal(s.inbox_depth, 0);
    assert_int_equal(s.inbox_run, 8);
    assert_int_equal(s.inbox_refused, 4);
    /* Room again. */
    assert_int_equal(tw_loop_post_wait(loop, posted, (void *)8, 0), 0);
    assert_int_equal(tw_loop_post(loop, posted, (void *)9), 0);
    assert_int_equal(tw_loop_process(loop), 0);
    assert_int_equal(POSTS.n, 10);
    assert_int_equal(POSTS.ids[9], 9);
    assert_int_equal(stats_of(loop).inbox_high_water, 8);
    drop_loop();
    assert_int_equal(POSTS.n, 10);
    drop_base();
}

static void test_inbox_capacity_rounds_up(void **state)
{
    (void)state;
    const uint32_t asked[] = {5, 0};       /* 0: the default, 4096 */
    const uint32_t want[] = {8, 4096};
    for (size_t k = 0; k < 2; k++) {
        struct event_base *base = new_base();
        tw_loop_config c = fake_config();
        if (asked[k])
            c.inbox_capacity = asked[k];
        tw_loop *loop = start(base, &c);
        uint32_t accepted = 0;
        int r = 0;
        while (accepted <= want[k] && (r = tw_loop_post(loop, posted, NULL)) == 0)
            accepted++;
        assert_int_equal(accepted, want[k]);
        assert_int_equal(r, TW_EAGAIN);
        assert_int_equal(tw_loop_process(loop), 0);
        assert_int_equal(POSTS.n, want[k]);
        finish();
    }
}

static unsigned SELF_MOVES;

static void move_self_once(tw_timer timer, uint64_t deadline_ns, void *userdata)
{
    record(timer, deadline_ns, userdata);
    assert_int_not_equal(timer, 0);
    if (SELF_MOVES++ == 0)
        assert_int_equal(tw_loop_reschedule(LOG.loop, timer, deadline_ns + 10 * MS), 0);
}

static void test_post_timer_commands(void **state)
{
    (void)state;
    struct event_base *base = new_base();
    tw_loop *loop = start(base, NULL);
    uint64_t next;

    /* post_schedule: armed at the next turn, fires at its deadline. */
    assert_int_equal(tw_loop_post_schedule(loop, T0 + 10 * MS, record, (void *)1), 0);
    assert_int_equal(tw_loop_process(loop), 0);
    assert_int_equal(next_of(loop), T0 + 10 * MS);
    FAKE = T0 + 10 * MS - 1;
    assert_int_equal(tw_loop_process(loop), 0);
    FAKE = T0 + 10 * MS;
    assert_int_equal(tw_loop_process(loop), 1);
    assert_int_equal(LOG.ids[0], 1);
    assert_int_not_equal(LOG.timers[0], 0);

    /* The inbox runs before the timers: a past deadline fires in that turn. */
    FAKE = T0 + 20 * MS;
    assert_int_equal(tw_loop_post_schedule(loop, T0 + 5 * MS, record, (void *)2), 0);
    assert_int_equal(LOG.n, 1);
    assert_int_equal(tw_loop_process(loop), 1);
    assert_int_equal(LOG.ids[1], 2);

    /* post_cancel: still armed until the next turn. */
    tw_timer t = arm(loop, T0 + 100 * MS, 3);
    assert_int_equal(tw_loop_post_cancel(loop, t), 0);
    assert_int_equal(next_of(loop), T0 + 100 * MS);
    assert_int_equal(tw_loop_process(loop), 0);
    assert_int_equal(tw_loop_next_deadline(loop, &next), TW_ENOENT);
    assert_int_equal(tw_loop_cancel(loop, t), TW_ENOENT);

    /* post_reschedule: moved at the next turn. */
    t = arm(loop, T0 + 100 * MS, 4);
    assert_int_equal(tw_loop_post_reschedule(loop, t, T0 + 50 * MS), 0);
    assert_int_equal(next_of(loop), T0 + 100 * MS);
    assert_int_equal(tw_loop_process(loop), 0);
    assert_int_equal(next_of(loop), T0 + 50 * MS);
    FAKE = T0 + 50 * MS;
    assert_int_equal(tw_loop_process(loop), 1);
    assert_int_equal(LOG.ids[2], 4);
    assert_int_equal(LOG.deadlines[2], T0 + 50 * MS);
    assert_int_equal(LOG.timers[2], t);

    /* Stale handles are ignored. */
    assert_int_equal(tw_loop_post_cancel(loop, t), 0);
    assert_int_equal(tw_loop_post_reschedule(loop, t, T0), 0);
    assert_int_equal(tw_loop_process(loop), 0);
    assert_int_equal(tw_loop_next_deadline(loop, &next), TW_ENOENT);
    assert_int_equal(LOG.n, 3);

    /* A posted timer knows itself by the handle its callback receives. */
    SELF_MOVES = 0;
    assert_int_equal(tw_loop_post_schedule(loop, T0 + 60 * MS, move_self_once, (void *)5), 0);
    FAKE = T0 + 80 * MS;
    assert_int_equal(tw_loop_process(loop), 2);
    assert_int_equal(LOG.n, 5);
    assert_int_equal(LOG.timers[3], LOG.timers[4]);
    assert_int_equal(LOG.deadlines[4], T0 + 70 * MS);
    assert_int_equal(tw_loop_next_deadline(loop, &next), TW_ENOENT);
    finish();
}

/* tw_loop_run on the loop's own base, stopped from a function or a timer. */
static void stop_fn(tw_loop *loop, int status, void *userdata)
{
    posted(loop, status, userdata);
    assert_int_equal(tw_loop_stop(loop), 0);
}

static void stop_timer(tw_timer timer, uint64_t deadline_ns, void *userdata)
{
    record(timer, deadline_ns, userdata);
    assert_int_equal(tw_loop_stop(LOG.loop), 0);
}

static void test_run_until_stop(void **state)
{
    (void)state;
    tw_loop *loop = start(NULL, NULL);
    assert_int_equal(tw_loop_post(loop, stop_fn, (void *)1), 0);
    assert_int_equal(tw_loop_run(loop), 0);
    assert_int_equal(POSTS.n, 1);
    assert_int_equal(POSTS.status[0], 0);
    /* Run again: a due timer stops it; later deadlines stay armed. */
    tw_timer t;
    assert_int_equal(tw_loop_schedule(loop, T0, stop_timer, (void *)2, &t), 0);
    arm(loop, T0 + 1 * SEC, 3);
    assert_int_equal(tw_loop_run(loop), 0);
    assert_int_equal(LOG.n, 1);
    assert_int_equal(LOG.ids[0], 2);
    assert_int_equal(next_of(loop), T0 + SEC);
    tw_loop_stats s = stats_of(loop);
    assert_int_equal(s.fired, 1);
    assert_int_equal(s.inbox_run, 1);
    drop_loop();
}

static void test_event_follows_earliest_deadline(void **state)
{
    (void)state;
    /* One event, armed at the earliest deadline: when that timer is
     * cancelled or moved later, the base must not wake the loop for it.
     * The fake clock makes each deadline due now or 1 s away. */
    struct event_base *base = new_base();
    tw_loop *loop = start(base, NULL);
    tw_timer a = arm(loop, T0, 1);
    assert_int_equal(tw_loop_cancel(loop, a), 0);
    for (int i = 0; i < 10; i++)
        assert_true(event_base_loop(base, EVLOOP_NONBLOCK) >= 0);
    tw_loop_stats s = stats_of(loop);
    assert_int_equal(s.wakeups, 0);
    assert_int_equal(s.turns, 0);
    tw_timer b = arm(loop, T0, 2);
    assert_int_equal(tw_loop_reschedule(loop, b, T0 + SEC), 0);
    for (int i = 0; i < 10; i++)
        assert_true(event_base_loop(base, EVLOOP_NONBLOCK) >= 0);
    s = stats_of(loop);
    assert_int_equal(s.wakeups, 0);
    assert_int_equal(s.turns, 0);
    assert_int_equal(LOG.n, 0);
    /* Moved earlier again: now it must come. */
    assert_int_equal(tw_loop_reschedule(loop, b, T0), 0);
    for (int i = 0; i < 100 && LOG.n == 0; i++)
        assert_true(event_base_loop(base, EVLOOP_NONBLOCK) >= 0);
    assert_int_equal(LOG.n, 1);
    assert_int_equal(stats_of(loop).wakeups, 1);
    finish();
}

/* A batch goes through the wheel's batch path and moves the loop's one
 * event when it brings the earliest deadline forward, and only then. */
static void test_schedule_batch(void **state)
{
    (void)state;
    struct event_base *base = new_base();
    tw_loop_config c = fake_config();
    c.max_timers = 200;
    tw_loop *loop = start(base, &c);
    uint64_t ds[130];
    void *uds[130];
    tw_timer ts[130];
    arm(loop, T0 + SEC, 1000);
    uint64_t rearms = stats_of(loop).rearms;
    for (size_t i = 0; i < 130; i++) {
        ds[i] = T0 + 2 * SEC + (i % 2) * MS;
        uds[i] = (void *)(uintptr_t)i;
    }
    assert_int_equal(tw_loop_schedule_batch(loop, 130, ds, record, uds, ts), 0);
    assert_int_equal(stats_of(loop).rearms, rearms);
    assert_int_equal(next_of(loop), T0 + SEC);

    /* Nothing armed on failure: beyond max_timers, or bad arguments. */
    tw_timer out[70] = {0};
    uint64_t early[70];
    for (size_t i = 0; i < 70; i++)
        early[i] = T0;
    assert_int_equal(tw_loop_schedule_batch(loop, 70, early, record, NULL, out), TW_ENOMEM);
    assert_int_equal(tw_loop_schedule_batch(loop, SIZE_MAX, early, record, NULL, out),
                     TW_ENOMEM);
    assert_int_equal(tw_loop_schedule_batch(NULL, 1, early, record, NULL, out), TW_EINVAL);
    assert_int_equal(tw_loop_schedule_batch(loop, 1, NULL, record, NULL, out), TW_EINVAL);
    assert_int_equal(tw_loop_schedule_batch(loop, 1, early, NULL, NULL, out), TW_EINVAL);
    assert_int_equal(tw_loop_schedule_batch(loop, 1, early, record, NULL, NULL), TW_EINVAL);
    assert_int_equal(tw_loop_schedule_batch(loop, 0, NULL, record, NULL, NULL), 0);
    assert_int_equal(out[0], 0);
    assert_int_equal(stats_of(loop).rearms, rearms);
    assert_int_equal(next_of(loop), T0 + SEC);

    /* Earlier than the event: it moves, and the base fires the batch. */
    void *ids[2] = {(void *)(uintptr_t)500, (void *)(uintptr_t)501};
    assert_int_equal(tw_loop_schedule_batch(loop, 2, early, record, ids, out), 0);
    assert_int_equal(stats_of(loop).rearms, rearms + 1);
    assert_int_equal(next_of(loop), T0);
    for (int i = 0; i < 100 && LOG.n < 2; i++)
        assert_true(event_base_loop(base, EVLOOP_NONBLOCK) >= 0);
    assert_int_equal(LOG.n, 2);
    assert_int_equal(LOG.ids[0], 500);
    assert_int_equal(LOG.ids[1], 501);

    /* Equal deadlines fire in array order. */
    FAKE = T0 + 3 * SEC;
    assert_int_equal(tw_loop_process(loop), 131);
    assert_int_equal(LOG.ids[2], 1000);
    for (size_t i = 0; i < 65; i++) {
        assert_int_equal(LOG.ids[3 + i], 2 * i);
        assert_int_equal(LOG.ids[68 + i], 2 * i + 1);
    }
    finish();
}

static int readable(int fd)
{
    struct pollfd p = {fd, POLLIN, 0};
    int r = poll(&p, 1, 0);
    assert_true(r >= 0);
    return r == 1 && (p.revents & POLLIN);
}

/* A loop driven by hand from a foreign event loop watches tw_loop_fd. */
static void test_fd_for_hand_driven_loops(void **state)
{
    (void)state;
    tw_loop *loop = start(new_base(), NULL);
    int fd = tw_loop_fd(loop);
    assert_true(fd >= 0);
    assert_int_equal(tw_loop_fd(NULL), TW_EINVAL);
    assert_false(readable(fd));
    assert_int_equal(tw_loop_post(loop, posted, (void *)1), 0);
    assert_int_equal(tw_loop_post(loop, posted, (void *)2), 0);
    assert_true(readable(fd));
    assert_int_equal(tw_loop_process(loop), 0);
    assert_int_equal(POSTS.n, 2);
    /* Drained: a level-triggered poller must not spin on it. */
    assert_false(readable(fd));
    assert_int_equal(tw_loop_process(loop), 0);
    assert_false(readable(fd));
    assert_int_equal(POSTS.n, 2);
}

static int fd_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0 || errno != EBADF;
}

/* The open descriptors below 4096, to see that nothing leaked. */
static int open_fds(void)
{
    int n = 0;
    for (int fd = 0; fd < 4096; fd++)
        n += fd_open(fd);
    return n;
}

/* The descriptor limit under which exactly room descriptors are free,
 * whatever gaps the process inherited. */
static rlim_t limit_with_room(int room)
{
    int fd = 0;
    for (int free_below = 0; free_below < room; fd++)
        free_below += !fd_open(fd);
    return (rlim_t)fd;
}

/* With the descriptor limit just above what is open, every descriptor the
 * loop creates in turn fails: the answer is TW_EMFILE, not a crash (libevent
 * ends the process when a base it creates runs short; the loop refuses
 * before that) and not TW_ENOMEM, and whatever was created before is closed
 * again (and freed: the sanitizer build checks).  Returns the room the loop
 * needed. */
static int room_needed(struct event_base *base)
{
    struct rlimit saved;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
    const int before = open_fds();
    for (int room = 0; room < 32; room++) {
        struct rlimit low = saved;
        low.rlim_cur = limit_with_room(room);
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
        tw_loop *loop = NULL;
        int r = tw_loop_new(base, NULL, &loop);
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
        if (r == 0) {
            assert_non_null(loop);
            tw_loop_free(loop);
            assert_int_equal(open_fds(), before);
            return room;
        }
        assert_int_equal(r, TW_EMFILE);
        assert_null(loop);
        assert_int_equal(open_fds(), before);
    }
    fail_msg("no loop with 32 descriptors to spare");
    return -1;
}

static void test_descriptor_limit(void **state)
{
    (void)state;
    /* In a caller's base: its eventfd, timerfd and epoll descriptor. */
    struct event_base *base = event_base_new();
    assert_non_null(base);
    assert_int_equal(room_needed(base), 3);
    event_base_free(base);
    /* With a base of its own: those, and the base's. */
    assert_true(room_needed(NULL) > 3);
}

/* Timers left due by the callback budget fire first at the next turn,
 * before one armed in between with an earlier deadline; also when the
 * budget stopped a cascade (300 timers fill several blocks of the wheel). */
static void test_budget_stop_keeps_order_through_the_loop(void **state)
{
    (void)state;
    const uintptr_t counts[] = {10, 300};
    for (size_t c = 0; c < 2; c++) {
        tw_loop_config cfg = fake_config();
        cfg.budget_callbacks = 1;
        cfg.budget_ns = 0;
        tw_loop *loop = start(NULL, &cfg);
        const uint64_t at = T0 + 5 * SEC + 17;
        for (uintptr_t id = 1; id <= counts[c]; id++)
            arm(loop, at, id);
        FAKE = at;
        uint64_t first = (uint64_t)tw_loop_process(loop);
        assert_true(first <= 1);
        arm(loop, at - 5 * MS, 9999);
        while (LOG.n < counts[c] + 1)
            assert_true(tw_loop_process(loop) <= 1);
        for (uintptr_t id = 1; id <= counts[c]; id++)
            assert_int_equal(LOG.ids[id - 1], id);
        assert_int_equal(LOG.ids[counts[c]], 9999);
        finish();
    }
}

static void rearm_at_now(tw_timer timer, uint64_t deadline_ns, void *userdata)
{
    record(timer, deadline_ns, userdata);
    assert_int_equal(tw_loop_reschedule(LOG.loop, timer, tw_loop_now(LOG.loop)), 0);
}

/* A callback that re-arms its timer at now cannot hold a turn, even with
 * both budgets off: each turn fires it a bounded number of times, and the
 * loop stays due. */
static void test_rearm_at_now_turn_returns(void **state)
{
    (void)state;
    tw_loop_config cfg = fake_config();
    cfg.budget_callbacks = 0;
    cfg.budget_ns = 0;
    tw_loop *loop = start(NULL, &cfg);
    tw_timer t;
    assert_int_equal(tw_loop_schedule(loop, T0 + MS, rearm_at_now, (void *)1, &t), 0);
    FAKE = T0 + MS;
    for (int turn = 1; turn <= 3; turn++) {
        uint64_t n = (uint64_t)tw_loop_process(loop);
        assert_true(n >= 1 && n <= 2);
        assert_true(next_of(loop) <= tw_loop_now(loop));
    }
    assert_int_equal(tw_loop_cancel(loop, t), 0);
    finish();
}

static void loop_periodic(tw_timer timer, uint64_t deadline_ns, void *userdata)
{
    record(timer, deadline_ns, userdata);
    uint64_t d;
    assert_int_equal(tw_loop_deadline(LOG.loop, timer, &d), 0);
    assert_int_equal(d, deadline_ns + 3 * MS);
    if (LOG.n == 4)
        assert_int_equal(tw_loop_cancel(LOG.loop, timer), 0);
}

static void deadline_of_running(tw_timer timer, uint64_t deadline_ns, void *userdata)
{
    uint64_t d;
    (void)deadline_ns;
    (void)userdata;
    assert_int_equal(tw_loop_deadline(LOG.loop, timer, &d), TW_ENOENT);
}

/* A periodic loop timer: every period from the first, told its own
 * deadline, queried and stopped from its callback. */
static void test_loop_periodic(void **state)
{
    (void)state;
    tw_loop *loop = start(NULL, NULL);
    tw_timer t;
    uint64_t p;
    assert_int_equal(tw_loop_schedule_periodic(loop, T0 + 2 * MS, 3 * MS, TW_PERIODIC_CATCH_UP,
                                               loop_periodic, (void *)1, &t), 0);
    assert_int_equal(tw_loop_period(loop, t, &p), 0);
    assert_int_equal(p, 3 * MS);
    assert_int_equal(next_of(loop), T0 + 2 * MS);
    for (int i = 1; i <= 20; i++) {
        FAKE = T0 + (uint64_t)i * MS;
        assert_true(tw_loop_process(loop) >= 0);
    }
    assert_int_equal(LOG.n, 4);
    for (size_t k = 0; k < 4; k++)
        assert_int_equal(LOG.deadlines[k], T0 + 2 * MS + k * 3 * MS);
    assert_int_equal(tw_loop_deadline(loop, t, &p), TW_ENOENT);
    /* A plain timer inside its own callback is not armed. */
    assert_int_equal(tw_loop_schedule(loop, T0 + 30 * MS, deadline_of_running, NULL, &t), 0);
    assert_int_equal(tw_loop_deadline(loop, t, &p), 0);
    assert_int_equal(p, T0 + 30 * MS);
    FAKE = T0 + 30 * MS;
    assert_int_equal(tw_loop_process(loop), 1);
    assert_int_equal(tw_loop_schedule_periodic(loop, T0, 0, 0, loop_periodic, NULL, &t), TW_EINVAL);
    assert_int_equal(tw_loop_schedule_periodic(loop, T0, MS, 4, loop_periodic, NULL, &t), TW_EINVAL);
    finish();
}

static void conn_ignore(const tw_conn_event *ev, void *userdata)
{
    (void)ev;
    (void)userdata;
}

static int visit_timer(tw_timer timer, uint64_t deadline_ns, void *userdata, void *ctx)
{
    uint64_t *seen = ctx;
    (void)timer;
    assert_true(deadline_ns >= T0);
    seen[0]++;
    seen[1] += (uintptr_t)userdata;
    return 0;
}

static int visit_free_conn(tw_conn *conn, void *userdata, void *ctx)
{
    uint64_t *seen = ctx;
    seen[0]++;
    seen[1] += (uintptr_t)userdata;
    tw_conn_free(conn);
    return 0;
}

/* The loop's timers are counted, walked and cancelled without its
 * connections' own wheel timers; the connections are walked (and freed
 * by the walk). */
static void test_loop_count_walk_cancel_all(void **state)
{
    (void)state;
    tw_loop *loop = start(NULL, NULL);
    tw_conn *c[3];
    for (uintptr_t i = 0; i < 3; i++) {
        assert_int_equal(tw_conn_new(loop, (uint32_t)i, conn_ignore, (void *)(i + 1), &c[i]), 0);
        assert_int_equal(tw_conn_arm(c[i], TW_CONN_IDLE, T0 + SEC), 0);
    }
    assert_int_equal(tw_loop_count(loop), 0);
    for (uintptr_t i = 1; i <= 5; i++)
        arm(loop, T0 + i * MS, i);
    assert_int_equal(tw_loop_count(loop), 5);
    uint64_t seen[2] = {0, 0};
    assert_int_equal(tw_loop_foreach_timer(loop, visit_timer, seen), 0);
    assert_int_equal(seen[0], 5);
    assert_int_equal(seen[1], 15);
    size_t n = 0;
    assert_int_equal(tw_loop_cancel_all(loop, &n), 0);
    assert_int_equal(n, 5);
    assert_int_equal(tw_loop_count(loop), 0);
    /* The connections' timers are still there. */
    assert_int_equal(next_of(loop), T0 + SEC);
    uint64_t conns[2] = {0, 0};
    assert_int_equal(tw_loop_foreach_conn(loop, visit_free_conn, conns), 0);
    assert_int_equal(conns[0], 3);
    assert_int_equal(conns[1], 6);
    uint64_t next;
    assert_int_equal(tw_loop_next_deadline(loop, &next), TW_ENOENT);
    assert_int_equal(tw_loop_foreach_conn(loop, visit_free_conn, conns), 0);
    assert_int_equal(conns[0], 3);
    assert_int_equal(tw_loop_foreach_timer(NULL, visit_timer, seen), TW_EINVAL);
    assert_int_equal(tw_loop_foreach_conn(loop, NULL, NULL), TW_EINVAL);
    finish();
}

static unsigned COUNT_DOWN;

static void count_down(tw_timer timer, uint64_t deadline_ns, void *userdata)
{
    record(timer, deadline_ns, userdata);
    if (++COUNT_DOWN == 3)
        assert_int_equal(tw_loop_cancel(LOG.loop, timer), 0);
}

/* Run until idle on the loop's own base and the real clock: it returns at
 * once when nothing is armed, and once the last timer fired and the
 * periodic one stopped itself; a parked timer does not keep it running. */
static void test_run_until_idle(void **state)
{
    (void)state;
    tw_loop *loop = NULL;
    assert_int_equal(tw_loop_new(NULL, NULL, &loop), 0);
    memset(&LOG, 0, sizeof(LOG));
    LOG.loop = loop;
    COUNT_DOWN = 0;
    assert_int_equal(tw_loop_run_until_idle(loop), 0);
    tw_timer t;
    assert_int_equal(tw_loop_schedule_relative(loop, 2 * MS, record, (void *)1, &t), 0);
    assert_int_equal(tw_loop_schedule(loop, TW_NEVER, record, (void *)2, &t), 0);
    assert_int_equal(tw_loop_schedule_periodic(loop, tw_loop_now(loop) + MS, MS,
                                               TW_PERIODIC_CATCH_UP, count_down, (void *)3, &t), 0);
    assert_int_equal(tw_loop_run_until_idle(loop), 0);
    assert_int_equal(LOG.n, 4);
    assert_int_equal(tw_loop_count(loop), 1);       /* the parked one */
    tw_loop_free(loop);
    assert_int_equal(tw_loop_run_until_idle(NULL), TW_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_config_defaults, teardown),
        cmocka_unit_test(test_descriptor_limit),
        cmocka_unit_test_teardown(test_fires_at_deadline_not_before, teardown),
        cmocka_unit_test_teardown(test_deadline_order, teardown),
        cmocka_unit_test_teardown(test_now_is_turn_start, teardown),
        cmocka_unit_test_teardown(test_clock_read_once_per_turn, teardown),
        cmocka_unit_test_teardown(test_next_deadline, teardown),
        cmocka_unit_test_teardown(test_never_at_the_end_of_time, teardown),
        cmocka_unit_test_teardown(test_relative_to_loop_now, teardown),
        cmocka_unit_test_teardown(test_cancel_reschedule_and_stale, teardown),
        cmocka_unit_test_teardown(test_reschedule_self, teardown),
        cmocka_unit_test_teardown(test_clock_backwards_clamped, teardown),
        cmocka_unit_test_teardown(test_budget, teardown),
        cmocka_unit_test_teardown(test_budget_resumes_through_base, teardown),
        cmocka_unit_test_teardown(test_time_budget, teardown),
        cmocka_unit_test_teardown(test_time_and_callback_budgets, teardown),
        cmocka_unit_test_teardown(test_time_budget_off, teardown),
        cmocka_unit_test_teardown(test_time_budget_overrun, teardown),
        cmocka_unit_test_teardown(test_time_budget_chunks_grow, teardown),
        cmocka_unit_test_teardown(test_slack_coalesces_turns, teardown),
        cmocka_unit_test_teardown(test_slack_event_and_reschedule, teardown),
        cmocka_unit_test_teardown(test_free_from_callback, teardown),
        cmocka_unit_test_teardown(test_free_from_callback_during_run, teardown),
        cmocka_unit_test_teardown(test_free_from_posted_function, teardown),
        cmocka_unit_test_teardown(test_embedded_never_dispatches, teardown),
        cmocka_unit_test_teardown(test_relative_outside_a_turn_reads_the_clock, teardown),
        cmocka_unit_test_teardown(test_cancel_other_from_callback, teardown),
        cmocka_unit_test_teardown(test_process_counts_no_freed_connection, teardown),
        cmocka_unit_test_teardown(test_free_with_timers_armed, teardown),
        cmocka_unit_test_teardown(test_free_with_posts_pending, teardown),
        cmocka_unit_test_teardown(test_bad_input, teardown),
        cmocka_unit_test_teardown(test_bad_tick, teardown),
        cmocka_unit_test_teardown(test_stats_struct_size, teardown),
        cmocka_unit_test_teardown(test_stats_counts, teardown),
        cmocka_unit_test_teardown(test_max_timers, teardown),
        cmocka_unit_test_teardown(test_post_runs_once_at_next_process, teardown),
        cmocka_unit_test_teardown(test_post_wakes_embedded_base, teardown),
        cmocka_unit_test_teardown(test_inbox_full, teardown),
        cmocka_unit_test_teardown(test_inbox_capacity_rounds_up, teardown),
        cmocka_unit_test_teardown(test_post_timer_commands, teardown),
        cmocka_unit_test_teardown(test_run_until_stop, teardown),
        cmocka_unit_test_teardown(test_event_follows_earliest_deadline, teardown),
        cmocka_unit_test_teardown(test_fd_for_hand_driven_loops, teardown),
        cmocka_unit_test_teardown(test_schedule_batch, teardown),
        cmocka_unit_test_teardown(test_budget_stop_keeps_order_through_the_loop, teardown),
        cmocka_unit_test_teardown(test_rearm_at_now_turn_returns, teardown),
        cmocka_unit_test_teardown(test_loop_periodic, teardown),
        cmocka_unit_test_teardown(test_loop_count_walk_cancel_all, teardown),
        cmocka_unit_test(test_run_until_idle),
    };
    return cmocka_run_group_tests_name("loop", tests, NULL, NULL);
}
