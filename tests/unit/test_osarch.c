#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "store/osarch.h"

#define DA "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define DB "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define DC "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
#define DD "sha256:dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
#define DE "sha256:eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
#define ENT(d, plat)                                                                               \
        "{\"mediaType\":\"" EM_MT_OCI_MANIFEST "\",\"digest\":\"" d "\",\"size\":10" plat "}"
#define PLAT(os, arch) ",\"platform\":{\"os\":\"" os "\",\"architecture\":\"" arch "\"}"
#define PLATV(os, arch, v)                                                                         \
        ",\"platform\":{\"os\":\"" os "\",\"architecture\":\"" arch "\",\"variant\":\"" v "\"}"

static const char multi[] =
    "{\"schemaVersion\":2,\"mediaType\":\"" EM_MT_OCI_INDEX "\",\"manifests\":["
    /* A nested index claiming linux/amd64 is never chosen. */
    "{\"mediaType\":\"" EM_MT_OCI_INDEX "\",\"digest\":\"" DE
    "\",\"size\":1" PLAT("linux", "amd64") "}," ENT(DA, PLAT("linux", "amd64")) "," ENT(
        DB, PLATV("linux", "arm",
                  "v6")) "," ENT(DC,
                                 PLATV("linux", "arm",
                                       "v7")) "," ENT(DD,
                                                      PLATV("linux", "arm64",
                                                            "v8")) "," ENT(DE,
                                                                           PLAT("unknown",
                                                                                "unknown")) "]}";

static const struct em_descriptor *pick(const char *index, const char *platform)
{
        static struct em_index *ix;
        struct em_osarch p;

        em_index_free(&ix);
        assert_int_equal(em_index_parse(index, strlen(index), &ix, NULL), 0);
        assert_int_equal(em_osarch_parse(platform, &p, NULL), 0);
        return em_osarch_select(ix, &p);
}

static void test_select(void **state)
{
        (void)state;
        assert_string_equal(pick(multi, "linux/amd64")->digest, DA);
        assert_string_equal(pick(multi, "linux/arm64")->digest, DD);
        assert_string_equal(pick(multi, "linux/arm64/v8")->digest, DD);
        assert_null(pick(multi, "linux/arm64/v9"));
        assert_string_equal(pick(multi, "linux/arm/v7")->digest, DC);
        assert_string_equal(pick(multi, "linux/arm/v6")->digest, DB);
        assert_string_equal(pick(multi, "linux/arm")->digest, DB); /* any variant will do */
        assert_null(pick(multi, "linux/riscv64"));
        assert_null(pick(multi, "windows/amd64"));
}

static void test_select_defaults(void **state)
{
        static const char arm64_plain[] = "{\"schemaVersion\":2,\"manifests\":[" ENT(
            DA, PLATV("linux", "arm64", "v9")) "," ENT(DB, PLAT("linux", "arm64")) "]}";
        static const char untagged[] = "{\"schemaVersion\":2,\"manifests\":[" ENT(DA, "") "]}";
        static const char two_untagged[] =
            "{\"schemaVersion\":2,\"manifests\":[" ENT(DA, "") "," ENT(DB, "") "]}";

        (void)state;
        /* No variant given on arm64: v8 (or none) before another variant. */
        assert_string_equal(pick(arm64_plain, "linux/arm64")->digest, DB);
        assert_string_equal(pick(arm64_plain, "linux/arm64/v9")->digest, DA);
        assert_string_equal(pick(untagged, "linux/arm64")->digest, DA);
        assert_null(pick(two_untagged, "linux/amd64"));
}

static void test_parse(void **state)
{
        static const char *const bad[] = {
            "",
            "linux",
            "linux/",
            "/amd64",
            "linux//v7",
            "linux/arm/",
            "Linux/amd64",
            "linux/amd64/v8/x",
            "linux/am d64",
            "linux/amd64\n",
            "linux/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        };
        struct em_osarch p;
        char buf[96];

        (void)state;
        assert_int_equal(em_osarch_parse("linux/arm/v7", &p, NULL), 0);
        assert_string_equal(em_osarch_str(&p, buf, sizeof(buf)), "linux/arm/v7");
        assert_int_equal(em_osarch_parse("linux/amd64", &p, NULL), 0);
        assert_string_equal(p.variant, "");
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                em_error_t err = NULL;
                if (em_osarch_parse(bad[i], &p, &err) != -1)
                        fail_msg("accepted '%s'", bad[i]);
                assert_int_equal(em_error_status(err), EINVAL);
                em_error_free(&err);
        }
        assert_int_equal(em_osarch_parse(NULL, &p, NULL), -1);
        em_osarch_host(&p);
        assert_string_equal(p.os, "linux");
        assert_true(p.arch[0] != '\0');
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_select),
            cmocka_unit_test(test_select_defaults),
            cmocka_unit_test(test_parse),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
