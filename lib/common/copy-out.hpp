/*
 * Stats and state structs cross the C boundary by size: the caller says in
 * struct_size how large its struct is (an older caller's is smaller), and
 * gets the fields both know, with struct_size set to the bytes written.
 *
 * Uses: nothing of the library; header-only.
 */
#ifndef TW_COPY_OUT_HPP
#define TW_COPY_OUT_HPP

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace tw {

/* A caller's struct must have room for struct_size and the first counter. */
template <typename T>
bool copy_out_fits(const T *ret)
{
    return ret->struct_size >= sizeof(size_t) + sizeof(uint64_t);
}

template <typename T>
void copy_out(T &filled, T *ret)
{
    size_t n = ret->struct_size < sizeof(T) ? ret->struct_size : sizeof(T);
    filled.struct_size = n;
    std::memcpy(static_cast<void *>(ret), &filled, n);
}

} // namespace tw

#endif
