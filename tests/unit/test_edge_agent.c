/* The edge agent (platform/edge_agent.h): /proc parsing, the bandwidth of
 * a saved report, the registration and heartbeat bodies the controller
 * stores, the option checks, and collection from a state root. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "migrate/common/report.h"
#include "platform/edge_agent.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/json.h"

static void test_loadavg(void **state)
{
        cleanup_error em_error_t err = NULL;
        double l = -1;

        assert_int_equal(em_loadavg_parse("0.52 0.58 0.59 2/1234 56789\n", &l, &err), 0);
        assert_float_equal(l, 0.52, 1e-9);
        assert_int_equal(em_loadavg_parse("garbage", &l, &err), -1);
        assert_non_null(strstr(em_error_msg(err), "/proc/loadavg"));
}

static void test_meminfo(void **state)
{
        cleanup_error em_error_t err = NULL;
        uint64_t t = 0, a = 0;
        const char *text = "MemTotal:       16318424 kB\nMemFree:         1000000 kB\n"
                           "MemAvailable:    8159212 kB\nBuffers: 1 kB\n";

        assert_int_equal(em_meminfo_parse(text, &t, &a, &err), 0);
        assert_true(t == 16318424ull * 1024);
        assert_true(a == 8159212ull * 1024);
        assert_int_equal(em_meminfo_parse("MemTotal: 5 kB\n", &t, &a, &err), -1);
        assert_non_null(strstr(em_error_msg(err), "MemAvailable"));
}

static void test_location(void **state)
{
        cleanup_error em_error_t err = NULL;
        double x, y;

        assert_int_equal(em_edge_location_parse("100,0", &x, &y, &err), 0);
        assert_float_equal(x, 100, 0);
        assert_float_equal(y, 0, 0);
        assert_int_equal(em_edge_location_parse("-1.5,2e2", &x, &y, &err), 0);
        assert_float_equal(x, -1.5, 0);
        assert_float_equal(y, 200, 0);
        const char *bad[] = {"", "1", "1,", ",2", "1;2", "1,2,3", "a,b", "nan,1", NULL};
        for (int i = 0; bad[i]; i++) {
                em_error_free(&err);
                if (em_edge_location_parse(bad[i], &x, &y, &err) != -1)
                        fail_msg("'%s' accepted", bad[i]);
                assert_non_null(strstr(em_error_msg(err), "X,Y"));
        }
}

static json_t *report(const char *text)
{
        json_t *j = json_loads(text, 0, NULL);
        assert_non_null(j);
        return j;
}

static void test_throughput(void **state)
{
        /* The source's measured rate wins: 12.5 MB/s = 100 Mbit/s. */
        cleanup_json json_t *a = report("{\"ok\":true,\"bandwidth_bps\":12500000.0,\"phases\":[]}");
        assert_float_equal(em_report_throughput_mbps(a), 100, 1e-9);
        /* Else bytes on the wire over the phases that moved them:
         * 2.5 MB in 200 ms (the 0-byte phase's 1000 ms does not count). */
        cleanup_json json_t *b = report(
            "{\"ok\":true,\"phases\":[{\"name\":\"handshake\",\"duration_ms\":1000,"
            "\"bytes_wire\":0},{\"name\":\"layers\",\"duration_ms\":100,\"bytes_wire\":1250000},"
            "{\"name\":\"final\",\"duration_ms\":100,\"bytes_wire\":1250000}]}");
        assert_float_equal(em_report_throughput_mbps(b), 100, 1e-9);
        /* A failed session or one that moved nothing tells nothing. */
        cleanup_json json_t *c = report("{\"ok\":false,\"bandwidth_bps\":1e6}");
        assert_float_equal(em_report_throughput_mbps(c), 0, 0);
        cleanup_json json_t *d = report("{\"ok\":true,\"phases\":[]}");
        assert_float_equal(em_report_throughput_mbps(d), 0, 0);
}

static void test_bodies(void **state)
{
        struct em_edge_agent_opts o;
        struct em_edge_metrics m = {0};

        em_edge_agent_opts_init(&o);
        o.name = "h2";
        o.advertise = "10.77.2.2:7878";
        o.x = 100;
        o.capacity = 3;
        cleanup_json json_t *reg = em_edge_register_json(&o);
        assert_string_equal(em_json_str(reg, "name"), "h2");
        assert_string_equal(em_json_str(reg, "addr"), "10.77.2.2:7878");
        assert_float_equal(json_number_value(json_object_get(reg, "x")), 100, 0);
        assert_float_equal(json_number_value(json_object_get(reg, "y")), 0, 0);
        assert_int_equal(em_json_int(reg, "capacity", -1), 3);

        m.load1 = 2.0;
        m.ncpu = 4;
        m.mem_total = 8000;
        m.mem_available = 3000;
        m.containers = json_pack("[s,s]", "redis", "web");
        m.active_migrations = 1;
        m.peers = json_pack("{s:{s:f,s:I}}", "10.77.3.2:7878", "mbps", 87.5, "at_ms",
                            (json_int_t)1700000000000);
        m.bandwidth_mbps = 87.5;
        cleanup_json json_t *hb = em_edge_heartbeat_json(&m);
        em_edge_metrics_clear(&m);
        /* The fields the controller stores and the scheduler uses. */
        assert_int_equal(em_json_int(hb, "load", -1), 2); /* running containers */
        assert_int_equal(json_array_size(json_object_get(hb, "containers")), 2);
        assert_string_equal(json_string_value(json_array_get(json_object_get(hb, "containers"), 0)),
                            "redis");
        assert_float_equal(json_number_value(json_object_get(hb, "cpu")), 0.5, 1e-9);
        assert_float_equal(json_number_value(json_object_get(hb, "load1")), 2.0, 1e-9);
        assert_int_equal(em_json_int(hb, "mem_bytes", -1), 5000);
        assert_int_equal(em_json_int(hb, "mem_available_bytes", -1), 3000);
        assert_int_equal(em_json_int(hb, "active_migrations", -1), 1);
        assert_float_equal(json_number_value(json_object_get(hb, "bandwidth_mbps")), 87.5, 1e-9);
        json_t *peer = json_object_get(json_object_get(hb, "peers"), "10.77.3.2:7878");
        assert_float_equal(json_number_value(json_object_get(peer, "mbps")), 87.5, 1e-9);

        /* Nothing measured yet: empty list and map, bandwidth 0 (unknown). */
        struct em_edge_metrics none = {.ncpu = 1};
        cleanup_json json_t *hb0 = em_edge_heartbeat_json(&none);
        assert_int_equal(em_json_int(hb0, "load", -1), 0);
        assert_true(json_is_array(json_object_get(hb0, "containers")));
        assert_true(json_is_object(json_object_get(hb0, "peers")));
        assert_float_equal(json_number_value(json_object_get(hb0, "bandwidth_mbps")), 0, 0);
}

static void check_fails(struct em_edge_agent_opts *o, const char *words)
{
        cleanup_error em_error_t err = NULL;

        assert_int_equal(em_edge_agent_check(o, &err), -1);
        if (strstr(em_error_msg(err), words) == NULL)
                fail_msg("'%s' lacks '%s'", em_error_msg(err), words);
}

static void test_check(void **state)
{
        cleanup_error em_error_t err = NULL;
        struct em_edge_agent_opts o;

        em_edge_agent_opts_init(&o);
        assert_int_equal(em_edge_agent_check(&o, &err), 0); /* no --controller: nothing */
        o.controller = "https://10.77.100.1:7880";
        o.name = "h1";
        o.advertise = "10.77.1.2:7878";
        o.tls_cert = "c", o.tls_key = "k", o.tls_ca = "a";
        assert_int_equal(em_edge_agent_check(&o, &err), 0);

        o.advertise = "0.0.0.0:7878";
        check_fails(&o, "--advertise");
        o.advertise = "nohost";
        check_fails(&o, "--advertise");
        o.advertise = "10.77.1.2:7878";
        o.controller = "ftp://x";
        check_fails(&o, "https://HOST:PORT");
        o.controller = "http://10.77.100.1:7880";
        check_fails(&o, "use https://");
        o.controller = "https://10.77.100.1:7880";
        o.tls_key = NULL;
        check_fails(&o, "--tls-cert/--tls-key/--tls-ca");
        o.tls_key = "k";
        o.name = NULL;
        check_fails(&o, "--edge-name");
        o.name = "h1";
        o.interval_s = 0;
        check_fails(&o, "--heartbeat-interval");
}

static void put(const char *root, const char *rel, const char *text)
{
        cleanup_error em_error_t err = NULL;
        cleanup_free char *path = em_path_join(root, rel);
        cleanup_free char *dir = strdup(path);

        *strrchr(dir, '/') = '\0';
        assert_int_equal(em_mkdir_p(dir, 0700, &err), 0);
        assert_int_equal(em_write_file_atomic(path, text, strlen(text), 0600, &err), 0);
}

/* From a state root: no containers, one live session of two (the other's
 * owner is dead), the newest report per peer; failed ones are skipped. */
static void test_collect(void **state)
{
        char root[] = "/tmp/em-agent-XXXXXX";
        char owner[64];
        cleanup_error em_error_t err = NULL;
        struct em_edge_metrics m;
        struct em_config cfg = {.root = root};

        assert_non_null(mkdtemp(root));
        snprintf(owner, sizeof(owner), "web %d\n", (int)getpid());
        put(root, "incoming/aaaa/owner", owner);
        put(root, "outgoing/bbbb/owner", "web 999999999\n");
        put(root, "migrations/1.json",
            "{\"ok\":true,\"target\":\"10.0.0.2:7878\",\"requested_at_ms\":1000,"
            "\"bandwidth_bps\":1000000.0}");
        /* mtimes order the reports; make the next ones newer */
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
        put(root, "migrations/2.json",
            "{\"ok\":true,\"target\":\"10.0.0.2:7878\",\"requested_at_ms\":2000,"
            "\"bandwidth_bps\":2000000.0}");
        nanosleep(&ts, NULL);
        put(root, "migrations/3.json",
            "{\"ok\":true,\"target\":\"10.0.0.3:7878\",\"requested_at_ms\":1500,"
            "\"bandwidth_bps\":4000000.0}");
        nanosleep(&ts, NULL);
        put(root, "migrations/4.json",
            "{\"ok\":false,\"target\":\"10.0.0.3:7878\",\"requested_at_ms\":3000,"
            "\"bandwidth_bps\":9000000.0}");
        assert_int_equal(em_edge_metrics_collect(&cfg, &m, &err), 0);
        assert_true(m.mem_total > 0 && m.mem_available > 0 && m.ncpu >= 1);
        assert_int_equal(json_array_size(m.containers), 0);
        assert_int_equal(m.active_migrations, 1);
        json_t *p2 = json_object_get(m.peers, "10.0.0.2:7878");
        json_t *p3 = json_object_get(m.peers, "10.0.0.3:7878");
        assert_float_equal(json_number_value(json_object_get(p2, "mbps")), 16, 1e-9);
        assert_float_equal(json_number_value(json_object_get(p3, "mbps")), 32, 1e-9);
        assert_float_equal(m.bandwidth_mbps, 16, 1e-9); /* the latest request */
        em_edge_metrics_clear(&m);
        assert_int_equal(em_rm_rf(root, &err), 0);
}

/* Controller replicas: --controller URL,URL,... split once (the agent
 * takes them in turn); empty and repeated entries are left out. */
static void test_controller_list(void **state)
{
        cleanup_strv char **two = NULL, **one = NULL, **none = NULL;
        size_t n = 0;
        em_error_t err = NULL;

        (void)state;
        assert_int_equal(
            em_edge_agent_controllers("https://a:1,,https://b:2,https://a:1", &two, &n, &err), 0);
        assert_int_equal(n, 2);
        assert_string_equal(two[0], "https://a:1");
        assert_string_equal(two[1], "https://b:2");
        assert_null(two[2]);
        assert_int_equal(em_edge_agent_controllers("https://only:1", &one, &n, &err), 0);
        assert_int_equal(n, 1);
        assert_string_equal(one[0], "https://only:1");
        assert_int_equal(em_edge_agent_controllers(",", &none, &n, &err), 0);
        assert_int_equal(n, 0);
}

static void test_attachments(void **state)
{
        char name[64];
        const char *hp = NULL;
        em_error_t err = NULL;

        assert_int_equal(
            em_edge_attachment_parse("cell-7=10.0.0.1:443", name, sizeof(name), &hp, &err), 0);
        assert_string_equal(name, "cell-7");
        assert_string_equal(hp, "10.0.0.1:443");
        static const char *const bad[] = {"cell-7", "=1.2.3.4:5", "a b=1.2.3.4:5", "c=nohost",
                                          "../x=1.2.3.4:5"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                assert_true(em_edge_attachment_parse(bad[i], name, sizeof(name), &hp, &err) < 0);
                assert_non_null(strstr(em_error_msg(err), "--attachment"));
                em_error_free(&err);
        }
}

/* A listening port and a refused one both give an RTT (one round trip
 * each); a bad spec is refused when the list is parsed. */
static void test_measure_rtts(void **state)
{
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(a);
        char up[64], down[64];

        assert_true(fd >= 0);
        assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
        assert_int_equal(listen(fd, 4), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
        snprintf(up, sizeof(up), "up=127.0.0.1:%d", ntohs(a.sin_port));
        /* A port nothing listens on (just closed). */
        int fd2 = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in b = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        len = sizeof(b);
        assert_int_equal(bind(fd2, (struct sockaddr *)&b, sizeof(b)), 0);
        assert_int_equal(getsockname(fd2, (struct sockaddr *)&b, &len), 0);
        close(fd2);
        snprintf(down, sizeof(down), "down=127.0.0.1:%d", ntohs(b.sin_port));
        const char *const specs[] = {up, down, NULL};
        const char *const with_bad[] = {up, "broken", NULL};
        cleanup_free struct em_edge_attachment *atts = NULL, *bad = NULL;
        size_t n = 0;
        em_error_t err = NULL;
        assert_int_equal(em_edge_attachments_parse(with_bad, &bad, &n, &err), -1);
        assert_non_null(strstr(em_error_msg(err), "--attachment"));
        em_error_free(&err);
        assert_int_equal(em_edge_attachments_parse(specs, &atts, &n, &err), 0);
        assert_int_equal(n, 2);
        assert_string_equal(atts[1].name, "down");
        cleanup_json json_t *r = em_edge_measure_rtts(atts, n, 1000);

        close(fd);
        assert_non_null(r);
        assert_int_equal(json_object_size(r), 2);
        assert_true(json_number_value(json_object_get(r, "up")) > 0);
        assert_true(json_number_value(json_object_get(r, "down")) > 0);
        assert_null(em_edge_measure_rtts(NULL, 0, 1000));
        /* In the heartbeat only when measured (an older controller would
         * not know it; a null would be refused). */
        struct em_edge_metrics m = {0};
        cleanup_json json_t *none = em_edge_heartbeat_json(&m);
        assert_null(json_object_get(none, "rtts"));
        m.rtts = json_incref(r);
        cleanup_json json_t *some = em_edge_heartbeat_json(&m);
        json_decref(m.rtts);
        assert_true(json_is_object(json_object_get(some, "rtts")));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_loadavg),      cmocka_unit_test(test_meminfo),
            cmocka_unit_test(test_location),     cmocka_unit_test(test_throughput),
            cmocka_unit_test(test_bodies),       cmocka_unit_test(test_check),
            cmocka_unit_test(test_collect),      cmocka_unit_test(test_attachments),
            cmocka_unit_test(test_measure_rtts), cmocka_unit_test(test_controller_list),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
