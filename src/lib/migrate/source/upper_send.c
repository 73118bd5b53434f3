/* The writable layer over a migration connection, on top of delta/upper.h.
 * Each call scans the overlay upper dir, diffs it against the previous
 * round's manifest and sends, in this order:
 *   FILE_DELETE    {"paths": [...]}                    removed entries
 *   FILE_MANIFEST  manifest of changed entries without new content
 *   FILE_DATA      one-entry manifest, then the bytes on stream 1 (LAST)
 *   FILE_BLOCKS    instead of FILE_DATA for a file of EM_BLOCK_MIN bytes
 *                  or more with one link: one-entry manifest, then on
 *                  stream 1 the blocks that differ from what the receiver
 *                  holds, and a terminator (LAST; format: delta/blocks.h)
 *   FILE_MANIFEST  flagged LAST: every directory, hardlinks and their
 *                  targets; the receiver then sets directory times.
 * Everything the receiver writes is confined to the staging dir by
 * delta/upper's openat2-based apply functions. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "delta/blocks.h"
#include "delta/pagefmt.h"
#include "delta/upper.h"
#include "migrate/common/proto.h"
#include "migrate/source/pagesync.h"
#include "migrate/source/upper_send.h"
#include "migrate/common/volume_sync.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/log.h"

#define DELETES_PER_FRAME 2000

struct em_upper_state {
        struct em_upper_manifest prev;
};

int em_upper_state_new(struct em_upper_state **out, em_error_t *err)
{
        *out = calloc(1, sizeof(**out));
        return *out ? 0 : em_error_set(err, ENOMEM, "upper sync state");
}

void em_upper_state_free(struct em_upper_state **st)
{
        if (*st == NULL)
                return;
        em_upper_manifest_free(&(*st)->prev);
        free(*st);
        *st = NULL;
}

/* Serializes the entries of m selected by keep[] (shallow: m keeps them). */
static int send_subset(em_conn_t *c, uint16_t type, uint16_t flags, uint32_t stream,
                       const struct em_upper_manifest *m, const bool *keep,
                       struct em_sync_stats *stats, em_error_t *err)
{
        struct em_upper_manifest view = {0, calloc(m->n + 1, sizeof(struct em_upper_entry))};
        cleanup_free char *json = NULL;
        size_t len = 0;

        if (view.e == NULL)
                return em_error_set(err, ENOMEM, "writable layer manifest");
        for (size_t i = 0; i < m->n; i++) {
                if (keep[i])
                        view.e[view.n++] = m->e[i];
        }
        int rc = (view.n == 0 && !(flags & EM_FRAME_F_LAST))
                     ? 0
                     : em_upper_manifest_to_json(&view, false, &json, &len, err);
        free(view.e);
        if (rc < 0 || json == NULL)
                return rc;
        stats->raw_bytes += len;
        return em_conn_send(c, type, flags, stream, json, len, 1, err);
}

static int send_deletes(em_conn_t *c, const struct em_upper_diff *d, struct em_sync_stats *stats,
                        em_error_t *err)
{
        for (size_t off = 0; off < d->ndeleted; off += DELETES_PER_FRAME) {
                cleanup_json json_t *paths = json_array();
                for (size_t i = off; i < d->ndeleted && i < off + DELETES_PER_FRAME; i++)
                        json_array_append_new(paths, json_string(d->deleted[i]));
                cleanup_json json_t *msg = json_pack("{s:O}", "paths", paths);
                if (em_proto_send_json(c, EM_FRAME_FILE_DELETE, msg, err) < 0)
                        return -1;
        }
        stats->files_deleted += d->ndeleted;
        return 0;
}

/* A live round may find a file gone between the scan and the read (a
 * service renaming a temp file into place): it is not sent, and its hash
 * is voided so that the next round sends it if it is back (the receiver
 * never had this content) and deletes it if not. A file with other links
 * (a closing manifest names it) and the frozen final round stay strict.
 * Returns 1 with *fd open, 0 for such a file, -1 on error. */
static int open_content(const char *upper, struct em_upper_entry *e, bool live, int *fd,
                        em_error_t *err)
{
        cleanup_free char *path = em_path_join(upper, e->path);

        *fd = path ? open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) : -1;
        if (*fd >= 0)
                return 1;
        if (path == NULL)
                return em_error_set(err, ENOMEM, "reading %s", e->path);
        if (errno != ENOENT || !live || e->ino != 0)
                return em_error_set(err, errno, "reading %s", e->path);
        memset(e->hash, '0', 32);
        e->blocks.n = 0; /* nor may the next round patch the receiver's copy */
        return 0;
}

/* While the container runs, a file may change between the scan and the
 * read. A live round then sends what it read, padded or cut to the size it
 * announced, on stream 2: the receiver drops a file that does not match its
 * hash, and the next round (the file's mtime changed) sends it again. The
 * final round runs frozen and is strict. */
static int send_content(em_conn_t *c, const char *upper, struct em_upper_manifest *m, size_t idx,
                        bool live, int level, struct em_sync_stats *stats, em_error_t *err)
{
        struct em_upper_entry *e = &m->e[idx];
        cleanup_free char *buf = malloc(EM_PROTO_CHUNK);
        cleanup_close int fd = -1;
        cleanup_free bool *one = calloc(m->n, sizeof(bool));
        int rc;

        if (buf == NULL || one == NULL)
                return em_error_set(err, ENOMEM, "reading %s", e->path);
        if ((rc = open_content(upper, e, live, &fd, err)) <= 0)
                return rc;
        one[idx] = true;
        if (send_subset(c, EM_FRAME_FILE_DATA, 0, live ? EM_UPPER_STREAM_LIVE : 0, m, one, stats,
                        err) < 0)
                return -1;
        uint64_t left = e->size;
        do {
                size_t want = left < EM_PROTO_CHUNK ? (size_t)left : EM_PROTO_CHUNK;
                ssize_t got = em_read_all(fd, buf, want, err);
                if (got < 0)
                        return -1;
                if ((size_t)got != want && !live)
                        return em_error_set(err, EIO, "%s changed while being sent", e->path);
                memset(buf + got, 0, want - (size_t)got);
                left -= want;
                if (em_conn_send(c, EM_FRAME_FILE_DATA, left ? 0 : EM_FRAME_F_LAST, 1, buf, want,
                                 level, err) < 0)
                        return -1;
                stats->raw_bytes += want;
        } while (left > 0);
        stats->files_sent++;
        return 0;
}

/* The receiver's copy a block delta may start from: old's entry for path
 * if it is a plain regular file with block hashes and no other entry links
 * to it (the receiver patches only a file with one link). */
static const struct em_upper_entry *block_base(const struct em_upper_manifest *old,
                                               const char *path)
{
        const struct em_upper_entry *b = em_upper_manifest_find(old, path);

        if (b == NULL || b->type != 'f' || b->hardlink || b->blocks.n == 0)
                return NULL;
        for (size_t i = 0; i < old->n; i++) {
                if (old->e[i].hardlink && strcmp(old->e[i].hardlink, path) == 0)
                        return NULL;
        }
        return b;
}

static bool block_same(const struct em_upper_entry *base, const struct em_upper_entry *e, size_t i)
{
        return base && i < base->blocks.n && memcmp(&base->blocks.h[i], &e->blocks.h[i], 16) == 0;
}

/* Reads block i of e at fd into buf (live: a file that shrank since the
 * scan reads as zeros past its end, as send_content pads). */
static int read_block(int fd, const struct em_upper_entry *e, size_t i, uint8_t *buf, bool live,
                      em_error_t *err)
{
        uint64_t off = (uint64_t)i * EM_BLOCK_SIZE;
        size_t want = em_block_len(e->size, off), got = 0;

        while (got < want) {
                ssize_t n = pread(fd, buf + got, want - got, (off_t)(off + got));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return em_error_set(err, errno, "reading %s", e->path);
                if (n == 0)
                        break;
                got += (size_t)n;
        }
        if (got != want && !live)
                return em_error_set(err, EIO, "%s changed while being sent", e->path);
        memset(buf + got, 0, want - got);
        return 0;
}

/* One FILE_BLOCKS data payload: the offset, then the block. */
static int send_block(em_conn_t *c, uint8_t *frame, uint64_t off, size_t len, bool last, int level,
                      em_error_t *err)
{
        em_le_put(frame, off, 8);
        return em_conn_send(c, EM_FRAME_FILE_BLOCKS, last ? EM_FRAME_F_LAST : 0, 1, frame,
                            EM_BLOCK_HDR + len, level, err);
}

/* A large file as the blocks that differ from the receiver's copy (all of
 * them without one). Each sent block's hash becomes what e records, so e
 * says what the receiver holds; if a live read saw other bytes than the
 * scan, the whole-file hash no longer does, and is voided so that the next
 * round sends the file again. */
static int send_blocks(em_conn_t *c, const char *upper, struct em_upper_manifest *m, size_t idx,
                       const struct em_upper_entry *base, bool live, int level,
                       struct em_sync_stats *stats, em_error_t *err)
{
        struct em_upper_entry *e = &m->e[idx];
        cleanup_free uint8_t *frame = malloc(EM_BLOCK_HDR + EM_BLOCK_SIZE);
        cleanup_close int fd = -1;
        cleanup_free bool *one = calloc(m->n, sizeof(bool));
        bool moved = false;
        int rc;

        if (frame == NULL || one == NULL)
                return em_error_set(err, ENOMEM, "reading %s", e->path);
        if ((rc = open_content(upper, e, live, &fd, err)) <= 0)
                return rc;
        one[idx] = true;
        if (send_subset(c, EM_FRAME_FILE_BLOCKS, 0, live ? EM_UPPER_STREAM_LIVE : 0, m, one, stats,
                        err) < 0)
                return -1;
        for (size_t i = 0; i < e->blocks.n; i++) {
                uint64_t off = (uint64_t)i * EM_BLOCK_SIZE;
                size_t len = em_block_len(e->size, off);
                em_phash_t h;
                if (block_same(base, e, i))
                        continue;
                if (read_block(fd, e, i, frame + EM_BLOCK_HDR, live, err) < 0 ||
                    send_block(c, frame, off, len, false, level, err) < 0)
                        return -1;
                em_block_hash(frame + EM_BLOCK_HDR, len, &h);
                moved |= memcmp(&h, &e->blocks.h[i], sizeof(h)) != 0;
                e->blocks.h[i] = h;
                stats->raw_bytes += len;
        }
        if (moved)
                memset(e->hash, '0', 32);
        stats->files_sent++;
        return send_block(c, frame, e->size, 0, true, 0, err);
}

/* Marks what goes into the closing manifest: dirs, hardlinks, link targets. */
static void mark_closing(const struct em_upper_manifest *m, bool *keep)
{
        for (size_t i = 0; i < m->n; i++) {
                if (m->e[i].type == 'd')
                        keep[i] = true;
                if (m->e[i].hardlink == NULL)
                        continue;
                keep[i] = true;
                for (size_t j = 0; j < i; j++) {
                        if (strcmp(m->e[j].path, m->e[i].hardlink) == 0)
                                keep[j] = true;
                }
        }
}

/* A file's new content: as blocks if it is large and has one link. */
static int send_file(em_conn_t *c, const char *upper, struct em_upper_manifest *m, size_t idx,
                     const struct em_upper_manifest *old, bool live, int level,
                     struct em_sync_stats *stats, em_error_t *err)
{
        const struct em_upper_entry *e = &m->e[idx];

        if (e->blocks.n == 0 || e->ino != 0)
                return send_content(c, upper, m, idx, live, level, stats, err);
        return send_blocks(c, upper, m, idx, block_base(old, e->path), live, level, stats, err);
}

static int send_changes(em_conn_t *c, const char *upper, struct em_upper_manifest *m,
                        const struct em_upper_manifest *old, const struct em_upper_diff *d,
                        bool live, int level, struct em_sync_stats *stats, em_error_t *err)
{
        cleanup_free bool *meta = calloc(m->n + 1, sizeof(bool));
        cleanup_free bool *closing = calloc(m->n + 1, sizeof(bool));

        if (meta == NULL || closing == NULL)
                return em_error_set(err, ENOMEM, "writable layer");
        for (size_t k = 0; k < d->nchanged; k++) {
                size_t i = d->changed[k];
                if (!d->content[k] && m->e[i].hardlink == NULL)
                        meta[i] = true;
        }
        if (send_subset(c, EM_FRAME_FILE_MANIFEST, 0, 0, m, meta, stats, err) < 0)
                return -1;
        for (size_t k = 0; k < d->nchanged; k++) {
                if (d->content[k] &&
                    send_file(c, upper, m, d->changed[k], old, live, level, stats, err) < 0)
                        return -1;
        }
        mark_closing(m, closing);
        return send_subset(c, EM_FRAME_FILE_MANIFEST, EM_FRAME_F_LAST, 0, m, closing, stats, err);
}

void em_upper_state_set_prev(struct em_upper_state *st, struct em_upper_manifest *m)
{
        em_upper_manifest_free(&st->prev);
        st->prev = *m;
        *m = (struct em_upper_manifest){0};
}

int em_upper_state_set_json(struct em_upper_state *st, const json_t *m, em_error_t *err)
{
        struct em_upper_manifest man = {0};
        cleanup_free char *buf = m ? json_dumps(m, JSON_COMPACT) : NULL;

        if (m == NULL)
                return 0;
        if (buf == NULL || em_upper_manifest_from_json(buf, strlen(buf), &man, err) < 0)
                return buf ? -1 : em_error_set(err, ENOMEM, "a manifest");
        em_upper_state_set_prev(st, &man);
        return 0;
}

int em_sync_send_upper(em_conn_t *c, struct em_sync_state *st, const char *upper_dir, bool live,
                       int level, struct em_sync_stats *stats, em_error_t *err)
{
        struct em_volume_tx *volumes = *em_sync_state_volumes(st);

        if (em_upper_send_tree(c, em_sync_state_upper(st), upper_dir, live, level, stats, err) < 0)
                return -1;
        return volumes ? em_volume_tx_send(volumes, c, live, level, stats, err) : 0;
}

int em_upper_send_tree(em_conn_t *c, struct em_upper_state *ust, const char *upper_dir, bool live,
                       int level, struct em_sync_stats *stats, em_error_t *err)
{
        struct em_upper_manifest now = {0};
        struct em_upper_diff d = {0};
        int rc;

        if (em_upper_scan(upper_dir, &now, err) < 0)
                return em_error_wrap(err, "scanning %s", upper_dir);
        rc = em_upper_diff(&ust->prev, &now, &d, err);
        if (rc == 0)
                rc = send_deletes(c, &d, stats, err);
        if (rc == 0)
                rc = send_changes(c, upper_dir, &now, &ust->prev, &d, live, level, stats, err);
        em_upper_diff_free(&d);
        if (rc < 0) {
                em_upper_manifest_free(&now);
                return em_error_wrap(err, "sending %s", upper_dir);
        }
        em_upper_state_set_prev(ust, &now);
        return 0;
}
