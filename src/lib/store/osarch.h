/* Platforms (os/arch[/variant], Go's GOOS/GOARCH names as OCI indexes use
 * them) and picking one image out of a multi-arch index. */
#ifndef EDGEMIG_STORE_OSARCH_H
#define EDGEMIG_STORE_OSARCH_H

#include "store/manifest.h"
#include "util/error.h"

struct em_osarch {
        char os[32];
        char arch[32];
        char variant[16]; /* "" when none */
};

/* Parses "os/arch" or "os/arch/variant" (lower-case letters, digits, '_'). */
int em_osarch_parse(const char *s, struct em_osarch *out, em_error_t *err);
/* This host's platform from uname(2): x86_64 -> linux/amd64, aarch64 ->
 * linux/arm64, armv7l -> linux/arm/v7, ... */
void em_osarch_host(struct em_osarch *out);
/* "os/arch[/variant]" into buf. */
const char *em_osarch_str(const struct em_osarch *p, char *buf, size_t len);

/* The index entry for p: os and arch must match; with a variant, so must the
 * entry's (an arm64 entry without one counts as v8); without one, an entry
 * with no variant (or v8 on arm64) is preferred. Nested indexes and entries
 * with other platforms are skipped; an index whose entries carry no
 * platform at all yields its only entry. NULL when nothing fits. */
const struct em_descriptor *em_osarch_select(const struct em_index *ix, const struct em_osarch *p);

#endif
