#include "container/nethook.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "container/netns.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/json.h"

#define HOOK_TIMEOUT_S 30

static bool usable(char *out, size_t size, const char *dir, const char *rel)
{
        return (size_t)snprintf(out, size, "%s%s", dir, rel) < size && access(out, X_OK) == 0;
}

/* The first executable edgemig in the directories of $PATH. */
static bool in_path(char *out, size_t size)
{
        const char *path = getenv("PATH");
        char dirs[4096];

        if (path == NULL || snprintf(dirs, sizeof(dirs), "%s", path) >= (int)sizeof(dirs))
                return false;
        char *save = NULL;
        for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save))
                if (d[0] == '/' && usable(out, size, d, "/edgemig"))
                        return true;
        return false;
}

/* The edgemig binary: this one; else $EDGEMIG_BIN; else the one installed
 * next to this binary (edgemigd in a build tree) or one directory up (a
 * test helper); else edgemig in $PATH (packages put edgemigd in sbin). */
static int hook_binary(char *out, size_t size, em_error_t *err)
{
        char self[PATH_MAX], dir[PATH_MAX];
        const char *env = getenv("EDGEMIG_BIN");
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

        if (n < 0)
                return em_error_set(err, errno, "reading /proc/self/exe");
        self[n] = '\0';
        snprintf(dir, sizeof(dir), "%s", self);
        if (strcmp(basename(dir), "edgemig") == 0)
                return usable(out, size, self, "") ? 0 : em_error_set(err, errno, "%s", self);
        if (env && *env)
                return usable(out, size, env, "")
                           ? 0
                           : em_error_set(err, errno, "$EDGEMIG_BIN (%s): not executable", env);
        snprintf(dir, sizeof(dir), "%s", self);
        dirname(dir);
        if (usable(out, size, dir, "/edgemig") || usable(out, size, dir, "/../edgemig") ||
            in_path(out, size))
                return 0;
        return em_error_set(err, ENOENT,
                            "edgemig (the network hook runc calls) is neither next to %s nor in "
                            "$PATH: install it, or name it in $EDGEMIG_BIN",
                            self);
}

/* The hook runc runs: edgemig-netns-hook installed next to edgemig (make
 * install puts both in BINDIR), else edgemig itself with the netns-hook
 * verb (an install without the small binary still works, only slower). */
static int hook_argv(char *bin, size_t size, const char **argv0, em_error_t *err)
{
        char dir[PATH_MAX], small[PATH_MAX];

        if (hook_binary(bin, size, err) < 0)
                return -1;
        snprintf(dir, sizeof(dir), "%s", bin);
        dirname(dir);
        *argv0 = NULL;
        if (usable(small, sizeof(small), dir, "/" EM_NETHOOK_BIN) && strlen(small) < size) {
                memcpy(bin, small, strlen(small) + 1);
                *argv0 = EM_NETHOOK_BIN;
        }
        return 0;
}

static json_t *hook_args(const char *argv0, const char *netns, const char *host_veth,
                         const char *ip)
{
        if (argv0)
                return json_pack("[s, s, s, s]", argv0, netns, host_veth, ip);
        return json_pack("[s, s, s, s, s]", "edgemig", EM_NETHOOK_VERB, netns, host_veth, ip);
}

int em_nethook_json(const char *netns, const char *host_veth, const char *ip, json_t **out,
                    em_error_t *err)
{
        char bin[PATH_MAX];
        const char *argv0;
        const char *path = getenv("PATH");
        cleanup_free char *env = NULL;

        if (hook_argv(bin, sizeof(bin), &argv0, err) < 0)
                return -1;
        /* runc runs hooks with only the environment given here; the hook
         * runs `ip` from the PATH edgemig has. */
        if (asprintf(&env, "PATH=%s", path && *path ? path : "/usr/sbin:/usr/bin:/sbin:/bin") < 0)
                return em_error_set(err, ENOMEM, "network hook");
        *out = json_pack("{s:s, s:o, s:[s], s:i}", "path", bin, "args",
                         hook_args(argv0, netns, host_veth, ip), "env", env, "timeout",
                         HOOK_TIMEOUT_S);
        return *out ? 0 : em_error_set(err, ENOMEM, "network hook");
}

int em_nethook_run(const char *netns, const char *host_veth, const char *ip, int state_fd,
                   em_error_t *err)
{
        char buf[65536];
        cleanup_json json_t *state = NULL;
        ssize_t n = em_read_all(state_fd, buf, sizeof(buf), err);

        if (n < 0)
                return em_error_wrap(err, "reading the container state from runc");
        if (em_json_parse(buf, (size_t)n, "container state", &state, err) < 0)
                return -1;
        long long pid = em_json_int(state, "pid", 0);
        if (pid <= 0 || pid > INT_MAX)
                return em_error_set(err, EINVAL, "the container state has no pid");
        if (em_netns_adopt((int)pid, netns, host_veth, ip, err) < 0)
                return em_error_wrap(err, "wiring the network of pid %lld", pid);
        return 0;
}
