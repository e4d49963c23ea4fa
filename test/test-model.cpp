/*
 * Randomized model test of the wheel: the harness of wheel-model.hpp fed
 * by seeded generators, over every tick, time range and operation the
 * contract admits.  A failure prints the seed and the step; `test-model
 * SEED [STEPS]` replays one run; `--seeds N --steps M` sizes a run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

extern "C" {
#include <cmocka.h>
}

#include <cstdio>
#include <cstdlib>
#include <random>
#include <cstring>

#include "wheel-model.hpp"

namespace {

struct Random : model::Source {
    explicit Random(uint64_t seed) : rng(seed) {}
    uint64_t draw(uint64_t n) override { return n ? rng() % n : rng(); }
    std::mt19937_64 rng;
};

struct CmockaReport : model::Report {
    unsigned seed = 0;
    void mismatch(const char *what, uint64_t step) override
    {
        fail_msg("seed %u step %llu: %s (replay: test-model %u)", seed, (unsigned long long)step,
                 what, seed);
    }
};

/* About 3.5 * 10^7 calls into the wheel in a release build, in seconds;
 * the sanitizers' builds run a tenth of it. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
unsigned g_seeds = 10;
#else
unsigned g_seeds = 100;
#endif
uint64_t g_steps = 30000;
unsigned g_only = 0;
bool g_replay = false;
uint64_t g_total_steps = 0, g_total_fires = 0, g_total_calls = 0;

/* One run: operations, then everything left fired, then (one run in four)
 * the wheel freed from a callback. */
void run_seed(unsigned seed, uint64_t steps)
{
    Random src(seed);
    CmockaReport rep;
    rep.seed = seed;
    model::Harness h(src, rep);
    assert_true(h.start());
    for (uint64_t i = 0; i < steps && h.step(); i++) {
    }
    assert_false(h.failed());
    assert_true(h.drain());
    if (seed % 4 == 0)
        assert_true(h.free_from_callback());
    g_total_steps += h.steps();
    g_total_fires += h.fires();
    g_total_calls += h.calls();
}

void test_model(void **)
{
    if (g_replay) {
        run_seed(g_only, g_steps);
        return;
    }
    for (unsigned s = 1; s <= g_seeds; s++)
        run_seed(s, g_steps);
    std::printf("# %u seeds, %llu steps, %llu calls into the wheel, %llu callbacks\n", g_seeds,
                (unsigned long long)g_total_steps, (unsigned long long)g_total_calls,
                (unsigned long long)g_total_fires);
}

} // namespace

int main(int argc, char **argv)
{
    /* test-model SEED [STEPS] replays; test-model --seeds N [--steps M] sizes the run. */
    for (int i = 1; i < argc; i++) {
        if (!std::strcmp(argv[i], "--seeds") && i + 1 < argc) {
            g_seeds = unsigned(std::strtoul(argv[++i], nullptr, 10));
        } else if (!std::strcmp(argv[i], "--steps") && i + 1 < argc) {
            g_steps = std::strtoull(argv[++i], nullptr, 10);
        } else {
            g_replay = true;
            g_only = unsigned(std::strtoul(argv[i], nullptr, 10));
            if (i + 1 < argc)
                g_steps = std::strtoull(argv[++i], nullptr, 10);
            break;
        }
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
