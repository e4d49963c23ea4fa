/*
 * fuzz-loop: a tw_loop driven by hand with an injected clock, its
 * connections (typed kinds, slack, idle touches, layers of their own and
 * reliability layers, callback and queue mode), plain loop timers, clock
 * moves from a nanosecond to the end of time, and frees of everything from
 * everywhere, all chosen by the input, and checked against a reference
 * model built from tw_conn_new(3), tw_loop_new(3) and tw_recovery_*(3):
 *
 *   - a kind is reported only at a turn whose time is at or past a
 *     deadline it was armed at when the turn collected it, never for a
 *     deadline it was moved from or disarmed at before that;
 *   - a connection whose timer went off reports every kind then due;
 *   - every kind whose window (deadline + slack) ended by the turn's time
 *     is reported in that turn, unless a budget stopped it;
 *   - the same for plain timers, and for layers whose deadline passed;
 *   - nothing reaches a freed connection, and nothing runs after the loop
 *     was freed;
 *   - tw_conn_next_deadline is exact, tw_loop_next_deadline never later
 *     than any window's end, tw_loop_process counts what ran;
 *   - a reliability layer reports each handle retired at most once and
 *     never after, and keeps working once the loop is freed.
 *
 * A failed check prints what it saw and aborts: libFuzzer keeps the input.
 * The input is a stream of operation bytes; callbacks read their actions
 * from the same stream, so a run is a function of the input alone.
 */
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unordered_map>

#include "tickwheel.h"

namespace {

[[noreturn]] void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    std::fputs("fuzz-loop: model violated: ", stderr);
    std::vfprintf(stderr, fmt, ap);
    std::fputc('\n', stderr);
    va_end(ap);
    std::abort();
}

#define CHECK(cond, ...)                                                                      \
    do {                                                                                      \
        if (!(cond))                                                                          \
            fail(__VA_ARGS__);                                                                \
    } while (0)

using u64 = unsigned long long;

/* FUZZ_LOOP_TRACE=1 in the environment prints the operations as they run:
 * for reading a finding, not while fuzzing. */
bool tracing()
{
    static const bool on = std::getenv("FUZZ_LOOP_TRACE") != nullptr;
    return on;
}

#define TRACE(...)                                                                            \
    do {                                                                                      \
        if (tracing())                                                                        \
            std::fprintf(stderr, __VA_ARGS__);                                                \
    } while (0)

constexpr uint64_t kMs = 1000000;
constexpr uint64_t kNever = TW_NEVER;
constexpr unsigned kConns = 8;
constexpr unsigned kRecs = 4;
constexpr unsigned kFakes = 4;
constexpr unsigned kTimers = 8;
constexpr unsigned kMaxOps = 1500;

/* The input, read a byte at a time; zeros once it is spent. */
struct Input {
    const uint8_t *p = nullptr;
    size_t n = 0;
    bool empty() const { return n == 0; }
    uint8_t byte()
    {
        if (!n)
            return 0;
        n--;
        return *p++;
    }
    uint64_t bytes(unsigned k)
    {
        uint64_t v = 0;
        for (unsigned i = 0; i < k; i++)
            v = v << 8 | byte();
        return v;
    }
    unsigned below(unsigned m) { return byte() % m; }
};

uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > kNever - b ? kNever : a + b;
}

/* A duration from the input: mostly small, sometimes anything at all. */
uint64_t duration(Input &in)
{
    switch (in.below(8)) {
    case 0:
        return 0;
    case 1:
        return in.byte();                       /* nanoseconds */
    case 2:
    case 3:
        return in.bytes(1) * kMs / 4;           /* up to ~64 ms */
    case 4:
        return in.bytes(2) * kMs;               /* up to ~65 s */
    case 5:
        return in.bytes(4) * kMs;               /* ~136 years */
    case 6:
        return kNever - in.byte();
    default:
        return in.bytes(8);
    }
}

/* ---- the model ---------------------------------------------------------- */

struct Kind {
    bool armed = false;
    uint64_t deadline = kNever;
    uint32_t slack = 0;
    /* Per turn: armed at or before the turn's time when collected, and so
     * may be reported; due by its window, and so must be; changed after
     * the collection, and so stays armed at its new deadline if reported. */
    bool may = false, must = false, moved = false;
};

uint64_t window_end(const Kind &k)
{
    if (!k.armed || k.deadline == kNever)
        return kNever;
    return k.deadline > kNever - 1 - k.slack ? kNever - 1 : k.deadline + k.slack;
}

/* A layer of the fuzzer's own: one deadline, moved to `then` when checked. */
struct Fake {
    bool used = false;
    int conn = -1;              /* the model connection it belongs to */
    unsigned number = 0;        /* its layer number there */
    bool pure = false;
    uint64_t deadline = kNever, then = kNever;
    uint32_t bits = 1;
    uint64_t cached = kNever;   /* what next_deadline last answered */
    uint64_t cached_low = kNever; /* the lowest of those in this turn */
    uint64_t due_at_start = kNever; /* cached at the start of the turn */
    unsigned checks = 0;        /* in this turn */
    bool touched = false;       /* its deadline moved by a callback of this turn */
    uint32_t returned = 0;      /* bits its checks returned in this turn */
};

struct Handle {
    unsigned space;
    bool retired = false;
    bool reported = false;
};

struct Rec {
    tw_recovery *r = nullptr;
    int conn = -1;              /* model connection it is a layer of, or -1 */
    unsigned number = 0;
    uint64_t next_pn[TW_PN_SPACES] = {0, 0, 0};
    bool discarded[TW_PN_SPACES] = {false, false, false};
    uint64_t next_handle = 1;
    uint64_t time = 0;          /* the latest time given to it */
    uint64_t due_at_start = kNever;
    std::unordered_map<uint64_t, Handle> handles;
};

struct Conn {
    bool live = false;
    tw_conn *h = nullptr;
    uint32_t id = 0;
    bool queue = false;
    Kind k[TW_CONN_KINDS];
    uint64_t idle = 0;
    unsigned nlayers = 0;
    int layer_rec[TW_CONN_MAX_LAYERS - 1] = {-1, -1, -1};
    int layer_fake[TW_CONN_MAX_LAYERS - 1] = {-1, -1, -1};
    bool reported = false;      /* an event in this turn */
};

struct Timer {
    bool armed = false;
    tw_timer h = 0;
    uint64_t deadline = kNever, slack = 0;
    bool may = false, must = false;
};

enum Context { kOutside, kInPlain, kInConn };

struct State {
    Input in;
    tw_loop *loop = nullptr;
    uint64_t clock = 0;         /* what the injected clock answers */
    uint64_t t = 0;             /* the loop's time of the current or last turn */
    bool in_turn = false;
    bool loop_going = false;    /* tw_loop_free was called inside the turn */
    unsigned user_calls = 0;    /* callbacks and impure checks of the turn */
    unsigned plain_fired = 0;   /* plain timer callbacks of the turn */
    unsigned freed = 0;         /* connections freed in the turn */
    uint32_t budget = 0;        /* the loop's budget_callbacks */
    bool budgeted = false;      /* either budget is on */
    unsigned posts = 0;         /* posted functions not yet run */
    bool freeing = false;       /* inside tw_loop_free */
    bool by_hand = false;       /* inside tw_conn_check_all */
    uint32_t next_id = 1;
    Conn conns[kConns];
    Rec recs[kRecs];
    Fake fakes[kFakes];
    Timer timers[kTimers];
};

State S;

uint64_t clock_fn(void *userdata)
{
    (void)userdata;
    return S.clock;
}

/* The time calls made now count from: the turn's inside one; outside one,
 * the clock, as far as the loop has seen it. */
uint64_t loop_time()
{
    uint64_t now = tw_loop_now(S.loop);
    if (!S.in_turn && S.clock > now)
        now = S.clock;
    return now;
}

/* ---- layers ------------------------------------------------------------- */

uint64_t fake_next(const void *layer)
{
    Fake *f = const_cast<Fake *>(static_cast<const Fake *>(layer));
    f->cached = f->deadline;
    if (f->deadline < f->cached_low)
        f->cached_low = f->deadline;
    return f->deadline;
}

void conn_act(int self, Context ctx);
void conn_free(unsigned i);

uint32_t fake_check(void *layer, uint64_t now)
{
    Fake *f = static_cast<Fake *>(layer);
    CHECK(f->used && f->conn >= 0, "a check reached a layer no live connection has");
    CHECK(f->cached_low <= now || f->cached <= now,
          "layer checked at %llu before its deadline %llu", (u64)now, (u64)f->cached_low);
    f->checks++;
    uint32_t got = 0;
    if (f->deadline <= now && f->deadline != kNever) {
        got = f->bits;
        f->deadline = f->then;
        f->then = kNever;
    }
    f->returned |= got;
    /* An impure check may use the library: in a turn, as a callback does
     * (freeing its own connection or the loop too); by hand, free its own
     * connection. */
    if (!f->pure) {
        int self = f->conn;
        if (S.in_turn && !S.loop_going) {
            S.user_calls++;
            conn_act(self, kInConn);
        } else if (S.by_hand && S.in.below(8) == 0) {
            conn_free(unsigned(self));
        }
    }
    return got;
}

size_t fake_frames(void *layer, uint64_t *frames, size_t cap)
{
    (void)layer;
    (void)frames;
    (void)cap;
    return 0;
}

const tw_layer_ops kPureOps = {sizeof(tw_layer_ops), "fuzz-pure", fake_next, fake_check,
                               fake_frames, TW_LAYER_PURE, nullptr};
const tw_layer_ops kImpureOps = {sizeof(tw_layer_ops), "fuzz-impure", fake_next, fake_check,
                                 nullptr, 0, nullptr};

/* ---- reliability layers ------------------------------------------------ */

uint64_t rec_deadline(const Rec &r)
{
    uint64_t d;
    return tw_recovery_next_deadline(r.r, &d) == 0 ? d : kNever;
}

/* A handle to retransmit, taken by the caller: queued before any
 * retirement it has not seen yet, so never after one it has. */
void rec_frame(Rec &r, uint64_t frame)
{
    CHECK(frame != 0, "handle 0 queued for retransmission");
    auto it = r.handles.find(frame);
    CHECK(it != r.handles.end(), "queued handle %llx never sent", (u64)frame);
    CHECK(!it->second.retired, "handle %llx queued after it was retired", (u64)frame);
    it->second.reported = true;
}

/* Frames first: what is queued there was queued before the retirements
 * waiting beside it. */
void rec_drain(Rec &r)
{
    uint64_t f[16];
    size_t n;
    while ((n = tw_recovery_take_frames(r.r, f, 16)) > 0)
        for (size_t i = 0; i < n; i++)
            rec_frame(r, f[i]);
    while ((n = tw_recovery_take_retired(r.r, f, 16)) > 0)
        for (size_t i = 0; i < n; i++) {
            CHECK(f[i] != 0, "handle 0 retired");
            auto it = r.handles.find(f[i]);
            CHECK(it != r.handles.end(), "retired handle %llu never sent", (u64)f[i]);
            CHECK(!it->second.retired, "handle %llu retired twice", (u64)f[i]);
            it->second.retired = true;
            it->second.reported = true;
        }
}

/* One operation on a reliability layer, at time now (clamped by it). */
void rec_op(Rec &r, uint64_t now)
{
    if (now > r.time)
        r.time = now;
    unsigned space = r.r ? S.in.below(TW_PN_SPACES) : 0;
    switch (S.in.below(8)) {
    case 0:
    case 1:
    case 2: {
        uint64_t pn = r.next_pn[space] + S.in.below(3);
        unsigned flags = S.in.below(4);
        /* Handles name their layer, so frames taken through a connection
         * are told apart. */
        uint64_t handle = S.in.below(8) ? uint64_t(&r - S.recs + 1) << 48 | r.next_handle++ : 0;
        int e = tw_recovery_on_sent(r.r, space, pn, now, 1200, flags, handle);
        CHECK(e != TW_EBUSY, "on_sent busy outside the notify callback");
        if (e == 0) {
            r.next_pn[space] = pn + 1;
            if (handle)
                r.handles.emplace(handle, Handle{space});
        }
        break;
    }
    case 3:
    case 4: {
        if (!r.next_pn[space])
            break;
        tw_ack_range ranges[3];
        size_t n = 0;
        uint64_t top = r.next_pn[space] - 1 - S.in.below(4) % r.next_pn[space];
        while (n < 3) {
            uint64_t len = S.in.below(4);
            uint64_t low = top > len ? top - len : 0;
            ranges[n++] = {low, top};
            uint64_t gap = 2 + S.in.below(3);
            if (low < gap || S.in.below(2))
                break;
            top = low - gap;
        }
        tw_recovery_on_ack(r.r, space, ranges, n, S.in.below(4) * kMs, now);
        break;
    }
    case 5: {
        uint32_t ev;
        tw_recovery_check(r.r, now, &ev);
        break;
    }
    case 6:
        if (space < TW_PN_APPLICATION && tw_recovery_discard_space(r.r, space) == 0) {
            r.discarded[space] = true;
            rec_drain(r);
            for (auto &h : r.handles)
                if (h.second.space == space)
                    CHECK(h.second.reported, "handle %llu of a discarded space never reported",
                          (u64)h.first);
        } else {
            tw_recovery_set_handshake_confirmed(r.r);
        }
        break;
    default:
        rec_drain(r);
        break;
    }
}

/* ---- connections --------------------------------------------------------- */

/* The model as it stands, for a failure report. */
void dump()
{
    std::fprintf(stderr, "clock %llu, turn %llu\n", (u64)S.clock, (u64)S.t);
    for (unsigned i = 0; i < kConns; i++) {
        const Conn &c = S.conns[i];
        if (!c.live)
            continue;
        std::fprintf(stderr, "conn %u id %u%s:", i, c.id, c.queue ? " (queue)" : "");
        for (unsigned k = 0; k < TW_CONN_KINDS; k++)
            if (c.k[k].armed)
                std::fprintf(stderr, " k%u@%llu+%u", k, (u64)c.k[k].deadline, c.k[k].slack);
        for (unsigned l = 0; l < c.nlayers; l++) {
            if (c.layer_rec[l] >= 0)
                std::fprintf(stderr, " rec%d@%llu", c.layer_rec[l],
                             (u64)rec_deadline(S.recs[c.layer_rec[l]]));
            else
                std::fprintf(stderr, " fake%d@%llu(cached %llu)", c.layer_fake[l],
                             (u64)S.fakes[c.layer_fake[l]].deadline,
                             (u64)S.fakes[c.layer_fake[l]].cached);
        }
        uint64_t next = 0;
        int e = tw_conn_next_deadline(c.h, &next);
        std::fprintf(stderr, " next %llu (%d)\n", (u64)next, e);
    }
    for (unsigned i = 0; i < kTimers; i++)
        if (S.timers[i].armed)
            std::fprintf(stderr, "timer %u at %llu+%llu\n", i, (u64)S.timers[i].deadline,
                         (u64)S.timers[i].slack);
}

/* The model's side of a kind changed from inside a turn or out. */
void kind_set(Conn &c, unsigned kind, bool armed, uint64_t deadline, Context ctx)
{
    Kind &k = c.k[kind];
    k.armed = armed;
    k.deadline = armed ? deadline : kNever;
    if (ctx == kInPlain) {
        /* Before the collection: what it collects is the new deadline. */
        k.may = armed && deadline <= S.t && deadline != kNever;
        k.must = false;
    } else if (ctx == kInConn) {
        k.moved = true;
    }
}

void check_conn(const Conn &c, unsigned i)
{
    uint32_t mask = 0;
    uint64_t low = kNever;
    for (unsigned k = 0; k < TW_CONN_KINDS; k++) {
        uint64_t d = 0;
        int e = tw_conn_deadline(c.h, k, &d);
        if (c.k[k].armed) {
            mask |= TW_CONN_BIT(k);
            CHECK(e == 0 && d == c.k[k].deadline, "conn %u kind %u at %llu, model %llu (%d)", i,
                  k, (u64)d, (u64)c.k[k].deadline, e);
            if (d < low)
                low = d;
        } else {
            CHECK(e == TW_ENOENT, "conn %u kind %u armed, model disarmed", i, k);
        }
    }
    CHECK(tw_conn_armed(c.h) == mask, "conn %u armed %x, model %x", i, tw_conn_armed(c.h), mask);
    for (unsigned l = 0; l < c.nlayers; l++) {
        uint64_t d = kNever;
        if (c.layer_rec[l] >= 0)
            d = rec_deadline(S.recs[c.layer_rec[l]]);
        else if (c.layer_fake[l] >= 0)
            d = S.fakes[c.layer_fake[l]].cached;
        if (d < low)
            low = d;
    }
    uint64_t next = 0;
    int e = tw_conn_next_deadline(c.h, &next);
    if (low == kNever)
        CHECK(e == TW_ENOENT, "conn %u next deadline %llu (%d), model none", i, (u64)next, e);
    else
        CHECK(e == 0 && next == low, "conn %u next deadline %llu (%d), model %llu", i,
              (u64)next, e, (u64)low);
}

/* The end of the narrowest window of everything armed: the loop must run
 * no later than this. */
uint64_t latest_all()
{
    uint64_t m = kNever;
    for (auto &c : S.conns) {
        if (!c.live)
            continue;
        for (auto &k : c.k)
            if (window_end(k) < m)
                m = window_end(k);
        for (unsigned l = 0; l < c.nlayers; l++) {
            uint64_t d = c.layer_rec[l] >= 0 ? rec_deadline(S.recs[c.layer_rec[l]])
                                             : S.fakes[c.layer_fake[l]].cached;
            if (d < m)
                m = d;
        }
    }
    for (auto &t : S.timers)
        if (t.armed && t.deadline != kNever) {
            uint64_t end = sat_add(t.deadline, t.slack);
            end = end == kNever ? kNever - 1 : end;
            if (end < m)
                m = end;
        }
    return m;
}

void check_outside()
{
    for (unsigned i = 0; i < kConns; i++)
        if (S.conns[i].live)
            check_conn(S.conns[i], i);
    uint64_t m = latest_all();
    uint64_t next = 0;
    int e = tw_loop_next_deadline(S.loop, &next);
    if (m != kNever)
        CHECK(e == 0 && next <= m, "loop next deadline %llu (%d), a window ends at %llu",
              (u64)next, e, (u64)m);
}

void conn_cb(const tw_conn_event *e, void *userdata);

int conn_new(Context ctx)
{
    for (unsigned i = 0; i < kConns; i++) {
        Conn &c = S.conns[i];
        if (c.live)
            continue;
        bool queue = S.in.below(4) == 0;
        c = Conn();
        c.id = S.next_id++;
        tw_conn *h = nullptr;
        int e = tw_conn_new(S.loop, c.id, queue ? nullptr : conn_cb, &S.conns[i], &h);
        CHECK(e == 0 && h, "tw_conn_new failed: %d", e);
        c.live = true;
        c.h = h;
        c.queue = queue;
        (void)ctx;
        return int(i);
    }
    return -1;
}

/* The model's side of freeing connection i: its layers are free again. */
void conn_forget(unsigned i)
{
    Conn &c = S.conns[i];
    for (unsigned l = 0; l < c.nlayers; l++) {
        if (c.layer_rec[l] >= 0)
            S.recs[c.layer_rec[l]].conn = -1;
        if (c.layer_fake[l] >= 0)
            S.fakes[c.layer_fake[l]] = Fake();
    }
    c.live = false;
    c.h = nullptr;
}

void conn_free(unsigned i)
{
    tw_conn_free(S.conns[i].h);
    conn_forget(i);
    S.freed++;
}

void add_layer(unsigned i)
{
    Conn &c = S.conns[i];
    if (c.nlayers >= TW_CONN_MAX_LAYERS - 1)
        return;
    unsigned n = 0;
    if (S.in.below(2)) {
        /* One that is a layer already, of this connection or another. */
        Rec &taken = S.recs[S.in.below(kRecs)];
        if (taken.conn >= 0 && S.in.below(2)) {
            int e = tw_conn_add_recovery(c.h, taken.r, &n);
            CHECK(e == TW_EINVAL, "a recovery of conn %d added to conn %u: %d", taken.conn, i, e);
            return;
        }
        for (unsigned r = 0; r < kRecs; r++) {
            Rec &rec = S.recs[r];
            if (!rec.r || rec.conn >= 0)
                continue;
            int e = tw_conn_add_recovery(c.h, rec.r, &n);
            CHECK(e == 0 && n == c.nlayers + 1, "add_recovery: %d, layer %u", e, n);
            rec.conn = int(i);
            rec.number = n;
            c.layer_rec[c.nlayers++] = int(r);
            return;
        }
        return;
    }
    for (unsigned f = 0; f < kFakes; f++) {
        Fake &fk = S.fakes[f];
        if (fk.used)
            continue;
        fk = Fake();
        fk.used = true;
        fk.pure = S.in.below(2);
        fk.deadline = S.in.below(2) ? sat_add(loop_time(), duration(S.in)) : kNever;
        fk.bits = 1u << S.in.below(8);
        int e = tw_conn_add_layer(c.h, fk.pure ? &kPureOps : &kImpureOps, &fk, &n);
        CHECK(e == 0 && n == c.nlayers + 1, "add_layer: %d, layer %u", e, n);
        fk.conn = int(i);
        fk.number = n;
        c.layer_fake[c.nlayers++] = int(f);
        return;
    }
}

/* A frame handle taken through connection i: from one of its recoveries. */
void take_frame(unsigned i, uint64_t frame)
{
    unsigned owner = unsigned(frame >> 48) - 1;
    CHECK(owner < kRecs && S.recs[owner].conn == int(i), "frame %llx from no layer of conn %u",
          (u64)frame, i);
    rec_frame(S.recs[owner], frame);
}

/* One operation on connection i, from ctx.  Only what the pages allow
 * there: any arm, disarm or free, from anywhere. */
void conn_op(unsigned i, Context ctx)
{
    Conn &c = S.conns[i];
    unsigned kind = S.in.below(TW_CONN_KINDS);
    unsigned op = S.in.below(12);
    TRACE("conn %u op %u kind %u (context %d)\n", i, op, kind, int(ctx));
    switch (op) {
    case 0:
    case 1: {
        uint64_t at;
        switch (S.in.below(4)) {
        case 0:
            at = kNever;
            break;
        case 1:
            at = loop_time() - (loop_time() ? S.in.below(3) : 0);
            break;
        default:
            at = sat_add(loop_time(), duration(S.in));
        }
        TRACE("  arm %llu\n", (u64)at);
        CHECK(tw_conn_arm(c.h, kind, at) == 0, "arm failed");
        kind_set(c, kind, true, at, ctx);
        break;
    }
    case 2:
    case 3: {
        uint64_t d = duration(S.in);
        TRACE("  arm_in %llu\n", (u64)d);
        CHECK(tw_conn_arm_in(c.h, kind, d) == 0, "arm_in failed");
        uint64_t at = sat_add(loop_time(), d);
        kind_set(c, kind, true, at, ctx);
        break;
    }
    case 4: {
        int e = tw_conn_disarm(c.h, kind);
        /* After the collection, a due kind of a connection not yet reported
         * may have been taken (and disarmed) already. */
        bool taken = ctx == kInConn && c.k[kind].may && !c.reported && !c.k[kind].moved;
        CHECK(e == (c.k[kind].armed ? 0 : TW_ENOENT) || (taken && e == TW_ENOENT),
              "disarm of conn %u kind %u: %d", i, kind, e);
        if (c.k[kind].armed)
            kind_set(c, kind, false, kNever, ctx);
        /* Disarmed before the connection was collected: not reported. */
        if (taken && e == 0)
            c.k[kind].may = c.k[kind].must = false;
        break;
    }
    case 5:
        CHECK(tw_conn_disarm_all(c.h) == 0, "disarm_all failed");
        for (unsigned k = 0; k < TW_CONN_KINDS; k++)
            if (c.k[k].armed)
                kind_set(c, k, false, kNever, ctx);
        break;
    case 6: {
        uint64_t s = S.in.below(4) ? S.in.bytes(1) * kMs / 8 : duration(S.in);
        CHECK(tw_conn_set_slack(c.h, kind, s) == 0, "set_slack failed");
        c.k[kind].slack = s > UINT32_MAX ? UINT32_MAX : uint32_t(s);
        break;
    }
    case 7:
        if (S.in.below(2)) {
            c.idle = duration(S.in);
            CHECK(tw_conn_set_idle_timeout(c.h, c.idle) == 0, "set_idle_timeout failed");
        }
        CHECK(tw_conn_touch(c.h) == 0, "touch failed");
        if (c.idle)
            kind_set(c, TW_CONN_IDLE, true, sat_add(loop_time(), c.idle), ctx);
        break;
    case 8:
        if (ctx == kOutside)
            add_layer(i);
        break;
    case 9: {
        /* A layer's deadline moves; the connection is told, or not when it
         * only moved later (then a check finds nothing, as allowed). */
        if (!c.nlayers)
            break;
        unsigned l = S.in.below(c.nlayers);
        if (c.layer_rec[l] >= 0) {
            Rec &r = S.recs[c.layer_rec[l]];
            if (ctx != kInPlain)
                rec_op(r, loop_time());
        } else if (ctx != kInPlain) {
            Fake &f = S.fakes[c.layer_fake[l]];
            uint64_t old = f.deadline;
            f.touched = ctx == kInConn;
            f.deadline = S.in.below(4) ? sat_add(loop_time(), duration(S.in)) : kNever;
            f.then = S.in.below(2) ? sat_add(loop_time(), duration(S.in)) : kNever;
            if (f.deadline < old || S.in.below(2))
                CHECK(tw_conn_layer_dirty(c.h, f.number) == 0, "layer_dirty failed");
        }
        break;
    }
    case 10:
        conn_free(i);
        break;
    default: {
        uint64_t next;
        int e = tw_conn_next_deadline(c.h, &next);
        CHECK(e == 0 || e == TW_ENOENT, "next_deadline: %d", e);
        uint64_t frames[4];
        size_t n = tw_conn_take_frames(c.h, frames, 1 + S.in.below(4));
        for (size_t j = 0; j < n; j++)
            take_frame(i, frames[j]);
        break;
    }
    }
}

/* An event, from the callback or the queue. */
void take_event(const tw_conn_event *e, bool polled)
{
    Conn *c = static_cast<Conn *>(e->userdata);
    CHECK(c >= S.conns && c < S.conns + kConns, "event with foreign userdata");
    unsigned i = unsigned(c - S.conns);
    CHECK(c->live && c->h == e->conn, "event for freed connection %u (id %u)", i, e->conn_id);
    CHECK(e->conn_id == c->id, "event id %u, connection %u", e->conn_id, c->id);
    CHECK(!S.loop_going, "event after the loop was freed");
    CHECK(!c->reported, "two events for connection %u in one turn", i);
    CHECK(polled || e->now_ns == S.t, "event at %llu in the turn of %llu", (u64)e->now_ns,
          (u64)S.t);
    c->reported = true;
    TRACE("event conn %u kinds %x layers %x %x %x%s\n", i, e->events[0], e->events[1],
          e->events[2], e->events[3], polled ? " (polled)" : "");
    uint32_t may = 0;
    for (unsigned k = 0; k < TW_CONN_KINDS; k++)
        if (c->k[k].may)
            may |= TW_CONN_BIT(k);
    CHECK(e->events[0] == may,
          "conn %u reported kinds %x at %llu, the model has %x due (deadlines %llu %llu %llu "
          "%llu %llu %llu %llu %llu)",
          i, e->events[0], (u64)S.t, may, (u64)c->k[0].deadline, (u64)c->k[1].deadline,
          (u64)c->k[2].deadline, (u64)c->k[3].deadline, (u64)c->k[4].deadline,
          (u64)c->k[5].deadline, (u64)c->k[6].deadline, (u64)c->k[7].deadline);
    for (unsigned k = 0; k < TW_CONN_KINDS; k++) {
        Kind &kk = c->k[k];
        if (!(e->events[0] & TW_CONN_BIT(k)))
            continue;
        kk.must = false;
        kk.may = false;
        if (!kk.moved) {
            kk.armed = false;
            kk.deadline = kNever;
        }
    }
    for (unsigned l = 0; l < c->nlayers; l++) {
        uint32_t bits = e->events[l + 1];
        if (c->layer_fake[l] >= 0) {
            Fake &f = S.fakes[c->layer_fake[l]];
            CHECK(bits == f.returned, "conn %u layer %u reported %x, its checks returned %x", i,
                  l + 1, bits, f.returned);
            f.returned = 0;
        } else if (bits) {
            uint64_t was = S.recs[c->layer_rec[l]].due_at_start;
            CHECK(was <= S.t && was != kNever,
                  "recovery layer reported %x at %llu, its deadline was %llu", bits, (u64)S.t,
                  (u64)S.recs[c->layer_rec[l]].due_at_start);
        }
    }
    for (unsigned l = c->nlayers + 1; l < TW_CONN_MAX_LAYERS; l++)
        CHECK(e->events[l] == 0, "bits for layer %u the connection lacks", l);
}

void plain_cb(tw_timer timer, uint64_t deadline, void *userdata);

void conn_cb(const tw_conn_event *e, void *userdata)
{
    CHECK(S.in_turn, "connection callback outside a turn");
    CHECK(e->userdata == userdata, "event userdata differs");
    CHECK(tw_loop_now(S.loop) == S.t, "tw_loop_now %llu in the turn of %llu",
          (u64)tw_loop_now(S.loop), (u64)S.t);
    S.user_calls++;
    take_event(e, false);
    unsigned self = unsigned(static_cast<Conn *>(userdata) - S.conns);
    conn_act(int(self), kInConn);
    /* Its processing is over: exact at every moment, inside the turn too. */
    Conn &c = S.conns[self];
    if (c.live && c.h == e->conn && !S.loop_going)
        check_conn(c, self);
}

/* What a callback does: a few operations on any connection, a new one,
 * plain timers, or freeing the loop. */
void conn_act(int self, Context ctx)
{
    unsigned n = S.in.below(4);
    for (unsigned j = 0; j < n && !S.loop_going; j++) {
        unsigned what = S.in.below(16);
        if (what < 10) {
            unsigned i = what < 6 && self >= 0 ? unsigned(self) : S.in.below(kConns);
            if (S.conns[i].live)
                conn_op(i, ctx);
        } else if (what == 10) {
            if (ctx == kInConn)
                conn_new(ctx);
        } else if (what == 11) {
            CHECK(tw_loop_process(S.loop) == TW_EBUSY, "tw_loop_process inside a turn");
        } else if (what == 12 && ctx == kInPlain) {
            /* Time passes while the callback runs: the time budget sees it. */
            S.clock = sat_add(S.clock, S.in.bytes(1) * 10000);
        } else if (what == 13 && S.in.below(8) == 0) {
            tw_loop_free(S.loop);
            S.loop_going = S.freeing = true;
        }
    }
}

/* ---- plain timers -------------------------------------------------------- */

void plain_cb(tw_timer timer, uint64_t deadline, void *userdata)
{
    Timer *t = static_cast<Timer *>(userdata);
    CHECK(S.in_turn && !S.loop_going, "timer callback outside a live turn");
    CHECK(t->armed && t->h == timer, "callback of a timer not armed");
    if (!t->may)
        dump();
    CHECK(t->may, "timer fired at %llu, deadline %llu", (u64)S.t, (u64)t->deadline);
    CHECK(deadline >= t->deadline && deadline <= sat_add(t->deadline, t->slack),
          "timer filed at %llu outside [%llu, +%llu]", (u64)deadline, (u64)t->deadline,
          (u64)t->slack);
    t->armed = false;
    t->must = t->may = false;
    S.plain_fired++;
    S.user_calls++;
    conn_act(-1, kInPlain);
}

void timer_op(unsigned i)
{
    Timer &t = S.timers[i];
    if (t.armed && S.in.below(2)) {
        if (S.in.below(2)) {
            TRACE("timer %u cancel\n", i);
            CHECK(tw_loop_cancel(S.loop, t.h) == 0, "cancel of an armed timer");
            t.armed = false;
        } else {
            uint64_t at = sat_add(loop_time(), duration(S.in));
            TRACE("timer %u reschedule %llu\n", i, (u64)at);
            CHECK(tw_loop_reschedule(S.loop, t.h, at) == 0, "reschedule of an armed timer");
            t.deadline = at;
        }
        return;
    }
    if (t.armed)
        CHECK(tw_loop_cancel(S.loop, t.h) == 0, "cancel of an armed timer");
    t = Timer();
    uint64_t at = sat_add(loop_time(), duration(S.in));
    int e;
    if (S.in.below(3) == 0) {
        t.slack = S.in.bytes(1) * kMs / 16;
        e = tw_loop_schedule_slack(S.loop, at, t.slack, plain_cb, &t, &t.h);
    } else {
        e = tw_loop_schedule(S.loop, at, plain_cb, &t, &t.h);
    }
    TRACE("timer %u schedule %llu slack %llu\n", i, (u64)at, (u64)t.slack);
    CHECK(e == 0, "schedule failed: %d", e);
    t.armed = true;
    t.deadline = at;
}

/* ---- posted functions ------------------------------------------------------ */

/* A function posted from the loop's own thread: it runs at the start of
 * the next turn, before the timers, or is cancelled when the loop is
 * freed; either way exactly once.  Cancelled, it may still use and free
 * the loop's connections. */
void posted(tw_loop *loop, int status, void *userdata)
{
    (void)userdata;
    CHECK(S.posts > 0, "a posted function ran twice");
    S.posts--;
    if (status == TW_ECANCELED) {
        CHECK(S.freeing, "a posted function cancelled while the loop lives");
        unsigned i = S.in.below(kConns);
        Conn &c = S.conns[i];
        if (!c.live)
            return;
        unsigned kind = S.in.below(TW_CONN_KINDS);
        switch (S.in.below(3)) {
        case 0: {
            uint64_t at = sat_add(S.clock, duration(S.in));
            CHECK(tw_conn_arm(c.h, kind, at) == 0, "arm from a cancelled post");
            kind_set(c, kind, true, at, kOutside);
            break;
        }
        case 1:
            CHECK(tw_conn_disarm(c.h, kind) == (c.k[kind].armed ? 0 : TW_ENOENT),
                  "disarm from a cancelled post");
            kind_set(c, kind, false, kNever, kOutside);
            break;
        default:
            conn_free(i);
        }
        return;
    }
    CHECK(status == 0 && loop == S.loop && S.in_turn && !S.loop_going,
          "a posted function ran outside a turn (status %d)", status);
    CHECK(tw_loop_now(loop) == S.t, "a posted function saw %llu in the turn of %llu",
          (u64)tw_loop_now(loop), (u64)S.t);
    S.user_calls++;
    conn_act(-1, kInPlain);
}

void post()
{
    if (S.posts >= 4)
        return;
    CHECK(tw_loop_post(S.loop, posted, nullptr) == 0, "post refused");
    S.posts++;
}

/* Frees the loop from outside a turn: cancelled posts run inside. */
void free_loop()
{
    S.freeing = true;
    tw_loop_free(S.loop);
    S.freeing = false;
    S.loop = nullptr;
    CHECK(S.posts == 0, "%u posted functions neither run nor cancelled", S.posts);
}

/* ---- turns ---------------------------------------------------------------- */

void turn()
{
    S.t = loop_time();
    TRACE("turn at %llu\n", (u64)S.t);
    S.in_turn = true;
    S.user_calls = S.plain_fired = S.freed = 0;
    for (auto &c : S.conns) {
        c.reported = false;
        if (!c.live)
            continue;
        bool must_fire = false;
        for (auto &k : c.k) {
            k.may = k.armed && k.deadline <= S.t && k.deadline != kNever;
            k.must = window_end(k) != kNever && window_end(k) <= S.t;
            k.moved = false;
            must_fire = must_fire || k.must;
        }
        (void)must_fire;
    }
    for (auto &f : S.fakes) {
        f.checks = 0;
        f.touched = false;
        f.returned = 0;
        f.cached_low = f.cached;
        f.due_at_start = f.cached;
    }
    for (auto &r : S.recs)
        r.due_at_start = r.r && r.conn >= 0 ? rec_deadline(r) : kNever;
    for (auto &t : S.timers) {
        t.may = t.armed && t.deadline <= S.t && t.deadline != kNever;
        uint64_t end = sat_add(t.deadline, t.slack);
        t.must = t.may && (end == kNever ? kNever - 1 : end) <= S.t;
    }
    tw_loop_stats ls0, ls1;
    tw_conn_stats cs0, cs1;
    ls0.struct_size = ls1.struct_size = sizeof(ls0);
    cs0.struct_size = cs1.struct_size = sizeof(cs0);
    tw_loop_stats_get(S.loop, &ls0);
    tw_conn_stats_get(S.loop, &cs0);

    int ran = tw_loop_process(S.loop);
    S.in_turn = false;
    CHECK(ran >= 0, "tw_loop_process: %d", ran);
    if (S.loop_going) {
        S.loop = nullptr;
        S.freeing = false;
        CHECK(S.posts == 0, "%u posted functions neither run nor cancelled", S.posts);
        return;
    }
    CHECK(S.posts == 0, "%u posted functions not run by the turn", S.posts);
    tw_loop_stats_get(S.loop, &ls1);
    tw_conn_stats_get(S.loop, &cs1);
    CHECK(uint64_t(ran) == S.plain_fired + (cs1.wakeups - cs0.wakeups),
          "the turn counted %d, ran %u timers and %llu connections", ran, S.plain_fired,
          (u64)(cs1.wakeups - cs0.wakeups));
    CHECK(ls1.fired - ls0.fired == uint64_t(ran), "fired counter moved %llu, turn counted %d",
          (u64)(ls1.fired - ls0.fired), ran);
    /* A budget stop shows in the counters, unless the callbacks that ran
     * removed everything left due: then by the count of timers that went
     * off, which includes connections freed before they were processed. */
    bool stopped = ls1.budget_stops != ls0.budget_stops ||
                   ls1.budget_time_stops != ls0.budget_time_stops ||
                   (S.budget && unsigned(ran) + S.freed >= S.budget);
    if (tracing()) {
        uint64_t next = 0;
        int e = tw_loop_next_deadline(S.loop, &next);
        TRACE("turn ran %d%s, loop next %llu (%d)\n", ran, stopped ? ", budget stop" : "",
              (u64)next, e);
        dump();
    }

    tw_conn_event ev[kConns];
    int n = tw_conn_poll(S.loop, ev, kConns);
    CHECK(n >= 0, "poll: %d", n);
    for (int j = 0; j < n; j++)
        take_event(&ev[j], true);

    if (ls1.budget_stops != ls0.budget_stops) {
        uint64_t next;
        CHECK(tw_loop_next_deadline(S.loop, &next) == 0 && next <= S.t,
              "a budget stop left the next deadline after the turn");
    }
    if (stopped)
        return;
    for (unsigned i = 0; i < kConns; i++) {
        Conn &c = S.conns[i];
        if (!c.live)
            continue;
        /* A budget may have stopped the turn before the connection was
         * collected, and a callback then moved what was due, so that
         * nothing is left due and no budget stop shows. */
        for (unsigned k = 0; k < TW_CONN_KINDS; k++)
            CHECK(!c.k[k].must || (S.budgeted && c.k[k].moved),
                  "conn %u kind %u, window end %llu, not reported at %llu", i, k,
                  (u64)window_end(c.k[k]), (u64)S.t);
        for (unsigned l = 0; l < c.nlayers; l++)
            if (c.layer_fake[l] >= 0) {
                Fake &f = S.fakes[c.layer_fake[l]];
                CHECK(f.due_at_start == kNever || f.due_at_start > S.t || f.checks > 0 ||
                          (S.budgeted && f.touched),
                      "conn %u layer %u due at %llu not checked at %llu", i, l + 1,
                      (u64)f.due_at_start, (u64)S.t);
            }
    }
    for (unsigned i = 0; i < kTimers; i++)
        CHECK(!S.timers[i].must, "timer %u due at %llu did not fire at %llu", i,
              (u64)S.timers[i].deadline, (u64)S.t);
    /* With nothing run that could arm, all that was due is done, but for
     * a layer whose check left it due (a check may serve one of several
     * timeouts; a connection runs a few per turn): the next turn goes on. */
    uint64_t next, layers = kNever;
    for (auto &c : S.conns)
        for (unsigned l = 0; c.live && l < c.nlayers; l++) {
            uint64_t d = c.layer_rec[l] >= 0 ? rec_deadline(S.recs[c.layer_rec[l]])
                                             : S.fakes[c.layer_fake[l]].cached;
            layers = d < layers ? d : layers;
        }
    if (S.user_calls == 0 && layers > S.t && tw_loop_next_deadline(S.loop, &next) == 0 &&
        next <= S.t) {
        dump();
        fail("a quiet turn at %llu left the loop due at %llu", (u64)S.t, (u64)next);
    }
}

/* tw_conn_check_all by hand, at a time of the caller's choosing. */
void check_by_hand(unsigned i)
{
    Conn &c = S.conns[i];
    uint64_t now = sat_add(loop_time(), S.in.below(2) ? S.in.below(4) : duration(S.in));
    if (S.in.below(8) == 0)
        now = UINT64_MAX;
    uint32_t due = 0;
    for (unsigned k = 0; k < TW_CONN_KINDS; k++)
        if (c.k[k].armed && c.k[k].deadline <= now && c.k[k].deadline != kNever)
            due |= TW_CONN_BIT(k);
    for (auto &f : S.fakes)
        f.returned = 0, f.cached_low = f.cached;
    uint64_t frames[4];
    tw_conn_result r;
    std::memset(&r, 0, sizeof(r));
    r.frames = frames;
    r.frames_cap = 4;
    S.by_hand = true;
    int fired = tw_conn_check_all(c.h, now, &r);
    S.by_hand = false;
    CHECK(fired >= 0, "check_all: %d", fired);
    if (!c.live) {
        CHECK(r.frames_n == 0, "frames taken from a connection its check freed");
        return;
    }
    CHECK(r.events[0] == due, "check_all at %llu reported %x, model %x", (u64)now, r.events[0],
          due);
    for (unsigned k = 0; k < TW_CONN_KINDS; k++)
        if (due & TW_CONN_BIT(k))
            kind_set(c, k, false, kNever, kOutside);
    bool any = due != 0;
    for (unsigned l = 0; l < c.nlayers; l++) {
        any = any || r.events[l + 1];
        if (c.layer_fake[l] >= 0)
            CHECK(r.events[l + 1] == S.fakes[c.layer_fake[l]].returned,
                  "check_all layer %u bits %x, checks returned %x", l + 1, r.events[l + 1],
                  S.fakes[c.layer_fake[l]].returned);
    }
    CHECK(fired == (any ? 1 : 0), "check_all returned %d", fired);
    CHECK(r.frames_n <= 4 && r.frames_more == (r.frames_n == 4), "check_all frames %zu, more %d",
          r.frames_n, r.frames_more);
    for (size_t j = 0; j < r.frames_n; j++)
        take_frame(i, frames[j]);
    for (unsigned l = 0; l < c.nlayers; l++)
        if (c.layer_rec[l] >= 0)
            rec_drain(S.recs[c.layer_rec[l]]);
}

void set_clock()
{
    switch (S.in.below(8)) {
    case 0:
        S.clock = kNever - 1 - S.in.below(2);
        break;
    case 1:
        S.clock = S.in.below(4) ? sat_add(S.clock, duration(S.in)) : S.in.bytes(8);
        break;
    case 2: {
        /* To the earliest deadline, as a caller that sleeps until it. */
        uint64_t next;
        if (tw_loop_next_deadline(S.loop, &next) == 0 && next > S.clock)
            S.clock = next;
        break;
    }
    default:
        S.clock = sat_add(S.clock, S.in.bytes(1) * kMs / 8);
    }
}

tw_loop *new_loop()
{
    tw_loop_config c;
    tw_loop_config_init(&c);
    c.clock = clock_fn;
    static const uint64_t ticks[] = {TW_TICK_DEFAULT_NS, TW_TICK_MIN_NS, 1000 * 1000 * 10,
                                     TW_TICK_MAX_NS};
    c.tick_ns = ticks[S.in.below(4)];
    static const uint32_t budgets[] = {5000, 0, 1, 3};
    c.budget_callbacks = budgets[S.in.below(4)];
    S.budget = c.budget_callbacks;
    if (S.in.below(2))
        c.budget_ns = 0;
    S.budgeted = c.budget_callbacks || c.budget_ns;
    TRACE("loop: tick %llu, budget %u callbacks, %llu ns\n", (u64)c.tick_ns, c.budget_callbacks,
          (u64)c.budget_ns);
    tw_loop *loop = nullptr;
    int e = tw_loop_new(nullptr, &c, &loop);
    CHECK(e == 0, "tw_loop_new: %d", e);
    return loop;
}

tw_recovery *new_recovery()
{
    tw_recovery_config c;
    tw_recovery_config_init(&c);
    c.mode = S.in.below(3) == 0 ? TW_RECOVERY_RFC6298 : TW_RECOVERY_RFC9002;
    c.is_server = S.in.below(2);
    c.max_in_flight = S.in.below(2) ? 0 : 1 + S.in.below(8);
    c.initial_rtt_ns = 1 + S.in.bytes(1) * kMs * 4;
    tw_recovery *r = nullptr;
    CHECK(tw_recovery_new(&c, &r) == 0, "tw_recovery_new failed");
    return r;
}

void run(const uint8_t *data, size_t size)
{
    S = State();
    S.in.p = data;
    S.in.n = size;
    S.clock = S.in.below(4) == 0 ? S.in.bytes(8) : 1000 * 1000000000ull;
    S.loop = new_loop();
    for (unsigned r = 0; r < kRecs; r++)
        S.recs[r].r = new_recovery();
    for (unsigned op = 0; op < kMaxOps && !S.in.empty() && S.loop; op++) {
        unsigned what = S.in.below(32);
        if (what < 12) {
            unsigned i = S.in.below(kConns);
            if (S.conns[i].live)
                conn_op(i, kOutside);
            else
                conn_new(kOutside);
        } else if (what < 18) {
            set_clock();
            turn();
        } else if (what < 20) {
            set_clock();
        } else if (what < 23) {
            timer_op(S.in.below(kTimers));
        } else if (what < 26) {
            Rec &r = S.recs[S.in.below(kRecs)];
            rec_op(r, loop_time());
        } else if (what < 28) {
            unsigned i = S.in.below(kConns);
            if (S.conns[i].live)
                check_by_hand(i);
        } else if (what == 28) {
            turn();
        } else if (what == 29) {
            if (S.in.below(4))
                post();
            else
                free_loop();
        } else {
            check_outside();
        }
        if (S.loop)
            check_outside();
    }
    if (S.loop)
        free_loop();
    /* The connections went with the loop; the layers are the caller's. */
    for (auto &c : S.conns)
        c.live = false;
    uint64_t now = S.clock;
    for (unsigned op = 0; op < 64; op++) {
        Rec &r = S.recs[op % kRecs];
        r.conn = -1;
        rec_op(r, now);
        now = sat_add(now, S.in.bytes(1) * kMs);
    }
    for (auto &r : S.recs) {
        rec_drain(r);
        tw_recovery_free(r.r);
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run(data, size);
    return 0;
}
