#include "util/proc.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"

long em_proc_ns_pid(pid_t pid)
{
        char path[64], line[256];
        long v = -1;

        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        cleanup_fclose FILE *f = fopen(path, "re");
        while (f && fgets(line, sizeof(line), f)) {
                if (strncmp(line, "NSpid:", 6) != 0)
                        continue;
                for (char *p = line + 6, *end; *p; p = end) {
                        long x = strtol(p, &end, 10);
                        if (end == p)
                                break;
                        v = x;
                }
        }
        return v;
}

bool em_proc_runs(pid_t pid)
{
        char path[64], line[512];

        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        cleanup_fclose FILE *f = fopen(path, "re");
        /* Only "no such process" is gone: a /proc we could not read
         * (EMFILE, ENOMEM) says nothing, and a live process counted dead
         * would be left out of a pod's checkpoint. */
        if (f == NULL)
                return errno != ENOENT && errno != ESRCH;
        if (fgets(line, sizeof(line), f) == NULL)
                return ferror(f) && errno != ESRCH;
        const char *end = strrchr(line, ')'); /* the name may hold anything */
        return end == NULL || (end[1] == ' ' && end[2] != 'Z' && end[2] != 'X');
}

bool em_proc_has_mm(pid_t pid)
{
        char path[64], line[256];
        bool mm = false;

        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        cleanup_fclose FILE *f = fopen(path, "re");
        while (f && !mm && fgets(line, sizeof(line), f))
                mm = strncmp(line, "VmSize:", 7) == 0;
        return mm;
}

static bool listed(const pid_t *out, size_t n, pid_t pid)
{
        for (size_t i = 0; i < n; i++)
                if (out[i] == pid)
                        return true;
        return false;
}

/* Appends the children of every thread of pid to out[*n..max): a child
 * is listed under the thread that forked it (the main one or a worker),
 * which is how CRIU collects the tree too. A thread that ends meanwhile
 * hands its children to another thread of pid, read after it or not (and
 * then twice, once under each: the second is dropped). */
static void children_of(pid_t pid, pid_t *out, size_t *n, size_t max)
{
        char path[64];
        struct dirent *de;

        snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
        cleanup_dir DIR *d = opendir(path);
        while (d != NULL && *n < max && (de = readdir(d)) != NULL) {
                int child;
                if (de->d_name[0] < '1' || de->d_name[0] > '9')
                        continue;
                snprintf(path, sizeof(path), "/proc/%d/task/%.20s/children", (int)pid, de->d_name);
                cleanup_fclose FILE *f = fopen(path, "re");
                while (f && *n < max && fscanf(f, "%d", &child) == 1)
                        if (!listed(out, *n, child))
                                out[(*n)++] = child;
        }
}

size_t em_proc_tree(pid_t root, pid_t *out, size_t max)
{
        size_t n = 0;

        if (root <= 0 || max == 0)
                return 0;
        out[n++] = root;
        for (size_t i = 0; i < n; i++)
                children_of(out[i], out, &n, max);
        return n;
}
