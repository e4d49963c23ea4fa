/*
 * tw-bench peer adapter: the textbook baseline, a std::multimap from absolute
 * deadline to callback, on an injected clock.  The per-timer handle is the
 * map iterator, kept in an array; a reschedule moves the node with
 * extract/insert and so never allocates.  W4 walks begin() to
 * upper_bound(now), unlinking each entry before running its callback, as a
 * timer whose callbacks may touch the map must.
 *
 * Uses: peers.hpp; the standard library.
 */
#include "peers.hpp"

#include <map>

namespace bench {
namespace {

constexpr std::uint64_t kEpochNs = 1'000'000'000;

class Multimap {
public:
    explicit Multimap(std::size_t capacity) : handles_(capacity, map_.end()) {}

    bool ok() const { return true; }

    template <class F>
    bool in_loop(const F &body)
    {
        body();
        return true;
    }

    bool add(std::size_t slot, std::uint64_t delay_ns)
    {
        handles_[slot] = map_.emplace(now_ + delay_ns, Entry{on_fire, &fired_, slot});
        return true;
    }
    bool cancel(std::size_t slot)
    {
        Map::iterator &handle = handles_[slot];
        if (handle == map_.end())
            return false;
        map_.erase(handle);
        handle = map_.end();
        return true;
    }
    bool reschedule(std::size_t slot, std::uint64_t delay_ns)
    {
        Map::iterator &handle = handles_[slot];
        if (handle == map_.end())
            return false;
        Map::node_type node = map_.extract(handle);
        node.key() = now_ + delay_ns;
        handle = map_.insert(std::move(node));
        return true;
    }

    bool add_expiring(std::size_t slot, std::uint64_t delay_ns) { return add(slot, delay_ns); }
    void wait_due() {}
    bool fire_all()
    {
        now_ = kEpochNs + kDelayMaxNs;
        const Map::iterator last = map_.upper_bound(now_);
        for (Map::iterator it = map_.begin(); it != last;) {
            const Entry entry = it->second;
            handles_[entry.slot] = map_.end();
            it = map_.erase(it);
            entry.cb(entry.userdata);
        }
        return true;
    }
    std::uint64_t fired() const { return fired_; }

    bool armed(std::size_t slot) const { return handles_[slot] != map_.end(); }
    bool verify(std::size_t live) const { return map_.size() == live; }

private:
    struct Entry {
        void (*cb)(void *userdata);
        void *userdata;
        std::size_t slot;
    };
    using Map = std::multimap<std::uint64_t, Entry>;

    static void on_fire(void *counter) { ++*static_cast<std::uint64_t *>(counter); }

    Map map_;
    std::vector<Map::iterator> handles_;
    std::uint64_t now_ = kEpochNs;
    std::uint64_t fired_ = 0;
};

} // namespace

void run_multimap(const Job &job, const Report &report) { run_workload<Multimap>(job, report); }

} // namespace bench
