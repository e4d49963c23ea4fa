/*
 * The loop's worker: one helper thread for the pure computation of large
 * batches (fork-join).
 *
 * split(n, fn, ctx) runs fn(ctx, begin, end) over [0, n) in chunks, shared
 * between the calling thread and the worker: both take chunks from one
 * atomic cursor, so the split follows whoever is faster, and a worker that
 * wakes late simply takes less (or nothing).  split returns once every
 * chunk has run; then nothing of the batch runs anywhere else, and what fn
 * wrote is visible to the caller.  fn must be pure with respect to the
 * loop: it may read shared state the caller does not change meanwhile and
 * write disjoint outputs, but must not call tickwheel.
 *
 * The thread is started by the first split and joined by the destructor.
 * Between batches it spins briefly (a storm of turns hands off back to
 * back), then sleeps on a futex; the caller waits the same way for a chunk
 * the worker holds.  No lock, no allocation per batch, no sleep as
 * synchronisation.  If the thread cannot be started, split returns false
 * having run nothing, and the caller runs the batch itself.
 *
 * Uses: nothing of the library but lib/common's clock read (in
 * worker.cpp); pthreads and Linux futexes.
 */
#ifndef TW_WORKER_HPP
#define TW_WORKER_HPP

#include <atomic>
#include <cstddef>
#include <cstdint>

#include <pthread.h>

namespace tw {

class Worker {
public:
    using Fn = void (*)(void *ctx, size_t begin, size_t end);

    Worker() = default;
    Worker(const Worker &) = delete;
    Worker &operator=(const Worker &) = delete;
    ~Worker() { stop(); }

    /* Runs fn over [0, n) on this thread and the worker; false, with
     * nothing run, when the worker thread cannot be started. */
    bool split(size_t n, Fn fn, void *ctx);
    /* Joins the thread, if one runs; a later split starts a new one. */
    void stop();
    bool started() const { return started_; }
    /* Chunks the worker ran, over its life: for tests and benchmarks. */
    uint64_t worker_chunks() const { return worker_chunks_.load(std::memory_order_relaxed); }
    /* Makes the next starts fail, as pthread_create would: for tests. */
    void refuse_start(bool refuse) { refuse_start_ = refuse; }

private:
    /* Who holds the posted batch: the worker may take it only while it is
     * kPosted; the caller revokes it if it ran every chunk first. */
    enum : uint32_t { kIdle, kPosted, kTaken, kDone, kRevoked };

    static void *main(void *arg);
    void work();
    void run_chunks(bool worker);
    bool start();

    /* The batch: written before it is posted, read by the worker after it
     * took it. */
    Fn fn_ = nullptr;
    void *ctx_ = nullptr;
    size_t n_ = 0, chunk_ = 0;
    alignas(64) std::atomic<size_t> next_{0};       /* chunk cursor */
    alignas(64) std::atomic<uint32_t> owner_{kIdle};
    std::atomic<uint32_t> posted_{0};               /* bumped per batch: the worker's futex */
    std::atomic<uint32_t> worker_sleeps_{0};
    std::atomic<uint32_t> caller_sleeps_{0};
    std::atomic<bool> quit_{false};
    std::atomic<uint64_t> worker_chunks_{0};
    uint32_t start_seen_ = 0;                       /* posted_ when the thread started */
    pthread_t thread_{};
    bool started_ = false;
    bool refuse_start_ = false;
};

} // namespace tw

#endif
