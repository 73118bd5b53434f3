/* The allow-list identity rule, apart from tls.c so that callers that only
 * compare names (platform/authz.c) do not link a TLS library. */
#include "transfer/tls_names.h"

#include <stddef.h>
#include <strings.h>

const char *em_tls_name_match(const char *const *names, const char *const *allowed)
{
        for (; names && *names; names++)
                for (const char *const *a = allowed; a && *a; a++)
                        if (strcasecmp(*a, *names) == 0)
                                return *names;
        return NULL;
}
