/*
 * The scalar twins, the run-time choice of a variant, and the grouping
 * built on the bucket kernel.
 *
 * Uses: simd/simd.hpp and the geometry it includes.
 */
#include "simd/simd.hpp"

#include <cstring>

namespace tw {
namespace simd {

namespace {

void lists_scalar(const ListParams &p, size_t n, const uint64_t *deadlines, uint32_t *ret)
{
    for (size_t k = 0; k < n; k++)
        ret[k] = list_of_tick(deadlines[k], tick_of(p, deadlines[k]), p.cur);
}

void hash_ids_scalar(size_t n, const uint32_t *ids, uint32_t *ret)
{
    for (size_t k = 0; k < n; k++)
        ret[k] = hash_id(ids[k]);
}

void buckets_scalar(size_t n, const uint32_t *ids, uint32_t nbuckets, uint32_t *ret)
{
    for (size_t k = 0; k < n; k++)
        ret[k] = bucket_of(ids[k], nbuckets);
}

} // namespace

const Kernels scalar = {"scalar", lists_scalar, hash_ids_scalar, buckets_scalar};

bool avx2_supported()
{
#if defined(__x86_64__) || defined(__i386__)
    /* Safe before libgcc's own constructor has run, as from another one. */
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
#else
    return false;
#endif
}

const Kernels *const *variants(size_t *n)
{
    static const Kernels *const all[] = {&scalar, &avx2, &base, &portable};
    static const Kernels *const no_avx2[] = {&scalar, &base, &portable};
    if (avx2_supported()) {
        *n = 4;
        return all;
    }
    *n = 3;
    return no_avx2;
}

const Kernels *find(const char *name)
{
    size_t n;
    const Kernels *const *v = variants(&n);
    for (size_t k = 0; k < n; k++)
        if (std::strcmp(v[k]->name, name) == 0)
            return v[k];
    return nullptr;
}

/*
 * The default, from tw-bench-internal --batch on a 2-vCPU EPYC guest (ns
 * per deadline, one run, median of 5): the list kernel costs 2.5 on AVX2,
 * 3.2 scalar, 9.4 on SIMDe's SSE2 emulation and 16-17 in its portable C.
 * So native AVX2 where the CPU has it, else the scalar twins.  In a build with SIMDE_NO_NATIVE the "avx2"
 * variant is SIMDe's portable C too, and is what runs: that build exists
 * to put the portable path under the whole test suite.
 */
const Kernels &kernels()
{
    static const Kernels *chosen = avx2_supported() ? &avx2 : &scalar;
    return *chosen;
}

/* A counting sort in two passes over the ids, a chunk at a time into a
 * buffer on the stack, so that the caller need not provide scratch memory.
 * Up to one chunk the buckets are computed once; past it, once per pass
 * (the kernel costs about 0.5 ns an id on AVX2, 1 scalar). */
size_t group_ids(const Kernels &k, size_t n, const uint32_t *ids, uint32_t nbuckets,
                 uint32_t *offsets, uint32_t *ret)
{
    constexpr size_t kChunk = 256;
    uint32_t b[kChunk];
    std::memset(offsets, 0, (size_t(nbuckets) + 1) * sizeof(*offsets));
    for (size_t at = 0; at < n; at += kChunk) {
        size_t m = n - at < kChunk ? n - at : kChunk;
        k.buckets(m, ids + at, nbuckets, b);
        for (size_t i = 0; i < m; i++)
            offsets[b[i] + 1]++;
    }
    size_t largest = 0;
    for (uint32_t g = 0; g < nbuckets; g++) {
        if (offsets[g + 1] > largest)
            largest = offsets[g + 1];
        offsets[g + 1] += offsets[g];
    }
    /* offsets[g] walks group g, then is put back to its start. */
    for (size_t at = 0; at < n; at += kChunk) {
        size_t m = n - at < kChunk ? n - at : kChunk;
        if (n > kChunk)     /* else b still holds them all */
            k.buckets(m, ids + at, nbuckets, b);
        for (size_t i = 0; i < m; i++)
            ret[offsets[b[i]]++] = uint32_t(at + i);
    }
    for (uint32_t g = nbuckets; g > 0; g--)
        offsets[g] = offsets[g - 1];
    offsets[0] = 0;
    return largest;
}

} // namespace simd
} // namespace tw
