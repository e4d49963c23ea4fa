/*
 * The reliability layer's tw_layer_ops, on the core of a tw_recovery with
 * the guards of its C boundary.  See recovery-layer.hpp.
 *
 * Uses: layers/recovery.hpp.
 */
#include "layers/recovery-layer.hpp"
#include "layers/recovery.hpp"

namespace tw {

namespace {

tw_recovery *recovery_of(void *layer)
{
    return static_cast<tw_recovery *>(layer);
}

const tw_recovery *recovery_of(const void *layer)
{
    return static_cast<const tw_recovery *>(layer);
}

uint64_t next_deadline(const void *layer) noexcept
{
    uint64_t at;
    return recovery_of(layer)->core.next_deadline(&at) == 0 ? at : TW_NEVER;
}

uint32_t check(void *layer, uint64_t now_ns) noexcept
{
    tw_recovery *r = recovery_of(layer);
    uint32_t events = 0;
    if (r->core.free_requested() || recovery_busy(r))
        return 0;
    recovery_finish(r, r->core.check(now_ns, &events));
    return events;
}

size_t take_frames(void *layer, uint64_t *frames, size_t cap) noexcept
{
    tw_recovery *r = recovery_of(layer);
    if (!frames || recovery_busy(r))
        return 0;
    return r->core.take_frames(frames, cap);
}

size_t stats(const void *layer, tw_layer_stat *out, size_t cap) noexcept
{
    const tw_recovery *r = recovery_of(layer);
    tw_recovery_stats s;
    s.struct_size = sizeof(s);
    r->core.stats(&s);
    tw_rtt rtt;
    rtt.struct_size = sizeof(rtt);
    r->core.rtt(&rtt);
    const tw_layer_stat all[] = {
        {"sent", s.sent},
        {"acked", s.acked},
        {"lost", s.lost},
        {"pto", s.pto},
        {"rto", s.rto},
        {"bytes_in_flight", s.bytes_in_flight},
        {"smoothed_rtt_ns", rtt.smoothed_ns},
        {"pto_ns", rtt.pto_ns},
    };
    size_t n = sizeof(all) / sizeof(all[0]);
    for (size_t i = 0; i < n && i < cap; i++)
        out[i] = all[i];
    return n;
}

} // namespace

const tw_layer_ops kRecoveryLayer = {sizeof(tw_layer_ops), "recovery", next_deadline,
                                     check, take_frames, TW_LAYER_PURE, stats};

void recovery_layer_notify(tw_recovery *recovery, tw_recovery_notify_fn *fn, void *userdata)
{
    if (!recovery->core.free_requested() && !recovery_busy(recovery))
        recovery->core.set_notify(fn, userdata);
}

tw_recovery_notify_fn *recovery_layer_notified(const tw_recovery *recovery)
{
    return recovery->core.notify_fn();
}

} // namespace tw
