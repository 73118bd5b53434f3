/* The target's side of volume sync: what it reports of its copies at the
 * plan, which volumes a peer's FILE_ROOT may name, and the move into
 * <root>/volumes before the restore (and back). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "container/volume.h"
#include "migrate/common/volume_sync.h"
#include "migrate/target/sync_target.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/json.h"

struct bed {
        char root[32];
        char *cache, *images, *upper;
        struct em_sync_target *t;
};

static int setup(void **state)
{
        struct bed *b = calloc(1, sizeof(*b));
        em_error_t err = NULL;

        strcpy(b->root, "/tmp/test_volsync.XXXXXX");
        assert_non_null(mkdtemp(b->root));
        b->cache = em_path_join(b->root, "pagecache/web/peer");
        b->images = em_path_join(b->root, "images");
        b->upper = em_path_join(b->root, "upper");
        assert_int_equal(em_mkdir_p(b->images, 0700, &err), 0);
        assert_int_equal(em_mkdir_p(b->upper, 0755, &err), 0);
        /* a copy left by an earlier session (a prepare) */
        cleanup_free char *old = em_path_join(b->cache, "volumes/db");
        cleanup_free char *f = em_path_join(old, "kept");
        assert_int_equal(em_mkdir_p(old, 0755, &err), 0);
        assert_int_equal(em_write_file_atomic(f, "x", 1, 0644, &err), 0);
        assert_int_equal(em_sync_target_new(b->cache, b->images, b->upper, &b->t, &err), 0);
        *state = b;
        return 0;
}

static int teardown(void **state)
{
        struct bed *b = *state;
        em_error_t err = NULL;

        em_sync_target_free(&b->t);
        em_rm_rf(b->root, &err);
        em_error_free(&err);
        free(b->cache);
        free(b->images);
        free(b->upper);
        free(b);
        return 0;
}

static int root_frame(struct em_sync_target *t, const char *json, em_error_t *err)
{
        struct em_frame f = {.hdr = {.type = EM_FRAME_FILE_ROOT},
                             .payload = (uint8_t *)json,
                             .length = (uint32_t)strlen(json)};

        return em_sync_target_frame(t, NULL, &f, err);
}

static void test_have_root_install(void **state)
{
        struct bed *b = *state;
        cleanup_error em_error_t err = NULL;
        cleanup_json json_t *have = NULL;
        cleanup_json json_t *spec =
            json_pack("{s:s, s:[{s:s, s:s, s:s, s:b}, {s:s, s:s, s:I}]}", "name", "web", "mounts",
                      "type", "volume", "name", "db", "destination", "/db", "ro", 0, "type",
                      "tmpfs", "destination", "/t", "size", (json_int_t)0);

        assert_int_equal(em_sync_target_volumes(b->t, spec, &have, &err), 0);
        json_t *entries = json_object_get(json_object_get(have, "db"), "entries");
        assert_int_equal(json_array_size(entries), 1);
        assert_string_equal(em_json_str(json_array_get(entries, 0), "p"), "kept");
        /* a peer may name only the container's own volumes */
        assert_int_equal(root_frame(b->t, "{\"volume\": \"etc\"}", &err), -1);
        assert_int_equal(em_error_status(err), EPROTO);
        em_error_free(&err);
        static const char *const bad[] = {"{\"volume\": 7}", "[", "[]",
                                          "{\"volume\": \"db\", \"x\": 1}", "{\"x\": 1}"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                assert_int_equal(root_frame(b->t, bad[i], &err), -1);
                em_error_free(&err);
        }
        assert_int_equal(root_frame(b->t, "{\"volume\": \"db\"}", &err), 0);
        assert_int_equal(root_frame(b->t, "{}", &err), 0);
        assert_int_equal(em_sync_target_finish(b->t, &err), 0);

        struct em_config cfg = {.root = b->root};
        cleanup_free char *dst = em_volume_path(&cfg, "db");
        cleanup_free char *kept = em_path_join(dst, "kept");
        assert_int_equal(em_sync_target_install_volumes(b->t, &cfg, false, &err), 0);
        assert_true(em_path_exists(kept));
        assert_int_equal(em_sync_target_install_volumes(b->t, &cfg, true, &err), 0);
        assert_false(em_path_exists(dst));
}

/* A volume of the same name created here after the plan (`run -v` of a
 * local container) is never replaced by the install, nor moved away by
 * the roll-back: only what this session installed goes back. The first
 * volume, installed before the second failed, goes back at once. */
static void test_install_never_replaces(void **state)
{
        struct bed *b = *state;
        cleanup_error em_error_t err = NULL;
        cleanup_json json_t *have = NULL;
        cleanup_json json_t *spec =
            json_pack("{s:s, s:[{s:s, s:s, s:s, s:b}, {s:s, s:s, s:s, s:b}]}", "name", "web",
                      "mounts", "type", "volume", "name", "db", "destination", "/db", "ro", 0,
                      "type", "volume", "name", "logs", "destination", "/logs", "ro", 0);
        struct em_config cfg = {.root = b->root};
        cleanup_free char *db = em_volume_path(&cfg, "db");
        cleanup_free char *logs = em_volume_path(&cfg, "logs");
        cleanup_free char *cached = em_path_join(b->cache, "volumes/db/kept");
        struct stat before, after;

        assert_int_equal(em_sync_target_volumes(b->t, spec, &have, &err), 0);
        assert_int_equal(em_sync_target_finish(b->t, &err), 0);
        /* Created here meanwhile, empty: rename(2) would take its place. */
        assert_int_equal(em_mkdir_p(logs, 0755, &err), 0);
        assert_int_equal(stat(logs, &before), 0);
        assert_int_equal(em_sync_target_install_volumes(b->t, &cfg, false, &err), -1);
        assert_int_equal(em_error_status(err), EEXIST);
        assert_non_null(strstr(em_error_msg(err), "volume logs was created on this host"));
        em_error_free(&err);
        assert_int_equal(stat(logs, &after), 0);
        assert_int_equal(before.st_ino, after.st_ino);
        assert_false(em_path_exists(db)); /* all or none */
        assert_true(em_path_exists(cached));
        /* The session's roll-back: the local volume stays where it is. */
        assert_int_equal(em_sync_target_install_volumes(b->t, &cfg, true, &err), 0);
        assert_int_equal(stat(logs, &after), 0);
        assert_int_equal(before.st_ino, after.st_ino);
        assert_true(em_path_exists(cached));
}

/* A pod's volumes, each once however many of its containers mount it;
 * binds and tmpfs are not sent. */
static void test_spec_union(void **state)
{
        (void)state;
        cleanup_json json_t *specs = json_pack(
            "[{s:[{s:s, s:s, s:s}, {s:s, s:s}]}, {s:[{s:s, s:s, s:s}, {s:s, s:s, s:s}]}, {}]",
            "mounts", "type", "volume", "name", "db", "destination", "/db", "type", "tmpfs",
            "destination", "/t", "mounts", "type", "volume", "name", "db", "destination", "/ro",
            "type", "volume", "name", "cache", "destination", "/c");
        cleanup_json json_t *u = em_volume_spec_union(specs);
        json_t *m = json_object_get(u, "mounts");

        assert_int_equal(json_array_size(m), 2);
        assert_string_equal(em_json_str(json_array_get(m, 0), "name"), "db");
        assert_string_equal(em_json_str(json_array_get(m, 1), "name"), "cache");
}

/* The source's tx: none without volumes; a missing volume named. */
static void test_tx_new(void **state)
{
        struct bed *b = *state;
        struct em_config cfg = {.root = b->root};
        struct em_volume_tx *tx = NULL;
        cleanup_error em_error_t err = NULL;
        cleanup_json json_t *none =
            json_pack("{s:[{s:s, s:s}]}", "mounts", "type", "tmpfs", "destination", "/t");
        cleanup_json json_t *one = json_pack("{s:[{s:s, s:s, s:s}]}", "mounts", "type", "volume",
                                             "name", "db", "destination", "/db");

        assert_int_equal(em_volume_tx_new(&cfg, none, NULL, &tx, &err), 0);
        assert_null(tx);
        assert_int_equal(em_volume_tx_new(&cfg, one, NULL, &tx, &err), -1);
        assert_non_null(strstr(em_error_msg(err), "volume db of the container is missing"));
        em_volume_tx_free(&tx);
        em_error_free(&err);
        cleanup_free char *dir = em_volume_path(&cfg, "db");
        assert_int_equal(em_mkdir_p(dir, 0755, &err), 0);
        assert_int_equal(em_volume_tx_new(&cfg, one, NULL, &tx, &err), 0);
        assert_non_null(tx);
        em_volume_tx_free(&tx);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_have_root_install, setup, teardown),
            cmocka_unit_test_setup_teardown(test_install_never_replaces, setup, teardown),
            cmocka_unit_test(test_spec_union),
            cmocka_unit_test_setup_teardown(test_tx_new, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
