/* What a container's processes hold in memory, as the kernel accounts it
 * in /proc/PID/smaps_rollup: proportional set sizes, in which a page that n
 * processes map counts 1/n in each. Summed over a container's processes, a
 * page that all of them map (SysV or POSIX shared memory, a shared
 * anonymous mapping, copy-on-write pages after fork, the binary) counts
 * once. The per-process totals (statm, RssShmem in status) count it once
 * per process: a prefork service of 8 workers on 1 GiB of shared memory
 * would look like 8 GiB. The sums are exact for what only the container
 * maps, which is all of its anonymous and shared memory; a file page also
 * mapped outside (another container of the same image) counts in part. */
#ifndef EDGEMIG_CONTAINER_MEMUSAGE_H
#define EDGEMIG_CONTAINER_MEMUSAGE_H

#include <stdint.h>
#include <sys/types.h>

#include "util/error.h"

struct em_memusage {
        uint64_t resident; /* Pss: every resident page, file-backed too */
        uint64_t dumped;   /* Pss_Anon + Pss_Shmem + SwapPss: what CRIU dumps */
};

/* Parses the text of one smaps_rollup into *out (bytes). A text without
 * Pss, Pss_Anon or Pss_Shmem (a kernel before 5.8) is EPROTO. */
int em_memusage_parse(const char *text, struct em_memusage *out, em_error_t *err);

/* Adds pid's share to *sum. */
int em_memusage_add_pid(pid_t pid, struct em_memusage *sum, em_error_t *err);

#endif
