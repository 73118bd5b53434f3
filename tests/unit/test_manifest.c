#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "store/manifest.h"
#include "store/ref.h"

#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define D3 "sha256:3333333333333333333333333333333333333333333333333333333333333333"

static const char oci_manifest[] =
    "{\"schemaVersion\":2,\"mediaType\":\"" EM_MT_OCI_MANIFEST "\","
    "\"config\":{\"mediaType\":\"" EM_MT_OCI_CONFIG "\",\"digest\":\"" D1 "\",\"size\":7},"
    "\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"" D2
    "\",\"size\":100},"
    "{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+zstd\",\"digest\":\"" D3
    "\",\"size\":200}]}";

static void test_oci_manifest(void **state)
{
        struct em_manifest *m = NULL;
        em_error_t err = NULL;
        enum em_compression c;

        assert_int_equal(em_doc_kind_of(oci_manifest, strlen(oci_manifest), NULL), EM_DOC_MANIFEST);
        assert_int_equal(em_manifest_parse(oci_manifest, strlen(oci_manifest), &m, &err), 0);
        assert_string_equal(m->media_type, EM_MT_OCI_MANIFEST);
        assert_string_equal(m->config.digest, D1);
        assert_int_equal(m->config.size, 7);
        assert_int_equal(m->n_layers, 2);
        assert_string_equal(m->layers[1].digest, D3);
        assert_int_equal(m->layers[1].size, 200);
        assert_int_equal(em_layer_compression(m->layers[0].media_type, &c, &err), 0);
        assert_int_equal(c, EM_COMP_GZIP);
        assert_int_equal(em_layer_compression(m->layers[1].media_type, &c, &err), 0);
        assert_int_equal(c, EM_COMP_ZSTD);
        em_manifest_free(&m);
        assert_null(m);
}

static void test_docker_manifest_without_media_type_field(void **state)
{
        static const char doc[] =
            "{\"schemaVersion\":2,"
            "\"config\":{\"mediaType\":\"" EM_MT_DOCKER_CONFIG "\",\"digest\":\"" D1 "\","
            "\"size\":1},\"layers\":[{\"mediaType\":\"" EM_MT_DOCKER_LAYER_GZ "\",\"digest\":\"" D2
            "\",\"size\":5}]}";
        struct em_manifest *m = NULL;
        em_error_t err = NULL;

        /* The kind comes from the Content-Type, then from the shape. */
        assert_int_equal(em_doc_kind_of(doc, strlen(doc), EM_MT_DOCKER_MANIFEST), EM_DOC_MANIFEST);
        assert_int_equal(em_doc_kind_of(doc, strlen(doc), NULL), EM_DOC_MANIFEST);
        assert_int_equal(em_manifest_parse(doc, strlen(doc), &m, &err), 0);
        assert_int_equal(m->n_layers, 1);
        em_manifest_free(&m);
}

static void expect_manifest_error(const char *doc, const char *needle)
{
        struct em_manifest *m = NULL;
        em_error_t err = NULL;

        assert_int_equal(em_manifest_parse(doc, strlen(doc), &m, &err), -1);
        assert_null(m);
        assert_non_null(strstr(em_error_msg(err), needle));
        em_error_free(&err);
}

static void test_manifest_rejects(void **state)
{
        expect_manifest_error("{\"schemaVersion\":1,\"layers\":[]}", "schemaVersion");
        expect_manifest_error("[1,2]", "not a JSON object");
        expect_manifest_error("{\"schemaVersion\":2,\"config\":{\"digest\":\"sha256:12\","
                              "\"size\":1},\"layers\":[]}",
                              "digest");
        expect_manifest_error("{\"schemaVersion\":2,\"config\":{\"digest\":\"" D1
                              "\",\"size\":-1},\"layers\":[]}",
                              "size");
        expect_manifest_error("{\"schemaVersion\":2,\"config\":{\"digest\":\"" D1
                              "\",\"size\":1},\"layers\":[{\"mediaType\":\"text/plain\","
                              "\"digest\":\"" D2 "\",\"size\":1}]}",
                              "unsupported layer media type");
        expect_manifest_error("{\"schemaVersion\":2,\"mediaType\":\"" EM_MT_OCI_INDEX
                              "\",\"manifests\":[]}",
                              "unsupported mediaType");
        expect_manifest_error("{\"schemaVersion\":2,", "manifest");
}

static void test_index_select(void **state)
{
        static const char doc[] =
            "{\"schemaVersion\":2,\"mediaType\":\"" EM_MT_DOCKER_LIST "\",\"manifests\":["
            "{\"mediaType\":\"" EM_MT_DOCKER_MANIFEST "\",\"digest\":\"" D1 "\",\"size\":1,"
            "\"platform\":{\"architecture\":\"arm64\",\"os\":\"linux\",\"variant\":\"v8\"}},"
            "{\"mediaType\":\"" EM_MT_DOCKER_MANIFEST "\",\"digest\":\"" D2 "\",\"size\":2,"
            "\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"}},"
            "{\"mediaType\":\"" EM_MT_OCI_MANIFEST "\",\"digest\":\"" D3 "\",\"size\":3,"
            "\"annotations\":{\"org.opencontainers.image.ref.name\":\"v1\"}}]}";
        struct em_index *ix = NULL;
        em_error_t err = NULL;

        assert_int_equal(em_doc_kind_of(doc, strlen(doc), NULL), EM_DOC_INDEX);
        assert_int_equal(em_index_parse(doc, strlen(doc), &ix, &err), 0);
        assert_int_equal(ix->n, 3);
        assert_string_equal(ix->manifests[0].variant, "v8");
        assert_string_equal(em_index_select(ix, "linux", "amd64", NULL)->digest, D2);
        assert_string_equal(em_index_select(ix, "linux", "riscv64", NULL)->digest, D3);
        assert_string_equal(em_index_select(ix, "linux", "amd64", "v1")->digest, D3);
        assert_null(em_index_select(ix, "linux", "amd64", "v2"));
        em_index_free(&ix);
}

static void test_index_rejects_bad_entry(void **state)
{
        static const char doc[] = "{\"schemaVersion\":2,\"manifests\":[{\"digest\":\"md5:00\","
                                  "\"size\":1}]}";
        struct em_index *ix = NULL;
        em_error_t err = NULL;

        assert_int_equal(em_index_parse(doc, strlen(doc), &ix, &err), -1);
        assert_non_null(strstr(em_error_msg(err), "index entry 0"));
        em_error_free(&err);
}

static void test_config(void **state)
{
        static const char doc[] =
            "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Env\":[\"A=1\"],"
            "\"Cmd\":[\"/bin/sh\"]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" D1 "\",\"" D2
            "\"]}}";
        struct em_image_config *c = NULL;
        em_error_t err = NULL;

        assert_int_equal(em_image_config_parse(doc, strlen(doc), &c, &err), 0);
        assert_int_equal(c->n_diff_ids, 2);
        assert_string_equal(c->diff_ids[1], D2);
        assert_string_equal(c->arch, "amd64");
        assert_string_equal(json_string_value(json_array_get(json_object_get(c->config, "Cmd"), 0)),
                            "/bin/sh");
        em_image_config_free(&c);

        static const char bad[] = "{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:zz\"]}}";
        assert_int_equal(em_image_config_parse(bad, strlen(bad), &c, &err), -1);
        assert_non_null(strstr(em_error_msg(err), "diff_id 0"));
        em_error_free(&err);
        static const char notype[] = "{\"rootfs\":{\"diff_ids\":[]}}";
        assert_int_equal(em_image_config_parse(notype, strlen(notype), &c, &err), -1);
        em_error_free(&err);
}

static void test_ref_parse(void **state)
{
        struct em_ref r;
        em_error_t err = NULL;
        char *s;

        assert_int_equal(em_ref_parse("127.0.0.1:5000/edgemig/redis:latest", &r, &err), 0);
        assert_string_equal(r.registry, "127.0.0.1:5000");
        assert_string_equal(r.repo, "edgemig/redis");
        assert_string_equal(r.tag, "latest");
        assert_true(r.has_registry);
        em_ref_free(&r);

        assert_int_equal(em_ref_parse("debian", &r, &err), 0);
        s = em_ref_string(&r);
        assert_string_equal(s, "docker.io/library/debian:latest");
        free(s);
        em_ref_free(&r);

        assert_int_equal(em_ref_parse("localhost:5000/a/b@" D1, &r, &err), 0);
        assert_null(r.tag);
        assert_string_equal(r.digest, D1);
        em_ref_free(&r);

        const char *bad[] = {"UPPER/case", "a//b", "host:5000/x:bad tag", "x@sha256:12", "/x"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                assert_int_equal(em_ref_parse(bad[i], &r, &err), -1);
                em_error_free(&err);
        }
}

/* A peer's name, pinned: its tag and digest dropped, our registry (if
 * given) in place of its host, the digest we were given. */
static void test_ref_pin(void **state)
{
        em_error_t err = NULL;
        char *s = NULL;

        (void)state;
        assert_int_equal(
            em_ref_pin("evil.example:5000/edgemig/redis:latest", "127.0.0.1:5000", D1, &s, &err),
            0);
        assert_string_equal(s, "127.0.0.1:5000/edgemig/redis@" D1);
        free(s);
        assert_int_equal(em_ref_pin("debian@" D1, NULL, D1, &s, &err), 0);
        assert_string_equal(s, "docker.io/library/debian@" D1);
        free(s);
        assert_int_equal(em_ref_pin("x:1", NULL, "sha256:12", &s, &err), -1);
        em_error_free(&err);
        assert_int_equal(em_ref_pin("a//b", NULL, D1, &s, &err), -1);
        em_error_free(&err);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_ref_pin),
            cmocka_unit_test(test_oci_manifest),
            cmocka_unit_test(test_docker_manifest_without_media_type_field),
            cmocka_unit_test(test_manifest_rejects),
            cmocka_unit_test(test_index_select),
            cmocka_unit_test(test_index_rejects_bad_entry),
            cmocka_unit_test(test_config),
            cmocka_unit_test(test_ref_parse),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
