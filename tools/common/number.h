/*
 * Reading a number from a command-line option, for tw-sim and tw-quic: a
 * decimal or floating-point value with an optional k (thousands) or M
 * (millions) suffix, within [lo, hi].  A bad value is reported on stderr
 * with the tool's and the option's names.
 *
 * Uses: nothing of the library; header-only.
 */
#ifndef TW_TOOLS_NUMBER_H
#define TW_TOOLS_NUMBER_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

/* 0 with the value in *ret, or -1 after saying what is wrong. */
static inline int option_number(const char *tool, const char *opt, const char *s, double lo,
                                double hi, double *ret)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end != s && (*end == 'k' || *end == 'K'))
        v *= 1e3, end++;
    else if (end != s && *end == 'M')
        v *= 1e6, end++;
    if (end == s || *end || errno || !(v >= lo && v <= hi)) {
        fprintf(stderr, "%s: %s wants a number from %g to %g, not '%s'\n", tool, opt, lo, hi, s);
        return -1;
    }
    *ret = v;
    return 0;
}

#endif
