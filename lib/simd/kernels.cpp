/*
 * The SIMDe kernels.  This file is compiled once per variant, with
 * TW_SIMD_VARIANT naming it (avx2, base, portable) and the flags that make
 * it one (-mavx2; nothing; -DSIMDE_NO_NATIVE).  Everything in it has
 * internal linkage but the one Kernels table, and it uses no inline
 * function of the C++ library: a copy compiled with -mavx2 must never be
 * the one the linker keeps for code that runs on a CPU without AVX2.
 *
 * A short tail (fewer elements than lanes) is copied into a padded vector
 * and goes through the same instructions, so no scalar tail code exists to
 * drift from the vector code.
 *
 * Uses: simd/simd.hpp, simd/lanes.hpp and SIMDe.
 */
#include <simde/x86/avx2.h>

#include <cstring>

#include "simd/lanes.hpp"
#include "simd/simd.hpp"

#ifndef TW_SIMD_VARIANT
#error "TW_SIMD_VARIANT must name the variant"
#endif

namespace tw {
namespace simd {

namespace {

/* The high 64 bits of a * b per lane, and the low ones in *lo, from four
 * 32 x 32 -> 64-bit products. */
inline v256 mul_u64(v256 a, v256 b, v256 *lo)
{
    const v256 low32 = u64(0xffffffffu);
    v256 ah = simde_mm256_srli_epi64(a, 32), bh = simde_mm256_srli_epi64(b, 32);
    v256 p00 = simde_mm256_mul_epu32(a, b);
    v256 p01 = simde_mm256_mul_epu32(a, bh);
    v256 p10 = simde_mm256_mul_epu32(ah, b);
    v256 p11 = simde_mm256_mul_epu32(ah, bh);
    v256 mid = simde_mm256_add_epi64(simde_mm256_srli_epi64(p00, 32),
                                     simde_mm256_add_epi64(simde_mm256_and_si256(p01, low32),
                                                           simde_mm256_and_si256(p10, low32)));
    if (lo)
        *lo = simde_mm256_or_si256(simde_mm256_slli_epi64(mid, 32),
                                   simde_mm256_and_si256(p00, low32));
    return simde_mm256_add_epi64(
        p11, simde_mm256_add_epi64(simde_mm256_add_epi64(simde_mm256_srli_epi64(p01, 32),
                                                         simde_mm256_srli_epi64(p10, 32)),
                                   simde_mm256_srli_epi64(mid, 32)));
}

/* Four deadlines to four list ids, in the low 128 bits. */
inline simde__m128i lists4(const ListParams &p, v256 d)
{
    v256 t;
    if (p.shift >= 0) {
        t = simde_mm256_srl_epi64(d, simde_mm_cvtsi32_si128(p.shift));
    } else {
        /* (d * hi + high(d * lo)) >> 64, the carry of the sum included. */
        v256 part = mul_u64(d, u64(p.recip_lo), nullptr);
        v256 sum;
        v256 high = mul_u64(d, u64(p.recip_hi), &sum);
        sum = simde_mm256_add_epi64(sum, part);
        /* A carry is all-ones in its lane: subtracting it adds one. */
        t = simde_mm256_sub_epi64(high, gt_u64(part, sum));
    }
    const v256 cur = u64(p.cur);
    v256 x = simde_mm256_xor_si256(t, cur);
    /* The level counts the group boundaries 2^6, 2^12, ... that x reaches. */
    v256 level = simde_mm256_setzero_si256();
    for (unsigned l = 1; l < kLevels; l++)
        level = simde_mm256_sub_epi64(level, gt_u64(x, u64((uint64_t(1) << (l * kLevelBits)) - 1)));
    v256 shift = simde_mm256_add_epi64(simde_mm256_slli_epi64(level, 2),
                                       simde_mm256_slli_epi64(level, 1));
    v256 slot = simde_mm256_and_si256(simde_mm256_srlv_epi64(t, shift), u64(63));
    v256 list = simde_mm256_or_si256(simde_mm256_slli_epi64(level, kLevelBits), slot);
    list = simde_mm256_blendv_epi8(u64(kDueList), list, gt_u64(t, cur));
    list = simde_mm256_blendv_epi8(list, u64(kNeverList),
                                   simde_mm256_cmpeq_epi64(d, u64(UINT64_MAX)));
    const v256 even = simde_mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    return simde_mm256_castsi256_si128(simde_mm256_permutevar8x32_epi32(list, even));
}

void lists(const ListParams &p, size_t n, const uint64_t *deadlines, uint32_t *ret)
{
    size_t k = 0;
    for (; k + 4 <= n; k += 4)
        simde_mm_storeu_si128(reinterpret_cast<simde__m128i *>(ret + k),
                              lists4(p, load(deadlines + k)));
    if (k < n) {
        uint64_t in[4] = {0, 0, 0, 0};
        uint32_t out[4];
        std::memcpy(in, deadlines + k, (n - k) * sizeof(*in));
        simde_mm_storeu_si128(reinterpret_cast<simde__m128i *>(out), lists4(p, load(in)));
        std::memcpy(ret + k, out, (n - k) * sizeof(*out));
    }
}

inline v256 hash8(v256 x)
{
    x = simde_mm256_xor_si256(x, simde_mm256_srli_epi32(x, 16));
    x = simde_mm256_mullo_epi32(x, simde_mm256_set1_epi32(int32_t(0x85ebca6bu)));
    x = simde_mm256_xor_si256(x, simde_mm256_srli_epi32(x, 13));
    x = simde_mm256_mullo_epi32(x, simde_mm256_set1_epi32(int32_t(0xc2b2ae35u)));
    return simde_mm256_xor_si256(x, simde_mm256_srli_epi32(x, 16));
}

/* (hash * nbuckets) >> 32 per 32-bit lane: even lanes and odd lanes each
 * through one 32 x 32 -> 64-bit multiply. */
inline v256 bucket8(v256 ids, v256 nb)
{
    v256 h = hash8(ids);
    v256 even = simde_mm256_srli_epi64(simde_mm256_mul_epu32(h, nb), 32);
    v256 odd = simde_mm256_mul_epu32(simde_mm256_srli_epi64(h, 32), nb);
    return simde_mm256_blend_epi32(even, odd, 0xaa);
}

template <typename F>
inline void map8(size_t n, const uint32_t *in, uint32_t *ret, F f)
{
    size_t k = 0;
    for (; k + 8 <= n; k += 8)
        store(ret + k, f(load(in + k)));
    if (k < n) {
        uint32_t pad[8] = {0, 0, 0, 0, 0, 0, 0, 0}, out[8];
        std::memcpy(pad, in + k, (n - k) * sizeof(*pad));
        store(out, f(load(pad)));
        std::memcpy(ret + k, out, (n - k) * sizeof(*out));
    }
}

void hash_ids(size_t n, const uint32_t *ids, uint32_t *ret)
{
    map8(n, ids, ret, hash8);
}

void buckets(size_t n, const uint32_t *ids, uint32_t nbuckets, uint32_t *ret)
{
    const v256 nb = simde_mm256_set1_epi32(int32_t(nbuckets));
    map8(n, ids, ret, [nb](v256 v) { return bucket8(v, nb); });
}

} // namespace

#define TW_SIMD_STR2(x) #x
#define TW_SIMD_STR(x) TW_SIMD_STR2(x)

extern const Kernels TW_SIMD_VARIANT = {TW_SIMD_STR(TW_SIMD_VARIANT), lists, hash_ids, buckets};

} // namespace simd
} // namespace tw
