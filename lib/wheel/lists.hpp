/*
 * The list operations every arm, cancel and advance runs, inlined into
 * each: which list a timer armed now joins, appending at a list's tail and
 * taking an entry out, with the caches the wheel keeps per list.
 *
 * Included by the wheel's own sources only.
 */
#ifndef TW_WHEEL_LISTS_HPP
#define TW_WHEEL_LISTS_HPP

#include "wheel/wheel.hpp"

namespace tw {

/* Where a timer armed now goes.  While the first pass of an advance to T
 * is open, a deadline <= T goes to the next list: it fires in the second
 * pass, after every timer that was due when the advance began.  While a
 * cascade is pending, a timer whose tick falls in the cascading slot joins
 * that slot's tail: placed below at once, it would overtake the slot's
 * older timers of the same deadline. */
__attribute__((always_inline)) inline uint32_t Wheel::arm_list(uint64_t deadline) const
{
    if (__builtin_expect(phase_ == kPassOne || cascade_slot_ != kNil, 0)) {
        if (phase_ == kPassOne && deadline <= pass_time_ && deadline != TW_NEVER)
            return kNextList;
        if (cascade_slot_ != kNil && deadline != TW_NEVER) {
            uint64_t t = tick_.divide(deadline);
            unsigned shift = level_of_list(cascade_slot_) * kLevelBits;
            if (t >= cur_ && (t - cur_) >> shift == 0)
                return cascade_slot_;
        }
    }
    return list_for(deadline);
}

/* Appends entry i at the tail of a list, keeping the slot's occupancy,
 * cached minimum and order bits (or the flat list's) right.
 *
 * At a million timers the tail and the neighbours a cancel unlinks are
 * cache misses, and stores retire in order: every store an arm adds waits
 * its turn behind theirs and keeps the next operation from starting.  So
 * the tail is only written, never read (the last deadline appended is
 * kept apart, and only while the list is in order, the one time it is
 * needed), and the caches are written only when they change: an empty
 * list or a new minimum is rare, a list in order soon stops being one
 * under random deadlines.  Whether a deadline comes out of order is a
 * coin flip: that bit is cleared without a branch. */
__attribute__((always_inline)) inline void Wheel::append(uint32_t list, uint32_t i)
{
    Entry &s = pool_.at(list);
    uint32_t t = s.prev;
    Entry &e = pool_.at(i);
    uint64_t d = e.deadline;
    e.next = list;
    e.prev = t;
    e.set_list(list);
    pool_.at(t).next = i;
    s.prev = i;
    bool was_empty = t == list;
    if (list < kDueList) {
        unsigned level = level_of_list(list);
        uint64_t bit = slot_bit(list);
        if (__builtin_expect(was_empty, 0)) {
            occupied_[level] |= bit;
            min_known_[level] |= bit;
            in_order_[level] |= bit;
            slot_min_[list] = d;
            last_[list] = d;
        } else {
            if (in_order_[level] & bit) {
                in_order_[level] &= ~(bit & -uint64_t(d < last_[list]));
                last_[list] = d;
            }
            if (d < slot_min_[list])
                slot_min_[list] = d;    /* harmless when not known */
        }
    } else if (list != kNeverList) {
        Flat &f = flat(list);
        if (was_empty) {
            f.min = d;
            f.min_known = true;
            f.in_order = true;
            last_[list] = d;
        } else {
            if (f.in_order) {
                f.in_order = d >= last_[list];
                last_[list] = d;
            }
            if (d < f.min)
                f.min = d;
        }
    }
}

/* After deadline d left a list: the occupancy bit, and the minimum, now
 * unknown if d may have been it. */
__attribute__((always_inline)) inline void Wheel::note_removed(uint32_t list, uint64_t d, bool emptied)
{
    if (list < kDueList) {
        unsigned level = level_of_list(list);
        uint64_t bit = slot_bit(list);
        if (emptied)
            occupied_[level] &= ~bit;
        if (emptied || d == slot_min_[list])
            min_known_[level] &= ~bit;
    } else if (list != kNeverList) {
        Flat &f = flat(list);
        if (emptied || d == f.min)
            f.min_known = false;
    }
}

/* Takes an armed or firing entry out of where it is; its state is left to
 * the caller. */
__attribute__((always_inline)) inline void Wheel::remove(uint32_t i)
{
    Entry &e = pool_.at(i);
    uint32_t list = e.list();
    if (list == Entry::kFiring) {
        round_[e.prev].idx = kNil;
        return;
    }
    uint32_t n = e.next, p = e.prev;
    pool_.at(p).next = n;
    pool_.at(n).prev = p;
    note_removed(list, e.deadline, p == n);
}

} // namespace tw

#endif
