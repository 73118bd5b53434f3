/* libFuzzer target: the known-pages list (EMKNOWN1, delta/lazy_known.c)
 * that a source puts among the CRIU images of a lazy migration, as the
 * target applies it: it rewrites the pagemap and pages images before the
 * restore (fuzz_known covers the list's parser alone). The image directory holds a fixed pagemap
 * (two present pages, an eight-page lazy entry, one more present page) and the page cache four
 * pages. If the input's first byte is odd, the rest is taken as records
 * ({u64 vaddr, 16-byte hash}) and the harness adds the magic, the count and
 * the right digest, so that the rewrite itself is reached; otherwise the
 * rest is the whole file. Whatever the list, the images must stay
 * consistent: the pagemap parses, and the pages image holds exactly its
 * present pages. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "delta/criu_img.h"
#include "delta/pages.h"
#include "delta/lazy_known.h"
#include "util/digest.h"
#include "util/fsutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PAGES_ID 1
#define N_CACHED 4

static char dir[64], images[80], cache[80];
static uint8_t *pagemap_img, cached[N_CACHED][EM_PAGE_SIZE];
static size_t pagemap_len;
static em_phash_t cached_hash[N_CACHED];

static void remove_dir(void)
{
        em_error_t err = NULL;

        if (em_rm_rf(dir, &err) < 0)
                em_error_free(&err);
}

static void write_file(const char *name, const void *p, size_t n)
{
        char path[160];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", images, name);
        f = fopen(path, "we");
        if (f == NULL || (n > 0 && fwrite(p, 1, n, f) != n) || fclose(f) != 0)
                abort();
}

static void setup_cache(void)
{
        em_pagecache_t *pc = NULL;
        em_error_t err = NULL;

        if (em_pagecache_open(cache, &pc, &err) < 0)
                abort();
        for (int i = 0; i < N_CACHED; i++) {
                memset(cached[i], 0x11 * (i + 1), EM_PAGE_SIZE);
                if (em_pagecache_put(pc, cached[i], &cached_hash[i], &err) < 0)
                        abort();
        }
        em_pagecache_free(&pc);
}

static void setup(void)
{
        struct em_pagemap_entry e[3] = {
            {.vaddr = 0x10000, .nr_pages = 2, .flags = EM_PE_PRESENT, .first_page = 0},
            {.vaddr = 0x20000, .nr_pages = 8, .flags = EM_PE_LAZY},
            {.vaddr = 0x40000, .nr_pages = 1, .flags = EM_PE_PRESENT, .first_page = 2},
        };
        struct em_pagemap pm = {.pages_id = PAGES_ID, .n = 3, .e = e, .nr_present = 3};
        em_error_t err = NULL;

        for (int i = 0; i < 3; i++)
                e[i].has = EM_PME_HAS_FLAGS | EM_PME_HAS_NR_PAGES;
        snprintf(dir, sizeof(dir), "/dev/shm/fuzz-known-apply.XXXXXX");
        if (mkdtemp(dir) == NULL)
                abort();
        atexit(remove_dir);
        snprintf(images, sizeof(images), "%s/images", dir);
        snprintf(cache, sizeof(cache), "%s/cache", dir);
        if (mkdir(images, 0700) < 0 || em_pagemap_encode(&pm, &pagemap_img, &pagemap_len, &err) < 0)
                abort();
        setup_cache();
}

/* The list with the digest the target will compute, from the input's
 * records (a hash the cache lacks reads as a zero page: the target then
 * fails on it anyway). */
static uint8_t *framed_list(const uint8_t *rec, size_t nrec, size_t *len)
{
        em_sha256_t *sha = em_sha256_new();
        uint8_t *buf = malloc(16 + nrec * 24 + EM_DIGEST_STR_LEN + 1), zero[EM_PAGE_SIZE] = {0};
        uint64_t n = nrec;

        if (sha == NULL || buf == NULL)
                abort();
        memcpy(buf, "EMKNOWN1", 8);
        memcpy(buf + 8, &n, 8);
        memcpy(buf + 16, rec, nrec * 24);
        for (size_t i = 0; i < nrec; i++) {
                const uint8_t *page = zero;
                for (int k = 0; k < N_CACHED; k++)
                        if (memcmp(rec + i * 24 + 8, cached_hash[k].b, 16) == 0)
                                page = cached[k];
                em_sha256_update(sha, page, EM_PAGE_SIZE);
        }
        em_sha256_final(sha, (char *)buf + 16 + nrec * 24);
        em_sha256_free(&sha);
        *len = 16 + nrec * 24 + EM_DIGEST_STR_LEN;
        return buf;
}

static void check_images(void)
{
        struct em_pagemap pm;
        em_error_t err = NULL;
        int dfd = open(images, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        if (dfd < 0 || em_pagemap_load(dfd, "pagemap-1.img", &pm, &err) < 0 ||
            em_pagemap_check_pages(&pm, dfd, &err) < 0)
                abort();
        em_pagemap_free(&pm);
        close(dfd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        uint8_t pages[3][EM_PAGE_SIZE];
        uint64_t applied = 0;
        em_error_t err = NULL;

        if (dir[0] == 0)
                setup();
        if (size == 0)
                return 0;
        memset(pages, 0x5a, sizeof(pages));
        write_file("pagemap-1.img", pagemap_img, pagemap_len);
        write_file("pages-1.img", pages, sizeof(pages));
        if (data[0] & 1) {
                size_t len, nrec = (size - 1) / 24;
                uint8_t *list = framed_list(data + 1, nrec < 64 ? nrec : 64, &len);
                write_file("edgemig-known-1.bin", list, len);
                free(list);
        } else {
                write_file("edgemig-known-1.bin", data + 1, size - 1);
        }
        if (em_lazy_known_apply(images, cache, &applied, &err) < 0)
                abort();
        check_images();
        return 0;
}
