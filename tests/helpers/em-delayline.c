/* em-delayline: a userspace delay line on a TUN device (this kernel has no netem).
 *
 *   em-delayline --dev NAME --delay-ms D [--queue-max N]
 *
 * Attaches to the TUN device NAME in the current network namespace (creating
 * a non-persistent one if it does not exist), reads every packet the kernel
 * routes into it, holds it for D ms in a FIFO and writes it back, so the
 * kernel routes it onward as if it had arrived on NAME. Packets keep their
 * order. Memory is bounded: N slots of the device's MTU (default 8192); a
 * packet arriving at a full queue is dropped and counted, like a full router
 * buffer. SIGTERM/SIGINT end it cleanly; it then logs its counters and its own
 * overhead (how late packets left compared to their due time). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/error.h"
#include "util/log.h"

/* Reads per wake-up before releasing due packets again, so a flood on the
 * input never delays the output by more than one batch. */
#define DL_READ_BATCH 64

struct dl_stats {
        uint64_t rx, tx, dropped, write_errors, flushed;
        uint64_t late_sum_ns, late_max_ns;
        size_t queue_peak;
};

struct delayline {
        int tun, sig;
        uint64_t delay_ns;
        size_t qmax, slot, head, count;
        unsigned char *buf; /* qmax slots of `slot` bytes */
        uint64_t *due;      /* per slot: monotonic ns when it leaves */
        uint16_t *len;
        unsigned char *scratch; /* where a packet to drop is read into */
        struct dl_stats st;
};

static uint64_t mono_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int tun_attach(const char *dev, size_t *mtu, em_error_t *err)
{
        cleanup_close int fd = -1;
        cleanup_close int sk = -1;
        struct ifreq ifr = {0};

        if (strlen(dev) >= IFNAMSIZ)
                return em_error_set(err, EINVAL, "device name '%s' too long", dev);
        fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0)
                return em_error_set(err, errno, "opening /dev/net/tun");
        ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
        memcpy(ifr.ifr_name, dev, strlen(dev));
        if (ioctl(fd, TUNSETIFF, &ifr) < 0)
                return em_error_set(err, errno, "attaching to TUN device %s", dev);
        sk = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (sk < 0 || ioctl(sk, SIOCGIFMTU, &ifr) < 0)
                return em_error_set(err, errno, "reading the MTU of %s", dev);
        *mtu = ifr.ifr_mtu > 0 && ifr.ifr_mtu <= 65535 ? (size_t)ifr.ifr_mtu : 65535;
        return steal_fd(&fd);
}

static int signals_open(em_error_t *err)
{
        sigset_t set;
        int fd;

        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
                return em_error_set(err, errno, "blocking signals");
        fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
        if (fd < 0)
                return em_error_set(err, errno, "signalfd");
        return fd;
}

/* Writes every packet whose time has come, oldest first. */
static void release_due(struct delayline *dl)
{
        while (dl->count > 0) {
                uint64_t now = mono_ns(), late;
                size_t i = dl->head;

                if (dl->due[i] > now)
                        return;
                if (write(dl->tun, dl->buf + i * dl->slot, dl->len[i]) < 0)
                        dl->st.write_errors++;
                else
                        dl->st.tx++;
                late = now - dl->due[i];
                dl->st.late_sum_ns += late;
                if (late > dl->st.late_max_ns)
                        dl->st.late_max_ns = late;
                dl->head = (dl->head + 1) % dl->qmax;
                dl->count--;
        }
}

/* Reads up to one batch; returns -1 on a read error other than "no more". */
static int read_batch(struct delayline *dl, em_error_t *err)
{
        for (int n = 0; n < DL_READ_BATCH; n++) {
                bool full = dl->count == dl->qmax;
                size_t tail = (dl->head + dl->count) % dl->qmax;
                unsigned char *dst = full ? dl->scratch : dl->buf + tail * dl->slot;
                ssize_t r = read(dl->tun, dst, dl->slot);

                if (r < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                return 0;
                        return em_error_set(err, errno, "reading the TUN device");
                }
                dl->st.rx++;
                if (full || r == 0) {
                        dl->st.dropped += full;
                        continue;
                }
                dl->len[tail] = (uint16_t)r;
                dl->due[tail] = mono_ns() + dl->delay_ns;
                dl->count++;
                if (dl->count > dl->st.queue_peak)
                        dl->st.queue_peak = dl->count;
        }
        return 0;
}

static int run(struct delayline *dl, em_error_t *err)
{
        struct pollfd pfd[2] = {{.fd = dl->tun, .events = POLLIN},
                                {.fd = dl->sig, .events = POLLIN}};

        for (;;) {
                struct timespec ts, *tsp = NULL;

                release_due(dl);
                if (dl->count > 0) {
                        uint64_t now = mono_ns(), d = dl->due[dl->head];
                        uint64_t wait = d > now ? d - now : 0;

                        ts.tv_sec = (time_t)(wait / 1000000000u);
                        ts.tv_nsec = (long)(wait % 1000000000u);
                        tsp = &ts;
                }
                if (ppoll(pfd, 2, tsp, NULL) < 0) {
                        if (errno == EINTR)
                                continue;
                        return em_error_set(err, errno, "ppoll");
                }
                if (pfd[1].revents)
                        return 0;
                if (pfd[0].revents & (POLLERR | POLLHUP | POLLNVAL))
                        return em_error_set(err, EIO, "the TUN device went away");
                if ((pfd[0].revents & POLLIN) && read_batch(dl, err) < 0)
                        return -1;
        }
}

static void usage(FILE *f)
{
        fputs("usage: em-delayline --dev NAME --delay-ms D [--queue-max N]\n", f);
}

static int parse_args(int argc, char **argv, const char **dev, unsigned long *delay_ms,
                      unsigned long *qmax)
{
        static const struct option opts[] = {{"dev", required_argument, NULL, 'd'},
                                             {"delay-ms", required_argument, NULL, 't'},
                                             {"queue-max", required_argument, NULL, 'q'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
        bool have_delay = false;
        char *end;
        int c;

        while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (c) {
                case 'd':
                        *dev = optarg;
                        break;
                case 't':
                        errno = 0;
                        *delay_ms = strtoul(optarg, &end, 10);
                        if (errno || *end || end == optarg || *delay_ms > 60000)
                                return -1;
                        have_delay = true;
                        break;
                case 'q':
                        errno = 0;
                        *qmax = strtoul(optarg, &end, 10);
                        if (errno || *end || *qmax < 1 || *qmax > 1000000)
                                return -1;
                        break;
                case 'h':
                        usage(stdout);
                        exit(0);
                default:
                        return -1;
                }
        }
        return *dev && have_delay && optind == argc ? 0 : -1;
}

int main(int argc, char **argv)
{
        cleanup_error em_error_t err = NULL;
        cleanup_free unsigned char *buf = NULL, *scratch = NULL;
        cleanup_free uint64_t *due = NULL;
        cleanup_free uint16_t *len = NULL;
        cleanup_close int tun = -1, sig = -1;
        struct delayline dl = {0};
        const char *dev = NULL;
        unsigned long delay_ms = 0, qmax = 8192;
        size_t mtu = 0;
        int rc;

        /* Started in the background by scripts/testbed: inherited pipes of its
         * caller must not stay open for as long as the line runs. */
        close_range(3, ~0u, 0);
        em_log_setup(EM_LOG_INFO, false, 2, "delayline");
        if (parse_args(argc, argv, &dev, &delay_ms, &qmax) < 0) {
                usage(stderr);
                return 2;
        }
        sig = signals_open(&err);
        if (sig >= 0)
                tun = tun_attach(dev, &mtu, &err);
        if (tun < 0) {
                em_log_error("%s", em_error_msg(err));
                return 1;
        }
        buf = calloc(qmax, mtu);
        scratch = malloc(mtu);
        due = calloc(qmax, sizeof(*due));
        len = calloc(qmax, sizeof(*len));
        if (!buf || !scratch || !due || !len) {
                em_log_error("out of memory for %lu slots of %zu bytes", qmax, mtu);
                return 1;
        }
        dl = (struct delayline){.tun = tun,
                                .sig = sig,
                                .delay_ns = delay_ms * 1000000u,
                                .qmax = qmax,
                                .slot = mtu,
                                .buf = buf,
                                .due = due,
                                .len = len,
                                .scratch = scratch};
        em_log_info("ready dev=%s delay_ms=%lu queue_max=%lu slot=%zu", dev, delay_ms, qmax, mtu);
        rc = run(&dl, &err);
        dl.st.flushed = dl.count;
        em_log_info("stats dev=%s rx=%" PRIu64 " tx=%" PRIu64 " dropped=%" PRIu64
                    " write_errors=%" PRIu64 " flushed_at_exit=%" PRIu64 " queue_peak=%zu"
                    " late_mean_us=%.1f late_max_us=%.1f",
                    dev, dl.st.rx, dl.st.tx, dl.st.dropped, dl.st.write_errors, dl.st.flushed,
                    dl.st.queue_peak,
                    dl.st.tx + dl.st.write_errors
                        ? (double)dl.st.late_sum_ns / 1e3 / (double)(dl.st.tx + dl.st.write_errors)
                        : 0.0,
                    (double)dl.st.late_max_ns / 1e3);
        if (rc < 0) {
                em_log_error("%s", em_error_msg(err));
                return 1;
        }
        return 0;
}
