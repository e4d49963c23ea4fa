/*
 * A loop embedded in the caller's event_base, beside the caller's own
 * events: the base is created with libevent's defaults (the loop needs no
 * particular configuration), dispatched by the caller, and outlives the
 * loop.
 */
#include <event2/event.h>
#include <stdio.h>
#include <tickwheel.h>

#define MS UINT64_C(1000000)

static int ticks, fired;

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    ticks++;
}

static void on_timer(tw_timer timer, uint64_t deadline_ns, void *userdata)
{
    struct event_base *base = userdata;
    (void)timer;
    (void)deadline_ns;
    if (++fired == 2)
        event_base_loopexit(base, NULL);
}

int main(void)
{
    struct event_base *base = event_base_new();
    if (!base)
        return 1;

    /* The application's own event: a 2 ms heartbeat. */
    struct timeval two_ms = {0, 2000};
    struct event *tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
    event_add(tick, &two_ms);

    tw_loop *loop;
    tw_timer timer;
    if (tw_loop_new(base, NULL, &loop) < 0)
        return 1;
    tw_loop_schedule_relative(loop, 20 * MS, on_timer, base, &timer);
    tw_loop_schedule_relative(loop, 40 * MS, on_timer, base, &timer);

    event_base_dispatch(base);
    printf("%d timers fired beside %d heartbeats\n", fired, ticks);

    tw_loop_free(loop);         /* before the base it lives on */
    event_free(tick);
    event_base_free(base);
    return fired == 2 && ticks > 0 ? 0 : 1;
}
