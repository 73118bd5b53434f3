#include "migrate/common/doubt.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migrate/common/journal.h"
#include "migrate/common/outcome.h"
#include "migrate/common/session.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/log.h"

static char *outgoing_dir(const struct em_config *cfg, const char *session)
{
        char *p = NULL;

        if (!em_outcome_session_valid(session) ||
            asprintf(&p, "%s/outgoing/%s", cfg->root, session) < 0)
                return NULL;
        return p;
}

/* An outgoing session whose FINAL went out, unsettled, its process gone. */
static bool source_in_doubt(const char *dir)
{
        return em_journal_has(dir, "final") && !em_journal_has(dir, "committed") &&
               !em_journal_has(dir, "kept-local") && !em_journal_alive(dir);
}

static json_t *source_entry(const char *dir, const char *session)
{
        struct em_resolve_peer p = {0};
        cleanup_free char *fix = NULL, *spec_path = em_path_join(dir, "spec.json");
        cleanup_json json_t *spec = NULL;
        em_error_t e = NULL;
        json_t *j;

        em_resolve_peer_load(dir, &p, &e);
        em_error_free(&e);
        if (spec_path != NULL)
                em_json_load_file(spec_path, 16u << 20, &spec, &e);
        em_error_free(&e);
        if (asprintf(&fix,
                     "stopped here; `edgemig recover` settles it once %s answers; if that host "
                     "is gone for good: `edgemig recover --keep-local %s`",
                     p.target ? p.target : "the target", session) < 0)
                fix = NULL;
        j = json_pack("{s:s, s:s, s:s?, s:s?, s:s?}", "side", "source", "session", session,
                      "container", em_json_str(spec, "name"), "target", p.target, "fix", fix);
        em_resolve_peer_free(&p);
        return j;
}

static int list_sources(const struct em_config *cfg, json_t *out, em_error_t *err)
{
        cleanup_free char *base = em_path_join(cfg->root, "outgoing");
        cleanup_dir DIR *d = base ? opendir(base) : NULL;
        struct dirent *de;

        if (d == NULL)
                return errno == ENOENT ? 0 : em_error_set(err, errno, "opening %s", base);
        while ((de = readdir(d)) != NULL) {
                cleanup_free char *dir = outgoing_dir(cfg, de->d_name);
                if (dir != NULL && source_in_doubt(dir))
                        json_array_append_new(out, source_entry(dir, de->d_name));
        }
        return 0;
}

struct target_list {
        const struct em_config *cfg;
        json_t *out;
};

static void target_entry(const struct em_outcome *o, void *ud)
{
        struct target_list *l = ud;
        cleanup_free char *dir = NULL, *fix = NULL;

        if (o->state != EM_OUTCOME_RESTORED || em_outcome_copy_gone(l->cfg, o))
                return;
        dir = em_session_incoming_dir(l->cfg, o->session);
        if (dir != NULL && em_path_exists(dir) && em_journal_alive(dir))
                return; /* its session still waits for the commit */
        if (asprintf(&fix,
                     "runs here; the source settles it when it retries (`edgemig recover` "
                     "there); if the source is gone for good: `edgemig recover --keep-here %s`",
                     o->session) < 0)
                fix = NULL;
        json_array_append_new(l->out, json_pack("{s:s, s:s, s:s, s:s, s:s?}", "side", "target",
                                                "session", o->session, "container", o->container,
                                                "peer", o->peer, "fix", fix));
}

int em_migrate_in_doubt(const struct em_config *cfg, json_t **out, em_error_t *err)
{
        cleanup_json json_t *list = json_array();
        struct target_list l = {cfg, list};

        if (list == NULL)
                return em_error_set(err, ENOMEM, "recover");
        if (list_sources(cfg, list, err) < 0 ||
            em_outcome_each(cfg->root, target_entry, &l, err) < 0)
                return -1;
        *out = steal_pointer(&list);
        return 0;
}

static int read_container(const char *dir, char **name, em_error_t *err)
{
        cleanup_free char *spec_path = em_path_join(dir, "spec.json");
        cleanup_json json_t *spec = NULL;
        const char *n;

        if (spec_path == NULL || em_json_load_file(spec_path, 16u << 20, &spec, err) < 0)
                return -1;
        n = em_json_str(spec, "name");
        if (n == NULL || (*name = strdup(n)) == NULL)
                return em_error_set(err, EINVAL, "%s names no container", spec_path);
        return 0;
}

int em_migrate_keep_local(const struct em_config *cfg, const struct em_resolve_opts *ro,
                          const char *session, em_error_t *err)
{
        cleanup_free char *dir = outgoing_dir(cfg, session), *name = NULL;
        struct em_resolve_peer p = {0};
        enum em_outcome_state st;
        em_error_t e = NULL;
        int reached;

        if (dir == NULL || !em_path_exists(dir) || !source_in_doubt(dir))
                return em_error_set(err, ENOENT,
                                    "no outgoing session %s in doubt here (see `edgemig recover`)",
                                    session);
        if (em_resolve_peer_load(dir, &p, err) < 0 || read_container(dir, &name, err) < 0)
                return -1;
        reached = em_outcome_request(ro, &p, session, "query", &st, &e) == 0;
        em_resolve_peer_free(&p);
        if (reached)
                return em_error_set(err, EBUSY,
                                    "the target answers (session %s is %s there): run `edgemig "
                                    "recover` to settle it with the target instead",
                                    session, em_outcome_state_name(st));
        em_log_warn("keeping %s here: the target did not answer (%s)", name, em_error_msg(e));
        em_error_free(&e);
        if (em_journal_restore_kept(cfg, dir, name, ro->route_hook, err) < 0)
                return -1;
        /* What is left is a tombstone: should the target come back after
         * all, recovery aborts the session there, removing its copy. */
        cleanup_free char *images = em_path_join(dir, "images");
        if (images == NULL || em_rm_rf(images, err) < 0)
                return -1;
        return em_journal_write(dir, "kept-local", name, err);
}

int em_migrate_keep_here(const struct em_config *cfg, const char *session, em_error_t *err)
{
        cleanup_close int lock = -1;
        cleanup_free char *dir = em_session_incoming_dir(cfg, session);
        struct em_outcome o;

        if (!em_outcome_session_valid(session) || dir == NULL)
                return em_error_set(err, EINVAL, "'%s' is not a session id", session);
        if (em_path_exists(dir) && em_journal_alive(dir))
                return em_error_set(err, EBUSY, "session %s is still running", session);
        if (em_outcome_lock(cfg->root, session, 5000, &lock, err) < 0 ||
            em_outcome_load(cfg->root, session, &o, err) < 0)
                return -1;
        if (o.state == EM_OUTCOME_COMMITTED)
                return 0;
        if (o.state != EM_OUTCOME_RESTORED)
                return em_error_set(err, EINVAL, "session %s is %s here, not in doubt", session,
                                    em_outcome_state_name(o.state));
        o.state = EM_OUTCOME_COMMITTED;
        return em_outcome_store(cfg->root, &o, err);
}
