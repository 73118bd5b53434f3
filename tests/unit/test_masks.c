/* The masked directories as CRIU external mounts: the criu.conf lines and
 * the read-only tmpfs they map to. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "container/bundle.h"
#include "container/masks.h"
#include "util/cleanup.h"

static bool has_line(const char *text, const char *line)
{
        size_t n = strlen(line);

        for (const char *p = strstr(text, line); p; p = strstr(p + 1, line))
                if ((p == text || p[-1] == '\n') && p[n] == '\n')
                        return true;
        return false;
}

/* Every masked path's key maps to the directory; only the directories
 * among them (on this host) are external on a dump: runc names the
 * /dev/null it binds over a masked file itself. */
static void test_conf_lines(void **state)
{
        cleanup_free char *conf = em_masks_criu_conf("/x/mask");
        char line[256];
        struct stat st;

        (void)state;
        assert_non_null(conf);
        for (const char *const *p = em_bundle_masked_paths(); *p; p++) {
                snprintf(line, sizeof(line), "external mnt[edgemig-mask%s]:/x/mask", *p);
                assert_true(has_line(conf, line));
                snprintf(line, sizeof(line), "external mnt[%s]:edgemig-mask%s", *p, *p);
                bool dir = stat(*p, &st) == 0 && S_ISDIR(st.st_mode);
                if (has_line(conf, line) != dir)
                        fail_msg("%s: dump line %s", *p, dir ? "missing" : "for a non-directory");
        }
        /* /proc/keys is a file on every kernel: runc's bind, not ours */
        assert_false(has_line(conf, "external mnt[/proc/keys]:edgemig-mask/proc/keys"));
}

static void test_key_of(void **state)
{
        (void)state;
        assert_true(em_masks_key_of("edgemig-mask/proc/acpi", "/proc/acpi"));
        assert_false(em_masks_key_of("edgemig-mask/proc/acpi", "/sys/firmware"));
        assert_false(em_masks_key_of("/proc/acpi", "/proc/acpi"));
        assert_false(em_masks_key_of("edgemig-mask", ""));
        assert_false(em_masks_key_of("edgemig-mask/proc/acpi/x", "/proc/acpi"));
}

static char dir[64];

static int setup(void **state)
{
        (void)state;
        strcpy(dir, "/var/tmp/em-mask-XXXXXX");
        return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
        (void)state;
        while (umount2(dir, MNT_DETACH) == 0)
                ;
        rmdir(dir);
        return 0;
}

/* Mounted once, read-only and empty: nothing can be created in it, and a
 * second call finds it ready instead of stacking another mount. */
static void test_mount_read_only(void **state)
{
        em_error_t err = NULL;
        char file[96];

        (void)state;
        if (geteuid() != 0)
                skip();
        assert_false(em_masks_ready(dir));
        assert_int_equal(em_masks_mount_at(dir, &err), 0);
        assert_true(em_masks_ready(dir));
        snprintf(file, sizeof(file), "%s/x", dir);
        assert_int_equal(open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600), -1);
        assert_int_equal(errno, EROFS);
        assert_int_equal(em_masks_mount_at(dir, &err), 0);
        assert_int_equal(umount(dir), 0);
        assert_false(em_masks_ready(dir));
}

/* A writable tmpfs already there is refused with what to do about it. */
static void test_refuse_writable_tmpfs(void **state)
{
        em_error_t err = NULL;

        (void)state;
        if (geteuid() != 0)
                skip();
        assert_int_equal(mount("other", dir, "tmpfs", 0, "size=4k"), 0);
        assert_int_equal(em_masks_mount_at(dir, &err), -1);
        assert_int_equal(em_error_status(err), EEXIST);
        assert_non_null(strstr(em_error_msg(err), "unmount it"));
        em_error_free(&err);
        assert_false(em_masks_ready(dir));
}

static int mounts_at(const char *path)
{
        cleanup_fclose FILE *f = fopen("/proc/self/mountinfo", "re");
        char line[1024], mp[512];
        int n = 0;

        assert_non_null(f);
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "%*s %*s %*s %*s %511s", mp) == 1 && strcmp(mp, path) == 0)
                        n++;
        return n;
}

/* A child that mounts the mask once the pipe closes; exits 0 if it could. */
static pid_t racer(const int go[2])
{
        pid_t pid = fork();
        char c;

        assert_true(pid >= 0);
        if (pid == 0) {
                em_error_t err = NULL;
                close(go[1]);
                (void)!read(go[0], &c, 1);
                _exit(em_masks_mount_at(dir, &err) == 0 ? 0 : 1);
        }
        return pid;
}

/* Bundles written at once (restores after a boot) mount the mask once
 * between them, and none of them takes another's fresh mask for a
 * writable tmpfs. */
static void test_mount_in_parallel(void **state)
{
        (void)state;
        if (geteuid() != 0)
                skip();
        for (int round = 0; round < 40; round++) {
                int go[2], status;
                pid_t pids[4];
                assert_int_equal(pipe(go), 0);
                for (int i = 0; i < 4; i++)
                        pids[i] = racer(go);
                close(go[0]);
                close(go[1]); /* all start */
                for (int i = 0; i < 4; i++) {
                        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
                        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
                }
                assert_int_equal(mounts_at(dir), 1);
                while (umount2(dir, MNT_DETACH) == 0)
                        ;
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_conf_lines),
            cmocka_unit_test(test_key_of),
            cmocka_unit_test_setup_teardown(test_mount_read_only, setup, teardown),
            cmocka_unit_test_setup_teardown(test_refuse_writable_tmpfs, setup, teardown),
            cmocka_unit_test_setup_teardown(test_mount_in_parallel, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
