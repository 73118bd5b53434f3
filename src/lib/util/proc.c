#include "util/proc.h"

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
        if (f == NULL || fgets(line, sizeof(line), f) == NULL)
                return false;
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

size_t em_proc_tree(pid_t root, pid_t *out, size_t max)
{
        size_t n = 0;

        if (root <= 0 || max == 0)
                return 0;
        out[n++] = root;
        for (size_t i = 0; i < n; i++) {
                char path[64];
                int child;
                snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)out[i], (int)out[i]);
                cleanup_fclose FILE *f = fopen(path, "re");
                while (f && n < max && fscanf(f, "%d", &child) == 1)
                        out[n++] = child;
        }
        return n;
}
