/*
 * Randomized model test of the reliability layer: one tw_recovery per run,
 * driven by random packets, acknowledgments, clock steps, checks, takes
 * and state changes, against a reference kept here that follows RFC 9002
 * (loss detection, probe timeout) and RFC 6298 (retransmission timeout)
 * as tw_recovery_new(3) and tw_recovery_on_sent(3) specify them.  After
 * every step the layer must agree with the reference on:
 *
 *  - the two handle queues, handle for handle, in order: every handle
 *    given to on_sent is reported exactly once (retired, or queued for
 *    retransmission when its packet is lost), probe copies aside, and
 *    never a handle that was not sent;
 *  - the counters and the packets and bytes in flight;
 *  - the RTT estimate, with min_rtt the least sample and smoothed_rtt
 *    between the least and the largest, and the RTO within its bounds,
 *    doubled by each expiry (Karn);
 *  - which packets are lost and when: never before the time threshold
 *    (kTimeThreshold * max(smoothed, latest), floored at kGranularity)
 *    nor by the packet threshold before a packet that many numbers newer
 *    is acknowledged;
 *  - the deadline; a check before it does nothing; the notify callback
 *    runs exactly when a call moved it.
 *
 * Time is injected, never read.  A failure prints the seed and the step;
 * `test-recovery-model SEED [STEPS]` replays one run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tickwheel.h"

#define MS(x) ((uint64_t)(x) * UINT64_C(1000000))
#define US(x) ((uint64_t)(x) * UINT64_C(1000))
#define AE TW_RECOVERY_ACK_ELICITING
#define RETX TW_RECOVERY_RETRANSMISSION
#define APP TW_PN_APPLICATION
#define NEVER TW_NEVER

#define CHECK(cond)                                                                       \
    do {                                                                                  \
        if (!(cond))                                                                      \
            fail_msg("seed %u step %llu line %d: %s", m->seed,                            \
                     (unsigned long long)m->step, __LINE__, #cond);                       \
    } while (0)

#define CHECK_EQ(a, b)                                                                    \
    do {                                                                                  \
        uint64_t a_ = (uint64_t)(a), b_ = (uint64_t)(b);                                  \
        if (a_ != b_)                                                                     \
            fail_msg("seed %u step %llu line %d: %s == %s: %llu != %llu", m->seed,        \
                     (unsigned long long)m->step, __LINE__, #a, #b,                       \
                     (unsigned long long)a_, (unsigned long long)b_);                     \
    } while (0)

enum { OUT, ACKED, LOST, GONE };

struct pkt {
    uint64_t pn, time, handle;
    uint32_t bytes;
    unsigned flags;
    int state;
};

struct space {
    struct pkt *p;      /* every packet recorded, by packet number */
    size_t n, first;    /* first: no outstanding packet before it */
    uint64_t largest_sent, largest_acked, loss_time, last_ae;
    uint64_t out, ae;   /* outstanding, and of those ack-eliciting */
    int any_sent, any_acked, discarded;
};

struct entry {
    uint64_t handle;
    unsigned space;
    int probe;          /* a copy taken by a probe, not the handle's report */
};

struct queue {
    struct entry *e;
    size_t head, tail, cap;
};

struct model {
    unsigned seed;
    uint64_t step, steps;
    uint64_t rng;
    tw_recovery *r;
    tw_recovery_config c;
    int rfc6298;

    /* The estimator. */
    uint64_t latest, srtt, rttvar, min_rtt, samples, max_sample;
    uint32_t pto_count, rto_backoff;

    /* Connection state and the deadline. */
    int confirmed, hs_acked, hs_keys, amp_limited;
    uint64_t seen, timer;   /* seen: the latest time the layer was given */
    uint64_t now;           /* the simulation's clock */

    uint64_t in_flight, bytes_in_flight;
    uint64_t sent, acked, lost, discarded, pto, rto;
    struct space sp[TW_PN_SPACES];
    struct queue frames, retired;

    /* Per handle (1 ..): reports taken, and whether its packet is out. */
    unsigned char *reports, *out;
    unsigned *queued;
    uint64_t next_handle;

    /* The simulated path and the plan of the run. */
    uint64_t path_rtt;
    uint64_t discard_initial_at, discard_handshake_at, confirm_at;
    uint64_t initial_only;  /* steps at the start that send Initial only */
    uint64_t quiet_until;   /* no sends before this step */

    /* Notifications: counted, and the guard tried from inside. */
    uint64_t notified;

    /* What the run reached. */
    uint64_t lost_by_time, lost_by_count, probes, anti_deadlock, late_pto, loss_checks;
    uint64_t early_checks, ignored_acks, late_acks, gap_acks, eagain, einval;
};

/* xorshift64* */
static uint64_t rnd(struct model *m)
{
    m->rng ^= m->rng >> 12;
    m->rng ^= m->rng << 25;
    m->rng ^= m->rng >> 27;
    return m->rng * UINT64_C(2685821657736338717);
}

static uint64_t pick(struct model *m, uint64_t n)
{
    return n ? rnd(m) % n : 0;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > NEVER - b ? NEVER : a + b;
}

static uint64_t sat_shift(uint64_t a, uint32_t s)
{
    if (a == 0)
        return 0;
    if (s > 63 || a > (NEVER >> s))
        return NEVER;
    return a << s;
}

static uint64_t max64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

static uint64_t min64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* ---- the reference ---------------------------------------------------- */

static void push(struct queue *q, uint64_t handle, unsigned space, int probe)
{
    if (q->tail == q->cap) {
        q->cap = q->cap ? 2 * q->cap : 64;
        q->e = realloc(q->e, q->cap * sizeof(*q->e));
        assert_non_null(q->e);
    }
    q->e[q->tail].handle = handle;
    q->e[q->tail].space = space;
    q->e[q->tail].probe = probe;
    q->tail++;
}

/* The layer takes a time behind the latest it has seen as that one. */
static uint64_t clamp(struct model *m, uint64_t t)
{
    if (t > m->seen)
        m->seen = t;
    return m->seen;
}

static uint64_t ae_total(const struct model *m)
{
    return m->sp[0].ae + m->sp[1].ae + m->sp[2].ae;
}

static int validated(const struct model *m)
{
    return m->c.is_server || m->hs_acked || m->confirmed;
}

static uint64_t pto_base(const struct model *m)
{
    return sat_add(m->srtt, max64(sat_shift(m->rttvar, 2), m->c.granularity_ns));
}

static uint64_t rto_of(const struct model *m)
{
    uint64_t base = m->c.rto_initial_ns;
    if (m->samples)
        base = max64(m->c.rto_min_ns,
                     sat_add(m->srtt, max64(m->c.granularity_ns, sat_shift(m->rttvar, 2))));
    return min64(m->c.rto_max_ns, sat_shift(base, m->rto_backoff));
}

/* RFC 9002 s6.2.1: the PTO of each space with ack-eliciting packets in
 * flight from its last one, Application only once confirmed, with
 * max_ack_delay; with none in flight, the anti-deadlock timer from now. */
static uint64_t pto_time(const struct model *m, unsigned *space)
{
    uint64_t d = sat_shift(pto_base(m), m->pto_count), best = NEVER;
    unsigned sp;
    *space = TW_PN_INITIAL;
    if (ae_total(m) == 0) {
        *space = m->hs_keys ? TW_PN_HANDSHAKE : TW_PN_INITIAL;
        return sat_add(m->seen, d);
    }
    for (sp = 0; sp < TW_PN_SPACES; sp++) {
        uint64_t t;
        if (m->sp[sp].ae == 0)
            continue;
        if (sp == APP) {
            if (!m->confirmed)
                break;
            d = sat_add(d, sat_shift(m->c.max_ack_delay_ns, m->pto_count));
        }
        t = sat_add(m->sp[sp].last_ae, d);
        if (t < best) {
            best = t;
            *space = sp;
        }
    }
    return best;
}

/* The earliest loss time; Initial first on ties. */
static uint64_t loss_time(const struct model *m, unsigned *space)
{
    uint64_t t = NEVER;
    unsigned sp;
    *space = TW_PN_INITIAL;
    for (sp = 0; sp < TW_PN_SPACES; sp++)
        if (m->sp[sp].loss_time < t) {
            t = m->sp[sp].loss_time;
            *space = sp;
        }
    return t;
}

static void set_timer(struct model *m)
{
    unsigned sp;
    uint64_t t = loss_time(m, &sp);
    if (t != NEVER)
        m->timer = t;
    else if (m->c.is_server && m->amp_limited)
        m->timer = NEVER;
    else if (ae_total(m) == 0 && validated(m))
        m->timer = NEVER;
    else
        m->timer = pto_time(m, &sp);
}

static void leave(struct model *m, struct space *s, struct pkt *p, int state)
{
    CHECK(p->state == OUT);
    p->state = state;
    s->out--;
    m->in_flight--;
    if (p->flags & AE) {
        s->ae--;
        m->bytes_in_flight -= p->bytes;
    }
    if (p->handle)
        m->out[p->handle] = 0;
    while (s->first < s->n && s->p[s->first].state != OUT)
        s->first++;
}

static void lose(struct model *m, unsigned space, struct pkt *p)
{
    leave(m, &m->sp[space], p, LOST);
    m->lost++;
    if (p->handle)
        push(&m->frames, p->handle, space, 0);
}

static void update_rtt(struct model *m, uint64_t latest, uint64_t delay, unsigned space)
{
    uint64_t adjusted = latest, diff;
    m->latest = latest;
    m->max_sample = max64(m->max_sample, latest);
    if (m->samples++ == 0) {
        m->min_rtt = m->srtt = latest;
        m->rttvar = latest / 2;
        return;
    }
    m->min_rtt = min64(m->min_rtt, latest);
    if (!m->rfc6298) {
        if (space == TW_PN_INITIAL)
            delay = 0;
        if (m->confirmed)
            delay = min64(delay, m->c.max_ack_delay_ns);
        if (latest >= sat_add(m->min_rtt, delay))
            adjusted = latest - delay;
    }
    diff = m->srtt > adjusted ? m->srtt - adjusted : adjusted - m->srtt;
    m->rttvar = (3 * m->rttvar + diff) / 4;
    m->srtt = (7 * m->srtt + adjusted) / 8;
}

static uint64_t loss_delay(const struct model *m)
{
    uint64_t d = max64(m->latest, m->srtt) * m->c.time_threshold_num / m->c.time_threshold_den;
    return max64(d, m->c.granularity_ns);
}

/* RFC 9002 s6.1: lost once a packet packet_threshold numbers newer is
 * acknowledged, or once sent loss_delay ago; else a loss time. */
static uint64_t detect_lost(struct model *m, unsigned space)
{
    struct space *s = &m->sp[space];
    uint64_t delay = loss_delay(m), lost = 0;
    size_t i;
    s->loss_time = NEVER;
    for (i = s->first; i < s->n && s->p[i].pn <= s->largest_acked; i++) {
        struct pkt *p = &s->p[i];
        int by_count, by_time;
        if (p->state != OUT)
            continue;
        by_count = s->largest_acked - p->pn >= m->c.packet_threshold;
        by_time = m->seen - p->time >= delay;
        if (by_count || by_time) {
            m->lost_by_count += by_count;
            m->lost_by_time += !by_count;
            lose(m, space, p);
            lost++;
        } else {
            s->loss_time = min64(s->loss_time, p->time + delay);
        }
    }
    return lost;
}

static int ref_sent(struct model *m, unsigned space, uint64_t pn, uint64_t t, uint32_t bytes,
                    unsigned flags, uint64_t handle)
{
    struct space *s = &m->sp[space];
    struct pkt *p;
    if (s->discarded || (s->any_sent && pn <= s->largest_sent) ||
        (flags & ~(unsigned)(AE | RETX)))
        return TW_EINVAL;
    if (m->rfc6298 && !(flags & AE)) {
        clamp(m, t);
        s->any_sent = 1;
        s->largest_sent = pn;
        m->sent++;
        if (handle)
            push(&m->retired, handle, space, 0);
        return 0;
    }
    if (m->c.max_in_flight && m->in_flight >= m->c.max_in_flight)
        return TW_EAGAIN;
    t = clamp(m, t);
    s->any_sent = 1;
    s->largest_sent = pn;
    p = &s->p[s->n++];
    p->pn = pn;
    p->time = t;
    p->handle = handle;
    p->bytes = bytes;
    p->flags = flags;
    p->state = OUT;
    if (handle)
        m->out[handle] = 1;
    s->out++;
    m->in_flight++;
    m->sent++;
    if (space == TW_PN_HANDSHAKE)
        m->hs_keys = 1;
    if (!(flags & AE))
        return 0;
    s->ae++;
    s->last_ae = t;
    m->bytes_in_flight += bytes;
    if (!m->rfc6298)
        set_timer(m);
    else if (m->timer == NEVER)
        m->timer = sat_add(t, rto_of(m));
    return 0;
}

static size_t lower_bound(const struct space *s, size_t lo, uint64_t pn)
{
    size_t hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->p[mid].pn < pn)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void ref_ack(struct model *m, unsigned space, const tw_ack_range *a, size_t n,
                    uint64_t delay, uint64_t t)
{
    struct space *s = &m->sp[space];
    struct pkt *largest = NULL;
    int eliciting = 0, sample;
    size_t k;
    t = clamp(m, t);
    k = lower_bound(s, 0, a[0].largest);
    m->gap_acks += k == s->n || s->p[k].pn != a[0].largest;
    for (k = 0; k < n; k++) {
        size_t i;
        for (i = lower_bound(s, 0, a[k].smallest); i < s->first && s->p[i].pn <= a[k].largest;
             i++)
            m->late_acks += s->p[i].state == LOST;
    }
    if (space == TW_PN_HANDSHAKE)
        m->hs_acked = 1;
    if (!s->any_acked || a[0].largest > s->largest_acked)
        s->largest_acked = a[0].largest;
    s->any_acked = 1;
    for (k = n; k-- > 0;) {
        size_t i;
        for (i = lower_bound(s, s->first, a[k].smallest);
             i < s->n && s->p[i].pn <= a[k].largest; i++) {
            struct pkt *p = &s->p[i];
            m->late_acks += p->state == LOST;
            if (p->state != OUT)
                continue;
            leave(m, s, p, ACKED);
            m->acked++;
            if (p->handle)
                push(&m->retired, p->handle, space, 0);
            eliciting |= (p->flags & AE) != 0;
            largest = p;
        }
    }
    if (!largest) {
        m->ignored_acks++;
        return;
    }
    sample = largest->pn == a[0].largest && eliciting;
    if (m->rfc6298 && (largest->flags & RETX))
        sample = 0;
    if (sample)
        update_rtt(m, t - largest->time, delay, space);
    if (!m->rfc6298) {
        detect_lost(m, space);
        if (validated(m))
            m->pto_count = 0;
        set_timer(m);
    } else {
        if (sample)
            m->rto_backoff = 0;
        m->timer = ae_total(m) ? sat_add(t, rto_of(m)) : NEVER;
    }
}

static uint32_t ref_check(struct model *m, uint64_t t)
{
    unsigned space = TW_PN_INITIAL;
    if (m->timer == NEVER || m->timer > max64(t, m->seen)) {
        clamp(m, t);
        return 0;
    }
    t = clamp(m, t);
    if (m->rfc6298) {
        /* The oldest outstanding packet over the spaces; Initial first on
         * ties. */
        struct pkt *oldest = NULL;
        unsigned sp;
        for (sp = 0; sp < TW_PN_SPACES; sp++) {
            struct space *s = &m->sp[sp];
            if (s->first < s->n && (!oldest || s->p[s->first].time < oldest->time)) {
                oldest = &s->p[s->first];
                space = sp;
            }
        }
        CHECK(oldest != NULL);
        lose(m, space, oldest);
        m->rto++;
        if (m->rto_backoff < 63)
            m->rto_backoff++;
        m->timer = ae_total(m) ? sat_add(t, rto_of(m)) : NEVER;
        return TW_RECOVERY_RTO | space << 8;
    }
    if (loss_time(m, &space) != NEVER) {
        m->loss_checks++;
        uint64_t lost = detect_lost(m, space);
        set_timer(m);
        return lost ? TW_RECOVERY_LOSS | space << 8 : 0;
    }
    if (ae_total(m) == 0) {
        CHECK(!validated(m));   /* only an unvalidated client arms it */
        space = m->hs_keys ? TW_PN_HANDSHAKE : TW_PN_INITIAL;
        m->anti_deadlock++;
    } else {
        /* Copies of the oldest one or two ack-eliciting packets in flight
         * that carry a handle. */
        struct space *s;
        size_t i;
        unsigned queued = 0;
        pto_time(m, &space);
        s = &m->sp[space];
        for (i = s->first; i < s->n && queued < 2; i++) {
            struct pkt *p = &s->p[i];
            if (p->state != OUT || !(p->flags & AE) || !p->handle)
                continue;
            push(&m->frames, p->handle, space, 1);
            queued++;
            m->probes++;
        }
    }
    m->pto++;
    if (m->pto_count < 63)
        m->pto_count++;
    set_timer(m);
    return TW_RECOVERY_PTO | space << 8;
}

static void ref_discard(struct model *m, unsigned space)
{
    struct space *s = &m->sp[space];
    size_t i, w;
    if (s->discarded)
        return;
    for (i = s->first; i < s->n; i++) {
        struct pkt *p = &s->p[i];
        if (p->state != OUT)
            continue;
        leave(m, s, p, GONE);
        m->discarded++;
        if (p->handle)
            push(&m->retired, p->handle, space, 0);
    }
    /* Lost handles still queued retire; probe copies go. */
    w = m->frames.head;
    for (i = m->frames.head; i < m->frames.tail; i++) {
        struct entry e = m->frames.e[i];
        if (e.space != space)
            m->frames.e[w++] = e;
        else if (!e.probe)
            push(&m->retired, e.handle, space, 0);
    }
    m->frames.tail = w;
    s->discarded = 1;
    s->loss_time = NEVER;
    s->last_ae = 0;
    if (space == TW_PN_INITIAL)
        m->hs_keys = 1;
    m->pto_count = 0;
    if (!m->rfc6298)
        set_timer(m);
    else if (ae_total(m) == 0)
        m->timer = NEVER;
}

/* ---- the layer against it --------------------------------------------- */

static uint64_t deadline(struct model *m)
{
    uint64_t t = 0;
    int rc = tw_recovery_next_deadline(m->r, &t);
    if (rc == TW_ENOENT)
        return NEVER;
    CHECK_EQ(rc, 0);
    CHECK(t != NEVER);
    return t;
}

static void on_notify(tw_recovery *r, void *userdata)
{
    struct model *m = userdata;
    uint64_t f[2];
    uint32_t ev;
    m->notified++;
    if (m->notified % 64 == 1) {
        /* Reads work; anything that changes state is refused. */
        uint64_t t;
        int rc = tw_recovery_next_deadline(r, &t);
        CHECK(rc == 0 || rc == TW_ENOENT);
        CHECK_EQ(tw_recovery_on_sent(r, APP, UINT64_MAX, m->now, 1, AE, 1), TW_EBUSY);
        CHECK_EQ(tw_recovery_check(r, NEVER - 1, &ev), TW_EBUSY);
        CHECK_EQ(tw_recovery_take_frames(r, f, 2), 0);
        CHECK_EQ(tw_recovery_take_retired(r, f, 2), 0);
    }
}

static void verify(struct model *m)
{
    tw_recovery_stats s;
    tw_rtt t;
    memset(&s, 0, sizeof(s));
    s.struct_size = sizeof(s);
    CHECK_EQ(tw_recovery_stats_get(m->r, &s), 0);
    CHECK_EQ(s.sent, m->sent);
    CHECK_EQ(s.acked, m->acked);
    CHECK_EQ(s.lost, m->lost);
    CHECK_EQ(s.discarded, m->discarded);
    CHECK_EQ(s.pto, m->pto);
    CHECK_EQ(s.rto, m->rto);
    CHECK_EQ(s.packets_in_flight, m->in_flight);
    CHECK_EQ(s.ack_eliciting_in_flight, ae_total(m));
    CHECK_EQ(s.bytes_in_flight, m->bytes_in_flight);
    CHECK_EQ(s.frames_queued, m->frames.tail - m->frames.head);
    CHECK_EQ(s.retired_queued, m->retired.tail - m->retired.head);
    /* RFC 6298 mode tracks ack-eliciting packets only. */
    CHECK_EQ(s.acked + s.lost + s.discarded + s.packets_in_flight,
             m->sp[0].n + m->sp[1].n + m->sp[2].n);
    if (!m->rfc6298)
        CHECK_EQ(s.sent, m->sp[0].n + m->sp[1].n + m->sp[2].n);

    memset(&t, 0, sizeof(t));
    t.struct_size = sizeof(t);
    CHECK_EQ(tw_recovery_rtt(m->r, &t), 0);
    CHECK_EQ(t.samples, m->samples);
    CHECK_EQ(t.latest_ns, m->latest);
    CHECK_EQ(t.min_ns, m->min_rtt);
    CHECK_EQ(t.smoothed_ns, m->srtt);
    CHECK_EQ(t.rttvar_ns, m->rttvar);
    CHECK_EQ(t.pto_count, m->pto_count);
    CHECK_EQ(t.rto_backoff, m->rto_backoff);
    CHECK_EQ(t.pto_ns, sat_add(pto_base(m), m->c.max_ack_delay_ns));
    CHECK_EQ(t.rto_ns, rto_of(m));
    if (t.samples) {
        /* Adjusted samples lie between min_rtt and the sample. */
        CHECK(t.min_ns <= t.smoothed_ns && t.smoothed_ns <= m->max_sample);
        CHECK(t.latest_ns >= t.min_ns);
    }
    CHECK(t.rto_ns >= m->c.rto_min_ns && t.rto_ns <= m->c.rto_max_ns);

    CHECK_EQ(deadline(m), m->timer);
}

/* Handle accounting over the whole run: each handle sent is out with its
 * packet, queued once, or was reported once. */
static void verify_handles(struct model *m)
{
    size_t i;
    uint64_t h;
    memset(m->queued, 0, (size_t)m->next_handle * sizeof(*m->queued));
    for (i = m->frames.head; i < m->frames.tail; i++)
        if (!m->frames.e[i].probe)
            m->queued[m->frames.e[i].handle]++;
    for (i = m->retired.head; i < m->retired.tail; i++)
        m->queued[m->retired.e[i].handle]++;
    for (h = 1; h < m->next_handle; h++)
        CHECK_EQ(m->reports[h] + m->queued[h] + m->out[h], 1);
}

/* Runs a call that may move the deadline: the notify callback runs once
 * exactly when it did. */
#define NOTIFY_AROUND(call)                                                               \
    do {                                                                                  \
        uint64_t before_ = deadline(m), n_ = m->notified;                                 \
        call;                                                                             \
        CHECK_EQ(m->notified - n_, deadline(m) != before_);                               \
    } while (0)

static void do_take(struct model *m, struct queue *q, int frames, size_t cap)
{
    uint64_t got[8];
    size_t n, i;
    n = frames ? tw_recovery_take_frames(m->r, got, cap)
               : tw_recovery_take_retired(m->r, got, cap);
    CHECK_EQ(n, min64(cap, q->tail - q->head));
    for (i = 0; i < n; i++) {
        struct entry e = q->e[q->head++];
        CHECK_EQ(got[i], e.handle);
        CHECK(got[i] != 0 && got[i] < m->next_handle);
        if (!e.probe) {
            CHECK(m->reports[e.handle] == 0);   /* never twice */
            m->reports[e.handle] = 1;
        } else {
            CHECK(frames);
        }
    }
}

static void do_send(struct model *m, unsigned space, uint64_t t)
{
    struct space *s = &m->sp[space];
    uint64_t pn = s->any_sent ? s->largest_sent + 1 : pick(m, 3);
    uint64_t handle = pick(m, 20) ? m->next_handle : 0;
    uint32_t bytes = (uint32_t)(pick(m, 8) ? 20 + pick(m, 1400) : pick(m, 20));
    unsigned flags = (pick(m, 5) ? AE : 0) | (pick(m, 6) ? 0 : RETX);
    int rc, want;
    if (pick(m, 8) == 0)
        pn += 1 + pick(m, 4);               /* a gap: numbers never sent */
    if (pick(m, 64) == 0)
        flags |= 1u << (2 + pick(m, 30));   /* an unknown flag */
    if (s->discarded && pick(m, 4))
        return;
    NOTIFY_AROUND(rc = tw_recovery_on_sent(m->r, space, pn, t, bytes, flags, handle);
                  want = ref_sent(m, space, pn, t, bytes, flags, handle));
    CHECK_EQ(rc, want);
    if (rc == 0 && handle)
        m->next_handle++;
    m->eagain += rc == TW_EAGAIN;
    m->einval += rc == TW_EINVAL;
}

/* The largest packet number sent in the space at or before t. */
static uint64_t sent_by(const struct space *s, uint64_t t, int *found)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->p[mid].time <= t)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo > 0;
    return lo ? s->p[lo - 1].pn : 0;
}

static void do_ack(struct model *m, unsigned space, uint64_t t)
{
    struct space *s = &m->sp[space];
    tw_ack_range a[5];
    size_t n = 0, want = 1 + pick(m, 4);
    uint64_t hi, delay;
    int rc, found = 0;
    if (!s->any_sent || s->discarded) {
        tw_ack_range one = {0, 0};
        CHECK_EQ(tw_recovery_on_ack(m->r, space, &one, 1, 0, t), TW_EINVAL);
        return;
    }
    /* What the path delivered by now, or anything. */
    hi = s->largest_sent;
    if (pick(m, 10) < 6) {
        uint64_t back = m->path_rtt / 2 + pick(m, m->path_rtt + 1);
        uint64_t pn = sent_by(s, m->now > back ? m->now - back : 0, &found);
        if (found)
            hi = pn;
    } else if (pick(m, 2)) {
        hi -= min64(hi, pick(m, 4));
    } else {
        hi = pick(m, hi + 1);
    }
    while (n < want) {
        uint64_t len = pick(m, 4) ? pick(m, 4) : pick(m, 40);
        a[n].largest = hi;
        a[n].smallest = hi - min64(hi, len);
        n++;
        if (a[n - 1].smallest < 2)
            break;
        hi = a[n - 1].smallest - 1 - pick(m, min64(a[n - 1].smallest - 1, 1 + pick(m, 6)));
    }
    delay = pick(m, 4) ? pick(m, 2 * m->c.max_ack_delay_ns + 1) : 0;
    NOTIFY_AROUND(rc = tw_recovery_on_ack(m->r, space, a, n, delay, t));
    CHECK_EQ(rc, 0);
    ref_ack(m, space, a, n, delay, t);
}

/* Malformed ACKs change nothing. */
static void do_bad_ack(struct model *m, unsigned space)
{
    struct space *s = &m->sp[space];
    tw_ack_range a[2];
    uint64_t top = s->largest_sent;
    size_t n = 1;
    if (!s->any_sent || s->discarded)
        return;
    switch (pick(m, 4)) {
    case 0:
        a[0].smallest = top;
        a[0].largest = top + 1 + pick(m, 3);        /* above the largest sent */
        break;
    case 1:
        if (top == 0)
            return;
        a[0].smallest = top;
        a[0].largest = top - 1;                     /* empty range */
        break;
    case 2:
        if (top < 2)
            return;
        a[0].smallest = top - 1;
        a[0].largest = top;
        a[1].smallest = top - 2;
        a[1].largest = top - 1;                     /* overlap */
        n = 2;
        break;
    default:
        if (top < 2)
            return;
        a[0].smallest = a[0].largest = top - 2;
        a[1].smallest = a[1].largest = top;         /* increasing */
        n = 2;
        break;
    }
    NOTIFY_AROUND(CHECK_EQ(tw_recovery_on_ack(m->r, space, a, n, 0, m->now), TW_EINVAL));
    CHECK_EQ(tw_recovery_on_ack(m->r, space, a, 0, 0, m->now), TW_EINVAL);
}

static uint32_t do_check(struct model *m, uint64_t t)
{
    uint32_t ev = 0xdead, want;
    uint64_t rto_before = rto_of(m);
    unsigned sp;
    int rc;
    NOTIFY_AROUND(rc = tw_recovery_check(m->r, t, &ev); want = ref_check(m, t));
    CHECK_EQ(rc, 0);
    CHECK_EQ(ev, want);
    if (ev & TW_RECOVERY_RTO)
        CHECK_EQ(rto_of(m), min64(2 * rto_before, m->c.rto_max_ns));
    /* After a check the deadline is in the future, unless another space's
     * loss time is due too, or (RFC 9002) the probe timeout is already
     * due: the check came late. */
    if (m->timer <= m->seen) {
        if (loss_time(m, &sp) <= m->seen) {
            CHECK_EQ(m->timer, loss_time(m, &sp));
        } else {
            CHECK(!m->rfc6298);
            m->late_pto++;
        }
    }
    return ev;
}

static void step(struct model *m)
{
    uint64_t r = pick(m, 100), dl;
    unsigned space;

    /* Send mostly in the spaces still open, Application the most. */
    space = APP;
    if (pick(m, 3) == 0)
        space = (unsigned)pick(m, 2);
    if (m->sp[space].discarded && pick(m, 8))
        space = APP;
    if (m->step < m->initial_only && !m->sp[TW_PN_INITIAL].discarded)
        space = TW_PN_INITIAL;

    /* Quiet stretches with nothing sent let the flight drain. */
    if (m->step % 2048 == 0)
        m->quiet_until = m->step + pick(m, 400);
    if (r < 30) {
        /* Sends outrun a space with too much outstanding: ack it instead. */
        if (m->sp[space].out > 200 || m->step < m->quiet_until)
            do_ack(m, space, m->now);
        else
            do_send(m, space, m->now);
    } else if (r < 55) {
        do_ack(m, space, m->now);
    } else if (r < 57) {
        do_bad_ack(m, space);
    } else if (r < 67) {
        m->now += pick(m, m->path_rtt / 4 + 1);
    } else if (r < 77) {
        /* To the deadline, or past it, then check as the man page's loop. */
        dl = deadline(m);
        if (dl != NEVER && dl <= m->now + (UINT64_C(1) << 44)) {
            if (dl > m->now)
                m->now = dl + (pick(m, 2) ? 0 : pick(m, m->path_rtt));
            while (deadline(m) <= m->now)
                do_check(m, m->now);
        }
    } else if (r < 81) {
        do_check(m, m->now);
    } else if (r < 84) {
        /* Before the deadline nothing is due. */
        dl = deadline(m);
        if (dl != NEVER && dl > m->now) {
            uint64_t t = m->now + pick(m, min64(dl - m->now, m->path_rtt * 4 + 1));
            uint64_t pto = m->pto, lost = m->lost, rto = m->rto;
            size_t frames = m->frames.tail;
            CHECK_EQ(do_check(m, t), 0);
            m->now = t;
            CHECK(m->pto == pto && m->lost == lost && m->rto == rto && m->frames.tail == frames);
            m->early_checks++;
        }
    } else if (r < 94) {
        do_take(m, &m->frames, 1, (size_t)pick(m, 9));
        do_take(m, &m->retired, 0, (size_t)pick(m, 9));
    } else if (r < 95) {
        /* A client ignores it. */
        int on = (int)pick(m, 2);
        NOTIFY_AROUND(CHECK_EQ(tw_recovery_set_amplification_limited(m->r, on), 0);
                      m->amp_limited = on;
                      if (!m->rfc6298 && m->c.is_server) set_timer(m));
    } else if (r < 98) {
        /* A time behind the latest is taken as the latest. */
        uint64_t t = m->now - min64(m->now, pick(m, m->path_rtt + 1));
        if (pick(m, 2))
            do_send(m, space, t);
        else
            do_ack(m, space, t);
    } else {
        do_check(m, m->now - min64(m->now, pick(m, m->path_rtt + 1)));
    }

    if (m->step == m->discard_initial_at || m->step == m->discard_handshake_at) {
        space = m->step == m->discard_initial_at ? TW_PN_INITIAL : TW_PN_HANDSHAKE;
        /* With some of its packets still in flight. */
        for (r = pick(m, 6); r > 0; r--)
            do_send(m, space, m->now);
        NOTIFY_AROUND(CHECK_EQ(tw_recovery_discard_space(m->r, space), 0);
                      ref_discard(m, space));
    }
    if (m->step == m->confirm_at) {
        NOTIFY_AROUND(CHECK_EQ(tw_recovery_set_handshake_confirmed(m->r), 0);
                      m->confirmed = 1; if (!m->rfc6298) set_timer(m));
    }
}

static void run(unsigned seed, uint64_t steps)
{
    static const uint64_t path[] = {US(500), MS(10), MS(80), MS(400)};
    static const uint64_t initial_rtt[] = {MS(333), MS(100), MS(5)};
    static const uint64_t granularity[] = {MS(1), MS(1), US(1), MS(20)};
    static const uint64_t mad[] = {MS(25), 0, MS(3)};
    static const uint32_t thresh[] = {3, 3, 3, 1, 2, 5};
    static const uint32_t num[] = {9, 9, 5, 2, 1}, den[] = {8, 8, 4, 1, 1};
    struct model model, *m = &model;
    size_t cap = (size_t)steps + 2, i;
    uint64_t drain[8];

    memset(m, 0, sizeof(*m));
    m->seed = seed;
    m->steps = steps;
    m->rng = UINT64_C(0x9e3779b97f4a7c15) * (seed + 1);
    m->rfc6298 = seed % 2 == 0;
    tw_recovery_config_init(&m->c);
    m->c.mode = m->rfc6298 ? TW_RECOVERY_RFC6298 : TW_RECOVERY_RFC9002;
    m->c.is_server = seed % 4 >= 2;
    m->c.initial_rtt_ns = initial_rtt[pick(m, 3)];
    m->c.granularity_ns = granularity[pick(m, 4)];
    m->c.max_ack_delay_ns = mad[pick(m, 3)];
    m->c.packet_threshold = thresh[pick(m, 6)];
    i = (size_t)pick(m, 5);
    m->c.time_threshold_num = num[i];
    m->c.time_threshold_den = den[i];
    if (seed % 5 == 0)
        m->c.max_in_flight = 12;
    if (pick(m, 2)) {
        m->c.rto_min_ns = MS(100);
        m->c.rto_initial_ns = MS(300);
        m->c.rto_max_ns = pick(m, 2) ? MS(60000) : MS(100000);
    }
    m->path_rtt = path[pick(m, 4)];
    m->initial_only = pick(m, 2) ? pick(m, steps / 4) : 0;
    m->discard_initial_at = m->initial_only + pick(m, steps + steps / 2);
    m->discard_handshake_at = m->discard_initial_at + pick(m, steps);
    m->confirm_at = m->initial_only + pick(m, steps + steps / 2);
    m->now = pick(m, 2) ? pick(m, MS(1000000)) : 0;

    m->srtt = m->c.initial_rtt_ns;
    m->rttvar = m->c.initial_rtt_ns / 2;
    m->timer = NEVER;
    for (i = 0; i < TW_PN_SPACES; i++) {
        m->sp[i].p = calloc(cap, sizeof(struct pkt));
        m->sp[i].loss_time = NEVER;
        CHECK(m->sp[i].p != NULL);
    }
    m->reports = calloc(cap, 1);
    m->out = calloc(cap, 1);
    m->queued = calloc(cap, sizeof(*m->queued));
    CHECK(m->reports && m->out && m->queued);
    m->next_handle = 1;

    CHECK_EQ(tw_recovery_new(&m->c, &m->r), 0);
    CHECK_EQ(tw_recovery_set_notify(m->r, on_notify, m), 0);
    verify(m);
    for (m->step = 0; m->step < steps; m->step++) {
        step(m);
        verify(m);
        if (m->step % 1024 == 0)
            verify_handles(m);
    }

    /* The end: every space drained of what can still be acknowledged,
     * both queues taken, and every handle accounted for. */
    m->step = steps;
    for (i = 0; i < TW_PN_SPACES; i++) {
        struct space *s = &m->sp[i];
        if (s->any_sent && !s->discarded) {
            tw_ack_range all = {0, s->largest_sent};
            CHECK_EQ(tw_recovery_on_ack(m->r, (unsigned)i, &all, 1, 0, m->now), 0);
            ref_ack(m, (unsigned)i, &all, 1, 0, m->now);
        }
    }
    verify(m);
    CHECK_EQ(m->in_flight, 0);
    CHECK_EQ(m->bytes_in_flight, 0);
    while (m->frames.head < m->frames.tail)
        do_take(m, &m->frames, 1, 8);
    while (m->retired.head < m->retired.tail)
        do_take(m, &m->retired, 0, 8);
    CHECK_EQ(tw_recovery_take_frames(m->r, drain, 8), 0);
    CHECK_EQ(tw_recovery_take_retired(m->r, drain, 8), 0);
    verify(m);
    verify_handles(m);
    for (i = 1; i < m->next_handle; i++)
        CHECK_EQ(m->reports[i], 1);

    printf("seed %u: %s %s%s, %llu steps: %llu sent, %llu acked, %llu lost (%llu by time, "
           "%llu by count), %llu discarded, %llu PTO (%llu anti-deadlock, %llu late), "
           "%llu probes, %llu RTO, %llu samples, %llu late acks, %llu acks of a gap, "
           "%llu EAGAIN\n",
           seed, m->rfc6298 ? "RFC 6298" : "RFC 9002", m->c.is_server ? "server" : "client",
           m->c.max_in_flight ? " (12 in flight at most)" : "",
           (unsigned long long)steps, (unsigned long long)m->sent,
           (unsigned long long)m->acked, (unsigned long long)m->lost,
           (unsigned long long)m->lost_by_time, (unsigned long long)m->lost_by_count,
           (unsigned long long)m->discarded, (unsigned long long)m->pto,
           (unsigned long long)m->anti_deadlock, (unsigned long long)m->late_pto,
           (unsigned long long)m->probes, (unsigned long long)m->rto,
           (unsigned long long)m->samples, (unsigned long long)m->late_acks,
           (unsigned long long)m->gap_acks, (unsigned long long)m->eagain);
    /* The run reached what it is meant to test. */
    if (steps >= 10000) {
        CHECK(m->acked > steps / 20 && m->samples > steps / 50 && m->lost > 0);
        CHECK(m->rfc6298 || (m->pto > 0 && (m->c.packet_threshold == 1 || m->loss_checks > 0)));
        CHECK(!m->rfc6298 || m->rto > 0);
    }

    tw_recovery_free(m->r);
    for (i = 0; i < TW_PN_SPACES; i++)
        free(m->sp[i].p);
    free(m->frames.e);
    free(m->retired.e);
    free(m->reports);
    free(m->out);
    free(m->queued);
}

static unsigned ARG_SEED;
static uint64_t ARG_STEPS;

static void test_random_runs(void **state)
{
    unsigned seed;
    (void)state;
    if (ARG_STEPS) {
        run(ARG_SEED, ARG_STEPS);
        return;
    }
    /* Odd seeds run RFC 9002, even ones RFC 6298; seed % 4 of 0 and 1
     * a client, 2 and 3 a server. */
    for (seed = 1; seed <= 16; seed++)
        run(seed, 40000);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_runs),
    };
    if (argc > 1) {
        ARG_SEED = (unsigned)strtoul(argv[1], NULL, 0);
        ARG_STEPS = argc > 2 ? strtoull(argv[2], NULL, 0) : 40000;
    }
    return cmocka_run_group_tests_name("recovery-model", tests, NULL, NULL);
}
