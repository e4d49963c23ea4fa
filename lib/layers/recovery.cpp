/*
 * RFC 9002 loss detection and RFC 6298 retransmission timeout.  Function
 * names in comments are those of RFC 9002 Appendix A; where this code
 * differs from the pseudocode, the comment says why.
 *
 * Uses: layers/recovery.hpp, lib/common.
 */
#include "layers/recovery.hpp"
#include "common/arith.hpp"
#include "common/copy-out.hpp"

namespace tw {

namespace {

constexpr uint64_t kMs = 1000000;
constexpr uint64_t kRtoMaxFloor = 60000 * kMs; /* RFC 6298 (2.5): a maximum is >= 60 s */
constexpr uint32_t kMaxShift = 63;
/* A check's events carry their space above the event bits, where
 * TW_RECOVERY_EVENT_SPACE reads it. */
constexpr unsigned kEventSpaceShift = 8;

uint32_t events_of(uint32_t bits, unsigned space)
{
    return bits | space << kEventSpaceShift;
}

/* Largest first, disjoint, each smallest <= largest. */
bool valid_ranges(const tw_ack_range *ranges, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (ranges[i].smallest > ranges[i].largest)
            return false;
        if (i && ranges[i].largest >= ranges[i - 1].smallest)
            return false;
    }
    return true;
}

uint64_t sat_shift(uint64_t a, uint32_t shift)
{
    if (a == 0)
        return 0;
    if (shift > kMaxShift || a > (TW_NEVER >> shift))
        return TW_NEVER;
    return a << shift;
}

uint64_t abs_diff(uint64_t a, uint64_t b)
{
    return a > b ? a - b : b - a;
}

} // namespace

bool Recovery::valid_config(const tw_recovery_config &c)
{
    return c.mode <= TW_RECOVERY_RFC6298 && c.is_server <= 1 && c.initial_rtt_ns > 0 &&
           c.granularity_ns > 0 && c.packet_threshold >= 1 && c.time_threshold_den > 0 &&
           c.time_threshold_num >= c.time_threshold_den && c.rto_min_ns > 0 &&
           c.rto_min_ns <= c.rto_initial_ns && c.rto_initial_ns <= c.rto_max_ns &&
           c.rto_max_ns >= kRtoMaxFloor;
}

void Recovery::init(const tw_recovery_config &c, tw_recovery *self)
{
    mode_ = c.mode;
    is_server_ = c.is_server != 0;
    initial_rtt_ = c.initial_rtt_ns;
    max_ack_delay_ = c.max_ack_delay_ns;
    granularity_ = c.granularity_ns;
    packet_threshold_ = c.packet_threshold;
    time_num_ = c.time_threshold_num;
    time_den_ = c.time_threshold_den;
    max_in_flight_ = c.max_in_flight;
    rto_initial_ = c.rto_initial_ns;
    rto_min_ = c.rto_min_ns;
    rto_max_ = c.rto_max_ns;
    /* RFC 9002 A.4: before the first sample. */
    smoothed_rtt_ = initial_rtt_;
    rttvar_ = initial_rtt_ / 2;
    self_ = self;
}

uint64_t Recovery::clamp(uint64_t now)
{
    if (now < now_)
        now = now_;
    now_ = now;
    return now;
}

/* PeerCompletedAddressValidation: a server takes the client's address as
 * validated; a client knows the server validated its address once it gets
 * a Handshake ACK or the handshake is confirmed. */
bool Recovery::peer_validated() const
{
    return is_server_ || handshake_acked_ || confirmed_;
}

uint64_t Recovery::ack_eliciting_total() const
{
    return spaces_[0].ack_eliciting + spaces_[1].ack_eliciting + spaces_[2].ack_eliciting;
}

uint64_t Recovery::pto_base() const
{
    return sat_add(smoothed_rtt_, max64(sat_shift(rttvar_, 2), granularity_));
}

/* RFC 6298 (2.1)-(2.5) and (5.5): 1 s before a sample, then
 * SRTT + max(G, 4 RTTVAR) rounded up to the minimum; doubled per expiry;
 * never above the maximum. */
uint64_t Recovery::rto() const
{
    uint64_t base = rto_initial_;
    if (samples_)
        base = max64(rto_min_, sat_add(smoothed_rtt_, max64(granularity_, sat_shift(rttvar_, 2))));
    return min64(rto_max_, sat_shift(base, rto_backoff_));
}

/* UpdateRtt (RFC 9002 s5.3, A.7); in RFC 6298 mode the same smoothing
 * without the ack delay (RFC 6298 (2.2), (2.3)). */
void Recovery::update_rtt(uint64_t latest, uint64_t ack_delay, unsigned space)
{
    latest_rtt_ = latest;
    if (samples_++ == 0) {
        min_rtt_ = latest;
        smoothed_rtt_ = latest;
        rttvar_ = latest / 2;
        return;
    }
    min_rtt_ = min64(min_rtt_, latest);
    uint64_t adjusted = latest;
    if (mode_ == TW_RECOVERY_RFC9002) {
        /* Initial ACKs are never delayed on purpose, so their delay is
         * ignored (s5.3 allows it); after confirmation the delay is capped
         * at max_ack_delay; never subtract below min_rtt. */
        if (space == TW_PN_INITIAL)
            ack_delay = 0;
        if (confirmed_)
            ack_delay = min64(ack_delay, max_ack_delay_);
        if (latest >= sat_add(min_rtt_, ack_delay))
            adjusted = latest - ack_delay;
    }
    rttvar_ = uint64_t((u128(rttvar_) * 3 + abs_diff(smoothed_rtt_, adjusted)) / 4);
    smoothed_rtt_ = uint64_t((u128(smoothed_rtt_) * 7 + adjusted) / 8);
}

/* A record leaves flight, acked or lost; it stays as a tombstone. */
void Recovery::unlink(Space &s, Sent &p, uint16_t state)
{
    p.state = state;
    s.outstanding--;
    in_flight_--;
    if (p.flags & TW_RECOVERY_ACK_ELICITING) {
        s.ack_eliciting--;
        bytes_in_flight_ -= p.bytes;
    }
}

/* Room in the frame queue was reserved by the caller. */
void Recovery::lose(unsigned space, Sent &p)
{
    unlink(spaces_[space], p, kLost);
    lost_++;
    if (p.frames)
        frames_.push_back(Queued{p.frames, space, 0});
}

size_t Recovery::lower_bound(const Space &s, uint64_t pn) const
{
    size_t lo = 0, hi = s.sent.size();
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s.sent[mid].pn < pn)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void Recovery::pop_tombstones(Space &s)
{
    while (s.sent.size() && s.sent.front().state != kOutstanding)
        s.sent.pop_front();
}

/* DetectAndRemoveLostPackets (A.10); returns how many were lost. */
uint64_t Recovery::detect_lost(unsigned space, uint64_t now)
{
    Space &s = spaces_[space];
    s.loss_time = TW_NEVER;
    if (!s.any_acked)
        return 0;
    /* loss_delay = max(kTimeThreshold * max(latest_rtt, smoothed_rtt), G) */
    uint64_t loss_delay =
        sat_u128(u128(max64(latest_rtt_, smoothed_rtt_)) * time_num_ / time_den_);
    loss_delay = max64(loss_delay, granularity_);
    uint64_t lost = 0;
    for (size_t i = 0; i < s.sent.size(); i++) {
        Sent &p = s.sent[i];
        if (p.pn > s.largest_acked)
            break;
        if (p.state != kOutstanding)
            continue;
        /* time_sent <= now - loss_delay, without going below 0. */
        bool by_time = now >= loss_delay && p.time <= now - loss_delay;
        bool by_count = s.largest_acked - p.pn >= packet_threshold_;
        if (by_time || by_count) {
            lose(space, p);
            lost++;
        } else {
            s.loss_time = min64(s.loss_time, sat_add(p.time, loss_delay));
        }
    }
    pop_tombstones(s);
    return lost;
}

/* GetLossTimeAndSpace (A.8): the earliest loss time, Initial first on ties. */
unsigned Recovery::loss_time_and_space(uint64_t *time) const
{
    unsigned space = TW_PN_INITIAL;
    uint64_t t = spaces_[TW_PN_INITIAL].loss_time;
    for (unsigned sp = TW_PN_HANDSHAKE; sp < TW_PN_SPACES; sp++) {
        if (spaces_[sp].loss_time < t) {
            t = spaces_[sp].loss_time;
            space = sp;
        }
    }
    *time = t;
    return space;
}

/* GetPtoTimeAndSpace (A.8). */
Recovery::Pto Recovery::pto_time_and_space() const
{
    uint64_t duration = sat_shift(pto_base(), pto_count_);
    if (ack_eliciting_total() == 0) {
        /* Anti-deadlock: from the latest time seen, in Handshake when its
         * keys exist (something was sent in it, or Initial discarded). */
        return Pto{sat_add(now_, duration),
                   handshake_keys_ ? unsigned(TW_PN_HANDSHAKE) : unsigned(TW_PN_INITIAL)};
    }
    Pto pto{TW_NEVER, TW_PN_INITIAL};
    for (unsigned sp = 0; sp < TW_PN_SPACES; sp++) {
        const Space &s = spaces_[sp];
        if (s.ack_eliciting == 0)
            continue;
        if (sp == TW_PN_APPLICATION) {
            if (!confirmed_)
                return pto;
            duration = sat_add(duration, sat_shift(max_ack_delay_, pto_count_));
        }
        uint64_t t = sat_add(s.last_ack_eliciting, duration);
        if (t < pto.time)
            pto = Pto{t, sp};
    }
    return pto;
}

/* SetLossDetectionTimer (A.8); in RFC 6298 mode the timer is managed by
 * the RTO rules at each call site instead. */
void Recovery::set_timer()
{
    uint64_t loss_time;
    loss_time_and_space(&loss_time);
    if (loss_time != TW_NEVER) {
        timer_ = loss_time;
        return;
    }
    if (is_server_ && amplification_limited_) {
        timer_ = TW_NEVER;
        return;
    }
    if (ack_eliciting_total() == 0 && peer_validated()) {
        timer_ = TW_NEVER;
        return;
    }
    timer_ = pto_time_and_space().time;
}

/* Tells the notify callback when the deadline moved since it last heard. */
void Recovery::finish()
{
    if (timer_ == reported_)
        return;
    reported_ = timer_;
    if (notify_) {
        notifying_ = true;
        notify_(self_, notify_userdata_);
        notifying_ = false;
    }
}

/* OnPacketSent (A.5). */
int Recovery::on_sent(unsigned space, uint64_t pn, uint64_t now, uint32_t bytes,
                      unsigned flags, uint64_t frames)
{
    if (space >= TW_PN_SPACES || (flags & ~unsigned(TW_RECOVERY_ACK_ELICITING |
                                                    TW_RECOVERY_RETRANSMISSION)))
        return TW_EINVAL;
    Space &s = spaces_[space];
    if (s.discarded || (s.any_sent && pn <= s.largest_sent))
        return TW_EINVAL;
    bool eliciting = flags & TW_RECOVERY_ACK_ELICITING;
    if (mode_ == TW_RECOVERY_RFC6298 && !eliciting) {
        /* TCP tracks nothing that elicits no ACK: the handle retires now. */
        if (frames && !retired_.reserve(retired_.size() + 1))
            return TW_ENOMEM;
        clamp(now);
        s.any_sent = true;
        s.largest_sent = pn;
        sent_++;
        if (frames)
            retired_.push_back(frames);
        return 0;
    }
    if (max_in_flight_ && in_flight_ >= max_in_flight_)
        return TW_EAGAIN;
    if (!s.sent.reserve(s.sent.size() + 1))
        return TW_ENOMEM;
    now = clamp(now);
    s.any_sent = true;
    s.largest_sent = pn;
    s.sent.push_back(Sent{pn, now, frames, bytes, uint16_t(flags), kOutstanding});
    s.outstanding++;
    in_flight_++;
    sent_++;
    if (space == TW_PN_HANDSHAKE)
        handshake_keys_ = true;
    if (!eliciting)
        return 0;   /* not in flight: the timer does not move */
    s.ack_eliciting++;
    s.last_ack_eliciting = now;
    bytes_in_flight_ += bytes;
    if (mode_ == TW_RECOVERY_RFC9002)
        set_timer();
    else if (timer_ == TW_NEVER)
        timer_ = sat_add(now, rto());       /* RFC 6298 (5.1) */
    finish();
    return 0;
}

/* DetectAndRemoveAckedPackets (A.7): retires the outstanding records of
 * ranges, whose room in the retired queue was reserved, smallest range
 * first, so the last record acked is the largest newly acked. */
Recovery::Acked Recovery::ack_ranges(Space &s, const tw_ack_range *ranges, size_t n)
{
    Acked a{nullptr, false, 0};
    for (size_t k = n; k-- > 0;) {
        for (size_t i = lower_bound(s, ranges[k].smallest);
             i < s.sent.size() && s.sent[i].pn <= ranges[k].largest; i++) {
            Sent &p = s.sent[i];
            if (p.state != kOutstanding)
                continue;
            unlink(s, p, kAcked);
            acked_++;
            a.newly++;
            if (p.frames)
                retired_.push_back(p.frames);
            a.eliciting |= (p.flags & TW_RECOVERY_ACK_ELICITING) != 0;
            a.largest = &p;
        }
    }
    return a;
}

/* OnAckReceived (A.7). */
int Recovery::on_ack(unsigned space, const tw_ack_range *ranges, size_t n, uint64_t ack_delay,
                     uint64_t now)
{
    if (space >= TW_PN_SPACES || !ranges || n == 0)
        return TW_EINVAL;
    Space &s = spaces_[space];
    if (s.discarded || !s.any_sent || ranges[0].largest > s.largest_sent ||
        !valid_ranges(ranges, n))
        return TW_EINVAL;
    /* Every outstanding record may be retired or lost. */
    if (!retired_.reserve(retired_.size() + s.outstanding) ||
        !frames_.reserve(frames_.size() + s.outstanding))
        return TW_ENOMEM;
    now = clamp(now);
    if (space == TW_PN_HANDSHAKE)
        handshake_acked_ = true;
    if (!s.any_acked || ranges[0].largest > s.largest_acked)
        s.largest_acked = ranges[0].largest;
    s.any_acked = true;

    Acked a = ack_ranges(s, ranges, n);
    if (a.newly == 0) {
        pop_tombstones(s);
        return 0;
    }
    /* An RTT sample when the largest acknowledged is newly acked and
     * something ack-eliciting was; in RFC 6298 mode, by Karn's rule, not
     * when that packet carried a retransmission. */
    bool sample = a.largest->pn == ranges[0].largest && a.eliciting;
    if (mode_ == TW_RECOVERY_RFC6298 && (a.largest->flags & TW_RECOVERY_RETRANSMISSION))
        sample = false;
    if (sample)
        update_rtt(now - a.largest->time, ack_delay, space);

    if (mode_ == TW_RECOVERY_RFC9002) {
        detect_lost(space, now);
        if (peer_validated())
            pto_count_ = 0;
        set_timer();
    } else {
        /* Karn: the backed-off RTO stays until a sample is taken.
         * (5.2) nothing outstanding: stop; (5.3) else restart. */
        if (sample)
            rto_backoff_ = 0;
        timer_ = ack_eliciting_total() ? sat_add(now, rto()) : TW_NEVER;
    }
    pop_tombstones(s);
    finish();
    return 0;
}

int Recovery::next_deadline(uint64_t *ret) const
{
    if (timer_ == TW_NEVER)
        return TW_ENOENT;
    *ret = timer_;
    return 0;
}

/* OnLossDetectionTimeout (A.9), once; or the RTO expiry of RFC 6298 (5.4)
 * to (5.6). */
int Recovery::check(uint64_t now, uint32_t *ret)
{
    *ret = 0;
    if (timer_ == TW_NEVER || timer_ > max64(now, now_)) {
        clamp(now);
        return 0;
    }
    if (mode_ == TW_RECOVERY_RFC6298)
        return rto_timeout(now, ret);
    uint64_t loss_time;
    unsigned space = loss_time_and_space(&loss_time);
    if (loss_time != TW_NEVER) {
        if (!frames_.reserve(frames_.size() + spaces_[space].outstanding))
            return TW_ENOMEM;
        now = clamp(now);
        if (detect_lost(space, now))
            *ret = events_of(TW_RECOVERY_LOSS, space);
        set_timer();
        finish();
        return 0;
    }
    return pto_timeout(now, ret);
}

/* The RTO expiry of RFC 6298 (5.4) to (5.6): retransmit the earliest
 * packet not acked, the oldest outstanding ack-eliciting record over the
 * spaces. */
int Recovery::rto_timeout(uint64_t now, uint32_t *ret)
{
    Sent *oldest = nullptr;
    unsigned space = 0;
    for (unsigned sp = 0; sp < TW_PN_SPACES; sp++) {
        Space &s = spaces_[sp];
        for (size_t i = 0; i < s.sent.size(); i++) {
            Sent &p = s.sent[i];
            if (p.state != kOutstanding || !(p.flags & TW_RECOVERY_ACK_ELICITING))
                continue;
            if (!oldest || p.time < oldest->time) {
                oldest = &p;
                space = sp;
            }
            break;
        }
    }
    if (!oldest) {          /* cannot happen: the timer runs while one is */
        timer_ = TW_NEVER;
        finish();
        return 0;
    }
    if (!frames_.reserve(frames_.size() + 1))
        return TW_ENOMEM;
    now = clamp(now);
    lose(space, *oldest);
    pop_tombstones(spaces_[space]);
    rto_fired_++;
    if (rto_backoff_ < kMaxShift)
        rto_backoff_++;     /* (5.5) */
    timer_ = ack_eliciting_total() ? sat_add(now, rto()) : TW_NEVER;  /* (5.6) */
    *ret = events_of(TW_RECOVERY_RTO, space);
    finish();
    return 0;
}

/* The probe timeout of OnLossDetectionTimeout (A.9). */
int Recovery::pto_timeout(uint64_t now, uint32_t *ret)
{
    unsigned space;
    if (!frames_.reserve(frames_.size() + kProbePackets))
        return TW_ENOMEM;
    now = clamp(now);
    if (ack_eliciting_total() == 0) {
        /* Anti-deadlock probe: the caller sends one packet, padded Initial
         * or Handshake; there is nothing of ours to resend. */
        space = handshake_keys_ ? TW_PN_HANDSHAKE : TW_PN_INITIAL;
    } else {
        /* Probes: new data if the caller has some, else these, the oldest
         * data in flight.  The packets are not declared lost. */
        space = pto_time_and_space().space;
        Space &s = spaces_[space];
        unsigned queued = 0;
        for (size_t i = 0; i < s.sent.size() && queued < kProbePackets; i++) {
            Sent &p = s.sent[i];
            if (p.state != kOutstanding || !(p.flags & TW_RECOVERY_ACK_ELICITING) || !p.frames)
                continue;
            frames_.push_back(Queued{p.frames, space, 1});
            queued++;
        }
    }
    pto_fired_++;
    if (pto_count_ < kMaxShift)
        pto_count_++;
    set_timer();
    *ret = events_of(TW_RECOVERY_PTO, space);
    finish();
    return 0;
}

size_t Recovery::take_frames(uint64_t *frames, size_t cap)
{
    size_t n = 0;
    while (n < cap && frames_.size()) {
        frames[n++] = frames_.front().frames;
        frames_.pop_front();
    }
    return n;
}

size_t Recovery::take_retired(uint64_t *frames, size_t cap)
{
    size_t n = 0;
    while (n < cap && retired_.size()) {
        frames[n++] = retired_.front();
        retired_.pop_front();
    }
    return n;
}

void Recovery::set_notify(tw_recovery_notify_fn *fn, void *userdata)
{
    notify_ = fn;
    notify_userdata_ = userdata;
    reported_ = timer_;
}

/* OnPacketNumberSpaceDiscarded (A.11).  The Application space is never
 * discarded before the connection ends, as the RFC asserts. */
int Recovery::discard_space(unsigned space)
{
    if (space >= TW_PN_APPLICATION)
        return TW_EINVAL;
    Space &s = spaces_[space];
    if (s.discarded)
        return 0;
    size_t queued = 0;
    for (size_t i = 0; i < frames_.size(); i++)
        queued += frames_[i].space == space;
    if (!retired_.reserve(retired_.size() + s.outstanding + queued))
        return TW_ENOMEM;
    for (size_t i = 0; i < s.sent.size(); i++) {
        Sent &p = s.sent[i];
        if (p.state != kOutstanding)
            continue;
        unlink(s, p, kLost);
        discarded_++;
        if (p.frames)
            retired_.push_back(p.frames);
    }
    s.sent.clear();
    s.sent.release();   /* the space is done with: a connection keeps one ring */
    /* Handles queued for retransmission in this space will never be sent
     * again: those of lost packets retire too; probe copies just go, as
     * their packets were retired above.  The queue keeps its order. */
    size_t w = 0;
    for (size_t i = 0; i < frames_.size(); i++) {
        if (frames_[i].space != space)
            frames_[w++] = frames_[i];
        else if (!frames_[i].probe)
            retired_.push_back(frames_[i].frames);
    }
    frames_.truncate(w);
    s.discarded = true;
    s.loss_time = TW_NEVER;
    s.last_ack_eliciting = 0;
    if (space == TW_PN_INITIAL)
        handshake_keys_ = true;
    pto_count_ = 0;
    if (mode_ == TW_RECOVERY_RFC9002)
        set_timer();
    else if (ack_eliciting_total() == 0)
        timer_ = TW_NEVER;
    finish();
    return 0;
}

int Recovery::set_handshake_confirmed()
{
    confirmed_ = true;
    if (mode_ == TW_RECOVERY_RFC9002)
        set_timer();
    finish();
    return 0;
}

int Recovery::set_amplification_limited(bool limited)
{
    /* Only a server is bound by the limit.  A client ignores the call:
     * recomputing its timer would restart (or arm) the anti-deadlock
     * timer from the latest time seen. */
    if (!is_server_)
        return 0;
    amplification_limited_ = limited;
    if (mode_ == TW_RECOVERY_RFC9002)
        set_timer();
    finish();
    return 0;
}

void Recovery::rtt(tw_rtt *ret) const
{
    tw_rtt r;
    std::memset(&r, 0, sizeof(r));
    r.latest_ns = latest_rtt_;
    r.smoothed_ns = smoothed_rtt_;
    r.rttvar_ns = rttvar_;
    r.min_ns = min_rtt_;
    r.pto_ns = sat_add(pto_base(), max_ack_delay_);
    r.pto_initial_ns = sat_add(sat_add(initial_rtt_, max64(sat_shift(initial_rtt_ / 2, 2),
                                                           granularity_)),
                               max_ack_delay_);
    r.rto_ns = rto();
    r.samples = samples_;
    r.pto_count = pto_count_;
    r.rto_backoff = rto_backoff_;
    copy_out(r, ret);
}

void Recovery::stats(tw_recovery_stats *ret) const
{
    tw_recovery_stats s;
    std::memset(&s, 0, sizeof(s));
    s.sent = sent_;
    s.acked = acked_;
    s.lost = lost_;
    s.discarded = discarded_;
    s.pto = pto_fired_;
    s.rto = rto_fired_;
    s.packets_in_flight = in_flight_;
    s.ack_eliciting_in_flight = ack_eliciting_total();
    s.bytes_in_flight = bytes_in_flight_;
    s.frames_queued = frames_.size();
    s.retired_queued = retired_.size();
    s.bytes = sizeof(*this) + frames_.bytes() + retired_.bytes();
    for (const Space &sp : spaces_)
        s.bytes += sp.sent.bytes();
    copy_out(s, ret);
}

} // namespace tw
