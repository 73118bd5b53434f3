#include "migrate/source/known_cache.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"
#include "util/digest.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/log.h"

#define MAX_RECORD (1ull << 32) /* 256 Mi pages: far above any container */

static char *record_path(const char *root, const char *container, const char *target)
{
        char d[EM_DIGEST_STR_LEN + 1];
        char *p = NULL;

        em_sha256_buf(target, strlen(target), d);
        if (asprintf(&p, "%s/known/%s/%.32s.bin", root, container, em_digest_hex(d)) < 0)
                return NULL;
        return p;
}

bool em_known_cache_exists(const char *root, const char *container, const char *target)
{
        cleanup_free char *path = record_path(root, container, target);

        return path != NULL && em_path_exists(path);
}

/* The record's first line: the cache state, what prepare saw of the
 * writes, the number of hashes that follow. */
static char *record_head(long long pages, const char *digest, const struct em_known_dirt *dirt,
                         size_t hashes)
{
        cleanup_json json_t *h = json_pack("{s:I, s:s, s:I}", "pages", (json_int_t)pages, "digest",
                                           digest, "hashes", (json_int_t)hashes);
        char *line = NULL, *text;

        if (h == NULL)
                return NULL;
        if (dirt != NULL && dirt->left_wire_bps >= 0 &&
            (json_object_set_new(h, "left_wire_bps", json_real(dirt->left_wire_bps)) < 0 ||
             json_object_set_new(h, "at_ms", json_integer(dirt->at_ms)) < 0))
                return NULL;
        text = json_dumps(h, JSON_COMPACT);
        if (text != NULL && asprintf(&line, "%s\n", text) < 0)
                line = NULL;
        free(text);
        return line;
}

int em_known_cache_save(const char *root, const char *container, const char *target,
                        const json_t *cache_state, const em_hashset_t *known,
                        const struct em_known_dirt *dirt, em_error_t *err)
{
        cleanup_free char *path = record_path(root, container, target), *dir = NULL, *head = NULL,
                          *buf = NULL;
        cleanup_free uint8_t *hashes = NULL;
        size_t len = 0;
        long long n = em_json_int(cache_state, "cache_pages", -1);
        const char *d = em_json_str(cache_state, "cache_digest");

        if (n < 0 || !em_digest_valid(d))
                return em_error_set(err, EPROTO, "the target reported no page cache state");
        /* Positions in the set are the target's cache indices (REF_RUN): the
         * record is only true if it covers that cache exactly. */
        if ((uint64_t)n != em_hashset_positions(known))
                return em_error_set(err, EPROTO,
                                    "the target's page cache holds %lld pages, this host "
                                    "counted %llu: not recording it",
                                    n, (unsigned long long)em_hashset_positions(known));
        if (path == NULL || asprintf(&dir, "%s/known/%s", root, container) < 0)
                return em_error_set(err, ENOMEM, "page cache record");
        if (em_hashset_export(known, &hashes, &len, err) < 0)
                return -1;
        head = record_head(n, d, dirt, len / 16);
        size_t hl = head ? strlen(head) : 0;
        if (head == NULL || (buf = malloc(hl + len)) == NULL)
                return em_error_set(err, ENOMEM, "page cache record");
        memcpy(buf, head, hl);
        memcpy(buf + hl, hashes, len);
        if (em_mkdir_p(dir, 0700, err) < 0 ||
            em_write_file_atomic(path, buf, hl + len, 0600, err) < 0)
                return em_error_wrap(err, "recording the target's page cache");
        return 0;
}

static void head_dirt(const json_t *head, struct em_known_dirt *dirt)
{
        const json_t *r = json_object_get(head, "left_wire_bps");

        if (dirt == NULL)
                return;
        dirt->left_wire_bps = json_is_number(r) ? json_number_value(r) : -1;
        dirt->at_ms = em_json_int(head, "at_ms", 0);
        if (dirt->left_wire_bps < 0 || dirt->at_ms <= 0)
                dirt->left_wire_bps = -1;
}

int em_known_cache_load(const char *root, const char *container, const char *target,
                        em_hashset_t *known, json_t **prefix, struct em_known_dirt *dirt,
                        em_error_t *err)
{
        cleanup_free char *path = record_path(root, container, target), *data = NULL;
        cleanup_json json_t *head = NULL;
        size_t len = 0;

        *prefix = NULL;
        if (dirt != NULL)
                *dirt = (struct em_known_dirt){.left_wire_bps = -1};
        if (path == NULL)
                return em_error_set(err, ENOMEM, "page cache record");
        if (!em_path_exists(path))
                return 0;
        if (em_read_file(path, MAX_RECORD * 16, &data, &len, err) < 0)
                return -1;
        char *nl = memchr(data, '\n', len);
        if (nl == NULL)
                return em_error_set(err, EILSEQ, "%s: malformed page cache record", path);
        if (em_json_parse(data, (size_t)(nl - data), path, &head, err) < 0)
                return em_error_wrap(err, "page cache record");
        size_t body = len - (size_t)(nl + 1 - data);
        long long count = em_json_int(head, "hashes", -1), pages = em_json_int(head, "pages", -1);
        const char *d = em_json_str(head, "digest");
        if (count < 0 || pages != count || !em_digest_valid(d) || body != (size_t)count * 16)
                return em_error_set(err, EILSEQ, "%s: truncated page cache record", path);
        if (em_hashset_add_payload(known, nl + 1, body, err) < 0)
                return -1;
        head_dirt(head, dirt);
        *prefix = json_pack("{s:I, s:s}", "pages", (json_int_t)pages, "digest", d);
        return *prefix ? 0 : em_error_set(err, ENOMEM, "page cache record");
}

void em_known_cache_drop(const char *root, const char *container)
{
        cleanup_free char *dir = NULL;
        em_error_t e = NULL;

        if (asprintf(&dir, "%s/known/%s", root, container) < 0)
                return;
        if (em_rm_rf(dir, &e) < 0) {
                em_log_warn("forgetting page cache records of %s: %s", container, em_error_msg(e));
                em_error_free(&e);
        }
}
