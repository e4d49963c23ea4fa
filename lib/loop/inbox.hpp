/*
 * The inbox: a bounded multi-producer, single-consumer ring of commands.
 *
 * Each cell carries a sequence number that says whose turn it is: a
 * producer claims a position with one compare-and-swap on the tail and
 * publishes the cell by storing position + 1; the consumer takes it when the
 * sequence says so and hands the cell back by storing position + size.  No
 * lock, no allocation after construction; a full ring refuses (the caller
 * decides between failing and waiting).  Commands of one producer come out
 * in the order it pushed them.
 *
 * Uses: nothing of the library; header-only.
 */
#ifndef TW_INBOX_HPP
#define TW_INBOX_HPP

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace tw {

template <typename T>
class Inbox {
public:
    Inbox() = default;
    Inbox(const Inbox &) = delete;
    Inbox &operator=(const Inbox &) = delete;
    ~Inbox() { std::free(cells_); }

    /* Capacity rounded up to a power of two, at least 2. */
    bool init(uint32_t capacity)
    {
        uint64_t n = 2;
        while (n < capacity)
            n *= 2;
        cells_ = static_cast<Cell *>(std::calloc(n, sizeof(Cell)));
        if (!cells_)
            return false;
        mask_ = n - 1;
        for (uint64_t i = 0; i < n; i++)
            new (&cells_[i].seq) std::atomic<uint64_t>(i);
        return true;
    }

    uint64_t capacity() const { return mask_ + 1; }

    /* Any thread.  False when full. */
    bool push(const T &value)
    {
        uint64_t pos = tail_.load(std::memory_order_relaxed);
        Cell *cell;
        for (;;) {
            cell = &cells_[pos & mask_];
            uint64_t seq = cell->seq.load(std::memory_order_acquire);
            int64_t dif = int64_t(seq - pos);
            if (dif == 0) {
                if (tail_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed))
                    break;
            } else if (dif < 0) {
                return false;
            } else {
                pos = tail_.load(std::memory_order_relaxed);
            }
        }
        cell->value = value;
        cell->seq.store(pos + 1, std::memory_order_release);
        return true;
    }

    /* The consumer's thread only.  False when empty. */
    bool pop(T *value)
    {
        if (!cells_)
            return false;
        Cell *cell = &cells_[head_ & mask_];
        if (int64_t(cell->seq.load(std::memory_order_acquire) - (head_ + 1)) < 0)
            return false;
        *value = cell->value;
        cell->seq.store(head_ + mask_ + 1, std::memory_order_release);
        head_++;
        return true;
    }

    /* Commands pushed and not yet popped (a snapshot, from any thread). */
    uint64_t depth() const
    {
        uint64_t tail = tail_.load(std::memory_order_relaxed);
        uint64_t head = popped_.load(std::memory_order_relaxed);
        return tail > head ? tail - head : 0;
    }
    /* The consumer publishes its progress for depth(). */
    void publish() { popped_.store(head_, std::memory_order_relaxed); }

private:
    struct Cell {
        std::atomic<uint64_t> seq;
        T value;
    };

    Cell *cells_ = nullptr;
    uint64_t mask_ = 0;
    alignas(64) std::atomic<uint64_t> tail_{0};
    alignas(64) uint64_t head_ = 0;
    std::atomic<uint64_t> popped_{0};
};

} // namespace tw

#endif
