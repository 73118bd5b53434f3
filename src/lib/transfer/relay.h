/* Carries one local byte stream through a session connection, so that a
 * helper that speaks plain TCP (CRIU's page server and lazy-pages daemon)
 * gets the session's mutual TLS and its authenticated peer instead of a
 * port that anyone may connect to (docs/postcopy.md).
 *
 * Both ends run a relay over the same connection. Bytes travel as
 * LAZY_PAGES frames on stream EM_RELAY_STREAM, compressed like any payload;
 * an empty frame flagged LAST says that side's local stream ended (the peer
 * then shuts its local socket down for writing: a half-close, end to end).
 *
 * While a relay runs it is the connection's only reader: a reader thread
 * writes relay frames into the local socket and queues every other frame
 * for em_relay_recv. It stops reading at the peer's LAST, so the frames that
 * follow are the caller's to read directly. Sending stays open to the caller
 * (em_conn_t serializes senders). */
#ifndef EDGEMIG_TRANSFER_RELAY_H
#define EDGEMIG_TRANSFER_RELAY_H

#include <stdbool.h>
#include <stdint.h>

#include "transfer/conn.h"
#include "util/error.h"

#define EM_RELAY_STREAM 3

typedef struct em_relay em_relay_t;

/* Starts relaying between the local stream socket fd (taken over, closed by
 * em_relay_free) and conn. level: zstd level for the data this side sends
 * (0: none). */
int em_relay_start(em_conn_t *conn, int fd, int level, em_relay_t **out, em_error_t *err);

/* The next frame from the peer that is not relay data, waiting up to
 * timeout_ms (<= 0: forever). Returns 1 with a frame; 0 once the reader
 * stopped at the peer's LAST with nothing queued (read conn directly from
 * then on); -1 if the relay failed (the connection broke) or on timeout. */
int em_relay_recv(em_relay_t *r, struct em_frame *f, int timeout_ms, em_error_t *err);
/* The same without waiting: 1 with a frame, 0 with none (yet), -1 if the
 * relay failed. */
int em_relay_poll(em_relay_t *r, struct em_frame *f, em_error_t *err);

/* Readable whenever the relay's state changed (a frame queued, a direction
 * ended, a failure): for poll loops, which then call em_relay_poll and
 * em_relay_finished. Never read it yourself. */
int em_relay_event_fd(const em_relay_t *r);

/* 1 once both directions ended (this side sent LAST, the peer's LAST
 * arrived), 0 while not, -1 with the error if the relay failed. */
int em_relay_finished(em_relay_t *r, em_error_t *err);
/* Waits up to timeout_ms for em_relay_finished to be 1 (0 on success). */
int em_relay_wait(em_relay_t *r, int timeout_ms, em_error_t *err);

/* Bytes of the local stream sent to the peer and received from it. */
void em_relay_bytes(em_relay_t *r, uint64_t *to_peer, uint64_t *from_peer);

/* Stops and frees. A relay that has not finished is cut: its local socket
 * and conn's receiving side are shut down so that both threads return, so
 * the connection can still send (an ABORT) but no longer receive. */
void em_relay_free(em_relay_t **r);
#define cleanup_relay __attribute__((cleanup(em_relay_free)))

/* A private network namespace with only a loopback (up), for a helper that
 * insists on TCP (runc checkpoint's page server): no other process of the
 * host can reach its 127.0.0.1. *nsfd holds it; *port is a free port on its
 * 127.0.0.1. */
int em_relay_netns_new(int *nsfd, int *port, em_error_t *err);
/* Connects to 127.0.0.1:port inside that namespace (retrying for up to
 * timeout_ms while nothing listens yet); *fd is the connected socket. */
int em_relay_netns_connect(int nsfd, int port, int timeout_ms, int *fd, em_error_t *err);

#endif
