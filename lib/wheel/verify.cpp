/*
 * The wheel's statistics and its invariant checker: every list's links,
 * its entries' list ids and the caches the wheel keeps about it; the free
 * list, every entry's state, the round and the callback table's counts.
 * A failure names the invariant (verify_failure()).
 *
 * Uses: lib/pool, lib/common; nothing above the wheel.
 */
#include "wheel/wheel.hpp"
#include "common/copy-out.hpp"

#include <cstdlib>
#include <cstring>

namespace tw {

void Wheel::stats(tw_wheel_stats *ret) const
{
    tw_wheel_stats s;
    std::memset(&s, 0, sizeof(s));
    s.now_ns = now_ns_;
    s.live = pool_.in_use();
    s.scheduled = scheduled_;
    s.rescheduled = rescheduled_;
    s.cancelled = cancelled_;
    s.fired = fired_;
    s.cascaded = cascaded_;
    s.capacity = pool_.capacity();
    s.high_water = pool_.high_water();
    s.reused = pool_.reused();
    s.late_p50_ns = late_.quantile(0.5);
    s.late_p99_ns = late_.quantile(0.99);
    s.late_max_ns = late_.max();
    s.bytes = pool_.bytes() + size_t(round_cap_ + scratch_cap_) * sizeof(Due) +
              size_t(period_cap_) * sizeof(*period_) + size_t(slack_cap_) * sizeof(*slack_) + callbacks_.bytes() +
              sizeof(*this);
    copy_out(s, ret);
}

/* Records which invariant broke, for verify_failure(). */
int Wheel::broken(const char *what) const
{
    verify_failure_ = what;
    return TW_EUCLEAN;
}

int Wheel::verify() const
{
    verify_failure_ = nullptr;
    /* Timers counted on each callback, to check the use counts. */
    uint32_t *cb_refs =
        static_cast<uint32_t *>(std::calloc(callbacks_.size() + 1, sizeof(uint32_t)));
    if (!cb_refs)
        return TW_ENOMEM;
    uint64_t armed = 0;
    int r = verify_lists(cb_refs, &armed);
    if (!r)
        r = verify_entries(cb_refs, armed);
    std::free(cb_refs);
    return r;
}

/* Every list: its links both ways, its entries, and what the wheel caches
 * about it (occupancy, minimum, order). */
int Wheel::verify_lists(uint32_t *cb_refs, uint64_t *armed) const
{
    for (uint32_t list = 0; list < kListCount; list++) {
        const Entry &s = pool_.at(list);
        if (s.where != list || s.deadline != 0)
            return broken("a list's sentinel is not its own");
        uint32_t prev = list;
        uint64_t n = 0, min = TW_NEVER, last = 0;
        bool ordered = true;
        for (uint32_t i = s.next; i != list; i = pool_.at(i).next) {
            if (!pool_.issued(i) || ++n > pool_.fresh())
                return broken("a list links to an entry never handed out, or loops");
            const Entry &e = pool_.at(i);
            if (e.prev != prev)
                return broken("an entry's back link is wrong");
            if (e.list() != list)
                return broken("a listed entry names another list");
            if (!callbacks_.valid(e.cb))
                return broken("an armed entry's callback is not in the table");
            if (list == kNextList && (phase_ == kIdle || e.deadline > pass_time_))
                return broken("the next list holds a timer no open advance fires");
            if (list != kNextList && list != cascade_slot_ && list_for(e.deadline) != list)
                return broken("an entry is not in the list its deadline names");
            cb_refs[e.cb]++;
            min = min64(min, e.deadline);
            ordered &= e.deadline >= last;
            last = e.deadline;
            prev = i;
        }
        if (s.prev != prev)
            return broken("a list's tail is not its last entry");
        if (list < kDueList && list != cascade_slot_) {
            unsigned level = level_of_list(list);
            uint64_t bit = slot_bit(list);
            if (bool(occupied_[level] & bit) != (n > 0))
                return broken("a slot's occupancy bit is wrong");
            if ((min_known_[level] & bit) && n && slot_min_[list] != min)
                return broken("a slot's cached minimum is wrong");
            if (n && (in_order_[level] & bit) && (!ordered || last > last_[list]))
                return broken("a slot marked in order is not");
        }
        if (list == kDueList || list == kNextList) {
            const Flat &f = flat(list);
            if (n && f.min_known && f.min != min)
                return broken("the due or next list's cached minimum is wrong");
            if (n && f.in_order && (!ordered || last > last_[list]))
                return broken("the due or next list, marked in order, is not");
        }
        *armed += n;
    }
    return 0;
}

/* The free list, every entry's state, the round, and the callback table's
 * use counts. */
int Wheel::verify_entries(uint32_t *cb_refs, uint64_t armed) const
{
    uint64_t free_listed = 0;
    for (uint32_t i = pool_.free_head(); i; i = pool_.at(i).next) {
        if (!pool_.issued(i) || pool_.at(i).list() != Entry::kFree ||
            ++free_listed > pool_.fresh())
            return broken("the free entry list holds a live entry, or loops");
    }
    uint64_t free = 0, listed = 0, firing = 0, running = 0;
    for (uint32_t i = pool_.reserved(); i < pool_.fresh(); i++) {
        const Entry &e = pool_.at(i);
        uint32_t where = e.list();
        if (where == Entry::kFree) {
            free++;
            continue;
        }
        if (where < kListCount) {
            listed++;
        } else if (where == Entry::kFiring) {
            firing++;
            if (e.prev < round_at_ || e.prev >= round_n_ || round_[e.prev].idx != i)
                return broken("a firing entry is not where the round says");
        } else if (where == Entry::kRunning) {
            running++;
        } else {
            return broken("an entry's state is out of range");
        }
        if ((e.where & Entry::kSlack) && (e.where & Entry::kPeriodic))
            return broken("an entry has both a slack and a period");
        if (where >= kListCount) {
            if (!callbacks_.valid(e.cb))
                return broken("a firing entry's callback is not in the table");
            cb_refs[e.cb]++;
        }
    }
    if (free != free_listed || free_listed != pool_.free_count())
        return broken("free entries and the free list disagree");
    if (listed != armed)
        return broken("armed entries and the lists disagree");
    uint64_t pending = 0;
    for (uint32_t k = round_at_; k < round_n_; k++)
        pending += round_[k].idx != kNil;
    if (firing != pending)
        return broken("firing entries and the round disagree");
    if (!advancing_ && running)
        return broken("an entry is running outside an advance");
    if (pool_.in_use() != listed + firing + running)
        return broken("the pool's use count is wrong");
    if (const char *why = callbacks_.check(cb_refs))
        return broken(why);
    return 0;
}

} // namespace tw
