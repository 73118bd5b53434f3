/* Cleanup attributes for every owned resource, and explicit hand-off. */
#ifndef EDGEMIG_UTIL_CLEANUP_H
#define EDGEMIG_UTIL_CLEANUP_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>

void em_cleanup_freep(void *p);
void em_cleanup_closep(int *fd);
void em_cleanup_fclosep(FILE **f);
void em_cleanup_closedirp(DIR **d);
void em_cleanup_strvp(char ***v);
/* Kills (SIGKILL) and reaps a child that is still owned on scope exit. */
void em_cleanup_pidp(pid_t *pid);

#define cleanup_free   __attribute__((cleanup(em_cleanup_freep)))
#define cleanup_close  __attribute__((cleanup(em_cleanup_closep)))
#define cleanup_fclose __attribute__((cleanup(em_cleanup_fclosep)))
#define cleanup_dir    __attribute__((cleanup(em_cleanup_closedirp)))
#define cleanup_strv   __attribute__((cleanup(em_cleanup_strvp)))
#define cleanup_pid    __attribute__((cleanup(em_cleanup_pidp)))

/* Takes ownership: returns *pp and sets *pp to NULL. */
#define steal_pointer(pp)                                                                          \
        ({                                                                                         \
                __typeof__(*(pp)) _stolen = *(pp);                                                 \
                *(pp) = NULL;                                                                      \
                _stolen;                                                                           \
        })
#define steal_fd(fdp)                                                                              \
        ({                                                                                         \
                int _stolen_fd = *(fdp);                                                           \
                *(fdp) = -1;                                                                       \
                _stolen_fd;                                                                        \
        })
#define steal_pid(pidp)                                                                            \
        ({                                                                                         \
                pid_t _stolen_pid = *(pidp);                                                       \
                *(pidp) = 0;                                                                       \
                _stolen_pid;                                                                       \
        })

void em_strv_free(char **v);
/* Appends s[0..len) to the NULL-terminated *v of *n names unless one equal
 * to it, ignoring case, is there already (certificate names repeat: the
 * CN usually is a SAN too). -1 on OOM. */
int em_strv_push_unique(char ***v, size_t *n, const char *s, size_t len);

#endif
