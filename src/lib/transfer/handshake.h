/* The migration handshake: HELLO (initiator → responder) and HELLO_ACK, as
 * JSON payloads. Pure functions: build, parse (strictly validated, since the
 * peer is untrusted), and decide. The responder refuses early, with a reason,
 * before any gigabytes move.
 *
 * HELLO:
 *   {"protocol":2, "edgemig":"0.1.0", "criu":"4.2.1", "session":"<32 hex>",
 *    "container":"web1", "mode":"precopy", "features":{...},
 *    (mode: precopy, stop-and-copy, postcopy, hybrid, auto, prepare, or
 *    check: the pre-check, migrate/source/precheck.h)
 *    "cpu":{"vendor":"GenuineIntel", "flags":["fpu",...]}}
 * HELLO_ACK: {"ok":true|false, "reason":"...", "session":"<32 hex>"} */
#ifndef EDGEMIG_TRANSFER_HANDSHAKE_H
#define EDGEMIG_TRANSFER_HANDSHAKE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define EM_HELLO_MAX_LEN      (256 * 1024)
#define EM_MIN_CRIU_MAJOR     4
#define EM_MIN_CRIU_MINOR     2
#define EM_CONTAINER_NAME_MAX 64

struct em_cpuinfo {
        char *vendor;
        char **flags; /* sorted, NULL-terminated */
        size_t nflags;
};
void em_cpuinfo_free(struct em_cpuinfo *c);
/* Vendor and the flags of the first processor in a /proc/cpuinfo text. */
int em_cpuinfo_parse(const char *text, struct em_cpuinfo *out, em_error_t *err);
int em_cpuinfo_local(struct em_cpuinfo *out, em_error_t *err);

struct em_hello {
        int protocol;
        char *edgemig_version;
        char *criu_version;
        uint8_t session[16];
        char *container;
        char *mode;
        json_t *features; /* object, owned */
        struct em_cpuinfo cpu;
};
void em_hello_free(struct em_hello *h);
#define cleanup_hello __attribute__((cleanup(em_hello_free)))

/* A new random 128-bit session id (getrandom). */
int em_session_new(uint8_t id[16], em_error_t *err);
void em_session_hex(const uint8_t id[16], char out[33]);

/* Builds the HELLO JSON text (malloc'd). features may be NULL; it is copied. */
int em_hello_build(const struct em_hello *h, char **out, em_error_t *err);
/* Parses and validates a HELLO payload: types, lengths, the session id, a
 * container name of [A-Za-z0-9_.-] (no leading '.'), a known mode. */
int em_hello_parse(const char *buf, size_t len, struct em_hello *out, em_error_t *err);

/* "4.2.1" >= 4.2? Also accepts "Version: 4.2.1" (criu --version output). */
bool em_criu_version_ok(const char *v);

/* The responder's decision. Fills *reason (malloc'd) and returns false when
 * the migration must be refused: protocol mismatch, CRIU too old on either
 * side, CPU vendor differs, or the source has CPU flags the target lacks
 * (a restored process could hit an illegal instruction). */
bool em_hello_accept(const struct em_hello *peer, const struct em_hello *local, char **reason);

int em_hello_ack_build(bool ok, const char *reason, const uint8_t session[16], char **out,
                       em_error_t *err);
/* Parses HELLO_ACK; checks it answers our session. *reason is malloc'd or NULL. */
int em_hello_ack_parse(const char *buf, size_t len, const uint8_t session[16], bool *ok,
                       char **reason, em_error_t *err);

#endif
