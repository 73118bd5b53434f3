#include "container/usergroups.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/cleanup.h"

/* Opens rel inside rootfs; a symlink resolves as it would in the container.
 * *out is NULL (and 0 returned) when the file does not exist. */
static int fopen_in_root(const char *rootfs, const char *rel, FILE **out, em_error_t *err)
{
        struct open_how how = {.flags = O_RDONLY | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT};
        cleanup_close int root = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
        cleanup_close int fd = -1;

        *out = NULL;
        if (root < 0)
                return em_error_set(err, errno, "opening rootfs %s", rootfs);
        fd = (int)syscall(SYS_openat2, root, rel, &how, sizeof(how));
        if (fd < 0 && errno == ENOENT)
                return 0;
        if (fd < 0)
                return em_error_set(err, errno, "opening %s in the rootfs", rel);
        *out = fdopen(fd, "r");
        if (*out == NULL)
                return em_error_set(err, errno, "opening %s in the rootfs", rel);
        steal_fd(&fd);
        return 0;
}

static bool parse_id(const char *s, unsigned *out)
{
        char *end;

        if (*s < '0' || *s > '9')
                return false;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (*end != '\0' || errno != 0 || v > 0xfffffffeUL)
                return false;
        *out = (unsigned)v;
        return true;
}

/* Splits a passwd/group line into its first n colon-separated fields. */
static bool split_fields(char *line, char **f, int n)
{
        line[strcspn(line, "\n")] = '\0';
        for (int i = 0; i < n; i++) {
                f[i] = line;
                char *c = strchr(line, ':');
                if (c == NULL)
                        return i == n - 1;
                *c = '\0';
                line = c + 1;
        }
        return true;
}

/* The name of the /etc/passwd entry of uid, or "" when it has none. */
static int name_of_uid(const char *rootfs, unsigned uid, char name[256], em_error_t *err)
{
        cleanup_fclose FILE *f = NULL;
        cleanup_free char *line = NULL;
        size_t cap = 0;
        unsigned id;

        name[0] = '\0';
        if (fopen_in_root(rootfs, "/etc/passwd", &f, err) < 0)
                return -1;
        while (f != NULL && getline(&line, &cap, f) >= 0) {
                char *fl[4];
                if (split_fields(line, fl, 4) && parse_id(fl[2], &id) && id == uid &&
                    strlen(fl[0]) < 256) {
                        strcpy(name, fl[0]);
                        return 0;
                }
        }
        return 0;
}

static bool is_member(char *members, const char *name)
{
        char *save = NULL;

        for (char *m = strtok_r(members, ",", &save); m != NULL; m = strtok_r(NULL, ",", &save))
                if (strcmp(m, name) == 0)
                        return true;
        return false;
}

static int add_gid(gid_t *gids, size_t *n, gid_t g, gid_t primary, em_error_t *err)
{
        if (g == primary)
                return 0;
        for (size_t i = 0; i < *n; i++)
                if (gids[i] == g)
                        return 0;
        if (*n == EM_USERGROUPS_MAX)
                return em_error_set(err, E2BIG, "the image's /etc/group gives more than %d groups",
                                    EM_USERGROUPS_MAX);
        gids[(*n)++] = g;
        return 0;
}

static int groups_of(const char *rootfs, const char *name, gid_t primary, gid_t *gids, size_t *n,
                     em_error_t *err)
{
        cleanup_fclose FILE *f = NULL;
        cleanup_free char *line = NULL;
        size_t cap = 0;
        unsigned id;

        if (fopen_in_root(rootfs, "/etc/group", &f, err) < 0)
                return -1;
        while (f != NULL && getline(&line, &cap, f) >= 0) {
                char *fl[4];
                if (!split_fields(line, fl, 4) || !parse_id(fl[2], &id) || !is_member(fl[3], name))
                        continue;
                if (add_gid(gids, n, (gid_t)id, primary, err) < 0)
                        return -1;
        }
        return 0;
}

int em_usergroups_lookup(const char *rootfs, const char *user, gid_t primary, gid_t *gids,
                         size_t *n, em_error_t *err)
{
        char name[256];
        unsigned uid;

        *n = 0;
        if (user == NULL || *user == '\0')
                user = "0";
        if (strchr(user, ':') != NULL)
                return 0;
        if (strlen(user) >= sizeof(name))
                return em_error_set(err, EINVAL, "user '%.64s...' is too long", user);
        if (!parse_id(user, &uid))
                strcpy(name, user);
        else if (name_of_uid(rootfs, uid, name, err) < 0)
                return -1;
        if (name[0] == '\0')
                return 0;
        return groups_of(rootfs, name, primary, gids, n, err);
}

int em_usergroups_apply(json_t *cfg, const char *rootfs, const char *user, em_error_t *err)
{
        json_t *u = json_object_get(json_object_get(cfg, "process"), "user");
        json_t *g = json_object_get(u, "gid");
        gid_t gids[EM_USERGROUPS_MAX];
        size_t n;

        if (!json_is_integer(g))
                return em_error_set(err, EINVAL, "config.json has no process.user.gid");
        if (em_usergroups_lookup(rootfs, user, (gid_t)json_integer_value(g), gids, &n, err) < 0)
                return em_error_wrap(err, "supplementary groups of the image's user");
        if (n == 0)
                return 0;
        json_t *a = json_array();
        for (size_t i = 0; a != NULL && i < n; i++)
                json_array_append_new(a, json_integer(gids[i]));
        if (a == NULL || json_object_set_new(u, "additionalGids", a) < 0)
                return em_error_set(err, ENOMEM, "building config.json");
        return 0;
}
