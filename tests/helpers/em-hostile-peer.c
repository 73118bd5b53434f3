/* em-hostile-peer: a test client that plays a compromised peer edge. It holds
 * a valid certificate of the platform CA and speaks edgemig's protocol with
 * the library's own connection, frame and handshake code, but sends what a
 * hostile peer would: crafted plans, pages, manifests and sessions.
 *
 *   em-hostile-peer --connect ADDR:PORT --root DIR --mode NAME [OPTIONS]
 *
 * --root DIR is a state root of this side: its cached host features make the
 * HELLO acceptable, and --image names an image in its store, from which the
 * plan and the container spec are built. Each mode is one function in the
 * `modes` table below; `--help` lists them.
 *
 * It prints one JSON object on stdout: {"mode", "outcome", "error"?, ...}
 * plus what the mode observed. outcome "completed": every step went through;
 * "refused": the daemon refused or aborted (error quotes its reason).
 * Exit status: 0 completed, 3 refused, 1 the helper itself could not run
 * (bad options, no connection), 2 usage. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "checkpoint/criu_decode.h"
#include "checkpoint/criu_image.h"
#include "checkpoint/pbwire.h"
#include "delta/pages.h"
#include "platform/control.h"
#include "migrate/migrate.h"
#include "migrate/common/proto.h"
#include "migrate/common/session.h"
#include "store/store.h"
#include "transfer/conn.h"
#include "transfer/handshake.h"
#include "transfer/tls.h"
#include "util/cleanup.h"
#include "util/config.h"
#include "delta/pagelist.h"
#include "util/digest.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/log.h"

/* Page delta ops (docs/protocol.md, "Page delta stream"). */
#define OP_BEGIN       0x01
#define OP_REF         0x03
#define OP_DATA        0x04
#define OP_END         0x05
#define OP_PREFILL     0x06
#define OP_END_PREFILL 0x07

#define HP_MAX_ARGS 64

struct hp {
        const char *connect, *listen, *root, *mode, *container, *image, *ip, *session;
        const char *tls_ca, *tls_cert, *tls_key;
        bool insecure;
        const char *args[HP_MAX_ARGS]; /* --arg KEY=VALUE, mode-specific */
        size_t nargs;
        struct em_config cfg;
        em_tls_ctx_t *tls;
        bool connected; /* a failure after this is the daemon's answer */
        json_t *out;    /* printed on stdout */
};

struct hp_mode {
        const char *name;
        const char *help;
        int (*run)(struct hp *hp, em_error_t *err);
};

/* ---- building blocks for modes ------------------------------------------ */

/* The value of --arg KEY=VALUE, or fallback. */
static const char *hp_arg(const struct hp *hp, const char *key, const char *fallback)
{
        size_t kl = strlen(key);

        for (size_t i = 0; i < hp->nargs; i++)
                if (strncmp(hp->args[i], key, kl) == 0 && hp->args[i][kl] == '=')
                        return hp->args[i] + kl + 1;
        return fallback;
}

static long hp_arg_int(const struct hp *hp, const char *key, long fallback)
{
        const char *v = hp_arg(hp, key, NULL);

        return v ? strtol(v, NULL, 0) : fallback;
}

static void hp_set(struct hp *hp, const char *key, json_t *v)
{
        json_object_set_new(hp->out, key, v);
}

/* A TLS (or, with --insecure, plain TCP) connection to the daemon. */
static int hp_connect(struct hp *hp, em_conn_t **c, em_error_t *err)
{
        int rc;

        if (hp->tls != NULL)
                rc = em_tls_connect(hp->tls, hp->connect, 10000, c, NULL, err);
        else
                rc = em_tcp_connect(hp->connect, 10000, c, err);
        if (rc < 0)
                return em_error_wrap(err, "connecting to %s", hp->connect);
        em_conn_set_timeout(*c, 30000);
        hp->connected = true;
        return 0;
}

/* Playing a target: waits (30 s) for one connection on --listen and runs
 * the server side of the TLS handshake with our certificate. */
static int hp_serve(struct hp *hp, em_conn_t **c, em_error_t *err)
{
        cleanup_close int lfd = -1;
        int rc;

        if (hp->listen == NULL)
                return em_error_set(err, EINVAL, "mode %s needs --listen ADDR:PORT", hp->mode);
        if (em_tcp_listen(hp->listen, 1, &lfd, err) < 0)
                return -1;
        if (hp->tls != NULL)
                rc = em_tls_accept(hp->tls, lfd, 30000, c, NULL, err);
        else
                rc = em_tcp_accept(lfd, 30000, c, err);
        if (rc < 0)
                return em_error_wrap(err, "waiting on %s", hp->listen);
        em_conn_set_timeout(*c, 30000);
        hp->connected = true;
        return 0;
}

/* The session id: --session HEX (32 hex digits, shared by connections that
 * must collide), else random. */
static int hp_session_id(const struct hp *hp, uint8_t id[16], em_error_t *err)
{
        if (hp->session == NULL)
                return em_session_new(id, err);
        if (strlen(hp->session) != 32)
                return em_error_set(err, EINVAL, "--session takes 32 hex digits");
        for (int i = 0; i < 16; i++) {
                unsigned v;
                if (sscanf(hp->session + 2 * i, "%2x", &v) != 1)
                        return em_error_set(err, EINVAL, "--session takes 32 hex digits");
                id[i] = (uint8_t)v;
        }
        return 0;
}

/* Sends HELLO for (container, mode) and reads HELLO_ACK. A refusal is an
 * error quoting the daemon's reason; on success the session is bound. */
static int hp_hello(struct hp *hp, em_conn_t *c, const char *mode, const uint8_t sid[16],
                    em_error_t *err)
{
        cleanup_hello struct em_hello h = {0};
        cleanup_frame struct em_frame f = {0};
        cleanup_free char *hello = NULL, *reason = NULL;
        bool ok = false;

        if (em_session_local_hello(&hp->cfg, &h, err) < 0)
                return -1;
        memcpy(h.session, sid, 16);
        h.container = strdup(hp->container);
        h.mode = strdup(mode);
        if (h.container == NULL || h.mode == NULL || em_hello_build(&h, &hello, err) < 0)
                return em_error_wrap(err, "building HELLO");
        if (em_conn_send_str(c, EM_FRAME_HELLO, hello, err) < 0 || em_proto_recv(c, &f, err) < 0)
                return -1;
        if (f.hdr.type != EM_FRAME_HELLO_ACK ||
            em_hello_ack_parse((const char *)f.payload, f.length, sid, &ok, &reason, err) < 0)
                return em_error_wrap(err, "HELLO_ACK");
        hp_set(hp, "hello", json_string(ok ? "accepted" : "refused"));
        if (!ok)
                return em_error_set(err, EPERM, "HELLO refused: %s", reason ? reason : "?");
        em_conn_set_session(c, em_frame_session_tag(sid));
        return 0;
}

/* Connects and opens a session in the given mode. */
static int hp_open(struct hp *hp, const char *mode, em_conn_t **c, em_error_t *err)
{
        uint8_t sid[16];

        if (hp_session_id(hp, sid, err) < 0 || hp_connect(hp, c, err) < 0)
                return -1;
        return hp_hello(hp, *c, mode, sid, err);
}

static json_t *image_blobs(const struct em_image_info *im)
{
        json_t *blobs = json_array();

        json_array_append_new(blobs, json_pack("{s:s}", "digest", im->manifest_digest));
        json_array_append_new(blobs, json_pack("{s:s}", "digest", im->config_digest));
        for (size_t i = 0; i < im->n_layers; i++)
                json_array_append_new(blobs, json_pack("{s:s, s:s}", "digest", im->layer_digests[i],
                                                       "diff_id", im->diff_ids[i]));
        return blobs;
}

/* The plan a real source would send for --image: spec and image, the image
 * named `name` (default: its own name). */
static int hp_plan_json(struct hp *hp, const char *name, json_t **plan, em_error_t *err)
{
        cleanup_store struct em_store *st = NULL;
        cleanup_image_info struct em_image_info *im = NULL;

        if (hp->image == NULL)
                return em_error_set(err, EINVAL, "mode %s needs --image NAME", hp->mode);
        if (em_store_open(hp->cfg.root, &st, err) < 0 ||
            em_store_image_get(st, hp->image, &im, err) < 0)
                return em_error_wrap(err, "image %s in %s", hp->image, hp->cfg.root);
        json_t *ids = json_array();
        for (size_t i = 0; ids != NULL && i < im->n_layers; i++)
                json_array_append_new(ids, json_string(im->diff_ids[i]));
        json_t *spec = json_pack("{s:s, s:s, s:s, s:o, s:O}", "name", hp->container, "image",
                                 name ? name : im->name, "image_digest", im->manifest_digest,
                                 "diff_ids", ids, "image_config", im->config);
        if (spec != NULL && hp->ip != NULL)
                json_object_set_new(spec, "ip", json_string(hp->ip));
        *plan = json_pack("{s:o, s:{s:s, s:s, s:o}}", "spec", spec, "image", "name",
                          name ? name : im->name, "manifest_digest", im->manifest_digest, "blobs",
                          image_blobs(im));
        return *plan ? 0 : em_error_set(err, ENOMEM, "plan");
}

/* Sends the plan and reads the answer: the missing blobs and the page cache's
 * hashes (counted into *nhashes; kept in *hashes if not NULL). */
static int hp_plan(struct hp *hp, em_conn_t *c, json_t *plan, json_t **ack, uint64_t *nhashes,
                   em_error_t *err)
{
        *nhashes = 0;
        if (em_proto_send_json(c, EM_FRAME_LAYERS_HAVE, plan, err) < 0 ||
            em_proto_recv_json(c, EM_FRAME_LAYERS_HAVE, ack, err) < 0)
                return -1;
        for (;;) {
                cleanup_frame struct em_frame f = {0};
                if (em_proto_recv(c, &f, err) < 0)
                        return -1;
                if (f.hdr.type != EM_FRAME_PAGES_HASHES || f.length % 16 != 0)
                        return em_error_set(err, EPROTO, "expected PAGES_HASHES");
                *nhashes += f.length / 16;
                if (f.hdr.flags & EM_FRAME_F_LAST)
                        break;
        }
        hp_set(hp, "missing", json_incref(json_object_get(*ack, "missing")));
        hp_set(hp, "hashes", json_integer((json_int_t)*nhashes));
        return 0;
}

/* ROUND_END with payload; the daemon's echo proves it applied everything
 * sent before. */
static int hp_round_trip(em_conn_t *c, const char *payload, em_error_t *err)
{
        cleanup_frame struct em_frame f = {0};

        if (em_conn_send_str(c, EM_FRAME_ROUND_END, payload, err) < 0 ||
            em_proto_recv(c, &f, err) < 0)
                return -1;
        if (f.hdr.type != EM_FRAME_ROUND_END)
                return em_error_set(err, EPROTO, "expected the ROUND_END echo, got %s",
                                    em_frame_type_name(f.hdr.type));
        return 0;
}

/* Connect, HELLO, plan (built from --image, named --arg name=...), layers
 * done: the start every session-level attack shares. */
static int hp_start(struct hp *hp, const char *mode, em_conn_t **c, em_error_t *err)
{
        cleanup_json json_t *plan = NULL, *ack = NULL;
        uint64_t n;

        if (hp_plan_json(hp, hp_arg(hp, "name", NULL), &plan, err) < 0 ||
            hp_open(hp, mode, c, err) < 0 || hp_plan(hp, *c, plan, &ack, &n, err) < 0)
                return -1;
        if (json_array_size(json_object_get(ack, "missing")) > 0)
                return em_error_set(err, ENOENT, "the target lacks blobs of %s", hp->image);
        return hp_round_trip(*c, "{\"layers_done\":true}", err);
}

/* Page i of a seeded pattern: distinct, never zero. */
static void hp_page(uint64_t seed, uint64_t i, uint8_t page[EM_PAGE_SIZE])
{
        uint64_t x = seed * 0x9e3779b97f4a7c15ull + i + 1;

        for (size_t k = 0; k < EM_PAGE_SIZE; k += 8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                memcpy(page + k, &x, 8);
        }
}

/* A PAGES_DATA payload buffer. */
struct hp_buf {
        uint8_t *p;
        size_t len, cap;
};

static int hp_put(struct hp_buf *b, const void *data, size_t len)
{
        if (b->len + len > b->cap) {
                size_t cap = (b->len + len) * 2;
                uint8_t *p = realloc(b->p, cap);
                if (p == NULL)
                        return -1;
                b->p = p;
                b->cap = cap;
        }
        memcpy(b->p + b->len, data, len);
        b->len += len;
        return 0;
}

static int hp_put_op(struct hp_buf *b, uint8_t op, const void *arg, size_t len)
{
        return hp_put(b, &op, 1) < 0 || (len > 0 && hp_put(b, arg, len) < 0) ? -1 : 0;
}

static int hp_send_pages(em_conn_t *c, struct hp_buf *b, em_error_t *err)
{
        int rc = em_conn_send(c, EM_FRAME_PAGES_DATA, 0, 2, b->p, b->len, 0, err);

        b->len = 0;
        return rc;
}

/* Runs the session's end as a prepare does: DONE, and its acknowledgement
 * carries the page cache's state. */
static int hp_prepare_done(struct hp *hp, em_conn_t *c, em_error_t *err)
{
        cleanup_json json_t *ack = NULL;

        if (em_conn_send_str(c, EM_FRAME_DONE, "{}", err) < 0 ||
            em_proto_recv_json(c, EM_FRAME_DONE, &ack, err) < 0)
                return -1;
        hp_set(hp, "cache_pages", json_integer(em_json_int(ack, "cache_pages", -1)));
        return 0;
}

/* ---- modes --------------------------------------------------------------- */

/* HELLO and plan only (the plan's spec takes --ip, its image name --arg
 * name=...): what the daemon answers, then ABORT. */
static int mode_plan(struct hp *hp, em_error_t *err)
{
        cleanup_conn em_conn_t *c = NULL;
        cleanup_json json_t *plan = NULL, *ack = NULL;
        uint64_t n;

        if (hp_plan_json(hp, hp_arg(hp, "name", NULL), &plan, err) < 0 ||
            hp_open(hp, "precopy", &c, err) < 0 || hp_plan(hp, c, plan, &ack, &n, err) < 0)
                return -1;
        em_proto_send_abort(c, "em-hostile-peer: plan only");
        return 0;
}

/* A prepare session that leaves --arg pages=N (default 64) pages of the
 * pattern --arg seed=S (default 1) in the daemon's page cache for
 * --container. */
static int mode_cache_fill(struct hp *hp, em_error_t *err)
{
        cleanup_conn em_conn_t *c = NULL;
        struct hp_buf b = {0};
        uint8_t page[EM_PAGE_SIZE];
        long n = hp_arg_int(hp, "pages", 64), seed = hp_arg_int(hp, "seed", 1);
        int rc = -1;

        if (hp_start(hp, "prepare", &c, err) < 0)
                return -1;
        if (hp_put_op(&b, OP_PREFILL, NULL, 0) < 0)
                goto oom;
        for (long i = 0; i < n; i++) {
                hp_page((uint64_t)seed, (uint64_t)i, page);
                if (hp_put_op(&b, OP_DATA, page, sizeof(page)) < 0)
                        goto oom;
                if (b.len >= (1u << 20) - EM_PAGE_SIZE - 8 && hp_send_pages(c, &b, err) < 0)
                        goto out;
        }
        if (hp_put_op(&b, OP_END_PREFILL, NULL, 0) < 0)
                goto oom;
        rc = hp_send_pages(c, &b, err) < 0 || hp_round_trip(c, "{\"round\":1}", err) < 0 ||
                     hp_prepare_done(hp, c, err) < 0
                 ? -1
                 : 0;
        goto out;
oom:
        rc = em_error_set(err, ENOMEM, "page delta");
out:
        free(b.p);
        return rc;
}

/* Probes --container's page cache as another tenant would: how many hashes
 * the plan's answer lists ("hashes"), and whether a REF to page 0 of the
 * pattern --arg seed=S (default 1) rebuilds an image file ("ref_accepted"),
 * which would hand that page's content to a container of ours. */
static int mode_cache_probe(struct hp *hp, em_error_t *err)
{
        cleanup_conn em_conn_t *c = NULL;
        struct hp_buf b = {0};
        uint8_t page[EM_PAGE_SIZE], begin[2 + 11 + 8];
        char digest[EM_DIGEST_STR_LEN + 1];
        em_phash_t h;
        uint64_t one = 1;

        hp_set(hp, "ref_accepted", json_false());
        if (hp_start(hp, "precopy", &c, err) < 0)
                return -1;
        hp_page((uint64_t)hp_arg_int(hp, "seed", 1), 0, page);
        em_page_hash(page, &h);
        /* END's digest of a file of that one page (delta/pagelist.h), so
         * that only the REF itself can fail. */
        em_sha256_buf(h.b, sizeof(h.b), digest);
        memcpy(digest, EM_PAGELIST_PREFIX, strlen(EM_PAGELIST_PREFIX));
        begin[0] = 11;
        begin[1] = 0;
        memcpy(begin + 2, "pages-1.img", 11);
        memcpy(begin + 13, &one, 8); /* little-endian on the machines we test on */
        int rc = hp_put_op(&b, OP_BEGIN, begin, sizeof(begin)) < 0 ||
                         hp_put_op(&b, OP_REF, h.b, sizeof(h.b)) < 0 ||
                         hp_put_op(&b, OP_END, digest, EM_DIGEST_STR_LEN) < 0
                     ? em_error_set(err, ENOMEM, "page delta")
                     : 0;
        if (rc == 0)
                rc = hp_send_pages(c, &b, err) < 0 || hp_round_trip(c, "{\"round\":1}", err) < 0
                         ? -1
                         : 0;
        free(b.p);
        if (rc < 0)
                return -1;
        hp_set(hp, "ref_accepted", json_true());
        em_proto_send_abort(c, "em-hostile-peer: probe done");
        return 0;
}

/* Registers --image under the name --arg name=... (e.g. a tag the target
 * uses for another image): plan, layers done, then ABORT. */
static int mode_tag_overwrite(struct hp *hp, em_error_t *err)
{
        cleanup_conn em_conn_t *c = NULL;

        if (hp_arg(hp, "name", NULL) == NULL)
                return em_error_set(err, EINVAL, "mode tag-overwrite needs --arg name=TAG");
        if (hp_start(hp, "precopy", &c, err) < 0)
                return -1;
        em_proto_send_abort(c, "em-hostile-peer: tag sent");
        return 0;
}

/* A writable-layer round whose closing manifest is --arg manifest=JSON
 * (delta/upper.h's format): "applied" says whether the daemon took it. */
static int mode_upper(struct hp *hp, em_error_t *err)
{
        cleanup_conn em_conn_t *c = NULL;
        const char *m = hp_arg(hp, "manifest", NULL);

        hp_set(hp, "applied", json_false());
        if (m == NULL)
                return em_error_set(err, EINVAL, "mode upper needs --arg manifest=JSON");
        if (hp_start(hp, "precopy", &c, err) < 0 ||
            em_conn_send(c, EM_FRAME_FILE_MANIFEST, EM_FRAME_F_LAST, 0, m, strlen(m), 0, err) < 0 ||
            hp_round_trip(c, "{\"round\":1}", err) < 0)
                return -1;
        hp_set(hp, "applied", json_true());
        em_proto_send_abort(c, "em-hostile-peer: manifest applied");
        return 0;
}

/* Opens a session and goes quiet for --arg seconds=N (default 5) between
 * frames, then asks for a round trip: "alive" says whether the session
 * still answered. */
static int mode_stall(struct hp *hp, em_error_t *err)
{
        cleanup_conn em_conn_t *c = NULL;

        hp_set(hp, "alive", json_false());
        if (hp_start(hp, "precopy", &c, err) < 0)
                return -1;
        sleep((unsigned)hp_arg_int(hp, "seconds", 5));
        if (hp_round_trip(c, "{\"round\":1}", err) < 0)
                return -1;
        hp_set(hp, "alive", json_true());
        em_proto_send_abort(c, "em-hostile-peer: stall done");
        return 0;
}

/* As a target (--listen): accepts a source's HELLO and plan, then claims to
 * lack the blob --arg blob=DIGEST (say, of another tenant's image on the
 * source). "blob_sent" names what the source then sent, if anything. */
static int mode_target_blob(struct hp *hp, em_error_t *err)
{
        cleanup_conn em_conn_t *c = NULL;
        cleanup_frame struct em_frame f = {0}, g = {0};
        cleanup_hello struct em_hello h = {0};
        cleanup_json json_t *plan = NULL, *hdr = NULL;
        cleanup_free char *ack = NULL;
        const char *blob = hp_arg(hp, "blob", NULL);

        hp_set(hp, "blob_sent", json_null());
        if (blob == NULL)
                return em_error_set(err, EINVAL, "mode target-blob needs --arg blob=DIGEST");
        if (hp_serve(hp, &c, err) < 0 || em_proto_recv(c, &f, err) < 0 ||
            f.hdr.type != EM_FRAME_HELLO ||
            em_hello_parse((char *)f.payload, f.length, &h, err) < 0 ||
            em_hello_ack_build(true, NULL, h.session, &ack, err) < 0 ||
            em_conn_send_str(c, EM_FRAME_HELLO_ACK, ack, err) < 0)
                return em_error_wrap(err, "HELLO");
        em_conn_set_session(c, em_frame_session_tag(h.session));
        cleanup_json json_t *answer = json_pack("{s:[s], s:i}", "missing", blob, "hashes_from", 0);
        if (em_proto_recv_json(c, EM_FRAME_LAYERS_HAVE, &plan, err) < 0 ||
            em_proto_send_json(c, EM_FRAME_LAYERS_HAVE, answer, err) < 0 ||
            em_conn_send(c, EM_FRAME_PAGES_HASHES, EM_FRAME_F_LAST, 0, NULL, 0, 0, err) < 0 ||
            em_proto_recv(c, &g, err) < 0)
                return -1;
        if (g.hdr.type == EM_FRAME_LAYER_BLOB &&
            em_json_parse((char *)g.payload, g.length, "blob header", &hdr, err) == 0)
                hp_set(hp, "blob_sent", json_incref(json_object_get(hdr, "file")));
        em_proto_send_abort(c, "em-hostile-peer: blob request done");
        return 0;
}

/* ---- checkpoint: edgemig's own source engine, lying in its CRIU images ---- */

#define CAP_SYS_ADMIN_BIT 21

struct tamper {
        enum { T_CAPS, T_UID, T_HOST_MNTNS } kind;
        uint32_t uid;
        uint32_t host_mnt; /* the inventory's root mnt_ns_id (T_HOST_MNTNS) */
        int rewritten;
};

struct out {
        uint8_t *b;
        size_t n;
};

static void put_raw(struct out *o, const uint8_t *p, size_t n)
{
        memcpy(o->b + o->n, p, n);
        o->n += n;
}

static void put_varint(struct out *o, uint64_t v)
{
        o->n += em_pb_put_varint(o->b + o->n, v);
}

/* creds_entry: the first word (bits 0..31) of cap_prm/eff/bnd, or the ids;
 * task_kobj_ids_entry: mnt_ns_id (9) */
static bool edit_field(const struct tamper *t, uint32_t num, int occurrence, uint64_t *v)
{
        switch (t->kind) {
        case T_CAPS:
                if ((num == 10 || num == 11 || num == 12) && occurrence == 0) {
                        *v |= 1u << CAP_SYS_ADMIN_BIT;
                        return true;
                }
                return false;
        case T_UID:
                if (num == 1 || num == 3 || num == 5 || num == 7) {
                        *v = t->uid;
                        return true;
                }
                return false;
        default:
                if (num == 9) {
                        *v = t->host_mnt;
                        return true;
                }
                return false;
        }
}

/* Copies message in[0..n) to o, descending into the LEN fields named by
 * path (core_entry 5 -> thread_core 10 -> creds) and editing the message
 * at its end.
 * o->b has room for n + 64 bytes per level. */
static int rewrite(const struct tamper *t, const uint8_t *in, size_t n, const uint32_t *path,
                   size_t depth, struct out *o)
{
        struct em_pb_iter it;
        struct em_pb_field f;
        int occ[64] = {0}, r;
        const uint8_t *start = in;

        em_pb_iter_init(&it, in, n);
        while ((r = em_pb_next(&it, &f)) > 0) {
                uint64_t v = f.v;
                if (depth > 0 && f.wt == EM_PB_LEN && f.num == path[0]) {
                        struct out sub = {malloc(f.len + 64 * depth), 0};
                        if (sub.b == NULL || rewrite(t, f.p, f.len, path + 1, depth - 1, &sub) < 0)
                                return free(sub.b), -1;
                        put_varint(o, (uint64_t)f.num << 3 | EM_PB_LEN);
                        put_varint(o, sub.n);
                        put_raw(o, sub.b, sub.n);
                        free(sub.b);
                } else if (depth == 0 && f.wt == EM_PB_VARINT && f.num < 64 &&
                           edit_field(t, f.num, occ[f.num]++, &v)) {
                        put_varint(o, (uint64_t)f.num << 3);
                        put_varint(o, v);
                } else {
                        put_raw(o, start, (size_t)(it.p - start));
                }
                start = it.p;
        }
        return r;
}

/* Rewrites the first record of an image file, at msg_path (depth deep). */
static int tamper_file(const struct tamper *t, const char *path, const uint32_t *msg_path,
                       size_t depth, em_error_t *err)
{
        cleanup_free char *raw = NULL;
        size_t len = 0;

        if (em_read_file(path, 16u << 20, &raw, &len, err) < 0)
                return -1;
        if (len < 12)
                return em_error_set(err, EINVAL, "%s: too short", path);
        uint32_t rlen;
        memcpy(&rlen, raw + 8, 4);
        if (rlen > len - 12)
                return em_error_set(err, EINVAL, "%s: bad record", path);
        cleanup_free uint8_t *buf = malloc(len + 256);
        struct out o = {buf + 12, 0};
        if (buf == NULL || rewrite(t, (uint8_t *)raw + 12, rlen, msg_path, depth, &o) < 0)
                return em_error_set(err, EINVAL, "%s: cannot re-encode", path);
        memcpy(buf, raw, 8);
        uint32_t nl = (uint32_t)o.n;
        memcpy(buf + 8, &nl, 4);
        memcpy(buf + 12 + o.n, raw + 12 + rlen, len - 12 - rlen);
        return em_write_file_atomic(path, buf, 12 + o.n + (len - 12 - rlen), 0644, err);
}

/* The host's mount namespace as the images name it: inventory root_ids. */
static int host_mnt_id(const char *dir, uint32_t *out, em_error_t *err)
{
        cleanup_close int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        cleanup_criu_img struct em_criu_img img = {0};
        struct em_ck_inventory inv;
        const uint8_t *rec;
        size_t len;

        if (em_criu_img_open(dfd, "inventory.img", EM_CRIU_MAGIC_INVENTORY, &img, err) < 0 ||
            em_criu_img_next(&img, &rec, &len, err) <= 0 ||
            em_ck_decode_inventory(img.name, rec, len, &inv, err) < 0)
                return -1;
        *out = inv.root_ids.id[EM_CK_NS_MNT];
        return 0;
}

static int images_hook(const char *dir, void *ud, em_error_t *err)
{
        static const uint32_t creds_path[] = {5, 10};
        struct tamper *t = ud;
        const char *prefix = t->kind == T_HOST_MNTNS ? "ids-" : "core-";
        cleanup_dir DIR *d = opendir(dir);
        struct dirent *de;

        if (d == NULL)
                return em_error_set(err, errno, "opening %s", dir);
        if (t->kind == T_HOST_MNTNS && host_mnt_id(dir, &t->host_mnt, err) < 0)
                return -1;
        while ((de = readdir(d)) != NULL) {
                if (strncmp(de->d_name, prefix, strlen(prefix)) != 0)
                        continue;
                cleanup_free char *p = em_path_join(dir, de->d_name);
                if (tamper_file(t, p, creds_path, t->kind == T_HOST_MNTNS ? 0 : 2, err) < 0)
                        return -1;
                t->rewritten++;
        }
        return 0;
}

static int parse_tamper(const char *s, struct tamper *t)
{
        char *end;

        if (s != NULL && strcmp(s, "cap-sys-admin") == 0) {
                t->kind = T_CAPS;
                return 0;
        }
        if (s != NULL && strcmp(s, "host-mntns") == 0) {
                t->kind = T_HOST_MNTNS;
                return 0;
        }
        if (s == NULL || strncmp(s, "uid=", 4) != 0)
                return -1;
        errno = 0;
        unsigned long v = strtoul(s + 4, &end, 10);
        if (errno != 0 || *end != 0 || v > UINT32_MAX)
                return -1;
        t->kind = T_UID;
        t->uid = (uint32_t)v;
        return 0;
}

/* Migrates the running container --container of --root to --connect with
 * the real source engine (as `edgemig migrate` does), rewriting its core-*.img
 * or ids-*.img after the dump: the target gets images whose digests match. */
static int mode_checkpoint(struct hp *hp, em_error_t *err)
{
        struct tamper t = {0};
        struct em_migrate_opts o;
        cleanup_json json_t *report = NULL;

        if (parse_tamper(hp_arg(hp, "tamper", NULL), &t) < 0)
                return em_error_set(err, EINVAL, "--arg tamper=cap-sys-admin|uid=N|host-mntns");
        em_migrate_opts_init(&o);
        o.target = hp->connect;
        o.tls = hp->tls;
        o.route_hook = getenv("EDGEMIG_ROUTE_HOOK");
        o.images_hook = images_hook;
        o.images_hook_ud = &t;
        hp->connected = true; /* a failure from here on is the target's answer */
        int rc = em_migrate_outgoing(&hp->cfg, hp->container, &o, &report, err);
        hp_set(hp, "tampered", json_integer(t.rewritten));
        return rc;
}

/* A plain TCP listener on 127.0.0.1 (a page server of ours); *port. */
static int hp_listen(int *port, em_error_t *err)
{
        struct sockaddr_in sa = {.sin_family = AF_INET};
        socklen_t len = sizeof(sa);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0 ||
            getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
                if (fd >= 0)
                        close(fd);
                return em_error_set(err, errno, "listening on 127.0.0.1");
        }
        *port = ntohs(sa.sin_port);
        return fd;
}

/* One image file of junk, as a real source sends its CRIU images. */
static int hp_send_junk_image(em_conn_t *c, char digest[EM_DIGEST_STR_LEN + 1], em_error_t *err)
{
        char path[] = "/tmp/em-hostile-img-XXXXXX";
        static const char junk[] = "not a CRIU image";
        uint64_t raw = 0;
        int fd = mkstemp(path), rc;

        if (fd < 0 || write(fd, junk, sizeof(junk)) != (ssize_t)sizeof(junk)) {
                if (fd >= 0)
                        close(fd);
                return em_error_set(err, errno, "temporary image file");
        }
        close(fd);
        em_sha256_buf(junk, sizeof(junk), digest);
        rc = em_proto_send_file(c, EM_FRAME_IMAGE_FILE, path, "inventory.img", 0, &raw, err);
        unlink(path);
        return rc;
}

/* A post-copy FINAL that names a page server of ours in clear, which is
 * what a source before the relay sent: a mutual-TLS daemon must refuse it,
 * and its CRIU must never connect ("connected" says whether it did within
 * a second). */
static int mode_lazy_plain(struct hp *hp, em_error_t *err)
{
        cleanup_conn em_conn_t *c = NULL;
        cleanup_json json_t *final = NULL, *ok = NULL;
        char digest[EM_DIGEST_STR_LEN + 1];
        int port = 0, rc;
        cleanup_close int l = hp_listen(&port, err);

        if (l < 0)
                return -1;
        hp_set(hp, "connected", json_false());
        if (hp_start(hp, "postcopy", &c, err) < 0 || hp_send_junk_image(c, digest, err) < 0)
                return -1;
        final = json_pack("{s:{s:s}, s:{s:s, s:i}}", "files", "inventory.img", digest, "lazy",
                          "address", "127.0.0.1", "port", port);
        if (final == NULL)
                return em_error_set(err, ENOMEM, "FINAL");
        rc = em_proto_send_json(c, EM_FRAME_FINAL, final, err) < 0 ||
                     em_proto_recv_json(c, EM_FRAME_RESTORE_OK, &ok, err) < 0
                 ? -1
                 : 0;
        struct pollfd p = {.fd = l, .events = POLLIN};
        hp_set(hp, "connected", json_boolean(poll(&p, 1, 1000) == 1));
        return rc;
}

/* Opens a session (HELLO, plan, layers) and keeps it open for --arg
 * hold_ms=N (default 3000), for a second connection to collide with (the
 * same --session, or the same --container), then aborts it. */
static int mode_hold(struct hp *hp, em_error_t *err)
{
        cleanup_conn em_conn_t *c = NULL;

        if (hp_start(hp, "precopy", &c, err) < 0)
                return -1;
        poll(NULL, 0, (int)hp_arg_int(hp, "hold_ms", 3000));
        em_proto_send_abort(c, "em-hostile-peer: hold over");
        return 0;
}

static const struct hp_mode modes[] = {
    {"plan", "HELLO and the plan of --image (--ip, --arg name=REF); report the answer", mode_plan},
    {"cache-fill", "prepare: leave --arg pages=N pages of pattern --arg seed=S in the cache",
     mode_cache_fill},
    {"cache-probe", "count the cache's hashes, REF page 0 of pattern --arg seed=S",
     mode_cache_probe},
    {"tag-overwrite", "register --image under the name --arg name=TAG", mode_tag_overwrite},
    {"upper", "send the writable-layer manifest --arg manifest=JSON", mode_upper},
    {"stall", "open a session, stay silent for --arg seconds=N, then round-trip", mode_stall},
    {"target-blob", "as a target on --listen: ask the source for --arg blob=DIGEST",
     mode_target_blob},
    {"checkpoint",
     "migrate the running --container of --root, rewriting its images after the dump: "
     "--arg tamper=cap-sys-admin (core-*.img cap_eff/prm/bnd), tamper=uid=N (uid/euid/"
     "suid/fsuid) or tamper=host-mntns (ids-*.img mnt_ns_id: the host's)",
     mode_checkpoint},
    {"lazy-plain", "post-copy FINAL naming a plain page server of ours; report \"connected\"",
     mode_lazy_plain},
    {"hold", "open a session and hold it --arg hold_ms=N (default 3000), then abort", mode_hold},
    {NULL, NULL, NULL},
};

/* ---- front end ----------------------------------------------------------- */

static void usage(FILE *f)
{
        fputs("Usage: em-hostile-peer --connect ADDR:PORT --root DIR --mode NAME [OPTIONS]\n"
              "\n"
              "Plays a compromised peer edge against edgemigd (tests only).\n"
              "  --connect ADDR:PORT    the daemon\n"
              "  --listen ADDR:PORT     play a target instead (target-* modes)\n"
              "  --root DIR             this side's state root (host features, --image)\n"
              "  --tls-ca/--tls-cert/--tls-key FILE   our certificate (else --insecure)\n"
              "  --insecure             plain TCP\n"
              "  --container NAME       the container the session names (default victim)\n"
              "  --image NAME           an image in --root's store for the plan\n"
              "  --ip ADDR              service IP in the spec (default 10.66.0.250)\n"
              "  --session HEX          fixed 32-hex session id (default random)\n"
              "  --arg KEY=VALUE        mode-specific (repeatable)\n"
              "  --mode NAME            one of:\n",
              f);
        for (const struct hp_mode *m = modes; m->name; m++)
                fprintf(f, "      %-14s %s\n", m->name, m->help);
        fputs("Prints one JSON object; exit 0 completed, 3 refused by the daemon, 1 error.\n", f);
}

static int parse(int argc, char **argv, struct hp *hp)
{
        static const struct option o[] = {
            {"connect", 1, NULL, 'c'},   {"root", 1, NULL, 'r'},     {"mode", 1, NULL, 'm'},
            {"container", 1, NULL, 'n'}, {"image", 1, NULL, 'i'},    {"ip", 1, NULL, 'p'},
            {"session", 1, NULL, 's'},   {"tls-ca", 1, NULL, 'A'},   {"tls-cert", 1, NULL, 'C'},
            {"tls-key", 1, NULL, 'K'},   {"insecure", 0, NULL, 'I'}, {"arg", 1, NULL, 'a'},
            {"listen", 1, NULL, 'l'},    {"help", 0, NULL, 'h'},     {NULL, 0, NULL, 0}};
        const char **slot[128] = {
            ['c'] = &hp->connect,   ['r'] = &hp->root,   ['m'] = &hp->mode,
            ['n'] = &hp->container, ['i'] = &hp->image,  ['p'] = &hp->ip,
            ['s'] = &hp->session,   ['A'] = &hp->tls_ca, ['C'] = &hp->tls_cert,
            ['K'] = &hp->tls_key,   ['l'] = &hp->listen};
        int c;

        while ((c = getopt_long(argc, argv, "h", o, NULL)) != -1) {
                if (c > 0 && c < 128 && slot[c] != NULL)
                        *slot[c] = optarg;
                else if (c == 'I')
                        hp->insecure = true;
                else if (c == 'a' && hp->nargs < HP_MAX_ARGS)
                        hp->args[hp->nargs++] = optarg;
                else
                        return c == 'h' ? 1 : 2;
        }
        if ((hp->connect == NULL) == (hp->listen == NULL) || hp->root == NULL || hp->mode == NULL ||
            (!hp->insecure && (!hp->tls_ca || !hp->tls_cert || !hp->tls_key)))
                return 2;
        return 0;
}

static int setup(struct hp *hp, em_error_t *err)
{
        struct em_tls_config tc = {hp->tls_ca, hp->tls_cert, hp->tls_key, NULL};

        if (em_config_init(&hp->cfg, hp->root, err) < 0)
                return -1;
        if (!hp->insecure && em_tls_ctx_new(&tc, hp->listen != NULL, &hp->tls, err) < 0)
                return -1;
        return 0;
}

int main(int argc, char **argv)
{
        struct hp hp = {.container = "victim", .ip = "10.66.0.250"};
        cleanup_error em_error_t err = NULL;
        const struct hp_mode *m = modes;
        int rc = parse(argc, argv, &hp);

        if (rc != 0) {
                usage(rc == 1 ? stdout : stderr);
                return rc == 1 ? 0 : 2;
        }
        while (m->name && strcmp(m->name, hp.mode) != 0)
                m++;
        if (m->name == NULL) {
                fprintf(stderr, "em-hostile-peer: unknown mode %s\n", hp.mode);
                usage(stderr);
                return 2;
        }
        em_log_setup(EM_LOG_WARN, false, 2, "em-hostile-peer");
        signal(SIGPIPE, SIG_IGN); /* a daemon that hangs up is an answer, not our death */
        hp.out = json_pack("{s:s}", "mode", hp.mode);
        if (hp.out == NULL || setup(&hp, &err) < 0 || m->run(&hp, &err) < 0) {
                hp_set(&hp, "outcome", json_string(hp.connected ? "refused" : "error"));
                hp_set(&hp, "error", json_string(err ? em_error_msg(err) : "out of memory"));
                rc = hp.connected ? 3 : 1;
        } else {
                hp_set(&hp, "outcome", json_string("completed"));
        }
        if (hp.out != NULL)
                json_dumpf(hp.out, stdout, JSON_COMPACT);
        putchar('\n');
        json_decref(hp.out);
        em_tls_ctx_free(&hp.tls);
        em_config_free(&hp.cfg);
        return rc;
}
