#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "delta/criu_img.h"
#include "migrate/source/lazy_push.h"
#include "transfer/pswire.h"
#include "util/cleanup.h"

#define PG 4096u

/* The "frozen task" is this test process (task 100 in the dump): its
 * memory is read through /proc/<pid>/mem like a frozen container's. */
struct bed {
        em_conn_t *cs, *tgt;
        em_lazy_push_t *p;
        uint8_t *mem;
        size_t pages;
        int server[2];
        bool server_gone; /* CRIU ended before the push started */
};

static void bed_up(struct bed *b, size_t pages, const uint8_t *init_state, bool random)
{
        struct em_lazy_task task = {100, getpid()};
        struct em_lazy_push_opts o = {.level = 1, .tasks = &task, .ntasks = 1};
        em_error_t err = NULL;
        int sv[2];

        b->pages = pages;
        assert_int_equal(posix_memalign((void **)&b->mem, PG, pages * PG), 0);
        for (size_t i = 0; i < pages * PG; i++)
                b->mem[i] = random ? (uint8_t)rand() : (uint8_t)(i / PG * 7 + i % 251);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(em_conn_from_fd(sv[0], "s", &b->cs, &err), 0);
        assert_int_equal(em_conn_from_fd(sv[1], "t", &b->tgt, &err), 0);
        em_conn_set_timeout(b->tgt, 5000);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b->server), 0);
        assert_int_equal(em_lazy_set_new(&o.set, &err), 0);
        assert_int_equal(em_lazy_set_add(o.set, 100, (uintptr_t)b->mem, pages, &err), 0);
        assert_int_equal(em_lazy_set_seal(o.set, &err), 0);
        o.state = calloc(pages, 1);
        if (init_state != NULL)
                memcpy(o.state, init_state, pages);
        o.conn = b->cs;
        o.server_fd = b->server[0];
        if (b->server_gone) {
                close(b->server[1]);
                b->server[1] = -1;
        }
        assert_int_equal(em_lazy_push_start(&o, &b->p, &err), 0);
}

static void bed_down(struct bed *b)
{
        em_lazy_push_free(&b->p);
        em_conn_free(&b->cs);
        em_conn_free(&b->tgt);
        close(b->server[0]);
        if (b->server[1] >= 0)
                close(b->server[1]);
        free(b->mem);
}

/* The next page chunk; its pages must be the task's memory. */
static uint32_t next_chunk(struct bed *b, uint32_t *stream, uint64_t *first, bool *last)
{
        cleanup_frame struct em_frame f = {0};
        struct em_lazy_chunk c;
        em_error_t err = NULL;

        assert_int_equal(em_conn_recv(b->tgt, &f, &err), 1);
        assert_int_equal(f.hdr.type, EM_FRAME_LAZY_PAGES);
        *stream = f.hdr.stream;
        *last = f.hdr.flags & EM_FRAME_F_LAST;
        if (*last)
                return 0;
        assert_int_equal(em_lazy_chunk_parse(f.payload, f.length, true, &c, &err), 0);
        assert_int_equal(c.pid, 100);
        *first = (c.vaddr - (uintptr_t)b->mem) / PG;
        assert_true(*first + c.nr_pages <= b->pages);
        assert_memory_equal(c.pages, b->mem + *first * PG, (size_t)c.nr_pages * PG);
        return c.nr_pages;
}

static void ask(struct bed *b, uint32_t flags, uint64_t page, uint32_t nr)
{
        uint8_t hdr[EM_LAZY_HDR_LEN];
        em_error_t err = NULL;

        em_lazy_chunk_hdr(100, nr, (uintptr_t)b->mem + page * PG, hdr);
        assert_int_equal(em_conn_send(b->tgt, EM_FRAME_LAZY_PAGES, flags, EM_LAZY_STREAM_ASK, hdr,
                                      flags ? 0 : sizeof(hdr), 0, &err),
                         0);
}

/* Hot pages first, pages the target holds never, everything else once,
 * straight from memory; then urgent answers, and the end of the window. */
static void test_push_order_and_end(void **state)
{
        uint8_t st[8] = {0, 0, EM_PUSH_HELD, 0, 0, EM_PUSH_HOT, 0, 0};
        uint8_t seen[8] = {0};
        struct em_lazy_push_stats ps;
        struct bed b = {0};
        uint64_t first;
        uint32_t stream, nr;
        bool last;
        int chunks = 0;
        cleanup_frame struct em_frame f = {0};
        em_error_t err = NULL;

        (void)state;
        bed_up(&b, 8, st, false);
        while ((nr = next_chunk(&b, &stream, &first, &last)) > 0) {
                assert_int_equal(stream, EM_LAZY_STREAM_PUSH);
                if (chunks++ == 0)
                        assert_int_equal(first, 5);
                for (uint32_t i = 0; i < nr; i++)
                        seen[first + i]++;
        }
        assert_int_equal(stream, EM_LAZY_STREAM_PUSH); /* the push's LAST */
        for (int i = 0; i < 8; i++)
                assert_int_equal(seen[i], i == 2 ? 0 : 1);
        /* Page 2: the target's known list did not check out; page 3 was
         * pushed already (on its way), so only page 2 is answered. */
        ask(&b, 0, 2, 2);
        nr = next_chunk(&b, &stream, &first, &last);
        assert_int_equal(stream, EM_LAZY_STREAM_URGENT);
        assert_int_equal(first, 2);
        assert_int_equal(nr, 1);
        /* Page 3 again: the target served and dropped it, a forked task
         * asks for it; it is sent again. */
        uint8_t hdr[EM_LAZY_HDR_LEN];
        em_lazy_chunk_hdr(100, 1, (uintptr_t)b.mem + 3 * PG, hdr);
        assert_int_equal(em_conn_send(b.tgt, EM_FRAME_LAZY_PAGES, 0, EM_LAZY_STREAM_AGAIN, hdr,
                                      sizeof(hdr), 0, &err),
                         0);
        nr = next_chunk(&b, &stream, &first, &last);
        assert_int_equal(stream, EM_LAZY_STREAM_URGENT);
        assert_int_equal(first, 3);
        assert_int_equal(nr, 1);
        assert_int_equal(em_conn_send_str(b.tgt, EM_FRAME_ROUND_END, "{}", &err), 0);
        assert_int_equal(em_lazy_push_recv(b.p, &f, 5000, &err), 1);
        assert_int_equal(f.hdr.type, EM_FRAME_ROUND_END);
        ask(&b, EM_FRAME_F_LAST, 0, 0);
        next_chunk(&b, &stream, &first, &last);
        assert_true(last);
        assert_int_equal(stream, EM_LAZY_STREAM_URGENT);
        assert_int_equal(em_lazy_push_recv(b.p, &f, 5000, &err), 0);
        em_lazy_push_stats(b.p, &ps);
        assert_int_equal(ps.pushed_pages, 7);
        assert_int_equal(ps.urgent_pages, 2);
        assert_true(ps.push_ms >= 0);
        bed_down(&b);
}

/* An urgent answer overtakes the bulk: of 1024 incompressible pages (64
 * chunks), it arrives behind what the socket buffered and at most one
 * chunk, far before the push ends. Then the push goes on next to the
 * fault. */
static void test_urgent_overtakes_bulk(void **state)
{
        struct bed b = {0};
        uint64_t first;
        uint32_t stream, nr;
        bool last, after = false;
        int before = 0, at = -1, n = 0;

        (void)state;
        bed_up(&b, 1024, NULL, true);
        usleep(200000); /* the pusher fills the socket and blocks */
        ask(&b, 0, 700, 1);
        /* The source's reader takes the ask while the bulk is still blocked
         * on the full socket: draining at once would race the reader's
         * wake-up against the pusher under load, and this checks the order
         * of the streams, not how fast a thread is scheduled. */
        usleep(200000);
        while ((nr = next_chunk(&b, &stream, &first, &last)) > 0 || !last) {
                if (stream == EM_LAZY_STREAM_URGENT) {
                        at = n;
                        assert_int_equal(first, 700);
                } else if (at >= 0 && !after) {
                        after = true;
                        assert_int_equal(first, 701); /* the fault's neighbourhood */
                }
                n++;
                before += at < 0;
        }
        assert_true(at >= 0);
        assert_true(before <= 16);
        bed_down(&b);
}

static void expect_failure(struct bed *b, int code)
{
        cleanup_frame struct em_frame f = {0};
        em_error_t err = NULL;

        assert_int_equal(em_lazy_push_recv(b->p, &f, 5000, &err), -1);
        assert_int_equal(em_error_status(err), code);
        em_error_free(&err);
}

/* A target may ask for anything: pages outside the dump, of other tasks,
 * malformed requests. */
static void test_hostile_target(void **state)
{
        uint8_t held[4] = {EM_PUSH_HELD, EM_PUSH_HELD, EM_PUSH_HELD, EM_PUSH_HELD};
        uint8_t hdr[EM_LAZY_HDR_LEN];
        struct bed b = {0};
        em_error_t err = NULL;

        (void)state;
        bed_up(&b, 4, held, false);
        ask(&b, 0, 3, 2); /* runs past the end */
        expect_failure(&b, EPROTO);
        bed_down(&b);
        bed_up(&b, 4, held, false);
        em_lazy_chunk_hdr(1, 1, (uintptr_t)b.mem, hdr); /* task 1: not ours */
        assert_int_equal(em_conn_send(b.tgt, EM_FRAME_LAZY_PAGES, 0, EM_LAZY_STREAM_ASK, hdr,
                                      sizeof(hdr), 0, &err),
                         0);
        expect_failure(&b, EPROTO);
        bed_down(&b);
        bed_up(&b, 4, held, false);
        em_lazy_chunk_hdr(100, 1, (uintptr_t)b.mem, hdr);
        assert_int_equal(em_conn_send(b.tgt, EM_FRAME_LAZY_PAGES, 0, EM_LAZY_STREAM_ASK, hdr,
                                      sizeof(hdr) - 1, 0, &err),
                         0);
        expect_failure(&b, EPROTO);
        bed_down(&b);
        bed_up(&b, 4, held, false);
        assert_int_equal(em_conn_send(b.tgt, EM_FRAME_LAZY_PAGES, 0, EM_LAZY_STREAM_PUSH, hdr,
                                      sizeof(hdr), 0, &err),
                         0);
        expect_failure(&b, EPROTO);
        bed_down(&b);
}

/* CRIU gone: the tasks may run again, so no page read after that leaves. */
static void test_page_server_gone(void **state)
{
        struct bed b = {0};

        (void)state;
        b.server_gone = true;
        bed_up(&b, 64, NULL, false);
        expect_failure(&b, EPIPE);
        bed_down(&b);
}

/* A dump dir with pagemap-1.img: 4 lazy pages at 0x10000, one of them in
 * edgemig-known-1.bin. */
static void write_dump(const char *dir)
{
        struct em_pagemap_entry e = {.vaddr = 0x10000,
                                     .nr_pages = 4,
                                     .flags = EM_PE_LAZY,
                                     .has = EM_PME_HAS_FLAGS | EM_PME_HAS_NR_PAGES};
        struct em_pagemap pm = {.pages_id = 1, .n = 1, .e = &e};
        uint8_t known[16 + 24 + 71] = "EMKNOWN1";
        uint64_t n = 1, v = 0x12000;
        cleanup_free uint8_t *enc = NULL;
        em_error_t err = NULL;
        char path[128];
        size_t len = 0;
        FILE *f;

        assert_int_equal(em_pagemap_encode(&pm, &enc, &len, &err), 0);
        snprintf(path, sizeof(path), "%s/pagemap-1.img", dir);
        assert_non_null(f = fopen(path, "w"));
        assert_int_equal(fwrite(enc, len, 1, f), 1);
        fclose(f);
        memcpy(known + 8, &n, 8);
        memcpy(known + 16, &v, 8);
        memcpy(known + 40, "sha256:", 7);
        memset(known + 47, 'a', 64);
        snprintf(path, sizeof(path), "%s/edgemig-known-1.bin", dir);
        assert_non_null(f = fopen(path, "w"));
        assert_int_equal(fwrite(known, sizeof(known), 1, f), 1);
        fclose(f);
}

/* The plan lists the lazy pages the target lacks; a plan that cannot be
 * made (no images) leaves nothing behind, and the caller falls back to
 * CRIU's pull. */
static void test_plan(void **state)
{
        char dir[] = "/tmp/test_lazy_push.XXXXXX", cmd[64];
        struct em_lazy_push_plan plan;
        em_error_t err = NULL;

        (void)state;
        assert_non_null(mkdtemp(dir));
        write_dump(dir);
        assert_int_equal(em_lazy_push_plan(dir, getpid(), NULL, &plan, &err), 0);
        assert_int_equal(plan.set->pages, 4);
        assert_int_equal(plan.ntasks, 1);
        assert_int_equal(plan.tasks[0].host, getpid());
        assert_int_equal(plan.state[2], EM_PUSH_HELD);
        assert_int_equal(plan.state[0] + plan.state[1] + plan.state[3], 0);
        em_lazy_push_plan_free(&plan);
        assert_null(plan.set);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        assert_int_equal(system(cmd), 0);
        assert_int_equal(em_lazy_push_plan(dir, getpid(), NULL, &plan, &err), -1);
        assert_null(plan.set);
        assert_null(plan.state);
        assert_null(plan.tasks);
        em_error_free(&err);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_push_order_and_end),
            cmocka_unit_test(test_urgent_overtakes_bulk),
            cmocka_unit_test(test_hostile_target),
            cmocka_unit_test(test_page_server_gone),
            cmocka_unit_test(test_plan),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
