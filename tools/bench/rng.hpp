/*
 * The benchmarks' random numbers: xoshiro256** seeded through splitmix64,
 * the same draws from every standard library, which <random>'s
 * distributions do not promise.  The peer workloads and the loop's
 * lateness deadlines draw from it.
 *
 * Uses: nothing of the library; header-only.
 */
#ifndef TW_BENCH_RNG_HPP
#define TW_BENCH_RNG_HPP

#include <cstdint>

namespace bench {

/* xoshiro256** seeded through splitmix64: the same draws from every standard
 * library, which <random>'s distributions do not promise. */
class Rng {
public:
    explicit Rng(std::uint64_t seed)
    {
        for (auto &word : state_)
            word = splitmix(seed);
    }

    std::uint64_t next()
    {
        const std::uint64_t result = rotl(state_[1] * 5, 7) * 9;
        const std::uint64_t t = state_[1] << 17;
        state_[2] ^= state_[0];
        state_[3] ^= state_[1];
        state_[1] ^= state_[2];
        state_[0] ^= state_[3];
        state_[2] ^= t;
        state_[3] = rotl(state_[3], 45);
        return result;
    }

    /* Uniform in [0, bound) by multiply-shift; the bias is below bound / 2^64. */
    std::uint64_t below(std::uint64_t bound)
    {
        __extension__ using u128 = unsigned __int128;
        return static_cast<std::uint64_t>((static_cast<u128>(next()) * bound) >> 64);
    }

private:
    static std::uint64_t splitmix(std::uint64_t &x)
    {
        std::uint64_t z = (x += 0x9e3779b97f4a7c15);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
        z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
        return z ^ (z >> 31);
    }
    static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

    std::uint64_t state_[4];
};

} // namespace bench

#endif
