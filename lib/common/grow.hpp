/*
 * Growing a plain array by doubling, the one rule the wheel's side arrays
 * (the round, the sort's scratch, periods and slacks) share.
 *
 * Uses: nothing of the library; header-only, no state.
 */
#ifndef TW_COMMON_GROW_HPP
#define TW_COMMON_GROW_HPP

#include <cstdint>
#include <cstdlib>

namespace tw {

/* Makes *p hold at least need elements, doubling *cap from `first`; false
 * when memory is short, *p and *cap then unchanged.  T must be trivially
 * copyable. */
template <typename T>
bool grow(T **p, uint32_t *cap, uint32_t need, uint32_t first)
{
    if (need <= *cap)
        return true;
    uint32_t n = *cap ? *cap : first;
    while (n < need)
        n = n > UINT32_MAX / 2 ? UINT32_MAX : n * 2;
    void *q = std::realloc(static_cast<void *>(*p), size_t(n) * sizeof(T));
    if (!q)
        return false;
    *p = static_cast<T *>(q);
    *cap = n;
    return true;
}

} // namespace tw

#endif
