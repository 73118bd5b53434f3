/* Receiving end of the writable-layer sync: see source/upper_send.c for
 * what travels and in which order. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "delta/blocks.h"
#include "delta/upper.h"
#include "migrate/common/proto.h"
#include "migrate/target/upper_recv.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/log.h"

struct em_upper_rx {
        int root_fd;
        bool closed; /* the last closing manifest arrived after the last change */
};

int em_upper_rx_new(const char *upper_dir, struct em_upper_rx **out, em_error_t *err)
{
        struct em_upper_rx *rx = calloc(1, sizeof(*rx));

        if (rx == NULL)
                return em_error_set(err, ENOMEM, "upper receiver");
        rx->root_fd = -1;
        rx->closed = true;
        *out = rx;
        return em_upper_open_root(upper_dir, &rx->root_fd, err);
}

void em_upper_rx_free(struct em_upper_rx **rx)
{
        if (*rx == NULL)
                return;
        em_cleanup_closep(&(*rx)->root_fd);
        free(*rx);
        *rx = NULL;
}

static int parse_manifest(const struct em_frame *f, struct em_upper_manifest *m, em_error_t *err)
{
        if (f->hdr.stream != 0 && f->hdr.stream != EM_UPPER_STREAM_LIVE)
                return em_error_set(err, EPROTO, "protocol error: manifest on stream %u",
                                    f->hdr.stream);
        return em_upper_manifest_from_json((const char *)f->payload, f->length, m, err);
}

static int rx_delete(struct em_upper_rx *rx, const struct em_frame *f, em_error_t *err)
{
        cleanup_json json_t *msg = NULL;
        size_t i;
        json_t *p;

        if (em_json_parse((const char *)f->payload, f->length, "FILE_DELETE", &msg, err) < 0)
                return -1;
        json_array_foreach(json_object_get(msg, "paths"), i, p)
        {
                if (!json_is_string(p))
                        return em_error_set(err, EPROTO, "FILE_DELETE: path is not a string");
                if (em_upper_apply_delete(rx->root_fd, json_string_value(p), err) < 0)
                        return -1;
        }
        return 0;
}

static int rx_manifest(struct em_upper_rx *rx, const struct em_frame *f, em_error_t *err)
{
        cleanup_manifest struct em_upper_manifest m = {0};

        if (parse_manifest(f, &m, err) < 0)
                return -1;
        for (size_t i = 0; i < m.n; i++) {
                if (em_upper_apply_entry(rx->root_fd, &m.e[i], err) < 0)
                        return -1;
        }
        rx->closed = (f->hdr.flags & EM_FRAME_F_LAST) != 0;
        if (rx->closed)
                return em_upper_apply_dir_times(rx->root_fd, &m, err);
        return 0;
}

static int rx_content(struct em_upper_rx *rx, em_conn_t *c, const struct em_frame *f,
                      em_error_t *err)
{
        cleanup_manifest struct em_upper_manifest m = {0};
        em_upper_file_t *file = NULL;

        if (parse_manifest(f, &m, err) < 0)
                return -1;
        if (m.n != 1 || m.e[0].type != 'f')
                return em_error_set(err, EPROTO, "FILE_DATA must announce one regular file");
        if (em_upper_file_begin(rx->root_fd, &m.e[0], &file, err) < 0)
                return -1;
        for (;;) {
                cleanup_frame struct em_frame d = {0};
                if (em_proto_recv(c, &d, err) < 0 || d.hdr.type != EM_FRAME_FILE_DATA ||
                    d.hdr.stream != 1 || em_upper_file_write(file, d.payload, d.length, err) < 0) {
                        em_upper_file_abort(&file);
                        return *err ? -1 : em_error_set(err, EPROTO, "protocol error in file data");
                }
                if (d.hdr.flags & EM_FRAME_F_LAST)
                        break;
        }
        rx->closed = false;
        if (em_upper_file_commit(&file, err) == 0)
                return 0;
        if (f->hdr.stream != EM_UPPER_STREAM_LIVE || em_error_status(*err) != EILSEQ)
                return -1;
        /* Changed while being read on the running source: the next round
         * sends it again (see send_content). */
        em_log_debug("live round: %s", em_error_msg(*err));
        em_error_free(err);
        return 0;
}

/* The data frames of one FILE_BLOCKS, checked by em_blocks_rx. */
static int rx_block_frames(em_conn_t *c, em_upper_file_t *file, struct em_blocks_rx *br,
                           em_error_t *err)
{
        for (;;) {
                cleanup_frame struct em_frame d = {0};
                const uint8_t *data;
                uint64_t off;
                size_t len;
                int r;
                if (em_proto_recv(c, &d, err) < 0)
                        return -1;
                if (d.hdr.type != EM_FRAME_FILE_BLOCKS || d.hdr.stream != 1)
                        return em_error_set(err, EPROTO, "protocol error: %s in file blocks",
                                            em_frame_type_name(d.hdr.type));
                if ((r = em_blocks_rx_next(br, d.payload, d.length, &off, &data, &len, err)) < 0)
                        return -1;
                if ((r == 1) != ((d.hdr.flags & EM_FRAME_F_LAST) != 0))
                        return em_error_set(err, EPROTO,
                                            "protocol error: FILE_BLOCKS ends with its terminator");
                if (r == 1)
                        return 0;
                if (em_upper_patch_write(file, off, data, len, err) < 0)
                        return -1;
        }
}

/* A block patch: live rounds keep what arrived (the source records each
 * block it sent, so it knows what this copy holds even if the file changed
 * while it was read); the final round checks the whole file. */
static int rx_blocks(struct em_upper_rx *rx, em_conn_t *c, const struct em_frame *f,
                     em_error_t *err)
{
        cleanup_manifest struct em_upper_manifest m = {0};
        em_upper_file_t *file = NULL;
        struct em_blocks_rx br;
        uint64_t have;

        if (parse_manifest(f, &m, err) < 0)
                return -1;
        if (m.n != 1 || m.e[0].type != 'f' || m.e[0].hardlink)
                return em_error_set(err, EPROTO, "FILE_BLOCKS must announce one regular file");
        if (em_upper_patch_begin(rx->root_fd, &m.e[0], &file, &have, err) < 0)
                return -1;
        em_blocks_rx_init(&br, m.e[0].size, have);
        if (rx_block_frames(c, file, &br, err) < 0) {
                em_upper_file_abort(&file);
                return em_error_wrap(err, "%s", m.e[0].path);
        }
        rx->closed = false;
        return em_upper_patch_commit(&file, f->hdr.stream != EM_UPPER_STREAM_LIVE, err);
}

int em_upper_rx_frame(struct em_upper_rx *rx, em_conn_t *c, const struct em_frame *f,
                      em_error_t *err)
{
        switch (f->hdr.type) {
        case EM_FRAME_FILE_DELETE:
                rx->closed = false;
                return rx_delete(rx, f, err);
        case EM_FRAME_FILE_MANIFEST:
                return rx_manifest(rx, f, err);
        case EM_FRAME_FILE_DATA:
                return rx_content(rx, c, f, err);
        case EM_FRAME_FILE_BLOCKS:
                return rx_blocks(rx, c, f, err);
        default:
                return em_error_set(err, EPROTO, "protocol error: unexpected %s",
                                    em_frame_type_name(f->hdr.type));
        }
}

int em_upper_rx_finish(struct em_upper_rx *rx, em_error_t *err)
{
        if (!rx->closed)
                return em_error_set(err, EPROTO, "writable layer transfer incomplete");
        return 0;
}
