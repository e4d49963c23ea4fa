/*
 * Connections, as conn.hpp lays them out: one connection's deadlines, its
 * filing on the wheel and what is due at a wake-up (Conn); the set of a
 * loop (ConnSet): chunks and their free list, the batch of connections
 * fired by one advance in its two phases, the event queue of poll mode,
 * and the two calls through which the loop reaches the set.
 *
 * Uses: as conn.hpp, and layers/recovery-layer.hpp for the hand-over of a
 * recovery's notify callback.
 */
#include "conn/conn.hpp"
#include "common/copy-out.hpp"
#include "layers/recovery-layer.hpp"

#include <cstdlib>
#include <cstring>

namespace tw {

namespace {

constexpr size_t kChunk = 256;          /* connections per chunk */
constexpr size_t kFirstChunkTable = 16; /* chunk pointers at first */
constexpr size_t kFirstBatch = 256;     /* fired connections at first */
/* The event queue's first capacity: a power of two, as its ring masks. */
constexpr size_t kFirstQueue = 256;
static_assert((kFirstQueue & (kFirstQueue - 1)) == 0, "a power of two");

bool any_fired(const uint32_t *ev)
{
    for (unsigned l = 0; l < TW_CONN_MAX_LAYERS; l++)
        if (ev[l])
            return true;
    return false;
}

} // namespace

/* ---- one connection ---------------------------------------------------- */

uint64_t Conn::unified()
{
    if (next_valid)
        return next;
    /* Disarmed kinds hold TW_NEVER, so the minimum needs no mask. */
    uint64_t m = deadline[0];
    for (unsigned k = 1; k < TW_CONN_KINDS; k++)
        m = min64(m, deadline[k]);
    for (unsigned l = 0; l < nlayers; l++)
        m = min64(m, layers[l].deadline);
    next = m;
    next_valid = true;
    return m;
}

uint64_t Conn::latest()
{
    if (!(slack_kinds & armed))
        return unified();
    uint64_t m = TW_NEVER;
    for (unsigned k = 0; k < TW_CONN_KINDS; k++)
        m = min64(m, window_end(deadline[k], slack[k]));
    for (unsigned l = 0; l < nlayers; l++)
        m = min64(m, layers[l].deadline);
    return m;
}

uint64_t Conn::target()
{
    uint64_t u = unified();
    if (!(slack_kinds & armed) || u == TW_NEVER || u <= set->loop()->now())
        return u;
    uint64_t end = latest();
    if (end <= u || u == 0)
        return u;
    return roundest_in(u, end);
}

int Conn::file_at(uint64_t at)
{
    int r = timer ? set->loop()->reschedule(timer, at)
                  : set->loop()->schedule(at, ConnSet::on_timer, this, &timer);
    if (r < 0)
        return r;
    filed = at;
    set->wheel_ops_++;
    return 0;
}

int Conn::refile()
{
    uint64_t u = unified();
    if (u == TW_NEVER) {
        if (timer) {
            set->loop()->cancel(timer);
            set->wheel_ops_++;
        }
        timer = 0;
        filed = TW_NEVER;
        return 0;
    }
    if (timer && filed <= latest())
        return 0;
    return file_at(target());
}

int Conn::arm_slow(unsigned kind, uint64_t old)
{
    uint64_t at = deadline[kind];
    if (next_valid) {
        if (at <= next)
            next = at;
        else if (old == next)
            next_valid = false;
    }
    /* In the batch being fired (armed by a timer callback of the same
     * advance): its turn files it, after its due kinds are taken. */
    if (busy)
        return 0;
    int r = file_at(target());
    if (r < 0) {
        deadline[kind] = old;
        if (old == TW_NEVER)
            armed = KindMask(armed & ~(1u << kind));
        next_valid = false;
    }
    return r;
}

int Conn::arm_in(unsigned kind, uint64_t delay)
{
    return arm(kind, sat_add(set->loop()->fresh_now(), delay));
}

int Conn::touch()
{
    if (!idle_timeout)
        return 0;
    return arm(TW_CONN_IDLE, sat_add(set->loop()->fresh_now(), idle_timeout));
}

int Conn::set_slack(unsigned kind, uint64_t slack_ns)
{
    uint32_t s = clamp_u32(slack_ns);
    slack[kind] = s;
    slack_kinds = KindMask(s ? slack_kinds | (1u << kind) : slack_kinds & ~(1u << kind));
    /* Less slack may leave the timer filed past a window's end. */
    if (timer && filed > latest())
        return refile();
    return 0;
}

int Conn::disarm(unsigned kind)
{
    if (!(armed & (1u << kind)))
        return TW_ENOENT;
    uint64_t old = deadline[kind];
    deadline[kind] = TW_NEVER;
    armed = KindMask(armed & ~(1u << kind));
    if (next_valid && old == next)
        next_valid = false;
    /* Nothing left at all: drop the wheel timer rather than wake for it. */
    if (timer && unified() == TW_NEVER)
        return refile();
    return 0;
}

int Conn::disarm_all()
{
    for (unsigned k = 0; k < TW_CONN_KINDS; k++)
        deadline[k] = TW_NEVER;
    armed = 0;
    next_valid = false;
    if (timer && unified() == TW_NEVER)
        return refile();
    return 0;
}

int Conn::layer_dirty(unsigned l)
{
    if (busy) {
        /* In a batch: phase two refreshes it (a worker may be running). */
        dirty = uint8_t(dirty | (1u << l));
        return 0;
    }
    Layer &y = layers[l];
    uint64_t old = y.deadline;
    y.refresh();
    return changed(old, y.deadline);
}

int Conn::add_layer(const tw_layer_ops *ops, void *obj, unsigned *ret)
{
    if (nlayers >= TW_CONN_MAX_LAYERS - 1)
        return TW_ENOSPC;
    unsigned l = nlayers;
    layers[l] = Layer{ops, obj, TW_NEVER};
    nlayers++;
    int r = layer_dirty(l);
    if (r < 0) {
        nlayers--;
        next_valid = false;
        return r;
    }
    *ret = l + 1;
    return 0;
}

int Conn::add_recovery(tw_recovery *recovery, unsigned *ret)
{
    for (unsigned l = 0; l < nlayers; l++)
        if (layers[l].obj == recovery)
            return TW_EINVAL;
    /* A layer of another connection: taking its notify callback would
     * leave that one's cached deadline stale. */
    if (recovery_layer_notified(recovery) == on_recovery_moved)
        return TW_EINVAL;
    int r = add_layer(&kRecoveryLayer, recovery, ret);
    if (r == 0)
        recovery_layer_notify(recovery, on_recovery_moved, this);
    return r;
}

void Conn::on_recovery_moved(tw_recovery *recovery, void *userdata)
{
    Conn *c = static_cast<Conn *>(userdata);
    for (unsigned l = 0; l < c->nlayers; l++)
        if (c->layers[l].obj == recovery) {
            c->layer_dirty(l);
            return;
        }
}

bool Conn::collect(uint64_t now, uint32_t *ev, bool impure)
{
    bool any = false;
    if (!impure) {
        /* TW_NEVER is no deadline, even when now is the last instant. */
        uint32_t due = 0;
        for (unsigned k = 0; k < TW_CONN_KINDS; k++)
            due |= uint32_t(deadline[k] <= now && deadline[k] != TW_NEVER) << k;
        due &= armed;
        if (due) {
            for (unsigned k = 0; k < TW_CONN_KINDS; k++)
                if (due & (1u << k))
                    deadline[k] = TW_NEVER;
            armed = KindMask(armed & ~due);
            next_valid = false;
            ev[0] |= due;
            any = true;
        }
    }
    const uint32_t was = gen;
    for (unsigned l = 0; l < nlayers; l++) {
        Layer &y = layers[l];
        if (y.pure() == impure || !y.due(now))
            continue;
        if (!impure) {
            uint32_t got = y.check(now);
            next_valid = false;
            ev[l + 1] |= got;
            any = any || got;
            continue;
        }
        /* Layer::check's rounds, stopping as soon as a check freed this
         * connection (its layers may be gone with it) or the loop. */
        for (unsigned round = 0; round < Layer::kChecksPerWake && y.due(now); round++) {
            uint32_t got = y.ops->check(y.obj, now);
            ev[l + 1] |= got;
            any = any || got;
            if (gone(was))
                return any;
            y.refresh();
            next_valid = false;
        }
    }
    return any;
}

bool Conn::gone(uint32_t was) const
{
    return !live || gen != was || set->loop()->free_requested();
}

int Conn::check_all(uint64_t now, tw_conn_result *ret)
{
    std::memset(ret->events, 0, sizeof(ret->events));
    const uint32_t was = gen;
    bool any = collect(now, ret->events, false);
    any = collect(now, ret->events, true) || any;
    if (gone(was)) {
        ret->frames_n = 0;
        ret->frames_more = 0;
        return any ? 1 : 0;
    }
    ret->frames_n = ret->frames ? take_frames(ret->frames, ret->frames_cap) : 0;
    ret->frames_more = ret->frames_cap && ret->frames_n == ret->frames_cap;
    if (!busy) {
        int r = refile();
        if (r < 0)
            return r;
    }
    return any ? 1 : 0;
}

void Conn::release_layers()
{
    for (unsigned l = 0; l < nlayers; l++)
        if (layers[l].ops == &kRecoveryLayer)
            recovery_layer_notify(static_cast<tw_recovery *>(layers[l].obj), nullptr, nullptr);
}

size_t Conn::take_frames(uint64_t *frames, size_t cap)
{
    size_t n = 0;
    for (unsigned l = 0; l < nlayers && n < cap; l++)
        n += layers[l].take_frames(frames + n, cap - n);
    return n;
}

void Conn::event(tw_conn_event &e, const uint32_t *fired, uint64_t now)
{
    e.conn = handle();
    e.conn_id = id;
    e.reserved = 0;
    std::memcpy(e.events, fired, sizeof(e.events));
    e.now_ns = now;
    e.userdata = userdata;
}

/* ---- the set of a loop ------------------------------------------------- */

uint64_t conns_after_advance(ConnSet *conns, uint64_t now)
{
    return conns->after_advance(now);
}

void conns_free(ConnSet *conns)
{
    delete conns;
}

ConnSet::~ConnSet()
{
    /* The layers outlive the loop: a recovery's notify callback must not
     * keep naming a connection whose memory goes now. */
    for (size_t i = 0; i < nchunks_; i++)
        for (size_t j = 0; j < kChunk; j++)
            if (chunks_[i][j].live)
                chunks_[i][j].release_layers();
    for (size_t i = 0; i < nchunks_; i++)
        std::free(chunks_[i]);
    std::free(chunks_);
    std::free(batch_);
    std::free(queue_);
}

int ConnSet::foreach(tw_conn_visit_fn *fn, void *ctx)
{
    for (size_t i = 0; i < nchunks_; i++) {
        for (size_t j = 0; j < kChunk; j++) {
            Conn &c = chunks_[i][j];
            if (!c.live)
                continue;
            if (int r = fn(c.handle(), c.userdata, ctx))
                return r;
        }
    }
    return 0;
}

bool ConnSet::grow_chunks()
{
    if (nchunks_ == chunks_cap_) {
        size_t cap = chunks_cap_ ? chunks_cap_ * 2 : kFirstChunkTable;
        auto *p = static_cast<Conn **>(std::realloc(chunks_, cap * sizeof(Conn *)));
        if (!p)
            return false;
        chunks_ = p;
        chunks_cap_ = cap;
    }
    auto *chunk = static_cast<Conn *>(std::calloc(kChunk, sizeof(Conn)));
    if (!chunk)
        return false;
    chunks_[nchunks_++] = chunk;
    for (size_t i = kChunk; i-- > 0;) {
        chunk[i].next_free = free_;
        free_ = &chunk[i];
    }
    return true;
}

int ConnSet::create(uint32_t id, tw_conn_cb *cb, void *userdata, Conn **ret)
{
    if (!free_ && !grow_chunks())
        return TW_ENOMEM;
    Conn *c = free_;
    free_ = c->next_free;
    uint32_t gen = c->gen;
    std::memset(static_cast<void *>(c), 0, sizeof(*c));
    c->gen = gen;
    for (unsigned k = 0; k < TW_CONN_KINDS; k++)
        c->deadline[k] = TW_NEVER;
    c->next = TW_NEVER;
    c->next_valid = true;
    c->filed = TW_NEVER;
    c->cb = cb;
    c->userdata = userdata;
    c->set = this;
    c->id = id;
    c->live = true;
    live_++;
    created_++;
    *ret = c;
    return 0;
}

void ConnSet::destroy(Conn *c)
{
    if (c->timer) {
        loop_->cancel(c->timer);
        wheel_ops_++;
    }
    if (c->queued)
        dropped_++;
    c->release_layers();
    /* Batch and queue entries name the old generation: they are skipped. */
    c->gen++;
    c->live = false;
    c->busy = false;
    c->queued = false;
    c->timer = 0;
    c->next_free = free_;
    free_ = c;
    live_--;
}

void ConnSet::on_timer(tw_timer, uint64_t, void *userdata)
{
    Conn *c = static_cast<Conn *>(userdata);
    ConnSet *s = c->set;
    c->timer = 0;
    c->filed = TW_NEVER;
    /* Re-filed due by a timer callback of this same advance: it is in the
     * batch already, whose two phases will see what is due. */
    if (c->busy)
        return;
    if (s->batch_n_ == s->batch_cap_) {
        size_t cap = s->batch_cap_ ? s->batch_cap_ * 2 : kFirstBatch;
        auto *p = static_cast<Fired *>(std::realloc(s->batch_, cap * sizeof(Fired)));
        if (!p) {
            /* No room to defer it: fire this one alone, now. */
            Fired f = {c, c->gen, {}};
            c->busy = true;
            c->collect(s->loop_->now(), f.ev, false);
            s->fire(f, s->loop_->now());
            return;
        }
        s->batch_ = p;
        s->batch_cap_ = cap;
    }
    c->busy = true;
    Fired &f = s->batch_[s->batch_n_++];
    f.conn = c;
    f.gen = c->gen;
    std::memset(f.ev, 0, sizeof(f.ev));
}

/* Phase one: pure work per connection, on either thread. */
void ConnSet::compute(void *ctx, size_t begin, size_t end)
{
    ConnSet *s = static_cast<ConnSet *>(ctx);
    for (size_t i = begin; i < end; i++) {
        Fired &f = s->batch_[i];
        if (f.conn->live && f.conn->gen == f.gen)
            f.conn->collect(s->batch_now_, f.ev, false);
    }
}

uint64_t ConnSet::after_advance(uint64_t now)
{
    size_t n = batch_n_;
    if (!n)
        return 0;
    if (loop_->free_requested()) {
        batch_n_ = 0;
        return n;
    }
    batch_now_ = now;
    if (loop_->parallel(n, compute, this))
        handoff_++;
    else
        direct_++;
    return after_advance_phase_two(now);
}

/* Phase two, on the loop's thread in firing order.  Returns how many
 * entries were not processed: freed, or left when the loop is freed. */
uint64_t ConnSet::after_advance_phase_two(uint64_t now)
{
    size_t n = batch_n_, done = 0;
    for (size_t i = 0; i < n && !loop_->free_requested(); i++)
        done += fire(batch_[i], now);
    batch_n_ = 0;
    return n - done;
}

bool ConnSet::fire(Fired &f, uint64_t now)
{
    Conn *c = f.conn;
    if (!c->live || c->gen != f.gen)
        return false;
    wakeups_++;
    bool any = any_fired(f.ev);
    any = c->collect(now, f.ev, true) || any;
    /* Freed by one of its own checks, or the loop with it: no event. */
    if (c->gone(f.gen))
        return true;
    c->busy = false;
    for (unsigned l = 0; l < c->nlayers; l++)
        if (c->dirty & (1u << l)) {
            c->layers[l].refresh();
            c->next_valid = false;
        }
    c->dirty = 0;
    /* A full wheel leaves the connection unfiled: its deadlines stay, and
     * the next arm that succeeds files it again. */
    (void)c->refile();
    if (any)
        deliver(c, f.ev, now);
    else
        early_++;
    return true;
}

void ConnSet::deliver(Conn *c, const uint32_t *ev, uint64_t now)
{
    events_++;
    if (c->cb) {
        tw_conn_event e;
        c->event(e, ev, now);
        c->cb(&e, c->userdata);
        return;
    }
    for (unsigned l = 0; l < TW_CONN_MAX_LAYERS; l++)
        c->pending[l] |= ev[l];
    if (!c->queued && push_queue(c))
        c->queued = true;
}

bool ConnSet::push_queue(Conn *c)
{
    if (q_n_ == q_cap_) {
        size_t cap = q_cap_ ? q_cap_ * 2 : kFirstQueue;
        auto *p = static_cast<ConnRef *>(std::malloc(cap * sizeof(ConnRef)));
        if (!p) {
            dropped_++;
            return false;
        }
        for (size_t i = 0; i < q_n_; i++)
            p[i] = queue_[(q_head_ + i) & (q_cap_ - 1)];
        std::free(queue_);
        queue_ = p;
        q_cap_ = cap;
        q_head_ = 0;
    }
    queue_[(q_head_ + q_n_) & (q_cap_ - 1)] = ConnRef{c, c->gen};
    q_n_++;
    return true;
}

int ConnSet::poll(tw_conn_event *events, size_t cap)
{
    size_t out = 0;
    /* The loop's time when polled: read afresh outside a turn. */
    uint64_t now = q_n_ && cap ? loop_->fresh_now() : 0;
    while (out < cap && q_n_) {
        ConnRef r = queue_[q_head_];
        q_head_ = (q_head_ + 1) & (q_cap_ - 1);
        q_n_--;
        Conn *c = r.conn;
        if (!c->live || c->gen != r.gen)
            continue;
        c->event(events[out++], c->pending, now);
        std::memset(c->pending, 0, sizeof(c->pending));
        c->queued = false;
    }
    return clamp_int(out);
}

void ConnSet::stats(tw_conn_stats *ret) const
{
    tw_conn_stats s;
    std::memset(&s, 0, sizeof(s));
    s.live = live_;
    s.created = created_;
    s.arms = arms_;
    s.lazy_arms = lazy_;
    s.wheel_ops = wheel_ops_;
    s.wakeups = wakeups_;
    s.early_wakeups = early_;
    s.events = events_;
    s.dropped = dropped_;
    s.batches_direct = direct_;
    s.batches_handoff = handoff_;
    s.bytes = nchunks_ * kChunk * sizeof(Conn) + chunks_cap_ * sizeof(Conn *) +
              batch_cap_ * sizeof(Fired) + q_cap_ * sizeof(ConnRef);
    copy_out(s, ret);
}

} // namespace tw
