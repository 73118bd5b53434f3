#ifndef EDGEMIG_DELTA_PROCMEM_H
#define EDGEMIG_DELTA_PROCMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/error.h"

/* Reading a running process without freezing it: /proc/PID/maps + pagemap
 * select the pages CRIU would dump (present or swapped; anonymous, or
 * private copies of file pages), process_vm_readv copies them. Pages that
 * vanish while reading are skipped. */
struct em_procmem_stats {
        uint64_t mappings, pages_read, bytes_read;
        int64_t elapsed_ns;
};
typedef int (*em_procmem_page_fn)(void *ctx, uint64_t vaddr, const uint8_t *page, em_error_t *err);
int em_procmem_scan(pid_t pid, em_procmem_page_fn fn, void *ctx, struct em_procmem_stats *st,
                    em_error_t *err);

/* A run of pages: npages pages from start (page-aligned). */
struct em_procmem_run {
        uint64_t start, npages;
};
/* Reads only the pages of runs[0..n-1] of pid (those an earlier scan
 * picked), like em_procmem_scan: a page unmapped since is skipped. */
int em_procmem_read_runs(pid_t pid, const struct em_procmem_run *runs, size_t n,
                         em_procmem_page_fn fn, void *ctx, struct em_procmem_stats *st,
                         em_error_t *err);

#endif
