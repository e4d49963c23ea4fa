/*
 * A layer as a connection keeps it: the caller's tw_layer_ops and object,
 * and the layer's earliest deadline, cached so that the connection's
 * unified wake-up is a minimum over numbers, not a round of calls.  The
 * cache is refreshed when the layer is marked dirty and after each check.
 *
 * Limits: a check runs what is due at one instant; a layer with several
 * timeouts due at once (recovery's packet-number spaces) may need a few
 * checks, so check() repeats while the layer is still due, at most
 * kChecksPerWake times per wake-up: a layer that stays due after that is
 * checked again at the next one, never in an endless loop.
 *
 * Uses: tickwheel.h (tw_layer_ops) only.  lib/conn holds Layers; the
 * built-in reliability layer's ops are in layers/recovery-layer.hpp.
 */
#ifndef TW_LAYERS_LAYER_HPP
#define TW_LAYERS_LAYER_HPP

#include <cstddef>
#include <cstdint>

#include "tickwheel.h"

namespace tw {

struct Layer {
    /* Checks per wake-up at most, while the layer is still due. */
    static constexpr unsigned kChecksPerWake = 4;

    const tw_layer_ops *ops;
    void *obj;
    uint64_t deadline;          /* cached ops->next_deadline(obj) */

    bool pure() const { return (ops->flags & TW_LAYER_PURE) != 0; }
    /* TW_NEVER is no deadline, even when now is the last instant. */
    bool due(uint64_t now) const { return deadline <= now && deadline != TW_NEVER; }
    void refresh() { deadline = ops->next_deadline(obj); }
    /* Runs what is due at now, refreshing the cache; the event bits. */
    uint32_t check(uint64_t now)
    {
        uint32_t got = 0;
        for (unsigned round = 0; round < kChecksPerWake && due(now); round++) {
            got |= ops->check(obj, now);
            refresh();
        }
        return got;
    }
    size_t take_frames(uint64_t *frames, size_t cap)
    {
        return ops->take_frames ? ops->take_frames(obj, frames, cap) : 0;
    }
};

} // namespace tw

#endif
