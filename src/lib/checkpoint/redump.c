#include "checkpoint/redump.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/proc.h"

#define MAX_TASKS 4096

bool em_redump_refused(uid_t ns_dir_owner, uid_t host_euid, bool own_userns)
{
        /* A dumpable process's ns dir is its own; a non-dumpable one's
         * belongs to its memory map's namespace root: the container's
         * (host id base, fine) or, after a restore, host root. */
        return own_userns && ns_dir_owner == 0 && host_euid != 0;
}

/* The effective uid on /proc/PID/status's Uid line; -1 if gone or if
 * the process has no memory map. Without one (a zombie, or a process
 * past exit_mm) procfs gives its files to host root whatever its
 * dumpability, and CRIU has no memory to dump: it is no refusal. Read
 * after the ns dir's stat, so a process that exits in between shows
 * here as map-less. */
static long host_euid(pid_t pid)
{
        char path[64], line[256];
        long euid = -1;
        bool mm = false;

        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        cleanup_fclose FILE *f = fopen(path, "re");
        while (f && fgets(line, sizeof(line), f)) {
                if (strncmp(line, "VmSize:", 7) == 0)
                        mm = true;
                else if (euid < 0)
                        sscanf(line, "Uid: %*u %ld", &euid);
        }
        return mm ? euid : -1;
}

static bool own_userns(pid_t pid)
{
        char path[64], self[64] = "", other[64] = "";

        snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)pid);
        ssize_t a = readlink("/proc/self/ns/user", self, sizeof(self) - 1);
        ssize_t b = readlink(path, other, sizeof(other) - 1);
        return a > 0 && b > 0 && strcmp(self, other) != 0;
}

int em_redump_check(const char *name, pid_t root, em_error_t *err)
{
        cleanup_free pid_t *pids = calloc(MAX_TASKS, sizeof(pid_t));
        struct stat st;
        char path[64];

        if (pids == NULL)
                return em_error_set(err, ENOMEM, "checking %s", name);
        size_t n = em_proc_tree(root, pids, MAX_TASKS);
        for (size_t i = 0; i < n; i++) {
                snprintf(path, sizeof(path), "/proc/%d/ns", (int)pids[i]);
                if (stat(path, &st) < 0)
                        continue;
                long euid = host_euid(pids[i]);
                if (euid < 0 || !em_redump_refused(st.st_uid, (uid_t)euid, own_userns(pids[i])))
                        continue;
                return em_error_set(
                    err, EPERM,
                    "cannot checkpoint %s: its process %ld dropped privileges without an exec "
                    "(not dumpable) and was restored by CRIU, which cannot checkpoint it again "
                    "(docs/security.md); make the service stay dumpable after it drops them "
                    "(PR_SET_DUMPABLE; MariaDB: core-file), then restart it",
                    name, em_proc_ns_pid(pids[i]));
        }
        return 0;
}
