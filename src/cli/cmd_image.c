/* edgemig image pull|push|import|ls|inspect|rm|prune */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "container/container.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/cleanup.h"
#include "util/json.h"

static const char usage[] =
    "Usage: edgemig image COMMAND [OPTIONS] [ARGS]\n"
    "\n"
    "Manage the content-addressed image store under the state root. Blobs live in\n"
    "blobs/sha256/<hex> and are verified by digest and size; each layer is unpacked\n"
    "once, safely, to layers/sha256/<diff-id>/, so the same layer has the same name\n"
    "on every host.\n"
    "\n"
    "Commands:\n"
    "  pull REF                     pull [REGISTRY/]REPO[:TAG][@DIGEST] over the OCI\n"
    "                               distribution API (Basic auth and bearer tokens).\n"
    "                               From a multi-arch index, the manifest for this\n"
    "                               host's platform (or --platform). Blobs and layers\n"
    "                               already present are skipped, partial blobs\n"
    "                               resumed. A progress bar is drawn on a TTY.\n"
    "  push NAME [REF]              push a stored image to REF (default: its name)\n"
    "  import [--name NAME] PATH    import an OCI image layout directory or a\n"
    "                               `docker save` tar\n"
    "  ls                           list images\n"
    "  inspect NAME                 show an image (manifest, layers, dirs, config)\n"
    "  rm NAME...                   forget image names (space is freed by prune)\n"
    "  prune                        remove blobs and layers that no image and no\n"
    "                               container uses, and leftovers of interrupted pulls\n"
    "\n"
    "NAME is a full reference (127.0.0.1:5000/edgemig/redis:latest), a short one\n"
    "(redis, redis:latest, edgemig/redis) or a manifest digest prefix.\n"
    "\n"
    "Options:\n"
    "  --registry-http      plain HTTP instead of HTTPS (a loopback test registry)\n"
    "  --tls-verify BOOL    verify the registry's certificate (default true)\n"
    "  --insecure           both: --registry-http --tls-verify=false\n"
    "  --registry-ca FILE   CA bundle for the registry; default: /etc/edgemig/\n"
    "                       certs.d/HOST[:PORT]/ca.crt if it exists, else the\n"
    "                       system's CAs\n"
    "  --certs-dir DIR      look for HOST[:PORT]/ca.crt here instead\n"
    "  --authfile FILE      registry credentials: a containers-auth.json (podman\n"
    "                       login --authfile) or Docker config.json, {\"auths\":\n"
    "                       {\"HOST[:PORT]\": {\"auth\": base64(USER:PASSWORD)}}}.\n"
    "                       Default: the first of /etc/edgemig/auth.json,\n"
    "                       $REGISTRY_AUTH_FILE, $DOCKER_CONFIG/config.json and\n"
    "                       ~/.docker/config.json that names the registry\n"
    "  --platform OS/ARCH[/VARIANT]\n"
    "                       the image to pick from a multi-arch index (default:\n"
    "                       this host's, e.g. linux/amd64, linux/arm64)\n"
    "  --json               machine-readable output (every command)\n"
    "  -h, --help           this help\n"
    "\n"
    "Examples:\n"
    "  edgemig image pull --registry-http 127.0.0.1:5000/edgemig/redis:latest\n"
    "  edgemig image pull --platform linux/arm64 registry.example.net/app:1\n"
    "  edgemig image import /var/cache/edgemig/images/busybox\n"
    "  edgemig image inspect --json redis\n";

struct image_opts {
        bool json, insecure;
        const char *name;
        struct em_registry_opts ro;
        int argc; /* positional arguments */
        char **argv;
};

/* Returns 0 to go on, 1 after --help, -1 on a usage error. */
static int parse_opts(int argc, char **argv, struct image_opts *o, em_error_t *err)
{
        const struct em_opt table[] = {
            EM_OPT_FLAG("json", 0, &o->json),
            EM_OPT_FLAG("insecure", 0, &o->insecure),
            EM_OPT_FLAG("registry-http", 0, &o->ro.plain_http),
            EM_OPT_CALL("tls-verify", 0, &o->ro.tls_no_verify, em_opt_bool_not),
            EM_OPT_STRING("registry-ca", 0, &o->ro.ca_file),
            EM_OPT_STRING("certs-dir", 0, &o->ro.certs_dir),
            EM_OPT_STRING("authfile", 0, &o->ro.auth_file),
            EM_OPT_STRING("platform", 0, &o->ro.platform),
            EM_OPT_STRING("name", 0, &o->name),
            EM_OPT_END,
        };
        int first, r = cli_parse(usage, table, argc, argv, &first, err);

        o->argc = argc - first;
        o->argv = argv + first;
        if (o->insecure)
                o->ro.plain_http = o->ro.tls_no_verify = true;
        return r;
}

static json_t *info_json(const struct em_image_info *i, bool full)
{
        json_t *layers = json_array();

        for (size_t k = 0; k < i->n_layers; k++)
                json_array_append_new(layers, json_pack("{s:s, s:s, s:s}", "digest",
                                                        i->layer_digests[k], "diff_id",
                                                        i->diff_ids[k], "dir", i->layer_dirs[k]));
        json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:o}", "name", i->name, "manifest_digest",
                              i->manifest_digest, "config_digest", i->config_digest, "size",
                              (json_int_t)i->size, "layers", layers);
        if (j != NULL && full)
                json_object_set(j, "config", i->config);
        return j;
}

static void print_info(const struct em_image_info *i)
{
        printf("Name:     %s\nManifest: %s\nConfig:   %s\nSize:     %.1f MB\nLayers:\n", i->name,
               i->manifest_digest, i->config_digest, (double)i->size / 1e6);
        for (size_t k = 0; k < i->n_layers; k++)
                printf("  %s\n    diff-id %s\n    dir     %s\n", i->layer_digests[k],
                       i->diff_ids[k], i->layer_dirs[k]);
        cleanup_free char *cfg = json_dumps(i->config, JSON_INDENT(2) | JSON_SORT_KEYS);
        printf("Config:\n%s\n", cfg ? cfg : "{}");
}

static int open_store(struct em_cli *cli, struct em_store **s, em_error_t *err)
{
        struct em_config *cfg;

        if (cli_config(cli, &cfg, err) < 0)
                return -1;
        return em_store_open(cfg->root, s, err);
}

struct bar {
        char what[32];
        double last;
};

static void draw_progress(void *ud, const char *what, uint64_t done, uint64_t total)
{
        struct bar *b = ud;
        double now = em_mono_s();
        bool fin = total > 0 && done >= total;
        if (strcmp(b->what, what) == 0 && now - b->last < 0.1 && !fin)
                return;
        snprintf(b->what, sizeof(b->what), "%s", what);
        b->last = now;
        int w = total > 0 ? (int)(30.0 * (double)done / (double)total) : 0;
        fprintf(stderr, "\r%-20s [%-30.*s] %8.1f / %.1f MB", what, w > 30 ? 30 : w,
                "##############################", (double)done / 1e6, (double)total / 1e6);
        if (fin)
                fputc('\n', stderr);
}

static int print_result(const struct em_image_info *info, bool json, const char *verb,
                        em_error_t *err)
{
        if (json) {
                cleanup_json json_t *j = info_json(info, false);
                return em_json_print(j, err) < 0 ? 1 : 0;
        }
        printf("%s %s (%s, %zu layers)\n", verb, info->name, info->manifest_digest, info->n_layers);
        return 0;
}

static int do_pull(struct em_store *s, struct image_opts *o, em_error_t *err)
{
        cleanup_image_info struct em_image_info *info = NULL;
        struct bar bar = {{0}, 0};
        struct em_registry_opts ro = o->ro;

        if (o->argc != 1)
                return em_error_set(err, 0, "pull takes one REF; see --help"), 2;
        if (isatty(2) && !o->json)
                ro.progress = draw_progress, ro.progress_ud = &bar;
        if (em_store_pull(s, o->argv[0], &ro, &info, err) < 0)
                return 1;
        return print_result(info, o->json, "pulled", err);
}

static int do_push(struct em_store *s, struct image_opts *o, em_error_t *err)
{
        struct bar bar = {{0}, 0};
        struct em_registry_opts ro = o->ro;

        if (o->argc < 1 || o->argc > 2)
                return em_error_set(err, 0, "push takes NAME [REF]; see --help"), 2;
        if (isatty(2) && !o->json)
                ro.progress = draw_progress, ro.progress_ud = &bar;
        const char *dest = o->argc == 2 ? o->argv[1] : NULL;
        if (em_store_push(s, o->argv[0], dest, &ro, err) < 0)
                return 1;
        if (o->json) {
                cleanup_json json_t *j = json_pack("{s:s, s:s?}", "pushed", o->argv[0], "to", dest);
                return em_json_print(j, err) < 0 ? 1 : 0;
        }
        printf("pushed %s%s%s\n", o->argv[0], dest ? " to " : "", dest ? dest : "");
        return 0;
}

static int do_import(struct em_store *s, struct image_opts *o, em_error_t *err)
{
        cleanup_image_info struct em_image_info *info = NULL;

        if (o->argc != 1)
                return em_error_set(err, 0, "import takes one PATH; see --help"), 2;
        if (em_store_import(s, o->argv[0], o->name, &info, err) < 0)
                return 1;
        return print_result(info, o->json, "imported", err);
}

static int do_ls(struct em_store *s, struct image_opts *o, em_error_t *err)
{
        struct em_image_info **v = NULL;
        size_t n = 0;

        if (em_store_image_list(s, &v, &n, err) < 0)
                return 1;
        cleanup_json json_t *arr = json_array();
        if (!o->json)
                printf("%-50s %-19s %7s %10s\n", "NAME", "MANIFEST", "LAYERS", "SIZE");
        for (size_t i = 0; i < n; i++) {
                if (o->json)
                        json_array_append_new(arr, info_json(v[i], false));
                else
                        printf("%-50s %.19s %7zu %8.1fMB\n", v[i]->name, v[i]->manifest_digest,
                               v[i]->n_layers, (double)v[i]->size / 1e6);
        }
        em_image_info_list_free(v, n);
        return o->json && em_json_print(arr, err) < 0 ? 1 : 0;
}

static int do_inspect(struct em_store *s, struct image_opts *o, em_error_t *err)
{
        cleanup_image_info struct em_image_info *info = NULL;

        if (o->argc != 1)
                return em_error_set(err, 0, "inspect takes one NAME; see --help"), 2;
        if (em_store_image_get(s, o->argv[0], &info, err) < 0)
                return 1;
        if (o->json) {
                cleanup_json json_t *j = info_json(info, true);
                return em_json_print(j, err) < 0 ? 1 : 0;
        }
        print_info(info);
        return 0;
}

static int do_rm(struct em_store *s, struct image_opts *o, em_error_t *err)
{
        cleanup_json json_t *arr = json_array();

        if (o->argc < 1)
                return em_error_set(err, 0, "rm takes NAME...; see --help"), 2;
        for (int i = 0; i < o->argc; i++) {
                cleanup_free char *removed = NULL;
                if (em_store_image_remove(s, o->argv[i], &removed, err) < 0)
                        return 1;
                if (o->json)
                        json_array_append_new(arr, json_string(removed));
                else
                        printf("removed %s\n", removed);
        }
        return o->json && em_json_print(arr, err) < 0 ? 1 : 0;
}

static int do_prune(struct em_cli *cli, struct em_store *s, struct image_opts *o, em_error_t *err)
{
        cleanup_strv char **in_use = NULL;
        struct em_prune_result r;
        struct em_config *cfg;

        if (cli_config(cli, &cfg, err) < 0 || em_container_layers_in_use(cfg, &in_use, err) < 0 ||
            em_store_prune(s, (const char *const *)in_use, &r, err) < 0)
                return 1;
        if (o->json) {
                cleanup_json json_t *j =
                    json_pack("{s:I, s:I, s:I}", "blobs_removed", (json_int_t)r.blobs_removed,
                              "layers_removed", (json_int_t)r.layers_removed, "bytes_freed",
                              (json_int_t)r.bytes_freed);
                return em_json_print(j, err) < 0 ? 1 : 0;
        }
        printf("removed %zu blobs (%.1f MB) and %zu layers\n", r.blobs_removed,
               (double)r.bytes_freed / 1e6, r.layers_removed);
        return 0;
}

int cmd_image(struct em_cli *cli, int argc, char **argv, em_error_t *err)
{
        cleanup_store struct em_store *s = NULL;
        struct image_opts o = {0};

        if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
                cli_print_help(usage);
                return argc < 2 ? 2 : 0;
        }
        const char *sub = argv[1];
        int r = parse_opts(argc - 1, argv + 1, &o, err);
        if (r != 0)
                return r < 0 ? 2 : 0;
        if (open_store(cli, &s, err) < 0)
                return 1;
        if (strcmp(sub, "pull") == 0)
                return do_pull(s, &o, err);
        if (strcmp(sub, "push") == 0)
                return do_push(s, &o, err);
        if (strcmp(sub, "import") == 0)
                return do_import(s, &o, err);
        if (strcmp(sub, "ls") == 0 || strcmp(sub, "list") == 0)
                return do_ls(s, &o, err);
        if (strcmp(sub, "inspect") == 0)
                return do_inspect(s, &o, err);
        if (strcmp(sub, "rm") == 0)
                return do_rm(s, &o, err);
        if (strcmp(sub, "prune") == 0)
                return do_prune(cli, s, &o, err);
        em_error_set(err, 0, "unknown command '%s'; see 'edgemig image --help'", sub);
        return 2;
}
