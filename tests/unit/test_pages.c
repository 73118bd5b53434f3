#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <zstd.h>

#include "delta/criu_img.h"
#include "delta/pages.h"
#include "delta/shadow.h"
#include "util/digest.h"
#include "util/cleanup.h"
#include "util/fsutil.h"

#define NPAGES 300

struct sink {
        uint8_t *buf;
        size_t len;
        int chunks;
};

static int sink_emit(void *ctx, const void *buf, size_t len, em_error_t *err)
{
        struct sink *s = ctx;

        s->buf = realloc(s->buf, s->len + len);
        memcpy(s->buf + s->len, buf, len);
        s->len += len;
        s->chunks++;
        return 0;
}

static char tmp[64];

static int setup(void **state)
{
        strcpy(tmp, "/tmp/em-pages-XXXXXX");
        assert_non_null(mkdtemp(tmp));
        return 0;
}

static int teardown(void **state)
{
        em_error_t err = NULL;

        em_rm_rf(tmp, &err);
        em_error_free(&err);
        return 0;
}

/* A pages file: every 3rd page zero, pages 10..19 duplicates of page 1, the
 * rest distinct; `round` changes a few pages. */
static void write_pages(int dirfd, const char *name, int round)
{
        cleanup_free uint8_t *buf = calloc(NPAGES, EM_PAGE_SIZE);
        cleanup_close int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        em_error_t err = NULL;

        for (int i = 0; i < NPAGES; i++) {
                uint8_t *p = buf + (size_t)i * EM_PAGE_SIZE;
                if (i % 3 == 0)
                        continue;
                int seed = (i >= 10 && i < 20) ? 1 : i;
                for (int j = 0; j < (int)EM_PAGE_SIZE; j += 8)
                        memcpy(p + j, &(uint64_t){(uint64_t)seed * 2654435761u + (uint64_t)j}, 8);
                if (round > 0 && i % 50 == 1)
                        p[100] ^= (uint8_t)round;
        }
        assert_int_equal(em_write_all(fd, buf, (size_t)NPAGES * EM_PAGE_SIZE, &err), 0);
}

static void same_file(const char *a, const char *b)
{
        char da[EM_DIGEST_STR_LEN + 1], db[EM_DIGEST_STR_LEN + 1];
        em_error_t err = NULL;

        assert_int_equal(em_sha256_file(a, da, NULL, &err), 0);
        assert_int_equal(em_sha256_file(b, db, NULL, &err), 0);
        assert_string_equal(da, db);
}

static void test_hash_basics(void **state)
{
        uint8_t page[EM_PAGE_SIZE] = {0};
        em_phash_t a, b;
        char hex[33];

        assert_true(em_page_is_zero(page));
        em_page_hash(page, &a);
        page[EM_PAGE_SIZE - 1] = 1;
        assert_false(em_page_is_zero(page));
        em_page_hash(page, &b);
        assert_memory_not_equal(a.b, b.b, 16);
        em_phash_hex(&b, hex);
        assert_int_equal(strlen(hex), 32);
}

/* Records what the decoder reports as verified. */
struct verified {
        char name[32], digest[EM_DIGEST_STR_LEN + 1];
        int calls;
};

/* The pages-file digest computed the long way: every page hashed, zero
 * pages too, and the sha256 of those hashes. */
static void pagelist_of_file(const char *path, char out[EM_DIGEST_STR_LEN + 1])
{
        cleanup_sha256 em_sha256_t *sha = em_sha256_new();
        uint8_t page[EM_PAGE_SIZE];
        FILE *f = fopen(path, "rb");
        em_phash_t h;

        assert_non_null(f);
        assert_non_null(sha);
        while (fread(page, 1, EM_PAGE_SIZE, f) == EM_PAGE_SIZE) {
                em_page_hash(page, &h);
                em_sha256_update(sha, h.b, sizeof(h.b));
        }
        fclose(f);
        em_sha256_final(sha, out);
        memcpy(out, "pglist:", 7);
}

static void on_verified(void *ud, const char *name, const char *digest)
{
        struct verified *v = ud;
        snprintf(v->name, sizeof(v->name), "%s", name);
        snprintf(v->digest, sizeof(v->digest), "%s", digest);
        v->calls++;
}

static void test_two_rounds_rebuild(void **state)
{
        struct verified v = {0};
        cleanup_close int src = -1;
        cleanup_close int dst = -1;
        cleanup_hashset em_hashset_t *known = em_hashset_new();
        cleanup_pagecache em_pagecache_t *pc = NULL;
        struct em_delta_enc enc;
        struct em_delta_dec dec;
        struct sink s1 = {0}, s2 = {0};
        char path[128], a[160], b[160];
        em_error_t err = NULL;

        snprintf(path, sizeof(path), "%s/src", tmp);
        mkdir(path, 0700);
        src = open(path, O_DIRECTORY | O_RDONLY);
        snprintf(path, sizeof(path), "%s/dst", tmp);
        mkdir(path, 0700);
        dst = open(path, O_DIRECTORY | O_RDONLY);
        assert_int_equal(em_pagecache_open(NULL, &pc, &err), 0);

        /* Round 1: nothing known; zero pages elided, duplicates sent once. */
        write_pages(src, "pages-1.img", 0);
        assert_int_equal(em_delta_enc_init(&enc, known, 64 * 1024, sink_emit, &s1, &err), 0);
        assert_int_equal(em_delta_encode_file(&enc, src, "pages-1.img", NULL, &err), 0);
        assert_int_equal(em_delta_enc_flush(&enc, &err), 0);
        assert_int_equal(enc.st.pages, NPAGES);
        assert_int_equal(enc.st.zero, NPAGES / 3);
        assert_int_equal(enc.st.ref, 10 - (10 % 3 == 0) - 3); /* pages 10..19 minus zeros */
        assert_true(s1.chunks > 1);
        em_delta_dec_init(&dec, pc, dst);
        /* Feed chunk-sized pieces exactly as emitted is not needed: ops are whole
         * within each emitted chunk, and the concatenation splits at op bounds. */
        assert_int_equal(em_delta_dec_feed(&dec, s1.buf, s1.len, &err), 0);
        assert_int_equal(em_delta_dec_finish(&dec, &err), 0);
        snprintf(a, sizeof(a), "%s/src/pages-1.img", tmp);
        snprintf(b, sizeof(b), "%s/dst/pages-1.img", tmp);
        same_file(a, b);

        /* Round 2 (a new dump, new file number): only the changed pages travel. */
        write_pages(src, "pages-2.img", 7);
        char digest2[EM_DIGEST_STR_LEN + 1], want[EM_DIGEST_STR_LEN + 1];
        enc.emit = sink_emit;
        enc.ctx = &s2;
        memset(&enc.st, 0, sizeof(enc.st));
        assert_int_equal(em_delta_encode_file(&enc, src, "pages-2.img", digest2, &err), 0);
        assert_int_equal(em_delta_enc_flush(&enc, &err), 0);
        assert_int_equal(enc.st.data, 4); /* pages 1, 101, 151, 251 (51 and 201 are zero) */
        assert_true(s2.len < s1.len / 5);
        dec.on_file = on_verified;
        dec.on_file_ud = &v;
        assert_int_equal(em_delta_dec_feed(&dec, s2.buf, s2.len, &err), 0);
        snprintf(a, sizeof(a), "%s/src/pages-2.img", tmp);
        snprintf(b, sizeof(b), "%s/dst/pages-2.img", tmp);
        same_file(a, b);
        /* The encoder reports the digest it put in END: the sha256 of the
         * file's page hashes (delta/pagelist.h). */
        pagelist_of_file(a, want);
        assert_string_equal(digest2, want);
        /* ... and the decoder hands the verified digest on, once per file. */
        assert_int_equal(v.calls, 1);
        assert_string_equal(v.name, "pages-2.img");
        assert_string_equal(v.digest, want);
        assert_false(em_path_exists(strcat(strcpy(a, tmp), "/dst/.pages-2.img.part")));
        em_delta_dec_free(&dec);
        em_delta_enc_free(&enc);
        free(s1.buf);
        free(s2.buf);
}

static int feed_status(em_pagecache_t *pc, const uint8_t *buf, size_t len, const char *needle)
{
        struct em_delta_dec dec;
        cleanup_error em_error_t err = NULL;
        int st = 0;

        em_delta_dec_init(&dec, pc, -1);
        if (em_delta_dec_feed(&dec, buf, len, &err) < 0 || em_delta_dec_finish(&dec, &err) < 0) {
                st = em_error_status(err);
                if (needle != NULL && strstr(em_error_msg(err), needle) == NULL)
                        fail_msg("'%s' not in '%s'", needle, em_error_msg(err));
        }
        em_delta_dec_free(&dec);
        return st;
}

/* A page cache filled in order, then a file of those same pages: the known
 * set learns positions from the cache's own list, and the whole file travels
 * as one REF_RUN (20 bytes, not 17 per page). */
static void test_ref_runs_by_cache_position(void **state)
{
        cleanup_pagecache em_pagecache_t *pc = NULL;
        cleanup_hashset em_hashset_t *known = em_hashset_new();
        cleanup_free uint8_t *list = NULL, *img = calloc(64, EM_PAGE_SIZE);
        struct em_delta_enc enc;
        struct em_delta_dec dec;
        struct sink out = {0};
        char dir[128], a[160], b[160];
        size_t len = 0;
        em_phash_t h;
        em_error_t err = NULL;

        (void)state;
        assert_int_equal(em_pagecache_open(NULL, &pc, &err), 0);
        memset(img, 0x5a, EM_PAGE_SIZE); /* a page the cache holds first */
        assert_int_equal(em_pagecache_put(pc, img, &h, &err), 0);
        for (int i = 0; i < 64; i++) {
                memset(img + (size_t)i * EM_PAGE_SIZE, i + 1, EM_PAGE_SIZE);
                assert_int_equal(em_pagecache_put(pc, img + (size_t)i * EM_PAGE_SIZE, &h, &err), 0);
        }
        assert_int_equal(em_pagecache_hashes(pc, 0, &list, &len, &err), 0);
        assert_int_equal(em_hashset_add_payload(known, list, len, &err), 0);
        assert_int_equal(em_hashset_positions(known), 65);
        snprintf(dir, sizeof(dir), "%s/runs", tmp);
        mkdir(dir, 0700);
        cleanup_close int dfd = open(dir, O_DIRECTORY | O_RDONLY);
        cleanup_close int fd = openat(dfd, "pages-7.img", O_WRONLY | O_CREAT | O_TRUNC, 0600);
        assert_int_equal(write(fd, img, 64 * EM_PAGE_SIZE), 64 * EM_PAGE_SIZE);
        assert_int_equal(em_delta_enc_init(&enc, known, 0, sink_emit, &out, &err), 0);
        assert_int_equal(em_delta_encode_file(&enc, dfd, "pages-7.img", NULL, &err), 0);
        assert_int_equal(em_delta_enc_flush(&enc, &err), 0);
        assert_int_equal(enc.st.ref, 64);
        /* BEGIN (1+2+11+8) + one REF_RUN (1+20) + END (1+71). */
        assert_int_equal(out.len, 22 + 21 + 1 + EM_DIGEST_STR_LEN);
        snprintf(dir, sizeof(dir), "%s/runs-out", tmp);
        mkdir(dir, 0700);
        cleanup_close int ofd = open(dir, O_DIRECTORY | O_RDONLY);
        em_delta_dec_init(&dec, pc, ofd);
        assert_int_equal(em_delta_dec_feed(&dec, out.buf, out.len, &err), 0);
        assert_int_equal(dec.st.ref, 64);
        snprintf(a, sizeof(a), "%s/runs/pages-7.img", tmp);
        snprintf(b, sizeof(b), "%s/runs-out/pages-7.img", tmp);
        same_file(a, b);
        em_delta_dec_free(&dec);
        em_delta_enc_free(&enc);
        free(out.buf);
}

/* REF_RUN pages are read from the cache without checking each against
 * the cache's index (the file's digest at END, of the bytes read, covers
 * them): a run longer than one read batch
 * rebuilds the file exactly, and a cached page changed on disk after it
 * arrived still fails the rebuild at END, leaving no file behind. */
static void rebuild_from_cache(bool corrupt)
{
        enum { N = 300 }; /* more than one read batch */
        cleanup_pagecache em_pagecache_t *pc = NULL;
        cleanup_hashset em_hashset_t *known = em_hashset_new();
        cleanup_free uint8_t *list = NULL, *img = malloc((size_t)N * EM_PAGE_SIZE);
        struct em_delta_enc enc;
        struct em_delta_dec dec;
        struct sink out = {0};
        char dir[128], a[160], b[160];
        size_t len = 0;
        em_phash_t h;
        em_error_t err = NULL;

        snprintf(dir, sizeof(dir), "%s/cache", tmp);
        assert_int_equal(em_pagecache_open(dir, &pc, &err), 0);
        for (int i = 0; i < N; i++) {
                for (int j = 0; j < (int)EM_PAGE_SIZE; j += 8)
                        memcpy(img + (size_t)i * EM_PAGE_SIZE + j, &(uint64_t){i * 7919u + j}, 8);
                assert_int_equal(em_pagecache_put(pc, img + (size_t)i * EM_PAGE_SIZE, &h, &err), 0);
        }
        assert_int_equal(em_pagecache_flush(pc, &err), 0);
        assert_int_equal(em_pagecache_hashes(pc, 0, &list, &len, &err), 0);
        assert_int_equal(em_hashset_add_payload(known, list, len, &err), 0);
        snprintf(dir, sizeof(dir), "%s/src", tmp);
        mkdir(dir, 0700);
        cleanup_close int dfd = open(dir, O_DIRECTORY | O_RDONLY);
        cleanup_close int fd = openat(dfd, "pages-3.img", O_WRONLY | O_CREAT | O_TRUNC, 0600);
        assert_int_equal(write(fd, img, (size_t)N * EM_PAGE_SIZE), (ssize_t)N * EM_PAGE_SIZE);
        assert_int_equal(em_delta_enc_init(&enc, known, 0, sink_emit, &out, &err), 0);
        assert_int_equal(em_delta_encode_file(&enc, dfd, "pages-3.img", NULL, &err), 0);
        assert_int_equal(em_delta_enc_flush(&enc, &err), 0);
        assert_int_equal(enc.st.ref, N);
        if (corrupt) { /* page 290, in the second batch, changed on disk */
                snprintf(a, sizeof(a), "%s/cache/pages.bin", tmp);
                cleanup_close int cfd = open(a, O_WRONLY);
                assert_int_equal(pwrite(cfd, "X", 1, 290 * (off_t)EM_PAGE_SIZE + 17), 1);
        }
        snprintf(dir, sizeof(dir), "%s/dst", tmp);
        mkdir(dir, 0700);
        cleanup_close int ofd = open(dir, O_DIRECTORY | O_RDONLY);
        em_delta_dec_init(&dec, pc, ofd);
        int r = em_delta_dec_feed(&dec, out.buf, out.len, &err);
        snprintf(a, sizeof(a), "%s/src/pages-3.img", tmp);
        snprintf(b, sizeof(b), "%s/dst/pages-3.img", tmp);
        if (corrupt) {
                assert_int_equal(r, -1);
                assert_int_equal(em_error_status(err), EILSEQ);
                assert_non_null(strstr(em_error_msg(err), "does not match the source"));
                em_error_free(&err);
                assert_int_equal(access(b, F_OK), -1);
                snprintf(b, sizeof(b), "%s/dst/.pages-3.img.part", tmp);
                assert_int_equal(access(b, F_OK), -1);
        } else {
                assert_int_equal(r, 0);
                assert_int_equal(dec.st.ref, N);
                same_file(a, b);
        }
        em_delta_dec_free(&dec);
        em_delta_enc_free(&enc);
        free(out.buf);
}

static void test_ref_run_rebuild(void **state)
{
        rebuild_from_cache(false);
}

static void test_ref_run_corrupted_cache(void **state)
{
        rebuild_from_cache(true);
}

/* A sender with a shadow of what the receiver got per address and a
 * receiver with a page cache; image files in tmp/src (written by the test)
 * are rebuilt in tmp/dst. One mapping of npages pages at vaddr. */
struct pair {
        int src, dst;
        em_hashset_t *known;
        em_pagecache_t *pc;
        em_shadow_t *sh;
        struct em_pagemap_entry ent;
        struct em_pagemap pm;
        struct em_delta_enc enc;
        struct em_delta_dec dec;
        struct sink out;
};

static int subdir(const char *name)
{
        char path[128];

        snprintf(path, sizeof(path), "%s/%s", tmp, name);
        mkdir(path, 0700);
        return open(path, O_DIRECTORY | O_RDONLY);
}

static void pair_open(struct pair *p, uint64_t vaddr, uint64_t npages)
{
        char path[128];
        em_error_t err = NULL;

        memset(p, 0, sizeof(*p));
        p->src = subdir("src");
        p->dst = subdir("dst");
        p->known = em_hashset_new();
        snprintf(path, sizeof(path), "%s/shadow", tmp);
        assert_int_equal(em_shadow_open(path, &p->sh, &err), 0);
        assert_int_equal(em_pagecache_open(NULL, &p->pc, &err), 0);
        em_delta_dec_init(&p->dec, p->pc, p->dst);
        p->ent = (struct em_pagemap_entry){
            .vaddr = vaddr, .nr_pages = npages, .flags = EM_PE_PRESENT, .first_page = 0};
        p->pm = (struct em_pagemap){.pages_id = 1, .n = 1, .e = &p->ent, .nr_present = npages};
        assert_int_equal(em_delta_enc_init(&p->enc, p->known, 0, sink_emit, &p->out, &err), 0);
        p->enc.shadow = p->sh;
        p->enc.pagemap = &p->pm;
        p->enc.vpid = 1;
        p->enc.prescan = true;
}

static void pair_close(struct pair *p)
{
        em_delta_dec_free(&p->dec);
        em_delta_enc_free(&p->enc);
        em_shadow_free(&p->sh);
        em_pagecache_free(&p->pc);
        em_hashset_free(&p->known);
        free(p->out.buf);
        close(p->src);
        close(p->dst);
}

/* Encodes src/name (counting afresh into p->enc.st), feeds it to the
 * receiver and checks that dst/name is the same file. */
static void pair_send(struct pair *p, const char *name)
{
        char a[160], b[160];
        em_error_t err = NULL;

        free(p->out.buf);
        p->out = (struct sink){0};
        memset(&p->enc.st, 0, sizeof(p->enc.st));
        assert_int_equal(em_delta_encode_file(&p->enc, p->src, name, NULL, &err), 0);
        assert_int_equal(em_delta_enc_flush(&p->enc, &err), 0);
        assert_int_equal(em_delta_dec_feed(&p->dec, p->out.buf, p->out.len, &err), 0);
        assert_int_equal(em_delta_dec_finish(&p->dec, &err), 0);
        snprintf(a, sizeof(a), "%s/src/%s", tmp, name);
        snprintf(b, sizeof(b), "%s/dst/%s", tmp, name);
        same_file(a, b);
}

static void write_image(int dirfd, const char *name, const uint8_t *buf, size_t npages)
{
        cleanup_close int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC, 0600);

        assert_int_equal(write(fd, buf, npages * EM_PAGE_SIZE), (ssize_t)(npages * EM_PAGE_SIZE));
}

/* With the shadow, the changed pages of a later dump travel as XORs with
 * their previous content, and the receiver rebuilds the file byte for byte. */
static void test_xdata_against_shadow(void **state)
{
        struct pair p;
        char path[128];

        (void)state;
        pair_open(&p, 0x400000, NPAGES);
        write_pages(p.src, "pages-1.img", 0);
        pair_send(&p, "pages-1.img");
        assert_int_equal(p.enc.st.xdata, 0);
        assert_int_equal(em_shadow_count(p.sh), NPAGES - NPAGES / 3);

        /* Pages 1, 101, 151, 251 changed in one byte each. */
        write_pages(p.src, "pages-2.img", 7);
        pair_send(&p, "pages-2.img");
        assert_int_equal(p.enc.st.data, 4);
        assert_int_equal(p.enc.st.xdata, 4);
        assert_int_equal(p.dec.st.xdata, 4);
        /* The XDATA payloads are zero but for the changed byte: the stream
         * holds far fewer non-zero bytes than one whole page (~4090). */
        size_t nonzero = 0;
        for (size_t i = 0; i < p.out.len; i++)
                nonzero += p.out.buf[i] != 0;
        assert_true(nonzero < EM_PAGE_SIZE);

        /* A damaged shadow: those pages go whole, the file still matches. */
        snprintf(path, sizeof(path), "%s/shadow/pages.bin", tmp);
        cleanup_close int sfd = open(path, O_RDWR);
        cleanup_free uint8_t *all = malloc(NPAGES * EM_PAGE_SIZE);
        ssize_t n = pread(sfd, all, NPAGES * EM_PAGE_SIZE, 0);
        assert_true(n > 0);
        for (ssize_t off = 0; off < n; off += EM_PAGE_SIZE)
                all[off + 7] ^= 0xff; /* every slot */
        assert_int_equal(pwrite(sfd, all, (size_t)n, 0), n);
        write_pages(p.src, "pages-3.img", 9);
        pair_send(&p, "pages-3.img");
        assert_int_equal(p.enc.st.data, 4);
        assert_int_equal(p.enc.st.xdata, 0);
        pair_close(&p);
}

/* Incompressible pages: a stream of xorshift output, page by page. */
static void random_pages(uint8_t *buf, size_t npages, uint64_t seed)
{
        uint64_t x = seed;

        for (size_t i = 0; i < npages * EM_PAGE_SIZE / 8; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                memcpy(buf + i * 8, &x, 8);
        }
}

/* A buffer rewritten with data that moved (pages 100..199 now hold the old
 * stream shifted by 1000 bytes): no XOR helps, but compressed against the
 * old content around them the pages cost almost nothing (a ZBLOCK ahead of
 * the file), and the file then references them. */
static void test_zblock_for_moved_data(void **state)
{
        enum { N = 300 };
        struct pair p;
        cleanup_free uint8_t *img = malloc((N + 1) * EM_PAGE_SIZE);
        cleanup_free uint8_t *moved = malloc(N * EM_PAGE_SIZE);
        em_error_t err = NULL;

        (void)state;
        pair_open(&p, 0x7f0000000000, N);
        random_pages(img, N + 1, 42);
        write_image(p.src, "pages-1.img", img, N);
        pair_send(&p, "pages-1.img");

        memcpy(moved, img, N * EM_PAGE_SIZE);
        memcpy(moved + 100 * EM_PAGE_SIZE, img + 100 * EM_PAGE_SIZE + 1000, 100 * EM_PAGE_SIZE);
        write_image(p.src, "pages-2.img", moved, N);
        pair_send(&p, "pages-2.img");
        assert_int_equal(p.enc.st.zdata, 100);
        assert_int_equal(p.enc.st.xdata, 0);
        assert_int_equal(p.dec.st.zdata, 100);
        /* 400 KB of incompressible pages in a few KB. */
        assert_true(p.out.len < 16 * 1024);

        /* The same stream to a receiver whose cache is out of step with
         * the sender's view: refused, nothing rebuilt. */
        cleanup_pagecache em_pagecache_t *other = NULL;
        assert_int_equal(em_pagecache_open(NULL, &other, &err), 0);
        uint8_t junk[EM_PAGE_SIZE];
        em_phash_t jh;
        for (int i = 0; i < N; i++) {
                memset(junk, 0x11, sizeof(junk));
                memcpy(junk, &i, sizeof(i));
                assert_int_equal(em_pagecache_put(other, junk, &jh, &err), 0);
        }
        assert_int_equal(feed_status(other, p.out.buf, p.out.len, "out of step"), EILSEQ);
        pair_close(&p);
}

static void test_hostile_deltas(void **state)
{
        cleanup_pagecache em_pagecache_t *pc = NULL;
        uint8_t buf[256];
        size_t n;
        em_error_t err = NULL;

        assert_int_equal(em_pagecache_open(NULL, &pc, &err), 0);
        /* BEGIN "pages-1.img" with 1 page, then REF to an unknown page. */
        n = 0;
        buf[n++] = 1;
        buf[n++] = 11;
        buf[n++] = 0;
        memcpy(buf + n, "pages-1.img", 11);
        n += 11;
        memset(buf + n, 0, 8);
        buf[n] = 1;
        n += 8;
        size_t begin_len = n;
        buf[n++] = 3;
        memset(buf + n, 0xab, 16);
        n += 16;
        assert_int_equal(feed_status(pc, buf, n, "which the target does not have"), ENOENT);
        /* REF_RUN: beyond the cache, a check that does not match, empty,
         * longer than the file. */
        em_phash_t ph;
        uint8_t pg[EM_PAGE_SIZE];
        memset(pg, 7, sizeof(pg));
        assert_int_equal(em_pagecache_put(pc, pg, &ph, &err), 0);
        uint8_t run[21] = {8};
        memcpy(run + 1, "\x05\0\0\0\0\0\0\0\x01\0\0\0", 12);
        memcpy(buf + begin_len, run, 21);
        assert_int_equal(feed_status(pc, buf, begin_len + 21, "beyond the 1"), ENOENT);
        memcpy(run + 1, "\0\0\0\0\0\0\0\0\x01\0\0\0", 12);
        memset(run + 13, 0xee, 8);
        memcpy(buf + begin_len, run, 21);
        assert_int_equal(feed_status(pc, buf, begin_len + 21, "out of step"), EILSEQ);
        memcpy(run + 9, "\0\0\0\0", 4);
        memcpy(buf + begin_len, run, 21);
        assert_int_equal(feed_status(pc, buf, begin_len + 21, "empty REF_RUN"), EPROTO);
        memcpy(run + 9, "\x02\0\0\0", 4);
        memcpy(buf + begin_len, run, 21);
        assert_int_equal(feed_status(pc, buf, begin_len + 21, "overruns"), EPROTO);
        assert_int_equal(feed_status(pc, buf, begin_len + 10, "truncated"), EPROTO);
        /* A zero run longer than the file. */
        n = begin_len;
        buf[n++] = 2;
        memcpy(buf + n, "\x02\x00\x00\x00", 4);
        n += 4;
        assert_int_equal(feed_status(pc, buf, n, "overruns"), EPROTO);
        /* One zero page and END with the wrong digest. */
        n = begin_len;
        buf[n++] = 2;
        memcpy(buf + n, "\x01\x00\x00\x00", 4);
        n += 4;
        buf[n++] = 5;
        memcpy(buf + n, "sha256:", 7);
        memset(buf + n + 7, 'a', 64);
        n += EM_DIGEST_STR_LEN;
        assert_int_equal(feed_status(pc, buf, n, "does not match the source"), EILSEQ);
        /* Ended inside the file. */
        assert_int_equal(feed_status(pc, buf, begin_len, "ended inside pages-1.img"), EPROTO);
        /* Path escapes and other names are refused. */
        memcpy(buf + 3, "../1.img\0\0\0", 11);
        assert_int_equal(feed_status(pc, buf, begin_len, "refusing to write"), EPROTO);
        memcpy(buf + 3, "pages-1.im/", 11);
        assert_int_equal(feed_status(pc, buf, begin_len, "refusing to write"), EPROTO);
        /* Unknown op, truncated ops, ops outside a section. */
        assert_int_equal(feed_status(pc, (const uint8_t *)"\x0b", 1, "unknown op"), EPROTO);
        /* XDATA: outside a section, truncated, against a page the cache
         * lacks or holds with other content than the sender meant. */
        assert_int_equal(feed_status(pc, (const uint8_t *)"\x09", 1, "XDATA outside"), EPROTO);
        assert_int_equal(feed_status(pc, (const uint8_t *)"\x06\x09", 2, "truncated XDATA"),
                         EPROTO);
        cleanup_free uint8_t *x = calloc(1, 2 + 16 + EM_PAGE_SIZE);
        x[0] = 6;
        x[1] = 9;
        x[2] = 5; /* position 5: beyond the one cached page */
        assert_int_equal(feed_status(pc, x, 2 + 16 + EM_PAGE_SIZE, "XDATA base"), ENOENT);
        x[2] = 0;
        memset(x + 10, 0xee, 8); /* check: not the cached page's hash */
        assert_int_equal(feed_status(pc, x, 2 + 16 + EM_PAGE_SIZE, "out of step"), EILSEQ);
        memcpy(x + 10, ph.b, 8); /* the right check: the page rebuilds */
        x[2 + 16 + 3] = 0x10;
        assert_int_equal(feed_status(pc, x, 2 + 16 + EM_PAGE_SIZE, NULL), EPROTO); /* open */
        pg[3] ^= 0x10;
        em_phash_t want;
        em_page_hash(pg, &want);
        assert_true(em_pagecache_has(pc, &want));
        /* ZBLOCK: only in a prefill, with a reference, intact. */
        assert_int_equal(feed_status(pc, (const uint8_t *)"\x0a", 1, "outside a prefill"), EPROTO);
        uint8_t zb[2 + 12 + 8 + 16 + 8] = {6, 10};
        assert_int_equal(feed_status(pc, zb, 2 + 12 + 8 + 16, "ZBLOCK"), EPROTO); /* nref 0 */
        zb[2] = 1;                                                                /* nref 1 */
        zb[2 + 12 + 8] = 1;                                                       /* 1 page */
        zb[2 + 12 + 8 + 12] = 8;                                                  /* len 8 */
        memcpy(zb + 6, ph.b, 8); /* ref check of position 0 */
        memset(zb + 2 + 12 + 8 + 16, 0x55, 8);
        assert_int_equal(feed_status(pc, zb, sizeof(zb), "corrupt ZBLOCK"), EPROTO);
        zb[2 + 12] = 9; /* position 9: beyond the cache */
        assert_int_equal(feed_status(pc, zb, sizeof(zb), "beyond the cache"), ENOENT);
        assert_int_equal(feed_status(pc, (const uint8_t *)"\x01\x05", 2, "truncated"), EPROTO);
        assert_int_equal(feed_status(pc, (const uint8_t *)"\x03", 1, "outside"), EPROTO);
        assert_int_equal(feed_status(pc, (const uint8_t *)"\x06\x04", 2, "truncated DATA"), EPROTO);
        assert_int_equal(feed_status(pc, (const uint8_t *)"\x06\x06", 2, "inside a section"),
                         EPROTO);
        assert_int_equal(feed_status(pc, (const uint8_t *)"\x06", 1, "prefill"), EPROTO);
        assert_int_equal(feed_status(pc, (const uint8_t *)"\x06\x07", 2, NULL), 0);
}

/* A ZBLOCK whose pages decompress but fail their check leaves nothing in the
 * cache: pages are verified before they enter it (a peer cannot plant pages
 * it never proved). The same block with the right check stores its page. */
static void test_zblock_checked_before_cache(void **state)
{
        cleanup_pagecache em_pagecache_t *pc = NULL;
        uint8_t ref[EM_PAGE_SIZE], page[EM_PAGE_SIZE], frame[2 * EM_PAGE_SIZE];
        uint8_t op[2 + 12 + 8 + 16 + sizeof(frame) + 1] = {6, 10};
        em_phash_t rh, ph;
        em_error_t err = NULL;

        (void)state;
        assert_int_equal(em_pagecache_open(NULL, &pc, &err), 0);
        memset(ref, 7, sizeof(ref));
        random_pages(page, 1, 9);
        assert_int_equal(em_pagecache_put(pc, ref, &rh, &err), 0);
        em_page_hash(page, &ph);
        ZSTD_CCtx *z = ZSTD_createCCtx();
        assert_non_null(z);
        assert_false(ZSTD_isError(ZSTD_CCtx_refPrefix(z, ref, sizeof(ref))));
        size_t len = ZSTD_compress2(z, frame, sizeof(frame), page, sizeof(page));
        ZSTD_freeCCtx(z);
        assert_false(ZSTD_isError(len));
        op[2] = 1;                            /* nref 1 */
        memcpy(op + 6, rh.b, 8);              /* ref check: position 0's hash word */
        op[2 + 12 + 8] = 1;                   /* 1 page */
        memset(op + 2 + 12 + 8 + 4, 0xee, 8); /* a check the page fails */
        memcpy(op + 2 + 12 + 8 + 12, &(uint32_t){(uint32_t)len}, 4);
        memcpy(op + 2 + 12 + 8 + 16, frame, len);
        size_t n = 2 + 12 + 8 + 16 + len;
        op[n] = 7; /* END_PREFILL */
        assert_int_equal(feed_status(pc, op, n + 1, "fail their check"), EILSEQ);
        assert_false(em_pagecache_has(pc, &ph));
        assert_int_equal(em_pagecache_pages(pc), 1);
        memcpy(op + 2 + 12 + 8 + 4, ph.b, 8);
        assert_int_equal(feed_status(pc, op, n + 1, NULL), 0);
        assert_true(em_pagecache_has(pc, &ph));
}

/* The prefix digest names the first n pages, survives a reopen and an
 * append, and changes when any of those pages does. */
static void test_cache_prefix_digest(void **state)
{
        cleanup_pagecache em_pagecache_t *pc = NULL;
        char dir[128], d2[EM_DIGEST_STR_LEN + 1], again[EM_DIGEST_STR_LEN + 1],
            d3[EM_DIGEST_STR_LEN + 1];
        uint8_t page[EM_PAGE_SIZE];
        em_phash_t h;
        em_error_t err = NULL;

        (void)state;
        snprintf(dir, sizeof(dir), "%s/pagecache/prefix", tmp);
        assert_int_equal(em_pagecache_open(dir, &pc, &err), 0);
        for (int i = 0; i < 2; i++) {
                memset(page, 'p' + i, sizeof(page));
                assert_int_equal(em_pagecache_put(pc, page, &h, &err), 0);
        }
        assert_int_equal(em_pagecache_pages(pc), 2);
        assert_int_equal(em_pagecache_prefix_digest(pc, 2, d2, &err), 0);
        memset(page, 'z', sizeof(page));
        assert_int_equal(em_pagecache_put(pc, page, &h, &err), 0);
        assert_int_equal(em_pagecache_prefix_digest(pc, 3, d3, &err), 0);
        assert_string_not_equal(d2, d3);
        em_pagecache_free(&pc);
        assert_int_equal(em_pagecache_open(dir, &pc, &err), 0);
        assert_int_equal(em_pagecache_prefix_digest(pc, 2, again, &err), 0);
        assert_string_equal(d2, again);
        assert_int_equal(em_pagecache_prefix_digest(pc, 4, again, &err), -1);
        assert_int_equal(em_error_status(err), ERANGE);
        em_error_free(&err);
        em_pagecache_free(&pc);
        /* A page rewritten under the cache: the prefix no longer matches. */
        char path[160];
        snprintf(path, sizeof(path), "%s/pages.bin", dir);
        cleanup_close int fd = open(path, O_WRONLY);
        assert_int_equal(pwrite(fd, "X", 1, 7), 1);
        assert_int_equal(em_pagecache_open(dir, &pc, &err), 0);
        assert_int_equal(em_pagecache_prefix_digest(pc, 2, again, &err), 0);
        assert_string_not_equal(d2, again);
}

static void test_hashset_export(void **state)
{
        cleanup_hashset em_hashset_t *a = em_hashset_new(), *b = em_hashset_new();
        cleanup_free uint8_t *list = NULL;
        uint8_t page[EM_PAGE_SIZE];
        em_phash_t h[40];
        size_t len = 0;
        em_error_t err = NULL;

        (void)state;
        for (int i = 0; i < 40; i++) {
                memset(page, i + 1, sizeof(page));
                em_page_hash(page, &h[i]);
                assert_int_equal(em_hashset_add(a, &h[i], &err), 1);
        }
        assert_int_equal(em_hashset_export(a, &list, &len, &err), 0);
        assert_int_equal(len, 40 * 16);
        assert_int_equal(em_hashset_add_payload(b, list, len, &err), 0);
        assert_int_equal(em_hashset_count(b), 40);
        for (int i = 0; i < 40; i++)
                assert_true(em_hashset_has(b, &h[i]));
}

static off_t file_size(const char *path)
{
        struct stat st;

        return stat(path, &st) == 0 ? st.st_size : -1;
}

/* New pages reach the cache file in batches (one write for many pages, not
 * one a page); a read of a page still held back writes them first, and so
 * do em_pagecache_flush (for another opener: the lazy restore's) and the
 * index, which describes only pages in the file. */
static void test_cache_writes_batched(void **state)
{
        cleanup_pagecache em_pagecache_t *pc = NULL;
        uint8_t page[EM_PAGE_SIZE], back[EM_PAGE_SIZE];
        em_phash_t h[10];
        char dir[128], file[160];
        em_error_t err = NULL;

        (void)state;
        snprintf(dir, sizeof(dir), "%s/pagecache/batched", tmp);
        snprintf(file, sizeof(file), "%s/pages.bin", dir);
        assert_int_equal(em_pagecache_open(dir, &pc, &err), 0);
        for (int i = 0; i < 10; i++) {
                memset(page, 0x30 + i, sizeof(page));
                assert_int_equal(em_pagecache_put(pc, page, &h[i], &err), 0);
        }
        assert_int_equal(em_pagecache_pages(pc), 10);
        assert_int_equal(file_size(file), 0);
        assert_int_equal(em_pagecache_flush(pc, &err), 0);
        assert_int_equal(file_size(file), 10 * EM_PAGE_SIZE);
        memset(page, 0x50, sizeof(page));
        assert_int_equal(em_pagecache_put(pc, page, &h[0], &err), 0);
        assert_int_equal(em_pagecache_get(pc, &h[0], back, &err), 0); /* held back: written */
        assert_memory_equal(back, page, EM_PAGE_SIZE);
        assert_int_equal(file_size(file), 11 * EM_PAGE_SIZE);
        memset(page, 0x51, sizeof(page));
        assert_int_equal(em_pagecache_put(pc, page, &h[1], &err), 0);
        assert_int_equal(em_pagecache_save_index(pc, &err), 0);
        assert_int_equal(file_size(file), 12 * EM_PAGE_SIZE);
        memset(page, 0x52, sizeof(page));
        assert_int_equal(em_pagecache_put(pc, page, &h[2], &err), 0);
        em_pagecache_free(&pc); /* writes the rest */
        assert_int_equal(em_pagecache_open(dir, &pc, &err), 0);
        assert_int_equal(em_pagecache_count(pc), 13);
        assert_int_equal(em_pagecache_get(pc, &h[2], back, &err), 0);
        assert_int_equal(back[0], 0x52);
}

static void test_cache_persistence_and_hashes(void **state)
{
        cleanup_pagecache em_pagecache_t *pc = NULL;
        cleanup_hashset em_hashset_t *set = em_hashset_new();
        cleanup_free uint8_t *list = NULL;
        uint8_t page[EM_PAGE_SIZE], back[EM_PAGE_SIZE];
        em_phash_t h[3];
        char dir[128];
        size_t len;
        em_error_t err = NULL;

        snprintf(dir, sizeof(dir), "%s/pagecache/sess1", tmp);
        assert_int_equal(em_pagecache_open(dir, &pc, &err), 0);
        for (int i = 0; i < 3; i++) {
                memset(page, 'a' + i, sizeof(page));
                assert_int_equal(em_pagecache_put(pc, page, &h[i], &err), 0);
        }
        assert_int_equal(em_pagecache_put(pc, page, &h[2], &err), 0); /* dedup */
        assert_int_equal(em_pagecache_count(pc), 3);
        /* A saved index covers the first pages; one appended after it is
         * hashed on open. */
        char ipath[160];
        snprintf(ipath, sizeof(ipath), "%s/index.bin", dir);
        memset(page, 'a', sizeof(page));
        em_pagecache_free(&pc);
        assert_int_equal(em_pagecache_open(dir, &pc, &err), 0);
        assert_int_equal(em_pagecache_save_index(pc, &err), 0);
        assert_true(em_path_exists(ipath));
        em_pagecache_free(&pc);
        assert_int_equal(em_pagecache_open(dir, &pc, &err), 0);
        assert_int_equal(em_pagecache_count(pc), 3);
        memset(page, 'z', sizeof(page));
        em_phash_t hz;
        assert_int_equal(em_pagecache_put(pc, page, &hz, &err), 0);
        em_pagecache_free(&pc);
        assert_int_equal(em_pagecache_open(dir, &pc, &err), 0);
        assert_int_equal(em_pagecache_count(pc), 4);
        assert_int_equal(em_pagecache_get(pc, &hz, back, &err), 0);
        assert_int_equal(back[0], 'z');
        /* An index that lies (pages 0 and 1 swapped) cannot make a read
         * return the wrong page: the read re-verifies. */
        assert_int_equal(em_pagecache_save_index(pc, &err), 0);
        em_pagecache_free(&pc);
        cleanup_free char *idx = NULL;
        size_t ilen = 0;
        assert_int_equal(em_read_file(ipath, 4096, &idx, &ilen, &err), 0);
        uint8_t tmp16[16];
        memcpy(tmp16, idx + 16, 16);
        memcpy(idx + 16, idx + 32, 16);
        memcpy(idx + 32, tmp16, 16);
        assert_int_equal(em_write_file_atomic(ipath, idx, ilen, 0600, &err), 0);
        assert_int_equal(em_pagecache_open(dir, &pc, &err), 0);
        assert_int_equal(em_pagecache_get(pc, &h[0], back, &err), -1);
        assert_int_equal(em_error_status(err), EILSEQ);
        em_error_free(&err);
        em_pagecache_free(&pc);
        /* A malformed index is ignored: the file is hashed again. */
        assert_int_equal(truncate(ipath, 20), 0);
        assert_int_equal(em_pagecache_open(dir, &pc, &err), 0);
        assert_int_equal(em_pagecache_count(pc), 4);
        assert_int_equal(em_pagecache_get(pc, &h[0], back, &err), 0);
        assert_int_equal(em_pagecache_get(pc, &h[1], back, &err), 0);
        assert_int_equal(back[0], 'b');
        assert_int_equal(em_pagecache_hashes(pc, 0, &list, &len, &err), 0);
        assert_int_equal(len, 64);
        /* File order, so a suffix is exactly the pages added since. */
        assert_memory_equal(list + 32, h[2].b, 16);
        cleanup_free uint8_t *tail = NULL;
        size_t tlen = 0;
        assert_int_equal(em_pagecache_hashes(pc, 2, &tail, &tlen, &err), 0);
        assert_int_equal(tlen, 32);
        assert_memory_equal(tail, h[2].b, 16);
        assert_memory_equal(tail + 16, hz.b, 16);
        free(tail);
        tail = NULL;
        assert_int_equal(em_pagecache_hashes(pc, 9, &tail, &tlen, &err), 0);
        assert_int_equal(tlen, 0);
        assert_int_equal(em_hashset_add_payload(set, list, len, &err), 0);
        assert_true(em_hashset_has(set, &h[0]) && em_hashset_has(set, &h[2]));
        assert_int_equal(em_hashset_add_payload(set, list, 17, &err), -1);
        em_error_free(&err);
        /* Corrupt the file under the cache: get notices. */
        char path[160];
        snprintf(path, sizeof(path), "%s/pages.bin", dir);
        cleanup_close int fd = open(path, O_WRONLY);
        assert_int_equal(pwrite(fd, "X", 1, EM_PAGE_SIZE + 5), 1);
        assert_int_equal(em_pagecache_get(pc, &h[1], back, &err), -1);
        assert_int_equal(em_error_status(err), EILSEQ);
        em_error_free(&err);
}

static void test_hashset_growth(void **state)
{
        cleanup_hashset em_hashset_t *s = em_hashset_new();
        em_error_t err = NULL;
        em_phash_t h;
        uint8_t page[EM_PAGE_SIZE] = {0};

        for (uint32_t i = 0; i < 20000; i++) {
                memcpy(page, &i, 4);
                em_page_hash(page, &h);
                assert_int_equal(em_hashset_add(s, &h, &err), 1);
        }
        assert_int_equal(em_hashset_count(s), 20000);
        for (uint32_t i = 0; i < 20000; i += 999) {
                memcpy(page, &i, 4);
                em_page_hash(page, &h);
                assert_true(em_hashset_has(s, &h));
                assert_int_equal(em_hashset_add(s, &h, &err), 0);
        }
}

/* The child holds 64 distinct pages and keeps running. */
static void test_procmem_child(void **state)
{
        int ready[2];
        cleanup_hashset em_hashset_t *known = em_hashset_new();
        struct em_delta_enc enc;
        struct em_procmem_stats st;
        struct sink s = {0};
        uint8_t page[EM_PAGE_SIZE];
        em_phash_t h;
        em_error_t err = NULL;
        pid_t pid;

        assert_int_equal(pipe(ready), 0);
        pid = fork();
        if (pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed test */
                uint8_t *mem = mmap(NULL, 64 * EM_PAGE_SIZE, PROT_READ | PROT_WRITE,
                                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                for (int i = 0; i < 64; i++)
                        memset(mem + i * EM_PAGE_SIZE, 0x40 + i, EM_PAGE_SIZE);
                if (write(ready[1], "x", 1) != 1)
                        _exit(1);
                for (;;)
                        pause();
        }
        assert_int_equal(read(ready[0], page, 1), 1);
        assert_int_equal(em_delta_enc_init(&enc, known, 0, sink_emit, &s, &err), 0);
        assert_int_equal(em_delta_encode_procmem(&enc, pid, &st, &err), 0);
        assert_int_equal(em_delta_enc_flush(&enc, &err), 0);
        assert_true(st.pages_read >= 64);
        for (int i = 0; i < 64; i++) {
                memset(page, 0x40 + i, EM_PAGE_SIZE);
                em_page_hash(page, &h);
                assert_true(em_hashset_has(known, &h));
        }
        /* Not frozen, not harmed: it is still there to be killed. */
        assert_int_equal(kill(pid, 0), 0);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        /* The prefill feeds a receiver cache. */
        cleanup_pagecache em_pagecache_t *pc = NULL;
        struct em_delta_dec dec;
        assert_int_equal(em_pagecache_open(NULL, &pc, &err), 0);
        em_delta_dec_init(&dec, pc, -1);
        assert_int_equal(em_delta_dec_feed(&dec, s.buf, s.len, &err), 0);
        assert_int_equal(em_delta_dec_finish(&dec, &err), 0);
        assert_int_equal(em_pagecache_count(pc), em_hashset_count(known));
        assert_true(em_pagecache_has(pc, &h));
        em_delta_enc_free(&enc);
        free(s.buf);
        close(ready[0]);
        close(ready[1]);
        /* A pid that does not exist fails cleanly. */
        assert_int_equal(em_procmem_scan(999999999, NULL, NULL, &st, &err), -1);
        em_error_free(&err);
}

struct shm_seen {
        uint64_t start;
        int pages; /* pages of the mapping read with the expected content */
};

static int shm_page(void *ctx, uint64_t vaddr, const uint8_t *page, em_error_t *err)
{
        struct shm_seen *s = ctx;
        uint64_t i = (vaddr - s->start) / EM_PAGE_SIZE;

        (void)err;
        if (vaddr >= s->start && i < 32 && page[0] == 0x70 + i &&
            page[EM_PAGE_SIZE - 1] == 0x70 + i)
                s->pages++;
        return 0;
}

/* Shared memory that the parent wrote and the child never touched is in
 * none of the child's page tables (fork copies no page table entries of a
 * shared mapping), but it is the child's memory and CRIU dumps it: the
 * scan of the child reads all of it. */
static void test_procmem_shared_untouched(void **state)
{
        struct shm_seen seen = {0};
        struct em_procmem_stats st;
        em_error_t err = NULL;
        int ready[2];
        char c;

        (void)state;
        uint8_t *mem = mmap(NULL, 32 * EM_PAGE_SIZE, PROT_READ | PROT_WRITE,
                            MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        assert_true(mem != MAP_FAILED);
        for (int i = 0; i < 32; i++)
                memset(mem + i * EM_PAGE_SIZE, 0x70 + i, EM_PAGE_SIZE);
        assert_int_equal(pipe(ready), 0);
        pid_t pid = fork();
        if (pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (write(ready[1], "x", 1) != 1)
                        _exit(1);
                for (;;)
                        pause();
        }
        assert_int_equal(read(ready[0], &c, 1), 1);
        seen.start = (uintptr_t)mem;
        assert_int_equal(em_procmem_scan(pid, shm_page, &seen, &st, &err), 0);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        munmap(mem, 32 * EM_PAGE_SIZE);
        close(ready[0]);
        close(ready[1]);
        assert_int_equal(seen.pages, 32);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_hash_basics),
            cmocka_unit_test(test_two_rounds_rebuild),
            cmocka_unit_test(test_hostile_deltas),
            cmocka_unit_test(test_zblock_checked_before_cache),
            cmocka_unit_test(test_cache_persistence_and_hashes),
            cmocka_unit_test(test_cache_writes_batched),
            cmocka_unit_test(test_cache_prefix_digest),
            cmocka_unit_test(test_ref_runs_by_cache_position),
            cmocka_unit_test(test_hashset_export),
            cmocka_unit_test(test_hashset_growth),
            cmocka_unit_test(test_procmem_child),
            cmocka_unit_test(test_procmem_shared_untouched),
            cmocka_unit_test_setup_teardown(test_ref_run_rebuild, setup, teardown),
            cmocka_unit_test_setup_teardown(test_ref_run_corrupted_cache, setup, teardown),
            cmocka_unit_test_setup_teardown(test_xdata_against_shadow, setup, teardown),
            cmocka_unit_test_setup_teardown(test_zblock_for_moved_data, setup, teardown),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
