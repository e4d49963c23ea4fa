/*
 * The reliability layer against vectors worked out by hand from the
 * formulas of RFC 9002 and RFC 6298; the arithmetic is in the comments,
 * in milliseconds.  Every bad argument gets its TW_E* answer and leaves
 * the state as it was.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tickwheel.h"

#define MS(x) ((uint64_t)(x) * UINT64_C(1000000))
#define US(x) ((uint64_t)(x) * UINT64_C(1000))
#define AE TW_RECOVERY_ACK_ELICITING
#define APP TW_PN_APPLICATION

static tw_recovery *make(uint32_t mode, int server, int confirmed)
{
    tw_recovery_config c;
    tw_recovery *r;
    tw_recovery_config_init(&c);
    c.mode = mode;
    c.is_server = (uint32_t)server;
    assert_int_equal(tw_recovery_new(&c, &r), 0);
    if (confirmed)
        assert_int_equal(tw_recovery_set_handshake_confirmed(r), 0);
    return r;
}

static tw_rtt rtt_of(const tw_recovery *r)
{
    tw_rtt t;
    memset(&t, 0, sizeof(t));
    t.struct_size = sizeof(t);
    assert_int_equal(tw_recovery_rtt(r, &t), 0);
    return t;
}

static tw_recovery_stats stats_of(const tw_recovery *r)
{
    tw_recovery_stats s;
    memset(&s, 0, sizeof(s));
    s.struct_size = sizeof(s);
    assert_int_equal(tw_recovery_stats_get(r, &s), 0);
    return s;
}

static uint64_t deadline_of(const tw_recovery *r)
{
    uint64_t t = 0;
    assert_int_equal(tw_recovery_next_deadline(r, &t), 0);
    return t;
}

static void no_deadline(const tw_recovery *r)
{
    uint64_t t = 12345;
    assert_int_equal(tw_recovery_next_deadline(r, &t), TW_ENOENT);
    assert_int_equal(t, 12345);
}

static void ack1(tw_recovery *r, unsigned space, uint64_t lo, uint64_t hi, uint64_t delay,
                 uint64_t now)
{
    tw_ack_range a = {lo, hi};
    assert_int_equal(tw_recovery_on_ack(r, space, &a, 1, delay, now), 0);
}

static uint32_t check(tw_recovery *r, uint64_t now)
{
    uint32_t ev = 0xdead;
    assert_int_equal(tw_recovery_check(r, now, &ev), 0);
    return ev;
}

static void test_defaults(void **state)
{
    (void)state;
    tw_recovery_config c;
    tw_recovery_config_init(&c);
    assert_int_equal(c.struct_size, sizeof(c));
    assert_int_equal(c.mode, TW_RECOVERY_RFC9002);
    assert_int_equal(c.initial_rtt_ns, MS(333));
    assert_int_equal(c.max_ack_delay_ns, MS(25));
    assert_int_equal(c.granularity_ns, MS(1));
    assert_int_equal(c.packet_threshold, 3);
    assert_int_equal(c.time_threshold_num, 9);
    assert_int_equal(c.time_threshold_den, 8);
    assert_int_equal(c.rto_initial_ns, MS(1000));
    assert_int_equal(c.rto_min_ns, MS(1000));
    assert_int_equal(c.rto_max_ns, MS(60000));
    assert_int_equal(c.max_in_flight, 0);

    tw_recovery *r;
    assert_int_equal(tw_recovery_new(NULL, &r), 0);
    /* Before a sample: srtt = 333, rttvar = 333 / 2 = 166.5;
     * PTO = 333 + max(4 * 166.5, 1) + 25 = 333 + 666 + 25 = 1024. */
    tw_rtt t = rtt_of(r);
    assert_int_equal(t.struct_size, sizeof(t));
    assert_int_equal(t.latest_ns, 0);
    assert_int_equal(t.smoothed_ns, MS(333));
    assert_int_equal(t.rttvar_ns, US(166500));
    assert_int_equal(t.min_ns, 0);
    assert_int_equal(t.pto_ns, MS(1024));
    assert_int_equal(t.pto_initial_ns, MS(1024));
    assert_int_equal(t.rto_ns, MS(1000));
    assert_int_equal(t.samples, 0);
    no_deadline(r);
    tw_recovery_free(r);
    tw_recovery_free(NULL);
}

/* RFC 9002 s5.3: the first sample sets srtt = r, rttvar = r / 2 and min_rtt
 * = r, ignoring the ack delay; later ones smooth by 1/8 and 1/4. */
static void test_rtt_first_sample_and_smoothing(void **state)
{
    (void)state;
    tw_recovery *r = make(TW_RECOVERY_RFC9002, 1, 0);
    assert_int_equal(tw_recovery_on_sent(r, APP, 0, 0, 1200, AE, 1), 0);
    ack1(r, APP, 0, 0, MS(10), MS(100));
    tw_rtt t = rtt_of(r);
    assert_int_equal(t.latest_ns, MS(100));
    assert_int_equal(t.smoothed_ns, MS(100));
    assert_int_equal(t.rttvar_ns, MS(50));
    assert_int_equal(t.min_ns, MS(100));
    assert_int_equal(t.samples, 1);
    /* PTO = 100 + max(4 * 50, 1) + 25 = 325 */
    assert_int_equal(t.pto_ns, MS(325));

    /* Sent at 100, acked at 260: latest = 160, no delay.
     * rttvar = 3/4 * 50 + 1/4 * |100 - 160| = 37.5 + 15 = 52.5
     * srtt   = 7/8 * 100 + 1/8 * 160 = 87.5 + 20 = 107.5 */
    assert_int_equal(tw_recovery_on_sent(r, APP, 1, MS(100), 1200, AE, 2), 0);
    ack1(r, APP, 1, 1, 0, MS(260));
    t = rtt_of(r);
    assert_int_equal(t.latest_ns, MS(160));
    assert_int_equal(t.rttvar_ns, US(52500));
    assert_int_equal(t.smoothed_ns, US(107500));
    assert_int_equal(t.min_ns, MS(100));

    /* A faster one lowers min_rtt: sent 300, acked 360, latest = 60.
     * rttvar = 3/4 * 52.5 + 1/4 * |107.5 - 60| = 39.375 + 11.875 = 51.25
     * srtt   = 7/8 * 107.5 + 1/8 * 60 = 94.0625 + 7.5 = 101.5625 */
    assert_int_equal(tw_recovery_on_sent(r, APP, 2, MS(300), 1200, AE, 3), 0);
    ack1(r, APP, 2, 2, 0, MS(360));
    t = rtt_of(r);
    assert_int_equal(t.min_ns, MS(60));
    assert_int_equal(t.rttvar_ns, US(51250));
    assert_int_equal(t.smoothed_ns, 101562500);
    assert_int_equal(t.samples, 3);

    /* An ACK whose largest packet is not newly acked gives no sample. */
    assert_int_equal(tw_recovery_on_sent(r, APP, 3, MS(400), 1200, AE, 4), 0);
    assert_int_equal(tw_recovery_on_sent(r, APP, 4, MS(401), 1200, AE, 5), 0);
    ack1(r, APP, 4, 4, 0, MS(500));
    assert_int_equal(rtt_of(r).samples, 4);
    tw_ack_range again[] = {{4, 4}, {3, 3}};
    assert_int_equal(tw_recovery_on_ack(r, APP, again, 2, 0, MS(900)), 0);
    assert_int_equal(rtt_of(r).samples, 4);
    assert_int_equal(stats_of(r).acked, 5);
    tw_recovery_free(r);
}

/* The ack delay: subtracted only when latest >= min_rtt + delay; capped at
 * max_ack_delay once the handshake is confirmed; ignored in Initial. */
static tw_recovery *after_100ms_sample(unsigned space, int confirmed)
{
    tw_recovery *r = make(TW_RECOVERY_RFC9002, 1, confirmed);
    assert_int_equal(tw_recovery_on_sent(r, space, 0, 0, 1200, AE, 1), 0);
    ack1(r, space, 0, 0, 0, MS(100));   /* srtt 100, rttvar 50, min 100 */
    assert_int_equal(tw_recovery_on_sent(r, space, 1, MS(1000), 1200, AE, 2), 0);
    return r;
}

static void test_rtt_ack_delay(void **state)
{
    (void)state;
    /* Confirmed: latest = 200, delay 40 capped to 25: adjusted = 175.
     * rttvar = 3/4 * 50 + 1/4 * 75 = 37.5 + 18.75 = 56.25
     * srtt   = 7/8 * 100 + 1/8 * 175 = 87.5 + 21.875 = 109.375 */
    tw_recovery *r = after_100ms_sample(APP, 1);
    ack1(r, APP, 1, 1, MS(40), MS(1200));
    tw_rtt t = rtt_of(r);
    assert_int_equal(t.latest_ns, MS(200));
    assert_int_equal(t.rttvar_ns, US(56250));
    assert_int_equal(t.smoothed_ns, US(109375));
    tw_recovery_free(r);

    /* Not confirmed: the delay of 40 is not capped: adjusted = 160.
     * rttvar = 37.5 + 15 = 52.5; srtt = 87.5 + 20 = 107.5 */
    r = after_100ms_sample(APP, 0);
    ack1(r, APP, 1, 1, MS(40), MS(1200));
    t = rtt_of(r);
    assert_int_equal(t.rttvar_ns, US(52500));
    assert_int_equal(t.smoothed_ns, US(107500));
    tw_recovery_free(r);

    /* Never below min_rtt: latest = 110, delay 20: 110 < 100 + 20, so the
     * sample stays 110.  rttvar = 37.5 + 2.5 = 40; srtt = 87.5 + 13.75 =
     * 101.25 */
    r = after_100ms_sample(APP, 1);
    ack1(r, APP, 1, 1, MS(20), MS(1110));
    t = rtt_of(r);
    assert_int_equal(t.rttvar_ns, MS(40));
    assert_int_equal(t.smoothed_ns, US(101250));
    tw_recovery_free(r);

    /* Exactly at the limit: latest = 120, delay 20: 120 >= 120, adjusted
     * 100.  rttvar = 37.5 + 0 = 37.5; srtt = 100. */
    r = after_100ms_sample(APP, 1);
    ack1(r, APP, 1, 1, MS(20), MS(1120));
    t = rtt_of(r);
    assert_int_equal(t.rttvar_ns, US(37500));
    assert_int_equal(t.smoothed_ns, MS(100));
    tw_recovery_free(r);

    /* Initial: the delay is ignored.  latest = 200, adjusted 200.
     * rttvar = 37.5 + 25 = 62.5; srtt = 87.5 + 25 = 112.5 */
    r = after_100ms_sample(TW_PN_INITIAL, 1);
    ack1(r, TW_PN_INITIAL, 1, 1, MS(40), MS(1200));
    t = rtt_of(r);
    assert_int_equal(t.rttvar_ns, US(62500));
    assert_int_equal(t.smoothed_ns, US(112500));
    tw_recovery_free(r);

    /* Handshake honours it (here uncapped by confirmation: 40 <= 25 is
     * false, so confirmed caps it to 25 as in Application): adjusted 175. */
    r = after_100ms_sample(TW_PN_HANDSHAKE, 1);
    ack1(r, TW_PN_HANDSHAKE, 1, 1, MS(40), MS(1200));
    assert_int_equal(rtt_of(r).smoothed_ns, US(109375));
    tw_recovery_free(r);
}

/* PTO = srtt + max(4 rttvar, G) + max_ack_delay, doubled per PTO fired,
 * reset by an ACK; the probe frames are the oldest in flight. */
static void test_pto_backoff_and_reset(void **state)
{
    (void)state;
    uint64_t f[8];
    tw_recovery *r = make(TW_RECOVERY_RFC9002, 1, 1);
    assert_int_equal(tw_recovery_on_sent(r, APP, 0, 0, 1200, AE, 10), 0);
    ack1(r, APP, 0, 0, 0, MS(100));     /* srtt 100, rttvar 50 */
    assert_int_equal(tw_recovery_take_retired(r, f, 8), 1);
    assert_int_equal(f[0], 10);
    no_deadline(r);                     /* nothing in flight at a server */

    /* Sent at 1000: 1000 + 100 + 200 + 25 = 1325 */
    assert_int_equal(tw_recovery_on_sent(r, APP, 1, MS(1000), 1200, AE, 11), 0);
    assert_int_equal(deadline_of(r), MS(1325));
    assert_int_equal(check(r, MS(1325) - 1), 0);
    assert_int_equal(tw_recovery_take_frames(r, f, 8), 0);
    uint32_t ev = check(r, MS(1325));
    assert_int_equal(ev, TW_RECOVERY_PTO | APP << 8);
    assert_int_equal(TW_RECOVERY_EVENT_SPACE(ev), APP);
    assert_int_equal(tw_recovery_take_frames(r, f, 8), 1);
    assert_int_equal(f[0], 11);
    assert_int_equal(rtt_of(r).pto_count, 1);
    /* pto_count 1: 1000 + (100 + 200) * 2 + 25 * 2 = 1650 */
    assert_int_equal(deadline_of(r), MS(1650));
    assert_int_equal(check(r, MS(1650)), TW_RECOVERY_PTO | APP << 8);
    /* pto_count 2: 1000 + 300 * 4 + 25 * 4 = 2300 */
    assert_int_equal(deadline_of(r), MS(2300));
    /* A new packet at 2000 restarts it, still backed off: 2000 + 1300 */
    assert_int_equal(tw_recovery_on_sent(r, APP, 2, MS(2000), 1200, AE, 12), 0);
    assert_int_equal(deadline_of(r), MS(3300));
    tw_recovery_stats s = stats_of(r);
    assert_int_equal(s.pto, 2);
    assert_int_equal(s.lost, 0);       /* a PTO declares nothing lost */
    assert_int_equal(s.packets_in_flight, 2);

    /* ACK of pn 1 at 2200: latest 1200, so
     * rttvar = 3/4 * 50 + 1/4 * |100 - 1200| = 37.5 + 275 = 312.5
     * srtt   = 7/8 * 100 + 1/8 * 1200 = 87.5 + 150 = 237.5
     * pto_count resets: 2000 + 237.5 + 4 * 312.5 + 25 = 3512.5 */
    ack1(r, APP, 1, 1, 0, MS(2200));
    tw_rtt t = rtt_of(r);
    assert_int_equal(t.pto_count, 0);
    assert_int_equal(t.smoothed_ns, US(237500));
    assert_int_equal(t.rttvar_ns, US(312500));
    assert_int_equal(deadline_of(r), US(3512500));
    /* The probe handle 11 was taken; its packet's ack retires it too. */
    assert_int_equal(tw_recovery_take_retired(r, f, 8), 1);
    assert_int_equal(f[0], 11);
    tw_recovery_free(r);
}

/* At most two probe handles per PTO, oldest first, ack-eliciting ones
 * with a handle only. */
static void test_pto_probe_frames(void **state)
{
    (void)state;
    uint64_t f[8];
    tw_recovery *r = make(TW_RECOVERY_RFC9002, 1, 1);
    assert_int_equal(tw_recovery_on_sent(r, APP, 0, 0, 100, 0, 20), 0);    /* ACK only */
    assert_int_equal(tw_recovery_on_sent(r, APP, 1, 0, 100, AE, 0), 0);    /* PING */
    assert_int_equal(tw_recovery_on_sent(r, APP, 2, 0, 100, AE, 22), 0);
    assert_int_equal(tw_recovery_on_sent(r, APP, 3, 0, 100, AE, 23), 0);
    assert_int_equal(tw_recovery_on_sent(r, APP, 4, 0, 100, AE, 24), 0);
    /* No sample: 0 + 333 + 666 + 25 */
    assert_int_equal(deadline_of(r), MS(1024));
    assert_int_equal(check(r, MS(5000)), TW_RECOVERY_PTO | APP << 8);
    assert_int_equal(tw_recovery_take_frames(r, f, 8), 2);
    assert_int_equal(f[0], 22);
    assert_int_equal(f[1], 23);
    tw_recovery_stats s = stats_of(r);
    assert_int_equal(s.packets_in_flight, 5);
    assert_int_equal(s.ack_eliciting_in_flight, 4);
    assert_int_equal(s.bytes_in_flight, 400);
    tw_recovery_free(r);
}

/* Initial and Handshake race for the PTO; Application waits for the
 * handshake to be confirmed; a discarded space leaves the race. */
static void test_pto_across_spaces(void **state)
{
    (void)state;
    uint64_t f[8];
    tw_recovery *r = make(TW_RECOVERY_RFC9002, 0, 0);
    assert_int_equal(tw_recovery_on_sent(r, TW_PN_INITIAL, 0, 0, 1200, AE, 1), 0);
    assert_int_equal(tw_recovery_on_sent(r, TW_PN_HANDSHAKE, 0, MS(10), 1200, AE, 2), 0);
    assert_int_equal(tw_recovery_on_sent(r, APP, 0, MS(20), 1200, AE, 3), 0);
    /* duration = 333 + 4 * 166.5 = 999, no max_ack_delay outside App:
     * Initial 0 + 999, Handshake 10 + 999; App not before confirmation. */
    assert_int_equal(deadline_of(r), MS(999));
    assert_int_equal(check(r, MS(999)), TW_RECOVERY_PTO | TW_PN_INITIAL << 8);
    assert_int_equal(tw_recovery_take_frames(r, f, 8), 1);
    assert_int_equal(f[0], 1);
    /* pto_count 1: Initial 0 + 1998, Handshake 10 + 1998 */
    assert_int_equal(deadline_of(r), MS(1998));

    /* Initial keys discarded: its packet retires, pto_count resets:
     * Handshake 10 + 999 */
    assert_int_equal(tw_recovery_discard_space(r, TW_PN_INITIAL), 0);
    assert_int_equal(deadline_of(r), MS(1009));
    assert_int_equal(tw_recovery_take_retired(r, f, 8), 1);
    assert_int_equal(f[0], 1);
    assert_int_equal(rtt_of(r).pto_count, 0);
    assert_int_equal(stats_of(r).discarded, 1);

    /* Confirmed: App joins at 20 + 999 + 25 = 1044; Handshake still wins. */
    assert_int_equal(tw_recovery_set_handshake_confirmed(r), 0);
    assert_int_equal(deadline_of(r), MS(1009));
    assert_int_equal(check(r, MS(1009)), TW_RECOVERY_PTO | TW_PN_HANDSHAKE << 8);
    /* pto_count 1: Handshake 10 + 1998 = 2008; App 20 + 1998 + 50 = 2068 */
    assert_int_equal(deadline_of(r), MS(2008));
    /* Handshake discarded with its probe copy of handle 2 still queued:
     * the packet's handle retires once, the copy is dropped. */
    assert_int_equal(stats_of(r).frames_queued, 1);
    assert_int_equal(tw_recovery_discard_space(r, TW_PN_HANDSHAKE), 0);
    assert_int_equal(tw_recovery_take_retired(r, f, 8), 1);
    assert_int_equal(f[0], 2);
    assert_int_equal(stats_of(r).frames_queued, 0);
    /* pto_count 0 again: App 20 + 999 + 25 */
    assert_int_equal(deadline_of(r), MS(1044));
    assert_int_equal(check(r, MS(1044)), TW_RECOVERY_PTO | APP << 8);
    assert_int_equal(tw_recovery_take_frames(r, f, 8), 1);
    assert_int_equal(f[0], 3);
    tw_recovery_free(r);
}

/* A client whose address the server may not have validated keeps a PTO
 * armed with nothing in flight (anti-deadlock), and keeps its backoff on
 * an ACK until a Handshake ACK arrives. */
static void test_pto_anti_deadlock(void **state)
{
    (void)state;
    uint64_t f[8];
    tw_recovery *r = make(TW_RECOVERY_RFC9002, 0, 0);
    assert_int_equal(tw_recovery_on_sent(r, TW_PN_INITIAL, 0, 0, 1200, AE, 1), 0);
    ack1(r, TW_PN_INITIAL, 0, 0, 0, MS(100));   /* srtt 100, rttvar 50 */
    /* From now: 100 + 100 + 200 = 400, in Initial (no Handshake keys) */
    assert_int_equal(deadline_of(r), MS(400));
    assert_int_equal(check(r, MS(400)), TW_RECOVERY_PTO | TW_PN_INITIAL << 8);
    assert_int_equal(tw_recovery_take_frames(r, f, 8), 0);   /* nothing to resend */
    /* pto_count 1: 400 + 600 */
    assert_int_equal(deadline_of(r), MS(1000));
    /* A Handshake ACK-only packet: keys now exist; not in flight, so the
     * timer stays. */
    assert_int_equal(tw_recovery_on_sent(r, TW_PN_HANDSHAKE, 0, MS(500), 50, 0, 0), 0);
    assert_int_equal(deadline_of(r), MS(1000));
    assert_int_equal(check(r, MS(1000)), TW_RECOVERY_PTO | TW_PN_HANDSHAKE << 8);
    assert_int_equal(rtt_of(r).pto_count, 2);

    /* An Initial ACK does not reset the backoff at this client. */
    assert_int_equal(tw_recovery_on_sent(r, TW_PN_INITIAL, 1, MS(1100), 1200, AE, 2), 0);
    ack1(r, TW_PN_INITIAL, 1, 1, 0, MS(1200));
    assert_int_equal(rtt_of(r).pto_count, 2);
    /* A Handshake ACK validates the address: reset, and with nothing in
     * flight the timer stops. */
    assert_int_equal(tw_recovery_on_sent(r, TW_PN_HANDSHAKE, 1, MS(1300), 1200, AE, 3), 0);
    ack1(r, TW_PN_HANDSHAKE, 1, 1, 0, MS(1400));
    assert_int_equal(rtt_of(r).pto_count, 0);
    no_deadline(r);
    tw_recovery_free(r);

    /* A server never arms it. */
    r = make(TW_RECOVERY_RFC9002, 1, 0);
    assert_int_equal(tw_recovery_on_sent(r, TW_PN_INITIAL, 0, 0, 1200, AE, 1), 0);
    ack1(r, TW_PN_INITIAL, 0, 0, 0, MS(100));
    no_deadline(r);
    tw_recovery_free(r);
}

/* RFC 9002 s6.1: lost when 3 packets newer are acked, or when sent over
 * 9/8 * max(srtt, latest) ago; otherwise a loss time is set. */
static void test_loss_by_packet_and_time_threshold(void **state)
{
    (void)state;
    uint64_t f[8];
    tw_recovery *r = make(TW_RECOVERY_RFC9002, 1, 1);
    for (uint64_t pn = 0; pn < 5; pn++)
        assert_int_equal(tw_recovery_on_sent(r, APP, pn, MS(pn), 1000, AE, 100 + pn), 0);
    /* ACK of 4 at 50: latest = 46, srtt 46.  loss_delay = 9/8 * 46 =
     * 51.75; 50 - 51.75 < 0, so nothing by time.  By count: 4 - pn >= 3
     * for pn 0 and 1.  pn 2 and 3 wait: loss time 2 + 51.75 = 53.75. */
    ack1(r, APP, 4, 4, 0, MS(50));
    assert_int_equal(tw_recovery_take_frames(r, f, 8), 2);
    assert_int_equal(f[0], 100);
    assert_int_equal(f[1], 101);
    assert_int_equal(tw_recovery_take_retired(r, f, 8), 1);
    assert_int_equal(f[0], 104);
    tw_recovery_stats s = stats_of(r);
    assert_int_equal(s.lost, 2);
    assert_int_equal(s.acked, 1);
    assert_int_equal(s.packets_in_flight, 2);
    assert_int_equal(s.bytes_in_flight, 2000);
    assert_int_equal(deadline_of(r), US(53750));

    /* At 53.75: pn 2 (sent 2 <= 53.75 - 51.75) is lost; pn 3 waits until
     * 3 + 51.75 = 54.75. */
    assert_int_equal(check(r, US(53750) - 1), 0);
    assert_int_equal(check(r, US(53750)), TW_RECOVERY_LOSS | APP << 8);
    assert_int_equal(tw_recovery_take_frames(r, f, 8), 1);
    assert_int_equal(f[0], 102);
    assert_int_equal(deadline_of(r), US(54750));
    assert_int_equal(check(r, MS(60)), TW_RECOVERY_LOSS | APP << 8);
    assert_int_equal(tw_recovery_take_frames(r, f, 8), 1);
    assert_int_equal(f[0], 103);
    no_deadline(r);
    s = stats_of(r);
    assert_int_equal(s.lost, 4);
    assert_int_equal(s.packets_in_flight, 0);
    assert_int_equal(s.bytes_in_flight, 0);
    /* A late ACK of lost packets changes nothing. */
    ack1(r, APP, 0, 3, 0, MS(70));
    assert_int_equal(stats_of(r).acked, 1);
    assert_int_equal(tw_recovery_take_retired(r, f, 8), 0);
    tw_recovery_free(r);
}

/* The time threshold is floored at kGranularity. */
static void test_loss_granularity_floor(void **state)
{
    (void)state;
    tw_recovery *r = make(TW_RECOVERY_RFC9002, 1, 1);
    assert_int_equal(tw_recovery_on_sent(r, APP, 0, 0, 100, AE, 1), 0);
    assert_int_equal(tw_recovery_on_sent(r, APP, 1, 0, 100, AE, 2), 0);
    /* latest = srtt = 0.1 ms: 9/8 * 0.1 = 0.1125 < 1, so loss_delay = 1;
     * pn 0 is one behind: loss time 0 + 1 ms. */
    ack1(r, APP, 1, 1, 0, US(100));
    assert_int_equal(deadline_of(r), MS(1));
    assert_int_equal(check(r, MS(1) - 1), 0);
    assert_int_equal(check(r, MS(1)), TW_RECOVERY_LOSS | APP << 8);
    assert_int_equal(stats_of(r).lost, 1);
    tw_recovery_free(r);
}

/* Configured thresholds: packet threshold 1, time threshold 2/1. */
static void test_loss_configured_thresholds(void **state)
{
    (void)state;
    tw_recovery_config c;
    tw_recovery *r;
    tw_recovery_config_init(&c);
    c.is_server = 1;
    c.packet_threshold = 1;
    c.time_threshold_num = 2;
    c.time_threshold_den = 1;
    assert_int_equal(tw_recovery_new(&c, &r), 0);
    assert_int_equal(tw_recovery_set_handshake_confirmed(r), 0);
    for (uint64_t pn = 0; pn < 3; pn++)
        assert_int_equal(tw_recovery_on_sent(r, APP, pn, MS(pn), 100, AE, pn + 1), 0);
    /* ACK of 1 at 11: pn 0 lost by count (1 - 0 >= 1); latest 10, loss
     * delay 20; pn 2 is above the largest acked: no loss time; PTO. */
    ack1(r, APP, 1, 1, 0, MS(11));
    assert_int_equal(stats_of(r).lost, 1);
    /* PTO from pn 2: 2 + 10 + 4 * 5 + 25 = 57 */
    assert_int_equal(deadline_of(r), MS(57));
    tw_recovery_free(r);
}

/* Handles: retired in packet-number order of each ACK, smallest range
 * first; a handle 0 is never reported; take drains what fits. */
static void test_frames_retired_and_taken(void **state)
{
    (void)state;
    uint64_t f[8];
    tw_recovery *r = make(TW_RECOVERY_RFC9002, 1, 1);
    for (uint64_t pn = 0; pn < 8; pn++)
        assert_int_equal(tw_recovery_on_sent(r, APP, pn * 2, MS(pn), 100, AE,
                                             pn == 3 ? 0 : 1000 + pn), 0);
    /* pns 0 2 4 6 8 10 12 14; ranges 12-14 and 2-6 (5 never sent: ignored) */
    tw_ack_range a[] = {{12, 14}, {2, 6}};
    assert_int_equal(tw_recovery_on_ack(r, APP, a, 2, 0, MS(20)), 0);
    /* acked: 2 4 (handle 1002) 6 (handle 0: nothing) 12 14 */
    assert_int_equal(tw_recovery_take_retired(r, f, 2), 2);
    assert_int_equal(f[0], 1001);
    assert_int_equal(f[1], 1002);
    assert_int_equal(tw_recovery_take_retired(r, f, 8), 2);
    assert_int_equal(f[0], 1006);
    assert_int_equal(f[1], 1007);
    /* lost by count (14 - pn >= 3): 0, 8 and 10 */
    assert_int_equal(tw_recovery_take_frames(r, f, 1), 1);
    assert_int_equal(f[0], 1000);
    assert_int_equal(stats_of(r).frames_queued, 2);
    assert_int_equal(tw_recovery_take_frames(r, f, 0), 0);
    assert_int_equal(tw_recovery_take_frames(r, f, 8), 2);
    assert_int_equal(f[0], 1004);
    assert_int_equal(f[1], 1005);
    tw_recovery_stats s = stats_of(r);
    assert_int_equal(s.acked, 5);
    assert_int_equal(s.lost, 3);
    assert_int_equal(s.packets_in_flight, 0);
    assert_int_equal(s.frames_queued, 0);
    assert_int_equal(s.retired_queued, 0);
    tw_recovery_free(r);
}

/* Discarding keys retires the space's packets and its queued frames. */
static void test_discard_space(void **state)
{
    (void)state;
    uint64_t f[8];
    tw_recovery *r = make(TW_RECOVERY_RFC9002, 1, 0);
    for (uint64_t pn = 0; pn < 5; pn++)
        assert_int_equal(tw_recovery_on_sent(r, TW_PN_INITIAL, pn, 0, 100, AE, 10 + pn), 0);
    assert_int_equal(tw_recovery_on_sent(r, APP, 0, 0, 100, AE, 50), 0);
    ack1(r, TW_PN_INITIAL, 4, 4, 0, MS(10));   /* 0 and 1 lost */
    assert_int_equal(tw_recovery_take_retired(r, f, 8), 1);
    assert_int_equal(stats_of(r).frames_queued, 2);
    assert_int_equal(tw_recovery_discard_space(r, TW_PN_INITIAL), 0);
    assert_int_equal(tw_recovery_take_retired(r, f, 8), 4);
    assert_int_equal(f[0], 12);     /* outstanding first, then the queue */
    assert_int_equal(f[1], 13);
    assert_int_equal(f[2], 10);
    assert_int_equal(f[3], 11);
    tw_recovery_stats s = stats_of(r);
    assert_int_equal(s.frames_queued, 0);
    assert_int_equal(s.packets_in_flight, 1);
    assert_int_equal(s.bytes_in_flight, 100);
    assert_int_equal(s.discarded, 2);
    /* Only App is in flight and the handshake is not confirmed: no PTO. */
    no_deadline(r);
    /* Again is a no-op; the space takes nothing more. */
    assert_int_equal(tw_recovery_discard_space(r, TW_PN_INITIAL), 0);
    assert_int_equal(tw_recovery_on_sent(r, TW_PN_INITIAL, 9, MS(20), 100, AE, 1), TW_EINVAL);
    ack1(r, APP, 0, 0, 0, MS(30));
    tw_ack_range a = {4, 4};
    assert_int_equal(tw_recovery_on_ack(r, TW_PN_INITIAL, &a, 1, 0, MS(30)), TW_EINVAL);
    tw_recovery_free(r);
}

static void test_amplification_limit(void **state)
{
    (void)state;
    tw_recovery *r = make(TW_RECOVERY_RFC9002, 1, 0);
    assert_int_equal(tw_recovery_on_sent(r, TW_PN_INITIAL, 0, 0, 1200, AE, 1), 0);
    assert_int_equal(deadline_of(r), MS(999));
    assert_int_equal(tw_recovery_set_amplification_limited(r, 1), 0);
    no_deadline(r);
    assert_int_equal(check(r, MS(5000)), 0);
    assert_int_equal(tw_recovery_set_amplification_limited(r, 0), 0);
    assert_int_equal(deadline_of(r), MS(999));
    assert_int_equal(tw_recovery_set_amplification_limited(r, 2), TW_EINVAL);
    tw_recovery_free(r);
    /* A client ignores it. */
    r = make(TW_RECOVERY_RFC9002, 0, 0);
    assert_int_equal(tw_recovery_on_sent(r, TW_PN_INITIAL, 0, 0, 1200, AE, 1), 0);
    assert_int_equal(tw_recovery_set_amplification_limited(r, 1), 0);
    assert_int_equal(deadline_of(r), MS(999));
    tw_recovery_free(r);

    /* Nor does the call arm or restart a client's anti-deadlock timer,
     * which runs from the latest time seen. */
    r = make(TW_RECOVERY_RFC9002, 0, 0);
    assert_int_equal(tw_recovery_set_amplification_limited(r, 1), 0);
    no_deadline(r);
    assert_int_equal(tw_recovery_on_sent(r, TW_PN_INITIAL, 0, 0, 1200, AE, 1), 0);
    ack1(r, TW_PN_INITIAL, 0, 0, 0, MS(100));   /* srtt 100, rttvar 50 */
    /* Nothing in flight, address not validated: 100 + 100 + 200 = 400 */
    assert_int_equal(deadline_of(r), MS(400));
    /* An ACK-only packet at 300: the latest time seen moves, not the timer. */
    assert_int_equal(tw_recovery_on_sent(r, TW_PN_INITIAL, 1, MS(300), 50, 0, 0), 0);
    assert_int_equal(deadline_of(r), MS(400));
    assert_int_equal(tw_recovery_set_amplification_limited(r, 0), 0);
    assert_int_equal(deadline_of(r), MS(400));     /* not 300 + 300 */
    tw_recovery_free(r);
}

/* RFC 6298 (2.2): RTO = R + max(G, 4 * R/2) = R + max(G, 2R). */
static tw_recovery *make_rto(uint64_t rto_min)
{
    tw_recovery_config c;
    tw_recovery *r;
    tw_recovery_config_init(&c);
    c.mode = TW_RECOVERY_RFC6298;
    c.rto_min_ns = rto_min;
    assert_int_equal(tw_recovery_new(&c, &r), 0);
    return r;
}

static void test_rto_first_sample_and_min(void **state)
{
    (void)state;
    tw_recovery *r = make_rto(MS(100));
    /* (2.1) 1 s before a sample; (5.1) armed by the first packet. */
    assert_int_equal(tw_recovery_on_sent(r, APP, 0, 0, 100, AE, 1), 0);
    assert_int_equal(deadline_of(r), MS(1000));
    /* (5.1) a second packet leaves the running timer alone */
    assert_int_equal(tw_recovery_on_sent(r, APP, 1, MS(50), 100, AE, 2), 0);
    assert_int_equal(deadline_of(r), MS(1000));
    /* R = 100: SRTT 100, RTTVAR 50, RTO = 100 + max(1, 200) = 300.
     * (5.3) new data acked, more outstanding: restart at 100 + 300. */
    ack1(r, APP, 0, 0, MS(50), MS(100));        /* the delay is ignored */
    tw_rtt t = rtt_of(r);
    assert_int_equal(t.smoothed_ns, MS(100));
    assert_int_equal(t.rttvar_ns, MS(50));
    assert_int_equal(t.rto_ns, MS(300));
    assert_int_equal(deadline_of(r), MS(400));
    /* R = 100 again (sent 50, acked 150): RTTVAR = 3/4 * 50 + 0 = 37.5,
     * SRTT 100, RTO = 100 + 150 = 250.  (5.2) all acked: stopped. */
    ack1(r, APP, 1, 1, 0, MS(150));
    assert_int_equal(rtt_of(r).rto_ns, MS(250));
    no_deadline(r);
    tw_recovery_free(r);

    /* (2.4) rounded up to the 1 s minimum. */
    r = make_rto(MS(1000));
    assert_int_equal(tw_recovery_on_sent(r, APP, 0, 0, 100, AE, 1), 0);
    ack1(r, APP, 0, 0, 0, MS(100));
    assert_int_equal(rtt_of(r).rto_ns, MS(1000));
    tw_recovery_free(r);

    /* G above 4 * RTTVAR: R = 100, G = 500: RTO = 100 + 500 = 600. */
    tw_recovery_config c;
    tw_recovery_config_init(&c);
    c.mode = TW_RECOVERY_RFC6298;
    c.rto_min_ns = MS(100);
    c.granularity_ns = MS(500);
    assert_int_equal(tw_recovery_new(&c, &r), 0);
    assert_int_equal(tw_recovery_on_sent(r, APP, 0, 0, 100, AE, 1), 0);
    ack1(r, APP, 0, 0, 0, MS(100));
    assert_int_equal(rtt_of(r).rto_ns, MS(600));
    tw_recovery_free(r);
}

/* (5.4)-(5.6): the oldest packet is retransmitted, the RTO doubles up to
 * the maximum; Karn: no sample from a retransmission, and the backoff
 * stays until a sample is taken. */
static void test_rto_backoff_and_karn(void **state)
{
    (void)state;
    uint64_t f[8];
    tw_recovery *r = make_rto(MS(100));
    assert_int_equal(tw_recovery_on_sent(r, APP, 0, 0, 100, AE, 1), 0);
    ack1(r, APP, 0, 0, 0, MS(100));             /* RTO 300 */

    assert_int_equal(tw_recovery_on_sent(r, APP, 1, MS(1000), 100, AE, 2), 0);
    assert_int_equal(tw_recovery_on_sent(r, APP, 2, MS(1001), 100, AE, 3), 0);
    assert_int_equal(deadline_of(r), MS(1300));
    assert_int_equal(check(r, MS(1299)), 0);
    uint32_t ev = check(r, MS(1300));
    assert_int_equal(ev, TW_RECOVERY_RTO | APP << 8);
    assert_int_equal(tw_recovery_take_frames(r, f, 8), 1);
    assert_int_equal(f[0], 2);                  /* the earliest, only */
    /* (5.5) 600, (5.6) restarted at 1300 + 600 since pn 2 is outstanding */
    assert_int_equal(rtt_of(r).rto_ns, MS(600));
    assert_int_equal(rtt_of(r).rto_backoff, 1);
    assert_int_equal(deadline_of(r), MS(1900));
    /* Retransmitted as pn 3. */
    assert_int_equal(tw_recovery_on_sent(r, APP, 3, MS(1300), 100,
                                         AE | TW_RECOVERY_RETRANSMISSION, 2), 0);
    assert_int_equal(deadline_of(r), MS(1900));

    /* Doubling: 600 1200 2400 4800 9600 19200 38400, then 76800 > 60000. */
    const uint64_t want[] = {1200, 2400, 4800, 9600, 19200, 38400, 60000, 60000};
    uint64_t now = MS(1900), pn = 4;
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        assert_int_equal(check(r, now), TW_RECOVERY_RTO | APP << 8);
        assert_int_equal(rtt_of(r).rto_ns, MS(want[i]));
        assert_int_equal(deadline_of(r), now + MS(want[i]));
        assert_int_equal(tw_recovery_take_frames(r, f, 8), 1);
        assert_int_equal(tw_recovery_on_sent(r, APP, pn++, now, 100,
                                             AE | TW_RECOVERY_RETRANSMISSION, f[0]), 0);
        now += MS(want[i]);
    }
    assert_int_equal(stats_of(r).rto, 9);

    /* Karn: the ACK of a retransmission gives no sample, the backoff stays
     * and the timer restarts with it. */
    uint64_t samples = rtt_of(r).samples;
    tw_ack_range a = {pn - 2, pn - 1};
    assert_int_equal(tw_recovery_on_ack(r, APP, &a, 1, 0, now + MS(50)), 0);
    assert_int_equal(rtt_of(r).samples, samples);
    assert_int_equal(rtt_of(r).rto_ns, MS(60000));
    /* Nothing outstanding: stopped. */
    no_deadline(r);
    /* A fresh packet's ACK samples (R = 100; RTTVAR = 3/4 * 50 = 37.5,
     * SRTT 100: RTO 250) and resets the backoff. */
    now += MS(1000);
    assert_int_equal(tw_recovery_on_sent(r, APP, pn, now, 100, AE, 99), 0);
    assert_int_equal(deadline_of(r), now + MS(60000));
    ack1(r, APP, pn, pn, 0, now + MS(100));
    assert_int_equal(rtt_of(r).samples, samples + 1);
    assert_int_equal(rtt_of(r).rto_backoff, 0);
    assert_int_equal(rtt_of(r).rto_ns, MS(250));
    tw_recovery_free(r);
}

/* In RFC 9002 mode packet numbers are unique: the flag does not stop a
 * sample. */
static void test_retransmission_flag_in_rfc9002(void **state)
{
    (void)state;
    tw_recovery *r = make(TW_RECOVERY_RFC9002, 1, 1);
    assert_int_equal(tw_recovery_on_sent(r, APP, 0, 0, 100,
                                         AE | TW_RECOVERY_RETRANSMISSION, 1), 0);
    ack1(r, APP, 0, 0, 0, MS(100));
    assert_int_equal(rtt_of(r).samples, 1);
    tw_recovery_free(r);
}

/* RFC 6298 mode tracks nothing that elicits no ACK. */
static void test_rto_non_eliciting(void **state)
{
    (void)state;
    uint64_t f[8];
    tw_recovery *r = make_rto(MS(100));
    assert_int_equal(tw_recovery_on_sent(r, APP, 0, 0, 40, 0, 7), 0);
    no_deadline(r);
    assert_int_equal(tw_recovery_take_retired(r, f, 8), 1);
    assert_int_equal(f[0], 7);
    assert_int_equal(stats_of(r).packets_in_flight, 0);
    assert_int_equal(tw_recovery_on_sent(r, APP, 0, 0, 40, 0, 7), TW_EINVAL);
    tw_recovery_free(r);
}

static void test_idle_and_path_validation(void **state)
{
    (void)state;
    /* RFC 9000 s10.1: min of the advertised values that are not 0,
     * at least 3 * PTO. */
    assert_int_equal(tw_idle_timeout_ns(MS(30000), MS(10000), MS(1000)), MS(10000));
    assert_int_equal(tw_idle_timeout_ns(MS(10000), MS(30000), MS(1000)), MS(10000));
    assert_int_equal(tw_idle_timeout_ns(MS(30000), 0, MS(1000)), MS(30000));
    assert_int_equal(tw_idle_timeout_ns(0, MS(20000), MS(1000)), MS(20000));
    assert_int_equal(tw_idle_timeout_ns(0, 0, MS(1000)), TW_NEVER);
    assert_int_equal(tw_idle_timeout_ns(MS(1000), MS(2000), MS(1000)), MS(3000));
    assert_int_equal(tw_idle_timeout_ns(MS(1000), 0, UINT64_MAX / 2), TW_NEVER);

    /* RFC 9000 s8.2.4: 3 * max(PTO, PTO with kInitialRtt).  After a 100 ms
     * sample: PTO 325, new path 333 + 666 + 25 = 1024: 3072. */
    tw_recovery *r = make(TW_RECOVERY_RFC9002, 1, 1);
    assert_int_equal(tw_recovery_on_sent(r, APP, 0, 0, 100, AE, 1), 0);
    ack1(r, APP, 0, 0, 0, MS(100));
    tw_rtt t = rtt_of(r);
    assert_int_equal(t.pto_ns, MS(325));
    assert_int_equal(t.pto_initial_ns, MS(1024));
    assert_int_equal(tw_path_validation_timeout_ns(t.pto_ns, t.pto_initial_ns), MS(3072));
    assert_int_equal(tw_path_validation_timeout_ns(MS(2000), MS(1024)), MS(6000));
    assert_int_equal(tw_path_validation_timeout_ns(UINT64_MAX, 0), TW_NEVER);
    assert_int_equal(tw_idle_timeout_ns(MS(30000), 0, t.pto_ns), MS(30000));
    tw_recovery_free(r);
}

static unsigned NOTIFIED;
static uint64_t NOTIFIED_DEADLINE;
static int NOTIFY_ACTION;

static void on_notify(tw_recovery *r, void *userdata)
{
    assert_ptr_equal(userdata, &NOTIFIED);
    NOTIFIED++;
    uint64_t t;
    NOTIFIED_DEADLINE = tw_recovery_next_deadline(r, &t) == 0 ? t : TW_NEVER;
    uint32_t ev;
    uint64_t f[1];
    /* Reading is allowed; changing is not. */
    assert_int_equal(tw_recovery_on_sent(r, APP, 100, 0, 1, AE, 1), TW_EBUSY);
    assert_int_equal(tw_recovery_check(r, 0, &ev), TW_EBUSY);
    assert_int_equal(tw_recovery_discard_space(r, 0), TW_EBUSY);
    assert_int_equal(tw_recovery_set_handshake_confirmed(r), TW_EBUSY);
    assert_int_equal(tw_recovery_set_notify(r, NULL, NULL), TW_EBUSY);
    assert_int_equal(tw_recovery_take_frames(r, f, 1), 0);
    if (NOTIFY_ACTION == 1)
        tw_recovery_free(r);    /* deferred to the end of the call */
}

static void test_notify(void **state)
{
    (void)state;
    tw_recovery *r = make(TW_RECOVERY_RFC9002, 1, 1);
    assert_int_equal(tw_recovery_set_notify(r, on_notify, &NOTIFIED), 0);
    assert_int_equal(tw_recovery_on_sent(r, APP, 0, 0, 100, AE, 1), 0);
    assert_int_equal(NOTIFIED, 1);
    assert_int_equal(NOTIFIED_DEADLINE, MS(1024));
    /* Not in flight: the deadline cannot move, no call. */
    assert_int_equal(tw_recovery_on_sent(r, APP, 1, 0, 100, 0, 0), 0);
    assert_int_equal(NOTIFIED, 1);
    /* Same deadline again (same send time): no call. */
    assert_int_equal(tw_recovery_on_sent(r, APP, 2, 0, 100, AE, 2), 0);
    assert_int_equal(NOTIFIED, 1);
    assert_int_equal(tw_recovery_on_sent(r, APP, 3, MS(10), 100, AE, 3), 0);
    assert_int_equal(NOTIFIED, 2);
    assert_int_equal(NOTIFIED_DEADLINE, MS(1034));
    /* Every ack-eliciting packet acked: no deadline. */
    ack1(r, APP, 0, 3, 0, MS(20));
    assert_int_equal(NOTIFIED, 3);
    assert_int_equal(NOTIFIED_DEADLINE, TW_NEVER);
    /* Removed: no more calls. */
    assert_int_equal(tw_recovery_set_notify(r, NULL, NULL), 0);
    assert_int_equal(tw_recovery_on_sent(r, APP, 4, MS(30), 100, AE, 4), 0);
    assert_int_equal(NOTIFIED, 3);
    /* A free from inside the callback happens when the call returns
     * (ASan would see a use after free otherwise). */
    assert_int_equal(tw_recovery_set_notify(r, on_notify, &NOTIFIED), 0);
    NOTIFY_ACTION = 1;
    assert_int_equal(check(r, MS(5000)), TW_RECOVERY_PTO | APP << 8);
    assert_int_equal(NOTIFIED, 4);
    NOTIFY_ACTION = 0;
}

/* Times that go backwards are taken as the latest seen. */
static void test_clock_backwards(void **state)
{
    (void)state;
    tw_recovery *r = make(TW_RECOVERY_RFC9002, 1, 1);
    assert_int_equal(tw_recovery_on_sent(r, APP, 0, MS(100), 100, AE, 1), 0);
    ack1(r, APP, 0, 0, 0, MS(50));  /* sample 0, not a wrapped difference */
    assert_int_equal(rtt_of(r).latest_ns, 0);
    assert_int_equal(tw_recovery_on_sent(r, APP, 1, MS(10), 100, AE, 1), 0);
    /* sent "at" 100: srtt 0, rttvar 0: 100 + max(0, 1) + 25 */
    assert_int_equal(deadline_of(r), MS(126));
    tw_recovery_free(r);
}

static void test_max_in_flight(void **state)
{
    (void)state;
    tw_recovery_config c;
    tw_recovery *r;
    tw_recovery_config_init(&c);
    c.max_in_flight = 2;
    c.is_server = 1;
    assert_int_equal(tw_recovery_new(&c, &r), 0);
    assert_int_equal(tw_recovery_on_sent(r, APP, 0, 0, 100, AE, 1), 0);
    assert_int_equal(tw_recovery_on_sent(r, TW_PN_INITIAL, 0, 0, 100, 0, 2), 0);
    assert_int_equal(tw_recovery_on_sent(r, APP, 1, 0, 100, AE, 3), TW_EAGAIN);
    assert_int_equal(stats_of(r).sent, 2);
    ack1(r, APP, 0, 0, 0, MS(10));
    /* pn 1 was refused, so it may be sent now */
    assert_int_equal(tw_recovery_on_sent(r, APP, 1, MS(10), 100, AE, 3), 0);
    tw_recovery_free(r);
}

static void test_bad_config(void **state)
{
    (void)state;
    tw_recovery *r = (tw_recovery *)&r;
    tw_recovery_config c;
    tw_recovery_config_init(NULL);
    assert_int_equal(tw_recovery_new(NULL, NULL), TW_EINVAL);
    for (int k = 0; k < 14; k++) {
        tw_recovery_config_init(&c);
        switch (k) {
        case 0: c.struct_size = sizeof(c) - 1; break;
        case 1: c.struct_size = 0; break;
        case 2: c.mode = 2; break;
        case 3: c.initial_rtt_ns = 0; break;
        case 4: c.granularity_ns = 0; break;
        case 5: c.packet_threshold = 0; break;
        case 6: c.time_threshold_den = 0; break;
        case 7: c.time_threshold_num = 7; break;    /* 7/8 < 1 */
        case 8: c.rto_min_ns = 0; break;
        case 9: c.rto_min_ns = MS(2000); break;    /* above the initial 1 s */
        case 10: c.rto_initial_ns = MS(70000); break; /* above the max */
        case 11: c.rto_max_ns = MS(59999); break;  /* RFC 6298 (2.5) */
        case 12: c.is_server = 2; break;
        default: c.struct_size = sizeof(c) + 8; break;
        }
        r = (tw_recovery *)&r;
        assert_int_equal(tw_recovery_new(&c, &r), TW_EINVAL);
        assert_null(r);
    }
    tw_recovery_config_init(&c);
    c.rto_min_ns = MS(1);
    c.rto_initial_ns = MS(1);
    c.rto_max_ns = UINT64_MAX;
    c.time_threshold_num = c.time_threshold_den = 1;
    c.packet_threshold = 1;
    c.max_ack_delay_ns = 0;
    assert_int_equal(tw_recovery_new(&c, &r), 0);
    tw_recovery_free(r);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    uint64_t f[4], t;
    uint32_t ev = 7;
    tw_rtt rt;
    tw_recovery_stats st;
    tw_recovery *r = make(TW_RECOVERY_RFC9002, 1, 1);
    tw_ack_range a = {0, 0};

    assert_int_equal(tw_recovery_on_sent(NULL, APP, 0, 0, 1, AE, 1), TW_EINVAL);
    assert_int_equal(tw_recovery_on_sent(r, TW_PN_SPACES, 0, 0, 1, AE, 1), TW_EINVAL);
    assert_int_equal(tw_recovery_on_sent(r, 99, 0, 0, 1, AE, 1), TW_EINVAL);
    assert_int_equal(tw_recovery_on_sent(r, APP, 0, 0, 1, 4, 1), TW_EINVAL);
    /* An ACK before anything was sent in the space */
    assert_int_equal(tw_recovery_on_ack(r, APP, &a, 1, 0, 0), TW_EINVAL);

    assert_int_equal(tw_recovery_on_sent(r, APP, 5, MS(1), 100, AE, 1), 0);
    assert_int_equal(tw_recovery_on_sent(r, APP, 5, MS(2), 100, AE, 2), TW_EINVAL);
    assert_int_equal(tw_recovery_on_sent(r, APP, 4, MS(2), 100, AE, 2), TW_EINVAL);
    assert_int_equal(tw_recovery_on_sent(r, APP, 7, MS(3), 100, AE, 3), 0);
    assert_int_equal(tw_recovery_on_sent(r, APP, 9, MS(4), 100, AE, 4), 0);
    uint64_t before = deadline_of(r);

    assert_int_equal(tw_recovery_on_ack(NULL, APP, &a, 1, 0, MS(5)), TW_EINVAL);
    assert_int_equal(tw_recovery_on_ack(r, 3, &a, 1, 0, MS(5)), TW_EINVAL);
    assert_int_equal(tw_recovery_on_ack(r, APP, NULL, 1, 0, MS(5)), TW_EINVAL);
    assert_int_equal(tw_recovery_on_ack(r, APP, &a, 0, 0, MS(5)), TW_EINVAL);
    /* An ACK of a packet never sent */
    tw_ack_range unsent[] = {{9, 10}};
    assert_int_equal(tw_recovery_on_ack(r, APP, unsent, 1, 0, MS(5)), TW_EINVAL);
    tw_ack_range inverted[] = {{7, 5}};
    assert_int_equal(tw_recovery_on_ack(r, APP, inverted, 1, 0, MS(5)), TW_EINVAL);
    tw_ack_range ascending[] = {{5, 5}, {9, 9}};
    assert_int_equal(tw_recovery_on_ack(r, APP, ascending, 2, 0, MS(5)), TW_EINVAL);
    tw_ack_range overlapping[] = {{7, 9}, {5, 7}};
    assert_int_equal(tw_recovery_on_ack(r, APP, overlapping, 2, 0, MS(5)), TW_EINVAL);
    tw_ack_range late_bad[] = {{9, 9}, {7, 7}, {3, 8}};
    assert_int_equal(tw_recovery_on_ack(r, APP, late_bad, 3, 0, MS(5)), TW_EINVAL);

    /* Nothing changed. */
    tw_recovery_stats s = stats_of(r);
    assert_int_equal(s.acked, 0);
    assert_int_equal(s.packets_in_flight, 3);
    assert_int_equal(rtt_of(r).samples, 0);
    assert_int_equal(deadline_of(r), before);
    /* Adjacent ranges are fine. */
    tw_ack_range adjacent[] = {{7, 9}, {5, 6}};
    assert_int_equal(tw_recovery_on_ack(r, APP, adjacent, 2, 0, MS(5)), 0);
    assert_int_equal(stats_of(r).acked, 3);

    assert_int_equal(tw_recovery_next_deadline(NULL, &t), TW_EINVAL);
    assert_int_equal(tw_recovery_next_deadline(r, NULL), TW_EINVAL);
    assert_int_equal(tw_recovery_check(NULL, 0, &ev), TW_EINVAL);
    assert_int_equal(ev, 0);
    assert_int_equal(tw_recovery_check(r, 0, NULL), TW_EINVAL);
    assert_int_equal(tw_recovery_take_frames(NULL, f, 4), 0);
    assert_int_equal(tw_recovery_take_frames(r, NULL, 4), 0);
    assert_int_equal(tw_recovery_take_retired(NULL, f, 4), 0);
    assert_int_equal(tw_recovery_take_retired(r, NULL, 4), 0);
    assert_int_equal(tw_recovery_set_notify(NULL, NULL, NULL), TW_EINVAL);
    assert_int_equal(tw_recovery_discard_space(NULL, 0), TW_EINVAL);
    assert_int_equal(tw_recovery_discard_space(r, APP), TW_EINVAL);
    assert_int_equal(tw_recovery_discard_space(r, 3), TW_EINVAL);
    assert_int_equal(tw_recovery_set_handshake_confirmed(NULL), TW_EINVAL);
    assert_int_equal(tw_recovery_set_amplification_limited(NULL, 0), TW_EINVAL);
    assert_int_equal(tw_recovery_set_amplification_limited(r, -1), TW_EINVAL);
    rt.struct_size = sizeof(rt);
    assert_int_equal(tw_recovery_rtt(NULL, &rt), TW_EINVAL);
    assert_int_equal(tw_recovery_rtt(r, NULL), TW_EINVAL);
    rt.struct_size = sizeof(size_t);
    assert_int_equal(tw_recovery_rtt(r, &rt), TW_EINVAL);
    st.struct_size = sizeof(st);
    assert_int_equal(tw_recovery_stats_get(NULL, &st), TW_EINVAL);
    assert_int_equal(tw_recovery_stats_get(r, NULL), TW_EINVAL);
    st.struct_size = 3;
    assert_int_equal(tw_recovery_stats_get(r, &st), TW_EINVAL);
    /* An older, shorter struct gets the members it has. */
    memset(&st, 0xff, sizeof(st));
    st.struct_size = offsetof(tw_recovery_stats, lost);
    assert_int_equal(tw_recovery_stats_get(r, &st), 0);
    assert_int_equal(st.struct_size, offsetof(tw_recovery_stats, lost));
    assert_int_equal(st.acked, 3);
    assert_int_equal(st.lost, UINT64_MAX);
    tw_recovery_free(r);
}

/* Thousands of packets at a steady window: the state stays consistent and
 * the memory bounded. */
static void test_steady_window(void **state)
{
    (void)state;
    uint64_t f[64];
    tw_recovery *r = make(TW_RECOVERY_RFC9002, 1, 1);
    uint64_t now = 0, sent = 0, acked = 0, lost = 0;
    for (uint64_t pn = 0; pn < 100000; pn++) {
        now += US(100);
        assert_int_equal(tw_recovery_on_sent(r, APP, pn, now, 1200, AE, pn + 1), 0);
        sent++;
        if (pn >= 32 && pn % 2 == 0) {
            /* ACK pn-31 and pn-30 every other packet; pn 0 and every
             * hundredth are never acked */
            uint64_t hi = pn - 30, lo = pn - 31;
            tw_ack_range a[2] = {{hi, hi}, {lo, lo}};
            size_t n = 2;
            if (hi % 100 == 0) {
                a[0].smallest = a[0].largest = lo;
                n = 1;
            }
            assert_int_equal(tw_recovery_on_ack(r, APP, a, n, 0, now), 0);
            acked += tw_recovery_take_retired(r, f, 64);
            lost += tw_recovery_take_frames(r, f, 64);
        }
        uint32_t ev;
        assert_int_equal(tw_recovery_check(r, now, &ev), 0);
        lost += tw_recovery_take_frames(r, f, 64);
    }
    tw_recovery_stats s = stats_of(r);
    assert_int_equal(s.sent, sent);
    assert_int_equal(s.acked, acked);
    assert_int_equal(s.lost, lost);
    assert_int_equal(lost, 1000);
    assert_int_equal(s.packets_in_flight, sent - acked - lost);
    assert_int_equal(s.bytes_in_flight, 1200 * s.packets_in_flight);
    assert_true(s.bytes < 8192);
    /* samples of 3.0 ms (pn-30) and 3.1 ms (pn-31 when pn-30 is missing) */
    assert_in_range(rtt_of(r).smoothed_ns, MS(3), MS(3) + US(100));
    tw_recovery_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_rtt_first_sample_and_smoothing),
        cmocka_unit_test(test_rtt_ack_delay),
        cmocka_unit_test(test_pto_backoff_and_reset),
        cmocka_unit_test(test_pto_probe_frames),
        cmocka_unit_test(test_pto_across_spaces),
        cmocka_unit_test(test_pto_anti_deadlock),
        cmocka_unit_test(test_loss_by_packet_and_time_threshold),
        cmocka_unit_test(test_loss_granularity_floor),
        cmocka_unit_test(test_loss_configured_thresholds),
        cmocka_unit_test(test_frames_retired_and_taken),
        cmocka_unit_test(test_discard_space),
        cmocka_unit_test(test_amplification_limit),
        cmocka_unit_test(test_rto_first_sample_and_min),
        cmocka_unit_test(test_rto_backoff_and_karn),
        cmocka_unit_test(test_retransmission_flag_in_rfc9002),
        cmocka_unit_test(test_rto_non_eliciting),
        cmocka_unit_test(test_idle_and_path_validation),
        cmocka_unit_test(test_notify),
        cmocka_unit_test(test_clock_backwards),
        cmocka_unit_test(test_max_in_flight),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_steady_window),
    };
    return cmocka_run_group_tests_name("recovery", tests, NULL, NULL);
}
