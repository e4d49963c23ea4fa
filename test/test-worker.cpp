/*
 * The loop's worker hand-off (Loop::parallel): the threshold picks the
 * path, the results and the calls per index are those of the direct path
 * at every size, the thread starts at the first hand-off and is joined by
 * tw_loop_free, and a thread that cannot start makes the batch run
 * directly with one warning.  Built under ThreadSanitizer too: every index
 * is written by exactly one thread, without atomics, so a batch handed out
 * twice or read back too early is a reported race.
 */
#include <dirent.h>
#include <sched.h>
#include <time.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cstdint>
#include <cstring>
#include <vector>

extern "C" {
#include <cmocka.h>
}

#include "loop/loop.hpp"
#include "tickwheel.h"

namespace {

uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x *= UINT64_C(0xc4ceb9fe1a85ec53);
    return x ^ (x >> 33);
}

/* A pure batch: out[i] = mix(in[i]), and a count of visits per index. */
struct Batch {
    const uint64_t *in;
    uint64_t *out;
    uint8_t *visits;
    size_t calls_on_empty;
};

void kernel(void *ctx, size_t begin, size_t end)
{
    Batch *b = static_cast<Batch *>(ctx);
    if (begin >= end)
        b->calls_on_empty++;
    for (size_t i = begin; i < end; i++) {
        b->out[i] = mix(b->in[i]);
        b->visits[i]++;
    }
}

/* Threads of this process, from /proc/self/task. */
int threads()
{
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    int n = 0;
    while (struct dirent *e = readdir(d))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* The thread count once a joined thread has left /proc: pthread_join
 * returns when the thread has cleared its id, which the kernel does a
 * moment before it releases the task, so the count may lag a little.
 * Waits for want, yielding, up to 2 s; returns the last count seen. */
int threads_after_join(int want)
{
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        int n = threads();
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (n == want || now.tv_sec - start.tv_sec >= 2)
            return n;
        sched_yield();
    }
}

struct Warnings {
    int count;
};

void on_log(int level, const char *message, void *userdata)
{
    if (level == 0 && std::strstr(message, "worker"))
        static_cast<Warnings *>(userdata)->count++;
}

tw_loop *new_loop(uint32_t threshold, Warnings *warnings = nullptr)
{
    tw_loop_config c;
    tw_loop_config_init(&c);
    c.batch_threshold = threshold;
    if (warnings) {
        c.log = on_log;
        c.log_userdata = warnings;
    }
    tw_loop *loop = nullptr;
    assert_int_equal(tw_loop_new(nullptr, &c, &loop), 0);
    return loop;
}

tw_loop_stats stats_of(const tw_loop *loop)
{
    tw_loop_stats s;
    std::memset(&s, 0, sizeof(s));
    s.struct_size = sizeof(s);
    assert_int_equal(tw_loop_stats_get(loop, &s), 0);
    return s;
}

/* Runs a batch of n through the loop and checks it against the direct
 * computation: each index visited once, its output right. */
void run_checked(tw_loop *loop, size_t n)
{
    std::vector<uint64_t> in(n), out(n, 0);
    std::vector<uint8_t> visits(n, 0);
    for (size_t i = 0; i < n; i++)
        in[i] = i * 2654435761u + n;
    Batch b{in.data(), out.data(), visits.data(), 0};
    loop->core.parallel(n, kernel, &b);
    assert_int_equal(b.calls_on_empty, 0);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(visits[i], 1);
        assert_int_equal(out[i], mix(in[i]));
    }
}

void test_threshold_picks_path(void **)
{
    tw_loop *loop = new_loop(1000);
    tw_loop_stats s = stats_of(loop);
    assert_int_equal(s.batches_direct + s.batches_handoff, 0);
    run_checked(loop, 0);       /* nothing to do: no batch */
    run_checked(loop, 1);
    run_checked(loop, 64);
    run_checked(loop, 1000);
    s = stats_of(loop);
    assert_int_equal(s.batches_direct, 3);
    assert_int_equal(s.items_direct, 1 + 64 + 1000);
    assert_int_equal(s.batches_handoff, 0);
    assert_false(loop->core.worker().started());
    run_checked(loop, 1001);
    s = stats_of(loop);
    assert_int_equal(s.batches_direct, 3);
    assert_int_equal(s.batches_handoff, 1);
    assert_int_equal(s.items_handoff, 1001);
    tw_loop_free(loop);

    /* The default (0), and a threshold below the direct path's 64. */
    tw_loop_config c;
    tw_loop_config_init(&c);
    assert_int_equal(c.batch_threshold, 0);
    loop = new_loop(0);
    run_checked(loop, 1024);
    assert_int_equal(stats_of(loop).batches_direct, 1);
    run_checked(loop, 1025);
    assert_int_equal(stats_of(loop).batches_handoff, 1);
    tw_loop_free(loop);
    loop = new_loop(1);
    run_checked(loop, 64);
    run_checked(loop, 65);
    s = stats_of(loop);
    assert_int_equal(s.batches_direct, 1);
    assert_int_equal(s.batches_handoff, 1);
    tw_loop_free(loop);

    /* UINT32_MAX: never. */
    loop = new_loop(UINT32_MAX);
    run_checked(loop, 1 << 20);
    s = stats_of(loop);
    assert_int_equal(s.batches_direct, 1);
    assert_int_equal(s.batches_handoff, 0);
    assert_false(loop->core.worker().started());
    tw_loop_free(loop);
}

void test_results_equal_direct(void **)
{
    tw_loop *loop = new_loop(64);
    const size_t sizes[] = {65, 66, 100, 127, 128, 129, 511, 512, 513, 1000, 4095, 4096,
                            4097, 16384, 65537, 200003};
    uint64_t items = 0;
    for (int round = 0; round < 4; round++)
        for (size_t n : sizes) {
            run_checked(loop, n);
            items += n;
        }
    tw_loop_stats s = stats_of(loop);
    assert_int_equal(s.batches_handoff, 4 * (sizeof(sizes) / sizeof(sizes[0])));
    assert_int_equal(s.items_handoff, items);
    assert_int_equal(s.batches_direct, 0);
    /* Many hand-offs back to back, as a storm of turns makes them. */
    for (int i = 0; i < 300; i++)
        run_checked(loop, 256 + size_t(i));
    tw_loop_free(loop);
}

void test_lazy_start_and_join(void **)
{
    int before = threads();
    tw_loop *loop = new_loop(64);
    assert_int_equal(threads(), before);
    run_checked(loop, 64);
    assert_int_equal(threads(), before);
    assert_false(loop->core.worker().started());
    run_checked(loop, 65);
    assert_true(loop->core.worker().started());
    assert_int_equal(threads(), before + 1);
    run_checked(loop, 5000);
    assert_int_equal(threads(), before + 1);
    /* Freed right after a hand-off: the thread is joined, none is left. */
    tw_loop_free(loop);
    assert_int_equal(threads_after_join(before), before);

    /* Stopped and restarted by the next hand-off. */
    loop = new_loop(64);
    run_checked(loop, 1000);
    loop->core.worker().stop();
    assert_false(loop->core.worker().started());
    assert_int_equal(threads_after_join(before), before);
    run_checked(loop, 1000);
    assert_int_equal(threads(), before + 1);
    tw_loop_free(loop);
    assert_int_equal(threads_after_join(before), before);

    /* Never handed off: never started. */
    loop = new_loop(64);
    tw_loop_free(loop);
    assert_int_equal(threads_after_join(before), before);
}

void test_start_failure_runs_direct(void **)
{
    Warnings warnings{0};
    tw_loop *loop = new_loop(64, &warnings);
    int before = threads();
    loop->core.worker().refuse_start(true);
    run_checked(loop, 10000);
    run_checked(loop, 10000);
    tw_loop_stats s = stats_of(loop);
    assert_int_equal(s.batches_direct, 2);
    assert_int_equal(s.items_direct, 20000);
    assert_int_equal(s.batches_handoff, 0);
    assert_int_equal(warnings.count, 1);    /* once, not per batch */
    assert_int_equal(threads(), before);
    loop->core.worker().refuse_start(false);
    run_checked(loop, 10000);
    assert_int_equal(stats_of(loop).batches_handoff, 1);
    /* A new failure after a success warns again. */
    loop->core.worker().stop();
    loop->core.worker().refuse_start(true);
    run_checked(loop, 10000);
    assert_int_equal(warnings.count, 2);
    tw_loop_free(loop);
}

/* From a timer callback, as lib/conn does in a turn: the batch is done
 * when parallel returns, on the loop's thread. */
struct InTurn {
    tw_loop *loop;
    size_t n;
    bool checked;
};

void in_turn(tw_timer, uint64_t, void *userdata)
{
    InTurn *t = static_cast<InTurn *>(userdata);
    run_checked(t->loop, t->n);
    t->checked = true;
}

/* A direct batch may hand off a nested one: the worker is not busy. */
struct Nested {
    tw_loop *loop;
    size_t inner;
};

void outer(void *ctx, size_t begin, size_t end)
{
    Nested *n = static_cast<Nested *>(ctx);
    for (size_t i = begin; i < end; i++)
        run_checked(n->loop, n->inner);
}

void test_from_callback_and_nested(void **)
{
    tw_loop *loop = new_loop(64);
    InTurn t{loop, 3000, false};
    tw_timer timer;
    assert_int_equal(tw_loop_schedule(loop, 0, in_turn, &t, &timer), 0);
    assert_int_equal(tw_loop_process(loop), 1);
    assert_true(t.checked);
    Nested n{loop, 700};
    loop->core.parallel(3, outer, &n);
    tw_loop_stats s = stats_of(loop);
    assert_int_equal(s.batches_direct, 1);
    assert_int_equal(s.batches_handoff, 4);
    tw_loop_free(loop);
}

} // namespace

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threshold_picks_path),
        cmocka_unit_test(test_results_equal_direct),
        cmocka_unit_test(test_lazy_start_and_join),
        cmocka_unit_test(test_start_failure_runs_direct),
        cmocka_unit_test(test_from_callback_and_nested),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
