/* The default seccomp filter, as OCI config.json `linux.seccomp` (runc
 * compiles it with libseccomp). Modelled on Docker's default profile: an
 * allow-list of the system calls ordinary services make; everything else
 * fails with EPERM. Kept out: namespaces and mounts (clone with namespace
 * flags, unshare, setns, mount and the new mount API), kernel modules,
 * kexec, reboot, keyrings, BPF, perf, ptrace and cross-process memory,
 * clock setting, NUMA policy, userfaultfd, open_by_handle_at, AF_VSOCK
 * sockets and unusual personalities. A capability the container holds
 * (cap-add, where the host policy allows it) brings back the calls it
 * guards, as Docker does. clone3 fails with ENOSYS so that libc falls back
 * to clone, whose flags the filter can see. */
#ifndef EDGEMIG_CONTAINER_SECCOMP_H
#define EDGEMIG_CONTAINER_SECCOMP_H

#include <jansson.h>
#include <stdint.h>

/* The filter for a container holding caps (bit 1 << CAP_x); NULL on OOM. */
json_t *em_seccomp_default(uint64_t caps);

#endif
