# edgemig — non-recursive build. Sources are found by wildcard.
# make            build binaries into build/
# make SAN=1      ASan+UBSan build into build-san/
# make test       set up (if needed), build, run every test; ends with "N passed, N failed"
# make demo       set up what the demo needs (if needed), build, run the demo migration
# make bench      set up what the benchmarks need (if needed), build, run bench/run
# make install    install binaries, man pages, units, config, completion:
#                 PREFIX (/usr/local), DESTDIR, SYSCONFDIR (/etc, compiled in)

CC      ?= cc
V       ?= 0
Q       := $(if $(filter 1,$(V)),,@)
SAN     ?= 0
COV     ?= 0
BUILD   := $(if $(filter 1,$(SAN)),build-san,$(if $(filter 1,$(COV)),build-cov,build))
PKGS    := libarchive libcurl libzstd libcrypto libssl jansson sqlite3 libxxhash libmicrohttpd gnutls libsystemd
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
# One TLS library per binary (docs/security.md): edgemig, edgemigd and the
# probe on OpenSSL (libcurl4 is its flavour of libcurl); edgemig-controller
# on GnuTLS, the library its libmicrohttpd is built on: its control
# requests use transfer/tls_gnutls.c, its SHA-256 the GnuTLS backend
# (linked ahead of the archive, so the archive's OpenSSL one is never pulled
# in), and libcurl is Debian's GnuTLS flavour (package libcurl3-gnutls; the
# same API as the libcurl4-openssl-dev headers). scripts/check-tls-libs
# (tests/integration/02-tls-libs.sh) checks each binary's NEEDED.
# Unit tests and helpers link both: they test one against the other.
OPENSSL_PKGS := libarchive libcurl libzstd libcrypto libssl jansson sqlite3 libxxhash libsystemd
CTL_PKGS     := libarchive libzstd jansson sqlite3 libxxhash libmicrohttpd gnutls libsystemd
CTL_CURL_LIBS := -l:libcurl-gnutls.so.4
OPENSSL_LIBS := $(shell pkg-config --libs $(OPENSSL_PKGS) 2>/dev/null) -pthread -lm
CTL_LIBS     := $(shell pkg-config --libs $(CTL_PKGS) 2>/dev/null) $(CTL_CURL_LIBS) -pthread -lm
HOOK_LIBS    := $(shell pkg-config --libs jansson 2>/dev/null)

WARN := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wformat-security -Wpointer-arith \
        -Wstrict-prototypes -Wmissing-prototypes -Wvla -Wnull-dereference \
        -Wno-unused-parameter -Wimplicit-fallthrough -Wundef
CFLAGS_BASE := -std=gnu11 -g -O2 -D_GNU_SOURCE -fno-strict-aliasing -pthread \
        -Isrc/lib -Isrc $(WARN) $(PKG_CFLAGS) -MMD -MP
ifeq ($(SAN),1)
CFLAGS_BASE += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS_SAN := -fsanitize=address,undefined
endif
# make coverage: gcov counts in build-cov/ (never committed).
ifeq ($(COV),1)
CFLAGS_BASE += -O0 --coverage
LDFLAGS_SAN := --coverage
endif
LIBS := $(PKG_LIBS) -pthread -lm

# Installation (make install). SYSCONFDIR is compiled in: where edgemigd and
# edgemig-controller look for edgemig/edgemigd.conf and controller.conf.
PREFIX     ?= /usr/local
SYSCONFDIR ?= /etc
BINDIR     ?= $(PREFIX)/bin
SBINDIR    ?= $(PREFIX)/sbin
DATADIR    ?= $(PREFIX)/share
MANDIR     ?= $(DATADIR)/man
UNITDIR    ?= $(PREFIX)/lib/systemd/system
COMPLETIONDIR ?= $(DATADIR)/bash-completion/completions
PKGLIBDIR  ?= $(PREFIX)/lib/edgemig
CFLAGS_BASE += -DEM_SYSCONFDIR='"$(SYSCONFDIR)"'

# util/digest_gnutls.c is not in the archive: the controller links it.
DIGEST_GNUTLS_SRC := src/lib/util/digest_gnutls.c
LIB_SRC    := $(filter-out $(DIGEST_GNUTLS_SRC),$(sort $(wildcard src/lib/*/*.c src/lib/*/*/*.c)))
CLI_SRC    := $(sort $(wildcard src/cli/*.c))
DAEMON_SRC := $(sort $(wildcard src/daemon/*.c))
PROBE_SRC  := $(sort $(wildcard src/probe/*.c))
CTL_SRC    := $(sort $(wildcard src/controller/*.c))
HOOK_SRC   := $(sort $(wildcard src/netns-hook/*.c))
UNIT_SRC   := $(sort $(wildcard tests/unit/test_*.c))
# What several unit tests' fixtures share (tests/unit/support/fixture.h).
UNIT_SUPPORT_SRC := $(sort $(wildcard tests/unit/support/*.c))
HELPER_SRC := $(sort $(wildcard tests/helpers/*.c))

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
LIB_OBJ := $(call obj,$(LIB_SRC))
LIBA    := $(BUILD)/libedgemig.a
BINS    := $(BUILD)/edgemig $(BUILD)/edgemigd \
           $(if $(PROBE_SRC),$(BUILD)/edgemig-probe) $(if $(CTL_SRC),$(BUILD)/edgemig-controller) \
           $(if $(HOOK_SRC),$(BUILD)/edgemig-netns-hook)
UNIT_BINS   := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
HELPER_BINS := $(patsubst tests/helpers/%.c,$(BUILD)/helpers/%,$(HELPER_SRC))

.PHONY: all setup test unit integration fuzz demo bench bench-quick format format-check clean \
        coverage \
        man install
all: $(LIBA) $(BINS) $(HELPER_BINS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS_BASE) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(LIBA): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/edgemig: $(call obj,$(CLI_SRC)) $(LIBA)
	$(Q)$(CC) $(LDFLAGS_SAN) $(LDFLAGS) -o $@ $^ $(OPENSSL_LIBS)
$(BUILD)/edgemigd: $(call obj,$(DAEMON_SRC)) $(LIBA)
	$(Q)$(CC) $(LDFLAGS_SAN) $(LDFLAGS) -o $@ $^ $(OPENSSL_LIBS)
$(BUILD)/edgemig-probe: $(call obj,$(PROBE_SRC)) $(LIBA)
	$(Q)$(CC) $(LDFLAGS_SAN) $(LDFLAGS) -o $@ $^ $(OPENSSL_LIBS)
$(BUILD)/edgemig-controller: $(call obj,$(CTL_SRC) $(DIGEST_GNUTLS_SRC)) $(LIBA)
	$(Q)$(CC) $(LDFLAGS_SAN) $(LDFLAGS) -o $@ $^ $(CTL_LIBS)
# runc's network hook runs inside the restore's downtime: it links only what
# em_nethook_run pulls from the archive (libc and jansson), so the loader has
# little to do (src/netns-hook/main.c).
$(BUILD)/edgemig-netns-hook: $(call obj,$(HOOK_SRC)) $(LIBA)
	$(Q)$(CC) $(LDFLAGS_SAN) $(LDFLAGS) -Wl,--as-needed -o $@ $^ $(HOOK_LIBS)
$(BUILD)/helpers/%: $(BUILD)/obj/tests/helpers/%.o $(LIBA)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS_SAN) $(LDFLAGS) -o $@ $^ $(LIBS)
# The GnuTLS SHA-256 backend's own test links it ahead of the archive too.
$(BUILD)/tests/test_digest_gnutls: $(BUILD)/obj/tests/unit/test_digest_gnutls.o \
                                   $(call obj,$(DIGEST_GNUTLS_SRC) $(UNIT_SUPPORT_SRC)) $(LIBA)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS_SAN) $(LDFLAGS) -o $@ $^ $(LIBS) -lcmocka
$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(call obj,$(UNIT_SUPPORT_SRC)) $(LIBA)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS_SAN) $(LDFLAGS) -o $@ $^ $(LIBS) -lcmocka

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# Man pages from each binary's --help (help2man) and dist/man/NAME.h2m.
MAN_PAGES := $(BUILD)/man/edgemig.1 $(BUILD)/man/edgemig-probe.1 $(BUILD)/man/edgemigd.8 \
             $(BUILD)/man/edgemig-controller.8
man: $(MAN_PAGES)
$(BUILD)/man/%.1 $(BUILD)/man/%.8: $(BUILD)/% dist/man/%.h2m
	@mkdir -p $(dir $@)
	$(Q)help2man --no-info --no-discard-stderr --include dist/man/$*.h2m \
	    --section $(subst .,,$(suffix $@)) --output $@ $<

# Config files are installed only where none exists (an operator's edits
# survive a reinstall; packages handle them as conffiles).
# The systemd units get the installed paths.
install: all $(MAN_PAGES)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man1 \
	    $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(UNITDIR) $(DESTDIR)$(COMPLETIONDIR) \
	    $(DESTDIR)$(SYSCONFDIR)/edgemig
	install -m 0755 $(BUILD)/edgemig $(BUILD)/edgemig-probe $(BUILD)/edgemig-netns-hook \
	    $(DESTDIR)$(BINDIR)/
	install -m 0755 $(BUILD)/edgemigd $(BUILD)/edgemig-controller $(DESTDIR)$(SBINDIR)/
	install -m 0644 $(filter %.1,$(MAN_PAGES)) $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 $(filter %.8,$(MAN_PAGES)) $(DESTDIR)$(MANDIR)/man8/
	for u in edgemigd edgemig-controller; do \
	    sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	    dist/systemd/$$u.service.in >$(DESTDIR)$(UNITDIR)/$$u.service; done
	for b in edgemig edgemigd edgemig-controller edgemig-probe; do \
	    install -m 0644 dist/bash-completion/edgemig $(DESTDIR)$(COMPLETIONDIR)/$$b; done
	install -d $(DESTDIR)$(DATADIR)/edgemig
	install -m 0755 scripts/setup $(DESTDIR)$(DATADIR)/edgemig/setup-criu
	install -d $(DESTDIR)$(PKGLIBDIR)
	install -m 0755 dist/route-hook/route-hook $(DESTDIR)$(PKGLIBDIR)/route-hook
	for c in edgemigd.conf controller.conf route-hook.conf; do \
	    [ -e $(DESTDIR)$(SYSCONFDIR)/edgemig/$$c ] || \
	    install -m 0644 dist/conf/$$c $(DESTDIR)$(SYSCONFDIR)/edgemig/$$c; done

setup:
	@scripts/setup

# Unit tests only (no root, no network): fast inner loop.
unit: $(UNIT_BINS)
	@tests/run-tests --unit-only --build $(BUILD)

integration: all
	@tests/run-tests --integration-only --build $(BUILD)

# Everything: set-up, normal build, sanitizer build, unit tests under both,
# integration tests against real runc/CRIU/registry/namespaces, short fuzz pass.
test:
	@scripts/setup --test
	@$(MAKE) --no-print-directory all $(UNIT_BINS)
	@$(MAKE) --no-print-directory SAN=1 all $(patsubst build/%,build-san/%,$(UNIT_BINS))
	@scripts/build-test-images
	@tests/run-tests

demo:
	@scripts/setup --demo
	@$(MAKE) --no-print-directory all
	@scripts/demo

# Line coverage of src/lib/migrate by the unit tests (no root needed).
coverage:
	@$(MAKE) --no-print-directory COV=1 $(patsubst build/%,build-cov/%,$(UNIT_BINS))
	@find build-cov -name '*.gcda' -delete
	@tests/run-tests --unit-only --build build-cov
	@scripts/coverage build-cov src/lib/migrate

bench-quick:
	@scripts/setup --bench
	@$(MAKE) --no-print-directory all
	@bench/run --quick
bench:
	@scripts/setup --bench
	@$(MAKE) --no-print-directory all
	@bench/run --baseline-reps 3

FMT_SRC = $(shell find src tests -name '*.[ch]' -not -path 'tests/fuzz/corpus/*' 2>/dev/null)
format:
	clang-format -i $(FMT_SRC)
# clang-format, the layering rule and docs/architecture.md's table of it, and
# no function in src/ over 60 lines (HACKING.md).
format-check:
	@out=$$(clang-format --dry-run $(FMT_SRC) 2>&1); \
	if [ -n "$$out" ]; then echo "$$out" | grep 'warning:' | cut -d: -f1 | sort -u | sed 's/^/not formatted: /'; \
	echo "run 'make format' to fix"; exit 1; fi; echo "format-check: ok"
	@scripts/check-layers
	@scripts/function-lengths 60 || { echo "split the functions above (at most 60 lines)"; exit 1; }
	@scripts/frontend-lengths 250

clean:
	rm -rf build build-san build-fuzz build-cov
