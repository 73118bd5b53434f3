/* Named volumes over a migration connection: each volume is a tree sent
 * like the writable layer (source/upper_send.c: manifest diffs in every pre-copy
 * round, the final diff after the freeze), announced by a FILE_ROOT frame
 * {"volume": NAME}; FILE_ROOT {} returns to the writable layer.
 *
 * The target keeps a volume's copy in its page cache directory for this
 * source (<cache>/volumes/NAME), so it outlives a session: at the plan it
 * tells the source the manifest of what it holds, and the source diffs
 * against that. After a `prepare`, or a migration that was rolled back,
 * only the files that changed since cross. Just before the restore the
 * copies move to <root>/volumes/NAME. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "container/container.h"
#include "container/volume.h"
#include "delta/upper.h"
#include "migrate/common/proto.h"
#include "migrate/common/volume_sync.h"
#include "migrate/source/pagesync.h"
#include "migrate/source/upper_send.h"
#include "migrate/target/upper_recv.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/log.h"

/* The target reports at most this much manifest JSON in its plan answer
 * (the frame limit is 16 MiB); a larger copy is emptied instead and the
 * volume travels whole. */
#define HAVE_MAX (4u << 20)

struct em_volume_tx {
        size_t n;
        char **names, **dirs;
        struct em_upper_state **st;
};

void em_volume_tx_free(struct em_volume_tx **tx)
{
        if (*tx == NULL)
                return;
        for (size_t i = 0; i < (*tx)->n; i++)
                em_upper_state_free(&(*tx)->st[i]);
        em_strv_free((*tx)->names);
        em_strv_free((*tx)->dirs);
        free((*tx)->st);
        free(*tx);
        *tx = NULL;
}

static size_t spec_volume_count(const json_t *spec)
{
        size_t n = 0;

        for (size_t i = 0; i < json_array_size(json_object_get(spec, "mounts")); i++)
                n += em_spec_volume(spec, i) != NULL;
        return n;
}

/* have[name]: the target's manifest of its copy; a malformed one is the
 * target's fault, so the migration stops. */
static int tx_prev(struct em_upper_state *st, const json_t *have, const char *name, em_error_t *err)
{
        if (em_upper_state_set_json(st, json_object_get(have, name), err) < 0)
                return em_error_wrap(err, "the target's copy of volume %s", name);
        return 0;
}

static int tx_add(struct em_volume_tx *tx, const struct em_config *cfg, const char *name,
                  const json_t *have, em_error_t *err)
{
        size_t i = tx->n;

        if ((tx->names[i] = strdup(name)) == NULL ||
            (tx->dirs[i] = em_volume_path(cfg, name)) == NULL)
                return em_error_set(err, ENOMEM, "volume %s", name);
        if (!em_path_exists(tx->dirs[i]))
                return em_error_set(err, ENOENT, "volume %s of the container is missing (%s)", name,
                                    tx->dirs[i]);
        if (em_upper_state_new(&tx->st[i], err) < 0)
                return -1;
        tx->n++;
        return tx_prev(tx->st[i], have, name, err);
}

int em_volume_tx_new(const struct em_config *cfg, const json_t *spec, const json_t *have,
                     struct em_volume_tx **out, em_error_t *err)
{
        size_t n = spec_volume_count(spec);
        struct em_volume_tx *tx;

        *out = NULL;
        if (n == 0)
                return 0;
        if ((tx = *out = calloc(1, sizeof(*tx))) == NULL ||
            (tx->names = calloc(n + 1, sizeof(char *))) == NULL ||
            (tx->dirs = calloc(n + 1, sizeof(char *))) == NULL ||
            (tx->st = calloc(n, sizeof(*tx->st))) == NULL)
                return em_error_set(err, ENOMEM, "volumes");
        for (size_t i = 0; i < json_array_size(json_object_get(spec, "mounts")); i++) {
                const char *name = em_spec_volume(spec, i);
                if (name != NULL && tx_add(tx, cfg, name, have, err) < 0)
                        return -1;
        }
        return 0;
}

int em_sync_volumes_plan(struct em_sync_state *st, const struct em_config *cfg, const json_t *spec,
                         const json_t *have, em_error_t *err)
{
        em_volume_tx_free(em_sync_state_volumes(st));
        if (spec_volume_count(spec) > 0 &&
            em_volumes_movable(cfg, spec, em_json_str(spec, "name"), err) < 0)
                return -1;
        return em_volume_tx_new(cfg, spec, have, em_sync_state_volumes(st), err);
}

static bool has_volume(const json_t *mounts, const char *name)
{
        size_t i;
        json_t *m;

        json_array_foreach(mounts, i, m)
        {
                if (strcmp(em_json_str(m, "name") ?: "", name) == 0)
                        return true;
        }
        return false;
}

json_t *em_volume_spec_union(const json_t *specs)
{
        json_t *u = json_pack("{s:[]}", "mounts"), *spec;
        json_t *mounts = json_object_get(u, "mounts");
        size_t i;

        json_array_foreach(specs, i, spec)
        {
                for (size_t k = 0; u && k < json_array_size(json_object_get(spec, "mounts")); k++) {
                        const char *name = em_spec_volume(spec, k);
                        if (name != NULL && !has_volume(mounts, name))
                                json_array_append(
                                    mounts, json_array_get(json_object_get(spec, "mounts"), k));
                }
        }
        return u;
}

static int send_root(em_conn_t *c, const char *name, em_error_t *err)
{
        cleanup_json json_t *msg = name ? json_pack("{s:s}", "volume", name) : json_object();

        return em_proto_send_json(c, EM_FRAME_FILE_ROOT, msg, err);
}

int em_volume_tx_send(struct em_volume_tx *tx, em_conn_t *c, bool live, int level,
                      struct em_sync_stats *stats, em_error_t *err)
{
        for (size_t i = 0; i < tx->n; i++) {
                if (send_root(c, tx->names[i], err) < 0 ||
                    em_upper_send_tree(c, tx->st[i], tx->dirs[i], live, level, stats, err) < 0)
                        return em_error_wrap(err, "volume %s", tx->names[i]);
        }
        return send_root(c, NULL, err);
}

/* ---- target ---- */

struct em_volume_rx {
        size_t n;
        char **names, **dirs; /* the copies in the page cache dir */
        struct em_upper_rx **rx;
        bool *installed; /* moved to <root>/volumes by this session */
};

void em_volume_rx_free(struct em_volume_rx **rx)
{
        if (*rx == NULL)
                return;
        for (size_t i = 0; i < (*rx)->n; i++)
                em_upper_rx_free(&(*rx)->rx[i]);
        em_strv_free((*rx)->names);
        em_strv_free((*rx)->dirs);
        free((*rx)->rx);
        free((*rx)->installed);
        free(*rx);
        *rx = NULL;
}

int em_tree_copy_have(const char *dir, const char *what, const char *key, size_t max, json_t *have,
                      em_error_t *err)
{
        cleanup_manifest struct em_upper_manifest m = {0};
        cleanup_free char *json = NULL;
        cleanup_json json_t *j = NULL;
        size_t len = 0;

        if (em_upper_scan(dir, &m, err) < 0 ||
            em_upper_manifest_to_json(&m, true, &json, &len, err) < 0)
                return em_error_wrap(err, "reading the copy of %s", what);
        if (len > max) {
                free(steal_pointer(&json));
                em_log_info("%s: %zu bytes of manifest with block hashes, sent without", what, len);
                if (em_upper_manifest_to_json(&m, false, &json, &len, err) < 0)
                        return em_error_wrap(err, "reading the copy of %s", what);
        }
        if (len > max) {
                em_log_info("%s: %zu bytes of manifest, sent whole", what, len);
                return em_rm_rf(dir, err) < 0 ? -1 : em_mkdir_p(dir, 0755, err);
        }
        if (em_json_parse(json, len, "manifest", &j, err) < 0)
                return -1;
        return json_object_set(have, key, j);
}

static int rx_have(const char *dir, const char *name, json_t *have, em_error_t *err)
{
        cleanup_free char *what = NULL;

        if (asprintf(&what, "volume %s", name) < 0)
                return em_error_set(err, ENOMEM, "volume %s", name);
        return em_tree_copy_have(dir, what, name, HAVE_MAX, have, err);
}

static int rx_add(struct em_volume_rx *v, const char *top, const char *name, json_t *have,
                  em_error_t *err)
{
        size_t i = v->n;

        if ((v->names[i] = strdup(name)) == NULL || (v->dirs[i] = em_path_join(top, name)) == NULL)
                return em_error_set(err, ENOMEM, "volume %s", name);
        if (em_mkdir_p(v->dirs[i], 0755, err) < 0 || rx_have(v->dirs[i], name, have, err) < 0 ||
            em_upper_rx_new(v->dirs[i], &v->rx[i], err) < 0)
                return -1;
        v->n++;
        return 0;
}

int em_volume_rx_new(const char *cache_dir, const json_t *spec, struct em_volume_rx **out,
                     json_t *have, em_error_t *err)
{
        size_t n = spec_volume_count(spec);
        cleanup_free char *top = em_path_join(cache_dir, "volumes");
        struct em_volume_rx *v = *out = calloc(1, sizeof(*v));

        if (v == NULL || top == NULL || (v->names = calloc(n + 1, sizeof(char *))) == NULL ||
            (v->dirs = calloc(n + 1, sizeof(char *))) == NULL ||
            (v->rx = calloc(n + 1, sizeof(*v->rx))) == NULL ||
            (v->installed = calloc(n + 1, sizeof(bool))) == NULL)
                return em_error_set(err, ENOMEM, "volumes");
        for (size_t i = 0; i < json_array_size(json_object_get(spec, "mounts")); i++) {
                const char *name = em_spec_volume(spec, i);
                if (name != NULL && rx_add(v, top, name, have, err) < 0)
                        return -1;
        }
        return 0;
}

int em_volume_rx_root(struct em_volume_rx *v, const struct em_frame *f, struct em_upper_rx **cur,
                      em_error_t *err)
{
        cleanup_json json_t *msg = NULL;

        if (em_json_parse((const char *)f->payload, f->length, "FILE_ROOT", &msg, err) < 0)
                return -1;
        return em_volume_rx_root_json(v, msg, cur, err);
}

int em_volume_rx_root_json(struct em_volume_rx *v, const json_t *msg, struct em_upper_rx **cur,
                           em_error_t *err)
{
        json_t *jv = json_object_get(msg, "volume");
        const char *name = json_string_value(jv);
        if (!json_is_object(msg) || json_object_size(msg) != (jv != NULL) || (jv && name == NULL))
                return em_error_set(err, EPROTO, "protocol error: FILE_ROOT is {} or {\"volume\"}");
        if (name == NULL) {
                *cur = NULL;
                return 0;
        }
        for (size_t i = 0; v && i < v->n; i++) {
                if (strcmp(v->names[i], name) == 0) {
                        *cur = v->rx[i];
                        return 0;
                }
        }
        return em_error_set(err, EPROTO,
                            "protocol error: FILE_ROOT names volume '%.64s', not one "
                            "of the container's",
                            name);
}

int em_volume_rx_finish(struct em_volume_rx *v, em_error_t *err)
{
        for (size_t i = 0; v && i < v->n; i++) {
                if (em_upper_rx_finish(v->rx[i], err) < 0)
                        return em_error_wrap(err, "volume %s", v->names[i]);
        }
        return 0;
}

/* Volume i's copy into <root>/volumes, or back into the cache. Never
 * over a volume of that name: the plan found none, but one may have been
 * created here since (`run -v`), and rename(2) would replace it if it is
 * empty. */
static int move_volume(const struct em_config *cfg, struct em_volume_rx *v, size_t i, bool back,
                       em_error_t *err)
{
        cleanup_free char *top = em_config_path(cfg, "volumes");
        cleanup_free char *dst = em_volume_path(cfg, v->names[i]);

        if (top == NULL || dst == NULL)
                return em_error_set(err, ENOMEM, "volume %s", v->names[i]);
        if (em_mkdir_p(top, 0711, err) < 0)
                return -1;
        const char *from = back ? dst : v->dirs[i], *to = back ? v->dirs[i] : dst;
        if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0) {
                v->installed[i] = !back;
                return 0;
        }
        if (errno == EEXIST && !back)
                return em_error_set_code(err, EEXIST,
                                         "volume %s was created on this host during the "
                                         "migration: not replacing it (if it is not needed, "
                                         "`edgemig volume rm %s`, then migrate again)",
                                         v->names[i], v->names[i]);
        return em_error_set(err, errno, "moving volume %s to %s", v->names[i], to);
}

/* Moves back what this session installed; the first failure in *err. */
static int uninstall(struct em_volume_rx *v, const struct em_config *cfg, em_error_t *err)
{
        int rc = 0;

        for (size_t i = 0; v && i < v->n; i++) {
                cleanup_error em_error_t e = NULL;
                if (!v->installed[i])
                        continue; /* another's of that name, or never moved */
                if (move_volume(cfg, v, i, true, &e) < 0 && rc == 0) {
                        em_error_move(err, &e);
                        rc = -1;
                }
        }
        return rc;
}

int em_volume_rx_install(struct em_volume_rx *v, const struct em_config *cfg, bool back,
                         em_error_t *err)
{
        if (back)
                return uninstall(v, cfg, err);
        for (size_t i = 0; v && i < v->n; i++) {
                if (v->installed[i] || move_volume(cfg, v, i, false, err) == 0)
                        continue;
                /* All or none: the session ends, the source keeps its own. */
                cleanup_error em_error_t e = NULL;
                if (uninstall(v, cfg, &e) < 0)
                        em_log_warn("%s", em_error_msg(e));
                return -1;
        }
        return 0;
}

int em_volume_rx_list(const struct em_volume_rx *v, const char *path, em_error_t *err)
{
        cleanup_free char *text = strdup("");

        for (size_t i = 0; v && text && i < v->n; i++) {
                struct stat st;
                char *more = NULL;
                if (stat(v->dirs[i], &st) < 0)
                        return em_error_set(err, errno, "volume %s: %s", v->names[i], v->dirs[i]);
                if (asprintf(&more, "%s%s %ju %ju\n", text, v->names[i], (uintmax_t)st.st_dev,
                             (uintmax_t)st.st_ino) < 0)
                        return em_error_set(err, ENOMEM, "listing the volumes");
                free(text);
                text = more;
        }
        if (text == NULL)
                return em_error_set(err, ENOMEM, "listing the volumes");
        return *text ? em_write_file_atomic(path, text, strlen(text), 0600, err) : 0;
}

bool em_volume_rx_listed_here(const struct em_config *cfg, char *line, const char **name)
{
        char *sp = strchr(line, ' ');
        uintmax_t dev = 0, ino = 0;
        struct stat st;

        *name = line;
        if (sp == NULL || sscanf(sp + 1, "%ju %ju", &dev, &ino) != 2)
                return false;
        *sp = '\0';
        cleanup_free char *path = em_container_name_valid(line) ? em_volume_path(cfg, line) : NULL;
        return path != NULL && lstat(path, &st) == 0 && S_ISDIR(st.st_mode) &&
               (uintmax_t)st.st_dev == dev && (uintmax_t)st.st_ino == ino;
}
