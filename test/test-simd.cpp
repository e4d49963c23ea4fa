/*
 * The SIMD kernels, and the due-mask kernel of tools/internal: every
 * variant this CPU runs gives exactly what its scalar twin gives, on random input and on the edges (0, UINT64_MAX, every
 * bit and level boundary around the current tick, lengths around the
 * vector widths), and writes nothing past n.  The scalar twins themselves
 * are checked against hardware division and a direct reading of the
 * wheel's geometry.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

extern "C" {
#include <cmocka.h>
}

#include <algorithm>
#include <cstring>
#include <iterator>
#include <random>
#include <vector>

#include "due-mask.hpp"
#include "simd/simd.hpp"
#include "wheel/wheel.hpp"

namespace {

using tw::simd::Kernels;

constexpr uint32_t kCanary = 0xdeadbeefu;
const size_t kLengths[] = {0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33,
                           63, 64, 65, 100, 127, 128, 129, 200};

std::vector<const Kernels *> all_variants()
{
    size_t n;
    const Kernels *const *v = tw::simd::variants(&n);
    return std::vector<const Kernels *>(v, v + n);
}

/* The list of a deadline read off the geometry: hardware division, and a
 * loop over the levels instead of count-leading-zeros. */
uint32_t reference_list(uint64_t deadline, uint64_t tick, uint64_t cur)
{
    if (deadline == UINT64_MAX)
        return tw::kNeverList;
    uint64_t t = deadline / tick;
    if (t <= cur)
        return tw::kDueList;
    uint32_t level = 0;
    while (level + 1 < tw::kLevels && ((t ^ cur) >> ((level + 1) * 6)) != 0)
        level++;
    return level * 64 + uint32_t((t >> (level * 6)) & 63);
}

void params(uint64_t tick, uint64_t cur, tw::simd::ListParams *p)
{
    tw::Divider d;
    d.init(tick);
    static_cast<tw::TickDivision &>(*p) = d.division();
    p->cur = cur;
}

/* Runs one variant's list kernel and the scalar twin on deadlines at every
 * length, and checks both against the reference and the canaries. */
void check_lists(const Kernels &k, uint64_t tick, uint64_t cur, const std::vector<uint64_t> &in)
{
    tw::simd::ListParams p;
    params(tick, cur, &p);
    std::vector<uint32_t> want(in.size()), got(in.size() + 1);
    tw::simd::scalar.lists(p, in.size(), in.data(), want.data());
    for (size_t i = 0; i < in.size(); i++)
        if (want[i] != reference_list(in[i], tick, cur))
            fail_msg("scalar lists: deadline %llu tick %llu cur %llu: %u, want %u",
                     (unsigned long long)in[i], (unsigned long long)tick,
                     (unsigned long long)cur, want[i], reference_list(in[i], tick, cur));
    for (size_t n : kLengths) {
        for (size_t at = 0; at + n <= in.size(); at += n ? n : 1) {
            got.assign(n + 1, kCanary);
            k.lists(p, n, in.data() + at, got.data());
            assert_int_equal(got[n], kCanary);
            if (std::memcmp(got.data(), want.data() + at, n * sizeof(uint32_t)) != 0)
                for (size_t i = 0; i < n; i++)
                    if (got[i] != want[at + i])
                        fail_msg("%s lists: deadline %llu tick %llu cur %llu: %u, want %u",
                                 k.name, (unsigned long long)in[at + i],
                                 (unsigned long long)tick, (unsigned long long)cur, got[i],
                                 want[at + i]);
            if (n == 0)
                break;
        }
    }
}

/* Deadlines on the edges for a wheel at tick cur: every single-bit
 * difference from cur (each level boundary and its neighbours), the ends
 * of the 64-bit range, and cur's own tick. */
std::vector<uint64_t> edge_deadlines(uint64_t tick, uint64_t cur)
{
    std::vector<uint64_t> d = {0, 1, UINT64_MAX, UINT64_MAX - 1, UINT64_MAX / tick * tick,
                               UINT64_MAX / tick * tick - 1, uint64_t(1) << 63};
    auto at_tick = [&](uint64_t t) {
        if (t > UINT64_MAX / tick)
            return;
        d.push_back(t * tick);
        d.push_back(t * tick + tick - 1);
        if (t)
            d.push_back(t * tick - 1);
    };
    at_tick(cur);
    at_tick(cur + 1);
    for (unsigned b = 0; b < 64; b++) {
        at_tick(cur ^ (uint64_t(1) << b));
        at_tick(cur + (uint64_t(1) << b));
        at_tick(cur + (uint64_t(1) << b) - 1);
        at_tick((cur | ((uint64_t(1) << b) - 1)) + 1);
    }
    return d;
}

void test_lists_match_scalar(void **state)
{
    (void)state;
    std::mt19937_64 rng(11);
    const uint64_t ticks[] = {1000, 1024, 4096, 999999, 1000000, 1048576, 10000000, 999999937,
                              1000000000};
    for (uint64_t tick : ticks) {
        const uint64_t curs[] = {0, 1, 63, 64, 4095, 4096, (uint64_t(1) << 36) - 1,
                                 UINT64_MAX / tick, UINT64_MAX / tick - 1,
                                 1700000000000000000ull / tick, rng() / tick, rng() % 100000};
        for (uint64_t cur : curs) {
            std::vector<uint64_t> in = edge_deadlines(tick, cur);
            /* Random deadlines at every distance from now. */
            for (int i = 0; i < 600; i++) {
                uint64_t span = rng() >> (rng() % 64);
                uint64_t now = cur * tick;
                in.push_back(now + span < now ? UINT64_MAX - (rng() & 7) : now + span);
                in.push_back(rng());
            }
            for (const Kernels *k : all_variants())
                check_lists(*k, tick, cur, in);
        }
    }
}

void test_due_mask_matches_scalar(void **state)
{
    (void)state;
    std::mt19937_64 rng(12);
    std::vector<uint64_t> in;
    for (int i = 0; i < 300; i++)
        in.push_back(i % 5 == 0 ? UINT64_MAX : i % 7 == 0 ? 0 : 5000 + rng() % 10000);
    const uint64_t nows[] = {0, 1, 4999, 5000, 10000, 14999, 15000, UINT64_MAX - 1, UINT64_MAX};
    for (const Kernels *k : all_variants()) {
        for (uint64_t now : nows) {
            for (size_t n : kLengths) {
                size_t words = (n + 63) / 64;
                std::vector<uint64_t> want(words + 1, 0x5a5a), got(words + 1, 0x5a5a);
                size_t due_want = due_mask::scalar(n, in.data() + 3, now, want.data());
                size_t due_got = due_mask::find(k->name)(n, in.data() + 3, now, got.data());
                assert_int_equal(due_got, due_want);
                assert_int_equal(got[words], 0x5a5a);
                size_t count = 0;
                for (size_t i = 0; i < n; i++) {
                    bool bit = (want[i / 64] >> (i % 64)) & 1;
                    assert_int_equal(bit, in[3 + i] <= now);
                    count += bit;
                }
                assert_int_equal(count, due_want);
                for (size_t w = 0; w < words; w++)
                    assert_int_equal(got[w], want[w]);
                if (n % 64)
                    assert_int_equal(want[words - 1] >> (n % 64), 0);
            }
        }
    }
}

void test_hash_and_buckets_match_scalar(void **state)
{
    (void)state;
    std::mt19937 rng(13);
    std::vector<uint32_t> ids = {0, 1, 2, 0x7fffffffu, 0x80000000u, UINT32_MAX, UINT32_MAX - 1};
    for (int i = 0; i < 300; i++)
        ids.push_back(i % 3 ? uint32_t(rng()) : uint32_t(i));
    const uint32_t nbuckets[] = {1, 2, 3, 7, 64, 1000, 65536, 0x80000001u, UINT32_MAX};
    for (const Kernels *k : all_variants()) {
        for (size_t n : kLengths) {
            std::vector<uint32_t> want(n + 1, kCanary), got(n + 1, kCanary);
            tw::simd::scalar.hash_ids(n, ids.data() + 1, want.data());
            k->hash_ids(n, ids.data() + 1, got.data());
            assert_int_equal(got[n], kCanary);
            for (size_t i = 0; i < n; i++) {
                assert_int_equal(want[i], tw::simd::hash_id(ids[1 + i]));
                assert_int_equal(got[i], want[i]);
            }
            for (uint32_t nb : nbuckets) {
                want.assign(n + 1, kCanary);
                got.assign(n + 1, kCanary);
                tw::simd::scalar.buckets(n, ids.data() + 1, nb, want.data());
                k->buckets(n, ids.data() + 1, nb, got.data());
                assert_int_equal(got[n], kCanary);
                for (size_t i = 0; i < n; i++) {
                    assert_int_equal(want[i], tw::simd::bucket_of(ids[1 + i], nb));
                    assert_true(want[i] < nb);
                    assert_int_equal(got[i], want[i]);
                }
            }
        }
    }
    /* The mix spreads consecutive ids over the buckets. */
    uint32_t counts[8] = {};
    for (uint32_t id = 0; id < 8000; id++)
        counts[tw::simd::bucket_of(id, 8)]++;
    for (uint32_t c : counts)
        assert_true(c > 800 && c < 1200);
}

void test_group_ids(void **state)
{
    (void)state;
    std::mt19937 rng(14);
    std::vector<uint32_t> ids;
    for (int i = 0; i < 300; i++)
        ids.push_back(i % 4 == 0 ? 42u : uint32_t(rng()));   /* a crowded bucket */
    const uint32_t nbuckets[] = {1, 2, 5, 64, 1000};
    /* The lengths of the other kernels, and some around group_ids' chunk. */
    std::vector<size_t> lengths(std::begin(kLengths), std::end(kLengths));
    lengths.insert(lengths.end(), {255, 256, 257, 300});
    for (const Kernels *k : all_variants()) {
        for (size_t n : lengths) {
            for (uint32_t nb : nbuckets) {
                std::vector<uint32_t> offsets(nb + 2, kCanary), order(n + 1, kCanary);
                size_t largest =
                    tw::simd::group_ids(*k, n, ids.data(), nb, offsets.data(), order.data());
                assert_int_equal(offsets[nb + 1], kCanary);
                assert_int_equal(order[n], kCanary);
                assert_int_equal(offsets[0], 0);
                assert_int_equal(offsets[nb], n);
                size_t biggest = 0;
                for (uint32_t b = 0; b < nb; b++) {
                    assert_true(offsets[b] <= offsets[b + 1]);
                    biggest = std::max<size_t>(biggest, offsets[b + 1] - offsets[b]);
                    for (uint32_t at = offsets[b]; at < offsets[b + 1]; at++) {
                        assert_int_equal(tw::simd::bucket_of(ids[order[at]], nb), b);
                        if (at > offsets[b])
                            assert_true(order[at - 1] < order[at]);   /* stable */
                    }
                }
                assert_int_equal(largest, biggest);
                /* Every position exactly once. */
                std::vector<bool> seen(n, false);
                for (size_t at = 0; at < n; at++) {
                    assert_true(order[at] < n);
                    assert_false(seen[order[at]]);
                    seen[order[at]] = true;
                }
            }
        }
    }
}

void test_variants(void **state)
{
    (void)state;
    size_t n;
    const Kernels *const *v = tw::simd::variants(&n);
    assert_true(n >= 3);
    assert_ptr_equal(v[0], &tw::simd::scalar);
    assert_ptr_equal(tw::simd::find("scalar"), &tw::simd::scalar);
    assert_ptr_equal(tw::simd::find("portable"), &tw::simd::portable);
    assert_ptr_equal(tw::simd::find("base"), &tw::simd::base);
    assert_null(tw::simd::find("sse9"));
    assert_null(tw::simd::find(""));
    if (tw::simd::avx2_supported()) {
        assert_int_equal(n, 4);
        assert_ptr_equal(tw::simd::find("avx2"), &tw::simd::avx2);
        assert_ptr_equal(&tw::simd::kernels(), &tw::simd::avx2);
    } else {
        assert_null(tw::simd::find("avx2"));
        assert_ptr_equal(&tw::simd::kernels(), &tw::simd::scalar);
    }
}

/* A wheel armed by batches through each variant fires as one armed timer
 * by timer: same order, and verify() holds. */
void fire_log(tw_timer, uint64_t deadline_ns, void *userdata)
{
    auto *log = static_cast<std::vector<uint64_t> *>(userdata);
    log->push_back(deadline_ns);
}

void test_wheel_batches_per_variant(void **state)
{
    (void)state;
    std::mt19937_64 rng(15);
    const uint64_t ms = 1000000;
    std::vector<uint64_t> deadlines;
    for (int i = 0; i < 777; i++)
        deadlines.push_back(i % 9 == 0 ? UINT64_MAX
                                       : 5 * ms + (rng() % 4 ? rng() % (40000 * ms) : rng() % 3));
    std::vector<std::vector<uint64_t>> logs;
    for (const Kernels *k : all_variants()) {
        tw_wheel_config config;
        tw_wheel_config_init(&config);
        tw::Wheel w;
        assert_int_equal(w.init(config, 5 * ms), 0);
        w.set_kernels(*k);
        logs.emplace_back();
        std::vector<void *> uds(deadlines.size(), &logs.back());
        std::vector<tw_timer> ts(deadlines.size());
        for (size_t at = 0; at < deadlines.size(); at += 100) {
            size_t n = std::min<size_t>(100, deadlines.size() - at);
            assert_int_equal(w.schedule_batch(n, deadlines.data() + at, fire_log, uds.data(),
                                              ts.data() + at), 0);
            assert_int_equal(w.verify(), 0);
        }
        w.advance(UINT64_MAX - 1);
        assert_int_equal(w.verify(), 0);
        assert_int_equal(logs.back().size(), deadlines.size() - (deadlines.size() + 8) / 9);
    }
    for (const auto &log : logs)
        assert_true(log == logs[0]);
}

} // namespace

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_variants),
        cmocka_unit_test(test_lists_match_scalar),
        cmocka_unit_test(test_due_mask_matches_scalar),
        cmocka_unit_test(test_hash_and_buckets_match_scalar),
        cmocka_unit_test(test_group_ids),
        cmocka_unit_test(test_wheel_batches_per_variant),
    };
    return cmocka_run_group_tests_name("simd", tests, NULL, NULL);
}
