#include "container/procs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "container/freezer.h"
#include "util/cleanup.h"
#include "util/clock.h"
#include "util/proc.h"

/* A chain of parents longer than this is a loop read across a pid's
 * reuse; pids.max bounds a container's depth well below it. */
#define CHAIN_MAX 4096

/* A short `edgemig exec` (a health check's `redis-cli ping`) is over
 * within moments: only a stray still there after this long, looked for
 * again every STRAY_POLL_MS, refuses the container. */
#define STRAY_GRACE_MS 500
#define STRAY_POLL_MS  25

/* pid's parent from /proc/PID/stat (after the last ')': comm may hold
 * anything); -1 when pid is gone. */
static pid_t ppid_of(pid_t pid)
{
        char path[64], buf[1024];
        int ppid = -1;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        cleanup_fclose FILE *f = fopen(path, "re");
        if (f == NULL || fgets(buf, sizeof(buf), f) == NULL)
                return -1;
        char *p = strrchr(buf, ')');
        if (p == NULL || sscanf(p + 1, " %*c %d", &ppid) != 1)
                return -1;
        return (pid_t)ppid;
}

/* One walk up from pid: 1 reached init, 0 reached the top, -1 a process
 * of the chain is gone (its children are being reparented). */
static int walk(pid_t pid, pid_t init)
{
        for (int hops = 0; hops < CHAIN_MAX; hops++) {
                if (pid == init)
                        return 1;
                if (pid <= 1)
                        return 0;
                pid = ppid_of(pid);
                if (pid < 0)
                        return -1;
        }
        return 0;
}

int em_proc_descends(pid_t pid, pid_t init)
{
        /* A parent that exited mid-walk: its children go to init (the
         * container's pid namespace's reaper) or to a host subreaper; a
         * second walk sees where. pid itself gone: it exited. */
        for (int tries = 0; tries < 3; tries++) {
                int r = walk(pid, init);
                if (r >= 0)
                        return r;
                if (ppid_of(pid) < 0)
                        return -1;
        }
        return 1; /* still moving: not one to refuse the container for */
}

/* The first of pids[0..n-1] that does not descend from init; 0: none. */
static pid_t first_stray(const pid_t *pids, size_t n, pid_t init)
{
        for (size_t i = 0; i < n; i++)
                if (em_proc_descends(pids[i], init) == 0)
                        return pids[i];
        return 0;
}

/* One more look at the cgroup's list. */
static int stray_again(const char *fs, const char *cgroup, pid_t init, pid_t *stray,
                       em_error_t *err)
{
        cleanup_free pid_t *pids = NULL;
        cleanup_error em_error_t e = NULL;
        size_t n = 0;

        *stray = 0;
        if (em_freezer_procs_all(fs, cgroup, &pids, &n, &e) < 0) {
                if (em_error_status(e) == ENOENT)
                        return 0;
                em_error_move(err, &e);
                return -1;
        }
        *stray = first_stray(pids, n, init);
        return 0;
}

int em_cgroup_stray(const char *fs, const char *cgroup, pid_t init, const pid_t *pids, size_t n,
                    pid_t *stray, em_error_t *err)
{
        int64_t end = em_mono_ms() + STRAY_GRACE_MS;

        *stray = first_stray(pids, n, init);
        while (*stray != 0 && em_mono_ms() < end) {
                usleep(STRAY_POLL_MS * 1000);
                if (stray_again(fs, cgroup, init, stray, err) < 0)
                        return -1;
        }
        return 0;
}

static void comm_of(pid_t pid, char *out, size_t size)
{
        char path[64];

        snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
        cleanup_fclose FILE *f = fopen(path, "re");
        if (f == NULL || fgets(out, (int)size, f) == NULL)
                snprintf(out, size, "?");
        out[strcspn(out, "\n")] = '\0';
}

int em_container_stray_refuse(const char *name, pid_t stray, em_error_t *err)
{
        long ns_pid = stray > 0 ? em_proc_ns_pid(stray) : -1;
        char comm[64];

        if (ns_pid < 0) /* none, or it ended just now */
                return 0;
        comm_of(stray, comm, sizeof(comm));
        return em_error_set_code(
            err, EBUSY,
            "%s: its process %ld (%s) is not a descendant of its pid 1 (`edgemig exec` "
            "started it?): CRIU checkpoints pid 1's process tree only, so the checkpoint "
            "would end that process; let it finish or stop it (edgemig exec %s kill %ld), "
            "then retry",
            name, ns_pid, comm, name, ns_pid);
}
