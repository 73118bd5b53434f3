/* Runs a seccomp filter (classic BPF, as in seccomp.img) on one system call,
 * to tell what a peer's filter chain would do with the calls this host's
 * profile denies. It implements the instructions the kernel's seccomp
 * checker accepts (loads from struct seccomp_data, the scratch memory, ALU,
 * forward jumps, RET, TAX/TXA); a program with anything else, an
 * out-of-range load or jump, or no RET at its end is not one the kernel
 * would run, and is reported as invalid. Jumps only go forward, so a run
 * takes at most one step per instruction. */
#ifndef EDGEMIG_CHECKPOINT_SECCOMP_EVAL_H
#define EDGEMIG_CHECKPOINT_SECCOMP_EVAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EM_AUDIT_ARCH_X86_64 0xc000003eu
#define EM_AUDIT_ARCH_I386   0x40000003u
#define EM_X32_SYSCALL_BIT   0x40000000u

#define EM_SECCOMP_RET_ACTION 0xffff0000u
#define EM_SECCOMP_RET_ERRNO  0x00050000u
#define EM_SECCOMP_RET_ALLOW  0x7fff0000u

/* Runs prog (len bytes of struct sock_filter) on system call nr of arch
 * with all arguments and the instruction pointer 0. 0 and *ret, or -1 when
 * the program is invalid. */
int em_seccomp_run(const uint8_t *prog, size_t len, uint32_t arch, uint32_t nr, uint32_t *ret);

/* Of two filters' results, the one the kernel acts on (the most
 * restrictive: the lowest action as a signed number). */
uint32_t em_seccomp_stricter(uint32_t a, uint32_t b);

/* Whether the action refuses the call: KILL_PROCESS, KILL_THREAD, TRAP or
 * ERRNO. TRACE, USER_NOTIF and LOG let another process or the call itself
 * decide, so they do not count. */
bool em_seccomp_denies(uint32_t ret);

#endif
