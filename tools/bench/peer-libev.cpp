/*
 * tw-bench peer adapter: libev 4.  One ev_timer per timer, in an array, on a loop
 * of its own (ev_loop_new, never the default loop).  A reschedule sets the
 * watcher's repeat to the new delay and calls ev_timer_again, the re-arm
 * libev's manual recommends; nothing fires during W3, so the repeat never
 * takes effect.  Timers are armed against the loop's cached time
 * (ev_now_update once per in_loop), as from a callback.
 *
 * Uses: peers.hpp; libev 4 (ev.h).
 */
#include "peers.hpp"

#include <ev.h>

#include <memory>

namespace bench {
namespace {

ev_tstamp to_seconds(std::uint64_t ns) { return static_cast<ev_tstamp>(ns) * 1e-9; }

class Libev {
public:
    explicit Libev(std::size_t capacity)
        : timers_(new ev_timer[capacity]), loop_(ev_loop_new(EVFLAG_AUTO))
    {
        for (std::size_t slot = 0; slot < capacity; ++slot) {
            ev_timer_init(&timers_[slot], on_fire, 0., 0.);
            timers_[slot].data = &fired_;
        }
    }
    /* ev_loop_destroy() frees the loop's own arrays; the watchers, armed or
     * not, are the array's. */
    ~Libev()
    {
        if (loop_)
            ev_loop_destroy(loop_);
    }
    Libev(const Libev &) = delete;
    Libev &operator=(const Libev &) = delete;

    bool ok() const { return loop_ != nullptr; }

    template <class F>
    bool in_loop(const F &body)
    {
        ev_now_update(loop_);
        expiry_.mark();
        body();
        return true;
    }

    bool add(std::size_t slot, std::uint64_t delay_ns)
    {
        ev_timer_set(&timers_[slot], to_seconds(delay_ns), 0.);
        ev_timer_start(loop_, &timers_[slot]);
        return true;
    }
    bool cancel(std::size_t slot)
    {
        ev_timer_stop(loop_, &timers_[slot]);
        return true;
    }
    bool reschedule(std::size_t slot, std::uint64_t delay_ns)
    {
        timers_[slot].repeat = to_seconds(delay_ns);
        ev_timer_again(loop_, &timers_[slot]);
        return true;
    }

    bool add_expiring(std::size_t slot, std::uint64_t delay_ns)
    {
        return add(slot, delay_ns / kExpiryScale);
    }
    void wait_due() { expiry_.wait(); }
    bool fire_all()
    {
        ev_run(loop_, EVRUN_NOWAIT);
        return true;
    }
    std::uint64_t fired() const { return fired_; }

    bool armed(std::size_t slot) const { return ev_is_active(&timers_[slot]); }
    bool verify(std::size_t) const { return true; }

private:
    static void on_fire(struct ev_loop *, ev_timer *timer, int) noexcept
    {
        ++*static_cast<std::uint64_t *>(timer->data);
    }

    std::unique_ptr<ev_timer[]> timers_;
    struct ev_loop *loop_;
    ExpiryWait expiry_;
    std::uint64_t fired_ = 0;
};

} // namespace

void run_libev(const Job &job, const Report &report) { run_workload<Libev>(job, report); }

} // namespace bench
