/* Pre-copy's reads of a live process (migrate/source/pagesync.h): a round
 * whose stop decision scanned the memory reads, in the next push, only the
 * pages the scan found missing (one read of the memory per round, not
 * two). The process is a forked child; the pushes go over a socketpair
 * whose far end a thread drains. And the first round's estimate. */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "migrate/source/pagesync.h"
#include "util/cleanup.h"

#define NPAGES 64

struct child {
        pid_t pid;
        int cmd, ack; /* parent -> child, child -> parent */
};

/* The child: NPAGES pages of distinct content; on each byte received it
 * rewrites pages 10..13 with new content and answers. */
static void child_loop(int cmd, int ack)
{
        uint8_t *mem = mmap(NULL, NPAGES * EM_PAGE_SIZE, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        char c = 0;

        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed test */
        for (int i = 0; i < NPAGES; i++)
                memset(mem + i * EM_PAGE_SIZE, 0x20 + i, EM_PAGE_SIZE);
        for (uint8_t gen = 1;; gen++) {
                if (write(ack, "x", 1) != 1 || read(cmd, &c, 1) != 1)
                        _exit(0);
                for (int i = 10; i < 14; i++) {
                        memset(mem + i * EM_PAGE_SIZE, 0xa0 + gen, EM_PAGE_SIZE);
                        mem[i * EM_PAGE_SIZE] = (uint8_t)i;
                }
        }
}

static void child_start(struct child *ch)
{
        int cmd[2], ack[2];
        char c;

        assert_int_equal(pipe(cmd), 0);
        assert_int_equal(pipe(ack), 0);
        ch->pid = fork();
        assert_true(ch->pid >= 0);
        if (ch->pid == 0) {
                close(cmd[1]);
                close(ack[0]);
                child_loop(cmd[0], ack[1]);
        }
        close(cmd[0]);
        close(ack[1]);
        ch->cmd = cmd[1];
        ch->ack = ack[0];
        assert_int_equal(read(ch->ack, &c, 1), 1);
}

static void child_dirty(struct child *ch)
{
        char c;

        assert_int_equal(write(ch->cmd, "w", 1), 1);
        assert_int_equal(read(ch->ack, &c, 1), 1);
}

static void child_stop(struct child *ch)
{
        close(ch->cmd);
        close(ch->ack);
        kill(ch->pid, SIGKILL);
        waitpid(ch->pid, NULL, 0);
}

static void *drain(void *arg)
{
        int fd = (int)(intptr_t)arg;
        char buf[65536];

        while (read(fd, buf, sizeof(buf)) > 0)
                ;
        return NULL;
}

struct fx {
        struct child ch;
        em_conn_t *c;
        int far;
        pthread_t th;
        struct em_sync_state *st;
};

static int setup(void **state)
{
        static struct fx f;
        int sv[2];
        em_error_t err = NULL;

        memset(&f, 0, sizeof(f));
        child_start(&f.ch);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(em_conn_from_fd(sv[0], "target", &f.c, &err), 0);
        f.far = sv[1];
        assert_int_equal(pthread_create(&f.th, NULL, drain, (void *)(intptr_t)f.far), 0);
        assert_int_equal(em_sync_state_new(&f.st, &err), 0);
        *state = &f;
        return 0;
}

static int teardown(void **state)
{
        struct fx *f = *state;

        em_sync_state_free(&f->st);
        em_conn_free(&f->c);
        pthread_join(f->th, NULL);
        close(f->far);
        child_stop(&f->ch);
        return 0;
}

static struct em_sync_stats push(struct fx *f, bool left)
{
        struct em_sync_stats s = {0};
        em_error_t err = NULL;
        int rc = left ? em_sync_push_left(f->c, f->st, &f->ch.pid, 1, 0, &s, &err)
                      : em_sync_push_memory(f->c, f->st, &f->ch.pid, 1, 0, &s, &err);

        if (rc < 0)
                fail_msg("push: %s", em_error_msg(err));
        return s;
}

/* A round after the stop rule's scan reads the pages the scan found
 * missing (the 4 rewritten, and the child's stack: it ran meanwhile), not
 * the whole memory again. */
static void test_push_after_scan_reads_what_is_left(void **state)
{
        struct fx *f = *state;
        struct em_sync_stats s;
        uint64_t left = 0;
        em_error_t err = NULL;

        s = push(f, true); /* no scan yet: everything */
        assert_true(s.pages_read >= NPAGES);
        assert_true(s.pages_sent >= NPAGES);
        child_dirty(&f->ch);
        assert_int_equal(em_sync_dirty_scan(f->st, &f->ch.pid, 1, &left, &err), 0);
        assert_in_range(left / EM_PAGE_SIZE, 4, 8);
        s = push(f, true);
        assert_int_equal(s.pages_read, left / EM_PAGE_SIZE);
        assert_in_range(s.pages_sent, 4, s.pages_read);
        /* The scan's list is used once: without a new scan, everything. */
        child_dirty(&f->ch);
        s = push(f, true);
        assert_true(s.pages_read >= NPAGES);
        assert_in_range(s.pages_sent, 4, 8);
}

/* A full push (the frozen container's, during the dump) ignores and drops
 * the list: pages that changed after the scan are read too. */
static void test_full_push_drops_the_list(void **state)
{
        struct fx *f = *state;
        struct em_sync_stats s;
        uint64_t left = 0;
        em_error_t err = NULL;

        push(f, false);
        assert_int_equal(em_sync_dirty_scan(f->st, &f->ch.pid, 1, &left, &err), 0);
        assert_true(left < 4 * EM_PAGE_SIZE); /* the child's stack, as it settled */
        child_dirty(&f->ch);
        s = push(f, false);
        assert_true(s.pages_read >= NPAGES);
        assert_in_range(s.pages_sent, 4, 8);
        child_dirty(&f->ch);
        s = push(f, true);
        assert_true(s.pages_read >= NPAGES);
        assert_in_range(s.pages_sent, 4, 8);
}

/* A process the scan did not see (forked since) is read whole. */
static void test_push_left_unknown_pid(void **state)
{
        struct fx *f = *state;
        struct em_sync_stats s;
        uint64_t left = 0;
        pid_t none = getpid(); /* our own memory: a process the scan skipped */
        em_error_t err = NULL;

        push(f, false);
        assert_int_equal(em_sync_dirty_scan(f->st, &none, 1, &left, &err), 0);
        child_dirty(&f->ch);
        s = push(f, true);
        assert_true(s.pages_read >= NPAGES);
        assert_in_range(s.pages_sent, 4, 8);
}

/* A child that maps shm: on each byte received it touches every page
 * (the first one writes, allocating them; a second one reads, mapping the
 * same pages) and answers. */
static pid_t shm_child(uint8_t *shm, size_t len, bool write_it, int *cmd, int *ack)
{
        int c2p[2], p2c[2];
        pid_t pid;
        char c;

        assert_int_equal(pipe(c2p), 0);
        assert_int_equal(pipe(p2c), 0);
        pid = fork();
        if (pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                while (read(p2c[0], &c, 1) == 1) {
                        for (size_t i = 0; i < len; i += EM_PAGE_SIZE) {
                                if (write_it)
                                        shm[i] = 0x5a;
                                else
                                        c = *(volatile uint8_t *)(shm + i);
                        }
                        if (write(c2p[1], "x", 1) != 1)
                                _exit(1);
                }
                _exit(0);
        }
        close(c2p[1]);
        close(p2c[0]);
        *cmd = p2c[1];
        *ack = c2p[0];
        return pid;
}

/* 8 MiB of shared anonymous memory that two processes map: CRIU dumps it
 * once, and the first round's estimate grows by 8 MiB when the two touch
 * it (statm's resident - shared left it out altogether). Measured as the
 * growth, so that the processes' own memory (a sanitizer's shadow) does
 * not count. */
static void test_dump_bytes_count_shared_once(void **state)
{
        const size_t len = 8u << 20;
        uint8_t *shm = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        int cmd[2], ack[2];
        pid_t pids[2];
        char c;

        (void)state;
        assert_true(shm != MAP_FAILED);
        pids[0] = shm_child(shm, len, true, &cmd[0], &ack[0]);
        pids[1] = shm_child(shm, len, false, &cmd[1], &ack[1]);
        uint64_t before = em_sync_dump_bytes(pids, 2);
        for (int i = 0; i < 2; i++) {
                assert_int_equal(write(cmd[i], "t", 1), 1);
                assert_int_equal(read(ack[i], &c, 1), 1);
        }
        uint64_t after = em_sync_dump_bytes(pids, 2);
        for (int i = 0; i < 2; i++) {
                close(cmd[i]);
                close(ack[i]);
                kill(pids[i], SIGKILL);
                waitpid(pids[i], NULL, 0);
        }
        munmap(shm, len);
        assert_in_range(after - before, len - (64u << 10), len + (1u << 20));
        /* Gone processes count nothing. */
        pid_t none = 999999999;
        assert_int_equal(em_sync_dump_bytes(&none, 1), 0);
}

struct late_cal {
        struct em_compress_calibration cal; /* what the rule sees */
        int calls;
};

/* The calibration "finishes" at the first call: level 9 wins from then on. */
static void late_refresh(void *arg)
{
        struct late_cal *l = arg;

        if (l->calls++ == 0)
                l->cal = (struct em_compress_calibration){
                    4, {{1, 400e6, 0.5}, {3, 300e6, 0.4}, {9, 40e6, 0.1}, {19, 1e6, 0.09}}};
}

/* The first round starts before the compression calibration is done; the
 * push asks for it before each chunk's level, so a calibration that ends
 * mid-round is used from its next chunk on (the round no longer waits for
 * it with the link idle). */
static void test_late_calibration_is_taken_up(void **state)
{
        struct fx *f = *state;
        static const struct em_compress_opt opt = {EM_COMPRESS_AUTO, 0};
        struct late_cal l = {{0}, 0};
        struct em_sync_stats s;

        em_sync_state_set_compress(f->st, &opt, &l.cal, late_refresh, &l);
        s = push(f, false);
        assert_true(s.pages_sent >= NPAGES);
        assert_true(l.calls >= 1);
        assert_int_equal(l.cal.n, 4);
        em_sync_state_set_compress(f->st, NULL, NULL, NULL, NULL);
}

/* Before the connection has sent enough to measure the link, the level
 * comes from the last measurement (a recent migration's, or the last
 * round's) if there is one, not level 1 for every chunk queued meanwhile. */
static void test_bandwidth_hint_before_the_link_is_measured(void **state)
{
        struct fx *f = *state;
        static const struct em_compress_opt opt = {EM_COMPRESS_AUTO, 0};
        static const struct em_compress_calibration cal = {
            4, {{1, 400e6, 0.5}, {3, 300e6, 0.4}, {9, 40e6, 0.1}, {19, 1e6, 0.09}}};
        double hint = 2.5e6; /* 20 Mbit/s: level 9 wins */
        struct em_sync_stats s;
        uint64_t left = 0;
        em_error_t err = NULL;

        push(f, true);       /* everything: the target holds it now */
        usleep(2200 * 1000); /* past the send meter's window: no link rate */
        em_sync_state_set_compress(f->st, &opt, &cal, NULL, NULL);
        child_dirty(&f->ch);
        assert_int_equal(em_sync_dirty_scan(f->st, &f->ch.pid, 1, &left, &err), 0);
        s = push(f, true); /* a few pages: still no rate */
        assert_true(s.raw_at_level[1] > 0);
        assert_int_equal(s.raw_at_level[3], 0);
        em_sync_state_set_bandwidth_hint(f->st, &hint);
        child_dirty(&f->ch);
        assert_int_equal(em_sync_dirty_scan(f->st, &f->ch.pid, 1, &left, &err), 0);
        s = push(f, true);
        /* Level 9 is the cap; the adaptive level may step below it where
         * compression is slow (a sanitizer build). */
        assert_true(s.raw_at_level[3] + s.raw_at_level[2] > 0);
        assert_true(s.raw_at_level[1] == 0 || s.level_steps_down > 0);
        em_sync_state_set_bandwidth_hint(f->st, NULL);
        em_sync_state_set_compress(f->st, NULL, NULL, NULL, NULL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_push_after_scan_reads_what_is_left, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(test_full_push_drops_the_list, setup, teardown),
            cmocka_unit_test_setup_teardown(test_push_left_unknown_pid, setup, teardown),
            cmocka_unit_test_setup_teardown(test_late_calibration_is_taken_up, setup, teardown),
            cmocka_unit_test_setup_teardown(test_bandwidth_hint_before_the_link_is_measured, setup,
                                            teardown),
            cmocka_unit_test(test_dump_bytes_count_shared_once),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
