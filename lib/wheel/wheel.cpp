#include "wheel/wheel.hpp"

#include <cstdlib>
#include <cstring>

namespace tw {

namespace {

constexpr uint32_t kNil = 0xffffffffu;

/* Level of the highest bit in which a timer's tick differs from cur. */
constexpr unsigned level_of_bit(unsigned bit) { return bit / Wheel::kLevelBits; }

} // namespace

void Divider::init(uint64_t d)
{
    d_ = d;
    if ((d & (d - 1)) == 0) {
        shift_ = __builtin_ctzll(d);
        return;
    }
    /* ceil(2^128 / d); exact for all n < 2^64 because 128 >= 64 + log2(d). */
    u128 c = ~u128(0) / d + 1;
    shift_ = -1;
    lo_ = uint64_t(c);
    hi_ = uint64_t(c >> 64);
}

Wheel::~Wheel()
{
    std::free(cbs_);
    std::free(cb_hash_);
}

int Wheel::init(const tw_wheel_config &config, uint64_t now_ns)
{
    if (config.tick_ns < TW_TICK_MIN_NS || config.tick_ns > TW_TICK_MAX_NS)
        return TW_EINVAL;
    static_assert(kLevels * kLevelBits >= 64 - 9, "levels must cover 2^64 / TW_TICK_MIN_NS ticks");
    tick_.init(config.tick_ns);
    if (!pool_.init(kSentinels, config.max_timers, config.initial_timers))
        return TW_ENOMEM;
    for (uint32_t s = 0; s < kSentinels; s++) {
        Entry &h = pool_.at(s);
        h.next = h.prev = s;
        h.where = kWhereSentinel;
    }
    now_ns_ = now_ns;
    cur_ = tick_.divide(now_ns);
    return 0;
}

uint32_t Wheel::list_for(uint64_t deadline) const
{
    if (deadline == TW_NEVER)
        return kNever;
    uint64_t t = tick_.divide(deadline);
    if (t <= cur_)
        return kDue;
    unsigned level = level_of_bit(63u - unsigned(__builtin_clzll(t ^ cur_)));
    return level * kSlots + (unsigned(t >> (level * kLevelBits)) & (kSlots - 1));
}

uint64_t Wheel::slot_start_tick(unsigned level, unsigned slot) const
{
    unsigned above = (level + 1) * kLevelBits;
    return (cur_ >> above << above) | (uint64_t(slot) << (level * kLevelBits));
}

void Wheel::link_tail(uint32_t list, uint32_t i)
{
    Entry &e = pool_.at(i);
    Entry &h = pool_.at(list);
    uint32_t last = h.prev;
    e.next = list;
    e.prev = last;
    e.where = uint16_t(list);
    pool_.at(last).next = i;
    h.prev = i;
    if (list < kDue) {
        unsigned level = list / kSlots;
        uint64_t bit = uint64_t(1) << (list % kSlots);
        if (!(occupied_[level] & bit)) {
            occupied_[level] |= bit;
            min_known_[level] |= bit;
            slot_min_[list] = e.deadline;
        } else if ((min_known_[level] & bit) && e.deadline < slot_min_[list]) {
            slot_min_[list] = e.deadline;
        }
    } else if (list == kDue) {
        if (last == kDue) {
            due_min_ = e.deadline;
            due_min_known_ = true;
        } else if (due_min_known_ && e.deadline < due_min_) {
            due_min_ = e.deadline;
        }
    }
}

void Wheel::unlink(uint32_t i)
{
    Entry &e = pool_.at(i);
    uint32_t p = e.prev, n = e.next, list = e.where;
    pool_.at(p).next = n;
    pool_.at(n).prev = p;
    /* p == n only when the list is left with its sentinel alone. */
    if (list < kDue) {
        unsigned level = list / kSlots;
        uint64_t bit = uint64_t(1) << (list % kSlots);
        if (p == n)
            occupied_[level] &= ~bit;
        if (p == n || e.deadline == slot_min_[list])
            min_known_[level] &= ~bit;
    } else if (list == kDue) {
        if (p == n || e.deadline == due_min_)
            due_min_known_ = false;
    }
}

int Wheel::callback_index(tw_timer_cb *cb)
{
    if (cb == last_cb_ && ncbs_)
        return last_cb_index_;
    auto hash = [this](tw_timer_cb *f) {
        uint64_t x = uint64_t(reinterpret_cast<uintptr_t>(f)) * UINT64_C(0x9e3779b97f4a7c15);
        return uint32_t(x >> 32) & cb_hash_mask_;
    };
    if (cb_hash_) {
        for (uint32_t h = hash(cb); cb_hash_[h]; h = (h + 1) & cb_hash_mask_) {
            uint32_t idx = cb_hash_[h] - 1;
            if (cbs_[idx] == cb) {
                last_cb_ = cb;
                last_cb_index_ = uint16_t(idx);
                return int(idx);
            }
        }
    }
    if (ncbs_ == kMaxCallbacks)
        return TW_ENOSPC;
    if (ncbs_ == cbs_cap_) {
        uint32_t cap = cbs_cap_ ? cbs_cap_ * 2 : 8;
        auto **cbs = static_cast<tw_timer_cb **>(std::realloc(cbs_, cap * sizeof(tw_timer_cb *)));
        if (!cbs)
            return TW_ENOMEM;
        cbs_ = cbs;
        auto *table = static_cast<uint32_t *>(std::calloc(cap * 2, sizeof(uint32_t)));
        if (!table)
            return TW_ENOMEM;
        std::free(cb_hash_);
        cb_hash_ = table;
        cb_hash_mask_ = cap * 2 - 1;
        cbs_cap_ = cap;
        for (uint32_t idx = 0; idx < ncbs_; idx++) {
            uint32_t h = hash(cbs_[idx]);
            while (cb_hash_[h])
                h = (h + 1) & cb_hash_mask_;
            cb_hash_[h] = idx + 1;
        }
    }
    uint32_t idx = ncbs_++;
    cbs_[idx] = cb;
    uint32_t h = hash(cb);
    while (cb_hash_[h])
        h = (h + 1) & cb_hash_mask_;
    cb_hash_[h] = idx + 1;
    last_cb_ = cb;
    last_cb_index_ = uint16_t(idx);
    return int(idx);
}

uint32_t Wheel::arm(uint64_t deadline, uint16_t cb, void *userdata)
{
    uint32_t i = pool_.alloc();
    if (!i)
        return 0;
    Entry &e = pool_.at(i);
    e.deadline = deadline;
    e.userdata = userdata;
    e.cb = cb;
    link_tail(list_for(deadline), i);
    scheduled_++;
    return i;
}

int Wheel::schedule(uint64_t deadline, tw_timer_cb *cb, void *userdata, tw_timer *ret)
{
    int cbi = callback_index(cb);
    if (cbi < 0)
        return cbi;
    uint32_t i = arm(deadline, uint16_t(cbi), userdata);
    if (!i)
        return TW_ENOMEM;
    *ret = handle(i, pool_.at(i));
    return 0;
}

int Wheel::schedule_batch(size_t n, const uint64_t *deadlines, tw_timer_cb *cb,
                          void *const *userdata, tw_timer *ret)
{
    int cbi = callback_index(cb);
    if (cbi < 0)
        return cbi;
    if (!pool_.reserve(n))
        return TW_ENOMEM;
    for (size_t k = 0; k < n; k++) {
        uint32_t i = arm(deadlines[k], uint16_t(cbi), userdata ? userdata[k] : nullptr);
        ret[k] = handle(i, pool_.at(i));
    }
    return 0;
}

int Wheel::cancel(tw_timer timer)
{
    uint32_t i = lookup(timer);
    if (!i || pool_.at(i).where == kWhereRunning)
        return TW_ENOENT;
    unlink(i);
    pool_.release(i);
    cancelled_++;
    return 0;
}

int Wheel::reschedule(tw_timer timer, uint64_t deadline)
{
    uint32_t i = lookup(timer);
    if (!i)
        return TW_ENOENT;
    Entry &e = pool_.at(i);
    /* Always re-linked at the tail, even within one slot: equal deadlines
     * fire in arming order, and a reschedule is an arming. */
    if (e.where != kWhereRunning)
        unlink(i);
    e.deadline = deadline;
    link_tail(list_for(deadline), i);
    rescheduled_++;
    return 0;
}

int Wheel::deadline(tw_timer timer, uint64_t *ret) const
{
    uint32_t i = lookup(timer);
    if (!i || pool_.at(i).where == kWhereRunning)
        return TW_ENOENT;
    *ret = pool_.at(i).deadline;
    return 0;
}

int Wheel::next_deadline(uint64_t *ret) const
{
    if (!list_empty(kFiring)) {
        *ret = pool_.at(pool_.at(kFiring).next).deadline;
        return 0;
    }
    if (!list_empty(kDue)) {
        if (!due_min_known_) {
            uint64_t m = TW_NEVER;
            for (uint32_t i = pool_.at(kDue).next; i != kDue; i = pool_.at(i).next)
                if (pool_.at(i).deadline < m)
                    m = pool_.at(i).deadline;
            due_min_ = m;
            due_min_known_ = true;
        }
        *ret = due_min_;
        return 0;
    }
    for (unsigned level = 0; level < kLevels; level++) {
        if (!occupied_[level])
            continue;
        unsigned slot = unsigned(__builtin_ctzll(occupied_[level]));
        if (min_known_[level] & (uint64_t(1) << slot))
            *ret = slot_min_[level * kSlots + slot];
        else
            *ret = slot_start_tick(level, slot) * tick_.divisor();
        return 0;
    }
    return TW_ENOENT;
}

/* Moves every entry of a higher-level slot to its place below, in order. */
void Wheel::cascade(unsigned level, unsigned slot)
{
    uint32_t list = level * kSlots + slot;
    uint64_t bit = uint64_t(1) << slot;
    occupied_[level] &= ~bit;
    min_known_[level] &= ~bit;
    Entry &h = pool_.at(list);
    uint32_t i = h.next;
    pool_.at(h.prev).next = kNil;
    h.next = h.prev = list;
    while (i != kNil) {
        Entry &e = pool_.at(i);
        uint32_t next = e.next;
        if (next != kNil)
            __builtin_prefetch(&pool_.at(next));
        link_tail(list_for(e.deadline), i);
        cascaded_++;
        i = next;
    }
}

/* Stable merge sort of the due list by deadline, in place. */
void Wheel::sort_due()
{
    auto merge = [this](uint32_t a, uint32_t b) {
        uint32_t head = kNil, *tail = &head;
        while (a != kNil && b != kNil) {
            uint32_t *from = pool_.at(b).deadline < pool_.at(a).deadline ? &b : &a;
            *tail = *from;
            tail = &pool_.at(*from).next;
            *from = *tail;
        }
        *tail = a != kNil ? a : b;
        return head;
    };
    Entry &h = pool_.at(kDue);
    uint32_t rest = h.next;
    pool_.at(h.prev).next = kNil;
    /* bins[k] holds a sorted run of 2^k entries that came before any later bin's. */
    uint32_t bins[33];
    unsigned top = 0;
    while (rest != kNil) {
        uint32_t run = rest;
        rest = pool_.at(run).next;
        pool_.at(run).next = kNil;
        unsigned k = 0;
        for (; k < top && bins[k] != kNil; k++) {
            run = merge(bins[k], run);
            bins[k] = kNil;
        }
        if (k == top)
            top++;
        bins[k] = run;
    }
    uint32_t sorted = kNil;
    for (unsigned k = 0; k < top; k++)
        if (bins[k] != kNil)
            sorted = sorted == kNil ? bins[k] : merge(bins[k], sorted);
    uint32_t prev = kDue;
    for (uint32_t i = sorted; i != kNil; i = pool_.at(i).next) {
        pool_.at(i).prev = prev;
        prev = i;
    }
    pool_.at(prev).next = kDue;
    h.next = sorted;
    h.prev = prev;
}

/* Fires the due timers whose deadline is <= now_ns, in deadline order.
 * Timers made due by the callbacks of one round fire in the next. */
uint64_t Wheel::run_due(uint64_t now_ns)
{
    uint64_t fired = 0;
    Entry &due = pool_.at(kDue);
    Entry &firing = pool_.at(kFiring);
    while (due.next != kDue) {
        uint64_t last = 0;
        bool sorted = true;
        for (uint32_t i = due.next; i != kDue; i = pool_.at(i).next) {
            uint64_t d = pool_.at(i).deadline;
            sorted &= d >= last;
            last = d;
        }
        if (!sorted)
            sort_due();
        uint32_t first = due.next, end = first;
        while (end != kDue && pool_.at(end).deadline <= now_ns) {
            pool_.at(end).where = uint16_t(kFiring);
            end = pool_.at(end).next;
        }
        if (end == first)
            break;
        uint32_t last_due = pool_.at(end).prev;
        firing.next = first;
        firing.prev = last_due;
        pool_.at(first).prev = kFiring;
        pool_.at(last_due).next = kFiring;
        due.next = end;
        pool_.at(end).prev = kDue;
        if (end != kDue) {
            due_min_ = pool_.at(end).deadline;
            due_min_known_ = true;
        } else {
            due_min_known_ = false;
        }

        while (firing.next != kFiring) {
            uint32_t i = firing.next;
            Entry &e = pool_.at(i);
            firing.next = e.next;
            pool_.at(e.next).prev = kFiring;
            if (e.next != kFiring)
                __builtin_prefetch(&pool_.at(pool_.at(e.next).next));
            e.where = kWhereRunning;
            cbs_[e.cb](handle(i, e), e.deadline, e.userdata);
            if (e.where == kWhereRunning)
                pool_.release(i);
            fired++;
            fired_++;
            if (free_requested_)
                return fired;
        }
    }
    return fired;
}

uint64_t Wheel::advance(uint64_t now_ns)
{
    if (now_ns < now_ns_)
        now_ns = now_ns_;
    now_ns_ = now_ns;
    uint64_t target = tick_.divide(now_ns);
    uint64_t fired = 0;
    advancing_ = true;
    for (;;) {
        fired += run_due(now_ns);
        if (free_requested_)
            break;
        unsigned level = 0;
        while (level < kLevels && !occupied_[level])
            level++;
        if (level == kLevels)
            break;
        unsigned slot = unsigned(__builtin_ctzll(occupied_[level]));
        uint64_t start = slot_start_tick(level, slot);
        if (start > target)
            break;
        cur_ = start;
        if (level > 0) {
            cascade(level, slot);
            continue;
        }
        /* A level-0 slot holds one tick, now cur: all of it becomes due. */
        uint32_t list = slot;
        uint64_t bit = uint64_t(1) << slot;
        bool known = min_known_[0] & bit;
        occupied_[0] &= ~bit;
        min_known_[0] &= ~bit;
        Entry &h = pool_.at(list);
        for (uint32_t i = h.next; i != list; i = pool_.at(i).next)
            pool_.at(i).where = uint16_t(kDue);
        Entry &due = pool_.at(kDue);
        bool was_empty = due.next == kDue;
        pool_.at(due.prev).next = h.next;
        pool_.at(h.next).prev = due.prev;
        pool_.at(h.prev).next = kDue;
        due.prev = h.prev;
        h.next = h.prev = list;
        if (was_empty || (known && due_min_known_)) {
            if (was_empty || slot_min_[list] < due_min_)
                due_min_ = slot_min_[list];
            due_min_known_ = known;
        } else {
            due_min_known_ = false;
        }
    }
    if (!free_requested_ && target > cur_)
        cur_ = target;
    advancing_ = false;
    return fired;
}

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
    s.bytes = pool_.bytes() + cbs_cap_ * (sizeof(*cbs_) + 2 * sizeof(*cb_hash_)) + sizeof(*this);
    size_t n = ret->struct_size < sizeof(s) ? ret->struct_size : sizeof(s);
    s.struct_size = n;
    std::memcpy(ret, &s, n);
}

int Wheel::verify() const
{
    uint64_t linked = 0;
    for (uint32_t list = 0; list < kSentinels; list++) {
        const Entry &h = pool_.at(list);
        if (h.where != kWhereSentinel)
            return TW_EUCLEAN;
        uint32_t prev = list;
        uint64_t n = 0, min = TW_NEVER;
        for (uint32_t i = h.next; i != list; i = pool_.at(i).next) {
            if (!pool_.issued(i) || ++n > pool_.fresh())
                return TW_EUCLEAN;
            const Entry &e = pool_.at(i);
            if (e.prev != prev || e.where != list)
                return TW_EUCLEAN;
            if (list == kFiring ? !advancing_ : list_for(e.deadline) != list)
                return TW_EUCLEAN;
            if (e.cb >= ncbs_)
                return TW_EUCLEAN;
            if (e.deadline < min)
                min = e.deadline;
            prev = i;
        }
        if (h.prev != prev)
            return TW_EUCLEAN;
        if (list < kDue) {
            unsigned level = list / kSlots;
            uint64_t bit = uint64_t(1) << (list % kSlots);
            if (bool(occupied_[level] & bit) != (n > 0))
                return TW_EUCLEAN;
            if ((min_known_[level] & bit) && (!n || slot_min_[list] != min))
                return TW_EUCLEAN;
        }
        if (list == kDue && n && due_min_known_ && due_min_ != min)
            return TW_EUCLEAN;
        linked += n;
    }
    uint64_t free_listed = 0;
    for (uint32_t i = pool_.free_head(); i; i = pool_.at(i).next) {
        if (!pool_.issued(i) || pool_.at(i).where != kWhereFree || ++free_listed > pool_.fresh())
            return TW_EUCLEAN;
    }
    uint64_t running = 0, free_seen = 0;
    for (uint32_t i = pool_.reserved(); i < pool_.fresh(); i++) {
        running += pool_.at(i).where == kWhereRunning;
        free_seen += pool_.at(i).where == kWhereFree;
    }
    if (free_listed != pool_.free_count() || free_seen != free_listed)
        return TW_EUCLEAN;
    if (linked + running != pool_.in_use())
        return TW_EUCLEAN;
    if (pool_.in_use() + free_listed != uint64_t(pool_.fresh() - pool_.reserved()))
        return TW_EUCLEAN;
    return 0;
}

} // namespace tw
