#include "checkpoint/lazy_fit.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"
#include "util/fsutil.h"

#define PAGE  ((uint64_t)4096)
#define IOVEC ((uint64_t)16) /* sizeof(struct iovec) on 64-bit */

int em_lazy_private_pages(const char *maps, uint64_t *pages, em_error_t *err)
{
        cleanup_fclose FILE *f = fopen(maps, "re");
        char line[512];
        uint64_t lo, hi;
        char perms[8];

        *pages = 0;
        if (f == NULL)
                return em_error_set(err, errno, "opening %s", maps);
        while (fgets(line, sizeof(line), f) != NULL) {
                /* [vsyscall] lies above the task size: CRIU leaves it out. */
                if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %7s", &lo, &hi, perms) != 3 || hi <= lo ||
                    perms[3] != 'p' || strstr(line, "[vsyscall]") != NULL)
                        continue;
                *pages += (hi - lo) / PAGE;
        }
        return 0;
}

static uint64_t meminfo_kb(const char *meminfo, const char *key)
{
        const char *p = strstr(meminfo, key);

        return p != NULL ? strtoull(p + strlen(key), NULL, 10) : 0;
}

uint64_t em_lazy_alloc_limit(const char *meminfo, int overcommit)
{
        if (overcommit == 1)
                return UINT64_MAX;
        if (overcommit == 2) {
                uint64_t limit = meminfo_kb(meminfo, "CommitLimit:");
                uint64_t used = meminfo_kb(meminfo, "Committed_AS:");
                return limit > used ? (limit - used) * 1024 : 0;
        }
        return (meminfo_kb(meminfo, "MemTotal:") + meminfo_kb(meminfo, "SwapTotal:")) * 1024;
}

static int host_limit(uint64_t *limit, int *mode, em_error_t *err)
{
        cleanup_free char *meminfo = NULL, *oc = NULL;

        if (em_read_file("/proc/meminfo", 1 << 16, &meminfo, NULL, err) < 0 ||
            em_read_file("/proc/sys/vm/overcommit_memory", 64, &oc, NULL, err) < 0)
                return em_error_wrap(err, "the host's memory limits");
        *mode = atoi(oc);
        *limit = em_lazy_alloc_limit(meminfo, *mode);
        return 0;
}

int em_lazy_dump_refuse(const pid_t *pids, size_t n, const char *what, em_error_t *err)
{
        uint64_t limit = 0, pages;
        int mode = 0;

        if (host_limit(&limit, &mode, err) < 0)
                return -1;
        for (size_t i = 0; i < n; i++) {
                cleanup_error em_error_t e = NULL;
                char path[64];

                snprintf(path, sizeof(path), "/proc/%d/maps", (int)pids[i]);
                if (em_lazy_private_pages(path, &pages, &e) < 0 || (pages + 1) * IOVEC <= limit)
                        continue; /* exited since listed, or fits */
                return em_error_set_code(
                    err, EOPNOTSUPP,
                    "%s: CRIU's lazy dump (post-copy, hybrid) cannot start: process %d has "
                    "%" PRIu64 " GiB of private mappings (reserved or not), for which CRIU "
                    "allocates a %" PRIu64 " GiB page list, and this host grants one "
                    "allocation %" PRIu64 " GiB (vm.overcommit_memory=%d); migrate it with "
                    "--mode precopy (a plain final dump; docs/postcopy.md, \"Known problems\")",
                    what, (int)pids[i], pages * PAGE >> 30, (pages + 1) * IOVEC >> 30, limit >> 30,
                    mode);
        }
        return 0;
}
