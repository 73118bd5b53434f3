#include "migrate/common/proto.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/digest.h"
#include "util/fsutil.h"
#include "util/json.h"

#define MAX_FILE_SIZE (64ull << 30)

int em_proto_send_json(em_conn_t *c, uint16_t type, const json_t *j, em_error_t *err)
{
        cleanup_free char *s = json_dumps(j, JSON_COMPACT);

        if (s == NULL)
                return em_error_set(err, ENOMEM, "encoding %s", em_frame_type_name(type));
        return em_conn_send_str(c, type, s, err);
}

static int peer_stopped(const struct em_frame *f, em_error_t *err)
{
        cleanup_json json_t *j = NULL;
        em_error_t perr = NULL;
        const char *reason = NULL;

        if (em_json_parse((const char *)f->payload, f->length, "abort", &j, &perr) == 0)
                reason = em_json_str(j, "reason");
        em_error_free(&perr);
        return em_error_set(err, ECONNABORTED, "peer %s: %s",
                            f->hdr.type == EM_FRAME_ABORT ? "aborted" : "failed",
                            reason ? reason : "no reason given");
}

int em_proto_frame_check(const struct em_frame *f, em_error_t *err)
{
        if (f->hdr.type == EM_FRAME_ABORT || f->hdr.type == EM_FRAME_ERROR)
                return peer_stopped(f, err);
        return 0;
}

int em_proto_recv(em_conn_t *c, struct em_frame *f, em_error_t *err)
{
        int r = em_conn_recv(c, f, err);

        if (r < 0)
                return -1;
        if (r == 0)
                return em_error_set(err, ECONNRESET, "peer closed the connection mid-migration");
        return em_proto_frame_check(f, err);
}

int em_proto_frame_json(const struct em_frame *f, uint16_t expect, json_t **out, em_error_t *err)
{
        if (em_proto_frame_check(f, err) < 0)
                return -1;
        if (f->hdr.type != expect)
                return em_error_set(err, EPROTO, "protocol error: expected %s, got %s",
                                    em_frame_type_name(expect), em_frame_type_name(f->hdr.type));
        if (em_json_parse((const char *)f->payload, f->length, em_frame_type_name(expect), out,
                          err) < 0)
                return -1;
        if (!json_is_object(*out)) {
                json_decref(*out);
                *out = NULL;
                return em_error_set(err, EPROTO, "%s is not a JSON object",
                                    em_frame_type_name(expect));
        }
        return 0;
}

int em_proto_recv_json(em_conn_t *c, uint16_t expect, json_t **out, em_error_t *err)
{
        cleanup_frame struct em_frame f = {0};

        if (em_proto_recv(c, &f, err) < 0)
                return em_error_wrap(err, "waiting for %s", em_frame_type_name(expect));
        return em_proto_frame_json(&f, expect, out, err);
}

void em_proto_send_abort(em_conn_t *c, const char *reason)
{
        cleanup_json json_t *j = json_pack("{s:s}", "reason", reason ? reason : "aborted");
        em_error_t e = NULL;

        if (j)
                em_proto_send_json(c, EM_FRAME_ABORT, j, &e);
        em_error_free(&e);
}

bool em_proto_name_ok(const char *name)
{
        size_t n = name ? strlen(name) : 0;

        return n > 0 && n < 256 && strchr(name, '/') == NULL && strcmp(name, ".") != 0 &&
               strcmp(name, "..") != 0;
}

static int send_chunks(em_conn_t *c, uint16_t type, int fd, uint64_t size, int level,
                       em_error_t *err)
{
        cleanup_free uint8_t *buf = malloc(EM_PROTO_CHUNK);
        uint64_t left = size;

        if (buf == NULL)
                return em_error_set(err, ENOMEM, "sending file");
        do {
                size_t want = left < EM_PROTO_CHUNK ? (size_t)left : EM_PROTO_CHUNK;
                ssize_t got = em_read_all(fd, buf, want, err);
                if (got < 0)
                        return -1;
                if ((size_t)got != want)
                        return em_error_set(err, EIO, "file shrank while being sent");
                left -= want;
                if (em_conn_send(c, type, left == 0 ? EM_FRAME_F_LAST : 0, 1, buf, want, level,
                                 err) < 0)
                        return -1;
        } while (left > 0);
        return 0;
}

int em_proto_send_file(em_conn_t *c, uint16_t type, const char *path, const char *name, int level,
                       uint64_t *raw_sent, em_error_t *err)
{
        cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
        char digest[EM_DIGEST_STR_LEN + 1];
        struct stat st;

        if (fd < 0 || fstat(fd, &st) < 0)
                return em_error_set(err, errno, "opening %s", path);
        if (em_sha256_fd(fd, digest, NULL, err) < 0 || lseek(fd, 0, SEEK_SET) < 0)
                return em_error_wrap(err, "hashing %s", path);
        cleanup_json json_t *hdr =
            json_pack("{s:s, s:I, s:s, s:i}", "file", name, "size", (json_int_t)st.st_size,
                      "digest", digest, "mode", (int)(st.st_mode & 07777));
        if (hdr == NULL || em_proto_send_json(c, type, hdr, err) < 0 ||
            send_chunks(c, type, fd, (uint64_t)st.st_size, level, err) < 0)
                return em_error_wrap(err, "sending %s", name);
        if (raw_sent)
                *raw_sent += (uint64_t)st.st_size;
        return 0;
}

static int recv_chunks(em_conn_t *c, uint16_t type, int fd, uint64_t size, em_sha256_t *h,
                       em_error_t *err)
{
        uint64_t got = 0;

        for (;;) {
                cleanup_frame struct em_frame f = {0};
                if (em_proto_recv(c, &f, err) < 0)
                        return -1;
                if (f.hdr.type != type || f.hdr.stream != 1)
                        return em_error_set(err, EPROTO, "protocol error: %s inside a file",
                                            em_frame_type_name(f.hdr.type));
                if (f.length > size - got)
                        return em_error_set(err, EPROTO, "file longer than announced");
                em_sha256_update(h, f.payload, f.length);
                if (em_write_all(fd, f.payload, f.length, err) < 0)
                        return -1;
                got += f.length;
                if (f.hdr.flags & EM_FRAME_F_LAST)
                        break;
        }
        if (got != size)
                return em_error_set(err, EPROTO, "file truncated: %llu of %llu bytes",
                                    (unsigned long long)got, (unsigned long long)size);
        return 0;
}

int em_proto_recv_file(em_conn_t *c, const json_t *hdr, uint16_t type, int dirfd, bool durable,
                       char *digest_out, em_error_t *err)
{
        const char *name = em_json_str(hdr, "file"), *want = em_json_str(hdr, "digest");
        long long size = em_json_int(hdr, "size", -1), mode = em_json_int(hdr, "mode", 0600);
        cleanup_sha256 em_sha256_t *h = em_sha256_new();
        char digest[EM_DIGEST_STR_LEN + 1];

        if (!em_proto_name_ok(name) || !em_digest_valid(want) || size < 0 ||
            (uint64_t)size > MAX_FILE_SIZE || h == NULL)
                return em_error_set(err, EPROTO, "bad file header from peer");
        cleanup_close int fd =
            openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                   (mode_t)(mode & 0777));
        if (fd < 0)
                return em_error_set(err, errno, "creating %s", name);
        if (recv_chunks(c, type, fd, (uint64_t)size, h, err) < 0)
                return em_error_wrap(err, "receiving %s", name);
        em_sha256_final(h, digest);
        if (strcmp(digest, want) != 0)
                return em_error_set(err, EILSEQ, "receiving %s: digest mismatch (%s, expected %s)",
                                    name, digest, want);
        if (durable && fsync(fd) < 0)
                return em_error_set(err, errno, "fsync %s", name);
        if (digest_out != NULL)
                memcpy(digest_out, digest, sizeof(digest));
        return 0;
}

int em_proto_hello(em_conn_t *c, const struct em_hello *h, const char *target, bool *ok,
                   char **reason, em_error_t *err)
{
        cleanup_frame struct em_frame f = {0};
        cleanup_free char *text = NULL;

        if (em_hello_build(h, &text, err) < 0)
                return em_error_wrap(err, "building HELLO");
        if (em_conn_send_str(c, EM_FRAME_HELLO, text, err) < 0 || em_proto_recv(c, &f, err) < 0 ||
            f.hdr.type != EM_FRAME_HELLO_ACK ||
            em_hello_ack_parse((const char *)f.payload, f.length, h->session, ok, reason, err) < 0)
                return em_error_wrap(err, "handshake with %s", target);
        return 0;
}

json_t *em_proto_image_plan(const struct em_image_info *im)
{
        json_t *blobs = json_array();
        json_t *plan = json_pack("{s:s, s:s, s:o}", "name", im->name, "manifest_digest",
                                 im->manifest_digest, "blobs", blobs);

        if (plan == NULL)
                return NULL;
        json_array_append_new(blobs, json_pack("{s:s}", "digest", im->manifest_digest));
        json_array_append_new(blobs, json_pack("{s:s}", "digest", im->config_digest));
        for (size_t i = 0; i < im->n_layers; i++)
                json_array_append_new(blobs, json_pack("{s:s, s:s}", "digest", im->layer_digests[i],
                                                       "diff_id", im->diff_ids[i]));
        return plan;
}
