#include "checkpoint/pkeys.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/cleanup.h"
#include "util/proc.h"

int em_pkeys_scan(const char *smaps, unsigned *mappings, int *pkey, em_error_t *err)
{
        cleanup_fclose FILE *f = fopen(smaps, "re");
        char line[256];
        int key;

        *mappings = 0;
        *pkey = -1;
        if (f == NULL)
                return em_error_set(err, errno, "opening %s", smaps);
        while (fgets(line, sizeof(line), f) != NULL) {
                if (sscanf(line, "ProtectionKey: %d", &key) != 1 || key == 0)
                        continue;
                (*mappings)++;
                *pkey = key;
        }
        /* A read cut short is no "no keys": ESRCH when the process went
         * meanwhile. */
        if (ferror(f))
                return em_error_set(err, errno ? errno : EIO, "reading %s", smaps);
        return 0;
}

/* A process gone since it was listed (or going: its smaps ends with
 * ESRCH) has nothing to refuse; any other failure to read its smaps
 * leaves its keys unknown. */
static bool gone(const em_error_t e)
{
        return em_error_status(e) == ENOENT || em_error_status(e) == ESRCH;
}

int em_pkeys_refuse(const pid_t *pids, size_t n, const char *what, em_error_t *err)
{
        for (size_t i = 0; i < n; i++) {
                cleanup_error em_error_t e = NULL;
                char path[64];
                unsigned maps;
                int key;

                snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pids[i]);
                if (em_pkeys_scan(path, &maps, &key, &e) < 0 && !gone(e)) {
                        em_error_move(err, &e);
                        return em_error_wrap(err, "%s: checking process %d for protection keys",
                                             what, (int)pids[i]);
                }
                if (e != NULL || maps == 0)
                        continue; /* exited since listed, or no keys */
                return em_error_set_code(
                    err, EOPNOTSUPP,
                    "%s: process %d uses memory protection key %d (%u mappings), which "
                    "CRIU does not restore: the restored process would fail its next "
                    "pkey_mprotect (Node.js: start node with "
                    "--no-wasm-memory-protection-keys; docs/postcopy.md, \"Known problems\")",
                    what, (int)pids[i], key, maps);
        }
        return 0;
}

static bool listed(pid_t pid, const pid_t *pids, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (pids[i] == pid)
                        return true;
        return false;
}

int em_pkeys_refuse_except(const pid_t *pids, size_t n, const pid_t *skip, size_t nskip,
                           const char *what, em_error_t *err)
{
        for (size_t i = 0; i < n; i++)
                if (!listed(pids[i], skip, nskip) && em_pkeys_refuse(&pids[i], 1, what, err) < 0)
                        return -1;
        return 0;
}
