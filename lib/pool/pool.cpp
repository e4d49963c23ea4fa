#include "pool/pool.hpp"

#include <cstdlib>
#include <cstring>

namespace tw {

Pool::~Pool()
{
    for (uint32_t c = 0; c < nchunks_; c++)
        std::free(chunks_[c]);
    std::free(chunks_);
}

bool Pool::init(uint32_t reserved, uint32_t max_entries, uint32_t initial)
{
    reserved_ = reserved;
    fresh_ = reserved;
    uint64_t limit = max_entries ? uint64_t(reserved) + max_entries : uint64_t(kMaxIndex);
    limit_ = limit > kMaxIndex ? kMaxIndex : uint32_t(limit);
    if (!add_chunk())
        return false;
    return reserve(initial);
}

bool Pool::add_chunk()
{
    if (nchunks_ == chunks_cap_) {
        uint32_t cap = chunks_cap_ ? chunks_cap_ * 2 : 16;
        auto **c = static_cast<Entry **>(std::realloc(chunks_, cap * sizeof(Entry *)));
        if (!c)
            return false;
        chunks_ = c;
        chunks_cap_ = cap;
    }
    auto *chunk = static_cast<Entry *>(std::malloc(kChunkSize * sizeof(Entry)));
    if (!chunk)
        return false;
    /* Every entry starts free-looking, so a forged handle to an entry that
     * was never issued reads as stale rather than as garbage. */
    std::memset(static_cast<void *>(chunk), 0, kChunkSize * sizeof(Entry));
    for (uint32_t i = 0; i < kChunkSize; i++) {
        chunk[i].where = kWhereFree;
        chunk[i].gen = 1;
    }
    chunks_[nchunks_++] = chunk;
    capacity_ += kChunkSize;
    usable_ = capacity_ < limit_ ? capacity_ : limit_;
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
    while (uint64_t(capacity_) - fresh_ < need)
        if (!add_chunk())
            return false;
    return true;
}

size_t Pool::bytes() const
{
    return size_t(nchunks_) * kChunkSize * sizeof(Entry) + chunks_cap_ * sizeof(Entry *);
}

} // namespace tw
