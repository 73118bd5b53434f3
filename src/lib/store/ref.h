/* Image references: [registry/]repository[:tag][@digest], Docker rules. */
#ifndef EDGEMIG_STORE_REF_H
#define EDGEMIG_STORE_REF_H

#include <stdbool.h>

#include "util/error.h"

#define EM_DEFAULT_REGISTRY "docker.io"

struct em_ref {
        char *registry; /* host[:port]; "docker.io" when the name has none */
        char *repo;     /* e.g. edgemig/redis, library/debian */
        char *tag;      /* "latest" unless given or a digest is given */
        char *digest;   /* sha256:..., or NULL */
        bool has_registry;
};

/* Parses a reference; with require_registry=false the first component is a
 * registry only when it has '.', ':' or is "localhost". */
int em_ref_parse(const char *s, struct em_ref *out, em_error_t *err);
void em_ref_free(struct em_ref *r);
#define cleanup_ref __attribute__((cleanup(em_ref_free)))
/* malloc'd "registry/repo:tag" or "registry/repo@digest". */
char *em_ref_string(const struct em_ref *r);
/* The digest reference "<registry>/<repository of name>@<digest>"
 * (malloc'd): name's tag and digest are dropped, and registry (NULL: name's
 * own) replaces its registry. For names that come from a peer. */
int em_ref_pin(const char *name, const char *registry, const char *digest, char **out,
               em_error_t *err);

#endif
