#include "container/volume.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fts.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "container/container.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/json.h"
#include "util/opts.h"

/* Absolute, normalised ("/a/b": no "//", ".", ".." or trailing '/'). */
static bool path_clean(const char *p, size_t max)
{
        size_t len = strlen(p);

        if (p[0] != '/' || len < 2 || len > max || p[len - 1] == '/')
                return false;
        for (const char *c = p; *c; c++) {
                if (*c != '/')
                        continue;
                const char *n = c + 1;
                if (*n == '/' || (n[0] == '.' && (n[1] == '/' || n[1] == '\0')) ||
                    (n[0] == '.' && n[1] == '.' && (n[2] == '/' || n[2] == '\0')))
                        return false;
        }
        return true;
}

/* runc mounts these itself; a volume over them would hide them. */
static bool dst_reserved(const char *d)
{
        static const char *const sys[] = {"/proc", "/sys", "/dev", NULL};

        for (const char *const *s = sys; *s; s++) {
                size_t n = strlen(*s);
                if (strncmp(d, *s, n) == 0 && (d[n] == '\0' || d[n] == '/'))
                        return true;
        }
        return false;
}

static int check_dst(const char *d, em_error_t *err)
{
        if (d == NULL || !path_clean(d, EM_MOUNT_DST_MAX))
                return em_error_set(err, EINVAL,
                                    "mount destination '%s' must be an absolute path without "
                                    "'.', '..' or '//'",
                                    d ? d : "");
        if (dst_reserved(d))
                return em_error_set(err, EINVAL,
                                    "mount destination %s is under /proc, /sys or /dev", d);
        return 0;
}

/* SRC:DST[:ro|rw] */
static int parse_volume(const char *arg, json_t **out, em_error_t *err)
{
        cleanup_free char *s = strdup(arg);
        char *dst, *mode;
        bool ro = false;

        if (s == NULL)
                return em_error_set(err, ENOMEM, "-v");
        if ((dst = strchr(s, ':')) == NULL)
                return em_error_set(err, EINVAL, "-v takes SRC:DST[:ro], got '%s'", arg);
        *dst++ = '\0';
        if ((mode = strchr(dst, ':')) != NULL) {
                *mode++ = '\0';
                if (strcmp(mode, "ro") != 0 && strcmp(mode, "rw") != 0)
                        return em_error_set(err, EINVAL, "-v '%s': mode must be ro or rw", arg);
                ro = strcmp(mode, "ro") == 0;
        }
        if (s[0] == '/')
                *out = json_pack("{s:s, s:s, s:s, s:b}", "type", "bind", "source", s, "destination",
                                 dst, "ro", ro);
        else
                *out = json_pack("{s:s, s:s, s:s, s:b}", "type", "volume", "name", s, "destination",
                                 dst, "ro", ro);
        return *out ? 0 : em_error_set(err, ENOMEM, "-v");
}

/* DST[:size=N] */
static int parse_tmpfs(const char *arg, json_t **out, em_error_t *err)
{
        cleanup_free char *s = strdup(arg);
        uint64_t size = 0;
        char *opt;

        if (s == NULL)
                return em_error_set(err, ENOMEM, "--tmpfs");
        if ((opt = strchr(s, ':')) != NULL) {
                *opt++ = '\0';
                if (strncmp(opt, "size=", 5) != 0)
                        return em_error_set(err, EINVAL, "--tmpfs '%s': the option is size=N", arg);
                if (em_parse_size(opt + 5, &size, err) < 0 || size > INT64_MAX)
                        return em_error_wrap(err, "--tmpfs '%s'", arg);
        }
        *out = json_pack("{s:s, s:s, s:I}", "type", "tmpfs", "destination", s, "size",
                         (json_int_t)size);
        return *out ? 0 : em_error_set(err, ENOMEM, "--tmpfs");
}

int em_mounts_from_args(const char *const *vols, const char *const *tmpfs, json_t **out,
                        em_error_t *err)
{
        cleanup_json json_t *m = json_array();
        json_t *one = NULL;

        for (size_t i = 0; vols && vols[i]; i++) {
                if (parse_volume(vols[i], &one, err) < 0 || json_array_append_new(m, one) < 0)
                        return -1;
        }
        for (size_t i = 0; tmpfs && tmpfs[i]; i++) {
                if (parse_tmpfs(tmpfs[i], &one, err) < 0 || json_array_append_new(m, one) < 0)
                        return -1;
        }
        if (em_mounts_check(m, err) < 0)
                return -1;
        *out = json_array_size(m) ? steal_pointer(&m) : NULL;
        return 0;
}

static int check_one(const json_t *m, em_error_t *err)
{
        const char *type = em_json_str(m, "type");
        json_t *ro = json_object_get(m, "ro"), *size = json_object_get(m, "size");

        if (!json_is_object(m) || type == NULL ||
            json_object_size(m) != (strcmp(type, "tmpfs") == 0 ? 3u : 4u))
                return em_error_set(err, EINVAL, "a mount has exactly the fields of its type");
        if (check_dst(em_json_str(m, "destination"), err) < 0)
                return -1;
        if (strcmp(type, "tmpfs") == 0) {
                if (!json_is_integer(size) || json_integer_value(size) < 0)
                        return em_error_set(err, EINVAL, "a tmpfs size must be bytes >= 0");
                return 0;
        }
        if (!json_is_boolean(ro))
                return em_error_set(err, EINVAL, "a mount's ro must be true or false");
        if (strcmp(type, "volume") == 0) {
                const char *n = em_json_str(m, "name");
                if (!em_container_name_valid(n))
                        return em_error_set(err, EINVAL,
                                            "invalid volume name '%s' (letters, digits, '_', "
                                            "'.', '-'; at most %d)",
                                            n ? n : "", EM_NAME_MAX);
                return 0;
        }
        const char *src = em_json_str(m, "source");
        if (strcmp(type, "bind") != 0 || src == NULL || !path_clean(src, PATH_MAX - 1))
                return em_error_set(err, EINVAL,
                                    "a mount is a volume, a bind of an absolute normalised "
                                    "host path or a tmpfs");
        return 0;
}

int em_mounts_check(const json_t *mounts, em_error_t *err)
{
        size_t i, j;
        json_t *m, *o;

        if (mounts == NULL)
                return 0;
        if (!json_is_array(mounts) || json_array_size(mounts) > EM_MOUNTS_MAX)
                return em_error_set(err, EINVAL, "mounts must be a list of at most %d",
                                    EM_MOUNTS_MAX);
        json_array_foreach(mounts, i, m)
        {
                if (check_one(m, err) < 0)
                        return em_error_wrap(err, "mount %zu", i);
                json_array_foreach(mounts, j, o)
                {
                        if (j < i && strcmp(em_json_str(m, "destination"),
                                            em_json_str(o, "destination")) == 0)
                                return em_error_set(err, EINVAL, "%s is mounted twice",
                                                    em_json_str(m, "destination"));
                }
        }
        return 0;
}

int em_bind_prefixes_load(const struct em_config *cfg, char ***out, em_error_t *err)
{
        cleanup_free char *path = em_config_path(cfg, EM_VOLUMES_CONF);
        cleanup_json json_t *j = NULL;
        json_t *list, *v;
        size_t i;

        if (path == NULL)
                return em_error_set(err, ENOMEM, "bind prefixes");
        if (em_path_exists(path) && em_json_load_file(path, 1 << 20, &j, err) < 0)
                return -1;
        list = json_object_get(j, EM_VOLUMES_KNOB);
        if (j != NULL && list != NULL && !json_is_array(list))
                return em_error_set(err, EINVAL, "%s: \"%s\" must be a list of paths", path,
                                    EM_VOLUMES_KNOB);
        cleanup_strv char **v_out = calloc(json_array_size(list) + 1, sizeof(char *));
        if (v_out == NULL)
                return em_error_set(err, ENOMEM, "bind prefixes");
        json_array_foreach(list, i, v)
        {
                const char *p = json_string_value(v);
                if (p == NULL || (strcmp(p, "/") != 0 && !path_clean(p, PATH_MAX - 1)))
                        return em_error_set(err, EINVAL, "%s: \"%s\" entry %zu is not a path", path,
                                            EM_VOLUMES_KNOB, i);
                if ((v_out[i] = strdup(p)) == NULL)
                        return em_error_set(err, ENOMEM, "bind prefixes");
        }
        *out = steal_pointer(&v_out);
        return 0;
}

int em_bind_allowed(char *const *prefixes, const char *path, em_error_t *err)
{
        bool within = false;

        for (size_t i = 0; prefixes && prefixes[i] && !within; i++) {
                if (em_path_within(path, prefixes[i], &within, err) < 0)
                        return -1;
        }
        if (within)
                return 0;
        return em_error_set(err, EPERM,
                            "bind mount of %s is not allowed on this host: list a prefix of it "
                            "in \"%s\" of <root>/%s",
                            path, EM_VOLUMES_KNOB, EM_VOLUMES_CONF);
}

/* The volume's directory, created on first use for the container's root
 * (the base of its ID range) to own, as its writable layer is. */
static int volume_dir(const struct em_config *cfg, const char *name, const json_t *spec, char **out,
                      em_error_t *err)
{
        cleanup_free char *top = em_config_path(cfg, "volumes");
        cleanup_free char *dir = em_volume_path(cfg, name);
        json_t *u = json_object_get(spec, "userns");
        long long base = em_json_int(u, "base", 0), size = em_json_int(u, "size", 0);

        if (top == NULL || dir == NULL)
                return em_error_set(err, ENOMEM, "volume %s", name);
        /* Searchable, not listable, by a container's unprivileged root. */
        if (em_mkdir_p(top, 0711, err) < 0 || chmod(top, 0711) < 0)
                return em_error_wrap(err, "creating %s", top);
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                return em_error_set(err, errno, "creating volume %s", dir);
        /* New, or arrived by migration (its root is not in the manifest):
         * its root directory belongs to the container's root, as the
         * rootfs root does. */
        struct stat st;
        if (size > 0 && lstat(dir, &st) == 0 &&
            (st.st_uid < (uid_t)base || st.st_uid - (uid_t)base >= (uid_t)size) &&
            chown(dir, (uid_t)base, (gid_t)base) < 0)
                return em_error_set(err, errno, "owning %s for the container", dir);
        *out = steal_pointer(&dir);
        return 0;
}

static int remove_unused(const struct em_config *cfg, const char *name, bool *removed,
                         em_error_t *err);

static json_t *oci_bind(const char *dst, const char *src, bool ro)
{
        return json_pack("{s:s, s:s, s:s, s:[s, s, s]}", "destination", dst, "type", "bind",
                         "source", src, "options", "rbind", "rprivate", ro ? "ro" : "rw");
}

static json_t *oci_tmpfs(const char *dst, long long size)
{
        char sz[40];

        if (size <= 0)
                return json_pack("{s:s, s:s, s:s, s:[s, s, s]}", "destination", dst, "type",
                                 "tmpfs", "source", "tmpfs", "options", "nosuid", "nodev",
                                 "mode=1777");
        snprintf(sz, sizeof(sz), "size=%lld", size);
        return json_pack("{s:s, s:s, s:s, s:[s, s, s, s]}", "destination", dst, "type", "tmpfs",
                         "source", "tmpfs", "options", "nosuid", "nodev", "mode=1777", sz);
}

static int apply_one(const struct em_config *cfg, const json_t *spec, const json_t *m,
                     char *const *prefixes, json_t **out, em_error_t *err)
{
        const char *type = em_json_str(m, "type"), *dst = em_json_str(m, "destination");
        bool ro = json_is_true(json_object_get(m, "ro"));
        struct stat st;

        if (strcmp(type, "tmpfs") == 0) {
                *out = oci_tmpfs(dst, em_json_int(m, "size", 0));
        } else if (strcmp(type, "volume") == 0) {
                cleanup_free char *dir = NULL;
                if (volume_dir(cfg, em_json_str(m, "name"), spec, &dir, err) < 0)
                        return -1;
                *out = oci_bind(dst, dir, ro);
        } else {
                const char *src = em_json_str(m, "source");
                if (em_bind_allowed(prefixes, src, err) < 0)
                        return -1;
                if (stat(src, &st) < 0)
                        return em_error_set(err, errno, "bind mount source %s", src);
                *out = oci_bind(dst, src, ro);
        }
        return *out ? 0 : em_error_set(err, ENOMEM, "mount %s", dst);
}

int em_mounts_apply(const struct em_config *cfg, const json_t *spec, json_t *config,
                    em_error_t *err)
{
        json_t *mounts = json_object_get(spec, "mounts"), *list = json_object_get(config, "mounts");
        cleanup_strv char **prefixes = NULL;
        size_t i;
        json_t *m, *one = NULL;

        if (mounts == NULL)
                return 0;
        if (em_mounts_check(mounts, err) < 0 || em_bind_prefixes_load(cfg, &prefixes, err) < 0)
                return -1;
        if (!json_is_array(list))
                return em_error_set(err, EINVAL, "config.json has no mounts list");
        json_array_foreach(mounts, i, m)
        {
                if (apply_one(cfg, spec, m, prefixes, &one, err) < 0 ||
                    json_array_append_new(list, one) < 0)
                        return em_error_wrap(err, "mounting %s", em_json_str(m, "destination"));
        }
        return 0;
}

char *em_volume_path(const struct em_config *cfg, const char *name)
{
        cleanup_free char *rel = em_path_join("volumes", name);

        return rel ? em_config_path(cfg, rel) : NULL;
}

static bool spec_mounts_volume(const json_t *spec, const char *name)
{
        size_t i;
        json_t *m;

        json_array_foreach(json_object_get(spec, "mounts"), i, m)
        {
                const char *n = em_json_str(m, "name");
                if (n && strcmp(em_json_str(m, "type"), "volume") == 0 && strcmp(n, name) == 0)
                        return true;
        }
        return false;
}

/* Names of this host's containers whose spec mounts volume `name`. */
static int volume_users(const struct em_config *cfg, const char *name, json_t **out,
                        em_error_t *err)
{
        cleanup_free char *top = em_config_path(cfg, "containers");
        cleanup_json json_t *users = json_array();
        cleanup_dir DIR *d = top ? opendir(top) : NULL;
        struct dirent *e;

        if (top == NULL || users == NULL)
                return em_error_set(err, ENOMEM, "volume users");
        if (d == NULL && errno != ENOENT)
                return em_error_set(err, errno, "listing %s", top);
        while (d && (e = readdir(d)) != NULL) {
                cleanup_free char *rel = NULL;
                cleanup_json json_t *spec = NULL;
                if (!em_container_name_valid(e->d_name) ||
                    asprintf(&rel, "%s/%s/spec.json", top, e->d_name) < 0)
                        continue;
                em_error_t ignore = NULL;
                /* A container half created or half removed has no spec. */
                if (em_json_load_file(rel, 16 << 20, &spec, &ignore) == 0 &&
                    spec_mounts_volume(spec, name))
                        json_array_append_new(users, json_string(e->d_name));
                em_error_free(&ignore);
        }
        *out = steal_pointer(&users);
        return 0;
}

static int tree_bytes(const char *dir, json_int_t *out, em_error_t *err)
{
        char *const paths[] = {(char *)dir, NULL};
        FTS *f = fts_open(paths, FTS_PHYSICAL | FTS_NOCHDIR, NULL);
        FTSENT *e;

        *out = 0;
        if (f == NULL)
                return em_error_set(err, errno, "reading %s", dir);
        while ((e = fts_read(f)) != NULL) {
                if (e->fts_info == FTS_F)
                        *out += (json_int_t)e->fts_statp->st_blocks * 512;
        }
        int saved = errno;
        fts_close(f);
        return saved == 0 ? 0 : em_error_set(err, saved, "reading %s", dir);
}

int em_volume_inspect(const struct em_config *cfg, const char *name, json_t **out, em_error_t *err)
{
        cleanup_free char *dir = NULL;
        json_t *users = NULL;
        json_int_t bytes;

        if (!em_container_name_valid(name))
                return em_error_set(err, EINVAL, "invalid volume name '%s'", name ? name : "");
        if ((dir = em_volume_path(cfg, name)) == NULL)
                return em_error_set(err, ENOMEM, "volume %s", name);
        if (!em_path_exists(dir))
                return em_error_set(err, ENOENT, "no volume %s (see `edgemig volume ls`)", name);
        if (tree_bytes(dir, &bytes, err) < 0 || volume_users(cfg, name, &users, err) < 0)
                return -1;
        *out = json_pack("{s:s, s:s, s:I, s:o}", "name", name, "path", dir, "bytes", bytes,
                         "used_by", users);
        return *out ? 0 : em_error_set(err, ENOMEM, "volume %s", name);
}

int em_volume_list(const struct em_config *cfg, json_t **out, em_error_t *err)
{
        cleanup_free char *top = em_config_path(cfg, "volumes");
        cleanup_json json_t *list = json_array();
        cleanup_dir DIR *d = top ? opendir(top) : NULL;
        struct dirent *e;
        json_t *one = NULL;

        if (top == NULL || list == NULL)
                return em_error_set(err, ENOMEM, "volumes");
        if (d == NULL && errno != ENOENT)
                return em_error_set(err, errno, "listing %s", top);
        while (d && (e = readdir(d)) != NULL) {
                if (!em_container_name_valid(e->d_name))
                        continue;
                if (em_volume_inspect(cfg, e->d_name, &one, err) < 0)
                        return -1;
                json_array_append_new(list, one);
        }
        *out = steal_pointer(&list);
        return 0;
}

static int remove_unused(const struct em_config *cfg, const char *name, bool *removed,
                         em_error_t *err)
{
        cleanup_json json_t *users = NULL;
        cleanup_free char *dir = em_volume_path(cfg, name);

        *removed = false;
        if (dir == NULL)
                return em_error_set(err, ENOMEM, "volume %s", name);
        if (volume_users(cfg, name, &users, err) < 0)
                return -1;
        if (json_array_size(users) > 0)
                return 0;
        if (em_rm_rf(dir, err) < 0)
                return em_error_wrap(err, "removing volume %s", name);
        *removed = true;
        return 0;
}

int em_volume_rm(const struct em_config *cfg, const char *name, em_error_t *err)
{
        cleanup_json json_t *v = NULL;
        bool removed;

        if (em_volume_inspect(cfg, name, &v, err) < 0 ||
            remove_unused(cfg, name, &removed, err) < 0)
                return -1;
        if (removed)
                return 0;
        cleanup_free char *users = json_dumps(json_object_get(v, "used_by"), JSON_COMPACT);
        return em_error_set(err, EBUSY,
                            "volume %s is used by container(s) %s; remove them first (edgemig "
                            "rm)",
                            name, users ? users : "");
}

int em_volume_prune(const struct em_config *cfg, json_t **removed, em_error_t *err)
{
        cleanup_json json_t *list = NULL, *gone = json_array();
        size_t i;
        json_t *v;

        if (gone == NULL || em_volume_list(cfg, &list, err) < 0)
                return -1;
        json_array_foreach(list, i, v)
        {
                bool r;
                if (remove_unused(cfg, em_json_str(v, "name"), &r, err) < 0)
                        return -1;
                if (r)
                        json_array_append(gone, json_object_get(v, "name"));
        }
        *removed = steal_pointer(&gone);
        return 0;
}

const char *em_spec_volume(const json_t *spec, size_t i)
{
        json_t *m = json_array_get(json_object_get(spec, "mounts"), i);
        const char *type = em_json_str(m, "type");

        return type && strcmp(type, "volume") == 0 ? em_json_str(m, "name") : NULL;
}

int em_mounts_admit(const struct em_config *cfg, const json_t *spec, em_error_t *err)
{
        json_t *mounts = json_object_get(spec, "mounts"), *m;
        cleanup_strv char **prefixes = NULL;
        size_t i;

        if (mounts == NULL)
                return 0;
        if (em_mounts_check(mounts, err) < 0 || em_bind_prefixes_load(cfg, &prefixes, err) < 0)
                return -1;
        json_array_foreach(mounts, i, m)
        {
                const char *name = em_spec_volume(spec, i), *src = em_json_str(m, "source");
                cleanup_free char *dir = name ? em_volume_path(cfg, name) : NULL;
                if (src != NULL && em_bind_allowed(prefixes, src, err) < 0)
                        return em_error_wrap(err, "the container needs host path %s", src);
                if (dir != NULL && em_path_exists(dir))
                        return em_error_set(err, EEXIST,
                                            "volume %s already exists on the target; it moves "
                                            "with its container (remove the target's copy with "
                                            "`edgemig volume rm %s` there)",
                                            name, name);
        }
        return 0;
}

int em_volumes_release(const struct em_config *cfg, const json_t *spec, em_error_t *err)
{
        for (size_t i = 0; i < json_array_size(json_object_get(spec, "mounts")); i++) {
                const char *name = em_spec_volume(spec, i);
                cleanup_free char *dir = name ? em_volume_path(cfg, name) : NULL;
                bool removed;
                if (dir != NULL && em_path_exists(dir) &&
                    remove_unused(cfg, name, &removed, err) < 0)
                        return -1;
        }
        return 0;
}

int em_mounts_points(const json_t *spec, char ***binds, char ***tmpfs, em_error_t *err)
{
        json_t *mounts = json_object_get(spec, "mounts"), *m;
        size_t n = json_array_size(mounts), i, nb = 0, nt = 0;
        cleanup_strv char **b = calloc(n + 1, sizeof(char *));
        cleanup_strv char **t = calloc(n + 1, sizeof(char *));

        if (b == NULL || t == NULL)
                return em_error_set(err, ENOMEM, "mount points");
        json_array_foreach(mounts, i, m)
        {
                const char *dst = em_json_str(m, "destination"), *type = em_json_str(m, "type");
                if (dst == NULL || type == NULL)
                        return em_error_set(err, EINVAL, "mount %zu has no destination", i);
                char *copy = strdup(dst);
                if (copy == NULL)
                        return em_error_set(err, ENOMEM, "mount points");
                if (strcmp(type, "tmpfs") == 0)
                        t[nt++] = copy;
                else
                        b[nb++] = copy;
        }
        *binds = steal_pointer(&b);
        *tmpfs = steal_pointer(&t);
        return 0;
}

static bool among(char *const *names, const char *name)
{
        for (size_t i = 0; names[i] != NULL; i++)
                if (strcmp(names[i], name) == 0)
                        return true;
        return false;
}

int em_volumes_movable_among(const struct em_config *cfg, const json_t *spec, char *const *names,
                             em_error_t *err)
{
        for (size_t i = 0; i < json_array_size(json_object_get(spec, "mounts")); i++) {
                const char *vol = em_spec_volume(spec, i);
                cleanup_json json_t *users = NULL;
                size_t j;
                json_t *u;
                if (vol == NULL)
                        continue;
                if (volume_users(cfg, vol, &users, err) < 0)
                        return -1;
                json_array_foreach(users, j, u)
                {
                        if (!among(names, json_string_value(u)))
                                return em_error_set(err, EBUSY,
                                                    "volume %s is also mounted by container %s "
                                                    "here; a volume moves only with every "
                                                    "container that mounts it (one, or a pod's)",
                                                    vol, json_string_value(u));
                }
        }
        return 0;
}

int em_volumes_movable(const struct em_config *cfg, const json_t *spec, const char *name,
                       em_error_t *err)
{
        char *names[] = {(char *)name, NULL};

        return em_volumes_movable_among(cfg, spec, names, err);
}
