// The loopback floor of `r2ec bench rpc`: what one read and one write per call cost on this machine, measured with
// the least code that can answer a call. A single-threaded epoll server (one thread, level-triggered, one read and
// one write per ready connection and wake-up, as r2ec's libuv loop and redis-server do) answering either r2ec's
// framing (docs/protocol.md: every request MESSAGE with END_STREAM gets a canned Health answer, MESSAGE
// {status: SERVING} + an OK TRAILER) or redis's RESP (PING -> +PONG), and a closed-loop epoll client of the same
// shape (N connections, one call in flight each, the next call written as soon as an answer is complete).
#ifndef R2EC_LOOPBACK_FLOOR_H
#define R2EC_LOOPBACK_FLOOR_H

#include <stddef.h>
#include <stdint.h>

enum {
    /// r2ec frames: 16-byte header (magic "R2EC", version 1, type, flags, stream id, length), then the payload.
    R2EC_FLOOR_FRAMES = 0,
    /// redis's RESP: arrays of bulk strings in, PING answered +PONG (CONFIG GET answered as redis does, empty).
    R2EC_FLOOR_RESP = 1,
};

typedef struct r2ec_floor_server r2ec_floor_server;

/// Starts the server on 127.0.0.1, a free port, on a thread of its own. NULL on failure (errno set).
r2ec_floor_server *r2ec_floor_server_start(int protocol);
/// The bound port.
int r2ec_floor_server_port(const r2ec_floor_server *server);
/// Calls answered so far (read after stop for an exact count).
uint64_t r2ec_floor_server_calls(const r2ec_floor_server *server);
/// Stops the thread, closes every socket, frees the server.
void r2ec_floor_server_stop(r2ec_floor_server *server);

typedef struct {
    /// Calls completed in the measured window, and its length.
    uint64_t calls;
    double seconds;
    /// Answers that were not OK (an r2ec TRAILER with a non-empty Status, a RESP error).
    uint64_t errors;
    /// Mean latency of the window's calls, microseconds.
    double mean_latency_us;
    /// Why the load stopped early, empty when it ran to the end.
    char error[160];
} r2ec_floor_result;

/// Closed loop from the calling thread against 127.0.0.1:`port`: `connections` connections, one call in flight each,
/// `warmup` seconds unmeasured, then `seconds` measured. `request`: one call's bytes; for R2EC_FLOOR_FRAMES a CALL
/// frame followed by a MESSAGE frame, whose stream ids are rewritten per call (1, 2, 3, ... on each connection); for
/// R2EC_FLOOR_RESP the command. Returns 0, or -1 with `out->error` set.
int r2ec_floor_load(int port, int protocol, const uint8_t *request, size_t request_length, int connections,
                    double warmup, double seconds, r2ec_floor_result *out);

#endif
