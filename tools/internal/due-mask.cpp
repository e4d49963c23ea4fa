/*
 * The due-mask kernel's scalar twin and the lookup of its variants.  See
 * due-mask.hpp.
 *
 * Uses: nothing of the library.
 */
#include "due-mask.hpp"

#include <cstring>

namespace due_mask {

extern const Fn avx2, base, portable;

size_t scalar(size_t n, const uint64_t *deadlines, uint64_t now, uint64_t *ret)
{
    size_t due = 0;
    for (size_t w = 0; w < (n + 63) / 64; w++) {
        uint64_t m = 0;
        size_t end = n - w * 64 < 64 ? n - w * 64 : 64;
        for (size_t b = 0; b < end; b++)
            m |= uint64_t(deadlines[w * 64 + b] <= now) << b;
        ret[w] = m;
        due += size_t(__builtin_popcountll(m));
    }
    return due;
}

Fn find(const char *name)
{
    const struct {
        const char *name;
        Fn fn;
    } all[] = {{"scalar", scalar}, {"avx2", avx2}, {"base", base}, {"portable", portable}};
    for (const auto &v : all)
        if (std::strcmp(v.name, name) == 0)
            return v.fn;
    return nullptr;
}

} // namespace due_mask
