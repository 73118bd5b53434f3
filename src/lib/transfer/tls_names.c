/* The allow-list identity rule, apart from tls.c so that callers that only
 * compare names (platform/authz.c) do not link a TLS library. */
#include "transfer/tls_names.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/cleanup.h"

const char *em_tls_name_match(const char *const *names, const char *const *allowed)
{
        for (; names && *names; names++)
                for (const char *const *a = allowed; a && *a; a++)
                        if (strcasecmp(*a, *names) == 0)
                                return *names;
        return NULL;
}

static void join_names(char *const *v, char *buf, size_t size)
{
        size_t off = 0;

        buf[0] = '\0';
        for (; v && *v && off + 1 < size; v++)
                off += (size_t)snprintf(buf + off, size - off, "%s%s", off ? ", " : "", *v);
}

const char *em_tls_name_admit(char *const *names, char *const *allowed, char *reason, size_t size)
{
        char list[200], listed[200];

        if (allowed == NULL || allowed[0] == NULL)
                return names[0];
        const char *match =
            em_tls_name_match((const char *const *)names, (const char *const *)allowed);
        if (match != NULL)
                return match;
        join_names(names, list, sizeof(list));
        join_names(allowed, listed, sizeof(listed));
        snprintf(reason, size, "peer '%s' is not an allowed peer (allowed: %s)", list, listed);
        return NULL;
}

int em_tls_names_copy(const char *const *src, char ***out, em_error_t *err)
{
        size_t n = 0;

        while (src != NULL && src[n] != NULL)
                n++;
        cleanup_strv char **v = calloc(n + 1, sizeof(char *));
        if (v == NULL)
                return em_error_set(err, ENOMEM, "allocating");
        for (size_t i = 0; i < n; i++)
                if ((v[i] = strdup(src[i])) == NULL)
                        return em_error_set(err, ENOMEM, "allocating");
        *out = steal_pointer(&v);
        return 0;
}
