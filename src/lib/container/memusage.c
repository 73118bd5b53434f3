#include "container/memusage.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "util/cleanup.h"
#include "util/fsutil.h"

#define ROLLUP_MAX (64 * 1024)

struct field {
        const char *name; /* with its colon, so "Pss:" is not "Pss_Dirty:" */
        uint64_t kb;
        int seen;
};

static void scan_line(const char *line, struct field *f, size_t n)
{
        unsigned long long kb;

        for (size_t i = 0; i < n; i++) {
                size_t len = strlen(f[i].name);
                if (strncmp(line, f[i].name, len) == 0 && sscanf(line + len, "%llu kB", &kb) == 1) {
                        f[i].kb = kb;
                        f[i].seen = 1;
                }
        }
}

int em_memusage_parse(const char *text, struct em_memusage *out, em_error_t *err)
{
        struct field f[] = {
            {"Pss:", 0, 0}, {"Pss_Anon:", 0, 0}, {"Pss_Shmem:", 0, 0}, {"SwapPss:", 0, 0}};

        for (const char *l = text; l != NULL && *l != '\0';) {
                scan_line(l, f, sizeof(f) / sizeof(f[0]));
                l = strchr(l, '\n');
                l = l ? l + 1 : NULL;
        }
        for (size_t i = 0; i < 3; i++)
                if (!f[i].seen)
                        return em_error_set(err, EPROTO,
                                            "smaps_rollup has no %s line (Linux 5.8 or later "
                                            "reports it)",
                                            f[i].name);
        out->resident = f[0].kb * 1024;
        out->dumped = (f[1].kb + f[2].kb + f[3].kb) * 1024;
        return 0;
}

int em_memusage_add_pid(pid_t pid, struct em_memusage *sum, em_error_t *err)
{
        char path[64];
        cleanup_free char *text = NULL;
        struct em_memusage one;
        size_t len;

        snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
        if (em_read_file(path, ROLLUP_MAX, &text, &len, err) < 0 ||
            em_memusage_parse(text, &one, err) < 0)
                return em_error_wrap(err, "memory of process %d", (int)pid);
        sum->resident += one.resident;
        sum->dumped += one.dumped;
        return 0;
}
