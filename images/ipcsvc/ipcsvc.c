/* ipcsvc: a prefork TCP service whose processes share their state only
 * through System V IPC and shared memory, for the migration tests (image
 * "ipcsvc", tests/integration/48-migrate-ipc.sh).
 *
 *   ipcsvc [--port PORT]         (default IPCSVC_PORT, else 7100)
 *
 * IPCSVC_SHM_MB=N adds a second SysV segment of N MiB, filled once by the
 * parent and read whole by every child as it starts (as a prefork server's
 * workers read a shared cache): N MiB that every process maps, for the
 * pre-check's memory estimate; STATE says whether its content is intact.
 *
 * The parent creates, in the container's IPC namespace:
 *   - a SysV shared-memory segment with a table of counters,
 *   - a SysV semaphore set: sem 0 is the table's mutex, sem 1 mirrors the
 *     number of applied updates modulo SEM_MOD,
 *   - a SysV message queue that carries work (type 1) from the front ends to
 *     the appliers and the answers back (type REPLY_BASE + front end), and
 *     holds "parked" messages (type PARK_TYPE) in FIFO order as state,
 *   - a POSIX shared-memory object (/dev/shm/ipcsvc) and a shared anonymous
 *     mapping, mirrors of the table's totals;
 * then forks FRONTENDS front ends, which all accept() on one listening
 * socket (prefork), and APPLIERS appliers, which apply updates to the table
 * under the semaphore. A front end serves one connection at a time, one
 * request per line:
 *   INC ID KEY DELTA   -> "OK ID VALUE"   (the key's counter after the update)
 *   PARK ID WORD       -> "PARKED ID N"   (queues WORD; N parked now)
 *   UNPARK ID          -> "UNPARKED ID PID WORD" (the oldest parked message)
 *   STATE              -> one JSON line with everything above, read under the
 *                         mutex, for a client to compare with its own model.
 * A new connection first reads "HELLO TOKEN PID": TOKEN is drawn once at
 * start, so a client sees that the same processes kept running.
 *
 * Built statically by scripts/build-test-images (image "ipcsvc").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/random.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define NKEYS      64
#define FRONTENDS  4
#define APPLIERS   2
#define SEM_MOD    30000
#define WORK_TYPE  1
#define PARK_TYPE  2
#define REPLY_BASE 10
#define MAX_PARKED 128
#define WORD_LEN   24

struct table { /* the SysV shared-memory segment */
        uint64_t counter[NKEYS];
        uint64_t last_id[NKEYS];
        uint64_t ops, sum, parked, unparked, token, big_sum;
};

struct mirror { /* POSIX shm and the shared anonymous mapping */
        uint64_t ops, sum, served;
};

struct work_msg {
        long mtype;
        uint64_t id;
        int64_t delta;
        uint32_t key, reply_to;
};

struct reply_msg {
        long mtype;
        uint64_t id, value;
};

struct park_msg {
        long mtype;
        uint64_t id;
        char word[WORD_LEN];
};

static struct table *tab;
static struct mirror *pshm, *anon;
static int shmid = -1, semid = -1, msqid = -1, bigid = -1;
static const uint64_t *big;
static size_t big_words;
static pid_t children[FRONTENDS + APPLIERS];

static void die(const char *what)
{
        fprintf(stderr, "ipcsvc[%d]: %s: %s\n", getpid(), what, strerror(errno));
        exit(1);
}

/* sem 0 up or down by one, restarted across signals (and a checkpoint). */
static void sem_step(int delta)
{
        struct sembuf op = {.sem_num = 0, .sem_op = (short)delta, .sem_flg = 0};

        while (semop(semid, &op, 1) < 0)
                if (errno != EINTR)
                        die("semop");
}

static void lock(void)
{
        sem_step(-1);
}

static void unlock(void)
{
        sem_step(1);
}

static void msg_send(const void *m, size_t size)
{
        while (msgsnd(msqid, m, size - sizeof(long), 0) < 0)
                if (errno != EINTR)
                        die("msgsnd");
}

static ssize_t msg_recv(void *m, size_t size, long type, int flags)
{
        ssize_t n;

        while ((n = msgrcv(msqid, m, size - sizeof(long), type, flags)) < 0)
                if (errno != EINTR)
                        return -1;
        return n;
}

/* The big segment: word i of page p is p, or (p << 8 | i) | 1; every page
 * differs and none is zero, and it still compresses. */
static void big_fill(uint64_t *w)
{
        for (size_t i = 0; i < big_words; i++)
                w[i] = i % 512 == 0 ? i / 512 : ((i / 512) << 8 | (i % 512)) | 1;
}

static uint64_t big_checksum(void)
{
        uint64_t h = 1469598103934665603ULL;

        for (size_t i = 0; i < big_words; i++)
                h = (h ^ big[i]) * 1099511628211ULL;
        return h;
}

/* --- the appliers ------------------------------------------------------- */

static void apply(const struct work_msg *w)
{
        struct reply_msg r = {.mtype = REPLY_BASE + w->reply_to, .id = w->id};

        lock();
        tab->counter[w->key] += (uint64_t)w->delta;
        tab->last_id[w->key] = w->id;
        tab->ops++;
        tab->sum += (uint64_t)w->delta;
        pshm->ops = anon->ops = tab->ops;
        pshm->sum = anon->sum = tab->sum;
        if (semctl(semid, 1, SETVAL, (int)(tab->ops % SEM_MOD)) < 0)
                die("semctl SETVAL");
        r.value = tab->counter[w->key];
        unlock();
        msg_send(&r, sizeof(r));
}

static void applier(void)
{
        struct work_msg w;

        for (;;) {
                if (msg_recv(&w, sizeof(w), WORK_TYPE, 0) < 0)
                        die("msgrcv work");
                if (w.key < NKEYS)
                        apply(&w);
        }
}

/* --- the front ends ----------------------------------------------------- */

static int say(int fd, const char *s, size_t len)
{
        while (len > 0) {
                ssize_t n = write(fd, s, len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return -1;
                s += n;
                len -= (size_t)n;
        }
        return 0;
}

static int sayf(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int sayf(int fd, const char *fmt, ...)
{
        char buf[256];
        va_list ap;

        va_start(ap, fmt);
        int n = vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        return n < 0 || (size_t)n >= sizeof(buf) ? -1 : say(fd, buf, (size_t)n);
}

static int do_inc(int fd, unsigned me, uint64_t id, unsigned key, int64_t delta)
{
        struct work_msg w = {
            .mtype = WORK_TYPE, .id = id, .delta = delta, .key = key, .reply_to = me};
        struct reply_msg r;

        if (key >= NKEYS)
                return sayf(fd, "ERR key %u\n", key);
        msg_send(&w, sizeof(w));
        if (msg_recv(&r, sizeof(r), REPLY_BASE + me, 0) < 0)
                die("msgrcv reply");
        if (r.id != id)
                return sayf(fd, "ERR reply for %" PRIu64 ", not %" PRIu64 "\n", r.id, id);
        return sayf(fd, "OK %" PRIu64 " %" PRIu64 "\n", id, r.value);
}

static int do_park(int fd, uint64_t id, const char *word)
{
        struct park_msg p = {.mtype = PARK_TYPE, .id = id};
        uint64_t n;

        snprintf(p.word, sizeof(p.word), "%s", word);
        lock();
        if (tab->parked - tab->unparked >= MAX_PARKED) {
                unlock();
                return sayf(fd, "ERR full\n");
        }
        msg_send(&p, sizeof(p));
        n = ++tab->parked - tab->unparked;
        unlock();
        return sayf(fd, "PARKED %" PRIu64 " %" PRIu64 "\n", id, n);
}

static int do_unpark(int fd, uint64_t id)
{
        struct park_msg p;

        lock();
        if (msg_recv(&p, sizeof(p), PARK_TYPE, IPC_NOWAIT) < 0) {
                unlock();
                return sayf(fd, "ERR empty\n");
        }
        tab->unparked++;
        unlock();
        p.word[WORD_LEN - 1] = '\0';
        return sayf(fd, "UNPARKED %" PRIu64 " %" PRIu64 " %s\n", id, p.id, p.word);
}

/* The parked messages, in queue order: taken out and put back under the
 * mutex, so nobody sees the queue without them. */
static int parked_json(char *out, size_t cap, uint64_t n)
{
        struct park_msg all[MAX_PARKED];
        size_t len = 0;

        for (uint64_t i = 0; i < n; i++)
                if (msg_recv(&all[i], sizeof(all[i]), PARK_TYPE, IPC_NOWAIT) < 0)
                        die("msgrcv parked");
        for (uint64_t i = 0; i < n; i++) {
                msg_send(&all[i], sizeof(all[i]));
                all[i].word[WORD_LEN - 1] = '\0';
                len += (size_t)snprintf(out + len, cap - len, "%s[%" PRIu64 ",\"%s\"]",
                                        i ? "," : "", all[i].id, all[i].word);
                if (len >= cap)
                        return -1;
        }
        return 0;
}

static int do_state(int fd)
{
        static char parked[MAX_PARKED * 48], counters[NKEYS * 24], out[sizeof(parked) + 4096];
        struct msqid_ds q;
        size_t len = 0;
        int n;

        lock();
        int sem1 = semctl(semid, 1, GETVAL);
        if (sem1 < 0 || msgctl(msqid, IPC_STAT, &q) < 0 ||
            parked_json(parked, sizeof(parked), tab->parked - tab->unparked) < 0)
                die("reading the state");
        for (unsigned k = 0; k < NKEYS; k++)
                len += (size_t)snprintf(counters + len, sizeof(counters) - len, "%s%" PRIu64,
                                        k ? "," : "", tab->counter[k]);
        bool big_ok = big_checksum() == tab->big_sum;
        n = snprintf(out, sizeof(out),
                     "{\"big_mb\":%zu,\"big_ok\":%s,"
                     "\"token\":\"%016" PRIx64 "\",\"ops\":%" PRIu64 ",\"sum\":%" PRIu64
                     ",\"sem\":%d,\"sem_mod\":%d,\"posix_ops\":%" PRIu64 ",\"posix_sum\":%" PRIu64
                     ",\"anon_ops\":%" PRIu64 ",\"served\":%" PRIu64 ",\"qnum\":%lu,"
                     "\"parked\":[%s],\"counters\":[%s]}\n",
                     big_words * 8 >> 20, big_ok ? "true" : "false", tab->token, tab->ops, tab->sum,
                     sem1, SEM_MOD, pshm->ops, pshm->sum, anon->ops, anon->served,
                     (unsigned long)q.msg_qnum, parked, counters);
        unlock();
        return n < 0 || (size_t)n >= sizeof(out) ? -1 : say(fd, out, (size_t)n);
}

static int request(int fd, unsigned me, char *line)
{
        char word[WORD_LEN];
        uint64_t id;
        unsigned key;
        int64_t delta;

        if (strcmp(line, "STATE") == 0)
                return do_state(fd);
        /* Counted before the answer goes out: a client that has its answer
         * finds it counted in any STATE it asks for next. */
        lock();
        anon->served++;
        unlock();
        if (sscanf(line, "INC %" SCNu64 " %u %" SCNd64, &id, &key, &delta) == 3)
                return do_inc(fd, me, id, key, delta);
        if (sscanf(line, "PARK %" SCNu64 " %23s", &id, word) == 2)
                return do_park(fd, id, word);
        if (sscanf(line, "UNPARK %" SCNu64, &id) == 1)
                return do_unpark(fd, id);
        return sayf(fd, "ERR bad request\n");
}

static void serve(int fd, unsigned me)
{
        char buf[512];
        size_t have = 0;

        if (sayf(fd, "HELLO %016" PRIx64 " %d\n", tab->token, getpid()) < 0)
                return;
        for (;;) {
                char *nl;
                while ((nl = memchr(buf, '\n', have)) != NULL) {
                        *nl = '\0';
                        if (request(fd, me, buf) < 0)
                                return;
                        have -= (size_t)(nl + 1 - buf);
                        memmove(buf, nl + 1, have);
                }
                if (have == sizeof(buf))
                        return; /* a line too long: drop the client */
                ssize_t n = read(fd, buf + have, sizeof(buf) - have);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return;
                have += (size_t)n;
        }
}

static void frontend(int lfd, unsigned me)
{
        for (;;) {
                int fd = accept(lfd, NULL, NULL);
                if (fd < 0) {
                        if (errno == EINTR || errno == ECONNABORTED)
                                continue;
                        die("accept");
                }
                serve(fd, me);
                close(fd);
        }
}

/* --- the parent --------------------------------------------------------- */

static void create_ipc(void)
{
        int fd;

        shmid = shmget(IPC_PRIVATE, sizeof(struct table), IPC_CREAT | 0600);
        if (shmid < 0 || (tab = shmat(shmid, NULL, 0)) == (void *)-1)
                die("shmget/shmat");
        semid = semget(IPC_PRIVATE, 2, IPC_CREAT | 0600);
        if (semid < 0 || semctl(semid, 0, SETVAL, 1) < 0 || semctl(semid, 1, SETVAL, 0) < 0)
                die("semget");
        msqid = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
        if (msqid < 0)
                die("msgget");
        fd = open("/dev/shm/ipcsvc", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || ftruncate(fd, sizeof(struct mirror)) < 0)
                die("/dev/shm/ipcsvc");
        pshm = mmap(NULL, sizeof(struct mirror), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        anon = mmap(NULL, sizeof(struct mirror), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                    -1, 0);
        if (pshm == MAP_FAILED || anon == MAP_FAILED)
                die("mmap");
        close(fd);
        if (getrandom(&tab->token, sizeof(tab->token), 0) != sizeof(tab->token))
                die("getrandom");
}

static void create_big(const char *mb_s)
{
        long mb = mb_s ? strtol(mb_s, NULL, 10) : 0;
        uint64_t *w;

        if (mb <= 0)
                return;
        big_words = (size_t)mb << 17;
        bigid = shmget(IPC_PRIVATE, big_words * 8, IPC_CREAT | 0600);
        if (bigid < 0 || (w = shmat(bigid, NULL, 0)) == (void *)-1)
                die("shmget/shmat big");
        big_fill(w);
        big = w;
        tab->big_sum = big_checksum();
}

static int listen_on(int port)
{
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        int one = 1;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
            bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 16) < 0)
                die("listen");
        return fd;
}

static void remove_ipc(void)
{
        shmctl(shmid, IPC_RMID, NULL);
        if (bigid >= 0)
                shmctl(bigid, IPC_RMID, NULL);
        semctl(semid, 0, IPC_RMID);
        msgctl(msqid, IPC_RMID, NULL);
        unlink("/dev/shm/ipcsvc");
}

static void stop_all(int sig)
{
        for (unsigned i = 0; i < FRONTENDS + APPLIERS; i++)
                if (children[i] > 0)
                        kill(children[i], SIGKILL);
        remove_ipc();
        _exit(sig == SIGTERM || sig == SIGINT ? 0 : 1);
}

static void start_children(int lfd)
{
        for (unsigned i = 0; i < FRONTENDS + APPLIERS; i++) {
                pid_t p = fork();
                if (p < 0)
                        die("fork");
                if (p == 0) {
                        signal(SIGTERM, SIG_DFL);
                        signal(SIGINT, SIG_DFL);
                        if (big != NULL && big_checksum() != tab->big_sum)
                                die("the big segment differs");
                        if (i < FRONTENDS)
                                frontend(lfd, i);
                        applier();
                }
                children[i] = p;
        }
}

int main(int argc, char **argv)
{
        const char *port_s = getenv("IPCSVC_PORT");
        int status;

        if (argc == 3 && strcmp(argv[1], "--port") == 0)
                port_s = argv[2];
        else if (argc != 1) {
                fputs("usage: ipcsvc [--port PORT]\n", stderr);
                return 2;
        }
        int port = port_s ? atoi(port_s) : 7100;
        if (port <= 0 || port > 65535) {
                fputs("ipcsvc: bad port\n", stderr);
                return 2;
        }
        create_ipc();
        create_big(getenv("IPCSVC_SHM_MB"));
        int lfd = listen_on(port);
        signal(SIGTERM, stop_all);
        signal(SIGINT, stop_all);
        start_children(lfd);
        printf("ipcsvc: %d front ends, %d appliers on port %d, shm %d sem %d msq %d\n", FRONTENDS,
               APPLIERS, port, shmid, semid, msqid);
        fflush(stdout);
        /* Any child that dies takes the service down: state is all or none. */
        while (wait(&status) < 0 && errno == EINTR)
                ;
        fprintf(stderr, "ipcsvc: a child exited (status %d); stopping\n", status);
        stop_all(0);
}
