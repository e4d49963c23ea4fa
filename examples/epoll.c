/*
 * A loop driven by hand from an epoll loop that is not libevent's: the
 * application sleeps until tw_loop_next_deadline or until another thread
 * posts (tw_loop_fd polls readable), then calls tw_loop_process.
 */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <tickwheel.h>

#define MS UINT64_C(1000000)

static int fired, posted;

static void on_timer(tw_timer timer, uint64_t deadline_ns, void *userdata)
{
    (void)timer;
    (void)deadline_ns;
    (void)userdata;
    fired++;
}

static void on_post(tw_loop *loop, int status, void *userdata)
{
    (void)userdata;
    if (status == 0) {
        posted++;
        /* Arm a timer from the loop's thread, on behalf of the worker. */
        tw_timer timer;
        tw_loop_schedule_relative(loop, 5 * MS, on_timer, NULL, &timer);
    }
}

static void *worker(void *arg)
{
    tw_loop_post_wait(arg, on_post, NULL, 1000 * MS);
    return NULL;
}

/* Milliseconds until the next turn, rounded up so the wait never ends
 * early; -1 when nothing is armed. */
static int timeout_ms(const tw_loop *loop)
{
    uint64_t next, now = tw_loop_now(loop);
    if (tw_loop_next_deadline(loop, &next) < 0)
        return -1;
    if (next <= now)
        return 0;
    uint64_t ms = (next - now + MS - 1) / MS;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

int main(void)
{
    tw_loop *loop;
    tw_timer timer;
    if (tw_loop_new(NULL, NULL, &loop) < 0)
        return 1;
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event inbox = {.events = EPOLLIN};
    epoll_ctl(epfd, EPOLL_CTL_ADD, tw_loop_fd(loop), &inbox);

    tw_loop_schedule_relative(loop, 10 * MS, on_timer, NULL, &timer);
    pthread_t thread;
    pthread_create(&thread, NULL, worker, loop);

    while (fired < 2) {
        struct epoll_event ev;
        epoll_wait(epfd, &ev, 1, timeout_ms(loop));
        tw_loop_process(loop);
    }
    pthread_join(thread, NULL);
    printf("%d timers fired, %d post\n", fired, posted);
    tw_loop_free(loop);
    return fired == 2 && posted == 1 ? 0 : 1;
}
