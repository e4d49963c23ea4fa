/*
 * A pool of fixed-size records addressed by 32-bit index, recycled through
 * a LIFO free list, with a generation per record to tell a live handle from
 * a stale one.
 *
 * Why indices: a 4-byte index is what keeps a record small, and an index
 * survives the array moving when it grows.  The first `reserved` indices
 * are never handed out (the wheel keeps its list heads there), so index 0
 * means "none".
 *
 * A record type T has two members the pool uses: `gen`, bumped by every
 * release, and `next`, the free list's link while the record is free.  A
 * handle (index and generation) to a released record is recognised as
 * stale until the same index has been reused 2^32 times.  A record's first
 * generation is drawn from a key of the pool's own (see first_gen), so a
 * handle that another pool issued names an index and generation that this
 * pool has not issued, except by a 2^-32 chance: every pool would otherwise
 * hand out the same first handles.
 *
 * Memory: the array doubles when full (up to a limit) and is never shrunk
 * before the pool is destroyed, so a warm pool never allocates.  Large
 * arrays grow by remapping, without a copy, and pages not yet used cost
 * nothing.
 */
#ifndef TW_POOL_HPP
#define TW_POOL_HPP

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace tw {

constexpr uint32_t kNil = 0xffffffffu;

/* Grows *data (of *size elements of elem bytes) to at least n elements, at
 * most max; false when that is beyond max or memory is short. */
bool grow_array(void **data, uint32_t *size, uint32_t n, uint32_t max, size_t elem);
void free_array(void *data);

template <typename T>
class Pool {
public:
    static constexpr uint32_t kMaxIndex = 0xfffffff0u;

    Pool() = default;
    Pool(const Pool &) = delete;
    Pool &operator=(const Pool &) = delete;
    ~Pool() { free_array(data_); }

    /* Indices below `reserved` (at least 1) are never handed out and are
     * zeroed for the owner's use; at most max_records records (0: no
     * limit); `initial` allocated and touched now; key seeds the first
     * generation of every record. */
    bool init(uint32_t reserved, uint32_t max_records, uint32_t initial, uint64_t key)
    {
        key_ = key;
        reserved_ = fresh_ = reserved;
        uint64_t limit = max_records ? uint64_t(reserved) + max_records : uint64_t(kMaxIndex);
        limit_ = limit > kMaxIndex ? kMaxIndex : uint32_t(limit);
        if (uint64_t(initial) > limit_ - reserved || !grow_to(reserved + initial))
            return false;
        /* Up front means touched: the first allocations take no page faults. */
        std::memset(static_cast<void *>(data_), 0, size_t(reserved + initial) * sizeof(T));
        primed_ = reserved + initial;
        for (uint32_t i = reserved; i < primed_; i++)
            data_[i].gen = first_gen(i);
        return true;
    }

    T &at(uint32_t i) { return data_[i]; }
    const T &at(uint32_t i) const { return data_[i]; }

    /* A fresh record's index, or 0 when the limit or memory is reached. */
    uint32_t alloc()
    {
        uint32_t i = free_head_;
        if (i != 0) {
            free_head_ = data_[i].next;
            free_count_--;
            reused_++;
        } else if (fresh_ < usable_ || grow_to(fresh_ + 1)) {
            i = fresh_++;
            if (i >= primed_)
                data_[i].gen = first_gen(i);
        } else {
            return 0;
        }
        return i;
    }

    void release(uint32_t i)
    {
        T &e = data_[i];
        e.gen++;
        e.next = free_head_;
        free_head_ = i;
        free_count_++;
    }

    /* n fresh records' indices into ret, as n alloc() calls would give them
     * but with the counters updated once; reserve(n) must have succeeded. */
    void alloc_n(size_t n, uint32_t *ret)
    {
        size_t k = 0;
        uint32_t head = free_head_;
        for (; k < n && head != 0; k++) {
            ret[k] = head;
            head = data_[head].next;
        }
        free_head_ = head;
        free_count_ -= k;
        reused_ += k;
        for (; k < n; k++) {
            if (fresh_ >= primed_)
                data_[fresh_].gen = first_gen(fresh_);
            ret[k] = fresh_++;
        }
    }

    /* True when n more allocs will succeed; allocates as needed. */
    bool reserve(size_t n)
    {
        uint64_t avail = free_count_ + (uint64_t(limit_) - fresh_);
        if (n > avail)
            return false;
        uint64_t need = n > free_count_ ? n - free_count_ : 0;
        return uint64_t(usable_) - fresh_ >= need || grow_to(uint32_t(fresh_ + need));
    }

    /* True when i names a record that was ever handed out. */
    bool issued(uint32_t i) const { return i >= reserved_ && i < fresh_; }

    uint32_t reserved() const { return reserved_; }
    uint32_t fresh() const { return fresh_; }
    uint64_t in_use() const { return fresh_ - reserved_ - free_count_; }
    /* Fresh indices are handed out only when none is free, so the most in
     * use at once is how many were ever handed out. */
    uint64_t high_water() const { return fresh_ - reserved_; }
    uint64_t reused() const { return reused_; }
    uint64_t capacity() const { return usable_ - reserved_; }
    uint32_t free_head() const { return free_head_; }
    uint64_t free_count() const { return free_count_; }
    size_t bytes() const { return size_t(usable_) * sizeof(T); }

private:
    bool grow_to(uint32_t n)
    {
        void *data = data_;
        if (!grow_array(&data, &usable_, n, limit_, sizeof(T)))
            return false;
        data_ = static_cast<T *>(data);
        return true;
    }
    /* A mix of the key and the index (splitmix64's finaliser): independent
     * per record, so two pools' generations of one index do not advance in
     * step. */
    uint32_t first_gen(uint32_t i) const
    {
        uint64_t x = key_ + i * UINT64_C(0x9e3779b97f4a7c15);
        x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
        return uint32_t((x ^ (x >> 31)) >> 32);
    }

    T *data_ = nullptr;
    uint64_t key_ = 0;
    uint32_t reserved_ = 1;
    uint32_t limit_ = 0;        /* indices below this may be handed out */
    uint32_t usable_ = 0;       /* indices allocated, at most limit_ */
    uint32_t fresh_ = 1;        /* next never-used index */
    uint32_t primed_ = 0;       /* records below have their first generation */
    uint32_t free_head_ = 0;    /* 0: empty */
    uint64_t free_count_ = 0;
    uint64_t reused_ = 0;
};

} // namespace tw

#endif
