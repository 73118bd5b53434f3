/* Image files sent while the dump runs (migrate/source/early_images.h):
 * which names qualify, the pump over a socketpair with a child playing
 * runc (left unreaped), and em_sync_send_images skipping a file sent
 * early only while it is unchanged. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "migrate/common/proto.h"
#include "migrate/source/early_images.h"
#include "migrate/source/pagesync.h"
#include "util/cleanup.h"
#include "util/clock.h"
#include "util/digest.h"
#include "util/fsutil.h"
#include "util/json.h"

struct fx {
        char dir[64], src[96], rx[96];
        em_conn_t *a, *b;
        int rx_fd;
};

static int setup(void **state)
{
        struct fx *f = calloc(1, sizeof(*f));
        em_error_t err = NULL;
        int sv[2];

        strcpy(f->dir, "/tmp/test_early_images.XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->src, sizeof(f->src), "%s/src", f->dir);
        snprintf(f->rx, sizeof(f->rx), "%s/rx", f->dir);
        assert_int_equal(mkdir(f->src, 0700), 0);
        assert_int_equal(mkdir(f->rx, 0700), 0);
        f->rx_fd = open(f->rx, O_RDONLY | O_DIRECTORY);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(em_conn_from_fd(sv[0], "a", &f->a, &err), 0);
        assert_int_equal(em_conn_from_fd(sv[1], "b", &f->b, &err), 0);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fx *f = *state;
        em_error_t err = NULL;

        em_conn_free(&f->a);
        em_conn_free(&f->b);
        close(f->rx_fd);
        em_rm_rf(f->dir, &err);
        free(f);
        return 0;
}

/* As CRIU writes an image: in place, then closed. */
static void put(const char *dir, const char *name, const char *text)
{
        char path[160];
        int fd;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
        close(fd);
}

static void test_names(void **state)
{
        (void)state;
        assert_true(em_early_image_name("mm-1.img"));
        assert_true(em_early_image_name("core-12.img"));
        assert_true(em_early_image_name("pagemap-1.img"));
        assert_true(em_early_image_name("tcp-stream-a3352f.img"));
        assert_true(em_early_image_name("tmpfs-dev-46.tar.gz.img"));
        assert_true(em_early_image_name("seccomp.img"));
        /* The page delta carries pages; the rest is written at the end. */
        assert_false(em_early_image_name("pages-1.img"));
        assert_false(em_early_image_name("files.img"));
        assert_false(em_early_image_name("inventory.img"));
        assert_false(em_early_image_name("cgroup.img"));
        assert_false(em_early_image_name("descriptors.json"));
        assert_false(em_early_image_name("stats-dump"));
        assert_false(em_early_image_name("x/mm-1.img"));
        assert_false(em_early_image_name(NULL));
}

/* A child writes two qualifying files and one other, then exits. */
static pid_t fake_criu(const char *dir, unsigned linger_ms)
{
        pid_t pid = fork();

        assert_true(pid >= 0);
        if (pid == 0) {
                usleep(20 * 1000);
                put(dir, "seccomp.img", "filters");
                put(dir, "files.img", "written last");
                put(dir, "mm-1.img", "the vmas");
                usleep(linger_ms * 1000);
                _exit(0);
        }
        return pid;
}

static void recv_one(struct fx *f, json_t *got)
{
        cleanup_json json_t *hdr = NULL;
        cleanup_error em_error_t err = NULL;
        char digest[EM_DIGEST_STR_LEN + 1];

        assert_int_equal(em_proto_recv_json(f->b, EM_FRAME_IMAGE_FILE, &hdr, &err), 0);
        if (em_proto_recv_file(f->b, hdr, EM_FRAME_IMAGE_FILE, f->rx_fd, false, digest, &err) < 0)
                fail_msg("%s", em_error_msg(err));
        json_object_set_new(got, em_json_str(hdr, "file"), json_string(digest));
}

static void test_pump_sends_closed_files(void **state)
{
        struct fx *f = *state;
        struct em_early_images *w = NULL;
        cleanup_json json_t *digests = json_object(), *got = json_object();
        cleanup_error em_error_t err = NULL;
        uint64_t raw = 0;
        unsigned files = 0;
        int st;

        assert_int_equal(em_early_images_watch(f->src, &w, &err), 0);
        pid_t pid = fake_criu(f->src, 100);
        assert_int_equal(em_early_images_pump(w, pid, 5000, f->a, 1, digests, &raw, &files, &err),
                         0);
        em_early_images_free(&w);
        assert_null(w);
        /* runc is still ours to reap. */
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_int_equal(files, 2);
        assert_int_equal(json_object_size(digests), 2);
        assert_null(json_object_get(digests, "files.img"));
        assert_true(raw >= strlen("filters") + strlen("the vmas"));
        recv_one(f, got);
        recv_one(f, got);
        assert_true(json_equal(got, digests));
        char path[160];
        cleanup_free char *text = NULL;
        size_t len;
        snprintf(path, sizeof(path), "%s/mm-1.img", f->rx);
        assert_int_equal(em_read_file(path, 1024, &text, &len, &err), 0);
        assert_int_equal(len, strlen("the vmas"));
        assert_memory_equal(text, "the vmas", len);
}

static void test_pump_gives_up_at_timeout(void **state)
{
        struct fx *f = *state;
        struct em_early_images *w = NULL;
        cleanup_json json_t *digests = json_object();
        cleanup_error em_error_t err = NULL;
        uint64_t raw = 0;
        unsigned files = 0;

        assert_int_equal(em_early_images_watch(f->src, &w, &err), 0);
        pid_t pid = fake_criu(f->src, 10000);
        int64_t t0 = em_mono_ms();
        assert_int_equal(em_early_images_pump(w, pid, 300, f->a, 1, digests, &raw, &files, &err),
                         0);
        assert_true(em_mono_ms() - t0 < 5000);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        em_early_images_free(&w);
        /* No child to wait for, or no watch: nothing to do. */
        assert_int_equal(em_early_images_pump(NULL, 1, 10, f->a, 1, digests, &raw, &files, &err),
                         0);
}

static void test_watch_missing_dir(void **state)
{
        struct fx *f = *state;
        struct em_early_images *w = NULL;
        cleanup_error em_error_t err = NULL;
        char path[160];

        snprintf(path, sizeof(path), "%s/none", f->dir);
        assert_int_equal(em_early_images_watch(path, &w, &err), -1);
        assert_int_equal(em_error_status(err), ENOENT);
        assert_null(w);
}

/* A file the digests already name is not sent again, unless it changed:
 * then the final step fails instead of restoring a different dump. */
static void test_send_images_skips_sent(void **state)
{
        struct fx *f = *state;
        struct em_sync_state *st = NULL;
        struct em_sync_stats stats = {0};
        cleanup_json json_t *digests = json_object();
        cleanup_error em_error_t err = NULL;
        char path[160], digest[EM_DIGEST_STR_LEN + 1];

        assert_int_equal(em_sync_state_new(&st, &err), 0);
        put(f->src, "mm-1.img", "the vmas");
        snprintf(path, sizeof(path), "%s/mm-1.img", f->src);
        assert_int_equal(em_sha256_file(path, digest, NULL, &err), 0);
        json_object_set_new(digests, "mm-1.img", json_string(digest));
        assert_int_equal(em_sync_send_images(f->a, st, f->src, 1, digests, &stats, &err), 0);
        assert_int_equal(stats.files_sent, 0);
        put(f->src, "mm-1.img", "other vmas");
        assert_int_equal(em_sync_send_images(f->a, st, f->src, 1, digests, &stats, &err), -1);
        assert_int_equal(em_error_status(err), EILSEQ);
        em_sync_state_free(&st);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_names),
            cmocka_unit_test_setup_teardown(test_pump_sends_closed_files, setup, teardown),
            cmocka_unit_test_setup_teardown(test_pump_gives_up_at_timeout, setup, teardown),
            cmocka_unit_test_setup_teardown(test_watch_missing_dir, setup, teardown),
            cmocka_unit_test_setup_teardown(test_send_images_skips_sent, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
