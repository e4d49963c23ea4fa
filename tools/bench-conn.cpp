/*
 * tw-bench --conn: the costs of per-connection timers.
 *
 *   call-floor    the visiting loop around tw_conn_id, the cheapest call:
 *                 what every other row pays before doing anything
 *   rearm-later   re-arm IDLE later on every packet (tw_conn_arm), and the
 *                 same through tw_conn_touch: ns per call and the wheel
 *                 operations it caused (the lazy re-arm should cause none)
 *   replace       what a connection without lazy re-arm pays: schedule the
 *                 new idle timer on the wheel and cancel the old one
 *   next-cached   tw_conn_next_deadline over 8 armed kinds and a layer, cached
 *   next-fresh    the same right after the earliest kind moved later (the
 *                 cache was invalidated, so the minimum is recomputed)
 *   memory        bytes per connection with every kind armed: resident set
 *                 growth over creating and arming N connections, divided by N
 *
 * Every figure is the median of --runs runs (min-max beside it), on a loop
 * with an injected clock so no turn runs while timing.  Connections are
 * visited in a shuffled order, as packets of many connections arrive.
 *
 * The price of the time: on a loop with the built-in clock, the same calls
 * made inside a turn (from a posted function), where the turn's cached
 * time serves, and outside one (as from the caller's own I/O callback),
 * where each call reads the clock:
 *
 *   now-turn/-fresh       tw_loop_now
 *   touch-turn/-fresh     tw_conn_touch, lazy
 *   relative-turn/-fresh  tw_loop_schedule_relative 30 s ahead, then
 *                         tw_loop_cancel, behind an earlier timer so the
 *                         timer descriptor is never set
 */
#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "tickwheel.h"

namespace bench {

namespace {

constexpr uint64_t kSec = 1000000000u;

uint64_t g_fake = 1000 * kSec;
uint64_t fake_clock(void *) noexcept { return g_fake; }

uint64_t mono_ns()
{
    return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::steady_clock::now().time_since_epoch())
                        .count());
}

long rss_kib()
{
    std::FILE *f = std::fopen("/proc/self/status", "re");
    if (!f)
        return -1;
    char line[256];
    long kib = -1;
    while (std::fgets(line, sizeof line, f))
        if (std::sscanf(line, "VmRSS: %ld", &kib) == 1)
            break;
    std::fclose(f);
    return kib;
}

void on_event(const tw_conn_event *, void *) noexcept {}
void on_anchor(tw_timer, uint64_t, void *) noexcept {}
void on_timer(tw_timer, uint64_t, void *) noexcept {}

uint64_t layer_next(const void *layer) noexcept { return *static_cast<const uint64_t *>(layer); }
uint32_t layer_check(void *, uint64_t) noexcept { return 0; }
const tw_layer_ops kLayer = {sizeof(tw_layer_ops), "bench", layer_next, layer_check, nullptr,
                             TW_LAYER_PURE, nullptr};

struct Figure {
    std::vector<double> runs;
    double median() const
    {
        std::vector<double> v = runs;
        std::sort(v.begin(), v.end());
        return v[v.size() / 2];
    }
    double lo() const { return *std::min_element(runs.begin(), runs.end()); }
    double hi() const { return *std::max_element(runs.begin(), runs.end()); }
};

struct World {
    tw_loop *loop = nullptr;
    std::vector<tw_conn *> conns;
    std::vector<uint32_t> order;
    std::vector<uint64_t> layer_deadline;

    /* real: the built-in clock instead of the injected one. */
    bool open(size_t n, bool all_kinds, bool real = false)
    {
        tw_loop_config c;
        tw_loop_config_init(&c);
        if (!real)
            c.clock = fake_clock;
        if (tw_loop_new(nullptr, &c, &loop) < 0)
            return false;
        const uint64_t t0 = tw_loop_now(loop);
        conns.resize(n);
        order.resize(n);
        layer_deadline.assign(n, t0 + 40 * kSec);
        for (size_t i = 0; i < n; i++) {
            if (tw_conn_new(loop, uint32_t(i), on_event, nullptr, &conns[i]) < 0)
                return false;
            order[i] = uint32_t(i);
            tw_conn_arm(conns[i], TW_CONN_IDLE, t0 + 30 * kSec);
            if (all_kinds) {
                for (unsigned k = 1; k < TW_CONN_KINDS; k++)
                    tw_conn_arm(conns[i], k, t0 + (10 + k + i % 7) * kSec);
                unsigned id;
                tw_conn_add_layer(conns[i], &kLayer, &layer_deadline[i], &id);
            }
        }
        uint64_t x = 0x9e3779b97f4a7c15u;
        for (size_t i = n; i > 1; i--) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            std::swap(order[i - 1], order[x % i]);
        }
        return true;
    }
    uint64_t wheel_ops() const
    {
        tw_conn_stats s;
        s.struct_size = sizeof s;
        tw_conn_stats_get(loop, &s);
        return s.wheel_ops;
    }
    ~World() { tw_loop_free(loop); }
};

constexpr size_t kOps = 4000000;

/* The floor under the others: the same visiting loop around the cheapest
 * library call there is. */
bool run_floor(size_t n, int runs, Figure &fig)
{
    World w;
    if (!w.open(n, false))
        return false;
    uint64_t sink = 0;
    for (int r = 0; r < runs; r++) {
        uint64_t t0 = mono_ns();
        size_t j = 0;
        for (size_t i = 0; i < kOps; i++) {
            sink += tw_conn_id(w.conns[w.order[j]]);
            j = j + 1 == n ? 0 : j + 1;
        }
        fig.runs.push_back(double(mono_ns() - t0) / kOps);
    }
    if (sink == 1)
        std::puts("");
    return true;
}

bool run_rearm(size_t n, int runs, bool touch, Figure &fig, uint64_t &ops_seen)
{
    World w;
    if (!w.open(n, false))
        return false;
    if (touch)
        for (tw_conn *c : w.conns)
            tw_conn_set_idle_timeout(c, 30 * kSec);
    uint64_t before = w.wheel_ops();
    uint64_t at = g_fake + 30 * kSec;
    for (int r = 0; r < runs; r++) {
        uint64_t t0 = mono_ns();
        size_t j = 0;
        for (size_t i = 0; i < kOps; i++) {
            tw_conn *c = w.conns[w.order[j]];
            j = j + 1 == n ? 0 : j + 1;
            if (touch)
                tw_conn_touch(c);
            else
                tw_conn_arm(c, TW_CONN_IDLE, ++at);
        }
        fig.runs.push_back(double(mono_ns() - t0) / kOps);
    }
    ops_seen = w.wheel_ops() - before;
    return true;
}

bool run_replace(size_t n, int runs, Figure &fig)
{
    tw_wheel *wheel;
    if (tw_wheel_new(nullptr, g_fake, &wheel) < 0)
        return false;
    std::vector<tw_timer> timers(n);
    std::vector<uint32_t> order(n);
    uint64_t at = g_fake + 30 * kSec;
    for (size_t i = 0; i < n; i++) {
        tw_wheel_schedule(wheel, ++at, on_timer, nullptr, &timers[i]);
        order[i] = uint32_t(i);
    }
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (size_t i = n; i > 1; i--) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        std::swap(order[i - 1], order[x % i]);
    }
    for (int r = 0; r < runs; r++) {
        uint64_t t0 = mono_ns();
        size_t k = 0;
        for (size_t i = 0; i < kOps; i++) {
            uint32_t j = order[k];
            k = k + 1 == n ? 0 : k + 1;
            tw_timer fresh;
            tw_wheel_schedule(wheel, ++at, on_timer, nullptr, &fresh);
            tw_wheel_cancel(wheel, timers[j]);
            timers[j] = fresh;
        }
        fig.runs.push_back(double(mono_ns() - t0) / kOps);
    }
    tw_wheel_free(wheel);
    return true;
}

bool run_next(size_t n, int runs, bool fresh, Figure &fig)
{
    World w;
    if (!w.open(n, true))
        return false;
    uint64_t sink = 0, at = g_fake + 5 * kSec;
    for (int r = 0; r < runs; r++) {
        uint64_t t0 = mono_ns();
        size_t j = 0;
        for (size_t i = 0; i < kOps; i++) {
            tw_conn *c = w.conns[w.order[j]];
            j = j + 1 == n ? 0 : j + 1;
            if (fresh) {
                /* IDLE is the earliest kind: moving it later invalidates. */
                tw_conn_arm(c, TW_CONN_IDLE, at + (i & 1));
            }
            uint64_t d = 0;
            tw_conn_next_deadline(c, &d);
            sink += d;
        }
        fig.runs.push_back(double(mono_ns() - t0) / kOps);
    }
    if (sink == 1)
        std::puts("");
    return true;
}

/* The calls whose time comes from the loop, timed inside a turn or
 * outside one. */
enum class TimeCall { kNow, kTouch, kRelative };

struct Timed {
    World *w;
    TimeCall call;
    size_t n;
    uint64_t sink;
    double ns;
    bool ok;
};

void time_calls(Timed &t)
{
    World &w = *t.w;
    uint64_t t0 = mono_ns();
    size_t j = 0;
    for (size_t i = 0; i < kOps; i++) {
        switch (t.call) {
        case TimeCall::kNow:
            t.sink += tw_loop_now(w.loop);
            break;
        case TimeCall::kTouch:
            t.ok = tw_conn_touch(w.conns[w.order[j]]) == 0 && t.ok;
            j = j + 1 == t.n ? 0 : j + 1;
            break;
        case TimeCall::kRelative: {
            tw_timer timer;
            t.ok = tw_loop_schedule_relative(w.loop, 30 * kSec, on_timer, nullptr, &timer) == 0 &&
                   tw_loop_cancel(w.loop, timer) == 0 && t.ok;
            break;
        }
        }
    }
    t.ns = double(mono_ns() - t0) / kOps;
}

void time_in_turn(tw_loop *, int status, void *userdata) noexcept
{
    Timed &t = *static_cast<Timed *>(userdata);
    if (status == 0)
        time_calls(t);
    else
        t.ok = false;
}

bool run_time(size_t n, int runs, TimeCall call, bool in_turn, Figure &fig)
{
    World w;
    if (!w.open(n, false, true))
        return false;
    for (tw_conn *c : w.conns)
        tw_conn_set_idle_timeout(c, 30 * kSec);
    /* Earlier than every timer armed below, so none of them moves the
     * timer descriptor, inside a turn or out. */
    tw_timer anchor;
    if (tw_loop_schedule_relative(w.loop, 10 * kSec, on_anchor, nullptr, &anchor) < 0)
        return false;
    Timed t = {&w, call, n, 0, 0, true};
    for (int r = 0; r < runs && t.ok; r++) {
        if (in_turn) {
            t.ns = -1;
            if (tw_loop_post(w.loop, time_in_turn, &t) < 0 || tw_loop_process(w.loop) < 0 ||
                t.ns < 0)
                return false;
        } else {
            time_calls(t);
        }
        fig.runs.push_back(t.ns);
    }
    if (t.sink == 1)
        std::puts("");
    return t.ok;
}

bool run_memory(size_t n, double &per_conn)
{
    long before = rss_kib();
    World w;
    if (!w.open(n, true))
        return false;
    long after = rss_kib();
    per_conn = double(after - before) * 1024.0 / double(n);
    return before >= 0 && after >= 0;
}

void print(const char *what, size_t n, const Figure &f, const char *extra)
{
    std::printf("%-14s %8zu  %7.2f ns  (%.2f-%.2f)%s\n", what, n, f.median(), f.lo(), f.hi(),
                extra);
}

} // namespace

int run_conn_mode(int argc, char **argv)
{
    int runs = 5;
    std::vector<size_t> sizes = {1, 1000, 1000000};
    for (int i = 1; i < argc; i++) {
        if (!std::strcmp(argv[i], "--runs") && i + 1 < argc) {
            runs = std::atoi(argv[++i]);
            if (runs < 1 || runs > 100) {
                std::fprintf(stderr, "tw-bench: --runs wants 1 to 100\n");
                return 2;
            }
        } else if (!std::strcmp(argv[i], "--quick")) {
            sizes = {1, 1000, 100000};
            runs = 3;
        } else {
            std::fprintf(stderr, "tw-bench --conn: unknown option '%s' (takes --runs N, --quick)\n",
                         argv[i]);
            return 2;
        }
    }
    std::printf("tw-bench --conn: ns per call, median of %d runs (min-max), %zu calls per run\n",
                runs, kOps);
    bool ok = true;
    for (size_t n : sizes) {
        Figure floor, arm, touch, replace, cached, fresh;
        Figure now_turn, now_fresh, touch_turn, touch_fresh, rel_turn, rel_fresh;
        ok = ok && run_floor(n, runs, floor);
        uint64_t arm_ops = 0, touch_ops = 0;
        ok = ok && run_rearm(n, runs, false, arm, arm_ops);
        ok = ok && run_rearm(n, runs, true, touch, touch_ops);
        ok = ok && run_replace(n, runs, replace);
        ok = ok && run_next(n, runs, false, cached);
        ok = ok && run_next(n, runs, true, fresh);
        ok = ok && run_time(n, runs, TimeCall::kNow, true, now_turn);
        ok = ok && run_time(n, runs, TimeCall::kNow, false, now_fresh);
        ok = ok && run_time(n, runs, TimeCall::kTouch, true, touch_turn);
        ok = ok && run_time(n, runs, TimeCall::kTouch, false, touch_fresh);
        ok = ok && run_time(n, runs, TimeCall::kRelative, true, rel_turn);
        ok = ok && run_time(n, runs, TimeCall::kRelative, false, rel_fresh);
        if (!ok)
            break;
        char extra[96];
        print("call-floor", n, floor, "  (tw_conn_id: the loop and one call)");
        std::snprintf(extra, sizeof extra, "  wheel ops %" PRIu64, arm_ops);
        print("rearm-later", n, arm, extra);
        std::snprintf(extra, sizeof extra, "  wheel ops %" PRIu64, touch_ops);
        print("touch", n, touch, extra);
        std::snprintf(extra, sizeof extra, "  rearm-later/replace %.3f",
                      arm.median() / replace.median());
        print("replace", n, replace, extra);
        print("next-cached", n, cached, "");
        print("next-fresh", n, fresh, "  (includes one tw_conn_arm)");
        print("now-turn", n, now_turn, "  (built-in clock, inside a turn: cached)");
        print("now-fresh", n, now_fresh, "  (outside a turn: reads the clock)");
        print("touch-turn", n, touch_turn, "");
        print("touch-fresh", n, touch_fresh, "");
        print("relative-turn", n, rel_turn, "  (schedule_relative + cancel)");
        print("relative-fresh", n, rel_fresh, "");
    }
    double per_conn = 0;
    size_t big = sizes.back();
    if (ok && (ok = run_memory(big, per_conn)))
        std::printf("memory         %8zu  %7.1f B per connection (8 kinds and a layer armed, "
                    "resident set growth)\n",
                    big, per_conn);
    if (!ok)
        std::fprintf(stderr, "tw-bench --conn: setting up failed\n");
    return ok ? 0 : 1;
}

} // namespace bench
