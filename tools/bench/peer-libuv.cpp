/*
 * tw-bench peer adapter: libuv 1.x.  One uv_timer_t per timer, in an array, on a
 * loop of its own (uv_loop_init, never the default loop).  uv_timer_start
 * both arms and re-arms.  libuv counts in whole milliseconds: delays are
 * rounded up to the next one, so W4's compressed deadlines fall on 1..30 ms
 * and ties among them fire in start order, as libuv always breaks ties.
 * Timers are armed against the loop's cached time (uv_update_time once per
 * in_loop), as from a callback.
 *
 * Uses: peers.hpp; libuv 1.x (uv.h).
 */
#include "peers.hpp"

#include <uv.h>

#include <memory>

namespace bench {
namespace {

std::uint64_t to_ms(std::uint64_t ns) { return (ns + 999'999) / 1'000'000; }

uv_handle_t *as_handle(uv_timer_t *timer) { return reinterpret_cast<uv_handle_t *>(timer); }

class Libuv {
public:
    explicit Libuv(std::size_t capacity) : timers_(new uv_timer_t[capacity])
    {
        if (uv_loop_init(&loop_) != 0)
            return;
        loop_ready_ = true;
        for (; initialised_ < capacity; ++initialised_) {
            if (uv_timer_init(&loop_, &timers_[initialised_]) != 0)
                return;
            timers_[initialised_].data = &fired_;
        }
        ok_ = true;
    }
    /* uv_loop_close() refuses a loop with open handles: close them first. */
    ~Libuv()
    {
        if (!loop_ready_)
            return;
        for (std::size_t slot = 0; slot < initialised_; ++slot)
            uv_close(as_handle(&timers_[slot]), nullptr);
        uv_run(&loop_, UV_RUN_DEFAULT);
        uv_loop_close(&loop_);
    }
    Libuv(const Libuv &) = delete;
    Libuv &operator=(const Libuv &) = delete;

    bool ok() const { return ok_; }

    template <class F>
    bool in_loop(const F &body)
    {
        uv_update_time(&loop_);
        expiry_.mark();
        body();
        return true;
    }

    bool add(std::size_t slot, std::uint64_t delay_ns)
    {
        return uv_timer_start(&timers_[slot], on_fire, to_ms(delay_ns), 0) == 0;
    }
    bool cancel(std::size_t slot) { return uv_timer_stop(&timers_[slot]) == 0; }
    bool reschedule(std::size_t slot, std::uint64_t delay_ns) { return add(slot, delay_ns); }

    bool add_expiring(std::size_t slot, std::uint64_t delay_ns)
    {
        return add(slot, delay_ns / kExpiryScale);
    }
    void wait_due() { expiry_.wait(); }
    bool fire_all()
    {
        uv_run(&loop_, UV_RUN_NOWAIT);
        return true;
    }
    std::uint64_t fired() const { return fired_; }

    bool armed(std::size_t slot) const { return uv_is_active(as_handle(&timers_[slot])) != 0; }
    bool verify(std::size_t) const { return true; }

private:
    static void on_fire(uv_timer_t *timer) { ++*static_cast<std::uint64_t *>(timer->data); }

    std::unique_ptr<uv_timer_t[]> timers_;
    uv_loop_t loop_;
    ExpiryWait expiry_;
    std::uint64_t fired_ = 0;
    std::size_t initialised_ = 0;
    bool loop_ready_ = false;
    bool ok_ = false;
};

} // namespace

void run_libuv(const Job &job, const Report &report) { run_workload<Libuv>(job, report); }

} // namespace bench
