#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "transfer/handshake.h"
#include "util/cleanup.h"
#include "util/version.h"

static const char *cpuinfo_a = "processor\t: 0\nvendor_id\t: GenuineIntel\n"
                               "flags\t\t: fpu sse2 avx2 avx512f\n\nprocessor\t: 1\n"
                               "vendor_id\t: GenuineIntel\nflags\t\t: fpu\n";
static const char *cpuinfo_b = "vendor_id\t: GenuineIntel\nflags\t\t: fpu sse2 avx2\n";

static void make_hello(struct em_hello *h, const char *cpuinfo, const char *criu)
{
        em_error_t err = NULL;

        memset(h, 0, sizeof(*h));
        h->protocol = EM_PROTOCOL_VERSION;
        h->edgemig_version = strdup(EM_VERSION);
        h->criu_version = strdup(criu);
        h->container = strdup("web1");
        h->mode = strdup("precopy");
        h->features = json_pack("{s:b}", "tcp_established", 1);
        assert_int_equal(em_session_new(h->session, &err), 0);
        assert_int_equal(em_cpuinfo_parse(cpuinfo, &h->cpu, &err), 0);
}

static void test_cpuinfo(void **state)
{
        struct em_cpuinfo c;
        em_error_t err = NULL;

        assert_int_equal(em_cpuinfo_parse(cpuinfo_a, &c, &err), 0);
        assert_string_equal(c.vendor, "GenuineIntel");
        assert_int_equal(c.nflags, 4);
        assert_string_equal(c.flags[0], "avx2"); /* sorted */
        em_cpuinfo_free(&c);
        assert_int_equal(em_cpuinfo_local(&c, &err), 0);
        assert_true(c.nflags > 5);
        em_cpuinfo_free(&c);
}

static void test_roundtrip_and_accept(void **state)
{
        struct em_hello src cleanup_hello, dst cleanup_hello, parsed cleanup_hello;
        cleanup_free char *text = NULL;
        char *reason = NULL;
        em_error_t err = NULL;

        make_hello(&src, cpuinfo_b, "Version: 4.2.1");
        make_hello(&dst, cpuinfo_a, "4.2.1");
        assert_int_equal(em_hello_build(&src, &text, &err), 0);
        assert_int_equal(em_hello_parse(text, strlen(text), &parsed, &err), 0);
        assert_memory_equal(parsed.session, src.session, 16);
        assert_string_equal(parsed.container, "web1");
        assert_true(json_is_true(json_object_get(parsed.features, "tcp_established")));
        assert_int_equal(parsed.cpu.nflags, 3);
        /* Target has a superset of the flags: accepted. */
        assert_true(em_hello_accept(&parsed, &dst, &reason));
        assert_null(reason);
        /* Reverse direction: the target lacks avx512f. */
        assert_false(em_hello_accept(&dst, &parsed, &reason));
        assert_string_equal(reason, "target CPU lacks the source's \"avx512f\" feature");
        free(reason);
        /* Protocol mismatch and old CRIU are refused with a reason. */
        parsed.protocol = 99;
        assert_false(em_hello_accept(&parsed, &dst, &reason));
        assert_non_null(strstr(reason, "protocol version mismatch"));
        free(reason);
        parsed.protocol = dst.protocol;
        free(parsed.criu_version);
        parsed.criu_version = strdup("4.1.1");
        assert_false(em_hello_accept(&parsed, &dst, &reason));
        assert_non_null(strstr(reason, "CRIU 4.1.1 is too old"));
        free(reason);
}

static void test_versions(void **state)
{
        assert_true(em_criu_version_ok("4.2"));
        assert_true(em_criu_version_ok("Version: 4.2.1"));
        assert_true(em_criu_version_ok("5.0"));
        assert_false(em_criu_version_ok("4.1.1"));
        assert_false(em_criu_version_ok("3.17"));
        assert_false(em_criu_version_ok(""));
        assert_false(em_criu_version_ok("x"));
}

static void test_hostile_hello(void **state)
{
        const char *bad[] = {
            "",
            "[]",
            "{\"protocol\":1}",
            "{\"protocol\":\"1\",\"edgemig\":\"0\",\"criu\":\"4.2\",\"session\":"
            "\"00000000000000000000000000000000\",\"container\":\"a\",\"mode\":\"precopy\","
            "\"features\":{},\"cpu\":{\"vendor\":\"x\",\"flags\":[]}}",
            /* path-like container name */
            "{\"protocol\":1,\"edgemig\":\"0\",\"criu\":\"4.2\",\"session\":"
            "\"00000000000000000000000000000000\",\"container\":\"../etc\",\"mode\":"
            "\"precopy\",\"features\":{},\"cpu\":{\"vendor\":\"x\",\"flags\":[]}}",
            /* short session */
            "{\"protocol\":1,\"edgemig\":\"0\",\"criu\":\"4.2\",\"session\":\"00\","
            "\"container\":\"a\",\"mode\":\"precopy\",\"features\":{},\"cpu\":{\"vendor\":"
            "\"x\",\"flags\":[]}}",
            /* unknown mode */
            "{\"protocol\":1,\"edgemig\":\"0\",\"criu\":\"4.2\",\"session\":"
            "\"00000000000000000000000000000000\",\"container\":\"a\",\"mode\":\"yolo\","
            "\"features\":{},\"cpu\":{\"vendor\":\"x\",\"flags\":[]}}",
            /* a flag that is not a string */
            "{\"protocol\":1,\"edgemig\":\"0\",\"criu\":\"4.2\",\"session\":"
            "\"00000000000000000000000000000000\",\"container\":\"a\",\"mode\":\"precopy\","
            "\"features\":{},\"cpu\":{\"vendor\":\"x\",\"flags\":[1]}}",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                struct em_hello h;
                em_error_t err = NULL;
                assert_int_equal(em_hello_parse(bad[i], strlen(bad[i]), &h, &err), -1);
                assert_int_equal(em_error_status(err), EPROTO);
                em_error_free(&err);
        }
        const char *ok = "{\"protocol\":1,\"edgemig\":\"0\",\"criu\":\"4.2\",\"session\":"
                         "\"00000000000000000000000000000000\",\"container\":\"a\",\"mode\":"
                         "\"precopy\",\"features\":{},\"cpu\":{\"vendor\":\"x\",\"flags\":[]}}";
        struct em_hello h cleanup_hello;
        em_error_t err = NULL;
        assert_int_equal(em_hello_parse(ok, strlen(ok), &h, &err), 0);
}

static void test_ack(void **state)
{
        uint8_t sid[16] = {1, 2, 3}, other[16] = {9};
        cleanup_free char *text = NULL;
        char *reason = NULL;
        bool ok = true;
        em_error_t err = NULL;

        assert_int_equal(em_hello_ack_build(false, "CRIU too old", sid, &text, &err), 0);
        assert_int_equal(em_hello_ack_parse(text, strlen(text), sid, &ok, &reason, &err), 0);
        assert_false(ok);
        assert_string_equal(reason, "CRIU too old");
        free(reason);
        assert_int_equal(em_hello_ack_parse(text, strlen(text), other, &ok, &reason, &err), -1);
        assert_non_null(strstr(em_error_msg(err), "another session"));
        em_error_free(&err);
        assert_int_equal(em_hello_ack_parse("{\"ok\":1}", 8, sid, &ok, &reason, &err), -1);
        em_error_free(&err);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_cpuinfo),  cmocka_unit_test(test_roundtrip_and_accept),
            cmocka_unit_test(test_versions), cmocka_unit_test(test_hostile_hello),
            cmocka_unit_test(test_ack),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
