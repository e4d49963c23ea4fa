/*
 * The due-mask kernel on SIMDe's 256-bit lanes, four deadlines at a time.
 * Compiled once per variant, as lib/simd/kernels.cpp is, with
 * TW_SIMD_VARIANT naming it (avx2, base, portable); everything here has
 * internal linkage but the one function pointer of the variant.  A short
 * tail is padded with UINT64_MAX and goes through the same instructions.
 *
 * Uses: lib/simd/lanes.hpp and SIMDe.
 */
#include <cstring>

#include "due-mask.hpp"
#include "simd/lanes.hpp"

#ifndef TW_SIMD_VARIANT
#error "TW_SIMD_VARIANT must name the variant"
#endif

namespace due_mask {

namespace {

using tw::simd::gt_u64;
using tw::simd::load;
using tw::simd::u64;
using tw::simd::v256;

/* Four due bits: deadline <= now. */
inline unsigned due4(v256 d, v256 now)
{
    unsigned late = unsigned(simde_mm256_movemask_pd(simde_mm256_castsi256_pd(gt_u64(d, now))));
    return ~late & 0xfu;
}

size_t due_mask(size_t n, const uint64_t *deadlines, uint64_t now, uint64_t *ret)
{
    const v256 vnow = u64(now);
    size_t due = 0, k = 0;
    for (; k + 64 <= n; k += 64) {
        uint64_t m = 0;
        for (unsigned g = 0; g < 16; g++)
            m |= uint64_t(due4(load(deadlines + k + 4 * g), vnow)) << (4 * g);
        ret[k / 64] = m;
        due += size_t(__builtin_popcountll(m));
    }
    if (k < n) {
        uint64_t m = 0;
        unsigned g = 0;
        for (; k + 4 <= n; k += 4, g++)
            m |= uint64_t(due4(load(deadlines + k), vnow)) << (4 * g);
        if (k < n) {
            uint64_t in[4] = {UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX};
            std::memcpy(in, deadlines + k, (n - k) * sizeof(*in));
            /* UINT64_MAX pads are due only at now = UINT64_MAX: mask them. */
            unsigned bits = due4(load(in), vnow) & ((1u << (n - k)) - 1);
            m |= uint64_t(bits) << (4 * g);
        }
        ret[(n - 1) / 64] = m;
        due += size_t(__builtin_popcountll(m));
    }
    return due;
}

} // namespace

extern const Fn TW_SIMD_VARIANT = due_mask;

} // namespace due_mask
