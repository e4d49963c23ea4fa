/*
 * The callback table, as callbacks.hpp lays it out: interning, growth,
 * deletion by backward shift, and its own check.
 *
 * Uses: nothing of the library.
 */
#include "wheel/callbacks.hpp"

#include <cstdlib>

namespace tw {

CallbackTable::~CallbackTable()
{
    std::free(slots_);
    std::free(spare_);
    std::free(hash_);
}

uint32_t CallbackTable::refs_of(tw_timer_cb *cb) const
{
    if (!hash_)
        return 0;
    for (uint32_t h = home(cb); hash_[h]; h = (h + 1) & mask_)
        if (slots_[hash_[h] - 1].fn == cb)
            return slots_[hash_[h] - 1].refs;
    return 0;
}

int CallbackTable::intern(tw_timer_cb *cb)
{
    /* The previous callback was kept while unused, for its next arm. */
    if (last_index_ != 0xffff && slots_[last_index_].refs == 0) {
        uint16_t old = last_index_;
        last_ = nullptr;
        last_index_ = 0xffff;
        drop(old);
    }
    if (hash_) {
        for (uint32_t h = home(cb); hash_[h]; h = (h + 1) & mask_) {
            uint32_t k = hash_[h] - 1;
            if (slots_[k].fn == cb) {
                last_ = cb;
                last_index_ = uint16_t(k);
                return int(k);
            }
        }
    }
    if (!spare_n_ && used_ == kMax)
        return TW_ENOSPC;
    if (!spare_n_ && used_ == cap_ && !grow())
        return TW_ENOMEM;
    uint32_t k = spare_n_ ? spare_[--spare_n_] : used_++;
    slots_[k].fn = cb;
    slots_[k].refs = 0;
    uint32_t h = home(cb);
    while (hash_[h])
        h = (h + 1) & mask_;
    hash_[h] = k + 1;
    last_ = cb;
    last_index_ = uint16_t(k);
    return int(k);
}

/* Twice the slots, and a hash at most half full, rehashed. */
bool CallbackTable::grow()
{
    uint32_t cap = cap_ ? cap_ * 2 : 8;
    if (cap > kMax)
        cap = kMax;
    auto *slots = static_cast<Slot *>(std::realloc(slots_, cap * sizeof(Slot)));
    if (!slots)
        return false;
    slots_ = slots;
    auto *spare = static_cast<uint16_t *>(std::realloc(spare_, cap * sizeof(uint16_t)));
    if (!spare)
        return false;
    spare_ = spare;
    uint32_t n = 16;
    while (n < cap * 2)
        n *= 2;
    auto *hash = static_cast<uint32_t *>(std::calloc(n, sizeof(uint32_t)));
    if (!hash)
        return false;
    std::free(hash_);
    hash_ = hash;
    mask_ = n - 1;
    cap_ = cap;
    for (uint32_t k = 0; k < used_; k++) {
        if (!slots_[k].fn)
            continue;
        uint32_t h = home(slots_[k].fn);
        while (hash_[h])
            h = (h + 1) & mask_;
        hash_[h] = k + 1;
    }
    return true;
}

/* Takes callback k out: out of the hash by backward shift (later members
 * of its probe run move up, so no tombstone is left), its slot onto the
 * spare stack. */
void CallbackTable::drop(uint16_t k)
{
    uint32_t h = home(slots_[k].fn);
    while (hash_[h] != uint32_t(k) + 1)
        h = (h + 1) & mask_;
    for (uint32_t j = h;;) {
        hash_[h] = 0;
        for (;;) {
            j = (j + 1) & mask_;
            if (!hash_[j])
                goto dropped;
            uint32_t at = home(slots_[hash_[j] - 1].fn);
            /* The member at j may move to h unless its home lies in (h, j]. */
            bool stays = h <= j ? (at > h && at <= j) : (at > h || at <= j);
            if (!stays)
                break;
        }
        hash_[h] = hash_[j];
        h = j;
    }
dropped:
    slots_[k].fn = nullptr;
    slots_[k].refs = 0;
    spare_[spare_n_++] = k;
}

const char *CallbackTable::check(const uint32_t *refs) const
{
    uint32_t freed = 0;
    for (uint32_t k = 0; k < used_; k++) {
        if (slots_[k].refs != refs[k])
            return "a callback's use count is wrong";
        if (!slots_[k].fn)
            freed++;
        else if (!slots_[k].refs && k != last_index_)
            return "an unused callback was kept";
    }
    if (freed != spare_n_)
        return "freed callback slots and the spare stack disagree";
    return nullptr;
}

size_t CallbackTable::bytes() const
{
    return cap_ * (sizeof(Slot) + sizeof(uint16_t)) + (hash_ ? (mask_ + 1) * sizeof(uint32_t) : 0);
}

} // namespace tw
