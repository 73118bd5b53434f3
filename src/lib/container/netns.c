#include "container/netns.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/subprocess.h"

#define IP_TIMEOUT_MS 10000

int em_netns_create(const char *path, em_error_t *err)
{
        cleanup_close int fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
        int status;

        if (fd < 0)
                return em_error_set(err, errno, "creating %s", path);
        /* A child unshares, so the caller's threads never change namespace. */
        pid_t pid = fork();
        if (pid < 0) {
                unlink(path);
                return em_error_set(err, errno, "fork");
        }
        if (pid == 0) {
                if (unshare(CLONE_NEWNET) < 0)
                        _exit(1);
                if (mount("/proc/self/ns/net", path, NULL, MS_BIND, NULL) < 0)
                        _exit(2);
                _exit(0);
        }
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                unlink(path);
                return em_error_set(err, 0, "creating network namespace %s: %s failed", path,
                                    WIFEXITED(status) && WEXITSTATUS(status) == 1 ? "unshare"
                                                                                  : "bind mount");
        }
        return 0;
}

int em_netns_destroy(const char *path, em_error_t *err)
{
        if (umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW) < 0 && errno != EINVAL && errno != ENOENT)
                return em_error_set(err, errno, "unmounting %s", path);
        if (unlink(path) < 0 && errno != ENOENT)
                return em_error_set(err, errno, "removing %s", path);
        return 0;
}

/* Runs `ip -batch -` with the given commands, in netns (NULL: ours). */
static int ip_batch(const char *netns, const char *cmds, em_error_t *err)
{
        const char *argv[] = {"ip", "-batch", "-", NULL};
        struct em_proc_spec spec;
        cleanup_close int rd = -1, wr = -1;
        int p[2];

        if (pipe2(p, O_CLOEXEC) < 0)
                return em_error_set(err, errno, "pipe");
        rd = p[0];
        wr = p[1];
        /* A few hundred bytes: fits the pipe buffer, no deadlock. */
        if (em_write_all(wr, cmds, strlen(cmds), err) < 0)
                return -1;
        em_cleanup_closep(&wr);
        em_proc_spec_init(&spec, argv);
        spec.netns = netns;
        spec.stdin_fd = rd;
        spec.timeout_ms = IP_TIMEOUT_MS;
        return em_proc_run(&spec, NULL, err);
}

static bool ifname_ok(const char *n)
{
        return n[0] != '\0' && strlen(n) < IFNAMSIZ &&
               strspn(n, "abcdefghijklmnopqrstuvwxyz"
                         "0123456789-_") == strlen(n);
}

/* Host side: up, gateway address and, when ip is given, the /32 route, in
 * one ip run (each run costs a fork+exec on the checkpoint/restore path). */
static int wire_host(const char *host_veth, const char *ip, em_error_t *err)
{
        char cmds[512];
        int n = snprintf(cmds, sizeof(cmds),
                         "link set %s up\n"
                         "addr add " EM_GATEWAY_IP "/32 dev %s\n",
                         host_veth, host_veth);
        if (ip)
                snprintf(cmds + n, sizeof(cmds) - (size_t)n,
                         "route replace %s/32 dev %s scope link\n", ip, host_veth);
        if (ip_batch(NULL, cmds, err) < 0)
                return em_error_wrap(err, "configuring host interface %s", host_veth);
        return 0;
}

static int wire_container(const char *netns, const char *host_veth, const char *ip, em_error_t *err)
{
        char cmds[1024];

        if (!ifname_ok(host_veth))
                return em_error_set(err, EINVAL, "invalid interface name '%s'", host_veth);
        snprintf(cmds, sizeof(cmds),
                 "link add eth0 type veth peer name %s netns %d\n"
                 "link set lo up\n"
                 "link set eth0 up\n"
                 "addr add %s/32 dev eth0\n"
                 "route add " EM_GATEWAY_IP " dev eth0 scope link\n"
                 "route add default via " EM_GATEWAY_IP " dev eth0\n",
                 host_veth, (int)getpid(), ip);
        if (ip_batch(netns, cmds, err) < 0)
                return em_error_wrap(err, "configuring the container side of %s", netns);
        return 0;
}

int em_netns_wire(const char *netns, const char *host_veth, const char *ip, em_error_t *err)
{
        if (wire_container(netns, host_veth, ip, err) < 0)
                return -1;
        return wire_host(host_veth, NULL, err);
}

/* Routing to the container needs forwarding in the host namespace. */
static void enable_forwarding(void)
{
        char v = '0';
        cleanup_close int fd = open("/proc/sys/net/ipv4/ip_forward", O_RDWR | O_CLOEXEC);

        if (fd < 0 || read(fd, &v, 1) != 1 || v == '1')
                return;
        if (pwrite(fd, "1\n", 2, 0) != 2)
                em_log_warn("cannot enable IPv4 forwarding: %s", strerror(errno));
}

int em_netns_route_add(const char *host_veth, const char *ip, em_error_t *err)
{
        char cmds[256];

        enable_forwarding();
        snprintf(cmds, sizeof(cmds), "route replace %s/32 dev %s scope link\n", ip, host_veth);
        if (ip_batch(NULL, cmds, err) < 0)
                return em_error_wrap(err, "routing %s to %s", ip, host_veth);
        return 0;
}

int em_netns_route_del(const char *host_veth, const char *ip, em_error_t *err)
{
        char cmds[256];

        snprintf(cmds, sizeof(cmds), "route del %s/32 dev %s\n", ip, host_veth);
        if (ip_batch(NULL, cmds, err) < 0)
                return em_error_wrap(err, "withdrawing route to %s", ip);
        return 0;
}

int em_netns_blackhole(const char *ip, bool on, em_error_t *err)
{
        char cmds[256];

        snprintf(cmds, sizeof(cmds), "rule %s to %s/32 blackhole priority %d\n", on ? "add" : "del",
                 ip, EM_NETNS_BLACKHOLE_PRIORITY);
        if (ip_batch(NULL, cmds, err) < 0)
                return em_error_wrap(err, "%s the blackhole rule of %s", on ? "adding" : "removing",
                                     ip);
        return 0;
}

/* Wires the namespace at path to the host; on failure nothing is left,
 * not even the namespace. */
static int wire(const char *path, const char *host_veth, const char *ip, em_error_t *err)
{
        enable_forwarding();
        if (wire_container(path, host_veth, ip, err) < 0 || wire_host(host_veth, ip, err) < 0) {
                em_error_t e2 = NULL;
                em_netns_teardown(path, host_veth, &e2);
                em_error_free(&e2);
                return -1;
        }
        return 0;
}

int em_netns_setup(const char *path, const char *host_veth, const char *ip, em_error_t *err)
{
        if (em_netns_create(path, err) < 0)
                return -1;
        return wire(path, host_veth, ip, err);
}

static int bind_ns(int pid, const char *path, em_error_t *err)
{
        char src[64];
        cleanup_close int fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);

        if (fd < 0)
                return em_error_set(err, errno, "creating %s", path);
        snprintf(src, sizeof(src), "/proc/%d/ns/net", pid);
        if (mount(src, path, NULL, MS_BIND, NULL) < 0) {
                int e = errno;
                unlink(path);
                return em_error_set(err, e, "binding %s at %s", src, path);
        }
        return 0;
}

int em_netns_adopt(int pid, const char *path, const char *host_veth, const char *ip,
                   em_error_t *err)
{
        if (bind_ns(pid, path, err) < 0)
                return -1;
        return wire(path, host_veth, ip, err);
}

static bool link_exists(const char *ifname)
{
        return if_nametoindex(ifname) != 0;
}

int em_netns_teardown(const char *path, const char *host_veth, em_error_t *err)
{
        char cmds[128];

        /* Deleting the veth now, rather than when the namespace is finally
         * freed, makes teardown synchronous. */
        if (ifname_ok(host_veth) && link_exists(host_veth)) {
                snprintf(cmds, sizeof(cmds), "link del %s\n", host_veth);
                if (ip_batch(NULL, cmds, err) < 0)
                        return em_error_wrap(err, "removing %s", host_veth);
        }
        return em_netns_destroy(path, err);
}

static void iptables_quiet(const char *netns, const char *tool, const char *const *args)
{
        const char *argv[8] = {tool, "-w"};
        struct em_proc_spec spec;
        em_error_t e = NULL;
        size_t i = 2;

        for (; *args && i < 7; args++)
                argv[i++] = *args;
        argv[i] = NULL;
        em_proc_spec_init(&spec, argv);
        spec.netns = netns;
        spec.timeout_ms = IP_TIMEOUT_MS;
        em_proc_run(&spec, NULL, &e);
        em_error_free(&e);
}

int em_netns_flush_criu_lock(const char *netns, em_error_t *err)
{
        static const char *const del_in[] = {"-D", "INPUT", "-j", "CRIU", NULL};
        static const char *const del_out[] = {"-D", "OUTPUT", "-j", "CRIU", NULL};
        static const char *const flush[] = {"-F", "CRIU", NULL};
        static const char *const del[] = {"-X", "CRIU", NULL};
        static const char *const tools[] = {"iptables", "ip6tables"};

        if (!em_path_exists(netns))
                return em_error_set(err, ENOENT, "no network namespace %s", netns);
        /* Each step fails harmlessly when the rule or chain is absent. */
        for (size_t t = 0; t < 2; t++) {
                iptables_quiet(netns, tools[t], del_in);
                iptables_quiet(netns, tools[t], del_out);
                iptables_quiet(netns, tools[t], flush);
                iptables_quiet(netns, tools[t], del);
        }
        return 0;
}

static int iptables_run(const char *netns, const char *tool, const char *const *args,
                        em_error_t *err)
{
        const char *argv[8] = {tool, "-w"};
        struct em_proc_spec spec;
        size_t i = 2;

        for (; *args && i < 7; args++)
                argv[i++] = *args;
        argv[i] = NULL;
        em_proc_spec_init(&spec, argv);
        spec.netns = netns;
        spec.timeout_ms = IP_TIMEOUT_MS;
        return em_proc_run(&spec, NULL, err);
}

int em_netns_criu_lock(const char *netns, em_error_t *err)
{
        static const char *const steps[][5] = {{"-N", "CRIU", NULL},
                                               {"-A", "CRIU", "-j", "DROP", NULL},
                                               {"-I", "INPUT", "-j", "CRIU", NULL},
                                               {"-I", "OUTPUT", "-j", "CRIU", NULL}};
        static const char *const tools[] = {"iptables", "ip6tables"};

        if (!em_path_exists(netns))
                return em_error_set(err, ENOENT, "no network namespace %s", netns);
        for (size_t t = 0; t < 2; t++)
                for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
                        if (iptables_run(netns, tools[t], steps[i], err) < 0) {
                                em_error_t e = NULL;
                                em_netns_flush_criu_lock(netns, &e);
                                em_error_free(&e);
                                return em_error_wrap(err, "locking network namespace %s", netns);
                        }
        return 0;
}

int em_netns_hold_resets(const char *netns, bool on, em_error_t *err)
{
        const char *rule[] = {on ? "-I" : "-D", "OUTPUT", "-p",  "tcp",
                              "--tcp-flags",    "RST",    "RST", "-j",
                              "DROP",           NULL};
        static const char *const tools[] = {"iptables", "ip6tables"};
        const char *argv[16] = {NULL, "-w"};
        struct em_proc_spec spec;

        if (!em_path_exists(netns))
                return em_error_set(err, ENOENT, "no network namespace %s", netns);
        for (size_t t = 0; t < 2; t++) {
                argv[0] = tools[t];
                memcpy(argv + 2, rule, sizeof(rule));
                em_proc_spec_init(&spec, argv);
                spec.netns = netns;
                spec.timeout_ms = IP_TIMEOUT_MS;
                if (em_proc_run(&spec, NULL, err) < 0)
                        return em_error_wrap(err, "%s the TCP resets in %s",
                                             on ? "holding" : "releasing", netns);
        }
        return 0;
}
