#include "util/cleanup.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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

int em_strv_push_unique(char ***v, size_t *n, const char *s, size_t len)
{
        char **nv;

        for (size_t i = 0; i < *n; i++)
                if (strlen((*v)[i]) == len && strncasecmp((*v)[i], s, len) == 0)
                        return 0;
        nv = realloc(*v, (*n + 2) * sizeof(char *));
        if (nv == NULL)
                return -1;
        *v = nv;
        nv[*n] = strndup(s, len);
        if (nv[*n] == NULL)
                return -1;
        nv[++*n] = NULL;
        return 0;
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
