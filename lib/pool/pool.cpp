/*
 * The growable array behind every pool: doubling from 128 KiB, by realloc,
 * which glibc serves by remapping for large arrays (no copy).
 *
 * Uses: nothing in the library.
 */
#include "pool/pool.hpp"

#include <cstdlib>

namespace tw {

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
    void *p = std::realloc(*data, size_t(grown) * elem);
    if (!p)
        return false;
    *data = p;
    *size = uint32_t(grown);
    return true;
}

void free_array(void *data)
{
    std::free(data);
}

} // namespace tw
