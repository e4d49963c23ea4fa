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
 *
 * Uses: bench.hpp, tools/common/clock.h; the library through tickwheel.h.
 */
#include "bench.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "tickwheel.h"

namespace bench {

namespace {

constexpr uint64_t kSec = 1000000000u;
constexpr size_t kOps = 4000000;                        /* calls per run */
const std::vector<size_t> kSizes = {1, 1000, 1000000};
const std::vector<size_t> kQuickSizes = {1, 1000, 100000};
constexpr unsigned kQuickRuns = 3;

uint64_t g_fake = 1000 * kSec;
uint64_t fake_clock(void *) noexcept { return g_fake; }

void on_event(const tw_conn_event *, void *) noexcept {}
void on_anchor(tw_timer, uint64_t, void *) noexcept {}
void on_timer(tw_timer, uint64_t, void *) noexcept {}

uint64_t layer_next(const void *layer) noexcept { return *static_cast<const uint64_t *>(layer); }
uint32_t layer_check(void *, uint64_t) noexcept { return 0; }
const tw_layer_ops kLayer = {sizeof(tw_layer_ops), "bench", layer_next, layer_check, nullptr,
                             TW_LAYER_PURE, nullptr};

/* 0 .. n - 1 in a fixed shuffled order, as packets of many connections. */
std::vector<uint32_t> shuffled(size_t n)
{
    std::vector<uint32_t> order(n);
    for (size_t i = 0; i < n; i++)
        order[i] = uint32_t(i);
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (size_t i = n; i > 1; i--) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        std::swap(order[i - 1], order[x % i]);
    }
    return order;
}

/* ns per call of kOps calls visit(i, j), j cycling through [0, n). */
template <class Visit>
double ns_per_visit(size_t n, Visit visit)
{
    uint64_t t0 = mono_ns();
    size_t j = 0;
    for (size_t i = 0; i < kOps; i++) {
        visit(i, j);
        j = j + 1 == n ? 0 : j + 1;
    }
    return double(mono_ns() - t0) / kOps;
}

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
        layer_deadline.assign(n, t0 + 40 * kSec);
        for (size_t i = 0; i < n; i++) {
            if (tw_conn_new(loop, uint32_t(i), on_event, nullptr, &conns[i]) < 0)
                return false;
            tw_conn_arm(conns[i], TW_CONN_IDLE, t0 + 30 * kSec);
            if (all_kinds) {
                for (unsigned k = 1; k < TW_CONN_KINDS; k++)
                    tw_conn_arm(conns[i], k, t0 + (10 + k + i % 7) * kSec);
                unsigned id;
                tw_conn_add_layer(conns[i], &kLayer, &layer_deadline[i], &id);
            }
        }
        order = shuffled(n);
        return true;
    }
    tw_conn *visit(size_t j) const { return conns[order[j]]; }
    uint64_t wheel_ops() const
    {
        tw_conn_stats s;
        s.struct_size = sizeof s;
        tw_conn_stats_get(loop, &s);
        return s.wheel_ops;
    }
    ~World() { tw_loop_free(loop); }
};

using Figure = std::vector<double>;     /* ns per call, one per run */

/* The floor under the others: the same visiting loop around the cheapest
 * library call there is. */
bool run_floor(size_t n, unsigned runs, Figure &fig)
{
    World w;
    if (!w.open(n, false))
        return false;
    uint64_t sink = 0;
    for (unsigned r = 0; r < runs; r++)
        fig.push_back(ns_per_visit(n, [&](size_t, size_t j) { sink += tw_conn_id(w.visit(j)); }));
    if (sink == 1)
        std::puts("");
    return true;
}

bool run_rearm(size_t n, unsigned runs, bool touch, Figure &fig, uint64_t &ops_seen)
{
    World w;
    if (!w.open(n, false))
        return false;
    if (touch)
        for (tw_conn *c : w.conns)
            tw_conn_set_idle_timeout(c, 30 * kSec);
    uint64_t before = w.wheel_ops();
    uint64_t at = g_fake + 30 * kSec;
    for (unsigned r = 0; r < runs; r++)
        fig.push_back(ns_per_visit(n, [&](size_t, size_t j) {
            if (touch)
                tw_conn_touch(w.visit(j));
            else
                tw_conn_arm(w.visit(j), TW_CONN_IDLE, ++at);
        }));
    ops_seen = w.wheel_ops() - before;
    return true;
}

bool run_replace(size_t n, unsigned runs, Figure &fig)
{
    tw_wheel *wheel;
    if (tw_wheel_new(nullptr, g_fake, &wheel) < 0)
        return false;
    std::vector<tw_timer> timers(n);
    uint64_t at = g_fake + 30 * kSec;
    for (size_t i = 0; i < n; i++)
        tw_wheel_schedule(wheel, ++at, on_timer, nullptr, &timers[i]);
    const std::vector<uint32_t> order = shuffled(n);
    for (unsigned r = 0; r < runs; r++)
        fig.push_back(ns_per_visit(n, [&](size_t, size_t k) {
            tw_timer fresh;
            tw_wheel_schedule(wheel, ++at, on_timer, nullptr, &fresh);
            tw_wheel_cancel(wheel, timers[order[k]]);
            timers[order[k]] = fresh;
        }));
    tw_wheel_free(wheel);
    return true;
}

bool run_next(size_t n, unsigned runs, bool fresh, Figure &fig)
{
    World w;
    if (!w.open(n, true))
        return false;
    uint64_t sink = 0, at = g_fake + 5 * kSec;
    for (unsigned r = 0; r < runs; r++)
        fig.push_back(ns_per_visit(n, [&](size_t i, size_t j) {
            tw_conn *c = w.visit(j);
            if (fresh) {
                /* IDLE is the earliest kind: moving it later invalidates. */
                tw_conn_arm(c, TW_CONN_IDLE, at + (i & 1));
            }
            uint64_t d = 0;
            tw_conn_next_deadline(c, &d);
            sink += d;
        }));
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
    t.ns = ns_per_visit(t.n, [&](size_t, size_t j) {
        switch (t.call) {
        case TimeCall::kNow:
            t.sink += tw_loop_now(w.loop);
            break;
        case TimeCall::kTouch:
            t.ok = tw_conn_touch(w.visit(j)) == 0 && t.ok;
            break;
        case TimeCall::kRelative: {
            tw_timer timer;
            t.ok = tw_loop_schedule_relative(w.loop, 30 * kSec, on_timer, nullptr, &timer) == 0 &&
                   tw_loop_cancel(w.loop, timer) == 0 && t.ok;
            break;
        }
        }
    });
}

void time_in_turn(tw_loop *, int status, void *userdata) noexcept
{
    Timed &t = *static_cast<Timed *>(userdata);
    if (status == 0)
        time_calls(t);
    else
        t.ok = false;
}

bool run_time(size_t n, unsigned runs, TimeCall call, bool in_turn, Figure &fig)
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
    for (unsigned r = 0; r < runs && t.ok; r++) {
        if (in_turn) {
            t.ns = -1;
            if (tw_loop_post(w.loop, time_in_turn, &t) < 0 || tw_loop_process(w.loop) < 0 ||
                t.ns < 0)
                return false;
        } else {
            time_calls(t);
        }
        fig.push_back(t.ns);
    }
    if (t.sink == 1)
        std::puts("");
    return t.ok;
}

bool run_memory(size_t n, double &per_conn)
{
    std::optional<std::uint64_t> before = status_kib("VmRSS:");
    World w;
    if (!w.open(n, true))
        return false;
    std::optional<std::uint64_t> after = status_kib("VmRSS:");
    if (!before || !after)
        return false;
    per_conn = (double(*after) - double(*before)) * 1024.0 / double(n);
    return true;
}

/* One row of the report: a figure at one number of connections. */
struct Line {
    const char *name;
    size_t n;
    Summary s;
    std::string note;           /* after the figure in the report */
    bool has_ops;
    uint64_t wheel_ops;
};

/* Every figure at n connections, in the report's order. */
bool measure(size_t n, unsigned runs, std::vector<Line> &lines)
{
    Figure floor, arm, touch, replace, cached, fresh;
    Figure now_turn, now_fresh, touch_turn, touch_fresh, rel_turn, rel_fresh;
    uint64_t arm_ops = 0, touch_ops = 0;
    bool ok = run_floor(n, runs, floor) && run_rearm(n, runs, false, arm, arm_ops) &&
              run_rearm(n, runs, true, touch, touch_ops) && run_replace(n, runs, replace) &&
              run_next(n, runs, false, cached) && run_next(n, runs, true, fresh) &&
              run_time(n, runs, TimeCall::kNow, true, now_turn) &&
              run_time(n, runs, TimeCall::kNow, false, now_fresh) &&
              run_time(n, runs, TimeCall::kTouch, true, touch_turn) &&
              run_time(n, runs, TimeCall::kTouch, false, touch_fresh) &&
              run_time(n, runs, TimeCall::kRelative, true, rel_turn) &&
              run_time(n, runs, TimeCall::kRelative, false, rel_fresh);
    if (!ok)
        return false;
    const auto add = [&](const char *name, const Figure &f, std::string note,
                         const uint64_t *ops = nullptr) {
        lines.push_back({name, n, summarize(f), std::move(note), ops != nullptr,
                         ops ? *ops : 0});
    };
    add("call-floor", floor, "  (tw_conn_id: the loop and one call)");
    add("rearm-later", arm, format("  wheel ops %" PRIu64, arm_ops), &arm_ops);
    add("touch", touch, format("  wheel ops %" PRIu64, touch_ops), &touch_ops);
    add("replace", replace,
        format("  rearm-later/replace %.3f", summarize(arm).median / summarize(replace).median));
    add("next-cached", cached, "");
    add("next-fresh", fresh, "  (includes one tw_conn_arm)");
    add("now-turn", now_turn, "  (built-in clock, inside a turn: cached)");
    add("now-fresh", now_fresh, "  (outside a turn: reads the clock)");
    add("touch-turn", touch_turn, "");
    add("touch-fresh", touch_fresh, "");
    add("relative-turn", rel_turn, "  (schedule_relative + cancel)");
    add("relative-fresh", rel_fresh, "");
    return true;
}

struct Results {
    std::vector<Line> lines;
    size_t memory_n = 0;        /* 0: no memory figure */
    double per_conn = 0;
};

void print_report(const Options &options, const Results &r)
{
    std::printf("tw-bench --conn: ns per call, median of %u runs (min-max), %zu calls per run\n",
                options.runs, kOps);
    for (const Line &l : r.lines)
        std::printf("%-14s %8zu  %7.2f ns  (%.2f-%.2f)%s\n", l.name, l.n, l.s.median, l.s.min,
                    l.s.max, l.note.c_str());
    if (r.memory_n)
        std::printf("memory         %8zu  %7.1f B per connection (8 kinds and a layer armed, "
                    "resident set growth)\n",
                    r.memory_n, r.per_conn);
}

void print_json(std::FILE *out, const Options &options, const Results &r)
{
    std::fprintf(out,
                 "{\n  \"tool\": \"tw-bench\",\n  \"mode\": \"conn\",\n"
                 "  \"tickwheel_version\": \"%s\",\n  \"runs\": %u,\n"
                 "  \"calls_per_run\": %zu,\n  \"results\": [",
                 tw_version(), options.runs, kOps);
    const char *separator = "\n";
    for (const Line &l : r.lines) {
        std::fprintf(out,
                     "%s    {\"benchmark\": \"%s\", \"n\": %zu, \"median_ns\": %.3f, "
                     "\"min_ns\": %.3f, \"max_ns\": %.3f",
                     separator, l.name, l.n, l.s.median, l.s.min, l.s.max);
        if (l.has_ops)
            std::fprintf(out, ", \"wheel_ops\": %" PRIu64, l.wheel_ops);
        std::fputs("}", out);
        separator = ",\n";
    }
    if (r.memory_n)
        std::fprintf(out, "%s    {\"benchmark\": \"memory\", \"n\": %zu, "
                     "\"bytes_per_connection\": %.1f}",
                     separator, r.memory_n, r.per_conn);
    std::fputs("\n  ]\n}\n", out);
}

} // namespace

/* --quick: fewer connections, and 3 runs unless --runs says otherwise. */
bool prepare_conn(Options &options)
{
    if (options.quick && !options.runs_given)
        options.runs = kQuickRuns;
    return true;
}

bool run_conn(const Options &options, std::FILE *export_json)
{
    const std::vector<size_t> &sizes = options.quick ? kQuickSizes : kSizes;
    Results r;
    bool ok = true;
    for (size_t n : sizes)
        if (!(ok = measure(n, options.runs, r.lines)))
            break;
    if (ok && (ok = run_memory(sizes.back(), r.per_conn)))
        r.memory_n = sizes.back();
    publish(
        options, export_json, [&] { print_report(options, r); },
        [&](std::FILE *out) { print_json(out, options, r); });
    if (!ok)
        std::fprintf(stderr, "tw-bench --conn: setting up failed\n");
    return ok;
}

} // namespace bench
