/* The receiving end of the sync: the page cache and delta decoder rebuild
 * CRIU's pages-*.img, the upper receiver rebuilds the writable layer. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "delta/pages.h"
#include "migrate/target/sync_target.h"
#include "migrate/target/upper_recv.h"
#include "migrate/common/volume_sync.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/log.h"

#define HASHES_PER_FRAME (1u << 19) /* 8 MiB of hashes */

struct em_sync_target {
        char *cache_dir;
        em_pagecache_t *pc;
        int images_fd;
        struct em_delta_dec dec;
        struct em_upper_rx *upper;
        struct em_volume_rx *volumes;
        struct em_upper_rx *cur; /* FILE_ROOT's choice; NULL: upper */
        json_t *files;           /* {name: sha256} of every image file verified on receipt */
        bool dropped;            /* the cache is gone (committed) */
};

static void note_file(void *ud, const char *name, const char *digest)
{
        em_sync_target_note_file(ud, name, digest);
}

void em_sync_target_note_file(struct em_sync_target *t, const char *name, const char *digest)
{
        json_object_set_new(t->files, name, json_string(digest));
}

const json_t *em_sync_target_files(const struct em_sync_target *t)
{
        return t->files;
}

int em_sync_target_new(const char *cache_dir, const char *images_dir, const char *upper_dir,
                       struct em_sync_target **out, em_error_t *err)
{
        struct em_sync_target *t = calloc(1, sizeof(*t));

        if (t == NULL)
                return em_error_set(err, ENOMEM, "sync target");
        t->images_fd = -1;
        *out = t;
        if ((t->files = json_object()) == NULL)
                return em_error_set(err, ENOMEM, "sync target");
        if ((t->cache_dir = strdup(cache_dir)) == NULL)
                return em_error_set(err, ENOMEM, "sync target");
        if (em_mkdir_p(t->cache_dir, 0700, err) < 0 ||
            em_pagecache_open(t->cache_dir, &t->pc, err) < 0)
                return em_error_wrap(err, "opening page cache %s", t->cache_dir);
        t->images_fd = open(images_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (t->images_fd < 0)
                return em_error_set(err, errno, "opening %s", images_dir);
        em_delta_dec_init(&t->dec, t->pc, t->images_fd);
        t->dec.on_file = note_file;
        t->dec.on_file_ud = t;
        return em_upper_rx_new(upper_dir, &t->upper, err);
}

uint64_t em_sync_target_rebuilt(const struct em_sync_target *t)
{
        return t->dec.st.pages * EM_PAGE_SIZE;
}

void em_sync_target_free(struct em_sync_target **t)
{
        em_error_t e = NULL;

        if (*t == NULL)
                return;
        /* For the next session with this cache (a migration after a prepare). */
        if ((*t)->pc != NULL && !(*t)->dropped && em_pagecache_save_index((*t)->pc, &e) < 0) {
                em_log_warn("%s (the next session re-reads the cache)", em_error_msg(e));
                em_error_free(&e);
        }
        if ((*t)->pc != NULL)
                em_delta_dec_free(&(*t)->dec);
        em_pagecache_free(&(*t)->pc);
        em_upper_rx_free(&(*t)->upper);
        em_volume_rx_free(&(*t)->volumes);
        em_cleanup_closep(&(*t)->images_fd);
        json_decref((*t)->files);
        free((*t)->cache_dir);
        free(*t);
        *t = NULL;
}

int em_sync_target_send_hashes(struct em_sync_target *t, em_conn_t *c, uint64_t from,
                               em_error_t *err)
{
        cleanup_free uint8_t *buf = NULL;
        size_t len = 0, off = 0;

        if (em_pagecache_hashes(t->pc, from, &buf, &len, err) < 0)
                return -1;
        do {
                size_t n = len - off > HASHES_PER_FRAME * 16 ? HASHES_PER_FRAME * 16 : len - off;
                bool last = off + n == len;
                if (em_conn_send(c, EM_FRAME_PAGES_HASHES, last ? EM_FRAME_F_LAST : 0, 0, buf + off,
                                 n, 0, err) < 0)
                        return -1;
                off += n;
        } while (off < len);
        return 0;
}

int em_sync_target_frame(struct em_sync_target *t, em_conn_t *c, const struct em_frame *f,
                         em_error_t *err)
{
        if (f->hdr.type == EM_FRAME_PAGES_DATA)
                return em_delta_dec_feed(&t->dec, f->payload, f->length, err);
        if (f->hdr.type == EM_FRAME_FILE_ROOT)
                return em_volume_rx_root(t->volumes, f, &t->cur, err);
        return em_upper_rx_frame(t->cur ? t->cur : t->upper, c, f, err);
}

int em_sync_target_volumes(struct em_sync_target *t, const json_t *spec, json_t **have,
                           em_error_t *err)
{
        cleanup_json json_t *h = json_object();

        em_volume_rx_free(&t->volumes);
        t->cur = NULL;
        if (h == NULL || em_volume_rx_new(t->cache_dir, spec, &t->volumes, h, err) < 0)
                return em_error_wrap(err, "volumes");
        *have = steal_pointer(&h);
        return 0;
}

int em_sync_target_install_volumes(struct em_sync_target *t, const struct em_config *cfg, bool back,
                                   em_error_t *err)
{
        return em_volume_rx_install(t->volumes, cfg, back, err);
}

int em_sync_target_finish(struct em_sync_target *t, em_error_t *err)
{
        if (em_delta_dec_finish(&t->dec, err) < 0)
                return em_error_wrap(err, "memory delta");
        if (em_upper_rx_finish(t->upper, err) < 0)
                return -1;
        return em_volume_rx_finish(t->volumes, err);
}

uint64_t em_sync_target_cache_match(struct em_sync_target *t, const json_t *prefix)
{
        char have[EM_DIGEST_STR_LEN + 1];
        const char *want = em_json_str(prefix, "digest");
        json_int_t n = em_json_int(prefix, "pages", -1);
        em_error_t e = NULL;

        if (want == NULL || n <= 0)
                return 0;
        if (em_pagecache_prefix_digest(t->pc, (uint64_t)n, have, &e) < 0) {
                em_error_free(&e);
                return 0;
        }
        return strcmp(have, want) == 0 ? (uint64_t)n : 0;
}

int em_sync_target_cache_state(struct em_sync_target *t, json_t *out, em_error_t *err)
{
        char d[EM_DIGEST_STR_LEN + 1];
        uint64_t n = em_pagecache_pages(t->pc);

        if (em_pagecache_prefix_digest(t->pc, n, d, err) < 0)
                return -1;
        if (json_object_set_new(out, "cache_pages", json_integer((json_int_t)n)) < 0 ||
            json_object_set_new(out, "cache_digest", json_string(d)) < 0)
                return em_error_set(err, ENOMEM, "page cache state");
        return 0;
}

void em_sync_target_drop_dir(const char *cache_dir)
{
        cleanup_free char *parent = strdup(cache_dir);
        char *slash = parent ? strrchr(parent, '/') : NULL;
        em_error_t e = NULL;

        if (em_rm_rf(cache_dir, &e) < 0) {
                em_log_warn("dropping page cache: %s", em_error_msg(e));
                em_error_free(&e);
        }
        /* The container's directory goes with its last peer's cache. */
        if (slash != NULL) {
                *slash = '\0';
                rmdir(parent);
        }
}

void em_sync_target_drop_cache(struct em_sync_target *t)
{
        t->dropped = true;
        em_sync_target_drop_dir(t->cache_dir);
}
