/* The writable layer over a migration connection, on top of delta/upper.h.
 * Each call scans the overlay upper dir, diffs it against the previous
 * round's manifest and sends, in this order:
 *   FILE_DELETE    {"paths": [...]}                    removed entries
 *   FILE_MANIFEST  manifest of changed entries without new content
 *   FILE_DATA      one-entry manifest, then the bytes on stream 1 (LAST)
 *   FILE_MANIFEST  flagged LAST: every directory, hardlinks and their
 *                  targets; the receiver then sets directory times.
 * Everything the receiver writes is confined to the staging dir by
 * delta/upper's openat2-based apply functions. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

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
                     : em_upper_manifest_to_json(&view, &json, &len, err);
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

/* While the container runs, a file may change between the scan and the
 * read. A live round then sends what it read, padded or cut to the size it
 * announced, on stream 2: the receiver drops a file that does not match its
 * hash, and the next round (the file's mtime changed) sends it again. The
 * final round runs frozen and is strict. */
static int send_content(em_conn_t *c, const char *upper, const struct em_upper_manifest *m,
                        size_t idx, bool live, int level, struct em_sync_stats *stats,
                        em_error_t *err)
{
        const struct em_upper_entry *e = &m->e[idx];
        cleanup_free char *path = em_path_join(upper, e->path);
        cleanup_free char *buf = malloc(EM_PROTO_CHUNK);
        cleanup_close int fd = path ? open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) : -1;
        cleanup_free bool *one = calloc(m->n, sizeof(bool));

        if (fd < 0 || buf == NULL || one == NULL)
                return em_error_set(err, errno ? errno : ENOMEM, "reading %s", e->path);
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

static int send_changes(em_conn_t *c, const char *upper, const struct em_upper_manifest *m,
                        const struct em_upper_diff *d, bool live, int level,
                        struct em_sync_stats *stats, em_error_t *err)
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
                    send_content(c, upper, m, d->changed[k], live, level, stats, err) < 0)
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
                rc = send_changes(c, upper_dir, &now, &d, live, level, stats, err);
        em_upper_diff_free(&d);
        if (rc < 0) {
                em_upper_manifest_free(&now);
                return em_error_wrap(err, "sending %s", upper_dir);
        }
        em_upper_state_set_prev(ust, &now);
        return 0;
}
