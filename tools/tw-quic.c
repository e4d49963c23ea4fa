/*
 * tw-quic: real QUIC connections (ngtcp2 and GnuTLS) over loopback UDP,
 * every connection's timer on tickwheel.
 *
 * One process runs a server endpoint and a client endpoint (or one of them,
 * --role): N client connections open over a ramp, complete a TLS 1.3
 * handshake against a certificate made at start, open a bidirectional
 * stream and send --size bytes every --interval; the server echoes every
 * byte back and the client checks each one against what it sent.  A
 * fraction of the clients send once and fall silent, so that ngtcp2's idle
 * timeout closes both ends.  --loss drops datagrams at send, so loss
 * detection, probe timeouts and delayed acknowledgements fire for real.
 *
 * ngtcp2 keeps every timer of a connection behind one deadline,
 * ngtcp2_conn_get_expiry.  With --timers tickwheel (the default) that
 * deadline is one kind of the connection's tw_conn (TW_CONN_RETRANSMIT, the
 * kind for loss detection kept by the caller), and the application's send
 * schedule another (TW_CONN_PACING): the connection is one wheel timer at
 * the earliest of the two, re-armed after every read and write, lazily when
 * the deadline moves later.  With --timers libevent each connection holds
 * two libevent timer events instead, re-armed the same way: the design of
 * ngtcp2's own examples and of nghttpx (one event-loop timer per
 * connection).  Both run on the same event_base and the same code; only
 * the timers differ.  An expiry is handled only when the time read at the
 * callback is at or past ngtcp2's deadline; one that comes early is counted
 * and re-armed, and lateness is the time read at the callback minus the
 * deadline.
 *
 * --loops K runs K threads, each its own event_base and tw_loop, its own
 * SO_REUSEPORT server socket on the one port, and the client connections
 * whose id tw_conn_id_shards gives it.  The kernel picks the server socket
 * by the datagram's addresses, so every datagram of a connection reaches
 * the loop that accepted it; the server makes that agreement explicit by
 * choosing its connection IDs so that tw_conn_id_shards of their first four
 * bytes names the accepting loop.  A short-header datagram that reaches
 * another loop anyway (the reuseport group changed, or a load balancer in
 * front sent it elsewhere) is posted to its loop's inbox by that shard.
 *
 * Uses: the library through tickwheel.h alone; libevent; ngtcp2 and its
 * GnuTLS crypto helper; GnuTLS; tools/common/clock.h.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include "common/clock.h"
#include "common/number.h"
#include "tickwheel.h"

#define MS UINT64_C(1000000)
#define SEC UINT64_C(1000000000)
#define CIDLEN 8
#define MAX_LOOPS 64
#define PKT_MAX 1452
#define RECV_BATCH 32
#define HANDSHAKE_PHASE_MAX (120 * SEC)
/* The kinds of a connection's tw_conn: ngtcp2's expiry and the
 * application's next send. */
#define KIND_EXPIRY TW_CONN_RETRANSMIT
#define KIND_APP TW_CONN_PACING
/* Lateness histogram: 1 us buckets up to LATE_BUCKETS us, then the max. */
#define LATE_BUCKETS 65536
/* The echoed bytes are a fixed pseudo-random sequence of period PAT_PERIOD,
 * stored with PAT_SPAN bytes of overlap, so any run of up to PAT_SPAN bytes
 * starting anywhere in a period is one contiguous slice that never moves:
 * ngtcp2 keeps pointers to unacknowledged data, and these stay valid. */
#define PAT_PERIOD 65521
#define PAT_SPAN 65536

enum { TIMERS_TICKWHEEL, TIMERS_LIBEVENT };
enum { ROLE_BOTH, ROLE_SERVER, ROLE_CLIENT };

struct options {
    uint32_t conns;
    double seconds;
    double rate;              /* connections opened per second */
    uint32_t size;            /* bytes per send */
    uint64_t interval;
    uint64_t idle_timeout;
    double idle_fraction;     /* clients that send once, then idle out */
    double loss;
    uint32_t loops;
    uint32_t sockets;         /* client sockets per loop */
    uint32_t vanish;          /* extra clients that vanish mid-handshake */
    uint32_t junk;            /* junk datagrams sent to the server per second */
    uint32_t in_flight;       /* handshakes a loop keeps going at once */
    uint64_t slack;           /* tickwheel: how late a timer may fire */
    int timers;
    int role;
    uint16_t port;
    uint64_t seed;
    int json;
    int progress;
};

/* Per-loop counters, summed for the report. */
struct counters {
    uint64_t client_opened, client_handshakes, server_accepted, server_handshakes;
    uint64_t bytes_sent, bytes_verified, bytes_mismatched, bytes_echoed;
    uint64_t client_idle_closes, server_idle_closes, idle_incomplete;
    uint64_t handshake_timeouts, closed_error, closed_by_peer, vanished;
    uint64_t dgrams_sent, dgrams_lost, send_eagain, send_errors, dgrams_received;
    uint64_t not_quic, unknown_cid, bad_initial, read_errors, routed, route_refused;
    uint64_t junk_sent;
    uint64_t stream_frames_lost, pto_fired;
    uint64_t expiries, expiries_early, expiries_past, app_timers, timer_arms;
    uint64_t iterations, timer_iterations;
    /* Not summed: */
    uint64_t hs_first_ns, hs_last_ns;
    uint64_t late_max_ns, idle_late_max_ns;
};

struct map {
    uint64_t *keys;
    struct qconn **vals;
    size_t cap, used, tombs;
};

struct loop;

struct qconn {
    struct loop *L;
    ngtcp2_conn *q;
    gnutls_session_t tls;
    ngtcp2_crypto_conn_ref ref;
    tw_conn *tc;
    struct event *ev_expiry, *ev_app;
    struct sockaddr_in local, peer;
    int fd;
    uint32_t id;
    uint32_t client_slot;     /* client: index in its loop's table */
    uint8_t server, handshaken, quiet;
    int64_t stream;
    uint64_t next_send;       /* client: the application's next send */
    uint64_t limit;           /* client: bytes the application has queued */
    uint64_t sent;            /* bytes handed to ngtcp2 */
    uint64_t received;        /* bytes received on the stream */
    uint64_t acked;           /* server: echoed bytes acknowledged */
    uint8_t *ring;            /* server: echo buffer, ring_size bytes */
    uint32_t ring_size;
    uint32_t key;             /* client: where its bytes start in the pattern */
    uint64_t odcid;           /* server: the client's first DCID, as a map key */
    uint64_t opened_ns;
    uint64_t armed_exp;       /* the deadline last armed, and when */
    uint64_t armed_at;
};

struct routed {
    struct loop *to;
    struct sockaddr_in peer;
    size_t len;
    uint8_t data[];
};

struct loop {
    uint32_t index;
    pthread_t thread;
    struct event_base *base;
    tw_loop *tw;
    int server_fd;
    struct event *server_ev;
    int client_fds[64];
    struct event *client_evs[64];
    struct sockaddr_in client_addrs[64];
    uint32_t nclient_fds;
    struct map server_map, client_map;
    struct qconn **clients;   /* this loop's client connections, by slot */
    uint32_t *client_ids;
    uint32_t nclients, next_client;
    uint32_t in_handshake;    /* client connections opened, not through */
    struct event *ramp_ev, *stop_ev, *progress_ev, *junk_ev;
    uint64_t start_ns, end_ns;
    int junk_fd;
    uint8_t last_initial[PKT_MAX];
    uint8_t recv_bufs[RECV_BATCH][2048];
    uint64_t cpu_ns;          /* the loop thread's CPU time, steady phase */
    uint64_t steady_ns;       /* when the steady phase began */
    struct counters at_steady; /* the counters then */
    tw_loop_stats tw_at_steady;
    size_t last_initial_len;
    int stop;
    int timer_fired;          /* a connection timer ran in this iteration */
    uint64_t rng;
    struct counters k;
    uint32_t *late;           /* LATE_BUCKETS + 1 counts */
    uint64_t late_n;
    tw_loop_stats tw_stats;
    tw_conn_stats tw_conn_stats;
    int failed;
};

static struct {
    struct options o;
    struct loop loops[MAX_LOOPS];
    struct sockaddr_in server_addr;
    gnutls_certificate_credentials_t server_cred, client_cred;
    gnutls_priority_t priority;
    int verify;               /* the client checks the server's certificate */
    ngtcp2_callbacks client_cbs, server_cbs;
    uint8_t pattern[PAT_PERIOD + PAT_SPAN];
    uint64_t wall0;
    /* Progress, read by loop 0 from every loop: relaxed atomics. */
    uint64_t progress_hs, progress_bytes;
    /* Client connections done with their handshake, one way or another:
     * the steady phase begins when all are. */
    uint64_t settled;
    uint64_t steady_cpu0;     /* process CPU and context switches then */
    long steady_nvcsw0;
} G;

static void settle(struct loop *L)
{
    L->in_handshake--;
    __atomic_fetch_add(&G.settled, 1, __ATOMIC_RELAXED);
}

static const char alpn_name[] = "tw-echo";

/* ---- small helpers ----------------------------------------------------- */

static uint64_t rnd(struct loop *L)
{
    L->rng ^= L->rng >> 12;
    L->rng ^= L->rng << 25;
    L->rng ^= L->rng >> 27;
    return L->rng * UINT64_C(2685821657736338717);
}

static double rnd01(struct loop *L)
{
    return (double)(rnd(L) >> 11) / 9007199254740992.0;
}

static uint32_t shard_of(uint32_t id)
{
    uint32_t s = 0;
    tw_conn_id_shards(1, &id, G.o.loops, &s);
    return s;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t cid_key(const uint8_t *p)
{
    uint64_t k;
    memcpy(&k, p, sizeof(k));
    return k;
}

static void late_add(struct loop *L, uint64_t late_ns)
{
    uint64_t us = late_ns / 1000;
    L->late[us < LATE_BUCKETS ? us : LATE_BUCKETS]++;
    L->late_n++;
    if (late_ns > L->k.late_max_ns)
        L->k.late_max_ns = late_ns;
}

/* ---- the connection-ID map: open addressing on 64-bit keys ------------- */

#define KEY_EMPTY 0
#define KEY_TOMB 1

static size_t map_slot(uint64_t k, size_t cap)
{
    k ^= k >> 33;
    k *= UINT64_C(0xff51afd7ed558ccd);
    k ^= k >> 33;
    return (size_t)k & (cap - 1);
}

static struct qconn *map_get(const struct map *m, uint64_t key)
{
    if (!m->cap)
        return NULL;
    for (size_t i = map_slot(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == key)
            return m->vals[i];
        if (m->keys[i] == KEY_EMPTY)
            return NULL;
    }
}

static int map_put(struct map *m, uint64_t key, struct qconn *c);

static int map_grow(struct map *m)
{
    struct map n = {0};
    n.cap = m->cap ? (m->used * 4 > m->cap ? m->cap * 2 : m->cap) : 1024;
    n.keys = calloc(n.cap, sizeof(*n.keys));
    n.vals = calloc(n.cap, sizeof(*n.vals));
    if (!n.keys || !n.vals) {
        free(n.keys);
        free(n.vals);
        return -1;
    }
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i] > KEY_TOMB)
            map_put(&n, m->keys[i], m->vals[i]);
    free(m->keys);
    free(m->vals);
    *m = n;
    return 0;
}

static int map_put(struct map *m, uint64_t key, struct qconn *c)
{
    if ((m->used + m->tombs + 1) * 2 > m->cap && map_grow(m) < 0)
        return -1;
    size_t i = map_slot(key, m->cap);
    while (m->keys[i] > KEY_TOMB) {
        if (m->keys[i] == key) {
            m->vals[i] = c;
            return 0;
        }
        i = (i + 1) & (m->cap - 1);
    }
    if (m->keys[i] == KEY_TOMB)
        m->tombs--;
    m->keys[i] = key;
    m->vals[i] = c;
    m->used++;
    return 0;
}

static void map_del(struct map *m, uint64_t key, const struct qconn *c)
{
    if (!m->cap)
        return;
    for (size_t i = map_slot(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == key) {
            if (m->vals[i] == c) {
                m->keys[i] = KEY_TOMB;
                m->vals[i] = NULL;
                m->used--;
                m->tombs++;
            }
            return;
        }
        if (m->keys[i] == KEY_EMPTY)
            return;
    }
}

static void map_free(struct map *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof(*m));
}

/* ---- datagrams --------------------------------------------------------- */

static void send_dgram(struct loop *L, int fd, const struct sockaddr_in *to, const uint8_t *p,
                       size_t n)
{
    if (G.o.loss > 0 && rnd01(L) < G.o.loss) {
        L->k.dgrams_lost++;
        return;
    }
    ssize_t r;
    do
        r = sendto(fd, p, n, 0, (const struct sockaddr *)to, sizeof(*to));
    while (r < 0 && errno == EINTR);
    if (r < 0) {
        /* A full socket buffer drops the datagram, as the network would. */
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
            L->k.send_eagain++;
        else
            L->k.send_errors++;
        return;
    }
    L->k.dgrams_sent++;
}

/* ---- timers: the two designs ------------------------------------------- */

/* Holds ngtcp2's deadline: after every read, write and expiry. */
static void arm_expiry(struct qconn *c)
{
    uint64_t exp = ngtcp2_conn_get_expiry(c->q);
    c->L->k.timer_arms++;
    if (exp != c->armed_exp) {
        c->armed_exp = exp;
        c->armed_at = mono_ns();
    }
    if (G.o.timers == TIMERS_TICKWHEEL) {
        if (exp == UINT64_MAX)
            tw_conn_disarm(c->tc, KIND_EXPIRY);
        else
            tw_conn_arm(c->tc, KIND_EXPIRY, exp);
        return;
    }
    if (exp == UINT64_MAX) {
        event_del(c->ev_expiry);
        return;
    }
    uint64_t now = mono_ns();
    uint64_t us = exp > now ? (exp - now + 999) / 1000 : 0;
    struct timeval tv = {(time_t)(us / 1000000), (suseconds_t)(us % 1000000)};
    event_add(c->ev_expiry, &tv);
}

static void arm_app(struct qconn *c)
{
    if (G.o.timers == TIMERS_TICKWHEEL) {
        tw_conn_arm(c->tc, KIND_APP, c->next_send);
        return;
    }
    uint64_t now = mono_ns();
    uint64_t us = c->next_send > now ? (c->next_send - now + 999) / 1000 : 0;
    struct timeval tv = {(time_t)(us / 1000000), (suseconds_t)(us % 1000000)};
    event_add(c->ev_app, &tv);
}

/* ---- connections ------------------------------------------------------- */

static void conn_delete(struct qconn *c)
{
    struct loop *L = c->L;
    if (c->stream >= 0)
        L->k.stream_frames_lost += ngtcp2_conn_get_stream_loss_count(c->q, c->stream);
    size_t n = ngtcp2_conn_get_num_scid(c->q);
    ngtcp2_cid scids[16];
    if (n > 16)
        n = 16;
    n = ngtcp2_conn_get_scid(c->q, scids);
    struct map *m = c->server ? &L->server_map : &L->client_map;
    for (size_t i = 0; i < n && i < 16; i++)
        if (scids[i].datalen == CIDLEN)
            map_del(m, cid_key(scids[i].data), c);
    if (c->server && c->odcid)
        map_del(m, c->odcid, c);
    if (!c->server)
        L->clients[c->client_slot] = NULL;
    ngtcp2_conn_del(c->q);
    gnutls_deinit(c->tls);
    if (c->tc)
        tw_conn_free(c->tc);
    if (c->ev_expiry)
        event_free(c->ev_expiry);
    if (c->ev_app)
        event_free(c->ev_app);
    free(c->ring);
    free(c);
}

/* Ends a connection after an error of ngtcp2's: a CONNECTION_CLOSE unless
 * the connection is past sending one, then the connection is gone. */
static void conn_close(struct qconn *c, int err)
{
    struct loop *L = c->L;
    if (!c->server && !c->handshaken)
        settle(L);
    if (err == NGTCP2_ERR_IDLE_CLOSE) {
        if (c->server) {
            L->k.server_idle_closes++;
        } else {
            L->k.client_idle_closes++;
            if (c->quiet && c->received != c->limit)
                L->k.idle_incomplete++;
        }
    } else if (err == NGTCP2_ERR_HANDSHAKE_TIMEOUT) {
        L->k.handshake_timeouts++;
    } else if (err == NGTCP2_ERR_DRAINING || err == NGTCP2_ERR_DROP_CONN) {
        L->k.closed_by_peer++;
    } else {
        L->k.closed_error++;
    }
    if (err != NGTCP2_ERR_IDLE_CLOSE && err != NGTCP2_ERR_DRAINING &&
        err != NGTCP2_ERR_DROP_CONN && err != NGTCP2_ERR_HANDSHAKE_TIMEOUT &&
        !ngtcp2_conn_is_in_closing_period(c->q) && !ngtcp2_conn_is_in_draining_period(c->q)) {
        ngtcp2_connection_close_error ce;
        ngtcp2_connection_close_error_default(&ce);
        if (err == NGTCP2_ERR_CRYPTO)
            ngtcp2_connection_close_error_set_transport_error_tls_alert(
                &ce, ngtcp2_conn_get_tls_alert(c->q), NULL, 0);
        else
            ngtcp2_connection_close_error_set_transport_error_liberr(&ce, err, NULL, 0);
        uint8_t buf[PKT_MAX];
        ngtcp2_path_storage ps;
        ngtcp2_path_storage_zero(&ps);
        ngtcp2_pkt_info pi;
        ngtcp2_ssize n = ngtcp2_conn_write_connection_close(c->q, &ps.path, &pi, buf, sizeof(buf),
                                                            &ce, mono_ns());
        if (n > 0)
            send_dgram(L, c->fd, &c->peer, buf, (size_t)n);
    }
    conn_delete(c);
}

/* What the connection has to send on its stream, as one slice. */
static size_t pending(const struct qconn *c, ngtcp2_vec *v)
{
    if (c->stream < 0)
        return 0;
    if (c->server) {
        uint64_t n = c->received - c->sent;
        uint32_t at = (uint32_t)(c->sent & (c->ring_size - 1));
        if (n > c->ring_size - at)
            n = c->ring_size - at;
        v->base = c->ring + at;
        v->len = (size_t)n;
        return (size_t)n;
    }
    uint64_t n = c->limit - c->sent;
    if (n > PAT_SPAN)
        n = PAT_SPAN;
    v->base = G.pattern + (c->key + c->sent) % PAT_PERIOD;
    v->len = (size_t)n;
    return (size_t)n;
}

/* Writes every packet ngtcp2 has to send now, then re-arms its deadline.
 * Returns -1 when the connection is gone. */
static int conn_write(struct qconn *c)
{
    struct loop *L = c->L;
    uint8_t buf[PKT_MAX];
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_pkt_info pi;
    uint64_t ts = mono_ns();
    int blocked = 0;
    for (;;) {
        ngtcp2_vec v;
        size_t nv = !blocked && pending(c, &v) > 0;
        ngtcp2_ssize ndatalen = -1;
        ngtcp2_ssize n = ngtcp2_conn_writev_stream(c->q, &ps.path, &pi, buf, sizeof(buf),
                                                   &ndatalen, NGTCP2_WRITE_STREAM_FLAG_NONE,
                                                   nv ? c->stream : -1, nv ? &v : NULL, nv, ts);
        if (n < 0) {
            if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED || n == NGTCP2_ERR_STREAM_SHUT_WR) {
                blocked = 1;
                continue;
            }
            conn_close(c, (int)n);
            return -1;
        }
        if (ndatalen > 0) {
            c->sent += (uint64_t)ndatalen;
            if (!c->server)
                L->k.bytes_sent += (uint64_t)ndatalen;
        }
        if (n == 0)
            break;
        if (!c->server && !c->handshaken && G.o.junk && !L->last_initial_len &&
            (size_t)n <= sizeof(L->last_initial)) {
            memcpy(L->last_initial, buf, (size_t)n);
            L->last_initial_len = (size_t)n;
        }
        send_dgram(L, c->fd, &c->peer, buf, (size_t)n);
    }
    ngtcp2_conn_update_pkt_tx_time(c->q, ts);
    arm_expiry(c);
    return 0;
}

/* ngtcp2's deadline went off.  Returns -1 when the connection is gone. */
static int on_expiry(struct qconn *c)
{
    struct loop *L = c->L;
    L->timer_fired = 1;
    uint64_t exp = ngtcp2_conn_get_expiry(c->q);
    uint64_t ts = mono_ns();
    if (ts < exp) {
        /* Woken before ngtcp2's deadline: not handled, armed again. */
        if (exp != UINT64_MAX)
            L->k.expiries_early++;
        arm_expiry(c);
        return 0;
    }
    L->k.expiries++;
    /* Lateness counts from the deadline, or from when it was armed if
     * ngtcp2 gave one already past: no timer can do better. */
    uint64_t from = exp;
    if (exp == c->armed_exp && c->armed_at > exp) {
        from = c->armed_at;
        L->k.expiries_past++;
    }
    late_add(L, ts - from);
    ngtcp2_conn_stat st;
    ngtcp2_conn_get_conn_stat(c->q, &st);
    size_t pto = st.pto_count;
    int rv = ngtcp2_conn_handle_expiry(c->q, ts);
    if (rv != 0) {
        if (rv == NGTCP2_ERR_IDLE_CLOSE && ts - exp > L->k.idle_late_max_ns)
            L->k.idle_late_max_ns = ts - exp;
        conn_close(c, rv);
        return -1;
    }
    ngtcp2_conn_get_conn_stat(c->q, &st);
    if (st.pto_count > pto)
        L->k.pto_fired++;
    return conn_write(c);
}

/* The application's schedule: --size more bytes every --interval.
 * Returns -1 when the connection is gone. */
static int on_app(struct qconn *c)
{
    c->L->timer_fired = 1;
    c->L->k.app_timers++;
    if (c->quiet)
        return 0;
    c->limit += G.o.size;
    c->next_send += G.o.interval;
    arm_app(c);
    return conn_write(c);
}

static void on_tw_conn(const tw_conn_event *ev, void *userdata)
{
    struct qconn *c = userdata;
    uint32_t fired = ev->events[0];
    /* The expiry first: a write for the application moves ngtcp2's
     * deadline, and the fired bit would then be stale. */
    if ((fired & TW_CONN_BIT(KIND_EXPIRY)) && on_expiry(c) < 0)
        return;
    if (fired & TW_CONN_BIT(KIND_APP))
        on_app(c);
}

static void on_ev_expiry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    on_expiry(arg);
}

static void on_ev_app(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    on_app(arg);
}

/* ---- ngtcp2 callbacks -------------------------------------------------- */

static ngtcp2_conn *get_conn(ngtcp2_crypto_conn_ref *ref)
{
    return ((struct qconn *)ref->user_data)->q;
}

static void cb_rand(uint8_t *dest, size_t len, const ngtcp2_rand_ctx *ctx)
{
    (void)ctx;
    gnutls_rnd(GNUTLS_RND_NONCE, dest, len);
}

/* A new connection ID: for a server, one whose shard is this loop. */
static int make_cid(struct qconn *c, uint8_t *cid)
{
    struct loop *L = c->L;
    struct map *m = c->server ? &L->server_map : &L->client_map;
    for (int tries = 0; tries < 1000; tries++) {
        uint64_t r = rnd(L);
        memcpy(cid, &r, CIDLEN);
        if (!c->server) {
            cid[0] = (uint8_t)(c->id >> 24), cid[1] = (uint8_t)(c->id >> 16);
            cid[2] = (uint8_t)(c->id >> 8), cid[3] = (uint8_t)c->id;
        } else if (G.o.loops > 1 && shard_of(be32(cid)) != L->index) {
            continue;
        }
        uint64_t k = cid_key(cid);
        if (k > KEY_TOMB && !map_get(m, k))
            return map_put(m, k, c);
    }
    return -1;
}

static int cb_new_cid(ngtcp2_conn *q, ngtcp2_cid *cid, uint8_t *token, size_t cidlen,
                      void *user_data)
{
    (void)q;
    struct qconn *c = user_data;
    if (cidlen != CIDLEN || make_cid(c, cid->data) < 0)
        return NGTCP2_ERR_CALLBACK_FAILURE;
    cid->datalen = CIDLEN;
    gnutls_rnd(GNUTLS_RND_NONCE, token, NGTCP2_STATELESS_RESET_TOKENLEN);
    return 0;
}

static int cb_remove_cid(ngtcp2_conn *q, const ngtcp2_cid *cid, void *user_data)
{
    (void)q;
    struct qconn *c = user_data;
    if (cid->datalen == CIDLEN)
        map_del(c->server ? &c->L->server_map : &c->L->client_map, cid_key(cid->data), c);
    return 0;
}

static int cb_handshake_completed(ngtcp2_conn *q, void *user_data)
{
    (void)q;
    struct qconn *c = user_data;
    struct loop *L = c->L;
    c->handshaken = 1;
    uint64_t now = mono_ns();
    if (c->server) {
        L->k.server_handshakes++;
    } else {
        L->k.client_handshakes++;
        __atomic_fetch_add(&G.progress_hs, 1, __ATOMIC_RELAXED);
        settle(L);
    }
    if (!L->k.hs_first_ns)
        L->k.hs_first_ns = now;
    L->k.hs_last_ns = now;
    return 0;
}

/* The client opens its stream once the server allows one. */
static int cb_extend_streams(ngtcp2_conn *q, uint64_t max, void *user_data)
{
    (void)max;
    struct qconn *c = user_data;
    if (c->server || c->stream >= 0)
        return 0;
    if (ngtcp2_conn_open_bidi_stream(q, &c->stream, NULL) != 0)
        return 0;
    c->limit = G.o.size;
    c->next_send = mono_ns() + G.o.interval;
    arm_app(c);
    return 0;
}

static int cb_stream_open(ngtcp2_conn *q, int64_t stream_id, void *user_data)
{
    (void)q;
    struct qconn *c = user_data;
    if (c->server && c->stream < 0)
        c->stream = stream_id;
    return 0;
}

static int cb_recv_stream(ngtcp2_conn *q, uint32_t flags, int64_t stream_id, uint64_t offset,
                          const uint8_t *data, size_t len, void *user_data, void *stream_data)
{
    (void)flags, (void)stream_data;
    struct qconn *c = user_data;
    struct loop *L = c->L;
    if (stream_id != c->stream)
        return 0;
    if (c->server) {
        /* Flow control keeps received-but-unacknowledged within the ring. */
        if (offset != c->received || c->received + len - c->acked > c->ring_size)
            return NGTCP2_ERR_CALLBACK_FAILURE;
        for (size_t done = 0; done < len;) {
            uint32_t at = (uint32_t)((c->received + done) & (c->ring_size - 1));
            size_t n = len - done;
            if (n > c->ring_size - at)
                n = c->ring_size - at;
            memcpy(c->ring + at, data + done, n);
            done += n;
        }
        c->received += len;
        return 0;
    }
    /* The client: every echoed byte against what it sent at that offset. */
    if (offset + len > c->sent || memcmp(data, G.pattern + (c->key + offset) % PAT_PERIOD, len))
        L->k.bytes_mismatched += len;
    else
        L->k.bytes_verified += len;
    __atomic_fetch_add(&G.progress_bytes, len, __ATOMIC_RELAXED);
    c->received += len;
    ngtcp2_conn_extend_max_stream_offset(q, stream_id, len);
    ngtcp2_conn_extend_max_offset(q, len);
    return 0;
}

/* The server frees echoed bytes once acknowledged, and only then lets the
 * client send as many more. */
static int cb_acked(ngtcp2_conn *q, int64_t stream_id, uint64_t offset, uint64_t len,
                    void *user_data, void *stream_data)
{
    (void)offset, (void)stream_data;
    struct qconn *c = user_data;
    if (!c->server || stream_id != c->stream)
        return 0;
    c->acked += len;
    c->L->k.bytes_echoed += len;
    ngtcp2_conn_extend_max_stream_offset(q, stream_id, len);
    ngtcp2_conn_extend_max_offset(q, len);
    return 0;
}

static void setup_callbacks(void)
{
    ngtcp2_callbacks common = {
        .recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb,
        .encrypt = ngtcp2_crypto_encrypt_cb,
        .decrypt = ngtcp2_crypto_decrypt_cb,
        .hp_mask = ngtcp2_crypto_hp_mask_cb,
        .update_key = ngtcp2_crypto_update_key_cb,
        .delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb,
        .delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb,
        .get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb,
        .version_negotiation = ngtcp2_crypto_version_negotiation_cb,
        .rand = cb_rand,
        .get_new_connection_id = cb_new_cid,
        .remove_connection_id = cb_remove_cid,
        .handshake_completed = cb_handshake_completed,
        .recv_stream_data = cb_recv_stream,
    };
    G.client_cbs = common;
    G.client_cbs.client_initial = ngtcp2_crypto_client_initial_cb;
    G.client_cbs.recv_retry = ngtcp2_crypto_recv_retry_cb;
    G.client_cbs.extend_max_local_streams_bidi = cb_extend_streams;
    G.server_cbs = common;
    G.server_cbs.recv_client_initial = ngtcp2_crypto_recv_client_initial_cb;
    G.server_cbs.stream_open = cb_stream_open;
    G.server_cbs.acked_stream_data_offset = cb_acked;
}

/* ---- TLS --------------------------------------------------------------- */

static int tls_session(struct qconn *c)
{
    unsigned flags = (c->server ? GNUTLS_SERVER : GNUTLS_CLIENT) | GNUTLS_ENABLE_EARLY_DATA |
                     GNUTLS_NO_END_OF_EARLY_DATA;
    if (gnutls_init(&c->tls, flags) < 0)
        return -1;
    gnutls_datum_t alpn = {(unsigned char *)alpn_name, sizeof(alpn_name) - 1};
    int r = gnutls_priority_set(c->tls, G.priority);
    if (r >= 0)
        r = c->server ? ngtcp2_crypto_gnutls_configure_server_session(c->tls)
                      : ngtcp2_crypto_gnutls_configure_client_session(c->tls);
    if (r >= 0)
        r = gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE,
                                   c->server ? G.server_cred : G.client_cred);
    if (r >= 0)
        r = gnutls_alpn_set_protocols(c->tls, &alpn, 1, GNUTLS_ALPN_MANDATORY);
    if (r >= 0 && !c->server) {
        r = gnutls_server_name_set(c->tls, GNUTLS_NAME_DNS, "localhost", 9);
        if (r >= 0 && G.verify)
            gnutls_session_set_verify_cert(c->tls, "localhost", 0);
    }
    if (r < 0) {
        gnutls_deinit(c->tls);
        c->tls = NULL;
        return -1;
    }
    c->ref.get_conn = get_conn;
    c->ref.user_data = c;
    gnutls_session_set_ptr(c->tls, &c->ref);
    return 0;
}

/* A self-signed Ed25519 certificate for localhost, made now: the cheapest
 * signature GnuTLS offers in TLS 1.3, a quarter less CPU per handshake
 * than ECDSA P-256 here. */
static int tls_init(void)
{
    gnutls_x509_privkey_t key = NULL;
    gnutls_x509_crt_t crt = NULL;
    int r = gnutls_x509_privkey_init(&key);
    if (r >= 0)
        r = gnutls_x509_privkey_generate(key, GNUTLS_PK_EDDSA_ED25519,
                                         GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_ED25519), 0);
    if (r >= 0)
        r = gnutls_x509_crt_init(&crt);
    time_t now = time(NULL);
    unsigned char serial[8];
    gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial));
    serial[0] &= 0x7f;
    if (r >= 0)
        r = gnutls_x509_crt_set_version(crt, 3);
    if (r >= 0)
        r = gnutls_x509_crt_set_serial(crt, serial, sizeof(serial));
    if (r >= 0)
        r = gnutls_x509_crt_set_activation_time(crt, now - 3600);
    if (r >= 0)
        r = gnutls_x509_crt_set_expiration_time(crt, now + 7 * 86400);
    if (r >= 0)
        r = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, "localhost", 9);
    if (r >= 0)
        r = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, "localhost", 9,
                                                 GNUTLS_FSAN_SET);
    if (r >= 0)
        r = gnutls_x509_crt_set_key(crt, key);
    if (r >= 0)
        r = gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA512, 0);
    if (r >= 0)
        r = gnutls_certificate_allocate_credentials(&G.server_cred);
    if (r >= 0)
        r = gnutls_certificate_set_x509_key(G.server_cred, &crt, 1, key);
    if (r >= 0)
        r = gnutls_certificate_allocate_credentials(&G.client_cred);
    /* One process: the client trusts the certificate and checks it. */
    if (r >= 0 && G.o.role == ROLE_BOTH) {
        r = gnutls_certificate_set_x509_trust(G.client_cred, &crt, 1);
        G.verify = r >= 0;
    }
    if (r >= 0)
        r = gnutls_priority_init(&G.priority,
                                 "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:"
                                 "+AES-256-GCM:+CHACHA20-POLY1305:-GROUP-ALL:+GROUP-X25519:"
                                 "+GROUP-SECP256R1:%DISABLE_TLS13_COMPAT_MODE",
                                 NULL);
    if (crt)
        gnutls_x509_crt_deinit(crt);
    if (key)
        gnutls_x509_privkey_deinit(key);
    if (r < 0) {
        fprintf(stderr, "tw-quic: TLS setup: %s\n", gnutls_strerror(r));
        return -1;
    }
    return 0;
}

static void tls_free(void)
{
    if (G.priority)
        gnutls_priority_deinit(G.priority);
    if (G.server_cred)
        gnutls_certificate_free_credentials(G.server_cred);
    if (G.client_cred)
        gnutls_certificate_free_credentials(G.client_cred);
}

/* ---- creating connections ---------------------------------------------- */

static struct qconn *conn_alloc(struct loop *L, int server, uint32_t id)
{
    struct qconn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->L = L;
    c->server = (uint8_t)server;
    c->id = id;
    c->stream = -1;
    c->opened_ns = mono_ns();
    return c;
}

/* The connection's timers, once its id is known: one tw_conn, or two
 * libevent timer events (a server sends only when it has to echo). */
static int conn_timers(struct qconn *c)
{
    struct loop *L = c->L;
    if (G.o.timers == TIMERS_TICKWHEEL) {
        if (tw_conn_new(L->tw, c->id, on_tw_conn, c, &c->tc) < 0)
            return -1;
        if (G.o.slack) {
            tw_conn_set_slack(c->tc, KIND_EXPIRY, G.o.slack);
            tw_conn_set_slack(c->tc, KIND_APP, G.o.slack);
        }
        return 0;
    }
    c->ev_expiry = evtimer_new(L->base, on_ev_expiry, c);
    if (!c->server)
        c->ev_app = evtimer_new(L->base, on_ev_app, c);
    return !c->ev_expiry || (!c->server && !c->ev_app) ? -1 : 0;
}

/* Frees what conn_alloc and a failed setup left, before ngtcp2 has it. */
static void conn_abandon(struct qconn *c)
{
    if (c->tls)
        gnutls_deinit(c->tls);
    if (c->tc)
        tw_conn_free(c->tc);
    if (c->ev_expiry)
        event_free(c->ev_expiry);
    if (c->ev_app)
        event_free(c->ev_app);
    free(c->ring);
    free(c);
}

static void settings_for(ngtcp2_settings *s, ngtcp2_transport_params *p)
{
    ngtcp2_settings_default(s);
    s->initial_ts = mono_ns();
    s->no_pmtud = 1;
    s->max_tx_udp_payload_size = PKT_MAX;
    s->handshake_timeout = 10 * SEC;
    /* Loopback: a first probe after 3 x 50 ms rather than after a second. */
    s->initial_rtt = 50 * MS;
    ngtcp2_transport_params_default(p);
    p->max_idle_timeout = G.o.idle_timeout;
    p->active_connection_id_limit = 2;
}

static int client_open(struct loop *L, uint32_t slot)
{
    uint32_t id = L->client_ids[slot];
    struct qconn *c = conn_alloc(L, 0, id);
    if (!c)
        return -1;
    if (conn_timers(c) < 0) {
        conn_abandon(c);
        return -1;
    }
    c->client_slot = slot;
    c->key = (uint32_t)(rnd(L) % PAT_PERIOD);
    c->quiet = rnd01(L) < G.o.idle_fraction;
    uint32_t s = slot % L->nclient_fds;
    c->fd = L->client_fds[s];
    c->local = L->client_addrs[s];
    c->peer = G.server_addr;
    ngtcp2_cid dcid, scid;
    dcid.datalen = CIDLEN;
    gnutls_rnd(GNUTLS_RND_NONCE, dcid.data, CIDLEN);
    scid.datalen = CIDLEN;
    if (make_cid(c, scid.data) < 0) {
        conn_abandon(c);
        return -1;
    }
    ngtcp2_path path = {
        {(ngtcp2_sockaddr *)&c->local, sizeof(c->local)},
        {(ngtcp2_sockaddr *)&c->peer, sizeof(c->peer)},
        NULL,
    };
    ngtcp2_settings st;
    ngtcp2_transport_params tp;
    settings_for(&st, &tp);
    tp.initial_max_stream_data_bidi_local = 256 * 1024;
    tp.initial_max_data = 256 * 1024;
    if (tls_session(c) < 0 ||
        ngtcp2_conn_client_new(&c->q, &dcid, &scid, &path, NGTCP2_PROTO_VER_V1, &G.client_cbs,
                               &st, &tp, NULL, c) != 0) {
        map_del(&L->client_map, cid_key(scid.data), c);
        conn_abandon(c);
        return -1;
    }
    ngtcp2_conn_set_tls_native_handle(c->q, c->tls);
    L->clients[slot] = c;
    L->k.client_opened++;
    L->in_handshake++;
    if (conn_write(c) < 0)
        return 0;
    if (id > G.o.conns) {
        /* A client that vanishes mid-handshake: its first flight is out,
         * then it is gone without a word. */
        L->k.vanished++;
        settle(L);
        conn_delete(c);
    }
    return 0;
}

static struct qconn *server_accept(struct loop *L, const uint8_t *data, size_t len,
                                   const struct sockaddr_in *peer)
{
    ngtcp2_pkt_hd hd;
    if (ngtcp2_accept(&hd, data, len) != 0 || hd.dcid.datalen != CIDLEN ||
        cid_key(hd.dcid.data) <= KEY_TOMB) {
        L->k.bad_initial++;
        return NULL;
    }
    struct qconn *c = conn_alloc(L, 1, 0);
    if (!c)
        return NULL;
    c->fd = L->server_fd;
    c->local = G.server_addr;
    c->peer = *peer;
    ngtcp2_cid scid;
    scid.datalen = CIDLEN;
    if (make_cid(c, scid.data) < 0) {
        conn_abandon(c);
        return NULL;
    }
    c->id = be32(scid.data);
    if (conn_timers(c) < 0) {
        map_del(&L->server_map, cid_key(scid.data), c);
        conn_abandon(c);
        return NULL;
    }
    /* The ring holds what is echoed until acknowledged; flow control keeps
     * the client within it. */
    c->ring_size = 4096;
    while (c->ring_size < 4 * G.o.size && c->ring_size < (1u << 24))
        c->ring_size *= 2;
    c->ring = malloc(c->ring_size);
    ngtcp2_path path = {
        {(ngtcp2_sockaddr *)&c->local, sizeof(c->local)},
        {(ngtcp2_sockaddr *)&c->peer, sizeof(c->peer)},
        NULL,
    };
    ngtcp2_settings st;
    ngtcp2_transport_params tp;
    settings_for(&st, &tp);
    tp.initial_max_streams_bidi = 1;
    tp.initial_max_stream_data_bidi_remote = c->ring_size;
    tp.initial_max_data = c->ring_size;
    tp.original_dcid = hd.dcid;
    if (!c->ring || tls_session(c) < 0 ||
        ngtcp2_conn_server_new(&c->q, &hd.scid, &scid, &path, hd.version, &G.server_cbs, &st, &tp,
                               NULL, c) != 0) {
        map_del(&L->server_map, cid_key(scid.data), c);
        conn_abandon(c);
        return NULL;
    }
    ngtcp2_conn_set_tls_native_handle(c->q, c->tls);
    c->odcid = cid_key(hd.dcid.data);
    if (map_put(&L->server_map, c->odcid, c) < 0) {
        c->odcid = 0;
        conn_delete(c);
        return NULL;
    }
    L->k.server_accepted++;
    return c;
}

/* ---- receiving --------------------------------------------------------- */

static void conn_read(struct qconn *c, const uint8_t *data, size_t len,
                      const struct sockaddr_in *from)
{
    ngtcp2_path path = {
        {(ngtcp2_sockaddr *)&c->local, sizeof(c->local)},
        {(ngtcp2_sockaddr *)from, sizeof(*from)},
        NULL,
    };
    ngtcp2_pkt_info pi = {0};
    int rv = ngtcp2_conn_read_pkt(c->q, &path, &pi, data, len, mono_ns());
    if (rv != 0) {
        if (rv == NGTCP2_ERR_DISCARD_PKT) {
            c->L->k.read_errors++;
            conn_write(c);
            return;
        }
        conn_close(c, rv);
        return;
    }
    conn_write(c);
}

static void route_run(tw_loop *tw, int status, void *userdata);

static void server_dgram(struct loop *L, const uint8_t *data, size_t len,
                         const struct sockaddr_in *from)
{
    ngtcp2_version_cid vc;
    int rv = ngtcp2_pkt_decode_version_cid(&vc, data, len, CIDLEN);
    if (rv != 0) {
        /* Not QUIC, cut short, or a version this server does not speak
         * (answered by nothing: counted and dropped). */
        L->k.not_quic++;
        return;
    }
    struct qconn *c = vc.dcidlen == CIDLEN ? map_get(&L->server_map, cid_key(vc.dcid)) : NULL;
    if (c) {
        conn_read(c, data, len, from);
        return;
    }
    int long_header = data[0] & 0x80;
    if (!long_header && vc.dcidlen == CIDLEN && G.o.loops > 1) {
        uint32_t s = shard_of(be32(vc.dcid));
        if (s != L->index) {
            struct routed *r = malloc(sizeof(*r) + len);
            if (r) {
                r->to = &G.loops[s];
                r->peer = *from;
                r->len = len;
                memcpy(r->data, data, len);
                if (tw_loop_post(G.loops[s].tw, route_run, r) == 0) {
                    L->k.routed++;
                    return;
                }
                free(r);
            }
            L->k.route_refused++;
            return;
        }
    }
    if (!long_header) {
        L->k.unknown_cid++;
        return;
    }
    c = server_accept(L, data, len, from);
    if (c)
        conn_read(c, data, len, from);
}

static void route_run(tw_loop *tw, int status, void *userdata)
{
    (void)tw;
    struct routed *r = userdata;
    if (status == 0) {
        struct qconn *c = map_get(&r->to->server_map, cid_key(r->data + 1));
        if (c)
            conn_read(c, r->data, r->len, &r->peer);
        else
            r->to->k.unknown_cid++;
    }
    free(r);
}

static void client_dgram(struct loop *L, const uint8_t *data, size_t len,
                         const struct sockaddr_in *from)
{
    ngtcp2_version_cid vc;
    if (ngtcp2_pkt_decode_version_cid(&vc, data, len, CIDLEN) != 0) {
        L->k.not_quic++;
        return;
    }
    struct qconn *c = vc.dcidlen == CIDLEN ? map_get(&L->client_map, cid_key(vc.dcid)) : NULL;
    if (!c) {
        L->k.unknown_cid++;
        return;
    }
    conn_read(c, data, len, from);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct loop *L = arg;
    int server = fd == L->server_fd;
    uint8_t(*bufs)[2048] = L->recv_bufs;
    struct mmsghdr msgs[RECV_BATCH];
    struct iovec iov[RECV_BATCH];
    struct sockaddr_in from[RECV_BATCH];
    /* A bounded number of batches per readiness, so one busy socket does
     * not starve the others or the timers. */
    for (int round = 0; round < 8; round++) {
        for (int i = 0; i < RECV_BATCH; i++) {
            iov[i].iov_base = bufs[i];
            iov[i].iov_len = sizeof(bufs[i]);
            msgs[i].msg_hdr = (struct msghdr){
                .msg_name = &from[i],
                .msg_namelen = sizeof(from[i]),
                .msg_iov = &iov[i],
                .msg_iovlen = 1,
            };
            msgs[i].msg_len = 0;
        }
        int n = recvmmsg(fd, msgs, RECV_BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            return;
        for (int i = 0; i < n; i++) {
            L->k.dgrams_received++;
            if (server)
                server_dgram(L, bufs[i], msgs[i].msg_len, &from[i]);
            else
                client_dgram(L, bufs[i], msgs[i].msg_len, &from[i]);
        }
        if (n < RECV_BATCH)
            return;
    }
}

/* ---- the driver's own timers ------------------------------------------- */

static void on_ramp(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct loop *L = arg;
    double elapsed = (double)(mono_ns() - L->start_ns) / 1e9;
    uint64_t due = (uint64_t)(elapsed * G.o.rate / G.o.loops) + 1;
    /* At --rate, and never more than --in-flight handshakes at once: an
     * opener faster than the handshakes' CPU would only queue Initials
     * until they time out. */
    while (L->next_client < L->nclients && L->next_client < due) {
        if (L->in_handshake >= G.o.in_flight)
            break;
        uint32_t slot = L->next_client++;
        if (client_open(L, slot) < 0 && !L->clients[slot]) {
            L->k.closed_error++;
            __atomic_fetch_add(&G.settled, 1, __ATOMIC_RELAXED);
        }
    }
    if (L->next_client < L->nclients) {
        struct timeval tv = {0, 1000};
        event_add(L->ramp_ev, &tv);
    }
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct loop *L = arg;
    L->stop = 1;
}

static void on_progress(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct loop *L = arg;
    fprintf(stderr, "\r%6.1f s  %" PRIu64 " handshakes  %" PRIu64 " bytes echoed   ",
            (double)(mono_ns() - G.wall0) / 1e9,
            __atomic_load_n(&G.progress_hs, __ATOMIC_RELAXED),
            __atomic_load_n(&G.progress_bytes, __ATOMIC_RELAXED));
    struct timeval tv = {1, 0};
    event_add(L->progress_ev, &tv);
}

/* Junk at the server: bytes that are not QUIC, a client's Initial cut short,
 * and short headers naming no connection. */
static void on_junk(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    struct loop *L = arg;
    uint8_t buf[PKT_MAX];
    size_t n;
    switch (L->k.junk_sent % 3) {
    case 0:
        n = 1 + rnd(L) % 64;
        for (size_t i = 0; i < n; i++)
            buf[i] = (uint8_t)rnd(L);
        buf[0] &= 0x3f; /* the fixed bit clear: no QUIC packet */
        break;
    case 1:
        if (L->last_initial_len > 20) {
            n = 20 + rnd(L) % (L->last_initial_len - 20);
            memcpy(buf, L->last_initial, n);
            break;
        }
        /* fall through */
    default:
        n = 40;
        for (size_t i = 0; i < n; i++)
            buf[i] = (uint8_t)rnd(L);
        buf[0] = 0x40 | (buf[0] & 0x3f); /* short header, random CID */
        break;
    }
    if (sendto(L->junk_fd, buf, n, 0, (struct sockaddr *)&G.server_addr,
               sizeof(G.server_addr)) == (ssize_t)n)
        L->k.junk_sent++;
    uint64_t us = 1000000 / G.o.junk;
    struct timeval tv = {(time_t)(us / 1000000), (suseconds_t)(us % 1000000)};
    event_add(L->junk_ev, &tv);
}

/* ---- loops ------------------------------------------------------------- */

static int udp_socket(const struct sockaddr_in *addr, int reuseport, struct sockaddr_in *bound)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1, size = 4 << 20;
    if (reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    if (bind(fd, (const struct sockaddr *)addr, sizeof(*addr)) < 0) {
        close(fd);
        return -1;
    }
    socklen_t len = sizeof(*bound);
    getsockname(fd, (struct sockaddr *)bound, &len);
    return fd;
}

static int loop_init(struct loop *L)
{
    L->server_fd = -1;
    L->junk_fd = -1;
    L->rng = (G.o.seed + L->index + 1) * UINT64_C(0x9e3779b97f4a7c15) | 1;
    L->late = calloc(LATE_BUCKETS + 1, sizeof(*L->late));
    L->base = event_base_new();
    if (!L->late || !L->base)
        return -1;
    tw_loop_config lc;
    tw_loop_config_init(&lc);
    if (tw_loop_new(L->base, &lc, &L->tw) < 0)
        return -1;
    if (G.o.role != ROLE_CLIENT) {
        struct sockaddr_in bound;
        L->server_fd = udp_socket(&G.server_addr, 1, &bound);
        if (L->server_fd < 0) {
            perror("tw-quic: server socket");
            return -1;
        }
        if (!G.server_addr.sin_port)
            G.server_addr.sin_port = bound.sin_port;
        L->server_ev = event_new(L->base, L->server_fd, EV_READ | EV_PERSIST, on_readable, L);
        if (!L->server_ev || event_add(L->server_ev, NULL) < 0)
            return -1;
    }
    if (G.o.role != ROLE_SERVER) {
        struct sockaddr_in any = {.sin_family = AF_INET};
        any.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        for (uint32_t i = 0; i < G.o.sockets; i++) {
            int fd = udp_socket(&any, 0, &L->client_addrs[i]);
            if (fd < 0) {
                perror("tw-quic: client socket");
                return -1;
            }
            L->client_fds[L->nclient_fds++] = fd;
            L->client_evs[i] = event_new(L->base, fd, EV_READ | EV_PERSIST, on_readable, L);
            if (!L->client_evs[i] || event_add(L->client_evs[i], NULL) < 0)
                return -1;
        }
        /* This loop's clients: the ids whose shard it is. */
        uint32_t total = G.o.conns + G.o.vanish;
        L->clients = calloc(total, sizeof(*L->clients));
        L->client_ids = calloc(total, sizeof(*L->client_ids));
        if (!L->clients || !L->client_ids)
            return -1;
        for (uint32_t id = 1; id <= total; id++)
            if (G.o.loops == 1 || shard_of(id) == L->index)
                L->client_ids[L->nclients++] = id;
        L->ramp_ev = evtimer_new(L->base, on_ramp, L);
        if (!L->ramp_ev)
            return -1;
        if (G.o.junk && L->index == 0) {
            struct sockaddr_in b;
            L->junk_fd = udp_socket(&any, 0, &b);
            L->junk_ev = evtimer_new(L->base, on_junk, L);
            if (L->junk_fd < 0 || !L->junk_ev)
                return -1;
        }
    }
    L->stop_ev = evtimer_new(L->base, on_stop, L);
    if (!L->stop_ev)
        return -1;
    if (G.o.progress && L->index == 0) {
        L->progress_ev = evtimer_new(L->base, on_progress, L);
        if (!L->progress_ev)
            return -1;
    }
    return 0;
}

static void *loop_run(void *arg)
{
    struct loop *L = arg;
    L->start_ns = mono_ns();
    uint64_t cpu0 = 0;
    uint64_t clients = G.o.role == ROLE_SERVER ? 0 : (uint64_t)G.o.conns + G.o.vanish;
    if (L->ramp_ev) {
        struct timeval now = {0, 0};
        event_add(L->ramp_ev, &now);
    }
    if (L->progress_ev) {
        struct timeval one = {1, 0};
        event_add(L->progress_ev, &one);
    }
    if (L->junk_ev) {
        struct timeval soon = {0, 10000};
        event_add(L->junk_ev, &soon);
    }
    /* One iteration of the base per call, so wake-ups are counted alike
     * for both timer designs: iterations, and those in which a connection
     * timer ran. */
    while (!L->stop) {
        /* The handshake phase ends when every client is through its
         * handshake (or gone), or after HANDSHAKE_PHASE_MAX; then the
         * steady phase runs --seconds, and the rates are of that phase. */
        if (!L->steady_ns && (__atomic_load_n(&G.settled, __ATOMIC_RELAXED) >= clients ||
                              mono_ns() - L->start_ns > HANDSHAKE_PHASE_MAX)) {
            L->steady_ns = mono_ns();
            cpu0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
            L->at_steady = L->k;
            L->tw_at_steady.struct_size = sizeof(L->tw_at_steady);
            tw_loop_stats_get(L->tw, &L->tw_at_steady);
            memset(L->late, 0, (LATE_BUCKETS + 1) * sizeof(*L->late));
            L->late_n = 0;
            L->k.late_max_ns = 0;
            L->k.idle_late_max_ns = 0;
            if (L->index == 0) {
                struct rusage ru;
                getrusage(RUSAGE_SELF, &ru);
                G.steady_nvcsw0 = ru.ru_nvcsw;
                G.steady_cpu0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
            }
            uint64_t span = (uint64_t)(G.o.seconds * 1e9);
            struct timeval tv = {(time_t)(span / SEC), (suseconds_t)(span % SEC / 1000)};
            event_add(L->stop_ev, &tv);
        }
        L->timer_fired = 0;
        if (event_base_loop(L->base, EVLOOP_ONCE) < 0) {
            L->failed = 1;
            break;
        }
        L->k.iterations++;
        L->k.timer_iterations += (uint64_t)L->timer_fired;
    }
    L->end_ns = mono_ns();
    L->cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0;
    /* Frames lost so far by the connections still open. */
    for (uint32_t i = 0; i < L->nclients; i++) {
        struct qconn *c = L->clients[i];
        if (c && c->stream >= 0)
            L->k.stream_frames_lost += ngtcp2_conn_get_stream_loss_count(c->q, c->stream);
    }
    for (size_t i = 0; i < L->server_map.cap; i++) {
        struct qconn *c = L->server_map.vals[i];
        if (L->server_map.keys[i] > KEY_TOMB && c->stream >= 0 &&
            L->server_map.keys[i] == c->odcid)
            L->k.stream_frames_lost += ngtcp2_conn_get_stream_loss_count(c->q, c->stream);
    }
    L->tw_stats.struct_size = sizeof(L->tw_stats);
    tw_loop_stats_get(L->tw, &L->tw_stats);
    L->tw_conn_stats.struct_size = sizeof(L->tw_conn_stats);
    tw_conn_stats_get(L->tw, &L->tw_conn_stats);
    return NULL;
}

static void loop_free(struct loop *L)
{
    for (uint32_t i = 0; i < L->nclients; i++)
        if (L->clients && L->clients[i])
            conn_delete(L->clients[i]);
    /* The server connections: every one is in the map by its first DCID. */
    while (L->server_map.used) {
        struct qconn *c = NULL;
        for (size_t i = 0; i < L->server_map.cap && !c; i++)
            if (L->server_map.keys[i] > KEY_TOMB)
                c = L->server_map.vals[i];
        if (!c)
            break;
        conn_delete(c);
    }
    if (L->tw)
        tw_loop_free(L->tw);
    struct event *evs[] = {L->server_ev, L->ramp_ev, L->stop_ev, L->progress_ev, L->junk_ev};
    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
        if (evs[i])
            event_free(evs[i]);
    for (uint32_t i = 0; i < L->nclient_fds; i++) {
        if (L->client_evs[i])
            event_free(L->client_evs[i]);
        close(L->client_fds[i]);
    }
    if (L->server_fd >= 0)
        close(L->server_fd);
    if (L->junk_fd >= 0)
        close(L->junk_fd);
    if (L->base)
        event_base_free(L->base);
    map_free(&L->server_map);
    map_free(&L->client_map);
    free(L->clients);
    free(L->client_ids);
    free(L->late);
}

/* ---- the report -------------------------------------------------------- */

struct row {
    const char *name;
    double value;
    const char *unit;
};

static uint64_t late_quantile(const uint64_t *hist, uint64_t n, double q)
{
    uint64_t want = (uint64_t)((double)n * q), seen = 0;
    for (uint64_t us = 0; us <= LATE_BUCKETS; us++) {
        seen += hist[us];
        if (seen > want)
            return us;
    }
    return LATE_BUCKETS;
}

static void print_report(double wall_s, double cpu_s, struct rusage *ru)
{
    struct counters t = {0}, d = {0}; /* totals, and the steady phase's */
    double steady_s = 0, hs_phase_s = 0;
    uint64_t *hist = calloc(LATE_BUCKETS + 1, sizeof(*hist));
    uint64_t late_n = 0, tw_wakeups = 0, tw_early = 0, tw_lazy = 0, tw_arms = 0, tw_ops = 0;
    uint64_t tw_late_p99 = 0, tw_late_max = 0;
    uint32_t split[MAX_LOOPS];
    for (uint32_t l = 0; l < G.o.loops; l++) {
        struct loop *L = &G.loops[l];
        const uint64_t *a = (const uint64_t *)&L->k;
        uint64_t *b = (uint64_t *)&t;
        size_t words = offsetof(struct counters, hs_first_ns) / sizeof(uint64_t);
        const uint64_t *a0 = (const uint64_t *)&L->at_steady;
        uint64_t *db = (uint64_t *)&d;
        for (size_t i = 0; i < words; i++) {
            b[i] += a[i];
            db[i] += a[i] - a0[i];
        }
        if (L->steady_ns) {
            steady_s += (double)(L->end_ns - L->steady_ns) / 1e9 / G.o.loops;
            if ((double)(L->steady_ns - L->start_ns) / 1e9 > hs_phase_s)
                hs_phase_s = (double)(L->steady_ns - L->start_ns) / 1e9;
        }
        if (L->k.hs_first_ns && (!t.hs_first_ns || L->k.hs_first_ns < t.hs_first_ns))
            t.hs_first_ns = L->k.hs_first_ns;
        if (L->k.hs_last_ns > t.hs_last_ns)
            t.hs_last_ns = L->k.hs_last_ns;
        if (L->k.late_max_ns > t.late_max_ns)
            t.late_max_ns = L->k.late_max_ns;
        if (L->k.idle_late_max_ns > t.idle_late_max_ns)
            t.idle_late_max_ns = L->k.idle_late_max_ns;
        for (uint32_t i = 0; hist && i <= LATE_BUCKETS; i++)
            hist[i] += L->late[i];
        late_n += L->late_n;
        tw_wakeups += L->tw_stats.wakeups - L->tw_at_steady.wakeups;
        if (L->tw_stats.late_p99_ns > tw_late_p99)
            tw_late_p99 = L->tw_stats.late_p99_ns;
        if (L->tw_stats.late_max_ns > tw_late_max)
            tw_late_max = L->tw_stats.late_max_ns;
        tw_early += L->tw_conn_stats.early_wakeups;
        tw_lazy += L->tw_conn_stats.lazy_arms;
        tw_arms += L->tw_conn_stats.arms;
        tw_ops += L->tw_conn_stats.wheel_ops;
        split[l] = (uint32_t)(L->k.client_opened + L->k.server_accepted);
    }
    if (steady_s <= 0)
        steady_s = wall_s;
    cpu_s = (double)(clock_ns(CLOCK_PROCESS_CPUTIME_ID) - G.steady_cpu0) / 1e9;
    double s = steady_s;
    double hs_span = t.hs_last_ns > t.hs_first_ns ? (double)(t.hs_last_ns - t.hs_first_ns) / 1e9
                                                  : 0;
    int tw = G.o.timers == TIMERS_TICKWHEEL;
    struct row rows[] = {
        {"connections", G.o.conns, "client connections asked for"},
        {"loops", G.o.loops, ""},
        {"client_opened", (double)t.client_opened, ""},
        {"client_handshakes", (double)t.client_handshakes, ""},
        {"server_accepted", (double)t.server_accepted, ""},
        {"server_handshakes", (double)t.server_handshakes, ""},
        {"handshakes_per_s", hs_span > 0 ? (double)t.client_handshakes / hs_span : 0,
         "client handshakes, first to last"},
        {"handshake_phase_s", hs_phase_s, "until every client was through"},
        {"steady_s", steady_s, "the phase the rates below are of"},
        {"bytes_sent", (double)t.bytes_sent, "client stream bytes"},
        {"bytes_verified", (double)t.bytes_verified, "echoed back and equal"},
        {"bytes_verified_per_s", (double)d.bytes_verified / s, ""},
        {"bytes_mismatched", (double)t.bytes_mismatched, ""},
        {"bytes_echoed_acked", (double)t.bytes_echoed, "server side"},
        {"client_idle_closes", (double)t.client_idle_closes, ""},
        {"server_idle_closes", (double)t.server_idle_closes, ""},
        {"idle_incomplete", (double)t.idle_incomplete, "idled out with echo missing"},
        {"handshake_timeouts", (double)t.handshake_timeouts, ""},
        {"closed_by_peer", (double)t.closed_by_peer, ""},
        {"closed_error", (double)t.closed_error, ""},
        {"vanished", (double)t.vanished, "clients dropped mid-handshake"},
        {"datagrams_sent", (double)t.dgrams_sent, ""},
        {"datagrams_per_s", (double)d.dgrams_sent / s, "sent, both ends"},
        {"datagrams_lost", (double)t.dgrams_lost, "dropped by --loss"},
        {"datagrams_received", (double)t.dgrams_received, ""},
        {"send_eagain", (double)t.send_eagain, "socket buffer full: dropped"},
        {"send_errors", (double)t.send_errors, ""},
        {"junk_sent", (double)t.junk_sent, ""},
        {"dropped_not_quic", (double)t.not_quic, ""},
        {"dropped_unknown_cid", (double)t.unknown_cid, ""},
        {"dropped_bad_initial", (double)t.bad_initial, ""},
        {"packets_discarded", (double)t.read_errors, "by ngtcp2"},
        {"routed", (double)t.routed, "to another loop's inbox"},
        {"route_refused", (double)t.route_refused, ""},
        {"stream_frames_lost", (double)t.stream_frames_lost, "retransmitted by ngtcp2"},
        {"pto_fired", (double)t.pto_fired, ""},
        {"expiries_handled", (double)t.expiries, ""},
        {"expiries_per_s", (double)d.expiries / s, ""},
        {"expiries_early", (double)t.expiries_early, "woken before the deadline"},
        {"expiries_past", (double)t.expiries_past, "deadline already past when armed"},
        {"app_timers", (double)t.app_timers, ""},
        {"timer_arms_per_s", (double)d.timer_arms / s, "after reads, writes, expiries"},
        {"late_p50_us", (double)late_quantile(hist, late_n, 0.5),
         "handled minus deadline, steady phase"},
        {"late_p99_us", (double)late_quantile(hist, late_n, 0.99), ""},
        {"late_max_us", (double)t.late_max_ns / 1e3, ""},
        {"idle_late_max_us", (double)t.idle_late_max_ns / 1e3, ""},
        {"loop_iterations_per_s", (double)d.iterations / s, ""},
        {"timer_wakeups_per_s", (double)d.timer_iterations / s,
         "iterations running a connection timer"},
        {"context_switches_per_s", (double)(ru->ru_nvcsw - G.steady_nvcsw0) / s, "voluntary"},
        {"tw_wakeups_per_s", tw ? (double)tw_wakeups / s : 0, "timer descriptor"},
        {"tw_lazy_arms", tw ? (double)tw_lazy : 0, ""},
        {"tw_arms", tw ? (double)tw_arms : 0, ""},
        {"tw_wheel_ops", tw ? (double)tw_ops : 0, ""},
        {"tw_early_wakeups", tw ? (double)tw_early : 0, "the cost of lazy re-arm"},
        {"tw_late_p99_us", tw ? (double)tw_late_p99 / 1e3 : 0, "the loop's own, whole run"},
        {"tw_late_max_us", tw ? (double)tw_late_max / 1e3 : 0, ""},
        {"wall_s", wall_s, ""},
        {"cpu_percent", 100.0 * cpu_s / s, "of one core, steady phase"},
        {"rss_max_mib", (double)ru->ru_maxrss / 1024.0, ""},
    };
    free(hist);
    size_t n = sizeof(rows) / sizeof(rows[0]);
    if (G.o.json) {
        printf("{\n  \"timers\": \"%s\",\n  \"connections_per_loop\": [", tw ? "tickwheel"
                                                                           : "libevent");
        for (uint32_t l = 0; l < G.o.loops; l++)
            printf("%s%" PRIu32, l ? ", " : "", split[l]);
        printf("],\n  \"cpu_percent_per_loop\": [");
        for (uint32_t l = 0; l < G.o.loops; l++)
            printf("%s%.1f", l ? ", " : "", 100.0 * (double)G.loops[l].cpu_ns / 1e9 / s);
        printf("],\n");
        for (size_t i = 0; i < n; i++)
            printf("  \"%s\": %.6g%s\n", rows[i].name, rows[i].value, i + 1 < n ? "," : "");
        printf("}\n");
        return;
    }
    printf("tw-quic: %" PRIu32 " connections, %s timers, %" PRIu32
           " loop(s), loss %.3g, %" PRIu32 " bytes every %" PRIu64 " ms\n",
           G.o.conns, tw ? "tickwheel" : "libevent", G.o.loops, G.o.loss, G.o.size,
           G.o.interval / MS);
    printf("  %-26s", "connections_per_loop");
    for (uint32_t l = 0; l < G.o.loops; l++)
        printf(" %" PRIu32, split[l]);
    printf("  (client and server ends)\n");
    printf("  %-26s", "cpu_percent_per_loop");
    for (uint32_t l = 0; l < G.o.loops; l++)
        printf(" %.1f", 100.0 * (double)G.loops[l].cpu_ns / 1e9 / s);
    printf("\n");
    for (size_t i = 0; i < n; i++) {
        double v = rows[i].value;
        if (v == (double)(uint64_t)v && v < 1e15)
            printf("  %-26s %14" PRIu64 "  %s\n", rows[i].name, (uint64_t)v, rows[i].unit);
        else
            printf("  %-26s %14.2f  %s\n", rows[i].name, v, rows[i].unit);
    }
}

/* ---- options ----------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tw-quic [options]\n"
            "  --conns N            client connections (default 1000, k suffix)\n"
            "  --seconds S          real time to run (default 5)\n"
            "  --rate R             connections opened per second (default 1000)\n"
            "  --in-flight N        handshakes a loop keeps going at once (default 64)\n"
            "  --size B             bytes each client sends per interval (default 100)\n"
            "  --interval MS        between a client's sends (default 2000)\n"
            "  --idle-timeout MS    QUIC max_idle_timeout (default 5000)\n"
            "  --idle F             fraction of clients that send once, then idle (0.1)\n"
            "  --loss P             datagrams dropped at send (default 0)\n"
            "  --timers T           tickwheel (default) or libevent\n"
            "  --slack MS           tickwheel: timers may fire this late, never early (0)\n"
            "  --loops K            threads, each a loop with its own socket (default 1)\n"
            "  --sockets N          client sockets per loop (default 8)\n"
            "  --vanish N           extra clients that vanish mid-handshake (default 0)\n"
            "  --junk R             junk datagrams sent to the server per second (0)\n"
            "  --role R             both (default), server or client\n"
            "  --port P             the server's UDP port on 127.0.0.1 (default: any)\n"
            "  --seed N             (default 1)\n"
            "  --json               the report as JSON\n"
            "  --no-progress        no progress line, even on a terminal\n");
}

static int number(const char *opt, const char *s, double lo, double hi, double *ret)
{
    return option_number("tw-quic", opt, s, lo, hi, ret);
}

int main(int argc, char **argv)
{
    G.o = (struct options){
        .conns = 1000, .seconds = 5, .rate = 1000, .size = 100, .interval = 2000 * MS,
        .idle_timeout = 5000 * MS, .idle_fraction = 0.1, .loops = 1, .sockets = 8,
        .timers = TIMERS_TICKWHEEL, .seed = 1, .in_flight = 64, .progress = isatty(2),
    };
    static const struct option longs[] = {
        {"conns", 1, 0, 'n'},   {"seconds", 1, 0, 's'}, {"rate", 1, 0, 'r'},
        {"size", 1, 0, 'z'},    {"interval", 1, 0, 'i'}, {"idle-timeout", 1, 0, 'I'},
        {"idle", 1, 0, 'd'},    {"loss", 1, 0, 'l'},    {"timers", 1, 0, 't'},
        {"loops", 1, 0, 'k'},   {"sockets", 1, 0, 'S'}, {"vanish", 1, 0, 'v'},
        {"junk", 1, 0, 'j'},    {"in-flight", 1, 0, 'F'}, {"slack", 1, 0, 'L'},    {"role", 1, 0, 'R'},    {"port", 1, 0, 'p'},
        {"seed", 1, 0, 'x'},    {"json", 0, 0, 'J'},    {"no-progress", 0, 0, 'P'},
        {"help", 0, 0, 'h'},    {0, 0, 0, 0},
    };
    int ch;
    double v;
    while ((ch = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        int bad = 0;
        switch (ch) {
        case 'n': bad = number("--conns", optarg, 1, 1e6, &v); G.o.conns = (uint32_t)v; break;
        case 's': bad = number("--seconds", optarg, 0.1, 3600, &v); G.o.seconds = v; break;
        case 'r': bad = number("--rate", optarg, 1, 1e7, &v); G.o.rate = v; break;
        case 'z': bad = number("--size", optarg, 1, 1 << 20, &v); G.o.size = (uint32_t)v; break;
        case 'i': bad = number("--interval", optarg, 1, 3600000, &v); G.o.interval = (uint64_t)(v * 1e6); break;
        case 'I': bad = number("--idle-timeout", optarg, 10, 3600000, &v); G.o.idle_timeout = (uint64_t)(v * 1e6); break;
        case 'd': bad = number("--idle", optarg, 0, 1, &v); G.o.idle_fraction = v; break;
        case 'l': bad = number("--loss", optarg, 0, 0.5, &v); G.o.loss = v; break;
        case 'k': bad = number("--loops", optarg, 1, MAX_LOOPS, &v); G.o.loops = (uint32_t)v; break;
        case 'S': bad = number("--sockets", optarg, 1, 64, &v); G.o.sockets = (uint32_t)v; break;
        case 'v': bad = number("--vanish", optarg, 0, 1e5, &v); G.o.vanish = (uint32_t)v; break;
        case 'L': bad = number("--slack", optarg, 0, 4000, &v); G.o.slack = (uint64_t)(v * 1e6); break;
        case 'F': bad = number("--in-flight", optarg, 1, 1e6, &v); G.o.in_flight = (uint32_t)v; break;
        case 'j': bad = number("--junk", optarg, 0, 1e5, &v); G.o.junk = (uint32_t)v; break;
        case 'p': bad = number("--port", optarg, 1, 65535, &v); G.o.port = (uint16_t)v; break;
        case 'x': bad = number("--seed", optarg, 0, 1e18, &v); G.o.seed = (uint64_t)v; break;
        case 't':
            if (!strcmp(optarg, "tickwheel"))
                G.o.timers = TIMERS_TICKWHEEL;
            else if (!strcmp(optarg, "libevent"))
                G.o.timers = TIMERS_LIBEVENT;
            else
                bad = 1, fprintf(stderr, "tw-quic: --timers is tickwheel or libevent\n");
            break;
        case 'R':
            if (!strcmp(optarg, "both"))
                G.o.role = ROLE_BOTH;
            else if (!strcmp(optarg, "server"))
                G.o.role = ROLE_SERVER;
            else if (!strcmp(optarg, "client"))
                G.o.role = ROLE_CLIENT;
            else
                bad = 1, fprintf(stderr, "tw-quic: --role is both, server or client\n");
            break;
        case 'J': G.o.json = 1; break;
        case 'P': G.o.progress = 0; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        if (bad)
            return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "tw-quic: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (G.o.role == ROLE_CLIENT && !G.o.port) {
        fprintf(stderr, "tw-quic: --role client needs --port\n");
        return 2;
    }
    if (G.o.json)
        G.o.progress = 0;
    for (uint32_t i = 0; i < PAT_PERIOD + PAT_SPAN; i++) {
        uint32_t x = (i % PAT_PERIOD) * UINT32_C(2654435761);
        G.pattern[i] = (uint8_t)(x >> 24 ^ x >> 11);
    }
    G.server_addr.sin_family = AF_INET;
    G.server_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    G.server_addr.sin_port = htons(G.o.port);
    setup_callbacks();
    int status = 1;
    if (tls_init() < 0)
        goto out;
    for (uint32_t l = 0; l < G.o.loops; l++) {
        G.loops[l].index = l;
        if (loop_init(&G.loops[l]) < 0) {
            fprintf(stderr, "tw-quic: setting up loop %" PRIu32 " failed\n", l);
            goto out;
        }
    }
    if (G.o.role == ROLE_SERVER && !G.o.json)
        fprintf(stderr, "tw-quic: serving on 127.0.0.1:%u\n", ntohs(G.server_addr.sin_port));
    G.wall0 = mono_ns();
    uint64_t cpu0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
    for (uint32_t l = 1; l < G.o.loops; l++)
        if (pthread_create(&G.loops[l].thread, NULL, loop_run, &G.loops[l]) != 0) {
            fprintf(stderr, "tw-quic: cannot start a thread\n");
            G.o.loops = l;
            break;
        }
    loop_run(&G.loops[0]);
    for (uint32_t l = 1; l < G.o.loops; l++)
        pthread_join(G.loops[l].thread, NULL);
    if (G.o.progress)
        fprintf(stderr, "\n");
    double wall = (double)(mono_ns() - G.wall0) / 1e9;
    double cpu = (double)(clock_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu0) / 1e9;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    status = 0;
    for (uint32_t l = 0; l < G.o.loops; l++)
        if (G.loops[l].failed)
            status = 1;
    print_report(wall, cpu, &ru);
out:
    for (uint32_t l = 0; l < MAX_LOOPS; l++)
        if (G.loops[l].base || G.loops[l].late)
            loop_free(&G.loops[l]);
    tls_free();
    return status;
}
