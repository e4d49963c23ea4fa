/*
 * A log-linear histogram of 64-bit values (nanoseconds of lateness), for
 * percentiles within 1 % instead of a power of two.
 *
 * Values below 128 have a bucket each.  Above, each power of two [2^e,
 * 2^(e+1)) is cut into 64 equal buckets, so a bucket spans 1/64 of its
 * lower bound at most and its midpoint is within 1/128 (0.8 %) of any value
 * in it.  3776 counters of 8 bytes, 30 KiB, fixed: recording is an index
 * computation and an increment, with no allocation.
 *
 * Uses: nothing but the standard headers; no state beyond the object.
 */
#ifndef TW_COMMON_HISTOGRAM_HPP
#define TW_COMMON_HISTOGRAM_HPP

#include <cstdint>
#include <cstring>

namespace tw {

class Histogram {
public:
    static constexpr unsigned kSubBits = 6;                  /* 64 buckets per octave */
    static constexpr unsigned kLinear = 2u << kSubBits;      /* values with a bucket each */
    static constexpr unsigned kBuckets = kLinear + (63 - kSubBits) * (1u << kSubBits);

    void record(uint64_t v)
    {
        counts_[index(v)]++;
        total_++;
        if (v > max_)
            max_ = v;
    }

    uint64_t total() const { return total_; }
    uint64_t max() const { return max_; }

    /* The value at quantile q (0 < q <= 1): the midpoint of the bucket where
     * the running count first reaches ceil(q * total), clamped to the
     * largest value recorded; 0 when empty. */
    uint64_t quantile(double q) const
    {
        if (!total_)
            return 0;
        uint64_t want = uint64_t(q * double(total_));
        if (double(want) < q * double(total_))
            want++;
        if (want < 1)
            want = 1;
        uint64_t seen = 0;
        for (unsigned i = 0; i < kBuckets; i++) {
            seen += counts_[i];
            if (seen >= want) {
                uint64_t mid = midpoint(i);
                return mid < max_ ? mid : max_;
            }
        }
        return max_;
    }

    static unsigned index(uint64_t v)
    {
        if (v < kLinear)
            return unsigned(v);
        unsigned e = 63u - unsigned(__builtin_clzll(v));          /* >= kSubBits + 1 */
        unsigned sub = unsigned(v >> (e - kSubBits)) & ((1u << kSubBits) - 1);
        return kLinear + (e - kSubBits - 1) * (1u << kSubBits) + sub;
    }

    /* The middle of bucket i's range. */
    static uint64_t midpoint(unsigned i)
    {
        if (i < kLinear)
            return i;
        unsigned k = i - kLinear;
        unsigned e = k / (1u << kSubBits) + kSubBits + 1;
        uint64_t sub = k % (1u << kSubBits);
        uint64_t width = uint64_t(1) << (e - kSubBits);
        uint64_t low = (uint64_t(1) << e) + sub * width;
        return low + width / 2;
    }

    size_t bytes() const { return sizeof(*this); }

private:
    uint64_t counts_[kBuckets] = {};
    uint64_t total_ = 0, max_ = 0;
};

} // namespace tw

#endif
