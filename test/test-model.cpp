/*
 * Randomized model test: the wheel against a sorted container that is
 * trivially right.  Every fire must be the reference's earliest due timer
 * (deadline, then arming order); after every advance nothing due remains;
 * stale handles answer TW_ENOENT; next_deadline is never later than the
 * truth; tw_wheel_verify holds every few hundred steps.  A failure prints
 * the seed and the step; `test-model SEED [OPS]` replays one run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

extern "C" {
#include <cmocka.h>
}

#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <utility>
#include <vector>

#include "tickwheel.h"

namespace {

#define CHECK(cond)                                                                         \
    do {                                                                                    \
        if (!(cond))                                                                        \
            fail_msg("seed %u step %llu: %s", m->seed, (unsigned long long)m->step, #cond); \
    } while (0)

struct Model {
    unsigned seed = 0;
    uint64_t step = 0;
    std::mt19937_64 rng;
    tw_wheel *wheel = nullptr;
    uint64_t now = 0;
    uint64_t tick = 0;
    uint64_t seq = 0;
    /* (deadline, arming sequence) -> handle */
    std::map<std::pair<uint64_t, uint64_t>, tw_timer> ref;
    std::map<tw_timer, std::pair<uint64_t, uint64_t>> live;
    std::vector<tw_timer> dead;
    std::vector<tw_timer> handles;   /* live handles, for random picks */
    uint64_t fired = 0;
    /* A budgeted advance stopped with due timers left: they fire first at
     * the next advance, so meanwhile no deadline at or before now is armed
     * (it would rightly fire after them). */
    bool pending = false;

    uint64_t pick(uint64_t n) { return n ? rng() % n : 0; }

    uint64_t random_deadline()
    {
        uint64_t d = any_deadline();
        if (pending && d <= now)
            d = now + 1 + pick(tick * 4);
        return d;
    }

    uint64_t any_deadline()
    {
        switch (pick(10)) {
        case 0:
            return now >= 1000 ? now - pick(1000) : 0;                   /* past */
        case 1:
            return now;
        case 2:
            if (!live.empty())                                           /* a twin */
                return live.begin()->second.first;
            return now + 1;
        case 3:
            return pick(50) ? now + pick(100) * tick + pick(tick) : TW_NEVER;
        case 4: {                                                        /* far */
            unsigned bits = unsigned(pick(64));
            uint64_t span = bits == 64 ? UINT64_MAX : (uint64_t(1) << bits);
            uint64_t d = now + pick(span);
            return d < now ? UINT64_MAX - 1 : d;
        }
        default:
            return now + pick(uint64_t(1) << (8 + pick(16))) * (tick / 8 + 1) + pick(tick);
        }
    }

    void forget(tw_timer t)
    {
        for (size_t i = 0; i < handles.size(); i++)
            if (handles[i] == t) {
                handles[i] = handles.back();
                handles.pop_back();
                break;
            }
        dead.push_back(t);
        if (dead.size() > 4096)
            dead.erase(dead.begin(), dead.begin() + 2048);
    }

    void add(tw_timer t, uint64_t d)
    {
        auto key = std::make_pair(d, seq++);
        ref[key] = t;
        live[t] = key;
        handles.push_back(t);
    }
};


void on_fire(tw_timer timer, uint64_t deadline_ns, void *userdata)
{
    Model *m = static_cast<Model *>(userdata);
    CHECK(!m->ref.empty());
    auto first = m->ref.begin();
    CHECK(first->second == timer);
    CHECK(first->first.first == deadline_ns);
    CHECK(deadline_ns <= m->now);
    CHECK(deadline_ns != TW_NEVER);
    m->ref.erase(first);
    m->live.erase(timer);
    m->forget(timer);
    m->fired++;
    /* Now and then, reenter: cancel another timer, or arm one for later. */
    switch (m->pick(16)) {
    case 0:
        if (!m->handles.empty()) {
            tw_timer other = m->handles[m->pick(m->handles.size())];
            CHECK(tw_wheel_cancel(m->wheel, other) == 0);
            m->ref.erase(m->live[other]);
            m->live.erase(other);
            m->forget(other);
        }
        break;
    case 1: {
        /* Strictly after now; a deadline at or before now armed here would
         * rightly fire after the rest of this round. */
        if (m->now > UINT64_MAX - 1 - m->tick * 100)
            break;
        tw_timer t;
        uint64_t d = m->now + 1 + m->pick(m->tick * 100);
        CHECK(tw_wheel_schedule(m->wheel, d, on_fire, m, &t) == 0);
        m->add(t, d);
        break;
    }
    default:
        break;
    }
}

void run(unsigned seed, uint64_t ops)
{
    static const uint64_t ticks[] = {TW_TICK_MIN_NS, 1u << 20, TW_TICK_DEFAULT_NS, 10000000};
    Model model;
    Model *m = &model;
    m->seed = seed;
    m->rng.seed(seed);
    m->tick = ticks[seed % 4];
    m->now = m->pick(2) ? m->rng() >> m->pick(64) : 0;
    m->now >>= 2;
    tw_wheel_config c;
    tw_wheel_config_init(&c);
    c.tick_ns = m->tick;
    CHECK(tw_wheel_new(&c, m->now, &m->wheel) == 0);

    for (m->step = 0; m->step < ops; m->step++) {
        /* Alternate phases that grow the population and that drain it. */
        bool grow = (m->step / 20000) % 2 == 0;
        uint64_t r = m->pick(100);
        if (grow && ((r >= 35 && r < 60) || (r >= 80 && m->pick(4))))
            r = 0;
        if (r < 35 || m->handles.empty()) {
            tw_timer t;
            uint64_t d = m->random_deadline();
            CHECK(tw_wheel_schedule(m->wheel, d, on_fire, m, &t) == 0);
            CHECK(m->live.find(t) == m->live.end());
            m->add(t, d);
        } else if (r < 50) {
            tw_timer t = m->handles[m->pick(m->handles.size())];
            CHECK(tw_wheel_cancel(m->wheel, t) == 0);
            m->ref.erase(m->live[t]);
            m->live.erase(t);
            m->forget(t);
        } else if (r < 65) {
            tw_timer t = m->handles[m->pick(m->handles.size())];
            uint64_t d = m->random_deadline();
            CHECK(tw_wheel_reschedule(m->wheel, t, d) == 0);
            m->ref.erase(m->live[t]);
            auto key = std::make_pair(d, m->seq++);
            m->ref[key] = t;
            m->live[t] = key;
        } else if (r < 70 && !m->dead.empty()) {
            tw_timer t = m->dead[m->pick(m->dead.size())];
            if (m->live.find(t) == m->live.end()) {
                uint64_t d;
                CHECK(tw_wheel_cancel(m->wheel, t) == TW_ENOENT);
                CHECK(tw_wheel_reschedule(m->wheel, t, m->now) == TW_ENOENT);
                CHECK(tw_wheel_deadline(m->wheel, t, &d) == TW_ENOENT);
            }
        } else if (r < 80) {
            uint64_t next;
            int rc = tw_wheel_next_deadline(m->wheel, &next);
            auto first = m->ref.begin();
            if (first == m->ref.end() || first->first.first == TW_NEVER) {
                CHECK(rc == TW_ENOENT);
            } else {
                CHECK(rc == 0);
                CHECK(next <= first->first.first);
            }
        } else {
            /* Advance: a little, to the next deadline, or a long way. */
            uint64_t to = m->now;
            switch (m->pick(16)) {
            case 0: case 1: case 2: case 3: case 4: case 5: case 6: case 7: case 8:
                to += m->pick(m->tick * 3);
                break;
            case 9: case 10: case 11: case 12: {
                uint64_t next;
                /* Not so far that later deadlines would overflow. */
                if (tw_wheel_next_deadline(m->wheel, &next) == 0 && next > to &&
                    next - to < (m->tick << 26))
                    to = next;
                break;
            }
            case 13:
                to += m->pick(m->tick << m->pick(20));
                break;
            default:
                to = m->pick(8) ? to : to - m->pick(to / 2 + 1);         /* backwards: clamped */
                break;
            }
            if (to < m->now)
                to = m->now;
            m->now = to;
            uint64_t before = m->fired;
            uint32_t budget = m->pick(4) ? 0 : uint32_t(1 + m->pick(8));
            int n = tw_wheel_advance_max(m->wheel, to, budget);
            CHECK(n >= 0 && uint64_t(n) == m->fired - before);
            CHECK(tw_wheel_now(m->wheel) == m->now);
            CHECK(budget == 0 || uint32_t(n) <= budget);
            /* Stopped by the budget, or by cascade work (4 entries per
             * callback of budget): then the next deadline is at or before now. */
            uint64_t soonest;
            m->pending = budget && (uint32_t(n) == budget ||
                                    (tw_wheel_next_deadline(m->wheel, &soonest) == 0 &&
                                     soonest <= m->now));
            if (!m->pending)
                CHECK(m->ref.empty() || m->ref.begin()->first.first > m->now);
            if (m->pending && !m->ref.empty() && m->ref.begin()->first.first <= m->now) {
                uint64_t next;
                CHECK(tw_wheel_next_deadline(m->wheel, &next) == 0 && next <= m->now);
            }
        }
        if (m->step % 512 == 0 || getenv("TW_MODEL_VERIFY_ALL"))
            CHECK(tw_wheel_verify(m->wheel) == 0);
    }
    CHECK(tw_wheel_verify(m->wheel) == 0);
    /* The end of time: everything but the parked timers fires, in order. */
    m->pending = false;
    m->now = UINT64_MAX - 1;
    tw_wheel_advance(m->wheel, m->now);
    CHECK(m->ref.empty() || m->ref.begin()->first.first == TW_NEVER);
    CHECK(tw_wheel_verify(m->wheel) == 0);
    tw_wheel_stats s;
    s.struct_size = sizeof(s);
    CHECK(tw_wheel_stats_get(m->wheel, &s) == 0);
    CHECK(s.live == m->live.size());
    CHECK(s.fired == m->fired);
    std::printf("seed %u: tick %llu ns, %llu steps, %llu fired, %llu cascaded, %llu live at most\n",
                seed, (unsigned long long)m->tick, (unsigned long long)ops,
                (unsigned long long)s.fired, (unsigned long long)s.cascaded,
                (unsigned long long)s.high_water);
    /* The run reached the paths it is meant to test. */
    CHECK(s.fired > ops / 20 && s.cascaded > ops / 100 && s.high_water > 1000);
    tw_wheel_free(m->wheel);
}

unsigned ARG_SEED;
uint64_t ARG_OPS;

void test_random_runs(void **state)
{
    (void)state;
    if (ARG_OPS) {
        run(ARG_SEED, ARG_OPS);
        return;
    }
    /* 8 seeds x 160k steps: over a million operations per run. */
    for (unsigned seed = 1; seed <= 8; seed++)
        run(seed, 160000);
}

} // namespace

int main(int argc, char **argv)
{
    if (argc > 1) {
        ARG_SEED = unsigned(std::strtoul(argv[1], nullptr, 0));
        ARG_OPS = argc > 2 ? std::strtoull(argv[2], nullptr, 0) : 160000;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_runs),
    };
    return cmocka_run_group_tests_name("model", tests, nullptr, nullptr);
}
