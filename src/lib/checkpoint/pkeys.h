/* Memory protection keys, which CRIU does not restore.
 *
 * A process that allocated a protection key (pkey_alloc(2)) and tagged
 * mappings with it (pkey_mprotect(2)) comes back from a CRIU restore with
 * every mapping on key 0 and no key allocated (CRIU 4.2 restores the PKRU
 * register, not the keys). Its next pkey_mprotect with its old key fails
 * with EINVAL. Node.js 18 (V8 10.2) protects WebAssembly code with a key
 * where the CPU has PKU: after a restore, the next wasm code it commits
 * (lazy compilation, tier-up) aborts the process with "Fatal process out
 * of memory: WasmCodeManager::Commit: Cannot make pre-reserved region
 * writable" (docs/postcopy.md, "Known problems"). So a container whose
 * processes use keys is refused before anything moves, and before a local
 * checkpoint, whose restore would kill the service the same way
 * (ckpt_refuse.h). */
#ifndef EDGEMIG_CHECKPOINT_PKEYS_H
#define EDGEMIG_CHECKPOINT_PKEYS_H

#include <stddef.h>
#include <sys/types.h>

#include "util/error.h"

/* The mappings of an smaps file (/proc/PID/smaps) tagged with a key other
 * than 0, into *mappings, and one such key into *pkey (-1 when none).
 * Kernels or CPUs without protection keys print no ProtectionKey lines:
 * 0 mappings. */
int em_pkeys_scan(const char *smaps, unsigned *mappings, int *pkey, em_error_t *err);

/* EOPNOTSUPP, naming the process, the key and the fix, when one of
 * pids[0..n-1] has mappings tagged with a key; 0 otherwise. A process
 * that exited since it was listed is skipped; one whose smaps cannot be
 * read for another reason (EMFILE, ENOMEM) is an error, not a pass.
 * `what` names the container. */
int em_pkeys_refuse(const pid_t *pids, size_t n, const char *what, em_error_t *err);

/* The same for those of pids[0..n-1] that are not in skip[0..nskip-1]:
 * the processes of a container's cgroup are mostly those of its tree,
 * which the caller scanned already, and each scan of an smaps file walks
 * the process's page tables (about 10 ms for a 60 MB service, paid before
 * the freeze of a migration). */
int em_pkeys_refuse_except(const pid_t *pids, size_t n, const pid_t *skip, size_t nskip,
                           const char *what, em_error_t *err);

#endif
