/*
 * Misuse of the C API: every bad argument gets its documented TW_E* answer
 * and leaves the wheel intact.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tickwheel.h"

static unsigned FIRED;

static void count(tw_timer timer, uint64_t deadline_ns, void *userdata)
{
    (void)timer;
    (void)deadline_ns;
    (void)userdata;
    FIRED++;
}

static void test_errors_and_names(void **state)
{
    (void)state;
    const int codes[] = {TW_ENOENT, TW_EAGAIN, TW_ENOMEM, TW_EBUSY,  TW_EMFILE, TW_EINVAL,
                         TW_ENOSPC, TW_ERANGE, TW_ETIMEDOUT, TW_EUCLEAN, TW_ECANCELED};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        assert_true(codes[i] < 0);
        assert_non_null(tw_err_name(codes[i]));
        assert_string_not_equal(tw_strerror(codes[i]), "unknown error");
        for (size_t j = 0; j < i; j++)
            assert_int_not_equal(codes[i], codes[j]);
    }
    assert_string_equal(tw_err_name(TW_EINVAL), "TW_EINVAL");
    assert_string_equal(tw_strerror(TW_EINVAL), "invalid argument");
    assert_null(tw_err_name(0));
    assert_null(tw_err_name(-9999));
    assert_string_equal(tw_strerror(12345), "unknown error");
    assert_string_equal(tw_version(), TW_VERSION_STRING);
    assert_true(TW_VERSION_HEX > 0);
}

static void test_config_validation(void **state)
{
    (void)state;
    tw_wheel *w = (tw_wheel *)&w;
    tw_wheel_config c;
    assert_int_equal(tw_wheel_new(NULL, 0, NULL), TW_EINVAL);
    tw_wheel_config_init(NULL);

    tw_wheel_config_init(&c);
    assert_int_equal(c.struct_size, sizeof(c));
    assert_int_equal(c.tick_ns, TW_TICK_DEFAULT_NS);
    c.struct_size = sizeof(c) - 1;
    assert_int_equal(tw_wheel_new(&c, 0, &w), TW_EINVAL);
    assert_null(w);
    c.struct_size = sizeof(c) + 8;
    assert_int_equal(tw_wheel_new(&c, 0, &w), TW_EINVAL);
    c.struct_size = 0;
    assert_int_equal(tw_wheel_new(&c, 0, &w), TW_EINVAL);

    const uint64_t bad_ticks[] = {0, 1, TW_TICK_MIN_NS - 1, TW_TICK_MAX_NS + 1, UINT64_MAX};
    for (size_t i = 0; i < sizeof(bad_ticks) / sizeof(bad_ticks[0]); i++) {
        tw_wheel_config_init(&c);
        c.tick_ns = bad_ticks[i];
        assert_int_equal(tw_wheel_new(&c, 0, &w), TW_EINVAL);
        assert_null(w);
    }
    const uint64_t good_ticks[] = {TW_TICK_MIN_NS, 1024, 10000000, TW_TICK_MAX_NS};
    for (size_t i = 0; i < sizeof(good_ticks) / sizeof(good_ticks[0]); i++) {
        tw_wheel_config_init(&c);
        c.tick_ns = good_ticks[i];
        assert_int_equal(tw_wheel_new(&c, UINT64_MAX - 1, &w), 0);
        assert_int_equal(tw_wheel_now(w), UINT64_MAX - 1);
        tw_wheel_free(w);
    }
    assert_int_equal(tw_wheel_new(NULL, 0, &w), 0);
    tw_wheel_free(w);
    tw_wheel_free(NULL);
}

static void test_null_arguments(void **state)
{
    (void)state;
    tw_wheel *w;
    tw_timer t = 77;
    uint64_t v;
    uint64_t d = 5;
    assert_int_equal(tw_wheel_new(NULL, 0, &w), 0);

    assert_int_equal(tw_wheel_schedule(NULL, 1, count, NULL, &t), TW_EINVAL);
    assert_int_equal(t, 0);
    assert_int_equal(tw_wheel_schedule(w, 1, NULL, NULL, &t), TW_EINVAL);
    assert_int_equal(tw_wheel_schedule(w, 1, count, NULL, NULL), TW_EINVAL);
    assert_int_equal(tw_wheel_schedule_relative(NULL, 1, count, NULL, &t), TW_EINVAL);
    assert_int_equal(tw_wheel_schedule_relative(w, 1, NULL, NULL, &t), TW_EINVAL);
    assert_int_equal(tw_wheel_schedule_batch(NULL, 1, &d, count, NULL, &t), TW_EINVAL);
    assert_int_equal(tw_wheel_schedule_batch(w, 1, NULL, count, NULL, &t), TW_EINVAL);
    assert_int_equal(tw_wheel_schedule_batch(w, 1, &d, NULL, NULL, &t), TW_EINVAL);
    assert_int_equal(tw_wheel_schedule_batch(w, 1, &d, count, NULL, NULL), TW_EINVAL);
    assert_int_equal(tw_wheel_schedule_batch(NULL, 0, NULL, count, NULL, NULL), TW_EINVAL);
    assert_int_equal(tw_wheel_schedule_batch(w, 0, NULL, NULL, NULL, NULL), TW_EINVAL);
    assert_int_equal(tw_wheel_schedule_batch(w, 0, NULL, count, NULL, NULL), 0);
    size_t cancelled = 77;
    assert_int_equal(tw_wheel_cancel_batch(NULL, 1, &t, &cancelled), TW_EINVAL);
    assert_int_equal(cancelled, 0);
    cancelled = 77;
    assert_int_equal(tw_wheel_cancel_batch(w, 1, NULL, &cancelled), TW_EINVAL);
    assert_int_equal(cancelled, 0);
    assert_int_equal(tw_wheel_cancel_batch(NULL, 0, NULL, NULL), TW_EINVAL);
    assert_int_equal(tw_wheel_cancel_batch(w, 0, NULL, NULL), 0);
    assert_int_equal(tw_wheel_cancel(NULL, 1), TW_EINVAL);
    assert_int_equal(tw_wheel_reschedule(NULL, 1, 1), TW_EINVAL);
    assert_int_equal(tw_wheel_deadline(NULL, 1, &v), TW_EINVAL);
    assert_int_equal(tw_wheel_deadline(w, 1, NULL), TW_EINVAL);
    assert_int_equal(tw_wheel_next_deadline(NULL, &v), TW_EINVAL);
    assert_int_equal(tw_wheel_next_deadline(w, NULL), TW_EINVAL);
    assert_int_equal(tw_wheel_advance(NULL, 1), TW_EINVAL);
    assert_int_equal(tw_wheel_verify(NULL), TW_EINVAL);
    assert_int_equal(tw_wheel_now(NULL), 0);
    tw_wheel_stats s;
    assert_int_equal(tw_wheel_stats_get(NULL, &s), TW_EINVAL);
    assert_int_equal(tw_wheel_stats_get(w, NULL), TW_EINVAL);
    s.struct_size = 0;
    assert_int_equal(tw_wheel_stats_get(w, &s), TW_EINVAL);

    /* Nothing above armed a timer. */
    assert_int_equal(tw_wheel_next_deadline(w, &v), TW_ENOENT);
    assert_int_equal(tw_wheel_advance(w, UINT64_MAX - 1), 0);
    assert_int_equal(FIRED, 0);
    assert_int_equal(tw_wheel_verify(w), 0);
    tw_wheel_free(w);
}

static void test_forged_handles(void **state)
{
    (void)state;
    tw_wheel *w;
    tw_timer t;
    uint64_t v;
    assert_int_equal(tw_wheel_new(NULL, 0, &w), 0);
    assert_int_equal(tw_wheel_schedule(w, 100, count, NULL, &t), 0);
    const tw_timer forged[] = {0, 1, 2, 640, 642, 643, (uint32_t)t, (uint32_t)t + 1, t + (UINT64_C(1) << 32),
                               t ^ (UINT64_C(1) << 63), UINT64_MAX, 0xffffffffu};
    for (size_t i = 0; i < sizeof(forged) / sizeof(forged[0]); i++) {
        assert_int_equal(tw_wheel_cancel(w, forged[i]), TW_ENOENT);
        assert_int_equal(tw_wheel_reschedule(w, forged[i], 5), TW_ENOENT);
        assert_int_equal(tw_wheel_deadline(w, forged[i], &v), TW_ENOENT);
    }
    assert_int_equal(tw_wheel_verify(w), 0);
    assert_int_equal(tw_wheel_deadline(w, t, &v), 0);
    assert_int_equal(v, 100);
    tw_wheel_free(w);
}

static void test_max_timers(void **state)
{
    (void)state;
    tw_wheel_config c;
    tw_wheel *w;
    tw_timer ts[10], t;
    uint64_t ds[10] = {0};
    tw_wheel_config_init(&c);
    c.max_timers = 8;
    assert_int_equal(tw_wheel_new(&c, 0, &w), 0);
    for (int i = 0; i < 8; i++)
        assert_int_equal(tw_wheel_schedule(w, 1000 + i, count, NULL, &ts[i]), 0);
    assert_int_equal(tw_wheel_schedule(w, 5, count, NULL, &t), TW_ENOMEM);
    assert_int_equal(t, 0);
    assert_int_equal(tw_wheel_cancel(w, ts[3]), 0);
    assert_int_equal(tw_wheel_cancel(w, ts[5]), 0);
    /* All or nothing: three do not fit in two. */
    tw_timer out[3] = {0, 0, 0};
    assert_int_equal(tw_wheel_schedule_batch(w, 3, ds, count, NULL, out), TW_ENOMEM);
    assert_int_equal(out[0], 0);
    assert_int_equal(tw_wheel_verify(w), 0);
    /* Far beyond the limit, and beyond any memory: refused, nothing armed. */
    assert_int_equal(tw_wheel_schedule_batch(w, (size_t)1 << 40, ds, count, NULL, out),
                     TW_ENOMEM);
    assert_int_equal(tw_wheel_schedule_batch(w, SIZE_MAX, ds, count, NULL, out), TW_ENOMEM);
    assert_int_equal(out[0], 0);
    assert_int_equal(tw_wheel_schedule_batch(w, 2, ds, count, NULL, out), 0);
    assert_int_equal(tw_wheel_schedule(w, 5, count, NULL, &t), TW_ENOMEM);
    tw_wheel_stats s;
    s.struct_size = sizeof(s);
    assert_int_equal(tw_wheel_stats_get(w, &s), 0);
    assert_int_equal(s.live, 8);
    assert_int_equal(s.high_water, 8);
    assert_int_equal(s.cancelled, 2);
    assert_int_equal(s.reused, 2);
    FIRED = 0;
    assert_int_equal(tw_wheel_advance(w, 1 << 20), 8);
    assert_int_equal(FIRED, 8);
    assert_int_equal(tw_wheel_verify(w), 0);
    tw_wheel_free(w);
}

static void test_stats_struct_size(void **state)
{
    (void)state;
    tw_wheel *w;
    tw_timer t;
    assert_int_equal(tw_wheel_new(NULL, 0, &w), 0);
    assert_int_equal(tw_wheel_schedule(w, 1, count, NULL, &t), 0);
    /* An older, shorter struct: only its fields are written. */
    struct {
        tw_wheel_stats s;
        uint64_t guard;
    } box;
    memset(&box, 0xab, sizeof(box));
    box.s.struct_size = offsetof(tw_wheel_stats, live) + sizeof(uint64_t);
    assert_int_equal(tw_wheel_stats_get(w, &box.s), 0);
    assert_int_equal(box.s.live, 1);
    assert_int_equal(box.s.scheduled, UINT64_C(0xabababababababab));
    assert_int_equal(box.guard, UINT64_C(0xabababababababab));
    tw_wheel_free(w);
}

/* Distinct callback addresses: the wheel only compares them, and each timer
 * is cancelled before anything could call it. */
static tw_timer_cb *fake_callback(uintptr_t k)
{
    return (tw_timer_cb *)(void (*)(void))(uintptr_t)(0x100000 + 16 * k);
}

static void test_too_many_callbacks(void **state)
{
    (void)state;
    tw_wheel *w;
    tw_timer t;
    static tw_timer live[0xffff];
    assert_int_equal(tw_wheel_new(NULL, 0, &w), 0);
    /* One closure per timer, as an FFI makes them: with one timer live at
     * a time, no number of distinct callbacks runs the wheel out. */
    for (uintptr_t k = 1; k < 200000; k++) {
        assert_int_equal(tw_wheel_schedule(w, 10, fake_callback(k), NULL, &t), 0);
        assert_int_equal(tw_wheel_cancel(w, t), 0);
    }
    assert_int_equal(tw_wheel_verify(w), 0);
    /* 65535 distinct callbacks of live timers is the limit. */
    for (uintptr_t k = 0; k < 0xffff; k++)
        assert_int_equal(tw_wheel_schedule(w, 10, fake_callback(k), NULL, &live[k]), 0);
    assert_int_equal(tw_wheel_schedule(w, 10, fake_callback(0xffff), NULL, &t), TW_ENOSPC);
    assert_int_equal(t, 0);
    /* A callback already in use still arms more timers. */
    assert_int_equal(tw_wheel_schedule(w, 10, fake_callback(7), NULL, &t), 0);
    assert_int_equal(tw_wheel_cancel(w, t), 0);
    /* The last timer of a callback frees its place. */
    assert_int_equal(tw_wheel_cancel(w, live[100]), 0);
    assert_int_equal(tw_wheel_schedule(w, 10, fake_callback(0xffff), NULL, &t), 0);
    assert_int_equal(tw_wheel_cancel(w, t), 0);
    for (uintptr_t k = 0; k < 0xffff; k++)
        if (k != 100)
            assert_int_equal(tw_wheel_cancel(w, live[k]), 0);
    assert_int_equal(tw_wheel_verify(w), 0);
    FIRED = 0;
    assert_int_equal(tw_wheel_schedule(w, 10, count, NULL, &t), 0);
    assert_int_equal(tw_wheel_advance(w, 10), 1);
    assert_int_equal(FIRED, 1);
    assert_int_equal(tw_wheel_verify(w), 0);
    tw_wheel_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors_and_names),
        cmocka_unit_test(test_config_validation),
        cmocka_unit_test(test_null_arguments),
        cmocka_unit_test(test_forged_handles),
        cmocka_unit_test(test_max_timers),
        cmocka_unit_test(test_stats_struct_size),
        cmocka_unit_test(test_too_many_callbacks),
    };
    return cmocka_run_group_tests_name("capi", tests, NULL, NULL);
}
