#include "pool/pool.hpp"

#include <cstdlib>
#include <cstring>

namespace tw {

template <typename T, unsigned Shift>
Chunks<T, Shift>::~Chunks()
{
    for (uint32_t c = 0; c < n_; c++)
        std::free(chunks_[c]);
    std::free(chunks_);
}

template <typename T, unsigned Shift>
bool Chunks<T, Shift>::grow()
{
    if (n_ == cap_) {
        uint32_t cap = cap_ ? cap_ * 2 : 16;
        auto **c = static_cast<T **>(std::realloc(chunks_, cap * sizeof(T *)));
        if (!c)
            return false;
        chunks_ = c;
        cap_ = cap;
    }
    auto *chunk = static_cast<T *>(std::calloc(kChunk, sizeof(T)));
    if (!chunk)
        return false;
    chunks_[n_++] = chunk;
    return true;
}

template class Chunks<Entry, 12>;
template class Chunks<Block, 8>;

bool Pool::init(uint32_t max_entries, uint32_t initial)
{
    uint64_t limit = max_entries ? uint64_t(1) + max_entries : uint64_t(kMaxIndex);
    limit_ = limit > kMaxIndex ? kMaxIndex : uint32_t(limit);
    return add_chunk() && reserve(initial);
}

bool Pool::add_chunk()
{
    if (!entries_.grow())
        return false;
    usable_ = entries_.size() < limit_ ? entries_.size() : limit_;
    return true;
}

uint32_t Pool::grow_and_alloc()
{
    if (fresh_ >= limit_ || !add_chunk())
        return 0;
    return fresh_++;
}

bool Pool::reserve(size_t n)
{
    uint64_t avail = free_count_ + (uint64_t(limit_) - fresh_);
    if (n > avail)
        return false;
    uint64_t need = n > free_count_ ? n - free_count_ : 0;
    while (uint64_t(usable_) - fresh_ < need)
        if (!add_chunk())
            return false;
    return true;
}

bool BlockPool::reserve(uint64_t n)
{
    while (free_count_ < n) {
        uint32_t first = blocks_.size();
        if (first > (kNil >> 6) - Chunks<Block, 8>::kChunk || !blocks_.grow())
            return false;
        for (uint32_t b = blocks_.size(); b-- > first;)
            give(b);
    }
    return true;
}

} // namespace tw
