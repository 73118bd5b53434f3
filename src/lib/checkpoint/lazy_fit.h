/* Whether CRIU's lazy dump of a process can start, given its address space.
 *
 * CRIU 4.2.1's lazy dump (`--lazy-pages`, what post-copy and hybrid hand
 * off with) allocates, for each process, one struct iovec (16 bytes) per
 * page of its private mappings, reserved-but-untouched address space
 * included (criu/mem.c: create_page_pipe(nr_priv_pages, NULL, ...), whose
 * xmalloc in criu/page-pipe.c sizes the array). A plain dump puts that
 * array in the parasite's shared area, which the kernel does not charge,
 * so it is not affected. MariaDB reserves about 8 TiB (2^31 pages): 32
 * GiB in one malloc, which the kernel's default overcommit heuristic
 * (vm.overcommit_memory 0) refuses on a host with less RAM + swap:
 * "page-pipe: create_page_pipe: Can't allocate 34364784192 bytes". On a
 * 24 GiB host without swap, a process holding a 5632 GiB PROT_NONE
 * reservation dumped lazily and one with 6400 GiB failed so
 * (docs/postcopy.md, "Known problems"). So a migration checks before it
 * asks CRIU for a lazy dump: an explicit post-copy or hybrid one is
 * refused naming pre-copy, the default's hybrid hand-off falls back to a
 * plain final dump. */
#ifndef EDGEMIG_CHECKPOINT_LAZY_FIT_H
#define EDGEMIG_CHECKPOINT_LAZY_FIT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/error.h"

/* The pages of the private mappings (perms "...p") in a maps file
 * (/proc/PID/maps), as CRIU counts them, into *pages. */
int em_lazy_private_pages(const char *maps, uint64_t *pages, em_error_t *err);

/* The largest allocation the kernel grants one process, from the text of
 * /proc/meminfo and vm.overcommit_memory: 0 (heuristic) RAM + swap, 1 no
 * bound (UINT64_MAX), 2 CommitLimit less Committed_AS. */
uint64_t em_lazy_alloc_limit(const char *meminfo, int overcommit);

/* EOPNOTSUPP, naming the process, the sizes and the fix (pre-copy), when
 * CRIU's lazy dump of one of pids[0..n-1] could not allocate its page
 * list on this host; 0 otherwise. A process that exited since it was
 * listed is skipped. `what` names the container. */
int em_lazy_dump_refuse(const pid_t *pids, size_t n, const char *what, em_error_t *err);

#endif
