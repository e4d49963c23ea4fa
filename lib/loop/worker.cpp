/*
 * The worker thread, as worker.hpp lays it out: its start and stop, the
 * spin-then-futex waits on both sides of a batch, and the chunk cursor.
 *
 * Uses: lib/common/clock.hpp; pthreads and Linux futexes.
 */
#include "loop/worker.hpp"
#include "common/clock.hpp"

#include <climits>
#include <csignal>

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace tw {

namespace {

static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t), "a futex word is 32 bits");

/* How long each side spins before it sleeps on the futex: the worker
 * between batches (turns of a storm come back within this), the caller for
 * the last chunk the worker holds (one chunk is short). */
constexpr uint64_t kWorkerSpinNs = 50000;
constexpr uint64_t kCallerSpinNs = 50000;
/* Chunks: about 32 per batch, so a late worker costs little balance, and
 * never so small that the shared cursor costs more than the work. */
constexpr size_t kChunks = 32;
constexpr size_t kMinChunk = 16;
/* A spin reads the clock once per this many rounds. */
constexpr unsigned kSpinsPerClockRead = 64;

void futex_wait(std::atomic<uint32_t> *word, uint32_t expected)
{
    /* Returns at once if the word changed; spurious returns are re-checked. */
    syscall(SYS_futex, reinterpret_cast<uint32_t *>(word), FUTEX_WAIT_PRIVATE, expected,
            nullptr, nullptr, 0);
}

void futex_wake(std::atomic<uint32_t> *word)
{
    syscall(SYS_futex, reinterpret_cast<uint32_t *>(word), FUTEX_WAKE_PRIVATE, INT_MAX,
            nullptr, nullptr, 0);
}

inline void cpu_relax()
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Spins until done() or spin_ns passed; true when done. */
template <typename Done>
bool spin(Done done, uint64_t spin_ns)
{
    uint64_t until = 0;
    for (unsigned i = 1;; i++) {
        if (done())
            return true;
        cpu_relax();
        if (i % kSpinsPerClockRead == 0) {
            uint64_t now = clock_ns(CLOCK_MONOTONIC);
            if (!until)
                until = now + spin_ns;
            else if (now >= until)
                return false;
        }
    }
}

} // namespace

bool Worker::start()
{
    if (refuse_start_)
        return false;
    quit_.store(false, std::memory_order_relaxed);
    /* The thread may first run after batches were posted (and revoked), or
     * after stop: it counts from here, not from what it first reads. */
    start_seen_ = posted_.load(std::memory_order_relaxed);
    /* The worker takes no signal: handlers run on the application's threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int r = pthread_create(&thread_, nullptr, main, this);
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    if (r != 0)
        return false;
    started_ = true;
    return true;
}

void Worker::stop()
{
    if (!started_)
        return;
    quit_.store(true, std::memory_order_seq_cst);
    posted_.fetch_add(1, std::memory_order_seq_cst);
    futex_wake(&posted_);
    pthread_join(thread_, nullptr);
    started_ = false;
}

void *Worker::main(void *arg)
{
    static_cast<Worker *>(arg)->work();
    return nullptr;
}

void Worker::work()
{
    uint32_t seen = start_seen_;
    for (;;) {
        uint32_t p = seen;
        auto moved = [&] {
            p = posted_.load(std::memory_order_acquire);
            return p != seen;
        };
        if (!spin(moved, kWorkerSpinNs)) {
            /* Announce the sleep, then re-check: a caller that bumps posted_
             * after this store sees it and wakes the futex. */
            worker_sleeps_.store(1, std::memory_order_seq_cst);
            while ((p = posted_.load(std::memory_order_seq_cst)) == seen)
                futex_wait(&posted_, seen);
            worker_sleeps_.store(0, std::memory_order_relaxed);
        }
        seen = p;
        if (quit_.load(std::memory_order_acquire))
            return;
        uint32_t expected = kPosted;
        if (!owner_.compare_exchange_strong(expected, kTaken, std::memory_order_acq_rel))
            continue;   /* revoked: the caller ran it all */
        run_chunks(true);
        owner_.store(kDone, std::memory_order_seq_cst);
        if (caller_sleeps_.load(std::memory_order_seq_cst))
            futex_wake(&owner_);
    }
}

void Worker::run_chunks(bool worker)
{
    for (;;) {
        size_t begin = next_.fetch_add(chunk_, std::memory_order_relaxed);
        if (begin >= n_)
            return;
        size_t end = n_ - begin < chunk_ ? n_ : begin + chunk_;
        fn_(ctx_, begin, end);
        if (worker)
            worker_chunks_.fetch_add(1, std::memory_order_relaxed);
    }
}

bool Worker::split(size_t n, Fn fn, void *ctx)
{
    if (!started_ && !start())
        return false;
    fn_ = fn;
    ctx_ = ctx;
    n_ = n;
    chunk_ = n / kChunks > kMinChunk ? n / kChunks : kMinChunk;
    next_.store(0, std::memory_order_relaxed);
    owner_.store(kPosted, std::memory_order_seq_cst);
    posted_.fetch_add(1, std::memory_order_seq_cst);
    if (worker_sleeps_.load(std::memory_order_seq_cst))
        futex_wake(&posted_);
    run_chunks(false);
    /* Every chunk is claimed.  A worker that has not taken the batch yet
     * never will; one that has holds at most one chunk: wait for it. */
    uint32_t expected = kPosted;
    if (!owner_.compare_exchange_strong(expected, kRevoked, std::memory_order_acq_rel)) {
        auto done = [this] { return owner_.load(std::memory_order_acquire) == kDone; };
        if (!spin(done, kCallerSpinNs)) {
            caller_sleeps_.store(1, std::memory_order_seq_cst);
            uint32_t o;
            while ((o = owner_.load(std::memory_order_seq_cst)) != kDone)
                futex_wait(&owner_, o);
            caller_sleeps_.store(0, std::memory_order_relaxed);
        }
    }
    owner_.store(kIdle, std::memory_order_relaxed);
    return true;
}

} // namespace tw
