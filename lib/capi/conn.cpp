/*
 * The C boundary of connections: argument checks, then the core.  A freed
 * connection's memory stays with its loop, so a call through a stale
 * pointer is refused (TW_EINVAL) until the slot is reused.
 *
 * Uses: lib/conn (Conn, ConnSet), lib/loop (the set a loop holds), lib/simd
 * (the kernels behind tw_conn_id_shards and tw_conn_id_group), lib/common.
 */
#include <cstring>
#include <new>

#include "common/arith.hpp"
#include "common/copy-out.hpp"
#include "conn/conn.hpp"
#include "loop/loop.hpp"
#include "simd/simd.hpp"
#include "tickwheel.h"

using tw::Conn;
using tw::ConnSet;

namespace {

ConnSet *set_of(const tw_loop *loop)
{
    return loop->core.conns();
}

Conn *live(tw_conn *conn)
{
    Conn *c = Conn::of(conn);
    return c && c->live ? c : nullptr;
}

const Conn *live(const tw_conn *conn)
{
    const Conn *c = Conn::of(conn);
    return c && c->live ? c : nullptr;
}

} // namespace

extern "C" {

int tw_conn_new(tw_loop *loop, uint32_t conn_id, tw_conn_cb *cb, void *userdata,
                tw_conn **ret) noexcept
{
    if (!ret)
        return TW_EINVAL;
    *ret = nullptr;
    if (!loop || loop->core.free_requested())
        return TW_EINVAL;
    ConnSet *set = set_of(loop);
    if (!set) {
        set = new (std::nothrow) ConnSet(&loop->core);
        if (!set)
            return TW_ENOMEM;
        loop->core.set_conns(set);
    }
    Conn *c;
    int r = set->create(conn_id, cb, userdata, &c);
    if (r == 0)
        *ret = c->handle();
    return r;
}

void tw_conn_free(tw_conn *conn) noexcept
{
    if (Conn *c = live(conn))
        c->set->destroy(c);
}

uint32_t tw_conn_id(const tw_conn *conn) noexcept
{
    const Conn *c = live(conn);
    return c ? c->id : 0;
}

int tw_conn_arm(tw_conn *conn, unsigned kind, uint64_t deadline_ns) noexcept
{
    Conn *c = live(conn);
    if (!c || kind >= TW_CONN_KINDS)
        return TW_EINVAL;
    return c->arm(kind, deadline_ns);
}

int tw_conn_arm_in(tw_conn *conn, unsigned kind, uint64_t delay_ns) noexcept
{
    Conn *c = live(conn);
    if (!c || kind >= TW_CONN_KINDS)
        return TW_EINVAL;
    return c->arm_in(kind, delay_ns);
}

int tw_conn_disarm(tw_conn *conn, unsigned kind) noexcept
{
    Conn *c = live(conn);
    if (!c || kind >= TW_CONN_KINDS)
        return TW_EINVAL;
    return c->disarm(kind);
}

int tw_conn_disarm_all(tw_conn *conn) noexcept
{
    Conn *c = live(conn);
    return c ? c->disarm_all() : TW_EINVAL;
}

int tw_conn_deadline(const tw_conn *conn, unsigned kind, uint64_t *ret) noexcept
{
    const Conn *c = live(conn);
    if (!c || kind >= TW_CONN_KINDS || !ret)
        return TW_EINVAL;
    if (!(c->armed & (1u << kind)))
        return TW_ENOENT;
    *ret = c->deadline[kind];
    return 0;
}

uint32_t tw_conn_armed(const tw_conn *conn) noexcept
{
    const Conn *c = live(conn);
    return c ? c->armed : 0;
}

int tw_conn_set_idle_timeout(tw_conn *conn, uint64_t timeout_ns) noexcept
{
    Conn *c = live(conn);
    if (!c)
        return TW_EINVAL;
    c->idle_timeout = timeout_ns;
    return 0;
}

int tw_conn_set_slack(tw_conn *conn, unsigned kind, uint64_t slack_ns) noexcept
{
    Conn *c = live(conn);
    if (!c || kind >= TW_CONN_KINDS)
        return TW_EINVAL;
    return c->set_slack(kind, slack_ns);
}

int tw_conn_touch(tw_conn *conn) noexcept
{
    Conn *c = live(conn);
    return c ? c->touch() : TW_EINVAL;
}

int tw_conn_add_layer(tw_conn *conn, const tw_layer_ops *ops, void *layer, unsigned *ret) noexcept
{
    Conn *c = live(conn);
    if (!c || !ops || ops->struct_size != sizeof(tw_layer_ops) || !ops->next_deadline ||
        !ops->check || !ret)
        return TW_EINVAL;
    return c->add_layer(ops, layer, ret);
}

int tw_conn_add_recovery(tw_conn *conn, tw_recovery *recovery, unsigned *ret) noexcept
{
    Conn *c = live(conn);
    if (!c || !recovery || !ret)
        return TW_EINVAL;
    return c->add_recovery(recovery, ret);
}

int tw_conn_layer_stats(const tw_conn *conn, unsigned layer, const char **name,
                        tw_layer_stat *out, size_t cap) noexcept
{
    const Conn *c = live(conn);
    if (!c || layer == 0 || layer > c->nlayers || (!out && cap))
        return TW_EINVAL;
    const tw::Layer &y = c->layers[layer - 1];
    if (name)
        *name = y.ops->name;
    if (!y.ops->stats)
        return 0;
    size_t n = y.ops->stats(y.obj, out, cap);
    return tw::clamp_int(n);
}

int tw_conn_layer_dirty(tw_conn *conn, unsigned layer) noexcept
{
    Conn *c = live(conn);
    if (!c || layer == 0 || layer > c->nlayers)
        return TW_EINVAL;
    return c->layer_dirty(layer - 1);
}

int tw_conn_next_deadline(const tw_conn *conn, uint64_t *ret) noexcept
{
    const Conn *cc = live(conn);
    if (!cc || !ret)
        return TW_EINVAL;
    /* The cache is state of the connection's, not of its value. */
    uint64_t u = const_cast<Conn *>(cc)->unified();
    if (u == TW_NEVER)
        return TW_ENOENT;
    *ret = u;
    return 0;
}

int tw_conn_check_all(tw_conn *conn, uint64_t now_ns, tw_conn_result *ret) noexcept
{
    Conn *c = live(conn);
    if (!c || !ret || (!ret->frames && ret->frames_cap))
        return TW_EINVAL;
    return c->check_all(now_ns, ret);
}

size_t tw_conn_take_frames(tw_conn *conn, uint64_t *frames, size_t cap) noexcept
{
    Conn *c = live(conn);
    if (!c || !frames)
        return 0;
    return c->take_frames(frames, cap);
}

int tw_conn_poll(tw_loop *loop, tw_conn_event *events, size_t cap) noexcept
{
    if (!loop || (!events && cap))
        return TW_EINVAL;
    ConnSet *set = set_of(loop);
    return set ? set->poll(events, cap) : 0;
}

int tw_conn_stats_get(const tw_loop *loop, tw_conn_stats *ret) noexcept
{
    /* As tw_loop_stats_get: room for at least the first counter. */
    if (!loop || !ret || !tw::copy_out_fits(ret))
        return TW_EINVAL;
    ConnSet *set = set_of(loop);
    if (!set) {
        /* No connection yet: zeros, written as the set would write them. */
        tw_conn_stats zero;
        std::memset(&zero, 0, sizeof(zero));
        tw::copy_out(zero, ret);
        return 0;
    }
    set->stats(ret);
    return 0;
}

int tw_conn_id_shards(size_t n, const uint32_t *conn_ids, uint32_t nshards,
                      uint32_t *ret) noexcept
{
    if (!nshards || (n && (!conn_ids || !ret)))
        return TW_EINVAL;
    tw::simd::kernels().buckets(n, conn_ids, nshards, ret);
    return 0;
}

int tw_conn_id_group(size_t n, const uint32_t *conn_ids, uint32_t nshards, uint32_t *offsets,
                     uint32_t *order, size_t *largest) noexcept
{
    if (largest)
        *largest = 0;
    /* Positions are 32-bit; offsets has nshards + 1 entries. */
    if (!nshards || nshards == UINT32_MAX || !offsets || n > UINT32_MAX ||
        (n && (!conn_ids || !order)))
        return TW_EINVAL;
    size_t big = tw::simd::group_ids(tw::simd::kernels(), n, conn_ids, nshards, offsets, order);
    if (largest)
        *largest = big;
    return 0;
}

/* The loop's timers, counted, walked and cancelled, less the connections'
 * own, whose wheel callback is the connection set's. */
size_t tw_loop_count(const tw_loop *loop) noexcept
{
    return loop ? size_t(loop->core.count(ConnSet::on_timer)) : 0;
}

int tw_loop_foreach_timer(tw_loop *loop, tw_timer_visit_fn *fn, void *ctx) noexcept
{
    if (!loop || !fn)
        return TW_EINVAL;
    return loop->core.foreach(ConnSet::on_timer, fn, ctx);
}

int tw_loop_cancel_all(tw_loop *loop, size_t *ret) noexcept
{
    if (ret)
        *ret = 0;
    if (!loop)
        return TW_EINVAL;
    uint64_t n = loop->core.cancel_all(ConnSet::on_timer);
    if (ret)
        *ret = size_t(n);
    return 0;
}

int tw_loop_foreach_conn(tw_loop *loop, tw_conn_visit_fn *fn, void *ctx) noexcept
{
    if (!loop || !fn)
        return TW_EINVAL;
    ConnSet *set = set_of(loop);
    return set ? set->foreach(fn, ctx) : 0;
}

} // extern "C"
