/* memwriter: a synthetic workload with a controlled memory dirty rate, for the
 * migration benchmark (bench/run --workloads memwriter --dirty-rates ...).
 *
 *   memwriter [--mb MB] [--rate MB/S] [--pattern seq|random] [--port PORT]
 *
 * Allocates a working set of MB megabytes (10^6 bytes, rounded up to 4 KiB
 * pages), fills it, then rewrites RATE MB/s of it, one whole 4 KiB page at a
 * time, sequentially (default: the dirty set of T seconds is min(RATE*T, MB))
 * or at random pages. Every write gives the page new pseudo-random,
 * incompressible content, so neither compression nor a content cache can skip
 * it. Each page carries its index and a write serial from which its content
 * is derived, so `verify` can check every page after a migration.
 * Defaults come from MEMWRITER_MB (64), MEMWRITER_RATE (0), MEMWRITER_PATTERN
 * (seq) and MEMWRITER_PORT (7000); options override them.
 *
 * Status port (TCP): a client sends lines "status" or "verify" and gets one
 * JSON line back for each, on the same connection for as long as it likes
 * (up to MAX_CLIENTS at once). A probe should hold one connection: CRIU
 * refuses to dump a listening socket with a connection not yet accepted.
 * "written_pages" only grows and "token" is drawn once at start, so a client
 * sees that the same process, with its state, kept running after a migration.
 *
 * Built statically by scripts/build-test-images (image "memwriter").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PAGE        4096u
#define WORDS       (PAGE / 8u)
#define SLICE_NS    10000000LL /* write in 10 ms slices */
#define MAX_CLIENTS 8

static uint64_t *mem;
static uint64_t n_pages, written, serial, token;
static double rate_mbps;
static int random_pattern;
static int64_t t_start;

static int64_t now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static uint64_t mix(uint64_t x) /* splitmix64 finaliser */
{
        x += 0x9e3779b97f4a7c15ULL;
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
        return x ^ (x >> 31);
}

/* Page i, written as write number s: [i, s, stream(i, s)...]. */
static void fill(uint64_t *p, uint64_t i, uint64_t s)
{
        uint64_t x = mix(i * 0x100000001b3ULL ^ mix(s ^ token));

        p[0] = i;
        p[1] = s;
        for (unsigned w = 2; w < WORDS; w++) {
                x ^= x << 13; /* xorshift64 */
                x ^= x >> 7;
                x ^= x << 17;
                p[w] = x;
        }
}

static int page_ok(uint64_t i)
{
        static uint64_t want[WORDS];
        uint64_t *p = mem + i * WORDS;

        if (p[0] != i)
                return 0;
        fill(want, i, p[1]);
        return memcmp(want, p, PAGE) == 0;
}

static uint64_t next_page(void)
{
        static uint64_t cursor, rnd = 88172645463325252ULL;

        if (!random_pattern)
                return cursor++ % n_pages;
        rnd ^= rnd << 13;
        rnd ^= rnd >> 7;
        rnd ^= rnd << 17;
        return rnd % n_pages;
}

static void write_pages(uint64_t n)
{
        for (uint64_t k = 0; k < n; k++) {
                uint64_t i = next_page();
                fill(mem + i * WORDS, i, ++serial);
        }
        written += n;
}

/* Answers what the client sent; returns -1 when it hung up. */
static int reply(int fd)
{
        char cmd[256];
        char out[512];
        ssize_t n = read(fd, cmd, sizeof(cmd) - 1);
        int len;

        if (n <= 0)
                return n < 0 && errno == EAGAIN ? 0 : -1;
        cmd[n] = '\0';
        double up = (double)(now_ns() - t_start) / 1e9;
        if (strncmp(cmd, "verify", 6) == 0) {
                int64_t t0 = now_ns();
                uint64_t bad = 0;
                for (uint64_t i = 0; i < n_pages; i++)
                        bad += !page_ok(i);
                len = snprintf(out, sizeof(out),
                               "{\"ok\":%s,\"pages\":%llu,\"bad_pages\":%llu,\"verify_ms\":%.1f,"
                               "\"written_pages\":%llu,\"token\":\"%016llx\",\"pid\":%d}\n",
                               bad ? "false" : "true", (unsigned long long)n_pages,
                               (unsigned long long)bad, (double)(now_ns() - t0) / 1e6,
                               (unsigned long long)written, (unsigned long long)token, getpid());
        } else {
                len = snprintf(out, sizeof(out),
                               "{\"ok\":true,\"pages\":%llu,\"mb\":%.1f,\"rate_mbps\":%.2f,"
                               "\"pattern\":\"%s\",\"written_pages\":%llu,\"written_mb\":%.1f,"
                               "\"uptime_s\":%.1f,\"token\":\"%016llx\",\"pid\":%d}\n",
                               (unsigned long long)n_pages, (double)(n_pages * PAGE) / 1e6,
                               rate_mbps, random_pattern ? "random" : "seq",
                               (unsigned long long)written, (double)(written * PAGE) / 1e6, up,
                               (unsigned long long)token, getpid());
        }
        if (len > 0 && write(fd, out, (size_t)len) != len)
                return -1;
        return 0;
}

static int listen_on(int port)
{
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        int one = 1;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

        if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
            bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 16) < 0) {
                perror("memwriter: listen");
                exit(1);
        }
        return fd;
}

static const char *opt(int argc, char **argv, const char *name, const char *env, const char *dflt)
{
        const char *v = getenv(env);

        for (int i = 1; i + 1 < argc; i++)
                if (strcmp(argv[i], name) == 0)
                        v = argv[i + 1];
        return v && *v ? v : dflt;
}

static void on_term(int sig)
{
        (void)sig;
        _exit(0);
}

int main(int argc, char **argv)
{
        for (int i = 1; i < argc; i++)
                if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
                        puts("memwriter [--mb MB] [--rate MB/S] [--pattern seq|random] "
                             "[--port PORT]");
                        return 0;
                }
        double mb = atof(opt(argc, argv, "--mb", "MEMWRITER_MB", "64"));
        rate_mbps = atof(opt(argc, argv, "--rate", "MEMWRITER_RATE", "0"));
        random_pattern =
            strcmp(opt(argc, argv, "--pattern", "MEMWRITER_PATTERN", "seq"), "random") == 0;
        int port = atoi(opt(argc, argv, "--port", "MEMWRITER_PORT", "7000"));
        if (mb <= 0 || rate_mbps < 0 || port <= 0 || port > 65535) {
                fprintf(stderr, "memwriter: bad --mb, --rate or --port\n");
                return 2;
        }
        signal(SIGTERM, on_term);
        signal(SIGINT, on_term);
        signal(SIGPIPE, SIG_IGN);
        if (getrandom(&token, sizeof(token), 0) != sizeof(token))
                token = (uint64_t)now_ns() ^ (uint64_t)getpid();
        n_pages = (uint64_t)(mb * 1e6 + PAGE - 1) / PAGE;
        mem =
            mmap(NULL, n_pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (mem == MAP_FAILED) {
                perror("memwriter: mmap");
                return 1;
        }
        for (uint64_t i = 0; i < n_pages; i++)
                fill(mem + i * WORDS, i, ++serial);
        int lfd = listen_on(port);
        t_start = now_ns();
        printf("memwriter: %llu pages (%.1f MB), %.2f MB/s %s, status on port %d\n",
               (unsigned long long)n_pages, (double)(n_pages * PAGE) / 1e6, rate_mbps,
               random_pattern ? "random" : "sequential", port);
        fflush(stdout);

        double pages_per_ns = rate_mbps * 1e6 / PAGE / 1e9;
        int64_t base = now_ns();
        uint64_t done = 0;
        struct pollfd pf[1 + MAX_CLIENTS];
        int nc = 0;
        for (;;) {
                int64_t t = now_ns();
                if (pages_per_ns > 0) {
                        double owed = pages_per_ns * (double)(t - base) - (double)done;
                        /* Frozen or starved (a checkpoint, a migration): no burst to
                         * catch up, the rate starts again from now. */
                        if (owed > pages_per_ns * 1e8) {
                                base = t;
                                done = 0;
                                owed = 0;
                        }
                        if (owed >= 1) {
                                write_pages((uint64_t)owed);
                                done += (uint64_t)owed;
                        }
                }
                pf[0] = (struct pollfd){lfd, nc < MAX_CLIENTS ? POLLIN : 0, 0};
                int64_t left = SLICE_NS - (now_ns() - t);
                if (poll(pf, (nfds_t)(1 + nc), left > 0 ? (int)(left / 1000000) : 0) <= 0)
                        continue;
                for (int k = nc; k >= 1; k--) {
                        if (pf[k].revents == 0 || reply(pf[k].fd) == 0)
                                continue;
                        close(pf[k].fd);
                        pf[k] = pf[nc--];
                }
                if (pf[0].revents & POLLIN) {
                        int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                        if (c >= 0)
                                pf[++nc] = (struct pollfd){c, POLLIN, 0};
                }
        }
}
