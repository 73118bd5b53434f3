#include <stdio.h>
#include <string.h>

#include "checkpoint/pod_ckpt.h"
#include "cli/cli.h"
#include "container/pod.h"
#include "container/routehook.h"
#include "util/cleanup.h"
#include "util/clock.h"
#include "util/json.h"

static const char usage[] =
    "Usage: edgemig pod create [--ip ADDR[/LEN]] [--image IMAGE] [--restart POLICY]\n"
    "                          NAME\n"
    "       edgemig pod ls [--json]\n"
    "       edgemig pod inspect NAME\n"
    "       edgemig pod start NAME...\n"
    "       edgemig pod stop [-t SECONDS] NAME...\n"
    "       edgemig pod rm [--force] NAME...\n"
    "       edgemig pod checkpoint NAME --to DIR\n"
    "       edgemig pod restore DIR\n"
    "\n"
    "Manage pods: containers that share one network namespace (one service IP,\n"
    "and localhost between them), one IPC namespace and one hostname, the pod's\n"
    "name. Start containers in a pod with `edgemig run --pod NAME ...`.\n"
    "\n"
    "A pod is held by its infra container, a container named like the pod that\n"
    "only sleeps (from the busybox image unless --image): it owns the pod's\n"
    "namespaces, service IP and host ID range, so members can stop, restart or\n"
    "be removed without the others losing their network. `ps` lists it too.\n"
    "With $EDGEMIG_ROUTE_HOOK set, create and start run `$EDGEMIG_ROUTE_HOOK\n"
    "announce IP` for the pod's service IP, stop and rm `... withdraw IP`.\n"
    "\n"
    "  create    create the pod and start its infra container\n"
    "  ls        list the pods: name, service IP, state, members\n"
    "  inspect   print one pod as JSON: name, ip, state, infra_pid, members\n"
    "  start     start the infra container (unless it runs), then every member\n"
    "            that does not run\n"
    "  stop      stop the running members, then the infra container\n"
    "  rm        remove pods; refused while a pod has members, unless --force,\n"
    "            which removes its members first (running or not)\n"
    "  checkpoint  checkpoint the whole pod into DIR (new or empty) in one freeze:\n"
    "            its running members, then its infra container; the pod stops.\n"
    "            If any dump fails, the pod runs on as before; if this process\n"
    "            dies midway, `edgemig recover` (or edgemigd's start) brings the\n"
    "            pod back. A pod whose processes use memory protection keys is\n"
    "            refused up front (see `edgemig checkpoint --help`)\n"
    "  restore   restore a pod checkpointed into DIR: the infra container, then\n"
    "            each member into its namespaces. If any fails, nothing of the\n"
    "            pod runs and DIR is kept for a retry\n"
    "\n"
    "Options:\n"
    "  --ip ADDR[/LEN]  create: the pod's service IP; default: allocated from\n"
    "                   this host's range as `run` does (docs/network.md)\n"
    "  --image IMAGE    create: the infra container's image, which needs sh and\n"
    "                   sleep (default: busybox)\n"
    "  --restart POLICY create: the infra container's restart policy, no (default),\n"
    "                   on-failure or always (docs/lifecycle.md); edgemigd starts\n"
    "                   a pod's infra container before other containers, so give\n"
    "                   the members the same policy to bring the pod back\n"
    "  -t, --time SECONDS\n"
    "                   stop: grace period of each container before SIGKILL\n"
    "                   (default 10)\n"
    "  --force          rm: remove the members too\n"
    "  --to DIR         checkpoint: where to write the pod's checkpoint (required)\n"
    "  --json           ls: print JSON (an array of inspect's objects);\n"
    "                   checkpoint: print {\"pod\", \"dir\", \"seconds\"}; restore:\n"
    "                   {\"dir\", \"seconds\"}\n"
    "  -h, --help       show this help\n"
    "\n"
    "See docs/pods.md.\n";

struct pod_args {
        bool json, force;
        const char *ip, *image, *restart, *to;
        int time_s; /* -1: not given */
};

static int do_ls(const struct em_config *cfg, bool json, em_error_t *err)
{
        cleanup_json json_t *list = NULL;
        size_t i, j;
        json_t *p, *m;

        if (em_pod_list(cfg, &list, err) < 0)
                return 1;
        if (json)
                return em_json_print(list, err) < 0 ? 1 : 0;
        printf("%-20s %-15s %-12s %s\n", "NAME", "IP", "STATE", "MEMBERS");
        json_array_foreach(list, i, p)
        {
                const char *ip = em_json_str(p, "ip");
                printf("%-20s %-15s %-12s", em_json_str(p, "name"), ip ? ip : "-",
                       em_json_str(p, "state"));
                json_array_foreach(json_object_get(p, "members"), j, m) printf(
                    "%s%s (%s)", j ? ", " : " ", em_json_str(m, "name"), em_json_str(m, "state"));
                printf("\n");
        }
        return 0;
}

static int do_rm(const struct em_config *cfg, int argc, char **argv, bool force, em_error_t *err)
{
        for (int i = 0; i < argc; i++) {
                cleanup_free char *ip = NULL;
                /* The address goes with the infra container: read it first. */
                if (cli_route_hook() != NULL &&
                    em_route_hook_container_ip(cfg, argv[i], &ip, err) < 0)
                        return 1;
                if (em_pod_rm(cfg, argv[i], force, err) < 0 ||
                    (ip != NULL && cli_route(cfg, "withdraw", argv[i], ip, "is removed", err) < 0))
                        return 1;
                printf("%s\n", argv[i]);
        }
        return 0;
}

static int do_create(const struct em_config *cfg, int argc, char **argv, const struct pod_args *a,
                     em_error_t *err)
{
        if (argc != 1)
                return em_error_set(err, 0, "create takes one NAME; see --help"), 2;
        struct em_pod_create_opts o = {
            .name = argv[0], .ip = a->ip, .image = a->image, .restart = a->restart};
        if (em_pod_create(cfg, &o, err) < 0 ||
            cli_route(cfg, "announce", argv[0], NULL, "runs", err) < 0)
                return 1;
        printf("%s\n", argv[0]);
        return 0;
}

/* Options that only one subcommand takes are usage errors elsewhere. */
static int check_flags(const char *sub, const struct pod_args *a, em_error_t *err)
{
        if ((a->ip || a->image || a->restart) && strcmp(sub, "create") != 0)
                return em_error_set(err, 0, "--ip, --image and --restart go with `pod create`"), -1;
        if (a->time_s >= 0 && strcmp(sub, "stop") != 0)
                return em_error_set(err, 0, "-t goes with `pod stop`"), -1;
        if (a->to && strcmp(sub, "checkpoint") != 0)
                return em_error_set(err, 0, "--to goes with `pod checkpoint`"), -1;
        if (a->force && strcmp(sub, "rm") != 0)
                return em_error_set(err, 0, "--force goes with `pod rm`"), -1;
        if (a->json && strcmp(sub, "ls") != 0 && strcmp(sub, "list") != 0 &&
            strcmp(sub, "checkpoint") != 0 && strcmp(sub, "restore") != 0)
                return em_error_set(err, 0,
                                    "--json goes with `pod ls`, `checkpoint` and `restore` "
                                    "(inspect prints JSON)"),
                       -1;
        return 0;
}

/* start or stop of each pod named. */
static int do_each(const struct em_config *cfg, const char *sub, int argc, char **argv,
                   const struct pod_args *a, em_error_t *err)
{
        if (argc < 1)
                return em_error_set(err, 0, "%s takes NAME...; see --help", sub), 2;
        for (int i = 0; i < argc; i++) {
                bool start = strcmp(sub, "start") == 0;
                int rc = start ? em_pod_start(cfg, argv[i], err)
                               : em_pod_stop(cfg, argv[i], a->time_s < 0 ? 10 : a->time_s, err);
                if (rc < 0 || cli_route(cfg, start ? "announce" : "withdraw", argv[i], NULL,
                                        start ? "runs" : "is stopped", err) < 0)
                        return 1;
                printf("%s\n", argv[i]);
        }
        return 0;
}

/* checkpoint NAME --to DIR, restore DIR */
static int do_ckpt(const struct em_config *cfg, const char *sub, int argc, char **argv,
                   const struct pod_args *a, em_error_t *err)
{
        bool ckpt = strcmp(sub, "checkpoint") == 0;

        if (argc != 1)
                return em_error_set(err, 0, "%s takes one %s; see --help", sub,
                                    ckpt ? "NAME" : "DIR"),
                       2;
        if (ckpt && a->to == NULL)
                return em_error_set(err, 0, "checkpoint needs --to DIR; see --help"), 2;
        double t0 = em_mono_s();
        if (ckpt ? em_pod_checkpoint(cfg, argv[0], a->to, err) < 0
                 : em_pod_restore(cfg, argv[0], err) < 0)
                return 1;
        double secs = em_mono_s() - t0;
        const char *dir = ckpt ? a->to : argv[0];
        if (!a->json) {
                printf("%s\n", argv[0]);
                return 0;
        }
        cleanup_json json_t *j = json_pack("{s:s, s:f}", "dir", dir, "seconds", secs);
        if (j != NULL && ckpt)
                json_object_set_new(j, "pod", json_string(argv[0]));
        return em_json_print(j, err) < 0 ? 1 : 0;
}

static int run_sub(const struct em_config *cfg, const char *sub, int argc, char **argv,
                   const struct pod_args *a, em_error_t *err)
{
        cleanup_json json_t *j = NULL;

        if (strcmp(sub, "start") == 0 || strcmp(sub, "stop") == 0)
                return do_each(cfg, sub, argc, argv, a, err);
        if (strcmp(sub, "checkpoint") == 0 || strcmp(sub, "restore") == 0)
                return do_ckpt(cfg, sub, argc, argv, a, err);
        if (strcmp(sub, "create") == 0)
                return do_create(cfg, argc, argv, a, err);
        if (strcmp(sub, "ls") == 0 || strcmp(sub, "list") == 0)
                return argc == 0 ? do_ls(cfg, a->json, err)
                                 : (em_error_set(err, 0, "ls takes no operands"), 2);
        if (strcmp(sub, "inspect") == 0) {
                if (argc != 1)
                        return em_error_set(err, 0, "inspect takes one NAME; see --help"), 2;
                return em_pod_inspect(cfg, argv[0], &j, err) < 0 || em_json_print(j, err) < 0;
        }
        if (strcmp(sub, "rm") == 0)
                return argc >= 1 ? do_rm(cfg, argc, argv, a->force, err)
                                 : (em_error_set(err, 0, "rm takes NAME...; see --help"), 2);
        em_error_set(err, 0, "unknown command '%s'; see 'edgemig pod --help'", sub);
        return 2;
}

int cmd_pod(struct em_cli *cli, int argc, char **argv, em_error_t *err)
{
        struct em_config *cfg;
        struct pod_args a = {.time_s = -1};
        const struct em_opt table[] = {
            EM_OPT_FLAG("json", 0, &a.json),
            EM_OPT_FLAG("force", 0, &a.force),
            EM_OPT_STRING("ip", 0, &a.ip),
            EM_OPT_STRING("image", 0, &a.image),
            EM_OPT_STRING("restart", 0, &a.restart),
            EM_OPT_STRING("to", 0, &a.to),
            EM_OPT_DURATION("time", 't', &a.time_s, EM_OPT_S, EM_OPT_S, 0, 3600),
            EM_OPT_END,
        };
        int first;

        if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
                cli_print_help(usage);
                return argc < 2 ? 2 : 0;
        }
        int r = cli_parse(usage, table, argc - 1, argv + 1, &first, err);
        if (r != 0)
                return r < 0 ? 2 : 0;
        if (check_flags(argv[1], &a, err) < 0)
                return 2;
        if (cli_config(cli, &cfg, err) < 0)
                return 1;
        return run_sub(cfg, argv[1], argc - 1 - first, argv + 1 + first, &a, err);
}
