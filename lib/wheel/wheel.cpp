#include "wheel/wheel.hpp"
#include "common/copy-out.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace tw {

namespace {

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
    std::free(round_);
    std::free(scratch_);
    std::free(cbs_);
    std::free(cb_hash_);
}

int Wheel::init(const tw_wheel_config &config, uint64_t now_ns)
{
    if (config.tick_ns < TW_TICK_MIN_NS || config.tick_ns > TW_TICK_MAX_NS)
        return TW_EINVAL;
    static_assert(kLevels * kLevelBits >= 64 - 9, "levels must cover 2^64 / TW_TICK_MIN_NS ticks");
    tick_.init(config.tick_ns);
    uint64_t initial_blocks = kBlockReserve + config.initial_timers / Block::kCap;
    if (!pool_.init(config.max_timers, config.initial_timers) || !blocks_.reserve(initial_blocks))
        return TW_ENOMEM;
    round_cap_ = 256;
    round_ = static_cast<Due *>(std::malloc(round_cap_ * sizeof(Due)));
    if (!round_)
        return TW_ENOMEM;
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

/* Where a timer armed now goes.  While a cascade is pending, a timer whose
 * tick falls in the cascading slot joins that slot's tail: placed below at
 * once, it would overtake the slot's older timers of the same deadline. */
uint32_t Wheel::arm_list(uint64_t deadline) const
{
    uint32_t list = list_for(deadline);
    if (cascading_ != kNil && deadline != TW_NEVER) {
        uint64_t t = tick_.divide(deadline);
        unsigned shift = (cascading_ / kSlots) * kLevelBits;
        if (t >= cur_ && (t - cur_) >> shift == 0)
            return cascading_;
    }
    return list;
}

uint64_t Wheel::slot_start_tick(unsigned level, unsigned slot) const
{
    unsigned above = (level + 1) * kLevelBits;
    return (cur_ >> above << above) | (uint64_t(slot) << (level * kLevelBits));
}

/* Keeps the occupancy bits and the cached minima right after an addition. */
__attribute__((always_inline)) inline void Wheel::note_added(uint32_t list, uint64_t deadline,
                                                        bool was_empty)
{
    if (list < kDue) {
        unsigned level = list / kSlots;
        uint64_t bit = uint64_t(1) << (list % kSlots);
        if (was_empty) {
            occupied_[level] |= bit;
            min_known_[level] |= bit;
            in_order_[level] |= bit;
            slot_min_[list] = deadline;
        } else {
            if ((min_known_[level] & bit) && deadline < slot_min_[list])
                slot_min_[list] = deadline;
            if (deadline < slot_last_[list])
                in_order_[level] &= ~bit;
        }
        if (was_empty || deadline > slot_last_[list])
            slot_last_[list] = deadline;
    } else if (list == kDue) {
        if (was_empty) {
            due_min_ = deadline;
            due_min_known_ = true;
            due_in_order_ = true;
        } else {
            if (due_min_known_ && deadline < due_min_)
                due_min_ = deadline;
            if (deadline < due_last_)
                due_in_order_ = false;
        }
        if (was_empty || deadline > due_last_)
            due_last_ = deadline;
    }
}

__attribute__((always_inline)) inline void Wheel::append(uint32_t list, uint32_t i)
{
    List &l = lists_[list];
    bool was_empty = l.head == kNil;
    uint32_t b = l.tail;
    if (b == kNil || blocks_[b].fill == Block::kCap) {
        uint32_t nb = blocks_.take();
        Block &n = blocks_[nb];
        n.prev = b;
        n.next = kNil;
        n.live = n.fill = 0;
        n.list = list;
        if (b == kNil)
            l.head = nb;
        else
            blocks_[b].next = nb;
        l.tail = b = nb;
    }
    Block &blk = blocks_[b];
    Entry &e = pool_.at(i);
    e.pos = b << 6 | blk.fill;
    e.state = kStateArmed;
    blk.idx[blk.fill++] = i;
    blk.live++;
    note_added(list, e.deadline, was_empty);
}

__attribute__((noinline)) void Wheel::drop_block(uint32_t list, uint32_t b)
{
    Block &blk = blocks_[b];
    List &l = lists_[list];
    if (blk.prev == kNil)
        l.head = blk.next;
    else
        blocks_[blk.prev].next = blk.next;
    if (blk.next == kNil)
        l.tail = blk.prev;
    else
        blocks_[blk.next].prev = blk.prev;
    blocks_.give(b);
}

/* Takes an armed or firing entry out of where it is; its state is left to
 * the caller. */
__attribute__((always_inline)) inline void Wheel::remove(uint32_t i)
{
    Entry &e = pool_.at(i);
    if (e.state == kStateFiring) {
        round_[e.pos].idx = kNil;
        return;
    }
    uint32_t b = e.pos >> 6;
    Block &blk = blocks_[b];
    uint32_t list = blk.list;
    blk.idx[e.pos & 63] = kNil;
    bool emptied = false;
    if (--blk.live == 0) {
        drop_block(list, b);
        emptied = lists_[list].head == kNil;
    }
    if (list < kDue) {
        unsigned level = list / kSlots;
        uint64_t bit = uint64_t(1) << (list % kSlots);
        if (emptied)
            occupied_[level] &= ~bit;
        if (emptied || e.deadline == slot_min_[list])
            min_known_[level] &= ~bit;
    } else if (list == kDue) {
        if (emptied || e.deadline == due_min_)
            due_min_known_ = false;
    }
}

int Wheel::intern_callback(tw_timer_cb *cb)
{
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

uint32_t Wheel::arm(uint64_t deadline, uint16_t cb, void *userdata, uint32_t slack)
{
    uint32_t i = pool_.alloc();
    if (!i)
        return 0;
    Entry &e = pool_.at(i);
    e.deadline = deadline;
    e.userdata = userdata;
    e.cb = cb;
    e.slack = slack;
    append(arm_list(deadline), i);
    scheduled_++;
    return i;
}

int Wheel::schedule(uint64_t deadline, tw_timer_cb *cb, void *userdata, tw_timer *ret)
{
    int cbi = callback_index(cb);
    if (cbi < 0)
        return cbi;
    if (blocks_.free_count() <= kBlockReserve && !blocks_.reserve(kBlockReserve + 1))
        return TW_ENOMEM;
    uint32_t i = arm(deadline, uint16_t(cbi), userdata);
    if (!i)
        return TW_ENOMEM;
    *ret = handle(i, pool_.at(i));
    return 0;
}

uint64_t Wheel::slack_instant(uint64_t deadline, uint32_t slack) const
{
    if (!slack || deadline == TW_NEVER || deadline <= now_ns_)
        return deadline;
    uint64_t last = deadline > TW_NEVER - 1 - slack ? TW_NEVER - 1 : deadline + slack;
    if (last == deadline)
        return deadline;
    /* deadline > now_ns_ >= 0, so deadline - 1 does not wrap. */
    unsigned k = 63u - unsigned(__builtin_clzll((deadline - 1) ^ last));
    return last & ~((uint64_t(1) << k) - 1);
}

int Wheel::schedule_slack(uint64_t deadline, uint64_t slack, tw_timer_cb *cb, void *userdata,
                          tw_timer *ret)
{
    int cbi = callback_index(cb);
    if (cbi < 0)
        return cbi;
    if (blocks_.free_count() <= kBlockReserve && !blocks_.reserve(kBlockReserve + 1))
        return TW_ENOMEM;
    uint32_t s = slack > UINT32_MAX ? UINT32_MAX : uint32_t(slack);
    uint32_t i = arm(slack_instant(deadline, s), uint16_t(cbi), userdata, s);
    if (!i)
        return TW_ENOMEM;
    *ret = handle(i, pool_.at(i));
    return 0;
}

/* The lists of a batch come from the list kernel, 64 deadlines at a time
 * into a buffer on the stack, and its entries from one pass over the free
 * list; the timers are then armed in array order, so equal deadlines keep
 * it.  While a cascade is pending, arm_list may differ from list_for: that
 * rare case arms one by one.  (Prefetching the tail blocks of the chunk's
 * lists before the appends was tried and made no difference measurable on
 * the 2-vCPU guest, so it is not done.) */
int Wheel::schedule_batch(size_t n, const uint64_t *deadlines, tw_timer_cb *cb,
                          void *const *userdata, tw_timer *ret)
{
    static_assert(simd::kLevelBits == kLevelBits && simd::kLevels == kLevels &&
                      simd::kDueList == kDue && simd::kNeverList == kNever,
                  "the kernels number lists as the wheel does");
    int cbi = callback_index(cb);
    if (cbi < 0)
        return cbi;
    /* Every timer may open a block of its own list at worst. */
    uint64_t blocks = kBlockReserve + (n < kLists ? n : kLists + n / Block::kCap + 1);
    if (!pool_.reserve(n) || !blocks_.reserve(blocks))
        return TW_ENOMEM;
    if (cascading_ != kNil) {
        for (size_t k = 0; k < n; k++) {
            uint32_t i = arm(deadlines[k], uint16_t(cbi), userdata ? userdata[k] : nullptr);
            ret[k] = handle(i, pool_.at(i));
        }
        return 0;
    }
    simd::ListParams p;
    tick_.params(&p);
    p.cur = cur_;
    uint32_t lists[kBatchChunk], idx[kBatchChunk];
    uint16_t cb16 = uint16_t(cbi);
    for (size_t k = 0; k < n; k += kBatchChunk) {
        size_t m = n - k < kBatchChunk ? n - k : kBatchChunk;
        simd_->lists(p, m, deadlines + k, lists);
        pool_.alloc_n(m, idx);
        for (size_t j = 0; j < m; j++) {
            uint32_t i = idx[j];
            Entry &e = pool_.at(i);
            e.deadline = deadlines[k + j];
            e.userdata = userdata ? userdata[k + j] : nullptr;
            e.cb = cb16;
            e.slack = 0;
            append(lists[j], i);
            ret[k + j] = handle(i, e);
        }
    }
    scheduled_ += n;
    return 0;
}

size_t Wheel::cancel_batch(size_t n, const tw_timer *timers)
{
    size_t done = 0;
    for (size_t k = 0; k < n; k++) {
        uint32_t i = lookup(timers[k]);
        if (!i || pool_.at(i).state == kStateRunning)
            continue;
        remove(i);
        pool_.release(i);
        done++;
    }
    cancelled_ += done;
    return done;
}

int Wheel::cancel(tw_timer timer)
{
    uint32_t i = lookup(timer);
    if (!i || pool_.at(i).state == kStateRunning)
        return TW_ENOENT;
    remove(i);
    pool_.release(i);
    cancelled_++;
    return 0;
}

int Wheel::reschedule(tw_timer timer, uint64_t deadline)
{
    uint32_t i = lookup(timer);
    if (!i)
        return TW_ENOENT;
    if (blocks_.free_count() <= kBlockReserve && !blocks_.reserve(kBlockReserve + 1))
        return TW_ENOMEM;
    Entry &e = pool_.at(i);
    /* Always re-appended, even within one slot: equal deadlines fire in
     * arming order, and a reschedule is an arming. */
    if (e.state != kStateRunning)
        remove(i);
    e.deadline = e.slack ? slack_instant(deadline, e.slack) : deadline;
    append(arm_list(deadline), i);
    rescheduled_++;
    return 0;
}

int Wheel::deadline(tw_timer timer, uint64_t *ret) const
{
    uint32_t i = lookup(timer);
    if (!i || pool_.at(i).state == kStateRunning)
        return TW_ENOENT;
    *ret = pool_.at(i).deadline;
    return 0;
}

int Wheel::next_deadline(uint64_t *ret) const
{
    /* A cascade cut short holds timers due from its start on: run now. */
    if (cascading_ != kNil) {
        *ret = cur_ * tick_.divisor();
        return 0;
    }
    /* Inside a dispatch round, the rest of the round comes first, sorted. */
    for (uint32_t k = round_at_; k < round_n_; k++) {
        if (round_[k].idx != kNil) {
            *ret = round_[k].deadline;
            return 0;
        }
    }
    if (lists_[kDue].head != kNil) {
        if (!due_min_known_) {
            due_min_ = due_in_order_ ? first_deadline(kDue) : list_min(kDue);
            due_min_known_ = true;
        }
        *ret = due_min_;
        return 0;
    }
    for (unsigned level = 0; level < kLevels; level++) {
        if (!occupied_[level])
            continue;
        unsigned slot = unsigned(__builtin_ctzll(occupied_[level]));
        uint32_t list = level * kSlots + slot;
        uint64_t bit = uint64_t(1) << slot;
        if (!(min_known_[level] & bit) && !rescan_min(list))
            *ret = slot_start_tick(level, slot) * tick_.divisor();
        else
            *ret = slot_min_[list];
        return 0;
    }
    return TW_ENOENT;
}

/* The first live deadline of a list: its minimum when it is in order.  A
 * list's blocks are freed when their last entry leaves, so this reads one
 * block. */
uint64_t Wheel::first_deadline(uint32_t list) const
{
    for (uint32_t b = lists_[list].head; b != kNil; b = blocks_[b].next) {
        const Block &blk = blocks_[b];
        for (unsigned k = 0; k < blk.fill; k++)
            if (blk.idx[k] != kNil)
                return pool_.at(blk.idx[k]).deadline;
    }
    return TW_NEVER;
}

uint64_t Wheel::list_min(uint32_t list) const
{
    uint64_t m = TW_NEVER;
    for (uint32_t b = lists_[list].head; b != kNil; b = blocks_[b].next) {
        const Block &blk = blocks_[b];
        for (unsigned k = 0; k < blk.fill; k++)
            if (blk.idx[k] != kNil && pool_.at(blk.idx[k]).deadline < m)
                m = pool_.at(blk.idx[k]).deadline;
    }
    return m;
}

/* Recomputes a slot's lost minimum when the slot is small enough that a
 * scan is cheap; a large slot keeps answering its start (never late). */
bool Wheel::rescan_min(uint32_t list) const
{
    unsigned blocks = 0;
    for (uint32_t b = lists_[list].head; b != kNil; b = blocks_[b].next)
        if (++blocks > kRescanBlocks)
            return false;
    slot_min_[list] = list_min(list);
    min_known_[list / kSlots] |= uint64_t(1) << (list % kSlots);
    return true;
}

/* Moves the entries of a higher-level slot to their places below, in
 * order, block by block, until *work reaches limit.  Each source block is
 * freed once read, so a cascade needs at most one new partial block per
 * destination list beyond what it frees.  A cascade cut short stays
 * pending: the slot keeps its remaining blocks (a cancel still finds
 * them) and the next advance resumes it before anything fires.  Returns
 * true when the slot is done. */
bool Wheel::cascade(uint64_t *work, uint64_t limit)
{
    uint32_t list = cascading_;
    uint32_t b;
    while ((b = lists_[list].head) != kNil) {
        if (*work >= limit)
            return false;
        Block &blk = blocks_[b];
        for (unsigned k = 0; k < blk.fill; k++)
            if (blk.idx[k] != kNil)
                __builtin_prefetch(&pool_.at(blk.idx[k]));
        if (blk.next != kNil)
            __builtin_prefetch(&blocks_[blk.next]);
        for (unsigned k = 0; k < blk.fill; k++) {
            uint32_t i = blk.idx[k];
            if (i == kNil)
                continue;
            append(list_for(pool_.at(i).deadline), i);
            cascaded_++;
            ++*work;
        }
        drop_block(list, b);
    }
    /* Timers armed into the slot while it was pending set its bits again. */
    uint64_t bit = uint64_t(1) << (list % kSlots);
    occupied_[list / kSlots] &= ~bit;
    min_known_[list / kSlots] &= ~bit;
    cascading_ = kNil;
    return true;
}

/* A level-0 slot holds one tick, now cur: its blocks join the due list. */
void Wheel::slot_to_due(unsigned slot)
{
    uint64_t bit = uint64_t(1) << slot;
    bool known = min_known_[0] & bit;
    occupied_[0] &= ~bit;
    min_known_[0] &= ~bit;
    List &src = lists_[slot], &due = lists_[kDue];
    for (uint32_t b = src.head; b != kNil; b = blocks_[b].next)
        blocks_[b].list = kDue;
    bool was_empty = due.head == kNil;
    if (was_empty) {
        due.head = src.head;
    } else {
        blocks_[due.tail].next = src.head;
        blocks_[src.head].prev = due.tail;
    }
    due.tail = src.tail;
    src = List();
    /* In order if both were and the slot starts at or after the due list's
     * last deadline; a slot in order starts at its minimum. */
    bool slot_in_order = (in_order_[0] & bit) && known;
    due_in_order_ = slot_in_order && (was_empty || (due_in_order_ && due_last_ <= slot_min_[slot]));
    if (was_empty || slot_last_[slot] > due_last_)
        due_last_ = slot_last_[slot];
    in_order_[0] &= ~bit;
    if (was_empty || (known && due_min_known_)) {
        if (was_empty || slot_min_[slot] < due_min_)
            due_min_ = slot_min_[slot];
        due_min_known_ = known;
    } else {
        due_min_known_ = false;
    }
}

/* Collects the due timers whose deadline is <= now_ns into the round, in
 * deadline order, equal deadlines in list (arming) order, and takes them
 * off the due list.  A due list known to be in order gives its first
 * `limit` at once, so a budgeted turn does work in proportion to its
 * budget however many timers are due; otherwise the whole list is walked
 * and sorted.  If the round cannot grow, it holds the earliest that fit
 * and the rest wait for the next round.  Returns the round's size. */
uint32_t Wheel::gather_due(uint64_t now_ns, uint64_t limit)
{
    uint32_t n = 0, order = 0;
    bool sorted = true, heap = false;
    bool prefix = due_in_order_;
    bool rest_in_order = true;
    uint64_t rest_last = 0;
    for (uint32_t b = lists_[kDue].head; b != kNil; b = blocks_[b].next) {
        const Block &blk = blocks_[b];
        for (unsigned k = 0; k < blk.fill; k++) {
            uint32_t i = blk.idx[k];
            if (i == kNil)
                continue;
            uint64_t d = pool_.at(i).deadline;
            if (d > now_ns || (prefix && n == limit)) {
                if (prefix)
                    goto gathered;
                rest_in_order &= d >= rest_last;
                rest_last = d;
                continue;
            }
            Due item = {d, order++, i};
            if (n == round_cap_ && !heap) {
                uint32_t cap = round_cap_ * 2;
                auto *r = static_cast<Due *>(std::realloc(round_, cap * sizeof(Due)));
                if (r) {
                    round_ = r;
                    round_cap_ = cap;
                } else if (prefix) {
                    goto gathered;      /* the earliest that fit, in order */
                } else {
                    /* Out of memory: keep the round_cap_ earliest in a heap. */
                    std::make_heap(round_, round_ + n);
                    heap = true;
                }
            }
            if (!heap) {
                sorted &= n == 0 || !(item < round_[n - 1]);
                round_[n++] = item;
            } else if (item < round_[0]) {
                std::pop_heap(round_, round_ + n);
                round_[n - 1] = item;
                std::push_heap(round_, round_ + n);
            }
        }
    }
    if (heap)
        std::sort_heap(round_, round_ + n);
    else if (!sorted)
        std::sort(round_, round_ + n);
gathered:
    for (uint32_t k = 0; k < n; k++) {
        uint32_t i = round_[k].idx;
        remove(i);
        Entry &e = pool_.at(i);
        e.state = kStateFiring;
        e.pos = k;
    }
    if (!prefix && lists_[kDue].head != kNil) {
        due_in_order_ = rest_in_order;
        due_last_ = rest_last;
        if (!rest_in_order)
            sort_due();
    }
    return n;
}

/* Puts the due list in deadline order (equal deadlines keep list order) and
 * packs its blocks.  A gather that leaves timers not yet due behind, out of
 * order, calls it: without it, every advance inside the current tick would
 * rescan them all, and a loop woken at each exact deadline would pay the
 * square of the tick's population. */
void Wheel::sort_due()
{
    uint32_t n = 0;
    for (uint32_t b = lists_[kDue].head; b != kNil; b = blocks_[b].next) {
        const Block &blk = blocks_[b];
        for (unsigned k = 0; k < blk.fill; k++) {
            uint32_t i = blk.idx[k];
            if (i == kNil)
                continue;
            if (n == scratch_cap_) {
                uint32_t cap = scratch_cap_ ? scratch_cap_ * 2 : 256;
                auto *p = static_cast<Due *>(std::realloc(scratch_, cap * sizeof(Due)));
                if (!p)
                    return;     /* stays unordered: correct, only slower */
                scratch_ = p;
                scratch_cap_ = cap;
            }
            scratch_[n] = Due{pool_.at(i).deadline, n, i};
            n++;
        }
    }
    std::sort(scratch_, scratch_ + n);
    /* n fits in the blocks the list has: rewrite them front to back. */
    uint32_t b = lists_[kDue].head;
    unsigned k = 0;
    for (uint32_t j = 0; j < n; j++) {
        if (k == Block::kCap) {
            blocks_[b].fill = blocks_[b].live = uint16_t(k);
            b = blocks_[b].next;
            k = 0;
        }
        uint32_t i = scratch_[j].idx;
        blocks_[b].idx[k] = i;
        pool_.at(i).pos = b << 6 | k;
        k++;
    }
    blocks_[b].fill = blocks_[b].live = uint16_t(k);
    uint32_t spare = blocks_[b].next;
    blocks_[b].next = kNil;
    lists_[kDue].tail = b;
    while (spare != kNil) {
        uint32_t next = blocks_[spare].next;
        blocks_.give(spare);
        spare = next;
    }
    due_in_order_ = true;
    due_last_ = scratch_[n - 1].deadline;
    due_min_ = scratch_[0].deadline;
    due_min_known_ = true;
}

/* Fires the due timers whose deadline is <= now_ns, in deadline order, at
 * most budget of them.  Timers made due by the callbacks of one round fire
 * in the next. */
uint64_t Wheel::run_due(uint64_t now_ns, uint64_t budget)
{
    uint64_t fired = 0;
    for (;;) {
        if (round_at_ == round_n_) {
            round_n_ = round_at_ = 0;
            if (lists_[kDue].head == kNil || (round_n_ = gather_due(now_ns, budget - fired)) == 0)
                return fired;
        }
        while (round_at_ < round_n_) {
            if (fired == budget || free_requested_)
                return fired;
            uint32_t k = round_at_++;
            if (k + 8 < round_n_ && round_[k + 8].idx != kNil)
                __builtin_prefetch(&pool_.at(round_[k + 8].idx));
            uint32_t i = round_[k].idx;
            if (i == kNil)
                continue;
            Entry &e = pool_.at(i);
            e.state = kStateRunning;
            uint64_t late = now_ns - e.deadline;
            late_log2_[late ? 64 - __builtin_clzll(late) : 0]++;
            if (late > late_max_)
                late_max_ = late;
            cbs_[e.cb](handle(i, e), e.deadline, e.userdata);
            /* The callback may have grown the pool: e may have moved. */
            if (pool_.at(i).state == kStateRunning)
                pool_.release(i);
            fired++;
            fired_++;
        }
    }
}

uint64_t Wheel::advance(uint64_t now_ns, uint64_t max_callbacks)
{
    if (now_ns < now_ns_)
        now_ns = now_ns_;
    now_ns_ = now_ns;
    uint64_t target = tick_.divide(now_ns);
    uint64_t budget = max_callbacks ? max_callbacks : UINT64_MAX;
    /* Moving an entry costs a fraction of running a callback. */
    uint64_t work = 0, work_limit = max_callbacks ? max_callbacks * kCascadePerCallback : UINT64_MAX;
    uint64_t fired = 0;
    advancing_ = true;
    for (;;) {
        if (cascading_ != kNil && !cascade(&work, work_limit))
            break;
        fired += run_due(now_ns, budget - fired);
        if (free_requested_ || fired == budget)
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
            uint64_t bit = uint64_t(1) << slot;
            occupied_[level] &= ~bit;
            min_known_[level] &= ~bit;
            cascading_ = level * kSlots + slot;
        } else {
            slot_to_due(slot);
        }
    }
    /* Stopped by the budget, cur_ stays at the last slot visited, so the
     * next advance resumes the walk where this one left it. */
    if (!free_requested_ && fired < budget && cascading_ == kNil && target > cur_)
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
    uint64_t total = 0, seen = 0;
    for (uint64_t c : late_log2_)
        total += c;
    for (unsigned b = 0; b < 65 && total; b++) {
        uint64_t before = seen;
        seen += late_log2_[b];
        uint64_t upper = b == 0 ? 0 : b == 64 ? UINT64_MAX : (uint64_t(1) << b) - 1;
        if (upper > late_max_)
            upper = late_max_;
        if (before < (total + 1) / 2 && seen >= (total + 1) / 2)
            s.late_p50_ns = upper;
        if (before < total - total / 100 && seen >= total - total / 100)
            s.late_p99_ns = upper;
    }
    s.late_max_ns = late_max_;
    s.bytes = pool_.bytes() + blocks_.bytes() + round_cap_ * sizeof(Due) +
              cbs_cap_ * (sizeof(*cbs_) + 2 * sizeof(*cb_hash_)) + sizeof(*this);
    copy_out(s, ret);
}

int Wheel::verify() const
{
    uint64_t armed = 0, chained_blocks = 0;
    for (uint32_t list = 0; list < kLists; list++) {
        const List &l = lists_[list];
        uint32_t prev = kNil;
        uint64_t n = 0, min = TW_NEVER, last = 0;
        bool ordered = true;
        for (uint32_t b = l.head; b != kNil; b = blocks_[b].next) {
            if (b >= blocks_.total() || ++chained_blocks > blocks_.total())
                return TW_EUCLEAN;
            const Block &blk = blocks_[b];
            if (blk.prev != prev || blk.list != list || blk.fill > Block::kCap || !blk.live)
                return TW_EUCLEAN;
            unsigned live = 0;
            for (unsigned k = 0; k < blk.fill; k++) {
                uint32_t i = blk.idx[k];
                if (i == kNil)
                    continue;
                if (!pool_.issued(i))
                    return TW_EUCLEAN;
                const Entry &e = pool_.at(i);
                if (e.state != kStateArmed || e.pos != (b << 6 | k) || e.cb >= ncbs_ ||
                    (list != cascading_ && list_for(e.deadline) != list))
                    return TW_EUCLEAN;
                if (e.deadline < min)
                    min = e.deadline;
                ordered &= e.deadline >= last;
                last = e.deadline;
                live++;
            }
            if (live != blk.live)
                return TW_EUCLEAN;
            n += live;
            prev = b;
        }
        if (l.tail != prev)
            return TW_EUCLEAN;
        if (list < kDue && list != cascading_) {
            unsigned level = list / kSlots;
            uint64_t bit = uint64_t(1) << (list % kSlots);
            if (bool(occupied_[level] & bit) != (n > 0))
                return TW_EUCLEAN;
            if ((min_known_[level] & bit) && (!n || slot_min_[list] != min))
                return TW_EUCLEAN;
            if (n && (in_order_[level] & bit) && (!ordered || last > slot_last_[list]))
                return TW_EUCLEAN;
        }
        if (list == kDue && n && due_min_known_ && due_min_ != min)
            return TW_EUCLEAN;
        if (list == kDue && n && due_in_order_ && (!ordered || last > due_last_))
            return TW_EUCLEAN;
        armed += n;
    }
    uint64_t free_blocks = 0;
    for (uint32_t b = blocks_.free_head(); b != kNil; b = blocks_[b].next)
        if (b >= blocks_.total() || ++free_blocks > blocks_.total())
            return TW_EUCLEAN;
    uint64_t untouched = blocks_.untouched();
    if (free_blocks + untouched != blocks_.free_count() ||
        free_blocks + untouched + chained_blocks != blocks_.total())
        return TW_EUCLEAN;
    uint64_t free_listed = 0;
    for (uint32_t i = pool_.free_head(); i; i = pool_.at(i).pos) {
        if (!pool_.issued(i) || pool_.at(i).state != kStateFree || ++free_listed > pool_.fresh())
            return TW_EUCLEAN;
    }
    uint64_t counted[4] = {};
    for (uint32_t i = 1; i < pool_.fresh(); i++) {
        const Entry &e = pool_.at(i);
        if (e.state > kStateRunning)
            return TW_EUCLEAN;
        counted[e.state]++;
        if (e.state == kStateFiring &&
            (e.pos < round_at_ || e.pos >= round_n_ || round_[e.pos].idx != i))
            return TW_EUCLEAN;
    }
    if (counted[kStateFree] != free_listed || free_listed != pool_.free_count() ||
        counted[kStateArmed] != armed)
        return TW_EUCLEAN;
    uint64_t pending = 0;
    for (uint32_t k = round_at_; k < round_n_; k++)
        pending += round_[k].idx != kNil;
    if (counted[kStateFiring] != pending || (!advancing_ && counted[kStateRunning]))
        return TW_EUCLEAN;
    if (pool_.in_use() + free_listed != uint64_t(pool_.fresh() - 1))
        return TW_EUCLEAN;
    return 0;
}

} // namespace tw
