/*
 * A loop on a base of its own: three timers, the last one stops the loop.
 * Deadlines are computed from tw_loop_now, the loop's clock.
 */
#include <stdio.h>
#include <tickwheel.h>

#define MS UINT64_C(1000000)

static int fired;

static void on_timer(tw_timer timer, uint64_t deadline_ns, void *userdata)
{
    tw_loop *loop = userdata;
    (void)timer;
    printf("timer %d: %llu ns late\n", ++fired,
           (unsigned long long)(tw_loop_now(loop) - deadline_ns));
    if (fired == 3)
        tw_loop_stop(loop);
}

int main(void)
{
    tw_loop *loop;
    tw_timer timer;
    int err = tw_loop_new(NULL, NULL, &loop);
    if (err < 0) {
        fprintf(stderr, "tw_loop_new: %s\n", tw_strerror(err));
        return 1;
    }
    for (uint64_t i = 1; i <= 3; i++)
        tw_loop_schedule_relative(loop, i * 10 * MS, on_timer, loop, &timer);
    tw_loop_run(loop);
    tw_loop_free(loop);
    return fired == 3 ? 0 : 1;
}
