// The loopback floor (see loopback_floor.h): the least work that answers a call over TCP on this machine, to put
// r2ec's and redis's rates beside. Written for this project; nothing here is tuned beyond what r2ec's own loop does
// (one read and one write per ready connection and wake-up, TCP_NODELAY, level-triggered epoll).
#define _GNU_SOURCE
#include "loopback_floor.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FLOOR_INPUT (64 * 1024)
#define FLOOR_EVENTS 256
#define FRAME_HEADER 16
#define FRAME_MAGIC 0x52324543u
#define FRAME_MESSAGE 0x02
#define FRAME_TRAILER 0x03
#define FRAME_GOAWAY 0x07
#define FLAG_END_STREAM 0x0001

static uint32_t load_be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static void store_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

// MARK: Server

typedef struct floor_conn {
    struct floor_conn *previous, *next;  // every open connection, to close them on stop
    int fd;
    uint8_t input[FLOOR_INPUT];
    size_t input_length;
    uint8_t *output;
    size_t output_length, output_sent, output_capacity;
    int waiting_writable;
} floor_conn;

struct r2ec_floor_server {
    int protocol;
    int listen_fd, epoll_fd, stop_fd, port;
    pthread_t thread;
    _Atomic uint64_t calls;
    floor_conn *open;
};

// epoll tags of the two non-connection descriptors.
static char listener_tag, stop_tag;

static int output_reserve(floor_conn *c, size_t n) {
    if (c->output_length + n <= c->output_capacity) return 0;
    size_t capacity = c->output_capacity ? c->output_capacity : 4096;
    while (capacity < c->output_length + n) capacity *= 2;
    uint8_t *grown = realloc(c->output, capacity);
    if (!grown) return -1;
    c->output = grown;
    c->output_capacity = capacity;
    return 0;
}

static int output_append(floor_conn *c, const void *bytes, size_t n) {
    if (output_reserve(c, n) != 0) return -1;
    memcpy(c->output + c->output_length, bytes, n);
    c->output_length += n;
    return 0;
}

static void frame_header(uint8_t *p, uint8_t type, uint32_t stream, uint32_t length) {
    store_be32(p, FRAME_MAGIC);
    p[4] = 1;
    p[5] = type;
    p[6] = 0;
    p[7] = 0;
    store_be32(p + 8, stream);
    store_be32(p + 12, length);
}

/// Answers every complete request MESSAGE in the input; returns the bytes consumed, or -1 on bad framing.
static long serve_frames(floor_conn *c, uint64_t *answered) {
    size_t at = 0;
    while (c->input_length - at >= FRAME_HEADER) {
        const uint8_t *h = c->input + at;
        uint32_t length = load_be32(h + 12);
        if (load_be32(h) != FRAME_MAGIC || h[4] != 1 || length > FLOOR_INPUT - FRAME_HEADER) return -1;
        if (c->input_length - at < FRAME_HEADER + length) break;
        uint16_t flags = (uint16_t)((h[6] << 8) | h[7]);
        if (h[5] == FRAME_MESSAGE && (flags & FLAG_END_STREAM)) {
            // MESSAGE HealthCheckResponse{status: SERVING} (field 1, varint 1), then TRAILER with Status{} (no bytes).
            uint8_t answer[2 * FRAME_HEADER + 2];
            frame_header(answer, FRAME_MESSAGE, load_be32(h + 8), 2);
            answer[FRAME_HEADER] = 0x08;
            answer[FRAME_HEADER + 1] = 0x01;
            frame_header(answer + FRAME_HEADER + 2, FRAME_TRAILER, load_be32(h + 8), 0);
            if (output_append(c, answer, sizeof answer) != 0) return -1;
            *answered += 1;
        }
        at += FRAME_HEADER + length;
    }
    return (long)at;
}

/// Reads a RESP line ending at CRLF from `p` (at most `n` bytes); returns its length without CRLF, or -1 if incomplete.
static long resp_line(const uint8_t *p, size_t n) {
    for (size_t i = 0; i + 1 < n; i++) {
        if (p[i] == '\r' && p[i + 1] == '\n') return (long)i;
    }
    return -1;
}

static void resp_answer(floor_conn *c, const uint8_t *name, size_t name_length, const uint8_t *argument,
                        size_t argument_length, uint64_t *answered, int *failed) {
    if (name_length == 4 && strncasecmp((const char *)name, "PING", 4) == 0) {
        if (output_append(c, "+PONG\r\n", 7) != 0) *failed = 1;
        *answered += 1;
    } else if (name_length == 6 && strncasecmp((const char *)name, "CONFIG", 6) == 0 && argument) {
        // CONFIG GET key (redis-benchmark asks for save and appendonly first): [key, ""] as redis answers.
        char head[64];
        int k = snprintf(head, sizeof head, "*2\r\n$%zu\r\n", argument_length);
        if (output_append(c, head, (size_t)k) != 0 || output_append(c, argument, argument_length) != 0
            || output_append(c, "\r\n$0\r\n\r\n", 8) != 0) *failed = 1;
    } else {
        if (output_append(c, "-ERR unknown command\r\n", 22) != 0) *failed = 1;
    }
}

/// Answers every complete RESP command in the input (multi-bulk arrays and inline commands).
static long serve_resp(floor_conn *c, uint64_t *answered) {
    size_t at = 0;
    int failed = 0;
    while (at < c->input_length && !failed) {
        const uint8_t *p = c->input + at;
        size_t n = c->input_length - at;
        long line = resp_line(p, n);
        if (line < 0) break;
        if (p[0] != '*') {
            // Inline: "PING\r\n".
            size_t name = 0;
            while (name < (size_t)line && p[name] != ' ') name++;
            resp_answer(c, p, name, NULL, 0, answered, &failed);
            at += (size_t)line + 2;
            continue;
        }
        long count = strtol((const char *)p + 1, NULL, 10);
        if (count < 1 || count > 64) return -1;
        size_t off = (size_t)line + 2;
        const uint8_t *args[3] = {NULL, NULL, NULL};
        size_t lengths[3] = {0, 0, 0};
        int complete = 1;
        for (long i = 0; i < count; i++) {
            long l = resp_line(p + off, n - off);
            if (l < 0) { complete = 0; break; }
            if (p[off] != '$') return -1;
            long length = strtol((const char *)p + off + 1, NULL, 10);
            if (length < 0 || length > FLOOR_INPUT) return -1;
            off += (size_t)l + 2;
            if (n - off < (size_t)length + 2) { complete = 0; break; }
            if (i < 3) { args[i] = p + off; lengths[i] = (size_t)length; }
            off += (size_t)length + 2;
        }
        if (!complete) break;
        resp_answer(c, args[0], lengths[0], count >= 3 ? args[2] : NULL, lengths[2], answered, &failed);
        at += off;
    }
    return failed ? -1 : (long)at;
}

static void conn_close(r2ec_floor_server *s, floor_conn *c) {
    if (c->previous) c->previous->next = c->next; else s->open = c->next;
    if (c->next) c->next->previous = c->previous;
    epoll_ctl(s->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->output);
    free(c);
}

/// Writes pending output once; waits for EPOLLOUT only when the socket did not take it all.
static int conn_flush(r2ec_floor_server *s, floor_conn *c) {
    if (c->output_sent < c->output_length) {
        ssize_t w = write(c->fd, c->output + c->output_sent, c->output_length - c->output_sent);
        if (w < 0 && errno != EAGAIN) return -1;
        if (w > 0) c->output_sent += (size_t)w;
    }
    int pending = c->output_sent < c->output_length;
    if (!pending) c->output_sent = c->output_length = 0;
    if (pending != c->waiting_writable) {
        struct epoll_event ev = {.events = EPOLLIN | (pending ? EPOLLOUT : 0), .data.ptr = c};
        epoll_ctl(s->epoll_fd, EPOLL_CTL_MOD, c->fd, &ev);
        c->waiting_writable = pending;
    }
    return 0;
}

static void conn_readable(r2ec_floor_server *s, floor_conn *c) {
    ssize_t n = read(c->fd, c->input + c->input_length, FLOOR_INPUT - c->input_length);
    if (n == 0 || (n < 0 && errno != EAGAIN)) { conn_close(s, c); return; }
    if (n < 0) return;
    c->input_length += (size_t)n;
    uint64_t answered = 0;
    long used = s->protocol == R2EC_FLOOR_RESP ? serve_resp(c, &answered) : serve_frames(c, &answered);
    if (used < 0) { conn_close(s, c); return; }
    memmove(c->input, c->input + used, c->input_length - (size_t)used);
    c->input_length -= (size_t)used;
    atomic_fetch_add_explicit(&s->calls, answered, memory_order_relaxed);
    if (conn_flush(s, c) != 0) conn_close(s, c);
}

static void *server_main(void *arg) {
    r2ec_floor_server *s = arg;
    struct epoll_event events[FLOOR_EVENTS];
    for (;;) {
        int n = epoll_wait(s->epoll_fd, events, FLOOR_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (int i = 0; i < n; i++) {
            void *tag = events[i].data.ptr;
            if (tag == &stop_tag) return NULL;
            if (tag == &listener_tag) {
                int fd;
                while ((fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    int one = 1;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    floor_conn *c = calloc(1, sizeof *c);
                    if (!c) { close(fd); continue; }
                    c->fd = fd;
                    c->next = s->open;
                    if (s->open) s->open->previous = c;
                    s->open = c;
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, fd, &ev);
                }
                continue;
            }
            floor_conn *c = tag;
            if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                conn_readable(s, c);  // may close c
            } else if (events[i].events & EPOLLOUT) {
                if (conn_flush(s, c) != 0) conn_close(s, c);
            }
        }
    }
    return NULL;
}

r2ec_floor_server *r2ec_floor_server_start(int protocol) {
    r2ec_floor_server *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->protocol = protocol;
    s->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    s->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    s->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t length = sizeof addr;
    struct epoll_event listen_ev = {.events = EPOLLIN, .data.ptr = &listener_tag};
    struct epoll_event stop_ev = {.events = EPOLLIN, .data.ptr = &stop_tag};
    if (s->listen_fd < 0 || s->epoll_fd < 0 || s->stop_fd < 0
        || bind(s->listen_fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(s->listen_fd, 1024) != 0
        || getsockname(s->listen_fd, (struct sockaddr *)&addr, &length) != 0
        || epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, s->listen_fd, &listen_ev) != 0
        || epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, s->stop_fd, &stop_ev) != 0) {
        goto fail;
    }
    s->port = ntohs(addr.sin_port);
    if (pthread_create(&s->thread, NULL, server_main, s) != 0) goto fail;
    return s;
fail:;
    int saved = errno;
    if (s->listen_fd >= 0) close(s->listen_fd);
    if (s->epoll_fd >= 0) close(s->epoll_fd);
    if (s->stop_fd >= 0) close(s->stop_fd);
    free(s);
    errno = saved;
    return NULL;
}

int r2ec_floor_server_port(const r2ec_floor_server *s) { return s->port; }

uint64_t r2ec_floor_server_calls(const r2ec_floor_server *s) {
    return atomic_load_explicit(&s->calls, memory_order_relaxed);
}

void r2ec_floor_server_stop(r2ec_floor_server *s) {
    uint64_t one = 1;
    if (write(s->stop_fd, &one, sizeof one) < 0) { /* the thread still sees the eventfd once it is readable */ }
    pthread_join(s->thread, NULL);
    while (s->open) conn_close(s, s->open);
    close(s->listen_fd);
    close(s->epoll_fd);
    close(s->stop_fd);
    free(s);
}

// MARK: Client

typedef struct {
    int fd;
    uint8_t input[FLOOR_INPUT];
    size_t input_length;
    uint32_t next_stream;
    uint64_t started;
} load_conn;

typedef struct {
    int protocol;
    uint8_t *request;
    size_t request_length;
    size_t second_frame;  // offset of the MESSAGE frame in a framed request
} load_plan;

static int load_send(const load_plan *plan, load_conn *c, uint64_t now) {
    if (plan->protocol == R2EC_FLOOR_FRAMES) {
        uint32_t id = c->next_stream++;
        store_be32(plan->request + 8, id);
        store_be32(plan->request + plan->second_frame + 8, id);
    }
    c->started = now;
    ssize_t w = write(c->fd, plan->request, plan->request_length);
    return w == (ssize_t)plan->request_length ? 0 : -1;
}

/// Complete answers in the connection's input (consumed); -1 on bad framing or GOAWAY.
static long load_answers(const load_plan *plan, load_conn *c, uint64_t *errors) {
    size_t at = 0;
    long answers = 0;
    if (plan->protocol == R2EC_FLOOR_FRAMES) {
        while (c->input_length - at >= FRAME_HEADER) {
            const uint8_t *h = c->input + at;
            uint32_t length = load_be32(h + 12);
            if (load_be32(h) != FRAME_MAGIC || length > FLOOR_INPUT - FRAME_HEADER || h[5] == FRAME_GOAWAY) return -1;
            if (c->input_length - at < FRAME_HEADER + length) break;
            if (h[5] == FRAME_TRAILER) {
                answers++;
                if (length != 0) *errors += 1;  // Status{} of an OK call is empty
            }
            at += FRAME_HEADER + length;
        }
    } else {
        long line;
        while ((line = resp_line(c->input + at, c->input_length - at)) >= 0) {
            if (c->input[at] == '-') *errors += 1;
            answers++;
            at += (size_t)line + 2;
        }
    }
    memmove(c->input, c->input + at, c->input_length - at);
    c->input_length -= at;
    return answers;
}

int r2ec_floor_load(int port, int protocol, const uint8_t *request, size_t request_length, int connections,
                    double warmup, double seconds, r2ec_floor_result *out) {
    memset(out, 0, sizeof *out);
    load_plan plan = {.protocol = protocol, .request_length = request_length};
    if (protocol == R2EC_FLOOR_FRAMES) {
        if (request_length < 2 * FRAME_HEADER
            || (plan.second_frame = FRAME_HEADER + load_be32(request + 12)) + FRAME_HEADER > request_length) {
            snprintf(out->error, sizeof out->error, "the request is not a CALL frame followed by a MESSAGE frame");
            return -1;
        }
    }
    plan.request = malloc(request_length);
    load_conn *conns = calloc((size_t)connections, sizeof *conns);
    int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    int opened = 0, status = -1;
    if (!plan.request || !conns || epoll_fd < 0) {
        snprintf(out->error, sizeof out->error, "out of memory or descriptors");
        goto done;
    }
    memcpy(plan.request, request, request_length);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (; opened < connections; opened++) {
        load_conn *c = &conns[opened];
        c->next_stream = 1;
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        if (c->fd < 0 || setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0
            || connect(c->fd, (struct sockaddr *)&addr, sizeof addr) != 0
            || fcntl(c->fd, F_SETFL, O_NONBLOCK) != 0) {
            snprintf(out->error, sizeof out->error, "cannot connect to 127.0.0.1:%d: %s", port, strerror(errno));
            if (c->fd >= 0) close(c->fd);
            goto done;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(epoll_fd, EPOLL_CTL_ADD, c->fd, &ev);
    }
    uint64_t start = now_ns();
    for (int i = 0; i < connections; i++) {
        if (load_send(&plan, &conns[i], start) != 0) {
            snprintf(out->error, sizeof out->error, "short write");
            goto done;
        }
    }
    uint64_t window_start = start + (uint64_t)(warmup * 1e9), end = window_start + (uint64_t)(seconds * 1e9);
    uint64_t latency_sum = 0, now = start;
    int measuring = 0;
    struct epoll_event events[FLOOR_EVENTS];
    while (now < end) {
        int n = epoll_wait(epoll_fd, events, FLOOR_EVENTS, 10);
        if (n < 0 && errno != EINTR) {
            snprintf(out->error, sizeof out->error, "epoll_wait: %s", strerror(errno));
            goto done;
        }
        now = now_ns();
        if (!measuring && now >= window_start) {
            measuring = 1;
            window_start = now;
        }
        for (int i = 0; i < n; i++) {
            load_conn *c = events[i].data.ptr;
            ssize_t r = read(c->fd, c->input + c->input_length, FLOOR_INPUT - c->input_length);
            if (r == 0 || (r < 0 && errno != EAGAIN)) {
                snprintf(out->error, sizeof out->error, "the server closed a connection");
                goto done;
            }
            if (r < 0) continue;
            c->input_length += (size_t)r;
            uint64_t errors = 0;
            long answers = load_answers(&plan, c, &errors);
            if (answers < 0) {
                snprintf(out->error, sizeof out->error, "bad framing or GOAWAY from the server");
                goto done;
            }
            for (long a = 0; a < answers; a++) {
                if (measuring && now < end) {
                    out->calls++;
                    out->errors += errors;
                    errors = 0;
                    latency_sum += now - c->started;
                }
                if (load_send(&plan, c, now) != 0) {
                    snprintf(out->error, sizeof out->error, "short write");
                    goto done;
                }
            }
        }
    }
    out->seconds = (double)(now - window_start) / 1e9;
    out->mean_latency_us = out->calls ? (double)latency_sum / (double)out->calls / 1e3 : 0;
    status = 0;
done:
    for (int i = 0; i < opened; i++) close(conns[i].fd);
    if (epoll_fd >= 0) close(epoll_fd);
    free(conns);
    free(plan.request);
    return status;
}
