/* The store API as the container and migration code use it: import of a tiny
 * OCI layout built here, lookups, blob export/import + image_add between two
 * stores ("hosts"), rm and prune (with layers in use by containers). */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "store/manifest.h"
#include "store/store.h"
#include "util/digest.h"
#include "util/fsutil.h"

struct fx {
        char dir[64], layout[96], rootA[96], rootB[96];
        char manifest[EM_DIGEST_STR_LEN + 1], layer[EM_DIGEST_STR_LEN + 1];
        char diff_id[EM_DIGEST_STR_LEN + 1], config[EM_DIGEST_STR_LEN + 1];
};

static void write_blob(struct fx *f, const void *buf, size_t len,
                       char digest[EM_DIGEST_STR_LEN + 1])
{
        char path[256];

        em_sha256_buf(buf, len, digest);
        snprintf(path, sizeof(path), "%s/blobs/sha256/%s", f->layout, digest + 7);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, buf, len), (ssize_t)len);
        close(fd);
}

/* A gzip layer with one file: sets the tar's diff-id and the blob digest. */
static void make_layer(struct fx *f)
{
        static char tar[65536], gz[65536];
        size_t tlen = 0, glen = 0;
        struct archive *a = archive_write_new();
        struct archive_entry *e = archive_entry_new();

        archive_write_set_format_pax_restricted(a);
        archive_write_set_bytes_in_last_block(a, 1);
        archive_write_open_memory(a, tar, sizeof(tar), &tlen);
        archive_entry_set_pathname(e, "hello.txt");
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_perm(e, 0644);
        archive_entry_set_size(e, 6);
        archive_write_header(a, e);
        archive_write_data(a, "hello\n", 6);
        archive_entry_free(e);
        archive_write_close(a);
        archive_write_free(a);
        em_sha256_buf(tar, tlen, f->diff_id);

        a = archive_write_new();
        archive_write_set_format_raw(a);
        archive_write_add_filter_gzip(a);
        archive_write_set_bytes_in_last_block(a, 1);
        archive_write_open_memory(a, gz, sizeof(gz), &glen);
        e = archive_entry_new();
        archive_entry_set_filetype(e, AE_IFREG);
        archive_entry_set_size(e, (la_int64_t)tlen);
        archive_write_header(a, e);
        archive_write_data(a, tar, tlen);
        archive_entry_free(e);
        archive_write_close(a);
        archive_write_free(a);
        write_blob(f, gz, glen, f->layer);
}

static long blob_size(struct fx *f, const char *digest)
{
        char path[256];
        struct stat st;
        snprintf(path, sizeof(path), "%s/blobs/sha256/%s", f->layout, digest + 7);
        assert_int_equal(stat(path, &st), 0);
        return (long)st.st_size;
}

static void make_layout(struct fx *f)
{
        char buf[2048], path[256];

        snprintf(path, sizeof(path), "%s/blobs/sha256", f->layout);
        em_error_t err = NULL;
        assert_int_equal(em_mkdir_p(path, 0755, &err), 0);
        make_layer(f);
        snprintf(buf, sizeof(buf),
                 "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Cmd\":[\"/hello\"]},"
                 "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"%s\"]}}",
                 f->diff_id);
        write_blob(f, buf, strlen(buf), f->config);
        snprintf(buf, sizeof(buf),
                 "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"config\":{\"mediaType\":\"%s\","
                 "\"digest\":\"%s\",\"size\":%ld},\"layers\":[{\"mediaType\":\"application/"
                 "vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"%s\",\"size\":%ld}]}",
                 EM_MT_OCI_MANIFEST, EM_MT_OCI_CONFIG, f->config, blob_size(f, f->config), f->layer,
                 blob_size(f, f->layer));
        write_blob(f, buf, strlen(buf), f->manifest);
        snprintf(buf, sizeof(buf),
                 "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"%s\",\"digest\":\"%s\","
                 "\"size\":%ld,\"annotations\":{\"org.opencontainers.image.ref.name\":\"v1\"}}]}",
                 EM_MT_OCI_MANIFEST, f->manifest, blob_size(f, f->manifest));
        snprintf(path, sizeof(path), "%s/index.json", f->layout);
        assert_int_equal(em_write_file_atomic(path, buf, strlen(buf), 0644, &err), 0);
        snprintf(path, sizeof(path), "%s/oci-layout", f->layout);
        const char *ol = "{\"imageLayoutVersion\":\"1.0.0\"}";
        assert_int_equal(em_write_file_atomic(path, ol, strlen(ol), 0644, &err), 0);
}

static int setup(void **state)
{
        struct fx *f = calloc(1, sizeof(*f));
        snprintf(f->dir, sizeof(f->dir), "/tmp/test_store.XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->layout, sizeof(f->layout), "%s/tiny", f->dir);
        snprintf(f->rootA, sizeof(f->rootA), "%s/A", f->dir);
        snprintf(f->rootB, sizeof(f->rootB), "%s/B", f->dir);
        mkdir(f->rootA, 0700);
        mkdir(f->rootB, 0700);
        make_layout(f);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fx *f = *state;
        em_error_t err = NULL;
        em_rm_rf(f->dir, &err);
        free(f);
        return 0;
}

static void test_import_and_lookup(void **state)
{
        struct fx *f = *state;
        struct em_store *s = NULL;
        struct em_image_info *info = NULL;
        em_error_t err = NULL;
        char prefix[20];

        assert_int_equal(em_store_open(f->rootA, &s, &err), 0);
        assert_int_equal(em_store_import(s, f->layout, NULL, &info, &err), 0);
        assert_string_equal(info->name, "localhost/tiny:v1");
        assert_string_equal(info->manifest_digest, f->manifest);
        assert_int_equal(info->n_layers, 1);
        assert_string_equal(info->diff_ids[0], f->diff_id);
        assert_true(em_store_has_layer(s, f->diff_id));
        char *p = em_store_layer_path(s, f->diff_id);
        assert_string_equal(p, info->layer_dirs[0]);
        free(p);
        em_image_info_free(&info);

        snprintf(prefix, sizeof(prefix), "%.12s", f->manifest + 7);
        const char *names[] = {"localhost/tiny:v1", "tiny:v1", prefix, f->manifest};
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
                assert_int_equal(em_store_image_get(s, names[i], &info, &err), 0);
                assert_string_equal(info->name, "localhost/tiny:v1");
                assert_string_equal(
                    json_string_value(json_array_get(json_object_get(info->config, "Cmd"), 0)),
                    "/hello");
                em_image_info_free(&info);
        }
        /* bare "tiny" means tag latest, which does not exist */
        assert_int_equal(em_store_image_get(s, "tiny", &info, &err), -1);
        assert_int_equal(em_error_status(err), ENOENT);
        em_error_free(&err);
        em_store_close(&s);
}

/* What a target answers a plan with: which blobs it holds (or needs not,
 * having the layer unpacked), and which digests an image names. */
static void test_holds_and_names(void **state)
{
        struct fx *f = *state;
        struct em_store *s = NULL, *b = NULL;
        struct em_image_info *info = NULL;
        em_error_t err = NULL;

        assert_int_equal(em_store_open(f->rootA, &s, &err), 0);
        assert_int_equal(em_store_open(f->rootB, &b, &err), 0);
        assert_false(em_store_holds(b, f->manifest, NULL));
        assert_false(em_store_holds(b, f->layer, f->diff_id));
        assert_int_equal(em_store_import(s, f->layout, NULL, &info, &err), 0);
        assert_true(em_store_holds(s, f->manifest, NULL));
        assert_true(em_store_holds(s, f->config, NULL));
        /* The unpacked layer stands in for its blob. */
        assert_true(em_store_holds(s,
                                   "sha256:"
                                   "00000000000000000000000000000000"
                                   "00000000000000000000000000000000",
                                   f->diff_id));
        assert_false(em_store_holds(s, "sha256:../../etc/passwd", NULL));
        assert_false(em_store_holds(s, NULL, NULL));

        assert_true(em_image_info_names(info, f->manifest));
        assert_true(em_image_info_names(info, f->config));
        assert_true(em_image_info_names(info, f->layer));
        assert_false(em_image_info_names(info, f->diff_id));
        assert_false(em_image_info_names(info, NULL));
        em_image_info_free(&info);
        em_store_close(&b);
        em_store_close(&s);
}

/* What a migration does: export the blobs from host A, import them on host B,
 * then register the image there. */
static void test_blob_transfer_between_hosts(void **state)
{
        struct fx *f = *state;
        struct em_store *a = NULL, *b = NULL;
        struct em_image_info *ia = NULL, *ib = NULL;
        em_error_t err = NULL;
        int pfd[2];

        assert_int_equal(em_store_open(f->rootA, &a, &err), 0);
        assert_int_equal(em_store_open(f->rootB, &b, &err), 0);
        assert_int_equal(em_store_import(a, f->layout, "app:1", &ia, &err), 0);
        assert_string_equal(ia->name, "localhost/app:1");
        const char *blobs[] = {f->manifest, f->config, f->layer};
        for (size_t i = 0; i < 3; i++) {
                char path[256];
                struct stat st;
                snprintf(path, sizeof(path), "%s/blobs/sha256/%s", f->rootA, blobs[i] + 7);
                assert_int_equal(stat(path, &st), 0);
                assert_int_equal(pipe(pfd), 0);
                assert_int_equal(em_store_blob_export(a, blobs[i], pfd[1], &err), 0);
                close(pfd[1]);
                assert_int_equal(
                    em_store_blob_import(b, blobs[i], (uint64_t)st.st_size, pfd[0], &err), 0);
                close(pfd[0]);
        }
        assert_false(em_store_has_layer(b, f->diff_id));
        assert_int_equal(em_store_image_add(b, "localhost/app:1", f->manifest, &err), 0);
        assert_true(em_store_has_layer(b, f->diff_id));
        assert_int_equal(em_store_image_get(b, "app:1", &ib, &err), 0);
        assert_string_equal(ib->manifest_digest, ia->manifest_digest);
        em_image_info_free(&ib);
        /* A peer's name is pinned to its digest: "other:1" stays unknown,
         * the image is found under both names and by its digest. */
        char *pinned = NULL, want[256];
        assert_int_equal(
            em_store_image_add_pinned(b, "localhost/other:1", f->manifest, &pinned, &err), 0);
        snprintf(want, sizeof(want), "localhost/other@%s", f->manifest);
        assert_string_equal(pinned, want);
        free(pinned);
        assert_int_equal(em_store_image_get(b, "other:1", &ib, &err), -1);
        assert_int_equal(em_error_status(err), ENOENT);
        em_error_free(&err);
        assert_int_equal(em_store_image_get(b, f->manifest, &ib, &err), 0);
        em_image_info_free(&ib);
        assert_int_equal(em_store_image_get(b, want, &ib, &err), 0);
        em_image_info_free(&ia);
        em_image_info_free(&ib);

        /* A corrupted transfer is refused and stores nothing. */
        static const char junk[] = "not the layer";
        assert_int_equal(pipe(pfd), 0);
        assert_int_equal(write(pfd[1], junk, sizeof(junk)), (ssize_t)sizeof(junk));
        close(pfd[1]);
        struct em_store *c = NULL;
        char rootC[128];
        snprintf(rootC, sizeof(rootC), "%s/C", f->dir);
        mkdir(rootC, 0700);
        assert_int_equal(em_store_open(rootC, &c, &err), 0);
        assert_int_equal(em_store_blob_import(c, f->layer, sizeof(junk), pfd[0], &err), -1);
        assert_non_null(strstr(em_error_msg(err), "digest mismatch"));
        em_error_free(&err);
        close(pfd[0]);
        assert_int_equal(em_store_image_add(c, "x", f->manifest, &err), -1);
        em_error_free(&err);
        em_store_close(&c);
        em_store_close(&a);
        em_store_close(&b);
}

static void test_rm_and_prune(void **state)
{
        struct fx *f = *state;
        struct em_store *s = NULL;
        struct em_prune_result r;
        em_error_t err = NULL;
        char *removed = NULL;
        struct em_image_info **list = NULL;
        size_t n = 0;

        assert_int_equal(em_store_open(f->rootA, &s, &err), 0);
        assert_int_equal(em_store_import(s, f->layout, NULL, NULL, &err), 0);
        assert_int_equal(em_store_prune(s, NULL, &r, &err), 0);
        assert_int_equal(r.blobs_removed + r.layers_removed, 0);
        assert_int_equal(em_store_image_remove(s, "tiny:v1", &removed, &err), 0);
        assert_string_equal(removed, "localhost/tiny:v1");
        free(removed);
        assert_int_equal(em_store_image_list(s, &list, &n, &err), 0);
        assert_int_equal(n, 0);
        em_image_info_list_free(list, n);
        /* A container still uses the layer: it stays, the blobs go. */
        const char *in_use[] = {f->diff_id, NULL};
        assert_int_equal(em_store_prune(s, in_use, &r, &err), 0);
        assert_int_equal(r.blobs_removed, 3);
        assert_int_equal(r.layers_removed, 0);
        assert_true(em_store_has_layer(s, f->diff_id));
        assert_int_equal(em_store_prune(s, NULL, &r, &err), 0);
        assert_int_equal(r.layers_removed, 1);
        assert_false(em_store_has_layer(s, f->diff_id));
        /* still usable */
        assert_int_equal(em_store_import(s, f->layout, NULL, NULL, &err), 0);
        assert_true(em_store_has_layer(s, f->diff_id));
        em_store_close(&s);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_import_and_lookup, setup, teardown),
            cmocka_unit_test_setup_teardown(test_holds_and_names, setup, teardown),
            cmocka_unit_test_setup_teardown(test_blob_transfer_between_hosts, setup, teardown),
            cmocka_unit_test_setup_teardown(test_rm_and_prune, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
