/*
 * The reliability layer: RTT estimation, loss detection and the probe
 * timeout of RFC 9002 (Appendix A's pseudocode, function by function), or
 * the retransmission timeout of RFC 6298, over the packets a connection
 * sent, each with the caller's opaque 64-bit frame handle.
 *
 * Why it exists: the connection's manager asks one question of it -- when
 * must I call you next -- and gets one deadline, the loss-detection timer,
 * which is the earliest over the three packet-number spaces of either a
 * time-threshold loss time or the probe timeout.  Never a timer per packet.
 *
 * Storage: per space, a ring of sent-packet records ordered by packet
 * number (packets are sent with increasing numbers).  An acked or lost
 * record in the middle stays as a tombstone until every older record is
 * gone too; loss detection bounds how long that is.  Acks find their first
 * record by binary search and walk forward.  The rings and the two handle
 * queues double when full and never shrink, so a connection at a steady
 * window allocates nothing.  Room in the queues is reserved before any
 * state changes, so a failed allocation leaves everything as it was.
 *
 * Limits: times are uint64_t nanoseconds; sums saturate at TW_NEVER, which
 * means no deadline.  Times that go backwards are clamped to the latest
 * seen.  Spurious losses (a lost packet acked later) are not detected:
 * lost records are dropped as the RFC's pseudocode drops them.
 *
 * Uses: tickwheel.h (types and constants) only: it reads no clock and
 * arms no timer.  lib/capi wraps it; layers/recovery-layer.cpp makes it a
 * connection layer.
 */
#ifndef TW_LAYERS_RECOVERY_HPP
#define TW_LAYERS_RECOVERY_HPP

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "tickwheel.h"

namespace tw {

/* A growable ring, capacity a power of two.  Elements are trivially
 * copyable; they move when it grows. */
template <typename T>
class Ring {
public:
    /* Capacities are powers of two: indices wrap by a mask. */
    static constexpr size_t kFirstCapacity = 4;
    static_assert((kFirstCapacity & (kFirstCapacity - 1)) == 0, "a power of two");

    Ring() = default;
    Ring(const Ring &) = delete;
    Ring &operator=(const Ring &) = delete;
    ~Ring() { std::free(data_); }

    size_t size() const { return size_; }
    size_t bytes() const { return cap_ * sizeof(T); }
    T &operator[](size_t i) { return data_[(head_ + i) & (cap_ - 1)]; }
    const T &operator[](size_t i) const { return data_[(head_ + i) & (cap_ - 1)]; }
    T &front() { return (*this)[0]; }

    /* Gives the memory back; only when empty. */
    void release()
    {
        if (size_)
            return;
        std::free(data_);
        data_ = nullptr;
        cap_ = 0;
        head_ = 0;
    }
    /* Room for n elements; false when memory is short (nothing changed). */
    bool reserve(size_t n)
    {
        if (n <= cap_)
            return true;
        size_t cap = cap_ ? cap_ : kFirstCapacity;
        while (cap < n) {
            if (cap > SIZE_MAX / 2 / sizeof(T))
                return false;
            cap *= 2;
        }
        T *data = static_cast<T *>(std::malloc(cap * sizeof(T)));
        if (!data)
            return false;
        for (size_t i = 0; i < size_; i++)
            data[i] = (*this)[i];
        std::free(data_);
        data_ = data;
        cap_ = cap;
        head_ = 0;
        return true;
    }
    /* Only within the room reserved. */
    void push_back(const T &v)
    {
        data_[(head_ + size_) & (cap_ - 1)] = v;
        size_++;
    }
    void pop_front()
    {
        head_ = (head_ + 1) & (cap_ - 1);
        size_--;
    }
    void truncate(size_t n) { size_ = n; }
    void clear() { size_ = head_ = 0; }

private:
    T *data_ = nullptr;
    size_t cap_ = 0, head_ = 0, size_ = 0;
};

class Recovery {
public:
    static constexpr unsigned kProbePackets = 2; /* handles queued per PTO */

    /* The configuration must have been checked by valid_config. */
    void init(const tw_recovery_config &config, tw_recovery *self);
    static bool valid_config(const tw_recovery_config &c);

    int on_sent(unsigned space, uint64_t pn, uint64_t now, uint32_t bytes, unsigned flags,
                uint64_t frames);
    int on_ack(unsigned space, const tw_ack_range *ranges, size_t n, uint64_t ack_delay,
               uint64_t now);
    int next_deadline(uint64_t *ret) const;
    int check(uint64_t now, uint32_t *ret);
    size_t take_frames(uint64_t *frames, size_t cap);
    size_t take_retired(uint64_t *frames, size_t cap);
    void set_notify(tw_recovery_notify_fn *fn, void *userdata);
    int discard_space(unsigned space);
    int set_handshake_confirmed();
    int set_amplification_limited(bool limited);
    void rtt(tw_rtt *ret) const;
    void stats(tw_recovery_stats *ret) const;

    bool notifying() const { return notifying_; }
    tw_recovery_notify_fn *notify_fn() const { return notify_; }
    bool free_requested() const { return free_requested_; }
    void request_free() { free_requested_ = true; }

private:
    enum : uint16_t { kOutstanding, kAcked, kLost };

    struct Sent {
        uint64_t pn;
        uint64_t time;
        uint64_t frames;
        uint32_t bytes;
        uint16_t flags;
        uint16_t state;
    };
    /* A handle to retransmit: the one report of a lost packet, or a copy
     * taken as a probe from a packet still in flight. */
    struct Queued {
        uint64_t frames;
        uint32_t space;
        uint32_t probe;
    };
    struct Space {
        Ring<Sent> sent;
        uint64_t largest_sent = 0;
        uint64_t largest_acked = 0;
        uint64_t loss_time = TW_NEVER;     /* TW_NEVER: not set */
        uint64_t last_ack_eliciting = 0;   /* time_of_last_ack_eliciting_packet */
        uint64_t outstanding = 0;          /* records not acked or lost */
        uint64_t ack_eliciting = 0;        /* of those, ack-eliciting */
        bool any_sent = false, any_acked = false, discarded = false;
    };
    struct Pto {
        uint64_t time;
        unsigned space;
    };

    uint64_t clamp(uint64_t now);
    bool peer_validated() const;
    uint64_t ack_eliciting_total() const;
    uint64_t pto_base() const;          /* srtt + max(4 rttvar, G) */
    uint64_t rto() const;               /* with its backoff */
    void update_rtt(uint64_t latest, uint64_t ack_delay, unsigned space);
    void unlink(Space &s, Sent &p, uint16_t state);
    void lose(unsigned space, Sent &p);
    size_t lower_bound(const Space &s, uint64_t pn) const;
    void pop_tombstones(Space &s);
    uint64_t detect_lost(unsigned space, uint64_t now);
    unsigned loss_time_and_space(uint64_t *time) const;
    Pto pto_time_and_space() const;
    struct Acked {
        const Sent *largest;    /* the largest record newly acked */
        bool eliciting;         /* an ack-eliciting one among them */
        uint64_t newly;
    };
    Acked ack_ranges(Space &s, const tw_ack_range *ranges, size_t n);
    int rto_timeout(uint64_t now, uint32_t *ret);
    int pto_timeout(uint64_t now, uint32_t *ret);
    void set_timer();
    void finish();

    Space spaces_[TW_PN_SPACES];
    Ring<Queued> frames_;
    Ring<uint64_t> retired_;

    /* Configuration. */
    uint32_t mode_ = TW_RECOVERY_RFC9002;
    bool is_server_ = false;
    uint64_t initial_rtt_ = 0, max_ack_delay_ = 0, granularity_ = 0;
    uint32_t packet_threshold_ = 3, time_num_ = 9, time_den_ = 8, max_in_flight_ = 0;
    uint64_t rto_initial_ = 0, rto_min_ = 0, rto_max_ = 0;

    /* The estimator (RFC 9002 s5, RFC 6298 s2). */
    uint64_t latest_rtt_ = 0, smoothed_rtt_ = 0, rttvar_ = 0, min_rtt_ = 0, samples_ = 0;
    uint32_t pto_count_ = 0, rto_backoff_ = 0;

    /* Connection state that decides the timer. */
    bool confirmed_ = false, handshake_acked_ = false, handshake_keys_ = false;
    bool amplification_limited_ = false;
    uint64_t now_ = 0;
    uint64_t timer_ = TW_NEVER;     /* the loss-detection deadline */
    uint64_t reported_ = TW_NEVER;  /* timer_ at the last notification */

    uint64_t bytes_in_flight_ = 0, in_flight_ = 0;
    uint64_t sent_ = 0, acked_ = 0, lost_ = 0, discarded_ = 0, pto_fired_ = 0, rto_fired_ = 0;

    tw_recovery *self_ = nullptr;
    tw_recovery_notify_fn *notify_ = nullptr;
    void *notify_userdata_ = nullptr;
    bool notifying_ = false, free_requested_ = false;
};

} // namespace tw

/* The C handle of a reliability layer: what tw_recovery_new returns. */
struct tw_recovery {
    tw::Recovery core;
};

namespace tw {

/* The rules of the notify callback, for the C boundary and the layer ops
 * alike: a call that would change state from inside the callback is
 * refused, and a free asked for there is deferred until the call that ran
 * the callback returns. */
inline bool recovery_busy(const tw_recovery *r)
{
    return r->core.notifying();
}

/* After a call that may have run the notify callback: the deferred free. */
inline int recovery_finish(tw_recovery *r, int result)
{
    if (r->core.free_requested() && !r->core.notifying())
        delete r;
    return result;
}

} // namespace tw

#endif
