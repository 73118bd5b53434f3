/* The writable layer as a manifest diff. Each round the source walks the
 * overlay upper dir, compares every entry's metadata signature with the
 * previous round's, and sends deletions, changed entries and the content of
 * changed files. The receiver rebuilds the tree with *at() calls confined by
 * openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) to the staging dir, keeping
 * owners, modes, mtimes, trusted.* xattrs and 0/0 whiteout devices.
 *
 * Frames: FILE_DELETE {"paths": [...]}, FILE_MANIFEST {"entries": [...]},
 * FILE_DATA: JSON {"path", "size"} on stream 0, then the bytes on stream 1
 * with the last frame flagged LAST. */

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <linux/openat2.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "migrate/proto.h"
#include "migrate/sync_int.h"
#include "migrate/upper_entry.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/json.h"

#define MAX_ENTRIES_PER_FRAME 2000

/* path -> signature (metadata of the last round) */
struct em_upper_state {
        json_t *prev; /* object: path -> signature string */
};

int em_upper_state_new(struct em_upper_state **out, em_error_t *err)
{
        struct em_upper_state *st = calloc(1, sizeof(*st));

        if (st == NULL || (st->prev = json_object()) == NULL) {
                free(st);
                return em_error_set(err, ENOMEM, "upper sync state");
        }
        *out = st;
        return 0;
}

void em_upper_state_free(struct em_upper_state **st)
{
        if (*st == NULL)
                return;
        json_decref((*st)->prev);
        free(*st);
        *st = NULL;
}

/* ---- source ---- */

struct walk {
        const char *root;
        size_t root_len;
        json_t *now; /* path -> entry */
        em_error_t *err;
        int failed;
};

static struct walk *walk_ctx; /* nftw has no user pointer; one walk at a time */

static int walk_cb(const char *fpath, const struct stat *sb, int type, struct FTW *ftw)
{
        const char *rel = fpath + walk_ctx->root_len;

        (void)type;
        (void)ftw;
        while (*rel == '/')
                rel++;
        if (*rel == '\0')
                return 0;
        json_t *e = em_upper_entry_from_stat(fpath, rel, sb, walk_ctx->err);
        if (e == NULL) {
                walk_ctx->failed = 1;
                return 1;
        }
        json_object_set_new(walk_ctx->now, rel, e);
        return 0;
}

static int walk_upper(const char *upper, json_t **now, em_error_t *err)
{
        static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
        struct walk w = {upper, strlen(upper), json_object(), err, 0};

        if (w.now == NULL)
                return em_error_set(err, ENOMEM, "walking %s", upper);
        pthread_mutex_lock(&lock);
        walk_ctx = &w;
        int r = nftw(upper, walk_cb, 64, FTW_PHYS | FTW_MOUNT);
        walk_ctx = NULL;
        pthread_mutex_unlock(&lock);
        if (r != 0 || w.failed) {
                json_decref(w.now);
                if (*err == NULL)
                        em_error_set(err, errno, "walking %s", upper);
                return -1;
        }
        *now = w.now;
        return 0;
}

static int send_batches(em_conn_t *c, uint16_t type, const char *key, json_t *items,
                        struct em_sync_stats *stats, em_error_t *err)
{
        size_t n = json_array_size(items);

        for (size_t off = 0; off < n; off += MAX_ENTRIES_PER_FRAME) {
                cleanup_json json_t *part = json_array();
                for (size_t i = off; i < n && i < off + MAX_ENTRIES_PER_FRAME; i++)
                        json_array_append(part, json_array_get(items, i));
                cleanup_json json_t *msg = json_pack("{s:O}", key, part);
                cleanup_free char *s = json_dumps(msg, JSON_COMPACT);
                if (s == NULL)
                        return em_error_set(err, ENOMEM, "encoding %s", key);
                stats->raw_bytes += strlen(s);
                if (em_conn_send(c, type, 0, 0, s, strlen(s), 1, err) < 0)
                        return -1;
        }
        return 0;
}

static int send_file_data(em_conn_t *c, const char *upper, const char *rel, int level,
                          struct em_sync_stats *stats, em_error_t *err)
{
        cleanup_free char *path = em_path_join(upper, rel);
        cleanup_free char *buf = malloc(EM_PROTO_CHUNK);
        cleanup_close int fd = path ? open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) : -1;
        struct stat st;

        if (fd < 0 || buf == NULL || fstat(fd, &st) < 0)
                return em_error_set(err, errno ? errno : ENOMEM, "reading %s", rel);
        cleanup_json json_t *hdr =
            json_pack("{s:s, s:I}", "path", rel, "size", (json_int_t)st.st_size);
        if (em_proto_send_json(c, EM_FRAME_FILE_DATA, hdr, err) < 0)
                return -1;
        uint64_t left = (uint64_t)st.st_size;
        do {
                size_t want = left < EM_PROTO_CHUNK ? (size_t)left : EM_PROTO_CHUNK;
                if (em_read_all(fd, buf, want, err) != (ssize_t)want)
                        return em_error_set(err, EIO, "%s changed size while being sent", rel);
                left -= want;
                if (em_conn_send(c, EM_FRAME_FILE_DATA, left ? 0 : EM_FRAME_F_LAST, 1, buf, want,
                                 level, err) < 0)
                        return -1;
                stats->raw_bytes += want;
        } while (left > 0);
        stats->files_sent++;
        return 0;
}

/* Fills deletes (paths gone or changed type) and changes (entries new or
 * changed), comparing `now` with the previous round. */
static int diff(json_t *prev, json_t *now, json_t *deletes, json_t *changes)
{
        const char *path;
        json_t *e;

        json_object_foreach(prev, path, e)
        {
                json_t *n = json_object_get(now, path);
                if (n == NULL || !em_upper_entry_same_type(e, n))
                        json_array_append_new(deletes, json_string(path));
        }
        json_object_foreach(now, path, e)
        {
                json_t *p = json_object_get(prev, path);
                if (p == NULL || !json_equal(p, e))
                        json_array_append(changes, e);
        }
        return 0;
}

int em_sync_send_upper(em_conn_t *c, struct em_sync_state *st, const char *upper_dir, int level,
                       struct em_sync_stats *stats, em_error_t *err)
{
        cleanup_json json_t *now = NULL, *deletes = json_array(), *changes = json_array();
        size_t i;
        json_t *e;

        if (deletes == NULL || changes == NULL || walk_upper(upper_dir, &now, err) < 0)
                return em_error_wrap(err, "scanning the writable layer");
        diff(st->upper->prev, now, deletes, changes);
        em_upper_entries_sort(changes);
        if (send_batches(c, EM_FRAME_FILE_DELETE, "paths", deletes, stats, err) < 0 ||
            send_batches(c, EM_FRAME_FILE_MANIFEST, "entries", changes, stats, err) < 0)
                return -1;
        json_array_foreach(changes, i, e)
        {
                if (em_upper_entry_is_file(e) &&
                    send_file_data(c, upper_dir, em_json_str(e, "path"), level, stats, err) < 0)
                        return em_error_wrap(err, "sending the writable layer");
        }
        stats->files_deleted += json_array_size(deletes);
        json_decref(st->upper->prev);
        st->upper->prev = steal_pointer(&now);
        return 0;
}

/* ---- target ---- */

struct em_upper_rx {
        int rootfd;
        json_t *pending; /* path -> entry of regular files awaiting data */
        json_t *dirs;    /* directory entries, their times set at the end */
};

int em_upper_rx_new(const char *upper_dir, struct em_upper_rx **out, em_error_t *err)
{
        struct em_upper_rx *rx = calloc(1, sizeof(*rx));

        if (rx == NULL)
                return em_error_set(err, ENOMEM, "upper receiver");
        *out = rx;
        rx->pending = json_object();
        rx->dirs = json_array();
        rx->rootfd = open(upper_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (rx->rootfd < 0)
                return em_error_set(err, errno, "opening %s", upper_dir);
        if (rx->pending == NULL || rx->dirs == NULL)
                return em_error_set(err, ENOMEM, "upper receiver");
        return 0;
}

void em_upper_rx_free(struct em_upper_rx **rx)
{
        if (*rx == NULL)
                return;
        em_cleanup_closep(&(*rx)->rootfd);
        json_decref((*rx)->pending);
        json_decref((*rx)->dirs);
        free(*rx);
        *rx = NULL;
}

static int rx_delete(struct em_upper_rx *rx, const json_t *msg, em_error_t *err)
{
        size_t i;
        json_t *p;

        json_array_foreach(json_object_get(msg, "paths"), i, p)
        {
                const char *base;
                if (!em_upper_path_ok(p))
                        return em_error_set(err, EPROTO, "FILE_DELETE: unsafe path");
                cleanup_close int pfd =
                    em_upper_open_parent(rx->rootfd, json_string_value(p), &base, err);
                if (pfd < 0) {
                        if (em_error_status(*err) != ENOENT)
                                return -1;
                        em_error_free(err); /* its parent went first */
                        continue;
                }
                if (em_rm_rf_at(pfd, base, err) < 0)
                        return -1;
                json_object_del(rx->pending, json_string_value(p));
        }
        return 0;
}

static int rx_manifest(struct em_upper_rx *rx, const json_t *msg, em_error_t *err)
{
        size_t i;
        json_t *e;

        json_array_foreach(json_object_get(msg, "entries"), i, e)
        {
                json_t *path = json_object_get(e, "path");
                if (!json_is_object(e) || !em_upper_path_ok(path))
                        return em_error_set(err, EPROTO, "FILE_MANIFEST: unsafe or missing path");
                if (em_upper_entry_is_file(e)) {
                        json_object_set(rx->pending, json_string_value(path), e);
                        continue;
                }
                if (em_upper_create(rx->rootfd, e, err) < 0)
                        return em_error_wrap(err, "applying the writable layer");
                if (strcmp(em_json_str(e, "type"), "d") == 0)
                        json_array_append(rx->dirs, e);
        }
        return 0;
}

static int rx_file_body(em_conn_t *c, int fd, uint64_t size, em_error_t *err)
{
        uint64_t got = 0;

        for (;;) {
                cleanup_frame struct em_frame f = {0};
                if (em_proto_recv(c, &f, err) < 0)
                        return -1;
                if (f.hdr.type != EM_FRAME_FILE_DATA || f.hdr.stream != 1 || f.length > size - got)
                        return em_error_set(err, EPROTO, "protocol error in file data");
                if (em_write_all(fd, f.payload, f.length, err) < 0)
                        return -1;
                got += f.length;
                if (f.hdr.flags & EM_FRAME_F_LAST)
                        break;
        }
        return got == size ? 0 : em_error_set(err, EPROTO, "file data truncated");
}

static int rx_file(struct em_upper_rx *rx, em_conn_t *c, const json_t *hdr, em_error_t *err)
{
        json_t *path = json_object_get(hdr, "path");
        json_t *e =
            em_upper_path_ok(path) ? json_object_get(rx->pending, json_string_value(path)) : NULL;
        long long size = em_json_int(hdr, "size", -1);
        const char *base;

        if (e == NULL || size < 0)
                return em_error_set(err, EPROTO, "FILE_DATA for an unannounced file");
        cleanup_close int pfd =
            em_upper_open_parent(rx->rootfd, json_string_value(path), &base, err);
        if (pfd < 0)
                return -1;
        struct stat st;
        if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISREG(st.st_mode) &&
            em_rm_rf_at(pfd, base, err) < 0)
                return -1;
        cleanup_close int fd =
            openat(pfd, base, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return em_error_set(err, errno, "creating %s", json_string_value(path));
        if (rx_file_body(c, fd, (uint64_t)size, err) < 0 ||
            em_upper_apply_meta(fd, e, false, err) < 0)
                return em_error_wrap(err, "receiving %s", json_string_value(path));
        json_object_del(rx->pending, json_string_value(path));
        return 0;
}

int em_upper_rx_frame(struct em_upper_rx *rx, em_conn_t *c, const struct em_frame *f,
                      em_error_t *err)
{
        cleanup_json json_t *msg = NULL;

        if (f->hdr.stream != 0 || em_json_parse((const char *)f->payload, f->length,
                                                em_frame_type_name(f->hdr.type), &msg, err) < 0)
                return em_error_set(err, EPROTO, "protocol error: bad %s",
                                    em_frame_type_name(f->hdr.type));
        switch (f->hdr.type) {
        case EM_FRAME_FILE_DELETE:
                return rx_delete(rx, msg, err);
        case EM_FRAME_FILE_MANIFEST:
                return rx_manifest(rx, msg, err);
        case EM_FRAME_FILE_DATA:
                return rx_file(rx, c, msg, err);
        default:
                return em_error_set(err, EPROTO, "protocol error: unexpected %s",
                                    em_frame_type_name(f->hdr.type));
        }
}

int em_upper_rx_finish(struct em_upper_rx *rx, em_error_t *err)
{
        if (json_object_size(rx->pending) != 0)
                return em_error_set(err, EPROTO, "%zu announced files never arrived",
                                    json_object_size(rx->pending));
        /* Deepest first, so a child's creation cannot touch a parent's time. */
        for (size_t i = json_array_size(rx->dirs); i-- > 0;) {
                if (em_upper_apply_times(rx->rootfd, json_array_get(rx->dirs, i), err) < 0) {
                        if (em_error_status(*err) != ENOENT)
                                return -1;
                        em_error_free(err); /* deleted in a later round */
                }
        }
        return 0;
}
