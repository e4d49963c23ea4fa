/*
 * The wheel's table of callbacks: each timer names its callback by a
 * 16-bit index into it, so an entry stays 32 bytes.
 *
 * The table holds the distinct callbacks of live timers, each counted by
 * use: a callback leaves with its last timer, so only live timers can fill
 * it.  A hash (open addressing, deleted by backward shift) finds a
 * callback's slot; the most recent callback is remembered, so a run of
 * timers with one callback never hashes, and kept while unused, for its
 * next arm.
 *
 * Uses: nothing of the library but tickwheel.h's callback type.
 */
#ifndef TW_WHEEL_CALLBACKS_HPP
#define TW_WHEEL_CALLBACKS_HPP

#include <cstddef>
#include <cstdint>

#include "tickwheel.h"

namespace tw {

class CallbackTable {
public:
    /* Distinct callbacks of live timers at most. */
    static constexpr uint32_t kMax = 0xffff;

    CallbackTable() = default;
    CallbackTable(const CallbackTable &) = delete;
    CallbackTable &operator=(const CallbackTable &) = delete;
    ~CallbackTable();

    /* The index of cb with n more timers counted on it, or TW_ENOSPC /
     * TW_ENOMEM. */
    int use(tw_timer_cb *cb, uint32_t n = 1)
    {
        int k = cb == last_ ? last_index_ : intern(cb);
        if (k >= 0)
            slots_[k].refs += n;
        return k;
    }
    /* One timer less on callback k. */
    void unuse(uint16_t k)
    {
        if (--slots_[k].refs == 0 && k != last_index_)
            drop(k);
    }
    /* unuse(k) in two halves, for a caller whose common path must call
     * nothing: true when callback k must now leave the table ... */
    bool unused_after(uint16_t k) { return --slots_[k].refs == 0 && k != last_index_; }
    /* ... which this does. */
    __attribute__((noinline, cold)) void drop_unused(uint16_t k) { drop(k); }
    tw_timer_cb *fn(uint16_t k) const { return slots_[k].fn; }
    /* Live timers counted on cb. */
    uint32_t refs_of(tw_timer_cb *cb) const;

    /* 0 when refs (timers counted per index, `size()` of them) matches the
     * table, else what is wrong. */
    const char *check(const uint32_t *refs) const;
    /* True when k names a callback in the table. */
    bool valid(uint16_t k) const { return k < used_ && slots_[k].fn; }
    uint32_t size() const { return used_; }
    size_t bytes() const;

private:
    struct Slot {
        tw_timer_cb *fn;
        uint32_t refs;      /* live timers using it; fn null: the slot is free */
    };
    int intern(tw_timer_cb *cb);
    bool grow();
    void drop(uint16_t k);
    uint32_t home(tw_timer_cb *cb) const
    {
        uint64_t x = uint64_t(reinterpret_cast<uintptr_t>(cb)) * UINT64_C(0x9e3779b97f4a7c15);
        return uint32_t(x >> 32) & mask_;
    }

    Slot *slots_ = nullptr;
    uint32_t used_ = 0, cap_ = 0;       /* slots handed out, allocated */
    uint16_t *spare_ = nullptr;         /* slots given back, a stack */
    uint32_t spare_n_ = 0;
    uint32_t *hash_ = nullptr;          /* slot index + 1, 0 empty */
    uint32_t mask_ = 0;
    tw_timer_cb *last_ = nullptr;
    uint16_t last_index_ = 0xffff;
};

} // namespace tw

#endif
