/* The route hook around run, start, restart, stop and rm (cli.h). */
#include <stdlib.h>

#include "cli/cli.h"
#include "container/routehook.h"

const char *cli_route_hook(void)
{
        const char *hook = getenv("EDGEMIG_ROUTE_HOOK");

        return hook != NULL && *hook != '\0' ? hook : NULL;
}

/* ip: the service IP if the caller read it before the container went away
 * (rm); NULL: look it up now. */
int cli_route(const struct em_config *cfg, const char *verb, const char *name, const char *ip,
              const char *did, em_error_t *err)
{
        const char *hook = cli_route_hook();
        int r;

        if (hook == NULL)
                return 0;
        r = ip != NULL ? em_route_hook_run(hook, verb, ip, err)
                       : em_route_hook_container(cfg, hook, verb, name, err);
        if (r < 0)
                return em_error_wrap(err,
                                     "%s %s, but its service IP was not %s (fix the hook, "
                                     "then run it by hand as `%s %s IP`)",
                                     name, did, verb[0] == 'a' ? "announced" : "withdrawn", hook,
                                     verb);
        return 0;
}
