/*
 * The growable arrays behind the pools, as pool.hpp lays them out: growth
 * by remapping, the entry pool's first allocation and reserve, the block
 * pool's reserve.
 *
 * Uses: nothing in the library; realloc, which glibc serves by remapping
 * for large arrays.
 */
#include "pool/pool.hpp"

#include <cstdlib>
#include <cstring>

namespace tw {

template <typename T>
Slab<T>::~Slab()
{
    std::free(data_);
}

template <typename T>
bool Slab<T>::grow(uint32_t n, uint32_t max)
{
    if (n <= size_)
        return true;
    if (n > max)
        return false;
    uint64_t size = size_ ? size_ : (128 << 10) / sizeof(T);   /* 128 KiB first */
    while (size < n)
        size *= 2;
    if (size > max)
        size = max;
    auto *data = static_cast<T *>(std::realloc(data_, size_t(size) * sizeof(T)));
    if (!data)
        return false;
    data_ = data;
    size_ = uint32_t(size);
    return true;
}

template class Slab<Entry>;
template class Slab<Block>;

bool Pool::init(uint32_t max_entries, uint32_t initial, uint64_t key)
{
    key_ = key;
    uint64_t limit = max_entries ? uint64_t(1) + max_entries : uint64_t(kMaxIndex);
    limit_ = limit > kMaxIndex ? kMaxIndex : uint32_t(limit);
    if (initial > limit_ - 1 || !grow_to(initial + 1))
        return false;
    /* Up front means touched: the first schedules take no page faults. */
    std::memset(static_cast<void *>(&entries_[0]), 0, size_t(initial + 1) * sizeof(Entry));
    return true;
}

bool Pool::grow_to(uint32_t need)
{
    if (!entries_.grow(need, limit_))
        return false;
    usable_ = entries_.size();
    return true;
}

uint32_t Pool::grow_and_alloc()
{
    if (fresh_ >= limit_ || !grow_to(fresh_ + 1))
        return 0;
    entries_[fresh_].gen = first_gen(fresh_);
    return fresh_++;
}

bool Pool::reserve(size_t n)
{
    uint64_t avail = free_count_ + (uint64_t(limit_) - fresh_);
    if (n > avail)
        return false;
    uint64_t need = n > free_count_ ? n - free_count_ : 0;
    return uint64_t(usable_) - fresh_ >= need || grow_to(uint32_t(fresh_ + need));
}

bool BlockPool::reserve(uint64_t n)
{
    if (free_count_ >= n)
        return true;
    uint32_t first = blocks_.size();
    if (!blocks_.grow(uint32_t(first + (n - free_count_)), kNil >> 6))
        return false;
    free_count_ += blocks_.size() - first;
    return true;
}

} // namespace tw
