/*
 * The C boundary of the reliability layer: argument checks, the notify
 * guard (a call that would change state from inside the notify callback
 * answers TW_EBUSY; a free there is deferred until the callback returns)
 * and the two timeout helpers of RFC 9000.
 *
 * Uses: lib/layers/recovery.hpp (the core, its handle and guards),
 * lib/common.
 */
#include <cstring>
#include <new>

#include "common/copy-out.hpp"
#include "layers/recovery.hpp"
#include "tickwheel.h"

using tw::recovery_busy;
using tw::recovery_finish;

namespace {

constexpr uint64_t kMs = 1000000;

/* RFC 9000 s10.1 and s8.2.4: the idle timeout is at least, and a path
 * validation lasts, three PTOs. */
constexpr uint64_t kPtosPerTimeout = 3;

uint64_t ptos(uint64_t pto)
{
    return pto > TW_NEVER / kPtosPerTimeout ? TW_NEVER : kPtosPerTimeout * pto;
}

} // namespace

extern "C" {

void tw_recovery_config_init(tw_recovery_config *config) noexcept
{
    if (!config)
        return;
    std::memset(config, 0, sizeof(*config));
    config->struct_size = sizeof(*config);
    config->mode = TW_RECOVERY_RFC9002;
    config->initial_rtt_ns = 333 * kMs;
    config->max_ack_delay_ns = 25 * kMs;
    config->granularity_ns = 1 * kMs;
    config->packet_threshold = 3;
    config->time_threshold_num = 9;
    config->time_threshold_den = 8;
    config->rto_initial_ns = 1000 * kMs;
    config->rto_min_ns = 1000 * kMs;
    config->rto_max_ns = 60000 * kMs;
}

int tw_recovery_new(const tw_recovery_config *config, tw_recovery **ret) noexcept
{
    if (!ret)
        return TW_EINVAL;
    *ret = nullptr;
    tw_recovery_config c;
    tw_recovery_config_init(&c);
    if (config) {
        if (config->struct_size != sizeof(tw_recovery_config))
            return TW_EINVAL;
        c = *config;
    }
    if (!tw::Recovery::valid_config(c))
        return TW_EINVAL;
    auto *r = new (std::nothrow) tw_recovery;
    if (!r)
        return TW_ENOMEM;
    r->core.init(c, r);
    *ret = r;
    return 0;
}

void tw_recovery_free(tw_recovery *recovery) noexcept
{
    if (!recovery)
        return;
    if (recovery->core.notifying()) {
        recovery->core.request_free();
        return;
    }
    delete recovery;
}

int tw_recovery_on_sent(tw_recovery *recovery, unsigned space, uint64_t pn, uint64_t now_ns,
                        uint32_t bytes, unsigned flags, uint64_t frames) noexcept
{
    if (!recovery || recovery->core.free_requested())
        return TW_EINVAL;
    if (recovery_busy(recovery))
        return TW_EBUSY;
    return recovery_finish(recovery, recovery->core.on_sent(space, pn, now_ns, bytes, flags, frames));
}

int tw_recovery_on_ack(tw_recovery *recovery, unsigned space, const tw_ack_range *ranges,
                       size_t n, uint64_t ack_delay_ns, uint64_t now_ns) noexcept
{
    if (!recovery || recovery->core.free_requested())
        return TW_EINVAL;
    if (recovery_busy(recovery))
        return TW_EBUSY;
    return recovery_finish(recovery, recovery->core.on_ack(space, ranges, n, ack_delay_ns, now_ns));
}

int tw_recovery_next_deadline(const tw_recovery *recovery, uint64_t *ret) noexcept
{
    if (!recovery || !ret)
        return TW_EINVAL;
    return recovery->core.next_deadline(ret);
}

int tw_recovery_check(tw_recovery *recovery, uint64_t now_ns, uint32_t *ret) noexcept
{
    if (ret)
        *ret = 0;
    if (!recovery || !ret || recovery->core.free_requested())
        return TW_EINVAL;
    if (recovery_busy(recovery))
        return TW_EBUSY;
    return recovery_finish(recovery, recovery->core.check(now_ns, ret));
}

size_t tw_recovery_take_frames(tw_recovery *recovery, uint64_t *frames, size_t cap) noexcept
{
    if (!recovery || !frames || recovery_busy(recovery))
        return 0;
    return recovery->core.take_frames(frames, cap);
}

size_t tw_recovery_take_retired(tw_recovery *recovery, uint64_t *frames, size_t cap) noexcept
{
    if (!recovery || !frames || recovery_busy(recovery))
        return 0;
    return recovery->core.take_retired(frames, cap);
}

int tw_recovery_set_notify(tw_recovery *recovery, tw_recovery_notify_fn *fn,
                           void *userdata) noexcept
{
    if (!recovery || recovery->core.free_requested())
        return TW_EINVAL;
    if (recovery_busy(recovery))
        return TW_EBUSY;
    recovery->core.set_notify(fn, userdata);
    return 0;
}

int tw_recovery_discard_space(tw_recovery *recovery, unsigned space) noexcept
{
    if (!recovery || recovery->core.free_requested())
        return TW_EINVAL;
    if (recovery_busy(recovery))
        return TW_EBUSY;
    return recovery_finish(recovery, recovery->core.discard_space(space));
}

int tw_recovery_set_handshake_confirmed(tw_recovery *recovery) noexcept
{
    if (!recovery || recovery->core.free_requested())
        return TW_EINVAL;
    if (recovery_busy(recovery))
        return TW_EBUSY;
    return recovery_finish(recovery, recovery->core.set_handshake_confirmed());
}

int tw_recovery_set_amplification_limited(tw_recovery *recovery, int limited) noexcept
{
    if (!recovery || recovery->core.free_requested() || (limited != 0 && limited != 1))
        return TW_EINVAL;
    if (recovery_busy(recovery))
        return TW_EBUSY;
    return recovery_finish(recovery, recovery->core.set_amplification_limited(limited != 0));
}

int tw_recovery_rtt(const tw_recovery *recovery, tw_rtt *ret) noexcept
{
    if (!recovery || !ret || !tw::copy_out_fits(ret))
        return TW_EINVAL;
    recovery->core.rtt(ret);
    return 0;
}

int tw_recovery_stats_get(const tw_recovery *recovery, tw_recovery_stats *ret) noexcept
{
    if (!recovery || !ret || !tw::copy_out_fits(ret))
        return TW_EINVAL;
    recovery->core.stats(ret);
    return 0;
}

uint64_t tw_idle_timeout_ns(uint64_t local_idle_ns, uint64_t peer_idle_ns,
                            uint64_t pto_ns) noexcept
{
    uint64_t idle = local_idle_ns;
    if (idle == 0 || (peer_idle_ns != 0 && peer_idle_ns < idle))
        idle = peer_idle_ns;
    if (idle == 0)
        return TW_NEVER;
    uint64_t floor = ptos(pto_ns);
    return idle > floor ? idle : floor;
}

uint64_t tw_path_validation_timeout_ns(uint64_t pto_ns, uint64_t pto_initial_ns) noexcept
{
    return ptos(pto_ns > pto_initial_ns ? pto_ns : pto_initial_ns);
}

} // extern "C"
