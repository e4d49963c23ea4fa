/*
 * libFuzzer target for the wheel: the input's bytes are the choices of the
 * model harness (test/wheel-model.hpp), which drives a wheel and its
 * reference model with the same operations and checks every answer and
 * every callback; a mismatch aborts with what broke.  A run ends with every
 * timer left fired, and, when the input asks, the wheel freed from a
 * callback.
 */
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "../wheel-model.hpp"

namespace {

/* Choices from the input, little-endian, as few bytes as the range needs;
 * zeros once it runs out. */
struct Bytes : model::Source {
    Bytes(const uint8_t *d, size_t n) : data(d), size(n) {}
    uint64_t draw(uint64_t n) override
    {
        unsigned bytes = 8;
        if (n)
            for (bytes = 1; bytes < 8 && (n - 1) >> (8 * bytes); bytes++) {
            }
        uint64_t v = 0;
        for (unsigned k = 0; k < bytes; k++)
            v |= uint64_t(at < size ? data[at++] : 0) << (8 * k);
        if (at >= size)
            over = true;
        return n ? v % n : v;
    }
    bool done() const override { return over; }
    const uint8_t *data;
    size_t size, at = 0;
    bool over = false;
};

struct Abort : model::Report {
    void mismatch(const char *what, uint64_t step) override
    {
        std::fprintf(stderr, "wheel model mismatch at step %llu: %s\n", (unsigned long long)step, what);
        std::abort();
    }
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    Bytes src(data, size);
    Abort rep;
    bool free_at_end = data[0] & 1;
    src.at = 1;
    model::Harness h(src, rep);
    if (!h.start())
        return 0;
    while (!src.done() && h.step()) {
    }
    h.drain();
    if (free_at_end)
        h.free_from_callback();
    return 0;
}
