/* edgemig checkpoint inspect DIR [--json]: what a checkpoint holds. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint/ckpt_info.h"
#include "checkpoint/ckpt_validate.h"
#include "cli/cli.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/json.h"

static const char inspect_usage[] =
    "Usage: edgemig checkpoint inspect DIR [--json]\n"
    "\n"
    "Show what a checkpoint holds, decoded from CRIU's images without running\n"
    "CRIU (like `crit show` / `checkpointctl show`):\n"
    "  processes    the process tree: pid, parent, command, and for each thread\n"
    "               its uids and gids (as seen inside the container's user\n"
    "               namespace, if it has one), capabilities (effective and\n"
    "               bounding) and no_new_privs\n"
    "  seccomp      each thread's mode and the filters of seccomp.img\n"
    "  namespaces   each process's namespace ids, the host's, and the user\n"
    "               namespace's uid/gid map\n"
    "  sockets      unix and inet sockets; TCP connections with their state and\n"
    "               queued bytes\n"
    "  mounts       the container's mounts (type, source, external binds)\n"
    "  memory       bytes of memory pages in the images, and mapped bytes\n"
    "  writable layer   bytes and entries of DIR/upper\n"
    "  policy       whether this host would restore it from a migration peer\n"
    "               under its default profile, or the refusal (the check a\n"
    "               migration target runs before restore; see docs/security.md)\n"
    "\n"
    "DIR is a directory written by `edgemig checkpoint` (its CRIU images are in\n"
    "DIR/criu), or a bare CRIU image directory. Nothing is modified. The images\n"
    "are read with the same strict decoders that check a migration peer's\n"
    "checkpoint before restore, so a malformed image fails with its name.\n"
    "\n"
    "  --json   print one JSON object: {\"dir\", \"criu_img_version\", \"processes\",\n"
    "           \"seccomp_filters\", \"namespaces\", \"sockets\", \"files\", \"mounts\",\n"
    "           \"memory_bytes\", \"vma_bytes\", \"upper_bytes\", \"upper_entries\",\n"
    "           \"policy\": {\"ok\", \"refused\"}}\n"
    "\n"
    "Exit status: 0 when the images decode, 1 otherwise, 2 on bad usage.\n";

static bool is_dir(const char *p)
{
        struct stat st;

        return p != NULL && stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Whether this host would restore it from a migration peer: held to the
 * profile this host gives its container (DIR/container.json), or for bare
 * images to the default policy. */
static json_t *policy_json(const struct em_config *cfg, const char *dir,
                           const struct em_ckpt_info *ci)
{
        struct em_ckpt_policy p;
        cleanup_error em_error_t verr = NULL;
        cleanup_free char *meta = em_path_join(dir, "container.json");
        cleanup_json json_t *spec = NULL;

        em_ckpt_policy_default(&p);
        if (meta && em_path_exists(meta) &&
            (em_json_load_file(meta, 16u << 20, &spec, &verr) < 0 ||
             em_ckpt_policy_for_spec(cfg, spec, &p, &verr) < 0))
                return json_pack("{s:b, s:s}", "ok", 0, "refused", em_error_msg(verr));
        if (em_ckpt_validate(ci, &p, &verr) == 0)
                return json_pack("{s:b}", "ok", 1);
        return json_pack("{s:b, s:s}", "ok", 0, "refused", em_error_msg(verr));
}

/* DIR/criu and DIR/upper for a checkpoint, DIR alone for bare images. */
static int gather(const struct em_config *cfg, const char *dir, json_t **out, em_error_t *err)
{
        cleanup_free char *criu = em_path_join(dir, "criu");
        cleanup_free char *upper = em_path_join(dir, "upper");
        cleanup_ckpt_info struct em_ckpt_info ci = {0};
        uint64_t bytes = 0, entries = 0;

        if (em_ckpt_info_load(is_dir(criu) ? criu : dir, &ci, err) < 0)
                return -1;
        if (is_dir(upper) && em_ckpt_upper_size(upper, &bytes, &entries, err) < 0)
                return -1;
        json_t *j = em_ckpt_info_json(&ci);
        if (j == NULL)
                return em_error_set(err, ENOMEM, "inspecting %s", dir);
        json_object_set_new(j, "dir", json_string(dir));
        json_object_set_new(j, "policy", policy_json(cfg, dir, &ci));
        json_object_set_new(j, "upper_bytes", json_integer((json_int_t)bytes));
        json_object_set_new(j, "upper_entries", json_integer((json_int_t)entries));
        *out = j;
        return 0;
}

static void print_names(const char *label, const json_t *a)
{
        size_t i;
        json_t *v;

        printf("      %-9s", label);
        if (json_array_size(a) == 0)
                printf(" none");
        json_array_foreach(a, i, v) printf("%s%s", i ? "," : " ", json_string_value(v));
        printf("\n");
}

static void print_thread(const json_t *t)
{
        const json_t *uid = json_object_get(t, "uid"), *gid = json_object_get(t, "gid");

        printf("    thread %lld  seccomp %s", (long long)em_json_int(t, "tid", 0),
               em_json_str(t, "seccomp"));
        if (json_object_get(t, "seccomp_filter"))
                printf(" (filter %lld)", (long long)em_json_int(t, "seccomp_filter", 0));
        if (uid == NULL) {
                printf("  no credentials\n");
                return;
        }
        printf("  uid %lld/%lld/%lld/%lld  gid %lld/%lld/%lld/%lld  no_new_privs %s\n",
               (long long)json_integer_value(json_array_get(uid, 0)),
               (long long)json_integer_value(json_array_get(uid, 1)),
               (long long)json_integer_value(json_array_get(uid, 2)),
               (long long)json_integer_value(json_array_get(uid, 3)),
               (long long)json_integer_value(json_array_get(gid, 0)),
               (long long)json_integer_value(json_array_get(gid, 1)),
               (long long)json_integer_value(json_array_get(gid, 2)),
               (long long)json_integer_value(json_array_get(gid, 3)),
               json_is_true(json_object_get(t, "no_new_privs")) ? "on" : "off");
        print_names("cap_eff", json_object_get(t, "cap_eff"));
        print_names("cap_bnd", json_object_get(t, "cap_bnd"));
}

static void print_processes(const json_t *j)
{
        const json_t *p, *t, *v;
        size_t i, k;
        const char *key;

        printf("Processes (uid/gid: real/effective/saved/fs):\n");
        json_array_foreach(json_object_get(j, "processes"), i, p)
        {
                printf("  pid %lld  ppid %lld  %s  memory %lld bytes\n",
                       (long long)em_json_int(p, "pid", 0), (long long)em_json_int(p, "ppid", 0),
                       em_json_str(p, "comm"), (long long)em_json_int(p, "memory_bytes", 0));
                printf("    namespaces:");
                json_object_foreach((json_t *)json_object_get(p, "namespaces"), key, v)
                    printf(" %s %lld", key, (long long)json_integer_value(v));
                printf("\n");
                json_array_foreach(json_object_get(p, "threads"), k, t) print_thread(t);
        }
}

static void print_maps(const json_t *ns)
{
        const json_t *m = json_object_get(ns, "user_map"), *e;
        size_t i;

        if (m == NULL) {
                printf("User namespace: none (ids are host ids)\n");
                return;
        }
        printf("User namespace:");
        json_array_foreach(json_object_get(m, "uid"), i, e) printf(
            " uid %lld->%lld (%lld)", (long long)em_json_int(e, "first", 0),
            (long long)em_json_int(e, "host_first", 0), (long long)em_json_int(e, "count", 0));
        json_array_foreach(json_object_get(m, "gid"), i, e) printf(
            " gid %lld->%lld (%lld)", (long long)em_json_int(e, "first", 0),
            (long long)em_json_int(e, "host_first", 0), (long long)em_json_int(e, "count", 0));
        printf("\n");
}

static void print_sockets(const json_t *j)
{
        const json_t *s;
        size_t i;

        printf("Sockets:%s\n", json_array_size(json_object_get(j, "sockets")) ? "" : " none");
        json_array_foreach(json_object_get(j, "sockets"), i, s)
        {
                const json_t *q = json_object_get(s, "queued");
                if (strcmp(em_json_str(s, "family"), "unix") == 0) {
                        printf("  unix %s %s\n", em_json_str(s, "type"),
                               em_json_str(s, "name") ? em_json_str(s, "name") : "(unnamed)");
                        continue;
                }
                printf("  %s %s %s -> %s %s", em_json_str(s, "family"), em_json_str(s, "type"),
                       em_json_str(s, "local") ? em_json_str(s, "local") : "?",
                       em_json_str(s, "remote") ? em_json_str(s, "remote") : "?",
                       em_json_str(s, "state"));
                if (q)
                        printf(" (queued in %lld, out %lld)", (long long)em_json_int(q, "in", 0),
                               (long long)em_json_int(q, "out", 0));
                printf("\n");
        }
}

static void print_mounts(const json_t *j)
{
        const json_t *m;
        size_t i;

        printf("Mounts:\n");
        json_array_foreach(json_object_get(j, "mounts"), i, m)
            printf("  %-24s %-8s %s%s%s\n", em_json_str(m, "mountpoint"),
                   em_json_str(m, "type") ? em_json_str(m, "type") : "?",
                   json_is_true(json_object_get(m, "read_only")) ? "ro" : "rw",
                   em_json_str(m, "external") ? "  bind of host " : "",
                   em_json_str(m, "external") ? em_json_str(m, "external") : "");
}

static void print_text(const json_t *j)
{
        printf("Checkpoint %s (CRIU image version %lld)\n", em_json_str(j, "dir"),
               (long long)em_json_int(j, "criu_img_version", 0));
        print_processes(j);
        printf("Seccomp filters: %zu\n", json_array_size(json_object_get(j, "seccomp_filters")));
        print_maps(json_object_get(j, "namespaces"));
        print_sockets(j);
        print_mounts(j);
        printf("Memory: %lld bytes in pages, %lld bytes mapped\n",
               (long long)em_json_int(j, "memory_bytes", 0),
               (long long)em_json_int(j, "vma_bytes", 0));
        printf("Writable layer: %lld bytes in %lld entries\n",
               (long long)em_json_int(j, "upper_bytes", 0),
               (long long)em_json_int(j, "upper_entries", 0));
        const json_t *pol = json_object_get(j, "policy");
        if (json_is_true(json_object_get(pol, "ok")))
                printf(
                    "Policy: a peer could send this; it is within this host's default profile\n");
        else
                printf("Policy: refused from a peer: %s\n", em_json_str(pol, "refused"));
}

int cmd_checkpoint_inspect(struct em_cli *cli, int argc, char **argv, em_error_t *err)
{
        cleanup_json json_t *j = NULL;
        bool json = false;
        const struct em_opt table[] = {EM_OPT_FLAG("json", 0, &json), EM_OPT_END};
        int first, r = cli_parse(inspect_usage, table, argc, argv, &first, err);

        struct em_config *cfg;

        if (r != 0)
                return r < 0 ? 2 : 0;
        if (cli_operands(argc, argv, first, 1, 1, "checkpoint DIR", err) < 0)
                return 2;
        if (cli_config(cli, &cfg, err) < 0 || gather(cfg, argv[first], &j, err) < 0)
                return 1;
        if (json)
                return em_json_print(j, err) < 0 ? 1 : 0;
        print_text(j);
        return 0;
}
