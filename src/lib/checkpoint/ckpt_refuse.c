#include "checkpoint/ckpt_refuse.h"

#include <errno.h>
#include <stdlib.h>

#include "checkpoint/pkeys.h"
#include "container/container.h"
#include "container/freezer.h"
#include "container/procs.h"
#include "state/state.h"
#include "util/cleanup.h"
#include "util/proc.h"

/* The processes of cgroup into *pids: every one of the container, those
 * `edgemig exec` started included. A cgroup that does not exist holds
 * none. */
static int list_cgroup(const char *fs, const char *cgroup, pid_t **pids, size_t *n, em_error_t *err)
{
        cleanup_error em_error_t e = NULL;

        *n = 0;
        if (em_freezer_procs_all(fs, cgroup, pids, n, &e) == 0 || em_error_status(e) == ENOENT)
                return 0;
        em_error_move(err, &e);
        return -1;
}

/* The tree's processes first: the cgroup's scan skips those (each scan
 * of an smaps file walks the process's page tables). */
static int refuse_pkeys(const pid_t *tree, size_t ntree, const pid_t *cg, size_t ncg,
                        const char *name, em_error_t *err)
{
        if (em_pkeys_refuse(tree, ntree, name, err) < 0)
                return -1;
        return em_pkeys_refuse_except(cg, ncg, tree, ntree, name, err);
}

int em_ckpt_refuse_cgroup(const char *fs, const char *cgroup, const char *name,
                          const struct em_ckpt_procs *procs, em_error_t *err)
{
        cleanup_free pid_t *tree = NULL, *cg = NULL;
        const pid_t *listed = procs->pids;
        size_t nlisted = procs->n, ncg = 0;
        pid_t stray = 0;

        if (procs->init <= 0)
                return 0;
        if (listed == NULL) {
                if ((tree = calloc(EM_PROC_TREE_MAX, sizeof(pid_t))) == NULL)
                        return em_error_set(err, ENOMEM, "listing the processes of %s", name);
                nlisted = em_proc_tree(procs->init, tree, EM_PROC_TREE_MAX);
                listed = tree;
        }
        if (list_cgroup(fs, cgroup, &cg, &ncg, err) < 0)
                return em_error_wrap(err, "listing the processes of %s", name);
        if (refuse_pkeys(listed, nlisted, cg, ncg, name, err) < 0)
                return -1;
        if (em_cgroup_stray(fs, cgroup, procs->init, cg, ncg, &stray, err) < 0)
                return em_error_wrap(err, "listing the processes of %s", name);
        return em_container_stray_refuse(name, stray, err);
}

int em_ckpt_refuse(const struct em_config *cfg, const char *name, const struct em_ckpt_procs *procs,
                   em_error_t *err)
{
        cleanup_container_paths struct em_container_paths p = {0};

        if (em_container_paths_init(cfg, name, &p, err) < 0)
                return -1;
        return em_ckpt_refuse_cgroup(NULL, p.cgroup, name, procs, err);
}

int em_ckpt_refuse_recorded(const struct em_config *cfg, const char *const *names, size_t n,
                            em_error_t *err)
{
        cleanup_state struct em_state *st = NULL;

        if (em_state_open(cfg->root, &st, err) < 0)
                return -1;
        for (size_t i = 0; i < n; i++) {
                cleanup_container_rec struct em_container_rec *rec = NULL;
                if (em_state_container_get(st, names[i], &rec, err) < 0)
                        return -1;
                const struct em_ckpt_procs procs = {.init = rec->pid};
                if (em_ckpt_refuse(cfg, names[i], &procs, err) < 0)
                        return -1;
        }
        return 0;
}
