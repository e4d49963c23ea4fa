/*
 * The pools: 32-byte timer entries and 256-byte index blocks, each kept in
 * fixed chunks, addressed by a 32-bit index and recycled through a LIFO
 * free list.
 *
 * Why indices: a 4-byte index is what keeps an entry at 32 bytes, and an
 * index survives the array moving when it grows.  Entry index 0 is never
 * handed out, so a valid timer handle is never 0.
 *
 * Every release bumps the entry's generation, so a handle (index and
 * generation) to a released entry is recognised as stale until the same
 * index has been reused 2^32 times.  An entry's first generation is drawn
 * from a key of its pool's own (see first_gen), so a handle that another
 * pool issued names an index and generation that this pool has not issued,
 * except by a 2^-32 chance: every pool would otherwise hand out the same
 * first handles.
 *
 * Memory: each array doubles when full (entries up to a limit) and is
 * never shrunk before the pool is destroyed, so a warm pool never
 * allocates.  Large arrays grow by remapping, without a copy, and pages
 * not yet used cost nothing.
 */
#ifndef TW_POOL_HPP
#define TW_POOL_HPP

#include <cstddef>
#include <cstdint>

namespace tw {

constexpr uint32_t kNil = 0xffffffffu;

/* What an entry is doing. */
enum : uint16_t {
    kStateFree = 0,
    kStateArmed,    /* in a block of one of the wheel's lists */
    kStateFiring,   /* due in the current dispatch round */
    kStateRunning,  /* its callback is running */
};

struct Entry {
    uint64_t deadline;
    void *userdata;
    uint32_t gen;
    uint32_t pos;           /* armed: Block::pos(block, place); firing: round
                               position; free: next free entry */
    uint16_t cb;            /* index into the wheel's callback table */
    uint16_t state;
    uint32_t slack;         /* ns the timer may fire after the deadline it was
                               given, saturating at UINT32_MAX (~4.29 s); 0:
                               exact.  Also keeps two entries to a line. */
};
static_assert(sizeof(Entry) == 32, "an entry must stay 32 bytes");

/* A run of a list: entry indices in arming order, kNil where one left. */
struct Block {
    static constexpr unsigned kCap = 60;
    /* An armed entry's pos: its block's index, then kPosBits of its place
     * in the block. */
    static constexpr unsigned kPosBits = 6;
    static constexpr uint32_t kPosMask = (1u << kPosBits) - 1;
    static uint32_t pos(uint32_t block, unsigned at) { return block << kPosBits | at; }
    static uint32_t block_of(uint32_t pos) { return pos >> kPosBits; }
    static unsigned at_of(uint32_t pos) { return pos & kPosMask; }
    uint32_t idx[kCap];
    uint32_t prev, next;    /* neighbours in the list, kNil at the ends */
    uint16_t live, fill;
    uint32_t list;          /* the list this block belongs to */
};
static_assert(sizeof(Block) == 256, "a block must stay four cache lines");
static_assert(Block::kCap <= Block::kPosMask + 1, "a place in a block fits its bits of pos");

/* One growable array.  Elements move when it grows, so nobody keeps a
 * reference across a call that may grow it (a user callback may). */
template <typename T>
class Slab {
public:
    Slab() = default;
    Slab(const Slab &) = delete;
    Slab &operator=(const Slab &) = delete;
    ~Slab();

    T &operator[](uint32_t i) { return data_[i]; }
    const T &operator[](uint32_t i) const { return data_[i]; }
    uint32_t size() const { return size_; }
    size_t bytes() const { return size_t(size_) * sizeof(T); }
    /* Room for at least n elements, at most max; false when memory is short. */
    bool grow(uint32_t n, uint32_t max);

private:
    T *data_ = nullptr;
    uint32_t size_ = 0;
};

class Pool {
public:
    static constexpr uint32_t kMaxIndex = 0xfffffff0u;

    /* At most max_entries timers (0: no limit); initial allocated now;
     * key seeds the first generation of every entry. */
    bool init(uint32_t max_entries, uint32_t initial, uint64_t key);

    Entry &at(uint32_t i) { return entries_[i]; }
    const Entry &at(uint32_t i) const { return entries_[i]; }

    /* A fresh entry's index, or 0 when the limit or memory is reached. */
    uint32_t alloc()
    {
        uint32_t i = free_head_;
        if (i != 0) {
            free_head_ = entries_[i].pos;
            free_count_--;
            reused_++;
        } else if (fresh_ < usable_) {
            i = fresh_++;
            entries_[i].gen = first_gen(i);
        } else if (!(i = grow_and_alloc())) {
            return 0;
        }
        if (++in_use_ > high_water_)
            high_water_ = in_use_;
        return i;
    }

    void release(uint32_t i)
    {
        Entry &e = entries_[i];
        e.gen++;
        e.state = kStateFree;
        e.pos = free_head_;
        free_head_ = i;
        free_count_++;
        in_use_--;
    }

    /* n fresh entries' indices into ret, as n alloc() calls would give them
     * but with the counters updated once; reserve(n) must have succeeded. */
    void alloc_n(size_t n, uint32_t *ret)
    {
        size_t k = 0;
        uint32_t head = free_head_;
        for (; k < n && head != 0; k++) {
            ret[k] = head;
            head = entries_[head].pos;
        }
        free_head_ = head;
        free_count_ -= k;
        reused_ += k;
        for (; k < n; k++) {
            entries_[fresh_].gen = first_gen(fresh_);
            ret[k] = fresh_++;
        }
        in_use_ += n;
        if (in_use_ > high_water_)
            high_water_ = in_use_;
    }

    /* True when n more allocs will succeed; allocates chunks as needed. */
    bool reserve(size_t n);

    /* True when i names an entry that was ever handed out. */
    bool issued(uint32_t i) const { return i >= 1 && i < fresh_; }

    uint32_t fresh() const { return fresh_; }
    uint64_t in_use() const { return in_use_; }
    uint64_t high_water() const { return high_water_; }
    uint64_t reused() const { return reused_; }
    uint64_t capacity() const { return usable_ - 1; }
    uint32_t free_head() const { return free_head_; }
    uint64_t free_count() const { return free_count_; }
    size_t bytes() const { return entries_.bytes(); }

private:
    uint32_t grow_and_alloc();
    bool grow_to(uint32_t n);
    /* A mix of the key and the index (splitmix64's finaliser): independent
     * per entry, so two pools' generations of one index do not advance in
     * step. */
    uint32_t first_gen(uint32_t i) const
    {
        uint64_t x = key_ + i * UINT64_C(0x9e3779b97f4a7c15);
        x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
        return uint32_t((x ^ (x >> 31)) >> 32);
    }

    Slab<Entry> entries_;
    uint64_t key_ = 0;
    uint32_t limit_ = 0;        /* indices below this may be handed out */
    uint32_t usable_ = 0;       /* indices allocated, at most limit_ */
    uint32_t fresh_ = 1;        /* next never-used index */
    uint32_t free_head_ = 0;    /* 0: empty */
    uint64_t free_count_ = 0;
    uint64_t in_use_ = 0, high_water_ = 0, reused_ = 0;
};

class BlockPool {
public:
    Block &operator[](uint32_t b) { return blocks_[b]; }
    const Block &operator[](uint32_t b) const { return blocks_[b]; }

    /* A free block; the caller keeps enough in reserve that there is one.
     * Blocks given back are reused first; then the never-used ones, which
     * growth left untouched, so that growing does not write every new page
     * at once (at a million timers that was a 30 ms stall). */
    uint32_t take()
    {
        uint32_t b = free_head_;
        if (b != kNil)
            free_head_ = blocks_[b].next;
        else
            b = fresh_++;
        free_count_--;
        return b;
    }
    void give(uint32_t b)
    {
        blocks_[b].next = free_head_;
        free_head_ = b;
        free_count_++;
    }
    /* True when at least n blocks are free; allocates chunks as needed. */
    bool reserve(uint64_t n);

    uint64_t free_count() const { return free_count_; }
    uint32_t free_head() const { return free_head_; }
    /* Free blocks never handed out, past the free list. */
    uint32_t untouched() const { return blocks_.size() - fresh_; }
    uint32_t total() const { return blocks_.size(); }
    size_t bytes() const { return blocks_.bytes(); }

private:
    Slab<Block> blocks_;
    uint32_t fresh_ = 0;            /* blocks below were handed out once */
    uint32_t free_head_ = kNil;
    uint64_t free_count_ = 0;
};

} // namespace tw

#endif
