#include "util/cleanup.h"

#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

void em_cleanup_freep(void *p)
{
        void **pp = p;
        free(*pp);
        *pp = NULL;
}

void em_cleanup_closep(int *fd)
{
        if (*fd >= 0) {
                int saved = errno;
                close(*fd);
                errno = saved;
        }
        *fd = -1;
}

void em_cleanup_fclosep(FILE **f)
{
        if (*f != NULL)
                fclose(*f);
        *f = NULL;
}

void em_cleanup_closedirp(DIR **d)
{
        if (*d != NULL)
                closedir(*d);
        *d = NULL;
}

void em_strv_free(char **v)
{
        if (v == NULL)
                return;
        for (char **it = v; *it; it++)
                free(*it);
        free(v);
}

void em_cleanup_strvp(char ***v)
{
        em_strv_free(*v);
        *v = NULL;
}

void em_cleanup_pidp(pid_t *pid)
{
        int saved = errno;

        if (*pid > 0) {
                kill(*pid, SIGKILL);
                while (waitpid(*pid, NULL, 0) < 0 && errno == EINTR)
                        ;
        }
        *pid = 0;
        errno = saved;
}
