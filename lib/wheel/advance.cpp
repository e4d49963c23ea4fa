/*
 * The advance of the wheel, as wheel.hpp lays it out: visiting the slots
 * in time order, cascading, gathering a round of due timers and sorting it
 * by deadline, dispatching it, and the two passes with their budget.
 *
 * Uses: lib/pool (entries), lib/common; nothing above the wheel.
 */
#include "wheel/wheel.hpp"
#include "wheel/lists.hpp"
#include "common/grow.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace tw {

/* Moves the entries of a higher-level slot to their places below, in
 * order, until *work reaches limit.  A cascade cut short stays pending:
 * the slot keeps its remaining entries (a cancel still finds them) and the
 * next advance resumes it before anything fires.  Returns true when the
 * slot is done. */
bool Wheel::cascade(uint64_t *work, uint64_t limit)
{
    uint32_t list = cascade_slot_;
    Entry &s = pool_.at(list);
    uint32_t i = s.next;
    while (i != list && *work < limit) {
        Entry &e = pool_.at(i);
        uint32_t next = e.next;
        __builtin_prefetch(&pool_.at(next));
        append(list_for(e.deadline), i);
        cascaded_++;
        ++*work;
        i = next;
    }
    /* The entries before i have moved: the slot starts at i. */
    s.next = i;
    pool_.at(i).prev = list;
    if (i != list)
        return false;
    /* Timers armed into the slot while it was pending set its bits again. */
    uint64_t bit = slot_bit(list);
    occupied_[level_of_list(list)] &= ~bit;
    min_known_[level_of_list(list)] &= ~bit;
    cascade_slot_ = kNil;
    return true;
}

/* A slot whose every tick is now <= cur: its entries join the due list's
 * tail, in order.  The walk relabels them and learns their minimum and
 * order. */
void Wheel::slot_to_due(uint32_t list)
{
    Entry &s = pool_.at(list);
    uint32_t head = s.next, tail = s.prev;
    clear(list);
    if (head == list)
        return;
    uint64_t min = TW_NEVER, max = 0, last = 0;
    bool ordered = true;
    for (uint32_t i = head;; i = pool_.at(i).next) {
        Entry &e = pool_.at(i);
        e.set_list(kDueList);
        min = min64(min, e.deadline);
        max = max64(max, e.deadline);
        ordered &= e.deadline >= last;
        last = e.deadline;
        if (i == tail)
            break;
    }
    Entry &due = pool_.at(kDueList);
    uint32_t due_tail = due.prev;
    bool was_empty = due_tail == kDueList;
    Flat &f = flat_[0];
    f.in_order = ordered && (was_empty || (f.in_order && last_[kDueList] <= min));
    last_[kDueList] = was_empty ? max : max64(last_[kDueList], max);
    if (was_empty || (f.min_known && min < f.min))
        f.min = min;
    f.min_known = was_empty || f.min_known;
    pool_.at(due_tail).next = head;
    pool_.at(head).prev = due_tail;
    pool_.at(tail).next = kDueList;
    due.prev = tail;
}

/* Sorts the round's n timers by deadline, equal deadlines in their order
 * of gathering (which stands for arming order).  Up to 32 are sorted by
 * insertion and up to kRadixMin by comparisons (std::sort on deadline and
 * position); more by a stable least significant digit radix sort on the
 * bits in which deadlines lo..hi can differ, a byte per pass, skipping
 * the bytes all share: no comparisons, but 256 counters a pass whatever
 * n, hence the threshold. */
void Wheel::sort_round(uint32_t n, uint64_t lo, uint64_t hi)
{
    Due *a = round_;
    if (n <= kRadixMin || !grow(&scratch_, &scratch_cap_, n, 256)) {
        if (n > 32) {
            std::sort(a, a + n);
            return;
        }
        for (uint32_t k = 1; k < n; k++) {
            Due x = a[k];
            uint32_t j = k;
            for (; j > 0 && x.deadline < a[j - 1].deadline; j--)
                a[j] = a[j - 1];
            a[j] = x;
        }
        return;
    }
    uint64_t span = hi - lo;
    unsigned bytes = span ? (64 - unsigned(__builtin_clzll(span)) + 7) / 8 : 0;
    uint32_t count[8][256];
    std::memset(count, 0, sizeof(count[0]) * bytes);
    for (uint32_t k = 0; k < n; k++) {
        uint64_t key = a[k].deadline - lo;
        for (unsigned b = 0; b < bytes; b++)
            count[b][(key >> (8 * b)) & 0xff]++;
    }
    Due *src = a, *dst = scratch_;
    for (unsigned b = 0; b < bytes; b++) {
        uint32_t *c = count[b];
        if (c[((src[0].deadline - lo) >> (8 * b)) & 0xff] == n)
            continue;       /* every key has the same byte here */
        uint32_t sum = 0;
        for (unsigned v = 0; v < 256; v++) {
            uint32_t m = c[v];
            c[v] = sum;
            sum += m;
        }
        for (uint32_t k = 0; k < n; k++)
            dst[c[((src[k].deadline - lo) >> (8 * b)) & 0xff]++] = src[k];
        std::swap(src, dst);
    }
    if (src != a)
        std::memcpy(a, src, size_t(n) * sizeof(Due));
}

/* Collects the timers of a list whose deadline is <= t into the round, in
 * deadline order, equal deadlines in list (arming) order, and takes them
 * off the list.  A list known to be in order gives its first `limit` at
 * once, so a budgeted turn does work in proportion to its budget however
 * many timers are due; otherwise the whole list is walked and sorted.  If
 * the round cannot grow, it holds the earliest that fit and the rest wait
 * for the next round.  Returns the round's size. */
uint32_t Wheel::gather(uint32_t list, uint64_t t, uint64_t limit)
{
    uint32_t n = 0, order = 0, left = 0;
    bool sorted = true, heap = false;
    bool prefix = in_order(list);
    bool rest_in_order = true;
    uint64_t rest_last = 0, lo = TW_NEVER, hi = 0;
    for (uint32_t i = pool_.at(list).next; i != list; i = pool_.at(i).next) {
        uint64_t d = pool_.at(i).deadline;
        if (d > t || (prefix && n == limit)) {
            if (prefix) {
                left = 1;
                break;
            }
            rest_in_order &= d >= rest_last;
            rest_last = d;
            left++;
            continue;
        }
        Due item = {d, order++, i};
        if (n == round_cap_ && !heap && !grow(&round_, &round_cap_, n + 1, 256)) {
            if (prefix) {
                left = 1;
                break;          /* the earliest that fit, in order */
            }
            /* Out of memory: keep the round_cap_ earliest in a heap. */
            std::make_heap(round_, round_ + n);
            heap = true;
        }
        if (!heap) {
            sorted &= d >= hi;
            lo = min64(lo, d);
            hi = max64(hi, d);
            round_[n++] = item;
        } else {
            left++;
            if (item < round_[0]) {
                std::pop_heap(round_, round_ + n);
                round_[n - 1] = item;
                std::push_heap(round_, round_ + n);
            }
        }
    }
    if (heap)
        std::sort_heap(round_, round_ + n);
    else if (!sorted)
        sort_round(n, lo, hi);
    take_round(list, n, left != 0);
    if (!prefix && left && !heap)
        note_rest(list, rest_in_order, rest_last);
    return n;
}

/* Takes the round's n timers off the list (all at once when none stays)
 * and marks them firing at their place in the round. */
void Wheel::take_round(uint32_t list, uint32_t n, bool some_left)
{
    if (!some_left)
        clear(list);
    for (uint32_t k = 0; k < n; k++) {
        uint32_t i = round_[k].idx;
        if (some_left)
            remove(i);
        Entry &e = pool_.at(i);
        e.set_list(Entry::kFiring);
        e.prev = k;
    }
}

/* What a gather that walked a whole list learnt of the timers it left:
 * whether they are in order (and their last deadline).  A flat list left
 * out of order is sorted. */
void Wheel::note_rest(uint32_t list, bool in_order, uint64_t last)
{
    if (in_order)
        last_[list] = last;
    if (list >= kDueList) {
        flat(list).in_order = in_order;
        if (!in_order)
            sort_list(list);
    } else if (in_order) {
        in_order_[level_of_list(list)] |= slot_bit(list);
    }
}

/* Puts a flat list in deadline order (equal deadlines keep list order) by
 * relinking it.  A gather that leaves timers not yet due behind, out of
 * order, calls it: without it, every advance inside the current tick would
 * rescan them all, and a loop woken at each exact deadline would pay the
 * square of the tick's population. */
void Wheel::sort_list(uint32_t list)
{
    uint32_t n = 0;
    for (uint32_t i = pool_.at(list).next; i != list; i = pool_.at(i).next) {
        if (!grow(&scratch_, &scratch_cap_, n + 1, 256))
            return;     /* stays unordered: correct, only slower */
        scratch_[n] = Due{pool_.at(i).deadline, n, i};
        n++;
    }
    if (!n)
        return;
    std::sort(scratch_, scratch_ + n);
    uint32_t prev = list;
    for (uint32_t k = 0; k < n; k++) {
        uint32_t i = scratch_[k].idx;
        pool_.at(prev).next = i;
        pool_.at(i).prev = prev;
        prev = i;
    }
    pool_.at(prev).next = list;
    pool_.at(list).prev = prev;
    Flat &f = flat(list);
    f.in_order = true;
    last_[list] = scratch_[n - 1].deadline;
    f.min = scratch_[0].deadline;
    f.min_known = true;
}

/* Fires one timer of the round: a periodic one is armed again first, as
 * any timer armed now (its callback may cancel, move or query it like any
 * armed timer); any other is released once its callback returns, unless
 * the callback re-armed it. */
inline void Wheel::fire(uint32_t i)
{
    Entry &e = pool_.at(i);
    uint64_t deadline = e.deadline;
    late_.record(now_ns_ - deadline);
    if (e.where & Entry::kPeriodic) {
        e.deadline = next_period(i, deadline);
        append(arm_list(e.deadline), i);
    } else {
        e.set_list(Entry::kRunning);
    }
    running_ = i;
    callbacks_.fn(e.cb)(handle(i, e), deadline, e.userdata);
    running_ = 0;
    /* The callback may have grown the pool: e may have moved. */
    if (pool_.at(i).list() == Entry::kRunning)
        release(i);
}

/* Fires the timers of a list whose deadline is <= the open advance's time,
 * in deadline order, the rest of a round left by a budget first.  Timers
 * the callbacks of a round add to the list fire in the next round.  False
 * when stopped by the budget or a request to free the wheel. */
bool Wheel::run_list(uint32_t list, Run *run)
{
    for (;;) {
        if (round_at_ == round_n_) {
            round_n_ = round_at_ = 0;
            if (empty(list))
                return true;
            if (run->fired == run->budget || free_requested_)
                return false;
            round_n_ = gather(list, pass_time_, run->budget - run->fired);
            if (round_n_ == 0)
                return true;
        }
        while (round_at_ < round_n_) {
            uint32_t k = round_at_;
            uint32_t i = round_[k].idx;
            if (i == kNil) {
                round_at_++;
                continue;
            }
            /* Stopped only before a timer that would fire: a round whose
             * rest was all cancelled is finished. */
            if (run->fired == run->budget || free_requested_)
                return false;
            round_at_++;
            if (k + kPrefetchAhead < round_n_ && round_[k + kPrefetchAhead].idx != kNil)
                __builtin_prefetch(&pool_.at(round_[k + kPrefetchAhead].idx));
            fire(i);
            run->fired++;
            fired_++;
        }
    }
}

/* Visits the earliest occupied slot, which starts at or before the open
 * advance's tick.  A slot wholly before that tick holds only due timers:
 * cur moves to its last tick and they fire straight from it (above level
 * 0, only without a budget, which could stop in the middle of a large
 * slot; a stop leaves the rest on the due list, their home now).  The slot
 * of that tick itself is cascaded down, or at level 0 joins the due list.
 * False when stopped. */
bool Wheel::visit_slot(unsigned level, unsigned slot, uint64_t target, Run *run)
{
    uint32_t list = level * kSlots + slot;
    uint64_t start = slot_start_tick(cur_, level, slot);
    uint64_t last = start + (slot_span(level) - 1);
    if (last < target && (level == 0 || run->budget == UINT64_MAX)) {
        cur_ = last;
        if (!run_list(list, run)) {
            slot_to_due(list);
            return false;
        }
        return true;
    }
    cur_ = start;
    if (level == 0) {
        slot_to_due(list);
        return true;
    }
    uint64_t bit = slot_bit(list);
    occupied_[level] &= ~bit;
    min_known_[level] &= ~bit;
    cascade_slot_ = list;
    return true;
}

/* The first pass of the open advance: visits the occupied slots up to its
 * time in time order, firing what falls due.  False when stopped. */
bool Wheel::pass_one(Run *run)
{
    uint64_t target = tick_.divide(pass_time_);
    for (;;) {
        if (cascade_slot_ != kNil && !cascade(&run->work, run->work_limit))
            return false;
        if (!run_list(kDueList, run))
            return false;
        unsigned level = 0;
        while (level < kLevels && !occupied_[level])
            level++;
        if (level == kLevels)
            break;
        unsigned slot = unsigned(__builtin_ctzll(occupied_[level]));
        if (slot_start_tick(cur_, level, slot) > target)
            break;
        if (!visit_slot(level, slot, target, run))
            return false;
    }
    if (target > cur_)
        cur_ = target;
    return true;
}

/* After a stop in the first pass: true when a timer that was due when the
 * advance began has yet to fire (in the round, the due list, a cascade cut
 * short or a slot not yet visited).  When none has, the first pass is over
 * in all but name, so whether timers armed next belong to the second pass
 * depends only on which timers are due, never on how far the walk got.
 * Slots wholly before the time's tick hold only such timers; the slots
 * that straddle it are scanned, and so is the due list, at a cost the next
 * advance pays again in any case. */
bool Wheel::pass_one_left() const
{
    for (uint32_t k = round_at_; k < round_n_; k++)
        if (round_[k].idx != kNil)
            return true;
    if (list_has_due(kDueList, pass_time_))
        return true;
    if (cascade_slot_ != kNil && list_has_due(cascade_slot_, pass_time_))
        return true;
    uint64_t target = tick_.divide(pass_time_);
    for (unsigned level = 0; level < kLevels; level++) {
        for (uint64_t bits = occupied_[level]; bits; bits &= bits - 1) {
            unsigned slot = unsigned(__builtin_ctzll(bits));
            uint64_t start = slot_start_tick(cur_, level, slot);
            if (start > target)
                break;
            if (start + slot_span(level) <= target ||
                list_has_due(level * kSlots + slot, pass_time_))
                return true;
        }
    }
    return false;
}

/* Runs the open advance to its end: the rest of its first pass, then its
 * second.  False when stopped. */
bool Wheel::finish(Run *run)
{
    if (phase_ == kPassOne) {
        /* A first pass stopped with nothing due left is over: its walk
         * goes on in the next advance's. */
        if (!pass_one(run)) {
            if (free_requested_ || pass_one_left())
                return false;
            round_at_ = round_n_ = 0;
        }
        phase_ = kPassTwo;
    }
    if (!run_list(kNextList, run))
        return false;
    phase_ = kIdle;
    return true;
}

uint64_t Wheel::advance(uint64_t now_ns, uint64_t max_callbacks)
{
    if (now_ns < now_ns_)
        now_ns = now_ns_;
    now_ns_ = now_ns;
    Run run;
    run.budget = max_callbacks ? max_callbacks : UINT64_MAX;
    run.fired = 0;
    /* Moving an entry costs a fraction of running a callback. */
    run.work = 0;
    run.work_limit = max_callbacks ? max_callbacks * kCascadePerCallback : UINT64_MAX;
    advancing_ = true;
    /* An advance stopped by its budget is finished first, at its own time;
     * then this one runs at now_ns. */
    if (phase_ == kIdle || finish(&run)) {
        phase_ = kPassOne;
        pass_time_ = now_ns;
        finish(&run);
    }
    advancing_ = false;
    return run.fired;
}

} // namespace tw
