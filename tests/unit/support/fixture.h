/* What many unit tests' fixtures need: a scratch tree under /tmp filled
 * with small files, a copy of a fixture directory, and child processes
 * that hold a state the code under test inspects. Each helper asserts,
 * so a test that calls it needs no error handling of its own. */
#ifndef EDGEMIG_TESTS_FIXTURE_H
#define EDGEMIG_TESTS_FIXTURE_H

#include <stddef.h>
#include <sys/types.h>

/* A new empty directory /tmp/em-test-TAG.XXXXXX (malloc'd path). */
char *em_test_tmpdir(const char *tag);

/* Writes text to dir/rel, making rel's parent directories. */
void em_test_put(const char *dir, const char *rel, const char *text);

/* A fake v1 freezer hierarchy under fs (container/freezer.h's fs) in
 * which cgroup (a path from "/") lists pids[0..n-1]. */
void em_test_cgroup_procs(const char *fs, const char *cgroup, const pid_t *pids, size_t n);

/* The first 4 KiB of dir/rel as a string (a static buffer). */
const char *em_test_get(const char *dir, const char *rel);

/* A new directory holding a copy of from's plain files (not recursive). */
char *em_test_copy_dir(const char *from, const char *tag);

/* Removes the tree at dir and frees dir. */
void em_test_rm(char *dir);

/* A child that holds a PROT_NONE reservation a quarter over what CRIU's
 * page list may take here (checkpoint/lazy_fit.h: 16 bytes a page), or 0
 * where no such bound applies (overcommit mode 1, or over 64 TiB). The
 * child dies with this process. */
pid_t em_test_reserving_child(void);

/* A child running argv (PATH searched) that dies with this process,
 * returned once it has exec'd: code that looks at /proc/PID then sees the
 * program, not a copy of this test, however late the child runs. */
pid_t em_test_exec_child(char *const argv[]);

/* Kills and reaps pid. */
void em_test_reap(pid_t pid);

#endif
