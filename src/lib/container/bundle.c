#include "container/bundle.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "container/seccomp.h"
#include "container/usergroups.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/json.h"

static const char *const masked_paths[] = {
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
    NULL,
};

static const char *const readonly_paths[] = {
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger", NULL,
};

static json_t *strv_json(const char *const *v)
{
        json_t *a = json_array();
        for (; a && *v; v++)
                json_array_append_new(a, json_string(*v));
        return a;
}

/* Reads a small file inside rootfs without following symlinks out of it. */
static int read_in_root(const char *rootfs, const char *rel, char **out, em_error_t *err)
{
        struct open_how how = {.flags = O_RDONLY | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT};
        cleanup_close int root = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
        cleanup_close int fd = -1;
        char buf[65536];

        if (root < 0)
                return em_error_set(err, errno, "opening rootfs %s", rootfs);
        fd = (int)syscall(SYS_openat2, root, rel, &how, sizeof(how));
        if (fd < 0)
                return em_error_set(err, errno, "opening %s in the rootfs", rel);
        ssize_t n = em_read_all(fd, buf, sizeof(buf) - 1, err);
        if (n < 0)
                return -1;
        buf[n] = '\0';
        *out = strdup(buf);
        return *out ? 0 : em_error_set(err, ENOMEM, "reading %s", rel);
}

static bool parse_id(const char *s, unsigned *out)
{
        char *end;
        if (*s == '\0')
                return false;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (*end != '\0' || errno != 0 || v > 0xfffffffeUL)
                return false;
        *out = (unsigned)v;
        return true;
}

/* Finds `name` in a passwd/group style file; returns field 2 (id) and, for
 * passwd, field 3 (primary gid). */
static int lookup_db(const char *rootfs, const char *file, const char *name, unsigned *id,
                     unsigned *gid, em_error_t *err)
{
        cleanup_free char *text = NULL;
        char *save = NULL;

        if (read_in_root(rootfs, file, &text, err) < 0)
                return em_error_wrap(err, "looking up '%s'", name);
        for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char *f[4] = {0};
                char *p = line;
                for (int i = 0; i < 4 && p; i++) {
                        f[i] = p;
                        p = strchr(p, ':');
                        if (p)
                                *p++ = '\0';
                }
                if (f[0] == NULL || f[2] == NULL || strcmp(f[0], name) != 0)
                        continue;
                if (!parse_id(f[2], id) || (gid && (f[3] == NULL || !parse_id(f[3], gid))))
                        break;
                return 0;
        }
        return em_error_set(err, ENOENT, "no entry '%s' in the image's %s", name, file);
}

int em_bundle_resolve_user(const char *rootfs, const char *user, uid_t *uid, gid_t *gid,
                           em_error_t *err)
{
        char buf[256];
        unsigned u = 0, g = 0, pg = 0;

        *uid = 0;
        *gid = 0;
        if (user == NULL || *user == '\0')
                return 0;
        if (strlen(user) >= sizeof(buf))
                return em_error_set(err, EINVAL, "user '%s' is too long", user);
        strcpy(buf, user);
        char *group = strchr(buf, ':');
        if (group)
                *group++ = '\0';
        if (parse_id(buf, &u)) {
                pg = 0; /* numeric user, no group: gid 0, as Docker does */
        } else if (lookup_db(rootfs, "/etc/passwd", buf, &u, &pg, err) < 0) {
                return -1;
        }
        g = pg;
        if (group && !parse_id(group, &g) &&
            lookup_db(rootfs, "/etc/group", group, &g, NULL, err) < 0)
                return -1;
        *uid = u;
        *gid = g;
        return 0;
}

static bool env_has_key(json_t *env, const char *kv)
{
        size_t klen = strcspn(kv, "="), i;
        json_t *v;

        json_array_foreach(env, i, v)
        {
                const char *s = json_string_value(v);
                if (s && strncmp(s, kv, klen) == 0 && s[klen] == '=')
                        return true;
        }
        return false;
}

/* Image Env, overridden by the run's env; PATH defaulted. */
static json_t *build_env(const json_t *spec, const json_t *icfg)
{
        json_t *env = json_array(), *v;
        json_t *user_env = json_object_get(spec, "env");
        size_t i;

        json_array_foreach(user_env, i, v) json_array_append(env, v);
        json_array_foreach(json_object_get(icfg, "Env"), i, v)
        {
                if (json_is_string(v) && !env_has_key(env, json_string_value(v)))
                        json_array_append(env, v);
        }
        if (!env_has_key(env, "PATH="))
                json_array_append_new(
                    env, json_string(
                             "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
        if (!env_has_key(env, "HOME="))
                json_array_append_new(env, json_string("HOME=/root"));
        return env;
}

static int build_args(const json_t *spec, const json_t *icfg, json_t **out, em_error_t *err)
{
        json_t *args = json_array(), *v;
        json_t *cmd = json_object_get(spec, "cmd");
        size_t i;

        if (!json_is_array(cmd) || json_array_size(cmd) == 0)
                cmd = json_object_get(icfg, "Cmd");
        json_array_foreach(json_object_get(icfg, "Entrypoint"), i, v) json_array_append(args, v);
        json_array_foreach(cmd, i, v) json_array_append(args, v);
        if (json_array_size(args) == 0) {
                json_decref(args);
                return em_error_set(err, EINVAL,
                                    "neither the image nor the command line gives "
                                    "a command to run");
        }
        *out = args;
        return 0;
}

/* No ambient or inheritable capabilities: a process that is not root
 * inside gets none, as under Docker. */
static json_t *build_process(const json_t *spec, const json_t *icfg, json_t *args, uid_t uid,
                             gid_t gid, const struct em_security_profile *prof)
{
        const char *cwd = em_json_str(icfg, "WorkingDir");
        cleanup_json json_t *caps = em_caps_json(prof->caps);

        return json_pack("{s:b, s:{s:i, s:i}, s:o, s:o, s:s, s:{s:O, s:O, s:O}, "
                         "s:[{s:s, s:I, s:I}], s:b}",
                         "terminal", 0, "user", "uid", (int)uid, "gid", (int)gid, "args", args,
                         "env", build_env(spec, icfg), "cwd", cwd && *cwd ? cwd : "/",
                         "capabilities", "bounding", caps, "effective", caps, "permitted", caps,
                         "rlimits", "type", "RLIMIT_NOFILE", "hard", (json_int_t)prof->nofile,
                         "soft", (json_int_t)prof->nofile, "noNewPrivileges", prof->no_new_privs);
}

static json_t *mount_entry(const char *dst, const char *type, const char *src,
                           const char *const *opts)
{
        return json_pack("{s:s, s:s, s:s, s:o}", "destination", dst, "type", type, "source", src,
                         "options", strv_json(opts));
}

static json_t *build_mounts(void)
{
        static const char *const proc_o[] = {"nosuid", "noexec", "nodev", NULL};
        static const char *const dev_o[] = {"nosuid", "strictatime", "mode=755", "size=65536k",
                                            NULL};
        static const char *const pts_o[] = {"nosuid",        "noexec",    "newinstance",
                                            "ptmxmode=0666", "mode=0620", NULL};
        static const char *const shm_o[] = {"nosuid",    "noexec",      "nodev",
                                            "mode=1777", "size=65536k", NULL};
        static const char *const sys_o[] = {"nosuid", "noexec", "nodev", "ro", NULL};
        json_t *m = json_array();

        json_array_append_new(m, mount_entry("/proc", "proc", "proc", proc_o));
        json_array_append_new(m, mount_entry("/dev", "tmpfs", "tmpfs", dev_o));
        json_array_append_new(m, mount_entry("/dev/pts", "devpts", "devpts", pts_o));
        json_array_append_new(m, mount_entry("/dev/shm", "tmpfs", "shm", shm_o));
        json_array_append_new(m, mount_entry("/dev/mqueue", "mqueue", "mqueue", proc_o));
        json_array_append_new(m, mount_entry("/sys", "sysfs", "sysfs", sys_o));
        return m;
}

static json_t *build_resources(const json_t *spec, const struct em_security_profile *prof)
{
        long long mem = em_json_int(spec, "memory", 0);
        double cpus = json_number_value(json_object_get(spec, "cpus"));
        json_t *r = json_pack("{s:[{s:b, s:s}], s:{s:I}}", "devices", "allow", 0, "access", "rwm",
                              "pids", "limit", (json_int_t)prof->pids_limit);

        if (mem > 0)
                json_object_set_new(r, "memory", json_pack("{s:I}", "limit", (json_int_t)mem));
        if (cpus > 0)
                json_object_set_new(r, "cpu",
                                    json_pack("{s:I, s:I}", "quota", (json_int_t)(cpus * 100000),
                                              "period", (json_int_t)100000));
        return r;
}

static json_t *id_mappings(const struct em_idrange *ids)
{
        return json_pack("[{s:i, s:I, s:I}]", "containerID", 0, "hostID", (json_int_t)ids->base,
                         "size", (json_int_t)ids->size);
}

/* A pod member joins its infra container's namespaces by path: runc joins
 * them before it unshares the rest, and on restore passes the network
 * namespace to CRIU as external and the others as join-ns (pod.h). The
 * mappings stay, the pod's own, so runc knows the host ids of root. */
static int join_namespaces(json_t *lnx, const struct em_bundle_params *bp,
                           const struct em_security_profile *prof, em_error_t *err)
{
        static const char *const joined[][2] = {
            {"ipc", "ipc"}, {"uts", "uts"}, {"network", "net"}, {"user", "user"}};
        json_t *ns = json_pack("[{s:s}, {s:s}]", "type", "pid", "type", "mount");
        char path[64];

        if (prof->ids.size == 0 || ns == NULL) {
                json_decref(ns);
                return em_error_set(err, EINVAL, "a pod member needs the pod's user namespace");
        }
        for (size_t i = 0; i < sizeof(joined) / sizeof(joined[0]); i++) {
                snprintf(path, sizeof(path), "/proc/%d/ns/%s", bp->join_pid, joined[i][1]);
                json_array_append_new(ns,
                                      json_pack("{s:s, s:s}", "type", joined[i][0], "path", path));
        }
        json_object_set_new(lnx, "uidMappings", id_mappings(&prof->ids));
        json_object_set_new(lnx, "gidMappings", id_mappings(&prof->ids));
        return json_object_set_new(lnx, "namespaces", ns);
}

/* With a user namespace, runc creates the network namespace inside it;
 * without, the container joins the one edgemig created. */
static int add_namespaces(json_t *lnx, const struct em_bundle_params *bp,
                          const struct em_security_profile *prof, em_error_t *err)
{
        if (bp->join_pid > 0)
                return join_namespaces(lnx, bp, prof, err);
        json_t *ns = json_pack("[{s:s}, {s:s}, {s:s}, {s:s}]", "type", "pid", "type", "ipc", "type",
                               "uts", "type", "mount");

        if (prof->ids.size == 0) {
                json_array_append_new(
                    ns, json_pack("{s:s, s:s}", "type", "network", "path", bp->netns));
                return json_object_set_new(lnx, "namespaces", ns);
        }
        if (bp->netns_hook == NULL) {
                json_decref(ns);
                return em_error_set(err, EINVAL, "a user namespace needs the network hook");
        }
        json_array_append_new(ns, json_pack("{s:s}", "type", "network"));
        json_array_append_new(ns, json_pack("{s:s}", "type", "user"));
        json_object_set_new(lnx, "uidMappings", id_mappings(&prof->ids));
        json_object_set_new(lnx, "gidMappings", id_mappings(&prof->ids));
        return json_object_set_new(lnx, "namespaces", ns);
}

static json_t *build_linux(const json_t *spec, const struct em_bundle_params *bp,
                           const struct em_security_profile *prof, em_error_t *err)
{
        json_t *lnx = json_pack("{s:o, s:s, s:o, s:o}", "resources", build_resources(spec, prof),
                                "cgroupsPath", bp->cgroup, "maskedPaths", strv_json(masked_paths),
                                "readonlyPaths", strv_json(readonly_paths));

        if (lnx == NULL) {
                em_error_set(err, ENOMEM, "building config.json");
                return NULL;
        }
        if (add_namespaces(lnx, bp, prof, err) < 0) {
                json_decref(lnx);
                return NULL;
        }
        if (prof->seccomp)
                json_object_set_new(lnx, "seccomp", em_seccomp_default(prof->caps));
        return lnx;
}

static void default_profile(struct em_security_profile *p)
{
        struct em_security_policy pol;

        em_security_policy_default(&pol);
        *p = (struct em_security_profile){.caps = em_caps_default(),
                                          .seccomp = true,
                                          .no_new_privs = true,
                                          .pids_limit = pol.pids_limit,
                                          .nofile = pol.nofile};
}

static int add_extras(json_t *cfg, const struct em_bundle_params *bp,
                      const struct em_security_profile *prof, em_error_t *err)
{
        if (bp->criu_config != NULL &&
            json_object_set_new(cfg, "annotations",
                                json_pack("{s:s}", "org.criu.config", bp->criu_config)) < 0)
                return em_error_set(err, ENOMEM, "building config.json");
        if (prof->ids.size > 0 && bp->join_pid <= 0 &&
            json_object_set_new(cfg, "hooks", json_pack("{s:[O]}", "prestart", bp->netns_hook)) < 0)
                return em_error_set(err, ENOMEM, "building config.json");
        return 0;
}

int em_bundle_config(const json_t *spec, const struct em_bundle_params *bp, json_t **out,
                     em_error_t *err)
{
        const json_t *icfg = json_object_get(spec, "image_config");
        struct em_security_profile dflt;
        const struct em_security_profile *prof = bp->profile;
        json_t *args = NULL;
        uid_t uid;
        gid_t gid;

        if (prof == NULL) {
                default_profile(&dflt);
                prof = &dflt;
        }
        if (em_bundle_resolve_user(bp->rootfs, em_json_str(icfg, "User"), &uid, &gid, err) < 0)
                return em_error_wrap(err, "resolving the image's user");
        if (build_args(spec, icfg, &args, err) < 0)
                return -1;
        json_t *lnx = build_linux(spec, bp, prof, err);
        if (lnx == NULL) {
                json_decref(args);
                return -1;
        }
        json_t *process = build_process(spec, icfg, args, uid, gid, prof);
        cleanup_json json_t *cfg =
            json_pack("{s:s, s:{s:s, s:b}, s:o, s:s, s:o, s:o}", "ociVersion", "1.0.2", "root",
                      "path", bp->rootfs, "readonly", 0, "process", process, "hostname",
                      bp->hostname, "mounts", build_mounts(), "linux", lnx);
        if (cfg == NULL)
                return em_error_set(err, ENOMEM, "building config.json");
        if (add_extras(cfg, bp, prof, err) < 0 ||
            em_usergroups_apply(cfg, bp->rootfs, em_json_str(icfg, "User"), err) < 0)
                return -1;
        *out = steal_pointer(&cfg);
        return 0;
}

const char *const *em_bundle_masked_paths(void)
{
        return masked_paths;
}

const char *const *em_bundle_readonly_paths(void)
{
        return readonly_paths;
}
