/* test_digest.c's tests, run on the GnuTLS SHA-256 backend: the Makefile
 * links util/digest_gnutls.o ahead of libedgemig.a for this binary, as it
 * does for edgemig-controller, so the archive's OpenSSL backend is never
 * pulled in (a second definition would fail the link). */
#include "test_digest.c"
