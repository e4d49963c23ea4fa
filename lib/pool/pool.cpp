/*
 * The growable array behind every pool: doubling from 128 KiB, by realloc,
 * which glibc serves by remapping for large arrays (no copy), with huge
 * pages asked for once it is large.
 *
 * Uses: nothing in the library.
 */
#include "pool/pool.hpp"

#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>

namespace tw {

namespace {

constexpr size_t kHugePage = size_t(2) << 20;

/* A large array is touched at random (a timer's entry, its neighbours):
 * with 4 KiB pages every touch at a million timers is a TLB miss as well
 * as a cache miss.  Asking for transparent huge pages on the 2 MiB-aligned
 * inside of the array, before its new pages are touched, removes most of
 * the former where the kernel allows them (the "madvise" setting, Debian's
 * default); elsewhere the advice is refused and nothing changes.  Growth by
 * remapping keeps the advice. */
void advise_huge(void *p, size_t bytes)
{
    if (bytes < 2 * kHugePage)
        return;
    uintptr_t start = (reinterpret_cast<uintptr_t>(p) + kHugePage - 1) & ~(kHugePage - 1);
    uintptr_t end = (reinterpret_cast<uintptr_t>(p) + bytes) & ~(kHugePage - 1);
    if (end > start)
        madvise(reinterpret_cast<void *>(start), end - start, MADV_HUGEPAGE);
}

} // namespace

bool grow_array(void **data, uint32_t *size, uint32_t n, uint32_t max, size_t elem)
{
    if (n <= *size)
        return true;
    if (n > max)
        return false;
    uint64_t grown = *size ? *size : (128 << 10) / elem;
    while (grown < n)
        grown *= 2;
    if (grown > max)
        grown = max;
    size_t bytes = size_t(grown) * elem;
    void *p = std::realloc(*data, bytes);
    if (!p)
        return false;
    advise_huge(p, bytes);
    *data = p;
    *size = uint32_t(grown);
    return true;
}

void free_array(void *data)
{
    std::free(data);
}

} // namespace tw
