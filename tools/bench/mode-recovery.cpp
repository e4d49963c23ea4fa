/*
 * tw-bench --recovery: the reliability layer's hot paths, on an injected
 * clock, in this process.
 *
 *   pair      a warm layer (RFC 9002, handshake confirmed) at a steady
 *             window of 64 packets: each step sends one packet and acks
 *             the one sent 64 steps before, then drains the retired queue
 *             (tw_recovery_on_sent + tw_recovery_on_ack +
 *             tw_recovery_take_retired); 1M steps
 *   deadline  tw_recovery_next_deadline on that layer; 10M calls
 *   lossy     as pair, but the ACK skips one packet in 32, so loss
 *             detection declares it lost and its handle is queued and
 *             taken (tw_recovery_take_frames); 1M steps
 *
 * A figure is CLOCK_MONOTONIC time around the timed loop divided by its steps,
 * after an untimed warm-up of 100k steps; a cell is the median (min-max) of
 * --runs runs.  Self-checks: every return code, and the counts of acked and
 * lost packets.
 *
 * Uses: bench.hpp, tools/common/clock.h; the library through tickwheel.h.
 */
#include "bench.hpp"

#include <tickwheel.h>

#include <cinttypes>
#include <cstdio>
#include <vector>

#include "common/clock.h"

namespace bench {

namespace {

constexpr uint64_t kWindow = 64;
constexpr uint64_t kSteps = 1'000'000;
constexpr uint64_t kDeadlineCalls = 10'000'000;
constexpr uint64_t kWarmup = 100'000;
constexpr uint64_t kLossEvery = 32;         /* lossy: one ACK in this many skipped */

struct Layer {
    tw_recovery *r = nullptr;
    uint64_t pn = 0, now = 0, retired = 0, lost = 0;
    bool ok = true;

    Layer()
    {
        tw_recovery_config c;
        tw_recovery_config_init(&c);
        c.is_server = 1;
        ok = tw_recovery_new(&c, &r) == 0 && tw_recovery_set_handshake_confirmed(r) == 0;
    }
    ~Layer() { tw_recovery_free(r); }

    /* One step; skip: every skip-th ACK leaves out its packet (0: none). */
    void step(uint64_t skip)
    {
        uint64_t handles[8];
        now += 10000;
        ok &= tw_recovery_on_sent(r, TW_PN_APPLICATION, pn, now, 1200,
                                  TW_RECOVERY_ACK_ELICITING, pn + 1) == 0;
        if (pn >= kWindow) {
            uint64_t acked = pn - kWindow;
            if (!skip || acked % skip != 0) {
                tw_ack_range a = {acked, acked};
                ok &= tw_recovery_on_ack(r, TW_PN_APPLICATION, &a, 1, 0, now) == 0;
            }
        }
        pn++;
        retired += tw_recovery_take_retired(r, handles, 8);
        if (skip)
            lost += tw_recovery_take_frames(r, handles, 8);
    }
};

double time_steps(uint64_t skip, bool &ok)
{
    Layer l;
    for (uint64_t i = 0; i < kWarmup; i++)
        l.step(skip);
    uint64_t retired = l.retired, lost = l.lost;
    const uint64_t t0 = mono_ns();
    for (uint64_t i = 0; i < kSteps; i++)
        l.step(skip);
    const uint64_t t1 = mono_ns();
    retired = l.retired - retired;
    lost = l.lost - lost;
    /* Every step acks one packet, but one in skip is lost instead; the
     * losses trail their packets by a few steps, hence the slack of 1. */
    uint64_t want_lost = skip ? kSteps / skip : 0;
    bool counts = retired + lost + 1 >= kSteps && retired + lost <= kSteps + 1 &&
                  lost + 1 >= want_lost && lost <= want_lost + 1;
    if (!l.ok || !counts) {
        std::fprintf(stderr, "tw-bench: recovery self-check failed (skip %" PRIu64
                     ", retired %" PRIu64 ", lost %" PRIu64 ")\n", skip, retired, lost);
        ok = false;
    }
    return double(t1 - t0) / double(kSteps);
}

double time_deadline(bool &ok)
{
    Layer l;
    for (uint64_t i = 0; i < kWarmup; i++)
        l.step(0);
    uint64_t sum = 0, t;
    const uint64_t t0 = mono_ns();
    for (uint64_t i = 0; i < kDeadlineCalls; i++) {
        int rc = tw_recovery_next_deadline(l.r, &t);
        sum += t + uint64_t(rc);
        asm volatile("" : "+r"(sum));
    }
    const uint64_t t1 = mono_ns();
    if (!l.ok || sum == 0) {
        std::fprintf(stderr, "tw-bench: recovery deadline self-check failed\n");
        ok = false;
    }
    return double(t1 - t0) / double(kDeadlineCalls);
}

} // namespace

bool run_recovery(const Options &options, std::FILE *export_json)
{
    const unsigned runs = options.runs;
    const char *names[] = {"pair", "deadline", "lossy"};
    std::vector<double> samples[3];
    bool ok = true;
    for (unsigned run = 0; run < runs; run++) {
        samples[0].push_back(time_steps(0, ok));
        samples[1].push_back(time_deadline(ok));
        samples[2].push_back(time_steps(kLossEvery, ok));
    }
    Summary s[3];
    for (int i = 0; i < 3; i++)
        s[i] = summarize(samples[i]);
    const auto report = [&] {
        std::printf("tw_recovery, ns per step, median (min-max) of %u runs\n", runs);
        for (int i = 0; i < 3; i++)
            std::printf("  %-9s %8.1f (%.1f-%.1f)%s\n", names[i], s[i].median, s[i].min,
                        s[i].max, ok ? "" : "  FAIL");
    };
    const auto json = [&](std::FILE *out) {
        std::fprintf(out, "{\"mode\": \"recovery\", \"runs\": %u, \"ok\": %s, \"results\": {",
                     runs, ok ? "true" : "false");
        for (int i = 0; i < 3; i++)
            std::fprintf(out, "%s\"%s\": {\"median_ns\": %.2f, \"min_ns\": %.2f, "
                         "\"max_ns\": %.2f}", i ? ", " : "", names[i], s[i].median, s[i].min,
                         s[i].max);
        std::fprintf(out, "}}\n");
    };
    publish(options, export_json, report, json);
    return ok;
}

} // namespace bench
