/* The phases of the source side (phases.c) and the state of one migration
 * they share with source.c, which drives them, and common/postcopy.c. */
#ifndef EDGEMIG_MIGRATE_SOURCE_PHASES_H
#define EDGEMIG_MIGRATE_SOURCE_PHASES_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "container/cpu_throttle.h"
#include "migrate/common/report.h"
#include "migrate/source/known_cache.h"
#include "migrate/source/pagesync.h"
#include "migrate/source/source.h"
#include "store/store.h"
#include "transfer/conn.h"

struct source {
        const struct em_config *cfg;
        const char *name;
        const struct em_migrate_opts *o;
        uint8_t session_id[16];
        char session[33];
        em_conn_t *conn;
        struct em_store *store;
        struct em_image_info *image;
        struct em_sync_state *sync;
        struct em_report *report;
        json_t *spec;
        char *workdir, *images;
        int journal_fd;          /* holds the session's journal lock */
        bool checkpointed;       /* the container is stopped here, its state in images */
        bool final_sent;         /* FINAL may have reached the target */
        bool target_running;     /* its RESTORE_OK arrived */
        bool withdrawn;          /* the route hook withdrew the service IP here */
        bool committed;          /* the target owns the service now */
        bool in_doubt;           /* the target did not answer: nothing runs here */
        bool migrating;          /* the container's state is "migrating" */
        bool keep_workdir;       /* in doubt: keep the checkpoint for recovery */
        double bandwidth;        /* bytes/s: measured on this link, or seeded */
        double dirty_rate;       /* bytes/s the target lacks, dirtied in the last round */
        uint64_t final_estimate; /* wire bytes the last round left to send */
        bool bandwidth_measured; /* by this migration (not a seed) */
        struct em_compress_calibration cal; /* zstd speed/ratio on this workload */
        bool calibrated;
        /* A `prepare` left the target most pages: the transfers will be
         * small, and calibrating (~80 ms of CPU) would only slow the
         * handoff down. Cleared if the target's cache turns out stale. */
        bool small_transfers;
        bool target_lazy; /* the target can restore with lazy pages (its plan answer) */
        /* Calibration runs in a thread from the start of the migration, off
         * the handoff's critical path, into cal_bg. The first round does not
         * wait for it (level 19 alone takes 0.15-0.45 s under load, all
         * of it with the link idle): until it is done the rule has no
         * calibration (level 1); em_source_calibrate_poll takes up the
         * fast levels as soon as they are measured, and all at the end. */
        struct em_compress_calibration cal_bg;
        atomic_bool cal_fast; /* cal_bg's fast levels are measured */
        pthread_t cal_thread;
        bool cal_running;
        pid_t cal_pid;
        int cal_rc;
        em_error_t cal_err;
        struct em_monitor *mon; /* progress and cancel (monitor.h) */
        /* --auto-converge: one cap per container throttled (a pod's every
         * container), at the common cap throttle_pct (0: none). */
        struct em_cpu_throttle *throttle;
        size_t nthrottle;
        int throttle_pct;
        uint64_t phase_wire0;
        /* ROUND_END echoes not read yet: the final step may start before
         * the target echoed the layers and a small last round; they are
         * read before RESTORE_OK (phases.c, may_defer_echo). */
        unsigned echoes_pending;
        bool defer_echoes; /* this migration's final step is plain if small */
        /* Wire bytes per second of pages the target lacks that the last
         * round found dirtied (left_rate_known once a round measured it),
         * kept by `prepare`; dirt: what a prepare's record says of it. */
        double left_wire_bps;
        bool left_rate_known;
        struct em_known_dirt dirt;
        pid_t *pids; /* the container's processes at the last round */
        size_t npids;
        /* The local checks (em_source_checks_start) run in a thread beside
         * the connection and the handshake; checks_rc/err are their result
         * until em_source_checks_join hands it over. */
        pthread_t checks_thread;
        bool checks_running;
        int checks_rc;
        em_error_t checks_err;
};

/* A round's wire bytes and time as a sample of the link's rate
 * (s->bandwidth), when the round was too large to sit in the socket's and
 * the link's buffers. */
void em_source_link_sample(struct source *s, uint64_t wire, int64_t ms);

/* Runs `HOOK withdraw IP` for the service IP (a failure is logged, never
 * fatal). Called when the target's RESTORE_OK arrives: the target announced
 * the IP before sending it, so the network has a route to the target before
 * ours goes, and the route moves while DONE is still in flight rather than
 * after its round trip and two journal writes. Our copy is stopped and
 * serves nothing from here on unless a roll-back restores it, and
 * em_source_roll_back announces the IP again then. Once per migration;
 * the commit calls it too, for a RESTORE_OK that was lost. */
void em_source_withdraw(struct source *s);
/* Ends a report phase with the wire bytes sent since it began. */
void em_source_phase_end(struct source *s, const char *phase, uint64_t raw);
/* Sends ROUND_END with payload and waits for the target's echo, so that
 * everything before it has been received and applied. */
int em_source_round_trip(struct source *s, const char *payload, em_error_t *err);
/* Reads the echoes of ROUND_ENDs the final step did not wait for. */
int em_source_drain_echoes(struct source *s, em_error_t *err);
/* The second half of a round trip: waits for the target's ROUND_END. */
int em_source_round_echo(struct source *s, em_error_t *err);
/* Streams the blobs the target's answer to the plan (ack's "missing")
 * asks for, then the round trip that ends the layers phase. The target
 * may ask only for blobs the plan names (named(ud, digest)), never for
 * another image's blob on this host; `plan` names the plan in the error
 * ("redis", "pod web"). */
int em_source_send_missing(struct source *s, const json_t *ack,
                           bool (*named)(const void *ud, const char *digest), const void *ud,
                           const char *plan, em_error_t *err);
/* After the handshake, before anything of the container moves: lists its
 * processes (into s->pids) unless the calibration did, and refuses what
 * its checkpoint would lose (checkpoint/ckpt_refuse.h: a process that
 * uses memory protection keys, or one outside pid 1's tree) and, with a
 * lazy mode, what CRIU cannot dump lazily. 0 when the container does not
 * run (the steps after say so). */
int em_source_refuse_unrestorable(struct source *s, em_error_t *err);
/* Starts, in a thread, what the source checks of its own container before
 * anything moves: the compression calibration's start (unless the
 * transfers will be small) and em_source_refuse_unrestorable. Each is a
 * wait on this host (`runc state`, the smaps of every process: 20-80 ms
 * for facedetect) that needs nothing from the target, so it runs while
 * the connection, TLS and HELLO wait on the link and the peer. Without a
 * thread it runs at once. _join waits for it and returns its refusal
 * (once; err NULL drops it); it is idempotent, and 0 if never started. */
void em_source_checks_start(struct source *s);
int em_source_checks_join(struct source *s, em_error_t *err);
/* The same thread for other checks (a pod's): fn(arg) sets
 * s->checks_rc and, on a refusal, s->checks_err. */
void em_source_checks_spawn(struct source *s, void *(*fn)(void *), void *arg);
/* For --compress auto: starts measuring the levels on the container's
 * memory in a thread (best effort); _join waits for it (idempotent). */
void em_source_calibrate_start(struct source *s);
void em_source_calibrate_join(struct source *s);
/* Takes the calibration up if its thread is done, without waiting (arg: the
 * struct source; a refresh hook for em_sync_state_set_compress). */
void em_source_calibrate_poll(void *arg);
int em_source_precopy(struct source *s, em_error_t *err);

/* The pre-copy loop under the stop rule (stop_rule.h) with its round and
 * time budgets, for one container (em_source_precopy) or a pod
 * (pod_source.c): rounds while the service runs until the rule says stop;
 * a round that fails to halve what was left throttles the service
 * instead, with --auto-converge. */
struct em_rounds_ops {
        /* Sends round n (from 1) and fills *rs but its elapsed_ms; listed:
         * estimate listed the processes for it. */
        int (*round)(void *ud, unsigned n, bool listed, struct em_round_stat *rs, em_error_t *err);
        /* What round n+1 is expected to send in wire bytes (0: unknown). */
        uint64_t (*estimate)(void *ud, size_t n, bool *listed);
        /* --auto-converge: the service's CPU capped further; false when it
         * cannot be. */
        bool (*throttle_more)(void *ud);
        void *ud;
};
int em_source_rounds(struct source *s, const struct em_rounds_ops *ops, em_error_t *err);
/* What the next round would send (the stop rule's "what is left") in
 * wire bytes at the round's compression ratio, from raw (a scan's, or the
 * round's own when small), and the rate the service dirtied memory the
 * target lacks during the round's ms; into rs and the report's round. */
void em_source_record_left(struct source *s, struct em_round_stat *rs, uint64_t raw, bool small,
                           int64_t ms);
/* --auto-converge: halves the CPU cap of the containers names[0..n-1]
 * (the same n every call; 50 % of one CPU first, at least 1 %); false
 * when they cannot be throttled further. */
bool em_source_throttle_more(struct source *s, const char *const *names, size_t n);
/* Lifts an --auto-converge throttle (at the end, whatever happened). */
void em_source_unthrottle(struct source *s);
int em_source_final(struct source *s, em_error_t *err);
int em_source_finish_prepare(struct source *s, em_error_t *err);
void em_source_roll_back(struct source *s);
/* zstd level for the next transfer (0: none), per --compress and, for auto,
 * the measured bandwidth and calibration. */
int em_source_compress_level(struct source *s);

#endif
