#include "container/seccomp.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>

/* Bits of clone()'s flags that create namespaces: NEWNS, NEWCGROUP,
 * NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET. */
#define CLONE_NS_FLAGS 0x7E020000ull
#define AF_VSOCK_NR    40

#define CAP_SYS_ADMIN      21
#define CAP_SYS_BOOT       22
#define CAP_SYS_CHROOT     18
#define CAP_SYS_MODULE     16
#define CAP_SYS_NICE       23
#define CAP_SYS_PACCT      20
#define CAP_SYS_PTRACE     19
#define CAP_SYS_RAWIO      17
#define CAP_SYS_TIME       25
#define CAP_SYS_TTY_CONFIG 26
#define CAP_SYSLOG         34
#define CAP_BPF            39
#define CAP_PERFMON        38

/* Always allowed, grouped by what they are for. Names a kernel or libseccomp
 * does not know on this architecture are skipped by runc. */
static const char *const allowed[] = {
    /* files and directories */
    "access",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "close",
    "close_range",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futimesat",
    "getcwd",
    "getdents",
    "getdents64",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listxattr",
    "llistxattr",
    "lremovexattr",
    "lseek",
    "_llseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "newfstatat",
    "open",
    "openat",
    "openat2",
    "pread64",
    "preadv",
    "preadv2",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "rmdir",
    "sendfile",
    "sendfile64",
    "setxattr",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "tee",
    "truncate",
    "truncate64",
    "umask",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vmsplice",
    "write",
    "writev",
    "chroot", /* CAP_SYS_CHROOT is in the default set */
    /* asynchronous I/O (not io_uring, which bypasses this filter) */
    "io_cancel",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "io_setup",
    "io_submit",
    /* memory */
    "brk",
    "cachestat",
    "madvise",
    "membarrier",
    "memfd_create",
    "mincore",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mremap",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "remap_file_pages",
    /* processes, threads, credentials */
    "arch_prctl",
    "capget",
    "capset",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "fork",
    "vfork",
    "get_robust_list",
    "set_robust_list",
    "get_thread_area",
    "set_thread_area",
    "set_tid_address",
    "getcpu",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "setitimer",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "setpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "ugetrlimit",
    "setrlimit",
    "prlimit64",
    "getrusage",
    "getsid",
    "gettid",
    "getuid",
    "getuid32",
    "ioprio_get",
    "ioprio_set",
    "kill",
    "tkill",
    "tgkill",
    "pidfd_open",
    "pidfd_send_signal",
    "pause",
    "prctl",
    "rseq",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getaffinity",
    "sched_setaffinity",
    "sched_getattr",
    "sched_setattr",
    "sched_getparam",
    "sched_setparam",
    "sched_getscheduler",
    "sched_setscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_yield",
    "seccomp",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setpgid",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setsid",
    "setuid",
    "setuid32",
    "times",
    "uname",
    "wait4",
    "waitid",
    "waitpid",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    /* signals */
    "restart_syscall",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sigaction",
    "sigaltstack",
    "signal",
    "signalfd",
    "signalfd4",
    "sigpending",
    "sigprocmask",
    "sigreturn",
    "sigsuspend",
    /* time (reading it; setting it needs CAP_SYS_TIME) */
    "adjtimex",
    "alarm",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "gettimeofday",
    "nanosleep",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    /* waiting and events */
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "futex",
    "futex_time64",
    "futex_waitv",
    "pipe",
    "pipe2",
    "poll",
    "ppoll",
    "ppoll_time64",
    "pselect6",
    "pselect6_time64",
    "select",
    "_newselect",
    /* System V and POSIX IPC (the container has its own IPC namespace) */
    "ipc",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    /* sockets (socket() itself is below: not AF_VSOCK) */
    "accept",
    "accept4",
    "bind",
    "connect",
    "getpeername",
    "getsockname",
    "getsockopt",
    "listen",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "send",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setsockopt",
    "shutdown",
    "socketcall",
    "socketpair",
    /* the rest */
    "ioctl",
    "sysinfo",
    NULL,
};

struct cap_calls {
        int cap, alt_cap; /* either one brings the calls back (alt_cap -1: none) */
        const char *const *names;
};

static const char *const sys_admin[] = {
    "clone3",    "fanotify_init",  "fsconfig",    "fsmount",       "fsopen",
    "fspick",    "lookup_dcookie", "mount",       "mount_setattr", "move_mount",
    "open_tree", "quotactl",       "quotactl_fd", "setdomainname", "sethostname",
    "setns",     "umount",         "umount2",     "unshare",       NULL};
static const char *const sys_boot[] = {"reboot", NULL};
static const char *const sys_module[] = {"delete_module", "init_module", "finit_module", NULL};
static const char *const sys_pacct[] = {"acct", NULL};
static const char *const sys_ptrace[] = {
    "kcmp",   "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev",
    "ptrace", NULL};
static const char *const sys_rawio[] = {"iopl", "ioperm", NULL};
static const char *const sys_time[] = {
    "settimeofday",    "stime", "clock_settime", "clock_settime64", "clock_adjtime",
    "clock_adjtime64", NULL};
static const char *const sys_tty[] = {"vhangup", NULL};
static const char *const sys_nice[] = {"get_mempolicy",           "mbind",      "set_mempolicy",
                                       "set_mempolicy_home_node", "move_pages", NULL};
static const char *const sys_log[] = {"syslog", NULL};
static const char *const bpf_calls[] = {"bpf", NULL};
static const char *const perf_calls[] = {"perf_event_open", NULL};

static const struct cap_calls by_cap[] = {
    {CAP_SYS_ADMIN, -1, sys_admin},      {CAP_SYS_BOOT, -1, sys_boot},
    {CAP_SYS_MODULE, -1, sys_module},    {CAP_SYS_PACCT, -1, sys_pacct},
    {CAP_SYS_PTRACE, -1, sys_ptrace},    {CAP_SYS_RAWIO, -1, sys_rawio},
    {CAP_SYS_TIME, -1, sys_time},        {CAP_SYS_TTY_CONFIG, -1, sys_tty},
    {CAP_SYS_NICE, -1, sys_nice},        {CAP_SYSLOG, CAP_SYS_ADMIN, sys_log},
    {CAP_BPF, CAP_SYS_ADMIN, bpf_calls}, {CAP_PERFMON, CAP_SYS_ADMIN, perf_calls},
};

static bool has(uint64_t caps, int cap)
{
        return cap >= 0 && (caps & (1ull << cap));
}

static json_t *names_json(const char *const *v)
{
        json_t *a = json_array();

        for (; a && *v; v++)
                json_array_append_new(a, json_string(*v));
        return a;
}

static json_t *rule(const char *const *names, json_t *args)
{
        json_t *r = json_pack("{s:o, s:s}", "names", names_json(names), "action", "SCMP_ACT_ALLOW");

        if (r && args)
                json_object_set_new(r, "args", args);
        else
                json_decref(args);
        return r;
}

static json_t *one_arg(unsigned index, uint64_t value, uint64_t value2, const char *op)
{
        return json_pack("{s:I, s:I, s:I, s:s}", "index", (json_int_t)index, "value",
                         (json_int_t)value, "valueTwo", (json_int_t)value2, "op", op);
}

/* Each allowed personality() value is its own rule: args in one rule AND. */
static void add_personality(json_t *rules)
{
        static const char *const name[] = {"personality", NULL};
        /* PER_LINUX, UNAME26, PER_LINUX32, PER_LINUX32|UNAME26, query */
        static const uint64_t ok[] = {0x0, 0x0020000, 0x0008, 0x20008, 0xffffffff};

        for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
                json_array_append_new(
                    rules, rule(name, json_pack("[o]", one_arg(0, ok[i], 0, "SCMP_CMP_EQ"))));
}

static void add_conditional(json_t *rules, uint64_t caps)
{
        static const char *const clone[] = {"clone", NULL};
        static const char *const clone3[] = {"clone3", NULL};
        static const char *const socket[] = {"socket", NULL};

        add_personality(rules);
        json_array_append_new(
            rules, rule(socket, json_pack("[o]", one_arg(0, AF_VSOCK_NR, 0, "SCMP_CMP_NE"))));
        if (has(caps, CAP_SYS_ADMIN)) {
                json_array_append_new(rules, rule(clone, NULL));
                return;
        }
        json_array_append_new(rules, rule(clone, json_pack("[o]", one_arg(0, CLONE_NS_FLAGS, 0,
                                                                          "SCMP_CMP_MASKED_EQ"))));
        json_array_append_new(rules, json_pack("{s:o, s:s, s:i}", "names", names_json(clone3),
                                               "action", "SCMP_ACT_ERRNO", "errnoRet", ENOSYS));
}

json_t *em_seccomp_default(uint64_t caps)
{
        json_t *rules = json_array();

        if (rules == NULL)
                return NULL;
        json_array_append_new(rules, rule(allowed, NULL));
        for (size_t i = 0; i < sizeof(by_cap) / sizeof(by_cap[0]); i++) {
                if (has(caps, by_cap[i].cap) || has(caps, by_cap[i].alt_cap))
                        json_array_append_new(rules, rule(by_cap[i].names, NULL));
        }
        add_conditional(rules, caps);
        return json_pack("{s:s, s:i, s:[s, s, s], s:o}", "defaultAction", "SCMP_ACT_ERRNO",
                         "defaultErrnoRet", EPERM, "architectures", "SCMP_ARCH_X86_64",
                         "SCMP_ARCH_X86", "SCMP_ARCH_X32", "syscalls", rules);
}
