/*
 * The entry pool: 32-byte timer entries in fixed chunks, addressed by a
 * 32-bit index, recycled through a LIFO free list.
 *
 * Why indices: a link is 4 bytes instead of 8, which is what keeps an entry
 * at 32 bytes, and chunks never move, so a reference to an entry stays valid
 * while the chunk table grows under it (callbacks may schedule).  The first
 * `reserved` indices are list heads (sentinels) owned by the wheel; they are
 * never handed out, so a valid timer index is never 0.
 *
 * Every release bumps the entry's generation, so a handle (index and
 * generation) to a released entry is recognised as stale until the same
 * index has been reused 2^32 times.
 *
 * Memory: chunks of 4096 entries (128 KiB), allocated on demand up to a
 * limit; nothing is returned to the heap before the pool is destroyed, so a
 * warm pool never allocates.
 */
#ifndef TW_POOL_HPP
#define TW_POOL_HPP

#include <cstddef>
#include <cstdint>

namespace tw {

/* Where an entry is: a list head index (< 0xfff0), or one of these. */
enum : uint16_t {
    kWhereFree = 0xffff,    /* on the free list */
    kWhereRunning = 0xfffe, /* its callback is running; in no list */
    kWhereSentinel = 0xfffd,
};

struct Entry {
    uint64_t deadline;
    void *userdata;
    uint32_t next, prev;    /* circular list through a sentinel */
    uint32_t gen;
    uint16_t cb;            /* index into the wheel's callback table */
    uint16_t where;
};
static_assert(sizeof(Entry) == 32, "an entry must stay 32 bytes");

class Pool {
public:
    static constexpr uint32_t kChunkShift = 12;
    static constexpr uint32_t kChunkSize = 1u << kChunkShift;
    static constexpr uint32_t kMaxIndex = 0xffffffffu - kChunkSize;

    Pool() = default;
    Pool(const Pool &) = delete;
    Pool &operator=(const Pool &) = delete;
    ~Pool();

    /* reserved sentinels first; at most max_entries timers (0: no limit);
     * initial timers allocated now.  False when memory is short. */
    bool init(uint32_t reserved, uint32_t max_entries, uint32_t initial);

    Entry &at(uint32_t i) { return chunks_[i >> kChunkShift][i & (kChunkSize - 1)]; }
    const Entry &at(uint32_t i) const { return chunks_[i >> kChunkShift][i & (kChunkSize - 1)]; }

    /* A fresh entry's index, or 0 when the limit or memory is reached. */
    uint32_t alloc()
    {
        uint32_t i = free_head_;
        if (i != 0) {
            free_head_ = at(i).next;
            free_count_--;
            reused_++;
        } else if (fresh_ < usable_) {
            i = fresh_++;
        } else if (!(i = grow_and_alloc())) {
            return 0;
        }
        if (++in_use_ > high_water_)
            high_water_ = in_use_;
        return i;
    }

    void release(uint32_t i)
    {
        Entry &e = at(i);
        e.gen++;
        e.where = kWhereFree;
        e.next = free_head_;
        free_head_ = i;
        free_count_++;
        in_use_--;
    }

    /* True when n more allocs will succeed; allocates chunks as needed. */
    bool reserve(size_t n);

    /* True when i names an entry that was ever handed out. */
    bool issued(uint32_t i) const { return i >= reserved_ && i < fresh_; }

    uint32_t reserved() const { return reserved_; }
    uint32_t fresh() const { return fresh_; }
    uint64_t in_use() const { return in_use_; }
    uint64_t high_water() const { return high_water_; }
    uint64_t reused() const { return reused_; }
    uint64_t capacity() const { return capacity_ - reserved_; }
    uint32_t free_head() const { return free_head_; }
    uint64_t free_count() const { return free_count_; }
    size_t bytes() const;

private:
    uint32_t grow_and_alloc();
    bool add_chunk();

    Entry **chunks_ = nullptr;
    uint32_t nchunks_ = 0, chunks_cap_ = 0;
    uint32_t reserved_ = 0;
    uint32_t limit_ = 0;        /* indices below this may be handed out */
    uint32_t capacity_ = 0;     /* indices backed by a chunk */
    uint32_t usable_ = 0;       /* min(capacity_, limit_) */
    uint32_t fresh_ = 0;        /* next never-used index */
    uint32_t free_head_ = 0;    /* 0: empty (0 is a sentinel) */
    uint64_t free_count_ = 0;
    uint64_t in_use_ = 0, high_water_ = 0, reused_ = 0;
};

} // namespace tw

#endif
