#include "migrate/common/outcome_prune.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "migrate/common/outcome.h"
#include "util/cleanup.h"

struct final_rec {
        char session[33];
        time_t mtime;
};

struct final_list {
        const char *root;
        struct final_rec *v;
        size_t n, cap;
        bool oom;
};

static bool is_final(enum em_outcome_state s)
{
        return s == EM_OUTCOME_COMMITTED || s == EM_OUTCOME_ABORTED;
}

static char *record_path(const char *root, const char *session, const char *ext)
{
        char *p = NULL;

        return asprintf(&p, "%s/outcomes/%s.%s", root, session, ext) < 0 ? NULL : p;
}

static void collect(const struct em_outcome *o, void *ud)
{
        struct final_list *l = ud;
        cleanup_free char *path = record_path(l->root, o->session, "json");
        struct stat sb;

        if (!is_final(o->state) || path == NULL || stat(path, &sb) < 0)
                return;
        if (l->n == l->cap) {
                size_t cap = l->cap ? l->cap * 2 : 64;
                struct final_rec *v = realloc(l->v, cap * sizeof(*v));
                if (v == NULL) {
                        l->oom = true;
                        return;
                }
                l->v = v, l->cap = cap;
        }
        snprintf(l->v[l->n].session, sizeof(l->v[l->n].session), "%s", o->session);
        l->v[l->n++].mtime = sb.st_mtime;
}

/* Newest first. */
static int by_mtime_desc(const void *a, const void *b)
{
        const struct final_rec *x = a, *y = b;

        return x->mtime < y->mtime ? 1 : x->mtime > y->mtime ? -1 : 0;
}

/* Under the record's lock (not waited for), still final: gone. */
static bool prune_one(const char *root, const char *session)
{
        cleanup_free char *json = record_path(root, session, "json");
        cleanup_free char *lock = record_path(root, session, "lock");
        cleanup_close int fd = -1;
        struct em_outcome o;
        em_error_t e = NULL;
        bool gone = false;

        if (json == NULL || lock == NULL || em_outcome_lock(root, session, 0, &fd, &e) < 0 ||
            em_outcome_load(root, session, &o, &e) < 0) {
                em_error_free(&e);
                return false;
        }
        if (is_final(o.state) && unlink(json) == 0) {
                unlink(lock);
                gone = true;
        }
        return gone;
}

int em_outcome_prune(const char *root, int64_t max_age_s, size_t max_keep, time_t now,
                     size_t *pruned, em_error_t *err)
{
        struct final_list l = {.root = root};
        size_t n = 0;

        if (em_outcome_each(root, collect, &l, err) < 0 || l.oom) {
                free(l.v);
                return l.oom ? em_error_set(err, ENOMEM, "pruning outcome records") : -1;
        }
        if (l.n > 0)
                qsort(l.v, l.n, sizeof(*l.v), by_mtime_desc);
        for (size_t i = 0; i < l.n; i++)
                if ((i >= max_keep || now - l.v[i].mtime > max_age_s) &&
                    prune_one(root, l.v[i].session))
                        n++;
        free(l.v);
        if (pruned != NULL)
                *pruned = n;
        return 0;
}
