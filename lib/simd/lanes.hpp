/*
 * The lane helpers of the SIMDe kernels: 256-bit loads and stores, a u64
 * broadcast, and the unsigned 64-bit compare AVX2 lacks.
 *
 * For sources compiled once per variant (kernels.cpp, and the due-mask
 * kernel of tools/internal): the helpers sit in an unnamed namespace, so
 * each variant's copy keeps internal linkage, and a copy compiled with
 * -mavx2 can never be the one the linker keeps for code that runs on a
 * CPU without AVX2.  Include it from such sources only.
 *
 * Uses: SIMDe only.
 */
#ifndef TW_SIMD_LANES_HPP
#define TW_SIMD_LANES_HPP

#include <simde/x86/avx2.h>

#include <cstdint>

namespace tw {
namespace simd {
namespace {

typedef simde__m256i v256;

inline v256 load(const void *p) { return simde_mm256_loadu_si256(static_cast<const v256 *>(p)); }
inline void store(void *p, v256 v) { simde_mm256_storeu_si256(static_cast<v256 *>(p), v); }
inline v256 u64(uint64_t x) { return simde_mm256_set1_epi64x(int64_t(x)); }

/* Unsigned a > b per 64-bit lane, as a lane mask (AVX2 compares signed). */
inline v256 gt_u64(v256 a, v256 b)
{
    const v256 sign = u64(UINT64_C(1) << 63);
    return simde_mm256_cmpgt_epi64(simde_mm256_xor_si256(a, sign), simde_mm256_xor_si256(b, sign));
}

} // namespace
} // namespace simd
} // namespace tw

#endif
