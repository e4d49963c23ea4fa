/*
 * Internals the public API cannot reach exactly: the tick divider against
 * the hardware division, and the pool's growth, limit and generations.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

extern "C" {
#include <cmocka.h>
}

#include <random>

#include "pool/pool.hpp"
#include "wheel/wheel.hpp"

namespace {

void test_divider_matches_division(void **state)
{
    (void)state;
    std::mt19937_64 rng(7);
    const uint64_t divisors[] = {1000, 1001, 1024, 4096, 999999, 1000000, 1048576, 3000007,
                                 10000000, 999999937, 1000000000};
    for (uint64_t d : divisors) {
        tw::Divider div;
        div.init(d);
        assert_int_equal(div.divisor(), d);
        const uint64_t edges[] = {0, 1, d - 1, d, d + 1, 2 * d - 1, 2 * d, UINT64_MAX,
                                  UINT64_MAX - 1, UINT64_MAX / d * d, UINT64_MAX / d * d - 1,
                                  uint64_t(1) << 63, (uint64_t(1) << 63) - 1};
        for (uint64_t n : edges)
            assert_int_equal(div.divide(n), n / d);
        for (int i = 0; i < 200000; i++) {
            uint64_t n = rng() >> (rng() % 64);
            assert_int_equal(div.divide(n), n / d);
            uint64_t q = n / d;
            if (q)
                assert_int_equal(div.divide(q * d - 1), q - 1);
        }
    }
    std::uniform_int_distribution<uint64_t> any(TW_TICK_MIN_NS, TW_TICK_MAX_NS);
    for (int k = 0; k < 2000; k++) {
        uint64_t d = any(rng);
        tw::Divider div;
        div.init(d);
        for (int i = 0; i < 200; i++) {
            uint64_t n = rng() >> (rng() % 64);
            assert_int_equal(div.divide(n), n / d);
        }
    }
}

void test_pool_limit_and_generations(void **state)
{
    (void)state;
    tw::Pool pool;
    assert_true(pool.init(5000, 0, 0));
    uint32_t first = pool.alloc();
    assert_int_equal(first, 1);                     /* 0 is never a timer */
    uint32_t gen = pool.at(first).gen;
    pool.release(first);
    assert_int_equal(pool.at(first).gen, gen + 1);
    assert_int_equal(pool.alloc(), first);          /* LIFO reuse */
    assert_int_equal(pool.reused(), 1);
    for (int i = 1; i < 5000; i++)
        assert_int_not_equal(pool.alloc(), 0);
    assert_int_equal(pool.alloc(), 0);             /* the limit, across a chunk */
    assert_int_equal(pool.in_use(), 5000);
    assert_false(pool.reserve(1));
    pool.release(first + 4242);
    assert_true(pool.reserve(1));
    assert_false(pool.reserve(2));
    assert_int_equal(pool.alloc(), first + 4242);
    assert_int_equal(pool.high_water(), 5000);
    assert_int_equal(pool.capacity(), 5000);
}

void test_block_pool(void **state)
{
    (void)state;
    tw::BlockPool blocks;
    assert_int_equal(blocks.free_count(), 0);
    assert_true(blocks.reserve(300));               /* 128 KiB first */
    assert_int_equal(blocks.total(), 512);
    assert_int_equal(blocks.free_count(), 512);
    uint32_t a = blocks.take(), b = blocks.take();
    assert_int_not_equal(a, b);
    assert_true(a < 512 && b < 512);
    blocks.give(a);
    assert_int_equal(blocks.take(), a);
    assert_int_equal(blocks.free_count(), 510);
    assert_true(blocks.reserve(510));
    assert_int_equal(blocks.total(), 512);
}

} // namespace

int main()
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_divider_matches_division),
        cmocka_unit_test(test_pool_limit_and_generations),
        cmocka_unit_test(test_block_pool),
    };
    return cmocka_run_group_tests_name("internal", tests, nullptr, nullptr);
}
