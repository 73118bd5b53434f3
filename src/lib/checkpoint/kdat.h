/* CRIU's kernel-feature cache, kept warm where CRIU would not keep it.
 *
 * Every CRIU run (dump, restore, the lazy-pages daemon, runc's version
 * check aside) starts by probing the kernel (kerndat: test mappings,
 * sockets, an `iptables -L`, ...), 50-150 ms here, unless it can load the
 * results from /run/criu.kdat. CRIU writes that file only when /run is a
 * tmpfs (so that a reboot into another kernel drops it), but it reads it
 * from wherever it is. Where /run is not a tmpfs (a host without systemd,
 * like the edge VMs this was measured on), edgemig keeps the cache on a
 * small tmpfs of its own, /run/edgemig/criu, filled once per boot by a
 * `criu check` run in a private mount namespace with that tmpfs on /run,
 * and points /run/criu.kdat at it with a symbolic link. After a reboot
 * the tmpfs is gone and the link dangles: CRIU probes again, as it would
 * without edgemig, until edgemig fills the cache again. A CRIU that cannot
 * read the cache (another build) unlinks the link; edgemig then fills it
 * again too.
 *
 * Where /run is a tmpfs, CRIU keeps its own cache and nothing here acts.
 * The cache is per host and per CRIU build (CRIU checks its own magic and
 * size and throws away a file that does not match). */
#ifndef EDGEMIG_CHECKPOINT_KDAT_H
#define EDGEMIG_CHECKPOINT_KDAT_H

#include <stdbool.h>

#include "util/config.h"
#include "util/error.h"

#define EM_KDAT_RUN_DIR   "/run"              /* CRIU's KDAT_RUNDIR, compiled into it */
#define EM_KDAT_CACHE_DIR "/run/edgemig/criu" /* edgemig's tmpfs */
#define EM_KDAT_NAME      "criu.kdat"

/* Where the cache lives; the defaults above outside tests. */
struct em_kdat_paths {
        const char *run_dir;   /* the directory CRIU reads criu.kdat from */
        const char *cache_dir; /* a tmpfs edgemig owns (mounted if it is not one) */
        const char *criu;      /* the CRIU that fills it */
};

/* True when CRIU run now would load a cache: run_dir is a tmpfs holding
 * criu.kdat (CRIU's own), or its criu.kdat is edgemig's link to a
 * non-empty cache file on the tmpfs cache_dir. */
bool em_kdat_is_warm(const struct em_kdat_paths *kp);

/* Points run_dir/criu.kdat at cache_dir/criu.kdat (atomically, by rename
 * of a fresh link over it). */
int em_kdat_link(const struct em_kdat_paths *kp, em_error_t *err);

/* Makes the cache warm if it is not (about 0.2 s once per boot, under a
 * lock: concurrent callers wait for one fill); microseconds when it is.
 * Needs root (a tmpfs mount, a private mount namespace). */
int em_kdat_warm_at(const struct em_kdat_paths *kp, em_error_t *err);

/* em_kdat_warm_at with the defaults and cfg's CRIU. */
int em_kdat_warm(const struct em_config *cfg, em_error_t *err);

/* em_kdat_warm, and a failure only logged: CRIU then probes as before. */
void em_kdat_warm_quiet(const struct em_config *cfg);

#endif
