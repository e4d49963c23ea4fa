/*
 * tw-bench peer adapters: libevent 2.1.  One struct event per timer, in an array
 * (evtimer_assign on event_struct.h's layout), armed with evtimer_add, which
 * also moves an armed timer, and disarmed with event_del.
 *
 * libevent-heap passes each delay as a plain timeval: all timers share one
 * min-heap.  libevent-common passes one of kCommonDurations common timeouts
 * (event_base_init_common_timeout): each duration keeps a deadline-ordered
 * list and only the list's head sits in the heap.  Common timeouts pay off
 * only with a few distinct durations, so that adapter quantizes every delay
 * to the middle of its sixteenth of [1 ms, 30 s]; the table says so.
 *
 * Timers are armed from a loop callback (in_loop), where event_add reads
 * the base's cached time instead of the clock, as in an application.
 *
 * Uses: peers.hpp; libevent 2.1 (event2/event.h, event_struct.h).
 */
#include "peers.hpp"

#include <event2/event.h>
#include <event2/event_struct.h>

#include <memory>

namespace bench {
namespace {

constexpr std::size_t kCommonDurations = 16;

timeval to_timeval(std::uint64_t ns)
{
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
    tv.tv_usec = static_cast<suseconds_t>(ns % 1'000'000'000 / 1000);
    return tv;
}

std::size_t common_index(std::uint64_t delay_ns)
{
    return static_cast<std::size_t>((delay_ns - kDelayMinNs) * kCommonDurations /
                                    (kDelayMaxNs - kDelayMinNs + 1));
}

std::uint64_t common_duration_ns(std::size_t index)
{
    return kDelayMinNs + (2 * index + 1) * (kDelayMaxNs - kDelayMinNs) / (2 * kCommonDurations);
}

enum class Timeouts { heap, common };

template <Timeouts kTimeouts>
class Libevent {
public:
    explicit Libevent(std::size_t capacity) : events_(new event[capacity]), base_(event_base_new())
    {
        if (!base_)
            return;
        for (std::size_t slot = 0; slot < capacity; ++slot)
            if (evtimer_assign(&events_[slot], base_, on_fire, &fired_) != 0)
                return;
        if constexpr (kTimeouts == Timeouts::common) {
            for (std::size_t i = 0; i < kCommonDurations; ++i) {
                const timeval tv = to_timeval(common_duration_ns(i));
                const timeval expiring = to_timeval(common_duration_ns(i) / kExpiryScale);
                common_[i] = event_base_init_common_timeout(base_, &tv);
                common_expiring_[i] = event_base_init_common_timeout(base_, &expiring);
                if (!common_[i] || !common_expiring_[i])
                    return;
            }
        }
        ok_ = true;
    }
    /* event_base_free() deletes the events still armed, so it runs before
     * the array is freed. */
    ~Libevent()
    {
        if (base_)
            event_base_free(base_);
    }
    Libevent(const Libevent &) = delete;
    Libevent &operator=(const Libevent &) = delete;

    bool ok() const { return ok_; }

    template <class F>
    bool in_loop(const F &body)
    {
        struct Call {
            Libevent *self;
            const F *body;
            bool ran;
        } call{this, &body, false};
        const event_callback_fn run = [](evutil_socket_t, short, void *arg) {
            auto *c = static_cast<Call *>(arg);
            c->self->expiry_.mark();
            (*c->body)();
            c->ran = true;
        };
        event kick;
        if (event_assign(&kick, base_, -1, 0, run, &call) != 0)
            return false;
        event_active(&kick, 0, 0);
        return event_base_loop(base_, EVLOOP_ONCE) == 0 && call.ran;
    }

    bool add(std::size_t slot, std::uint64_t delay_ns)
    {
        if constexpr (kTimeouts == Timeouts::common) {
            return evtimer_add(&events_[slot], common_[common_index(delay_ns)]) == 0;
        } else {
            const timeval tv = to_timeval(delay_ns);
            return evtimer_add(&events_[slot], &tv) == 0;
        }
    }
    bool cancel(std::size_t slot) { return event_del(&events_[slot]) == 0; }
    bool reschedule(std::size_t slot, std::uint64_t delay_ns) { return add(slot, delay_ns); }

    bool add_expiring(std::size_t slot, std::uint64_t delay_ns)
    {
        if constexpr (kTimeouts == Timeouts::common) {
            return evtimer_add(&events_[slot], common_expiring_[common_index(delay_ns)]) == 0;
        } else {
            const timeval tv = to_timeval(delay_ns / kExpiryScale);
            return evtimer_add(&events_[slot], &tv) == 0;
        }
    }
    void wait_due() { expiry_.wait(); }
    bool fire_all() { return event_base_loop(base_, EVLOOP_ONCE | EVLOOP_NONBLOCK) == 0; }
    std::uint64_t fired() const { return fired_; }

    bool armed(std::size_t slot) const
    {
        return event_pending(&events_[slot], EV_TIMEOUT, nullptr) != 0;
    }
    bool verify(std::size_t) const { return true; }

private:
    static void on_fire(evutil_socket_t, short, void *counter)
    {
        ++*static_cast<std::uint64_t *>(counter);
    }

    std::unique_ptr<event[]> events_;
    event_base *base_;
    const timeval *common_[kCommonDurations] = {};
    const timeval *common_expiring_[kCommonDurations] = {};
    ExpiryWait expiry_;
    std::uint64_t fired_ = 0;
    bool ok_ = false;
};

} // namespace

void run_libevent_heap(const Job &job, const Report &report)
{
    run_workload<Libevent<Timeouts::heap>>(job, report);
}
void run_libevent_common(const Job &job, const Report &report)
{
    run_workload<Libevent<Timeouts::common>>(job, report);
}

} // namespace bench
