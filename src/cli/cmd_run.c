#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "container/container.h"
#include "util/cleanup.h"

static const char usage[] =
    "Usage: edgemig run --name NAME [--ip ADDR[/LEN]] [-e K=V]... [--memory BYTES]\n"
    "                   [--cpus N] [--restart POLICY] [-v SRC:DST[:ro]]...\n"
    "                   [--tmpfs DST[:size=BYTES]]... [--cap-add CAP]...\n"
    "                   [--cap-drop CAP]... [--security-opt seccomp=unconfined]\n"
    "                   [--pids-limit N] [--ulimit nofile=N] [--pod POD] IMAGE [CMD...]\n"
    "\n"
    "Create and start a detached container from IMAGE (an image in the store: full\n"
    "reference, name:tag, bare name or manifest digest prefix).\n"
    "\n"
    "The root file system is an overlay: the image's layers, read-only and shared,\n"
    "under the container's own writable layer in <root>/containers/NAME/upper.\n"
    "The container gets its own network namespace (<root>/netns/NAME) with a\n"
    "service IP on eth0 as a /32 and a default route via 169.254.1.1 on the host\n"
    "side of a veth pair; the host routes the /32 to it. The service IP belongs\n"
    "to the container and moves with it on migration. With $EDGEMIG_ROUTE_HOOK\n"
    "set, `$EDGEMIG_ROUTE_HOOK announce IP` runs once the container runs, to\n"
    "route the service IP to this host (docs/deploy.md, section 5a).\n"
    "\n"
    "stdout and stderr are appended to <root>/containers/NAME/log (see `logs`).\n"
    "\n"
    "The container runs in its own user namespace with its own range of host ids\n"
    "(root inside is an unprivileged uid outside), with Docker's default\n"
    "capabilities, a default seccomp filter, no_new_privs, masked and read-only\n"
    "/proc and /sys paths, a pids limit and an open-files limit\n"
    "(docs/security.md). The options below loosen or tighten that profile; what\n"
    "they may loosen is the host's policy, <root>/security.json.\n"
    "\n"
    "Options:\n"
    "  --name NAME        container name: letters, digits, '_', '.', '-' (required)\n"
    "  --ip ADDR[/LEN]    service IP; default: the lowest free address of this\n"
    "                     host's range: $EDGEMIG_SUBNET, else \"service_range\" of\n"
    "                     <root>/network.json, else 10.66.0.0/16 (addresses kept\n"
    "                     for containers that migrated away are skipped;\n"
    "                     docs/network.md)\n"
    "  --pod POD          run in pod POD (`edgemig pod create`): share its network\n"
    "                     (service IP, localhost), IPC namespace, hostname and\n"
    "                     host ID range; takes no --ip (docs/pods.md)\n"
    "  -e, --env K=V      set an environment variable (repeatable; overrides the image)\n"
    "  --memory BYTES     memory limit (suffixes K, M, G, T: powers of 1024)\n"
    "  --cpus N           CPU limit, e.g. 0.5\n"
    "  --restart POLICY   no (default), on-failure (edgemigd starts it again when\n"
    "                     its processes end without `edgemig stop`) or always\n"
    "                     (also after `stop`, when edgemigd starts); it moves\n"
    "                     with the container (docs/lifecycle.md)\n"
    "  -v, --volume NAME:DST[:ro]\n"
    "                     mount the named volume NAME (<root>/volumes/NAME, created\n"
    "                     empty on first use, kept after rm; see `edgemig volume`)\n"
    "                     at DST; ro: read-only (repeatable)\n"
    "  -v, --volume /HOST/PATH:DST[:ro]\n"
    "                     bind-mount a host path, allowed only under a prefix listed\n"
    "                     in \"bind_prefixes\" of <root>/volumes.json; it pins the\n"
    "                     container to hosts that allow the same path\n"
    "  --tmpfs DST[:size=BYTES]\n"
    "                     mount an empty tmpfs at DST (repeatable)\n"
    "  --cap-add CAP      add a capability (repeatable; NET_ADMIN or CAP_NET_ADMIN),\n"
    "                     if the host policy's allow_cap_add lists it\n"
    "  --cap-drop CAP     drop a capability (repeatable; ALL drops every one)\n"
    "  --security-opt seccomp=unconfined\n"
    "                     no seccomp filter, if the host policy's\n"
    "                     allow_seccomp_unconfined is true\n"
    "  --pids-limit N     at most N processes and threads (default: the policy's\n"
    "                     pids_limit, 4096)\n"
    "  --ulimit nofile=N  open-files limit, soft = hard (default: the policy's\n"
    "                     nofile, 1024)\n"
    "  -h, --help         show this help\n"
    "\n"
    "CMD replaces the image's Cmd (the Entrypoint is kept). Volumes are described\n"
    "in docs/volumes.md.\n";

static int parse_u32(const char *s, uint32_t *out)
{
        char *end;

        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (errno || end == s || *end != '\0' || v == 0 || v > UINT32_MAX || *s == '-')
                return -1;
        *out = (uint32_t)v;
        return 0;
}

/* --security-opt and --ulimit: the keys edgemig knows. */
static int security_opts(struct em_run_opts *o, const struct em_opt_list *sec,
                         const struct em_opt_list *ulimits, em_error_t *err)
{
        for (size_t i = 0; i < sec->n; i++) {
                if (strcmp(sec->v[i], "seccomp=unconfined") == 0)
                        o->seccomp_unconfined = true;
                else if (strcmp(sec->v[i], "seccomp=default") != 0 &&
                         strcmp(sec->v[i], "no-new-privileges") != 0)
                        return em_error_set(err, 0,
                                            "--security-opt %s: edgemig knows seccomp=unconfined, "
                                            "seccomp=default and no-new-privileges (always on)",
                                            sec->v[i]);
        }
        for (size_t i = 0; i < ulimits->n; i++) {
                const char *v = ulimits->v[i];
                if (strncmp(v, "nofile=", 7) != 0 || parse_u32(v + 7, &o->nofile) < 0)
                        return em_error_set(err, 0,
                                            "--ulimit %s: edgemig sets nofile=N (soft = hard, "
                                            "N > 0)",
                                            v);
        }
        return 0;
}

int cmd_run(struct em_cli *cli, int argc, char **argv, em_error_t *err)
{
        struct em_run_opts o = {0};
        cleanup_opt_list struct em_opt_list env = {0}, vols = {0}, tmpfs = {0}, cap_add = {0},
                                            cap_drop = {0}, sec = {0}, ulimits = {0};
        struct em_config *cfg;
        const struct em_opt table[] = {
            EM_OPT_STRING("name", 0, &o.name),
            EM_OPT_STRING("ip", 0, &o.ip),
            EM_OPT_STRING("pod", 0, &o.pod),
            EM_OPT_LIST("env", 'e', &env),
            EM_OPT_SIZE("memory", 0, &o.memory, 0, INT64_MAX),
            EM_OPT_DOUBLE_ABOVE("cpus", 0, &o.cpus, 0, 4096),
            EM_OPT_STRING("restart", 0, &o.restart),
            EM_OPT_LIST("volume", 'v', &vols),
            EM_OPT_LIST("tmpfs", 0, &tmpfs),
            EM_OPT_LIST("cap-add", 0, &cap_add),
            EM_OPT_LIST("cap-drop", 0, &cap_drop),
            EM_OPT_LIST("security-opt", 0, &sec),
            EM_OPT_INT("pids-limit", 0, &o.pids_limit, 1, UINT32_MAX),
            EM_OPT_LIST("ulimit", 0, &ulimits),
            EM_OPT_END,
        };
        /* Options end at IMAGE: what follows is the container's command. */
        int first,
            r = cli_parse_flags(usage, table, EM_OPTS_STOP_AT_OPERAND, argc, argv, &first, err);

        if (r != 0)
                return r < 0 ? 2 : 0;
        if (o.name == NULL || first >= argc)
                return em_error_set(err, 0, "--name and IMAGE are required; see --help"), 2;
        for (size_t i = 0; i < env.n; i++)
                if (strchr(env.v[i], '=') == NULL)
                        return em_error_set(err, 0, "-e takes K=V, got '%s'", env.v[i]), 2;
        if (security_opts(&o, &sec, &ulimits, err) < 0)
                return 2;
        o.cap_add = cap_add.v;
        o.cap_drop = cap_drop.v;
        o.image = argv[first];
        o.volumes = vols.v;
        o.tmpfs = tmpfs.v;
        o.env = env.v ? env.v : (const char *[]){NULL};
        o.cmd = first + 1 < argc ? (const char *const *)argv + first + 1 : NULL;
        if (cli_config(cli, &cfg, err) < 0 || em_container_run(cfg, &o, err) < 0 ||
            cli_route(cfg, "announce", o.name, NULL, "runs", err) < 0)
                return 1;
        printf("%s\n", o.name);
        return 0;
}
