/*
 * A loop driven by hand from an epoll loop that is not libevent's: the
 * application watches tw_loop_fd, which polls readable when a timer is due
 * or another thread posted, and then calls tw_loop_process.  No timeout to
 * compute: the loop's timer descriptor is behind that one descriptor.
 */
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

int main(void)
{
    tw_loop *loop;
    tw_timer timer;
    if (tw_loop_new(NULL, NULL, &loop) < 0)
        return 1;
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event timers = {.events = EPOLLIN};
    epoll_ctl(epfd, EPOLL_CTL_ADD, tw_loop_fd(loop), &timers);

    tw_loop_schedule_relative(loop, 10 * MS, on_timer, NULL, &timer);
    pthread_t thread;
    pthread_create(&thread, NULL, worker, loop);

    while (fired < 2) {
        struct epoll_event ev;
        if (epoll_wait(epfd, &ev, 1, -1) < 0)
            break;
        tw_loop_process(loop);
    }
    pthread_join(thread, NULL);
    printf("%d timers fired, %d post\n", fired, posted);
    tw_loop_free(loop);
    return fired == 2 && posted == 1 ? 0 : 1;
}
