/*
 * tw-sim: a protocol stack's timers on one libevent loop.
 *
 * N connections (default 100k) live on one tw_loop.  Each opens with a
 * handshake, sends packets at a paced interval while it is active, goes
 * quiet after a random while, times out idle, drains and closes; its slot
 * then opens a fresh connection, so the population stays at N.  Packets
 * cross a simulated network with a configurable RTT, jitter and loss; the
 * peer acknowledges them and sometimes sends data back, which arms the
 * ACK_DELAY timer.  Some connections migrate and validate the new path;
 * some send keep-alives.  Every protocol timer goes through tw_conn and the
 * reliability layer (RFC 9002); the network itself is plain loop timers.
 *
 * Real time by default (a few seconds on the loop's own base, with a
 * progress line on a terminal), or simulated time (--sim-seconds) that
 * covers hours in seconds on an injected clock.  The report ends with the
 * figures that matter: timers armed, fired and lazily skipped, wheel
 * operations, retransmissions, lateness, wake-ups, CPU and memory.
 *
 * Uses: the library through tickwheel.h alone; tools/common/clock.h.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/number.h"
#include "tickwheel.h"

#define MS UINT64_C(1000000)
#define SEC UINT64_C(1000000000)

/* Network events name their connection in a pointer-sized word: slot,
 * the slot's generation (stale events of a closed connection are dropped)
 * and a packet number. */
#define SLOT_BITS 22
#define GEN_BITS 10
#define MAX_CONNS (UINT32_C(1) << SLOT_BITS)

struct options {
    uint32_t conns;
    double seconds;           /* real time */
    double sim_seconds;       /* > 0: simulated time */
    uint64_t rtt, jitter;     /* ns */
    double loss;              /* probability a packet is lost */
    uint64_t interval;        /* between packets of an active connection */
    uint64_t active_mean;     /* how long a connection stays active */
    uint64_t idle_timeout;
    uint64_t ramp;            /* connections open over this span */
    uint64_t slack;           /* of the timeouts that tolerate it */
    uint64_t net_slack;       /* of network deliveries */
    double migrate;           /* path migrations per active connection per second */
    double keepalive;         /* fraction of connections that send keep-alives */
    uint64_t seed;
    int json;
    int progress;
};

enum { ST_FREE, ST_CONNECTING, ST_OPEN, ST_CLOSING };

struct conn {
    tw_conn *c;
    tw_recovery *r;
    uint64_t pn;              /* next packet number, application space */
    uint64_t quiet_at;        /* stops sending then */
    uint32_t gen;
    uint8_t state;
    uint8_t keepalive;
    uint8_t path_pending;
};

struct counters {
    uint64_t opened, closed, handshakes, connect_timeouts, idle_closes;
    uint64_t packets, lost_in_network, acks, retransmits, pto, loss_events;
    uint64_t acks_delayed, keepalives, paths, paths_ok, paths_failed;
    uint64_t net_timers;
};

static struct sim {
    struct options o;
    tw_loop *loop;
    struct conn *conns;
    uint64_t rng;
    uint64_t fake;            /* simulated clock */
    struct counters k;
    uint64_t started_ns, start_loop_ns;
    uint64_t frames_buf[64];
    int failed;
} S;

/* ---- small helpers ----------------------------------------------------- */

static uint64_t rnd(void)
{
    /* xorshift64* */
    S.rng ^= S.rng >> 12;
    S.rng ^= S.rng << 25;
    S.rng ^= S.rng >> 27;
    return S.rng * UINT64_C(2685821657736338717);
}

static double rnd01(void)
{
    return (double)(rnd() >> 11) / 9007199254740992.0;
}

/* Uniform in [base - spread, base + spread]. */
static uint64_t around(uint64_t base, uint64_t spread)
{
    if (!spread)
        return base;
    uint64_t off = rnd() % (2 * spread + 1);
    return base + off >= spread ? base + off - spread : 0;
}

static uint64_t cpu_ns(void)
{
    return clock_ns(CLOCK_PROCESS_CPUTIME_ID);
}

static long max_rss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static void *pack(uint32_t slot, uint64_t pn)
{
    uint64_t gen = S.conns[slot].gen & ((1u << GEN_BITS) - 1);
    return (void *)(uintptr_t)(((uint64_t)slot << (64 - SLOT_BITS)) |
                               (gen << (64 - SLOT_BITS - GEN_BITS)) | (pn & 0xffffffffu));
}

/* The connection an event names, or NULL when it closed since. */
static struct conn *unpack(void *userdata, uint32_t *slot, uint64_t *pn)
{
    uint64_t v = (uint64_t)(uintptr_t)userdata;
    *slot = (uint32_t)(v >> (64 - SLOT_BITS));
    uint32_t gen = (uint32_t)(v >> (64 - SLOT_BITS - GEN_BITS)) & ((1u << GEN_BITS) - 1);
    *pn = v & 0xffffffffu;
    struct conn *c = &S.conns[*slot];
    if (c->state == ST_FREE || (c->gen & ((1u << GEN_BITS) - 1)) != gen)
        return NULL;
    return c;
}

/* The connection a network event is for, if it is still in state. */
static struct conn *target(void *userdata, int state, uint32_t *slot, uint64_t *pn)
{
    struct conn *c = unpack(userdata, slot, pn);
    return c && c->state == state ? c : NULL;
}

static uint64_t now(void)
{
    return tw_loop_now(S.loop);
}

static void fail(const char *what, int err)
{
    if (!S.failed)
        fprintf(stderr, "tw-sim: %s: %s\n", what, tw_strerror(err));
    S.failed = 1;
    tw_loop_stop(S.loop);
}

/* ---- the network ------------------------------------------------------- */

static void on_ack(tw_timer t, uint64_t deadline, void *userdata);
static void on_peer_data(tw_timer t, uint64_t deadline, void *userdata);
static void on_handshake(tw_timer t, uint64_t deadline, void *userdata);
static void on_path_response(tw_timer t, uint64_t deadline, void *userdata);

/* Delivers cb after one way or a round trip, unless the network drops it. */
static void network(uint32_t slot, uint64_t pn, uint64_t delay, tw_timer_cb *cb)
{
    if (rnd01() < S.o.loss) {
        S.k.lost_in_network++;
        return;
    }
    tw_timer t;
    /* Deliveries come in batches, as a NIC coalesces interrupts: each may
     * arrive up to net_slack late, so many share one wake-up. */
    int r = tw_loop_schedule_slack(S.loop, now() + around(delay, S.o.jitter), S.o.net_slack, cb,
                                   pack(slot, pn), &t);
    if (r < 0)
        fail("scheduling a network event", r);
    S.k.net_timers++;
}

static void send_packet(uint32_t slot, uint64_t frames, unsigned flags)
{
    struct conn *c = &S.conns[slot];
    uint64_t pn = c->pn++;
    int r = tw_recovery_on_sent(c->r, TW_PN_APPLICATION, pn, now(), 1200,
                                TW_RECOVERY_ACK_ELICITING | flags, frames);
    if (r < 0) {
        fail("tw_recovery_on_sent", r);
        return;
    }
    S.k.packets++;
    tw_conn_touch(c->c);
    network(slot, pn, S.o.rtt, on_ack);
    /* The peer has something to say about one packet in four. */
    if ((rnd() & 3) == 0)
        network(slot, pn, S.o.rtt / 2, on_peer_data);
}

static void retransmit_lost(uint32_t slot)
{
    struct conn *c = &S.conns[slot];
    size_t n;
    while ((n = tw_conn_take_frames(c->c, S.frames_buf, 64)) > 0) {
        for (size_t i = 0; i < n; i++) {
            S.k.retransmits++;
            send_packet(slot, S.frames_buf[i], TW_RECOVERY_RETRANSMISSION);
        }
        if (n < 64)
            break;
    }
}

/* ---- connections ------------------------------------------------------- */

static void on_conn(const tw_conn_event *ev, void *userdata);

static void open_conn(uint32_t slot)
{
    struct conn *c = &S.conns[slot];
    tw_recovery_config rc;
    tw_recovery_config_init(&rc);
    int r = tw_recovery_new(&rc, &c->r);
    if (r == 0)
        r = tw_conn_new(S.loop, slot, on_conn, (void *)(uintptr_t)slot, &c->c);
    unsigned layer;
    if (r == 0)
        r = tw_conn_add_recovery(c->c, c->r, &layer);
    if (r < 0) {
        fail("opening a connection", r);
        return;
    }
    c->gen++;
    c->state = ST_CONNECTING;
    c->pn = 0;
    c->path_pending = 0;
    c->keepalive = rnd01() < S.o.keepalive;
    tw_conn_set_idle_timeout(c->c, S.o.idle_timeout);
    /* Timeouts, not deadlines: a few ms late costs nothing, and lets the
     * loop serve many connections with one wake-up. */
    static const unsigned tolerant[] = {TW_CONN_IDLE, TW_CONN_CONNECT, TW_CONN_PATH_VALIDATION,
                                        TW_CONN_KEEPALIVE, TW_CONN_CLOSE};
    for (size_t k = 0; k < sizeof(tolerant) / sizeof(tolerant[0]); k++)
        tw_conn_set_slack(c->c, tolerant[k], S.o.slack);
    S.k.opened++;
    /* The handshake: an Initial out, the server's flight back. */
    tw_conn_arm_in(c->c, TW_CONN_CONNECT, 3 * SEC);
    r = tw_recovery_on_sent(c->r, TW_PN_INITIAL, 0, now(), 1200, TW_RECOVERY_ACK_ELICITING, 0);
    if (r < 0)
        fail("tw_recovery_on_sent", r);
    network(slot, 0, S.o.rtt, on_handshake);
}

static void close_conn(uint32_t slot)
{
    struct conn *c = &S.conns[slot];
    tw_conn_free(c->c);
    tw_recovery_free(c->r);
    c->c = NULL;
    c->r = NULL;
    c->state = ST_FREE;
    S.k.closed++;
}

static void start_sending(uint32_t slot)
{
    struct conn *c = &S.conns[slot];
    uint64_t active = around(S.o.active_mean, S.o.active_mean / 2);
    c->quiet_at = now() + active;
    tw_conn_arm_in(c->c, TW_CONN_PACING, rnd() % (S.o.interval + 1));
    if (c->keepalive)
        tw_conn_arm_in(c->c, TW_CONN_KEEPALIVE, S.o.idle_timeout / 2);
}

static void on_handshake(tw_timer t, uint64_t deadline, void *userdata)
{
    (void)t, (void)deadline;
    uint32_t slot;
    uint64_t pn;
    struct conn *c = target(userdata, ST_CONNECTING, &slot, &pn);
    if (!c)
        return;
    tw_ack_range range = {pn, pn};
    int r = tw_recovery_on_ack(c->r, TW_PN_INITIAL, &range, 1, 0, now());
    if (r < 0) {
        fail("tw_recovery_on_ack", r);
        return;
    }
    tw_recovery_discard_space(c->r, TW_PN_INITIAL);
    tw_recovery_discard_space(c->r, TW_PN_HANDSHAKE);
    tw_recovery_set_handshake_confirmed(c->r);
    tw_conn_disarm(c->c, TW_CONN_CONNECT);
    c->state = ST_OPEN;
    c->pn = 0;
    S.k.handshakes++;
    tw_conn_touch(c->c);
    start_sending(slot);
}

static void on_ack(tw_timer t, uint64_t deadline, void *userdata)
{
    (void)t, (void)deadline;
    uint32_t slot;
    uint64_t pn;
    struct conn *c = target(userdata, ST_OPEN, &slot, &pn);
    if (!c)
        return;
    tw_ack_range range = {pn, pn};
    int r = tw_recovery_on_ack(c->r, TW_PN_APPLICATION, &range, 1, 2 * MS, now());
    if (r < 0) {
        fail("tw_recovery_on_ack", r);
        return;
    }
    S.k.acks++;
    tw_conn_touch(c->c);
    /* The acknowledged frames are done with: nothing to free here. */
    while (tw_recovery_take_retired(c->r, S.frames_buf, 64) == 64)
        ;
    /* Acknowledging later packets may declare earlier ones lost. */
    retransmit_lost(slot);
}

static void on_peer_data(tw_timer t, uint64_t deadline, void *userdata)
{
    (void)t, (void)deadline;
    uint32_t slot;
    uint64_t pn;
    struct conn *c = target(userdata, ST_OPEN, &slot, &pn);
    if (!c)
        return;
    tw_conn_touch(c->c);
    if (!(tw_conn_armed(c->c) & TW_CONN_BIT(TW_CONN_ACK_DELAY)))
        tw_conn_arm_in(c->c, TW_CONN_ACK_DELAY, 25 * MS);
}

static void on_path_response(tw_timer t, uint64_t deadline, void *userdata)
{
    (void)t, (void)deadline;
    uint32_t slot;
    uint64_t pn;
    struct conn *c = target(userdata, ST_OPEN, &slot, &pn);
    if (!c || !c->path_pending)
        return;
    c->path_pending = 0;
    tw_conn_disarm(c->c, TW_CONN_PATH_VALIDATION);
    S.k.paths_ok++;
}

static void migrate(uint32_t slot)
{
    struct conn *c = &S.conns[slot];
    tw_rtt rtt;
    rtt.struct_size = sizeof(rtt);
    tw_recovery_rtt(c->r, &rtt);
    c->path_pending = 1;
    S.k.paths++;
    tw_conn_arm_in(c->c, TW_CONN_PATH_VALIDATION,
                   tw_path_validation_timeout_ns(rtt.pto_ns, rtt.pto_initial_ns));
    network(slot, 0, S.o.rtt, on_path_response);
}

static void on_conn(const tw_conn_event *ev, void *userdata)
{
    uint32_t slot = (uint32_t)(uintptr_t)userdata;
    struct conn *c = &S.conns[slot];
    uint32_t kinds = ev->events[0];

    if (kinds & TW_CONN_BIT(TW_CONN_CLOSE)) {
        close_conn(slot);
        open_conn(slot);
        return;
    }
    if (kinds & TW_CONN_BIT(TW_CONN_CONNECT)) {
        S.k.connect_timeouts++;
        close_conn(slot);
        open_conn(slot);
        return;
    }
    if (kinds & TW_CONN_BIT(TW_CONN_IDLE)) {
        /* Idle: drain for three PTOs, then close (RFC 9000 10.2). */
        S.k.idle_closes++;
        tw_rtt rtt;
        rtt.struct_size = sizeof(rtt);
        tw_recovery_rtt(c->r, &rtt);
        c->state = ST_CLOSING;
        tw_conn_disarm_all(c->c);
        tw_conn_arm_in(c->c, TW_CONN_CLOSE, 3 * rtt.pto_ns);
        return;
    }
    if (c->state == ST_CONNECTING && ev->events[1]) {
        /* The Initial was lost: probe with a fresh one. */
        int r = tw_recovery_on_sent(c->r, TW_PN_INITIAL, ++c->pn, now(), 1200,
                                    TW_RECOVERY_ACK_ELICITING | TW_RECOVERY_RETRANSMISSION, 0);
        if (r < 0)
            fail("tw_recovery_on_sent", r);
        S.k.retransmits++;
        network(slot, c->pn, S.o.rtt, on_handshake);
        return;
    }
    if (c->state != ST_OPEN)
        return;
    if (ev->events[1]) {
        if (ev->events[1] & TW_RECOVERY_PTO)
            S.k.pto++;
        if (ev->events[1] & TW_RECOVERY_LOSS)
            S.k.loss_events++;
        retransmit_lost(slot);
    }
    if (kinds & TW_CONN_BIT(TW_CONN_PATH_VALIDATION)) {
        c->path_pending = 0;
        S.k.paths_failed++;
    }
    if (kinds & TW_CONN_BIT(TW_CONN_ACK_DELAY))
        S.k.acks_delayed++;
    if (kinds & TW_CONN_BIT(TW_CONN_KEEPALIVE)) {
        S.k.keepalives++;
        send_packet(slot, 0, 0);
        tw_conn_arm_in(c->c, TW_CONN_KEEPALIVE, S.o.idle_timeout / 2);
    }
    if (kinds & TW_CONN_BIT(TW_CONN_PACING)) {
        if (now() < c->quiet_at) {
            send_packet(slot, c->pn + 1, 0);
            tw_conn_arm_in(c->c, TW_CONN_PACING, around(S.o.interval, S.o.interval / 2));
            if (S.o.migrate > 0 && !c->path_pending &&
                rnd01() < S.o.migrate * (double)S.o.interval / (double)SEC)
                migrate(slot);
        }
    }
}

/* ---- driving and reporting --------------------------------------------- */

static uint64_t fake_clock(void *userdata)
{
    (void)userdata;
    return S.fake;
}

/* Opens the population over the ramp, a slice per step, as a server's
 * connections arrive over time rather than in one instant. */
static uint32_t g_opened_slots;

static void on_ramp(tw_timer t, uint64_t deadline, void *userdata)
{
    (void)userdata;
    uint32_t slice = S.o.conns / 10000 ? S.o.conns / 10000 : 1;
    for (uint32_t i = 0; i < slice && g_opened_slots < S.o.conns && !S.failed; i++)
        open_conn(g_opened_slots++);
    if (g_opened_slots < S.o.conns)
        tw_loop_reschedule(S.loop, t, deadline + S.o.ramp / 10000);
}

static void on_stop(tw_timer t, uint64_t deadline, void *userdata)
{
    (void)t, (void)deadline, (void)userdata;
    tw_loop_stop(S.loop);
}

static void on_progress(tw_timer t, uint64_t deadline, void *userdata)
{
    (void)userdata;
    tw_loop_stats ls;
    ls.struct_size = sizeof(ls);
    tw_loop_stats_get(S.loop, &ls);
    fprintf(stderr, "\r%6.1f s  %" PRIu64 " conns opened  %" PRIu64 " packets  %" PRIu64
                    " retransmits  lateness p99 %" PRIu64 " us   ",
            (double)(now() - S.start_loop_ns) / 1e9, S.k.opened, S.k.packets, S.k.retransmits,
            ls.late_p99_ns / 1000);
    tw_loop_reschedule(S.loop, t, deadline + SEC);
}

struct report {
    const char *name;
    double value;
    const char *unit;
};

static void print_report(double wall_s, double covered_s, double cpu_s)
{
    tw_loop_stats ls;
    ls.struct_size = sizeof(ls);
    tw_loop_stats_get(S.loop, &ls);
    tw_conn_stats cs;
    cs.struct_size = sizeof(cs);
    tw_conn_stats_get(S.loop, &cs);
    uint64_t wheel_ops = cs.wheel_ops + S.k.net_timers;
    struct report rows[] = {
        {"connections", S.o.conns, ""},
        {"connections_opened", (double)S.k.opened, ""},
        {"connections_closed", (double)S.k.closed, ""},
        {"handshakes", (double)S.k.handshakes, ""},
        {"connect_timeouts", (double)S.k.connect_timeouts, ""},
        {"idle_closes", (double)S.k.idle_closes, ""},
        {"timers_armed", (double)cs.arms, ""},
        {"timers_lazily_skipped", (double)cs.lazy_arms, ""},
        {"timers_fired", (double)cs.events, "connection events"},
        {"conn_wakeups", (double)cs.wakeups, ""},
        {"conn_early_wakeups", (double)cs.early_wakeups, "the cost of lazy re-arm"},
        {"wheel_ops", (double)wheel_ops, "connections and network"},
        {"wheel_ops_per_s", (double)wheel_ops / covered_s, ""},
        {"packets_sent", (double)S.k.packets, ""},
        {"packets_lost_in_network", (double)S.k.lost_in_network, ""},
        {"acks_received", (double)S.k.acks, ""},
        {"retransmissions", (double)S.k.retransmits, ""},
        {"pto_events", (double)S.k.pto, ""},
        {"loss_events", (double)S.k.loss_events, ""},
        {"acks_delayed", (double)S.k.acks_delayed, ""},
        {"keepalives", (double)S.k.keepalives, ""},
        {"path_validations", (double)S.k.paths, ""},
        {"path_validations_ok", (double)S.k.paths_ok, ""},
        {"path_validations_failed", (double)S.k.paths_failed, ""},
        {"loop_turns", (double)ls.turns, ""},
        {"wakeups_per_s", (double)ls.wakeups / covered_s, ""},
        {"late_p50_us", (double)ls.late_p50_ns / 1e3, "within 1 %"},
        {"late_p99_us", (double)ls.late_p99_ns / 1e3, "within 1 %"},
        {"late_max_us", (double)ls.late_max_ns / 1e3, ""},
        {"longest_turn_us", (double)ls.longest_turn_ns / 1e3, ""},
        {"covered_s", covered_s, S.o.sim_seconds > 0 ? "simulated" : "real time"},
        {"wall_s", wall_s, ""},
        {"cpu_percent", 100.0 * cpu_s / wall_s, "of one core"},
        {"rss_max_mib", (double)max_rss_kib() / 1024.0, ""},
        {"conn_bytes", (double)cs.bytes, "connection tables"},
    };
    size_t n = sizeof(rows) / sizeof(rows[0]);
    if (S.o.json) {
        printf("{\n");
        for (size_t i = 0; i < n; i++)
            printf("  \"%s\": %.6g%s\n", rows[i].name, rows[i].value, i + 1 < n ? "," : "");
        printf("}\n");
        return;
    }
    printf("tw-sim: %" PRIu32 " connections, %s, rtt %" PRIu64 " ms, jitter %" PRIu64
           " ms, loss %.3g\n",
           S.o.conns, S.o.sim_seconds > 0 ? "simulated time" : "real time", S.o.rtt / MS,
           S.o.jitter / MS, S.o.loss);
    for (size_t i = 0; i < n; i++) {
        double v = rows[i].value;
        if (v == (double)(uint64_t)v && v < 1e15)
            printf("  %-26s %14" PRIu64 "  %s\n", rows[i].name, (uint64_t)v, rows[i].unit);
        else
            printf("  %-26s %14.2f  %s\n", rows[i].name, v, rows[i].unit);
    }
}

static int run(void)
{
    tw_loop_config lc;
    tw_loop_config_init(&lc);
    if (S.o.sim_seconds > 0) {
        S.fake = 1000 * SEC;
        lc.clock = fake_clock;
    }
    int r = tw_loop_new(NULL, &lc, &S.loop);
    if (r < 0) {
        fprintf(stderr, "tw-sim: tw_loop_new: %s\n", tw_strerror(r));
        return 1;
    }
    S.conns = calloc(S.o.conns, sizeof(*S.conns));
    if (!S.conns) {
        fprintf(stderr, "tw-sim: out of memory\n");
        return 1;
    }
    uint64_t wall0 = mono_ns(), cpu0 = cpu_ns();
    S.start_loop_ns = now();
    tw_timer t;
    tw_loop_schedule(S.loop, now(), on_ramp, NULL, &t);
    double covered;
    if (S.o.sim_seconds > 0) {
        uint64_t end = S.fake + (uint64_t)(S.o.sim_seconds * 1e9);
        while (!S.failed) {
            tw_loop_process(S.loop);
            uint64_t next;
            if (tw_loop_next_deadline(S.loop, &next) < 0 || next > end)
                break;
            if (next > S.fake)
                S.fake = next;
        }
        covered = S.o.sim_seconds;
    } else {
        uint64_t span = (uint64_t)(S.o.seconds * 1e9);
        tw_loop_schedule(S.loop, now() + span, on_stop, NULL, &t);
        if (S.o.progress)
            tw_loop_schedule(S.loop, now() + SEC, on_progress, NULL, &t);
        tw_loop_run(S.loop);
        if (S.o.progress)
            fprintf(stderr, "\n");
        covered = (double)(mono_ns() - wall0) / 1e9;
    }
    double wall = (double)(mono_ns() - wall0) / 1e9;
    double cpu = (double)(cpu_ns() - cpu0) / 1e9;
    if (!S.failed)
        print_report(wall, covered, cpu);
    for (uint32_t i = 0; i < S.o.conns; i++)
        if (S.conns[i].state != ST_FREE)
            close_conn(i);
    tw_loop_free(S.loop);
    free(S.conns);
    return S.failed ? 1 : 0;
}

/* ---- options ----------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tw-sim [options]\n"
            "  --conns N            connections (default 100000, k and M suffixes)\n"
            "  --seconds S          real time to run (default 3)\n"
            "  --sim-seconds S      simulated time instead, on an injected clock\n"
            "  --rtt MS             round-trip time (default 50)\n"
            "  --jitter MS          +- on every network delay (default 10)\n"
            "  --loss P             packet loss probability (default 0.01)\n"
            "  --interval MS        between packets of an active connection (default 1000)\n"
            "  --active MS          mean time a connection stays active (default 3000)\n"
            "  --idle-timeout MS    (default 1000)\n"
            "  --slack MS           slack of idle, handshake, path, keep-alive, close (4)\n"
            "  --net-slack MS       how late a network delivery may be (default 0.25)\n"
            "  --ramp MS            open the connections over this span (default 1000)\n"
            "  --migrate R          path migrations per active connection per second (0.05)\n"
            "  --keepalive F        fraction of connections sending keep-alives (0.1)\n"
            "  --seed N             (default 1)\n"
            "  --json               the report as JSON\n"
            "  --no-progress        no progress line, even on a terminal\n");
}

static int number(const char *opt, const char *s, double lo, double hi, double *ret)
{
    return option_number("tw-sim", opt, s, lo, hi, ret);
}

int main(int argc, char **argv)
{
    S.o = (struct options){
        .conns = 100000, .seconds = 3, .rtt = 50 * MS, .jitter = 10 * MS, .loss = 0.01,
        .interval = 1000 * MS, .active_mean = 3000 * MS, .idle_timeout = 1000 * MS, .ramp = 1000 * MS, .slack = 4 * MS, .net_slack = 250 * 1000,
        .migrate = 0.05, .keepalive = 0.1, .seed = 1, .progress = isatty(2),
    };
    static const struct option longs[] = {
        {"conns", 1, 0, 'n'},     {"seconds", 1, 0, 's'},  {"sim-seconds", 1, 0, 'S'},
        {"rtt", 1, 0, 'r'},       {"jitter", 1, 0, 'j'},   {"loss", 1, 0, 'l'},
        {"interval", 1, 0, 'i'},  {"active", 1, 0, 'a'},   {"idle-timeout", 1, 0, 'I'},
        {"ramp", 1, 0, 'R'},      {"slack", 1, 0, 'L'},    {"net-slack", 1, 0, 'N'},      {"migrate", 1, 0, 'm'},   {"keepalive", 1, 0, 'k'}, {"seed", 1, 0, 'x'},
        {"json", 0, 0, 'J'},      {"no-progress", 0, 0, 'P'}, {"help", 0, 0, 'h'},
        {0, 0, 0, 0},
    };
    int ch;
    double v;
    while ((ch = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        int bad = 0;
        switch (ch) {
        case 'n': bad = number("--conns", optarg, 1, MAX_CONNS, &v); S.o.conns = (uint32_t)v; break;
        case 's': bad = number("--seconds", optarg, 0.1, 3600, &v); S.o.seconds = v; break;
        case 'S': bad = number("--sim-seconds", optarg, 1, 1e7, &v); S.o.sim_seconds = v; break;
        case 'r': bad = number("--rtt", optarg, 0.01, 60000, &v); S.o.rtt = (uint64_t)(v * 1e6); break;
        case 'j': bad = number("--jitter", optarg, 0, 60000, &v); S.o.jitter = (uint64_t)(v * 1e6); break;
        case 'l': bad = number("--loss", optarg, 0, 1, &v); S.o.loss = v; break;
        case 'i': bad = number("--interval", optarg, 0.01, 3600000, &v); S.o.interval = (uint64_t)(v * 1e6); break;
        case 'a': bad = number("--active", optarg, 0, 1e9, &v); S.o.active_mean = (uint64_t)(v * 1e6); break;
        case 'I': bad = number("--idle-timeout", optarg, 1, 1e9, &v); S.o.idle_timeout = (uint64_t)(v * 1e6); break;
        case 'N': bad = number("--net-slack", optarg, 0, 4000, &v); S.o.net_slack = (uint64_t)(v * 1e6); break;
        case 'L': bad = number("--slack", optarg, 0, 4000, &v); S.o.slack = (uint64_t)(v * 1e6); break;
        case 'R': bad = number("--ramp", optarg, 0, 1e9, &v); S.o.ramp = (uint64_t)(v * 1e6); break;
        case 'm': bad = number("--migrate", optarg, 0, 1000, &v); S.o.migrate = v; break;
        case 'k': bad = number("--keepalive", optarg, 0, 1, &v); S.o.keepalive = v; break;
        case 'x': bad = number("--seed", optarg, 0, 1e18, &v); S.o.seed = (uint64_t)v; break;
        case 'J': S.o.json = 1; break;
        case 'P': S.o.progress = 0; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        if (bad)
            return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "tw-sim: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    S.rng = S.o.seed * UINT64_C(0x9e3779b97f4a7c15) + 1;
    if (S.o.json)
        S.o.progress = 0;
    return run();
}
