/*
 * Batch kernels: the same few loops over arrays of deadlines and connection
 * ids, once in plain C++ (the scalar twin, the reference) and once with
 * SIMDe's 256-bit intrinsics on four u64 or eight u32 lanes.
 *
 * The SIMDe source (kernels.cpp) is compiled three times: with -mavx2
 * (native AVX2, chosen at run time when the CPU has it), with the build's
 * own flags (SIMDe emulates AVX2 on SSE2), and with SIMDE_NO_NATIVE (SIMDe's
 * portable C, which the tests and tw-bench-internal can name).  Every variant gives
 * results identical to the scalar twin for every input; test-simd checks it.
 *
 * The kernels:
 *   lists      the wheel list of each deadline, as Wheel::list_for computes
 *              it: TW_NEVER goes to the never list, a tick <= cur to the due
 *              list, else level L = the 6-bit group of the highest bit where
 *              tick and cur differ, slot = the tick's group L.  Ticks are
 *              deadline / tick by the wheel's divider: a shift, or the high
 *              half of a 64 x 128-bit multiply by a reciprocal.
 *   hash_ids   a 32-bit mix (murmur3's finaliser) of each id.
 *   buckets    the bucket of each id among nbuckets: (hash * nbuckets) >> 32,
 *              uniform for any nbuckets, no division.
 * group_ids() builds on buckets: a stable counting sort of ids by bucket.
 *
 * Nothing here allocates or keeps state; kernels() resolves once, on first
 * use, which variant this process runs.
 *
 * Uses: common/wheel-geometry.hpp, which the scalar twin follows line for
 * line.  lib/wheel (batch scheduling) and
 * lib/capi (tw_conn_id_shards, tw_conn_id_group) call it.
 */
#ifndef TW_SIMD_HPP
#define TW_SIMD_HPP

#include <cstddef>
#include <cstdint>

#include "common/wheel-geometry.hpp"

namespace tw {
namespace simd {

/* The wheel's geometry as the list kernel needs it: its division by the
 * tick and its current tick. */
struct ListParams : TickDivision {
    uint64_t cur = 0;
};

struct Kernels {
    const char *name;
    void (*lists)(const ListParams &p, size_t n, const uint64_t *deadlines, uint32_t *ret);
    void (*hash_ids)(size_t n, const uint32_t *ids, uint32_t *ret);
    void (*buckets)(size_t n, const uint32_t *ids, uint32_t nbuckets, uint32_t *ret);
};

/* The plain C++ twins. */
extern const Kernels scalar;
/* SIMDe with native AVX2; use only where avx2_supported(). */
extern const Kernels avx2;
/* SIMDe on the build's own flags (SSE2 on x86-64 without -march). */
extern const Kernels base;
/* SIMDe's portable C (SIMDE_NO_NATIVE). */
extern const Kernels portable;

bool avx2_supported();
/* Every variant this CPU can run, scalar first; n set to how many. */
const Kernels *const *variants(size_t *n);
/* A variant by name ("scalar", "avx2", "base", "portable"), or nullptr when
 * unknown or not runnable here. */
const Kernels *find(const char *name);
/* The variant the library uses: avx2 when the CPU has it, else scalar (see
 * simd.cpp for the measurements behind each choice). */
const Kernels &kernels();

/* One id's hash and bucket, as the kernels compute them. */
inline uint32_t hash_id(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x85ebca6bu;
    x ^= x >> 13;
    x *= 0xc2b2ae35u;
    x ^= x >> 16;
    return x;
}
inline uint32_t bucket_of(uint32_t id, uint32_t nbuckets)
{
    return uint32_t((uint64_t(hash_id(id)) * nbuckets) >> 32);
}

/* Groups n ids by bucket, stably: ret[offsets[b] .. offsets[b + 1]) are
 * the positions in ids of those whose bucket is b, ascending.  offsets has
 * nbuckets + 1 entries.  nbuckets >= 1, n < 2^32.  Returns the largest
 * group's size. */
size_t group_ids(const Kernels &k, size_t n, const uint32_t *ids, uint32_t nbuckets,
                 uint32_t *offsets, uint32_t *ret);

} // namespace simd
} // namespace tw

#endif
