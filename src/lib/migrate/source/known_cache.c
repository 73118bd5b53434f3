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

int em_known_cache_save(const char *root, const char *container, const char *target,
                        const json_t *cache_state, const em_hashset_t *known, em_error_t *err)
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
        int hl =
            asprintf(&head, "{\"pages\":%lld,\"digest\":\"%s\",\"hashes\":%zu}\n", n, d, len / 16);
        if (hl < 0 || (buf = malloc((size_t)hl + len)) == NULL)
                return em_error_set(err, ENOMEM, "page cache record");
        memcpy(buf, head, (size_t)hl);
        memcpy(buf + hl, hashes, len);
        if (em_mkdir_p(dir, 0700, err) < 0 ||
            em_write_file_atomic(path, buf, (size_t)hl + len, 0600, err) < 0)
                return em_error_wrap(err, "recording the target's page cache");
        return 0;
}

int em_known_cache_load(const char *root, const char *container, const char *target,
                        em_hashset_t *known, json_t **prefix, em_error_t *err)
{
        cleanup_free char *path = record_path(root, container, target), *data = NULL;
        cleanup_json json_t *head = NULL;
        size_t len = 0;

        *prefix = NULL;
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
