/*
 * The helpers every mode shares: summaries of runs, Markdown tables,
 * labels, the choice between report and JSON, and runs isolated in child
 * processes whose figures come back through a pipe.  See bench.hpp.
 *
 * Uses: nothing of the library.
 */
#include "bench.hpp"

#include <fcntl.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace bench {

const char *g_program = "tw-bench";

Summary summarize(std::vector<double> samples)
{
    std::sort(samples.begin(), samples.end());
    const std::size_t mid = samples.size() / 2;
    const double median =
        samples.size() % 2 ? samples[mid] : (samples[mid - 1] + samples[mid]) / 2;
    return {median, samples.front(), samples.back()};
}

std::string format(const char *fmt, ...)
{
    char buffer[256];
    va_list args;
    va_start(args, fmt);
    std::vsnprintf(buffer, sizeof buffer, fmt, args);
    va_end(args);
    return buffer;
}

void print_table(const std::vector<Row> &rows)
{
    std::vector<std::size_t> widths(rows[0].size(), 3);
    for (const Row &row : rows)
        for (std::size_t i = 0; i < row.size(); ++i)
            widths[i] = std::max(widths[i], row[i].size());
    const auto print_row = [&](const Row &row) {
        for (std::size_t i = 0; i < row.size(); ++i)
            std::printf(i == 0 ? "| %-*s " : "| %*s ", static_cast<int>(widths[i]),
                        row[i].c_str());
        std::puts("|");
    };
    print_row(rows[0]);
    for (std::size_t i = 0; i < widths.size(); ++i)
        std::printf("|%s%s", std::string(widths[i] + 1, '-').c_str(), i == 0 ? "-" : ":");
    std::puts("|");
    for (std::size_t r = 1; r < rows.size(); ++r)
        print_row(rows[r]);
}

std::string n_label(std::size_t n)
{
    if (n % 1'000'000 == 0)
        return std::to_string(n / 1'000'000) + "M";
    if (n % 1'000 == 0)
        return std::to_string(n / 1'000) + "k";
    return std::to_string(n);
}

namespace {

/* The text with what a JSON string cannot hold as it is escaped, control
 * characters as spaces. */
std::string json_escaped(const std::string &text)
{
    std::string escaped;
    for (const char c : text) {
        if (c == '"' || c == '\\')
            escaped += '\\';
        escaped += static_cast<unsigned char>(c) < 0x20 ? ' ' : c;
    }
    return escaped;
}

/* The "model name" of /proc/cpuinfo (x86), or empty. */
std::string cpu_model()
{
    std::FILE *cpuinfo = std::fopen("/proc/cpuinfo", "re");
    if (!cpuinfo)
        return {};
    std::string model;
    char line[512];
    while (std::fgets(line, sizeof line, cpuinfo))
        if (std::strncmp(line, "model name", 10) == 0) {
            const char *colon = std::strchr(line, ':');
            if (colon) {
                model = colon + 1 + std::strspn(colon + 1, " \t");
                model.erase(model.find_last_not_of(" \t\n") + 1);
            }
            break;
        }
    std::fclose(cpuinfo);
    return model;
}

} // namespace

void print_json_machine(std::FILE *out)
{
    char date[32] = "";
    const std::time_t now = std::time(nullptr);
    std::tm utc{};
    if (gmtime_r(&now, &utc))
        std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &utc);
    utsname names{};
    std::string system;
    if (uname(&names) == 0)
        system = std::string(names.sysname) + " " + names.release + " " + names.machine;
    std::string cpu = cpu_model();
    if (cpu.empty())
        cpu = names.machine;
    std::fprintf(out,
                 "  \"date\": \"%s\",\n"
                 "  \"machine\": {\"cpu\": \"%s\", \"cpus\": %ld, \"system\": \"%s\"},\n",
                 date, json_escaped(cpu).c_str(), sysconf(_SC_NPROCESSORS_ONLN),
                 json_escaped(system).c_str());
}

void publish(const Options &options, std::FILE *export_json,
             const std::function<void()> &report,
             const std::function<void(std::FILE *out)> &json)
{
    if (options.json)
        json(stdout);
    else
        report();
    if (export_json)
        json(export_json);
}

std::optional<std::uint64_t> status_kib(const char *field)
{
    std::FILE *status = std::fopen("/proc/self/status", "re");
    if (!status)
        return std::nullopt;
    std::optional<std::uint64_t> kib;
    const std::size_t length = std::strlen(field);
    char line[256];
    while (std::fgets(line, sizeof line, status))
        if (std::strncmp(line, field, length) == 0) {
            kib = std::strtoull(line + length, nullptr, 10);
            break;
        }
    std::fclose(status);
    return kib;
}

namespace {

/* Moves exactly size bytes with io (read or write), across short counts
 * and interruptions. */
template <typename Io, typename Byte>
bool transfer_all(Io io, int fd, Byte *p, std::size_t size)
{
    while (size > 0) {
        const ssize_t n = io(fd, p, size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        size -= static_cast<std::size_t>(n);
    }
    return true;
}

bool read_all(int fd, void *data, std::size_t size)
{
    return transfer_all(read, fd, static_cast<char *>(data), size);
}

} // namespace

bool write_all(int fd, const void *data, std::size_t size)
{
    return transfer_all(write, fd, static_cast<const char *>(data), size);
}

bool run_isolated(const std::string &label, const std::function<bool(int fd)> &child,
                  void *data, std::size_t size)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        std::fprintf(stderr, "%s: pipe: %s\n", g_program, std::strerror(errno));
        return false;
    }
    std::fflush(nullptr);
    const pid_t pid = fork();
    if (pid < 0) {
        std::fprintf(stderr, "%s: fork: %s\n", g_program, std::strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return false;
    }
    if (pid == 0) {
        close(fds[0]);
        _exit(child(fds[1]) ? 0 : 1);
    }

    close(fds[1]);
    const bool received = read_all(fds[0], data, size);
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            std::fprintf(stderr, "%s: waitpid: %s\n", g_program, std::strerror(errno));
            return false;
        }
    }
    if (WIFSIGNALED(status)) {
        std::fprintf(stderr, "%s: %s: killed by signal %d (%s)\n", g_program, label.c_str(),
                     WTERMSIG(status), strsignal(WTERMSIG(status)));
        return false;
    }
    return received && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

} // namespace bench
