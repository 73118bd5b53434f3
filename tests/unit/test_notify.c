#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "util/cleanup.h"
#include "util/notify.h"

/* A datagram socket standing in for systemd's notification socket. */
static int listen_at(const char *path)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

        assert_true(fd >= 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        unlink(path);
        assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        return fd;
}

static void expect_ready(int fd, const char *status)
{
        char buf[256] = {0}, want[256];

        assert_true(recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT) > 0);
        snprintf(want, sizeof(want), "READY=1\nSTATUS=%s", status);
        assert_string_equal(buf, want);
}

/* The daemon's way: the variable leaves the environment at once (children
 * never see it), and READY=1 still reaches the socket later. */
static void test_take_then_ready(void **state)
{
        char path[] = "/tmp/test_notify.sock";
        cleanup_close int fd = listen_at(path);
        em_error_t err = NULL;

        setenv("NOTIFY_SOCKET", path, 1);
        cleanup_free char *sock = em_notify_take();
        assert_string_equal(sock, path);
        assert_null(getenv("NOTIFY_SOCKET"));
        assert_int_equal(em_notify_ready(sock, "listening on 0.0.0.0:7878", &err), 0);
        assert_null(err);
        expect_ready(fd, "listening on 0.0.0.0:7878");
        assert_null(getenv("NOTIFY_SOCKET"));
        unlink(path);
}

/* NULL: the environment's socket, removed after use; none: no-op. */
static void test_environment(void **state)
{
        char path[] = "/tmp/test_notify2.sock";
        cleanup_close int fd = listen_at(path);
        em_error_t err = NULL;

        setenv("NOTIFY_SOCKET", path, 1);
        assert_int_equal(em_notify_ready(NULL, "ok", &err), 0);
        expect_ready(fd, "ok");
        assert_null(getenv("NOTIFY_SOCKET"));
        assert_null(em_notify_take());
        assert_int_equal(em_notify_ready(NULL, "ok", &err), 0);
        assert_null(err);
        char buf[16];
        assert_true(recv(fd, buf, sizeof(buf), MSG_DONTWAIT) < 0);
        unlink(path);
}

/* A socket nobody listens on is an error the daemon can log. */
static void test_dead_socket(void **state)
{
        em_error_t err = NULL;

        assert_int_equal(em_notify_ready("/tmp/test_notify_none.sock", "x", &err), -1);
        assert_non_null(strstr(em_error_msg(err), "sd_notify"));
        em_error_free(&err);
        assert_null(getenv("NOTIFY_SOCKET"));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_take_then_ready),
            cmocka_unit_test(test_environment),
            cmocka_unit_test(test_dead_socket),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
