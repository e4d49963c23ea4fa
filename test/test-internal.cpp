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

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "common/histogram.hpp"

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

/* A record the pool can hold: a generation and a free-list link. */
struct Record {
    uint32_t gen;
    uint32_t next;
    uint64_t payload;
};

void test_pool_limit_and_generations(void **state)
{
    (void)state;
    tw::Pool<Record> pool;
    assert_true(pool.init(3, 5000, 0, 0));
    uint32_t first = pool.alloc();
    assert_int_equal(first, 3);                     /* the reserved are never handed out */
    assert_false(pool.issued(2));
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

/* Two pools keyed differently start their records at different
 * generations, so one's handles do not name the other's records. */
void test_pool_keys(void **state)
{
    (void)state;
    tw::Pool<Record> a, b;
    assert_true(a.init(1, 0, 16, 1));
    assert_true(b.init(1, 0, 16, 2));
    int same = 0;
    for (int k = 0; k < 16; k++) {
        uint32_t i = a.alloc(), j = b.alloc();
        assert_int_equal(i, j);
        same += a.at(i).gen == b.at(j).gen;
    }
    assert_true(same <= 1);
}

/* The histogram's percentiles against the exact ones of sorted samples,
 * over distributions from nanoseconds to hours: within 1/128, or exact
 * below 128 ns. */
void test_histogram_percentiles(void **)
{
    std::mt19937_64 rng(11);
    for (int dist = 0; dist < 5; dist++) {
        auto *h = new tw::Histogram;
        std::vector<uint64_t> v;
        for (int i = 0; i < 200000; i++) {
            double x;
            switch (dist) {
            case 0: x = double(rng() % 100); break;
            case 1: x = double(rng() % 5000000); break;
            case 2: x = std::lognormal_distribution<double>(9.0, 2.0)(rng); break;
            case 3: x = std::exponential_distribution<double>(1e-6)(rng); break;
            default: x = double(rng() >> (rng() % 64)); break;
            }
            uint64_t u = x >= 1.8e19 ? UINT64_MAX : uint64_t(x);
            v.push_back(u);
            h->record(u);
        }
        std::sort(v.begin(), v.end());
        assert_int_equal(h->total(), v.size());
        assert_int_equal(h->max(), v.back());
        for (double q : {0.01, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0}) {
            size_t rank = size_t(std::ceil(q * double(v.size())));
            uint64_t exact = v[rank - 1];
            uint64_t got = h->quantile(q);
            double err = exact ? std::fabs(double(got) - double(exact)) / double(exact) : double(got);
            if (exact < 128)
                assert_int_equal(got, exact);
            else if (err > 1.0 / 128)
                fail_msg("distribution %d q %g: exact %llu, got %llu", dist, q,
                         (unsigned long long)exact, (unsigned long long)got);
        }
        delete h;
    }
    tw::Histogram empty;
    assert_int_equal(empty.quantile(0.5), 0);
    for (uint64_t v : {uint64_t(0), uint64_t(127), uint64_t(128), uint64_t(1) << 40, UINT64_MAX})
        assert_true(tw::Histogram::index(v) < tw::Histogram::kBuckets);
}

} // namespace

int main()
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_divider_matches_division),
        cmocka_unit_test(test_pool_limit_and_generations),
        cmocka_unit_test(test_pool_keys),
        cmocka_unit_test(test_histogram_percentiles),
    };
    return cmocka_run_group_tests_name("internal", tests, nullptr, nullptr);
}
