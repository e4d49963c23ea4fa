/*
 * The due-mask kernel: bit k of ret[k / 64] set when deadlines[k] <= now,
 * over an array of deadlines; returns how many are due.
 *
 * No path of the library uses it (the wheel finds what is due by its
 * lists), so it lives beside what does: tw-bench-internal --batch measures
 * each variant beside the other kernels, and test-simd checks each against
 * the scalar twin.  The SIMDe source, due-mask-simd.cpp, is compiled once
 * per variant with the flags of lib/simd/kernels.cpp.
 *
 * Uses: lib/simd/lanes.hpp (in due-mask-simd.cpp) and SIMDe.
 */
#ifndef TW_TOOLS_DUE_MASK_HPP
#define TW_TOOLS_DUE_MASK_HPP

#include <cstddef>
#include <cstdint>

namespace due_mask {

using Fn = size_t (*)(size_t n, const uint64_t *deadlines, uint64_t now, uint64_t *ret);

/* The plain C++ twin, the reference. */
size_t scalar(size_t n, const uint64_t *deadlines, uint64_t now, uint64_t *ret);
/* The variant named as lib/simd names its kernel variants ("scalar",
 * "avx2", "base", "portable"), or nullptr; avx2 runs only where
 * tw::simd::avx2_supported(). */
Fn find(const char *name);

} // namespace due_mask

#endif
