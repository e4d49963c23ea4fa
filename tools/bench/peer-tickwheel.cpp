/*
 * tw-bench peer adapter: tickwheel on an injected clock.  The wheel's time stays
 * at kEpochNs for W1-W3 and W5; W4 advances it once past the last deadline,
 * so W4 runs the real [1 ms, 30 s] spread, cascades included.  The caller
 * keeps only a tw_timer handle per timer.
 *
 * Uses: peers.hpp; the library through tickwheel.h only.
 */
#include "peers.hpp"

#include <tickwheel.h>

#include <algorithm>
#include <climits>
#include <memory>

namespace bench {
namespace {

constexpr std::uint64_t kEpochNs = 1'000'000'000;

class Tickwheel {
public:
    explicit Tickwheel(std::size_t capacity) : timers_(new tw_timer[capacity]())
    {
        tw_wheel_config config;
        tw_wheel_config_init(&config);
        /* The entries up front, as the peers get their per-timer array. */
        config.initial_timers = static_cast<std::uint32_t>(capacity);
        tick_ns_ = config.tick_ns;
        status_ = tw_wheel_new(&config, kEpochNs, &wheel_);
    }
    ~Tickwheel() { tw_wheel_free(wheel_); }
    Tickwheel(const Tickwheel &) = delete;
    Tickwheel &operator=(const Tickwheel &) = delete;

    bool ok() const { return status_ == 0; }

    template <class F>
    bool in_loop(const F &body)
    {
        body();
        return true;
    }

    bool add(std::size_t slot, std::uint64_t delay_ns)
    {
        const int err =
            tw_wheel_schedule(wheel_, kEpochNs + delay_ns, on_fire, &fired_, &timers_[slot]);
        return err == 0;
    }
    bool cancel(std::size_t slot) { return tw_wheel_cancel(wheel_, timers_[slot]) == 0; }
    bool reschedule(std::size_t slot, std::uint64_t delay_ns)
    {
        return tw_wheel_reschedule(wheel_, timers_[slot], kEpochNs + delay_ns) == 0;
    }

    bool add_expiring(std::size_t slot, std::uint64_t delay_ns) { return add(slot, delay_ns); }
    void wait_due() {}
    bool fire_all()
    {
        const int fired = tw_wheel_advance(wheel_, kEpochNs + kDelayMaxNs + tick_ns_);
        return fired >= 0 &&
               static_cast<std::uint64_t>(fired) == std::min<std::uint64_t>(fired_, INT_MAX);
    }
    std::uint64_t fired() const { return fired_; }

    bool armed(std::size_t slot) const
    {
        std::uint64_t deadline_ns;
        return tw_wheel_deadline(wheel_, timers_[slot], &deadline_ns) == 0;
    }
    bool verify(std::size_t live) const
    {
        tw_wheel_stats stats{};
        stats.struct_size = sizeof stats;
        return tw_wheel_verify(wheel_) == 0 && tw_wheel_stats_get(wheel_, &stats) == 0 &&
               stats.live == live;
    }

private:
    static void on_fire(tw_timer, std::uint64_t, void *userdata) noexcept
    {
        ++*static_cast<std::uint64_t *>(userdata);
    }

    std::unique_ptr<tw_timer[]> timers_;
    tw_wheel *wheel_ = nullptr;
    std::uint64_t tick_ns_ = 0;
    int status_ = TW_EINVAL;
    std::uint64_t fired_ = 0;
};

} // namespace

void run_tickwheel(const Job &job, const Report &report) { run_workload<Tickwheel>(job, report); }

} // namespace bench
