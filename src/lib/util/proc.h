/* Processes as /proc shows them: a process tree, a task's innermost pid.
 * (Reading their memory is delta/procmem.h.) */
#ifndef EDGEMIG_UTIL_PROC_H
#define EDGEMIG_UTIL_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The innermost pid of host pid (the one its pid namespace, and CRIU's
 * images, know it by), from the last NSpid of /proc/PID/status; -1 when
 * the process is gone. */
long em_proc_ns_pid(pid_t pid);
/* Whether host pid still runs: false once it is gone or a zombie (a dead
 * container init may wait long for a slow reaper, e.g. a PID 1 that is
 * no real init, and kill(pid, 0) still succeeds on it); true when /proc
 * cannot be read for another reason (EMFILE, ENOMEM). */
bool em_proc_runs(pid_t pid);
/* Whether host pid has a memory map (a VmSize line in /proc/PID/status):
 * false once it is gone, a zombie, or past exit_mm, when CRIU dumps no
 * memory of it (and writes no pagemap image for it). */
bool em_proc_has_mm(pid_t pid);
/* root and its descendants, parents first (the children of each of a
 * process's threads, /proc/PID/task/TID/children), into out[max];
 * returns how many, 0 if root <= 0, each once. A process that exits
 * meanwhile leaves its children out. */
size_t em_proc_tree(pid_t root, pid_t *out, size_t max);
/* As many processes as the checks before a checkpoint list. */
#define EM_PROC_TREE_MAX 4096

#endif
