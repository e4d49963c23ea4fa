/*
 * Connections: typed per-connection timers and layers over one wheel timer.
 *
 * A connection keeps one deadline per kind, an armed bitmask, and up to
 * three layers with their deadlines cached.  Its single wheel timer is
 * "filed" at a time never later than the earliest of them all:
 *
 *     filed <= min(deadline[k] for armed k, cached deadline of each layer)
 *
 * Arming later keeps the invariant for free (lazy: no wheel operation);
 * arming earlier than `filed` is one reschedule.  A kind may have slack:
 * it may fire up to that long after its deadline.  The bound then is the
 * end of every window (deadline + slack), and the timer is filed at the
 * roundest instant (most trailing zero bits) between the earliest deadline
 * and that bound, where connections with overlapping windows meet and
 * share one wake-up of the loop.  When the wheel timer
 * fires, the connection computes what is due, re-files at its true
 * earliest deadline, and reports.  A wake-up with nothing due is the price
 * of laziness, counted as an early wake-up.
 *
 * Firing happens in two phases over the batch of connections whose wheel
 * timers fired in one advance.  Phase one is pure computation per
 * connection (the due kinds, and the checks of layers that declared
 * themselves pure); over the loop's batch threshold it is shared with the
 * worker thread.  Phase two runs on the loop thread in firing order:
 * impure layers, re-filing, and the user's callback or queue.
 *
 * The unified next wake-up is cached: arming earlier lowers it, and
 * anything that may raise it (a disarm, the earliest kind moving later, a
 * layer marked dirty) invalidates it until the next read.  Layer deadlines
 * are refreshed eagerly when a layer is marked dirty, because a deadline
 * that moved earlier must reach the wheel at once.
 *
 * Connections live in chunks that never move and are recycled through a
 * free list with a generation, so batch and queue entries recognise a
 * connection freed (and perhaps reused) since they were taken.
 *
 * Uses: lib/loop (a connection's wheel timer is a loop timer; large
 * batches go to the loop's worker), lib/layers (the layers a connection
 * holds), lib/common.  The loop reaches the set only through
 * conns_after_advance and conns_free (loop/loop.hpp).
 */
#ifndef TW_CONN_HPP
#define TW_CONN_HPP

#include <cstddef>
#include <cstdint>

#include "common/arith.hpp"
#include "layers/layer.hpp"
#include "loop/loop.hpp"
#include "tickwheel.h"

namespace tw {

class ConnSet;

/* A set of kinds, a bit each: armed, with slack.  A kind past its width
 * needs a wider type here and nowhere else. */
using KindMask = uint8_t;
static_assert(TW_CONN_KINDS <= 8 * sizeof(KindMask), "a bit per kind");

struct Conn {
    uint64_t deadline[TW_CONN_KINDS];
    uint64_t next;              /* cached unified deadline, when next_valid */
    uint64_t filed;             /* the wheel timer's deadline; TW_NEVER: none */
    tw_timer timer;             /* 0 when not filed */
    uint64_t idle_timeout;
    tw_conn_cb *cb;
    void *userdata;
    ConnSet *set;
    Conn *next_free;
    uint32_t id;
    uint32_t gen;               /* bumped when freed */
    uint32_t pending[TW_CONN_MAX_LAYERS];   /* queue mode: events not polled */
    uint32_t slack[TW_CONN_KINDS];  /* ns a kind may fire after its deadline */
    KindMask armed;
    KindMask slack_kinds;       /* kinds with slack */
    uint8_t nlayers;            /* layers beyond the connection layer */
    uint8_t dirty;              /* layers marked dirty during a batch */
    bool next_valid;
    bool busy;                  /* in the batch being fired */
    bool queued;
    bool live;
    Layer layers[TW_CONN_MAX_LAYERS - 1];

    tw_conn *handle() { return reinterpret_cast<tw_conn *>(this); }
    static Conn *of(tw_conn *c) { return reinterpret_cast<Conn *>(c); }
    static const Conn *of(const tw_conn *c) { return reinterpret_cast<const Conn *>(c); }

    uint64_t unified();
    inline int arm(unsigned kind, uint64_t deadline);
    /* Arms kind delay after the loop's time, saturating at TW_NEVER. */
    int arm_in(unsigned kind, uint64_t delay);
    /* Re-arms IDLE at the loop's time + the idle timeout (none: nothing). */
    int touch();
    int set_slack(unsigned kind, uint64_t slack);
    int disarm(unsigned kind);
    int disarm_all();
    int layer_dirty(unsigned layer);
    /* Adds a layer; *ret its number (1 ..).  TW_ENOSPC when full. */
    int add_layer(const tw_layer_ops *ops, void *obj, unsigned *ret);
    /* Adds recovery as a layer and takes over its notify callback. */
    int add_recovery(tw_recovery *recovery, unsigned *ret);
    /* Files the wheel timer no later than the unified deadline. */
    int refile();
    /* A deadline went from old to now_at: keep the cache and the filing. */
    inline int changed(uint64_t old, uint64_t now_at);
    int file_at(uint64_t deadline);
    /* The latest instant the timer may be filed at, and where to file it. */
    uint64_t latest();
    uint64_t target();
    int arm_slow(unsigned kind, uint64_t old);
    /* Kinds due at now (disarmed) into ev[0], pure or all layers' checks.
     * An impure check may free the connection, or the loop: collect then
     * returns at once, and the caller sees it by gone(). */
    bool collect(uint64_t now, uint32_t *ev, bool impure);
    /* Freed (perhaps reused) since its generation was gen, or its loop is
     * being freed: nothing more is done for it. */
    bool gone(uint32_t was) const;
    /* tw_conn_check_all: everything due at now, by hand. */
    int check_all(uint64_t now, tw_conn_result *ret);
    size_t take_frames(uint64_t *frames, size_t cap);
    /* The event the user gets: what fired per layer, at now. */
    void event(tw_conn_event &e, const uint32_t *fired, uint64_t now);
    /* Gives back what the connection took over in its layers (the notify
     * callback of a recovery), before its memory is freed or reused. */
    void release_layers();
    /* A recovery's notify callback while it is a layer: marks it dirty. */
    static void on_recovery_moved(tw_recovery *recovery, void *userdata);
};

struct ConnRef {
    Conn *conn;
    uint32_t gen;
};

/* The connections of one loop, which holds the set (Loop::conns). */
class ConnSet {
public:
    explicit ConnSet(Loop *loop) : loop_(loop) {}
    ConnSet(const ConnSet &) = delete;
    ConnSet &operator=(const ConnSet &) = delete;
    ~ConnSet();

    Loop *loop() { return loop_; }
    int create(uint32_t id, tw_conn_cb *cb, void *userdata, Conn **ret);
    void destroy(Conn *c);
    int poll(tw_conn_event *events, size_t cap);
    /* fn over every live connection until it returns non-zero; fn may free
     * connections and create them (the new may or may not be visited). */
    int foreach(tw_conn_visit_fn *fn, void *ctx);
    void stats(tw_conn_stats *ret) const;
    /* What the loop calls after each advance: see conns_after_advance. */
    uint64_t after_advance(uint64_t now);

    /* The wheel timers of connections: userdata is the Conn. */
    static void on_timer(tw_timer timer, uint64_t deadline, void *userdata);

    uint64_t arms_ = 0, lazy_ = 0, wheel_ops_ = 0;

private:
    struct Fired {
        Conn *conn;
        uint32_t gen;
        uint32_t ev[TW_CONN_MAX_LAYERS];
    };
    static void compute(void *ctx, size_t begin, size_t end);
    uint64_t after_advance_phase_two(uint64_t now);
    /* False when the connection was freed since its timer went off. */
    bool fire(Fired &f, uint64_t now);
    void deliver(Conn *c, const uint32_t *ev, uint64_t now);
    bool push_queue(Conn *c);
    bool grow_chunks();

    Loop *loop_;
    Conn **chunks_ = nullptr;
    size_t nchunks_ = 0, chunks_cap_ = 0;
    Conn *free_ = nullptr;
    uint64_t live_ = 0, created_ = 0;

    /* Connections whose wheel timers fired in this advance. */
    Fired *batch_ = nullptr;
    size_t batch_n_ = 0, batch_cap_ = 0;
    uint64_t batch_now_ = 0;

    /* Queue mode: a ring of references, stale ones skipped by poll. */
    ConnRef *queue_ = nullptr;
    size_t q_head_ = 0, q_n_ = 0, q_cap_ = 0;

    uint64_t wakeups_ = 0, early_ = 0, events_ = 0, dropped_ = 0;
    uint64_t direct_ = 0, handoff_ = 0;
};

/* The per-packet path, inline: arming later is a few stores. */
inline int Conn::changed(uint64_t old, uint64_t now_at)
{
    if (next_valid) {
        if (now_at <= next)
            next = now_at;
        else if (old == next)
            next_valid = false;
    }
    if (now_at >= filed) {
        set->lazy_++;
        return 0;
    }
    return file_at(target());
}

inline int Conn::arm(unsigned kind, uint64_t at)
{
    set->arms_++;
    uint64_t old = deadline[kind];
    deadline[kind] = at;
    armed = KindMask(armed | (1u << kind));
    uint64_t end = at;
    if (slack_kinds & (1u << kind))
        end = window_end(at, slack[kind]);
    if (end >= filed) {
        /* Lazy: the wheel timer stays where it is, never late. */
        if (next_valid) {
            if (at <= next)
                next = at;
            else if (old == next)
                next_valid = false;
        }
        set->lazy_++;
        return 0;
    }
    return arm_slow(kind, old);
}

} // namespace tw

#endif
