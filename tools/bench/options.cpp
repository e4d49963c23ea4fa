/*
 * The command line of tw-bench and tw-bench-internal: one parser for the
 * options of every mode, the choice of the mode, the refusal of options it
 * does not take, then the CPU, the export file and the run.  See bench.hpp.
 *
 * Uses: nothing of the library.
 */
#include "bench.hpp"

#include <getopt.h>
#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdlib>
#include <cstring>

namespace bench {

namespace {

constexpr std::size_t kMaxN = 100'000'000;
constexpr unsigned kMaxRuns = 1000;
constexpr unsigned kMaxLoopSeconds = 600;
constexpr std::size_t kMaxLoopTimers = 10'000'000;

std::vector<std::string> split(const char *list)
{
    std::vector<std::string> items;
    std::string item;
    for (const char *p = list;; ++p) {
        if (*p == ',' || *p == '\0') {
            items.push_back(item);
            item.clear();
            if (*p == '\0')
                break;
        } else {
            item += *p;
        }
    }
    return items;
}

bool parse_ns(const char *name, const char *arg, Options &options)
{
    for (const std::string &item : split(arg)) {
        std::uint64_t n;
        if (!parse_count(item.c_str(), true, &n) || n == 0 || n > kMaxN) {
            std::fprintf(stderr, "%s: --n wants counts from 1 to %zu, not '%s'\n", name, kMaxN,
                         item.c_str());
            return false;
        }
        if (std::find(options.ns.begin(), options.ns.end(), n) == options.ns.end())
            options.ns.push_back(static_cast<std::size_t>(n));
    }
    return true;
}

/* A count from lo to hi, with the suffixes of --n or without. */
bool parse_bounded(const char *name, const char *opt, const char *arg, bool suffixes,
                   std::uint64_t lo, std::uint64_t hi, std::uint64_t *ret)
{
    if (parse_count(arg, suffixes, ret) && *ret >= lo && *ret <= hi)
        return true;
    std::fprintf(stderr, "%s: %s wants %" PRIu64 " to %" PRIu64 ", not '%s'\n", name, opt, lo,
                 hi, arg);
    return false;
}

enum : int {
    kImpl = 256,
    kWorkload,
    kN,
    kRuns,
    kSeed,
    kQuick,
    kCpu,
    kJson,
    kExportJson,
    kLoopSeconds,
    kLoopTimers,
    kFirstMode,
};

/* The command line, parsed; *mode the index of the mode chosen.  0: run;
 * 1: done (--help); 2: refused. */
int parse(const Program &program, int argc, char **argv, Options &options, std::size_t *mode)
{
    std::vector<option> longs = {
        {"impl", required_argument, nullptr, kImpl},
        {"workload", required_argument, nullptr, kWorkload},
        {"n", required_argument, nullptr, kN},
        {"runs", required_argument, nullptr, kRuns},
        {"seed", required_argument, nullptr, kSeed},
        {"quick", no_argument, nullptr, kQuick},
        {"cpu", required_argument, nullptr, kCpu},
        {"json", no_argument, nullptr, kJson},
        {"export-json", required_argument, nullptr, kExportJson},
        {"loop-seconds", required_argument, nullptr, kLoopSeconds},
        {"loop-timers", required_argument, nullptr, kLoopTimers},
        {"help", no_argument, nullptr, 'h'},
    };
    for (std::size_t m = 0; m < program.nmodes; ++m)
        if (program.modes[m].flag)
            longs.push_back({program.modes[m].flag + 2, no_argument, nullptr,
                             kFirstMode + static_cast<int>(m)});
    longs.push_back({nullptr, 0, nullptr, 0});

    const char *name = program.name;
    const char *given[6] = {};  /* per Opt bit, the option that set it */
    const auto note = [&given](Opt opt, const char *text) {
        given[__builtin_ctz(opt)] = text;
    };
    bool chosen = false;
    std::uint64_t v;
    int c;
    while ((c = getopt_long(argc, argv, "h", longs.data(), nullptr)) != -1) {
        switch (c) {
        case kImpl:
            for (const std::string &item : split(optarg))
                options.impls.push_back(item);
            note(kOptImpl, "--impl");
            break;
        case kWorkload:
            for (const std::string &item : split(optarg))
                options.workloads.push_back(item);
            note(kOptWorkload, "--workload");
            break;
        case kN:
            if (!parse_ns(name, optarg, options))
                return 2;
            note(kOptN, "--n");
            break;
        case kRuns:
            if (!parse_bounded(name, "--runs", optarg, false, 1, kMaxRuns, &v))
                return 2;
            options.runs = static_cast<unsigned>(v);
            options.runs_given = true;
            break;
        case kSeed:
            if (!parse_count(optarg, false, &options.seed)) {
                std::fprintf(stderr, "%s: --seed wants an unsigned 64-bit number, not '%s'\n",
                             name, optarg);
                return 2;
            }
            break;
        case kQuick:
            options.quick = true;
            note(kOptQuick, "--quick");
            break;
        case kCpu:
            if (!parse_count(optarg, false, &v) || v >= CPU_SETSIZE) {
                std::fprintf(stderr, "%s: --cpu wants a CPU number, not '%s'\n", name, optarg);
                return 2;
            }
            options.cpu = static_cast<int>(v);
            break;
        case kJson:
            options.json = true;
            break;
        case kExportJson:
            options.export_json = optarg;
            break;
        case kLoopSeconds:
            if (!parse_bounded(name, "--loop-seconds", optarg, false, 1, kMaxLoopSeconds, &v))
                return 2;
            options.loop_seconds = static_cast<unsigned>(v);
            note(kOptLoopSeconds, "--loop-seconds");
            break;
        case kLoopTimers:
            if (!parse_bounded(name, "--loop-timers", optarg, true, 1, kMaxLoopTimers, &v))
                return 2;
            options.loop_timers = static_cast<std::size_t>(v);
            note(kOptLoopTimers, "--loop-timers");
            break;
        case 'h':
            std::fputs(program.usage, stdout);
            return 1;
        default:
            if (c < kFirstMode) {
                std::fprintf(stderr, "Try '%s --help'.\n", name);
                return 2;
            }
            if (chosen) {
                std::fprintf(stderr, "%s: %s does not apply to %s\n", name,
                             program.modes[c - kFirstMode].flag, program.modes[*mode].flag);
                return 2;
            }
            chosen = true;
            *mode = static_cast<std::size_t>(c - kFirstMode);
            break;
        }
    }
    if (optind < argc) {
        std::fprintf(stderr, "%s: unexpected argument '%s'\n", name, argv[optind]);
        return 2;
    }
    if (!chosen) {
        const Mode *end = program.modes + program.nmodes;
        const Mode *plain = std::find_if(program.modes, end, [](const Mode &m) { return !m.flag; });
        if (plain == end) {
            std::fprintf(stderr, "%s: which benchmarks? Try '%s --help'.\n", name, name);
            return 2;
        }
        *mode = static_cast<std::size_t>(plain - program.modes);
    }
    const Mode &m = program.modes[*mode];
    for (unsigned bit = 0; bit < sizeof given / sizeof *given; ++bit) {
        if (!given[bit] || (m.options & (1u << bit)))
            continue;
        if (m.flag) {
            std::fprintf(stderr, "%s: %s does not apply to %s\n", name, given[bit], m.flag);
            return 2;
        }
        for (std::size_t k = 0; k < program.nmodes; ++k)
            if (program.modes[k].options & (1u << bit)) {
                std::fprintf(stderr, "%s: %s needs %s\n", name, given[bit],
                             program.modes[k].flag);
                return 2;
            }
    }
    if (!options.runs_given)
        options.runs = m.default_runs;
    return m.prepare && !m.prepare(options) ? 2 : 0;
}

} // namespace

bool parse_count(const char *text, bool suffixes, std::uint64_t *ret)
{
    if (text[0] < '0' || text[0] > '9')
        return false;
    errno = 0;
    char *end = nullptr;
    std::uint64_t value = std::strtoull(text, &end, 10);
    if (errno != 0)
        return false;
    if (suffixes && (*end == 'k' || *end == 'M')) {
        const std::uint64_t scale = *end == 'k' ? 1'000 : 1'000'000;
        if (value > UINT64_MAX / scale)
            return false;
        value *= scale;
        ++end;
    }
    if (*end != '\0')
        return false;
    *ret = value;
    return true;
}

int main(const Program &program, int argc, char **argv)
{
    g_program = program.name;
    Options options;
    std::size_t mode = 0;
    if (const int status = parse(program, argc, argv, options, &mode))
        return status == 1 ? 0 : 2;

    if (options.cpu >= 0) {
        cpu_set_t cpus;
        CPU_ZERO(&cpus);
        CPU_SET(options.cpu, &cpus);
        if (sched_setaffinity(0, sizeof cpus, &cpus) != 0) {
            std::fprintf(stderr, "%s: cannot pin to CPU %d: %s\n", program.name, options.cpu,
                         std::strerror(errno));
            return 2;
        }
    }
    std::FILE *export_json = nullptr;
    if (options.export_json && !(export_json = std::fopen(options.export_json, "we"))) {
        std::fprintf(stderr, "%s: %s: %s\n", program.name, options.export_json,
                     std::strerror(errno));
        return 2;
    }
    bool ok = program.modes[mode].run(options, export_json);
    if (export_json && std::fclose(export_json) != 0) {
        std::fprintf(stderr, "%s: %s: %s\n", program.name, options.export_json,
                     std::strerror(errno));
        ok = false;
    }
    return ok ? 0 : 1;
}

} // namespace bench
