/* chaos_proxy.c: a TCP proxy on 127.0.0.1 for the chaos run that can black-hole its connections (stop forwarding, sockets left open) on a signal. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "support.h"

/*
 *   chaos_proxy --target-port P [--listen-port L] [--port-file F]
 *
 * Listens on 127.0.0.1:L (0: any free port, written to F) and forwards
 * every connection to 127.0.0.1:P. Signals:
 *   SIGUSR1  black hole: stop reading, writing and accepting; every socket
 *            stays open, so both ends see silence, not a close (new
 *            connections wait in the listen backlog)
 *   SIGUSR2  forward again (what was read before the black hole goes on)
 *   SIGHUP   close every connection (both sides), and forward again
 *   SIGTERM, SIGINT  exit
 * One log line per event on stderr.
 */

#define MAX_PAIRS 64
#define BUF_SIZE 65536

typedef struct buf {
    char data[BUF_SIZE];
    size_t off, len;
} buf;

typedef struct pair {
    int cfd, ufd;
    bool used, connecting;
    bool c_eof, u_eof; /* that side sent FIN: flush the other way, then close */
    buf c2u, u2c;
    int n;
} pair;

static volatile sig_atomic_t want_hole, want_resume, want_close, want_stop;
static pair pairs[MAX_PAIRS];
static int target_port;
static int conn_count;

static void on_signal(int sig)
{
    switch (sig) {
    case SIGUSR1:
        want_hole = 1;
        break;
    case SIGUSR2:
        want_resume = 1;
        break;
    case SIGHUP:
        want_close = 1;
        break;
    default:
        want_stop = 1;
    }
}

#define say(...) ts_say("chaos-proxy", __VA_ARGS__)

static void set_nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void pair_close(pair *p, const char *why)
{
    if (!p->used)
        return;
    say("connection #%d closed: %s", p->n, why);
    close(p->cfd);
    close(p->ufd);
    memset(p, 0, sizeof *p);
}

static int active_pairs(void)
{
    int n = 0;
    for (int i = 0; i < MAX_PAIRS; i++)
        n += pairs[i].used;
    return n;
}

static void accept_one(int lfd)
{
    int cfd = accept(lfd, NULL, NULL);
    if (cfd < 0)
        return;
    pair *p = NULL;
    for (int i = 0; i < MAX_PAIRS && !p; i++)
        if (!pairs[i].used)
            p = &pairs[i];
    if (!p) {
        say("too many connections: refusing one");
        close(cfd);
        return;
    }
    int ufd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (ufd < 0) {
        close(cfd);
        return;
    }
    set_nonblock(cfd);
    set_nonblock(ufd);
    struct sockaddr_in to = {0};
    to.sin_family = AF_INET;
    to.sin_port = htons((uint16_t)target_port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    memset(p, 0, sizeof *p);
    p->used = true;
    p->cfd = cfd;
    p->ufd = ufd;
    p->n = ++conn_count;
    if (connect(ufd, (struct sockaddr *)&to, sizeof to) == 0) {
        say("connection #%d: connected to 127.0.0.1:%d", p->n, target_port);
    } else if (errno == EINPROGRESS) {
        p->connecting = true;
    } else {
        say("connection #%d: connect to 127.0.0.1:%d: %s", p->n, target_port,
            strerror(errno));
        pair_close(p, "upstream refused");
    }
}

/* Reads what fd has into b. Returns false on EOF or error (eof set on EOF). */
static bool fill(int fd, buf *b, bool *eof)
{
    if (b->off > 0 && b->off == b->len)
        b->off = b->len = 0;
    if (b->len == BUF_SIZE)
        return true;
    ssize_t n = read(fd, b->data + b->len, BUF_SIZE - b->len);
    if (n > 0) {
        b->len += (size_t)n;
        return true;
    }
    if (n == 0) {
        *eof = true;
        return true;
    }
    return errno == EAGAIN || errno == EINTR;
}

static bool drain(int fd, buf *b)
{
    if (b->off == b->len)
        return true;
    ssize_t n = write(fd, b->data + b->off, b->len - b->off);
    if (n > 0) {
        b->off += (size_t)n;
        if (b->off == b->len)
            b->off = b->len = 0;
        return true;
    }
    return n < 0 && (errno == EAGAIN || errno == EINTR);
}

int main(int argc, char **argv)
{
    const char *target = NULL, *listen_arg = "0", *port_file = NULL;
    const ts_opt opts[] = {TS_OPT("target-port", &target),
                           TS_OPT("listen-port", &listen_arg),
                           TS_OPT("port-file", &port_file), TS_OPT_END};
    if (ts_opts_parse(argc, argv, opts) != 0) {
        fprintf(stderr, "usage: chaos_proxy --target-port P "
                        "[--listen-port L] [--port-file F]\n");
        return 2;
    }
    int listen_port = atoi(listen_arg);
    target_port = target ? atoi(target) : 0;
    if (target_port <= 0) {
        fprintf(stderr, "chaos_proxy: --target-port is required\n");
        return 2;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)listen_port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof addr;
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        listen(lfd, 64) != 0 ||
        getsockname(lfd, (struct sockaddr *)&addr, &alen) != 0) {
        say("listen on 127.0.0.1:%d: %s", listen_port, strerror(errno));
        return 1;
    }
    set_nonblock(lfd);
    listen_port = ntohs(addr.sin_port);
    if (port_file) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
        FILE *f = fopen(tmp, "w");
        if (!f || fprintf(f, "%d\n", listen_port) < 0 || fclose(f) != 0 ||
            rename(tmp, port_file) != 0) {
            say("%s: %s", port_file, strerror(errno));
            return 1;
        }
    }
    say("listening on 127.0.0.1:%d, forwarding to 127.0.0.1:%d (pid %d)",
        listen_port, target_port, (int)getpid());

    bool hole = false;
    while (!want_stop) {
        if (want_hole) {
            want_hole = 0;
            hole = true;
            say("black hole: forwarding stopped, %d connections held open",
                active_pairs());
        }
        if (want_resume) {
            want_resume = 0;
            hole = false;
            say("forwarding again (%d connections)", active_pairs());
        }
        if (want_close) {
            want_close = 0;
            hole = false;
            say("closing all %d connections, then forwarding again",
                active_pairs());
            for (int i = 0; i < MAX_PAIRS; i++)
                pair_close(&pairs[i], "closed on command");
        }

        struct pollfd fds[1 + 2 * MAX_PAIRS];
        int idx[1 + 2 * MAX_PAIRS];
        int n = 0;
        if (!hole) {
            fds[n] = (struct pollfd){lfd, POLLIN, 0};
            idx[n++] = -1;
            for (int i = 0; i < MAX_PAIRS; i++) {
                pair *p = &pairs[i];
                if (!p->used)
                    continue;
                short ce = 0, ue = 0;
                if (p->connecting) {
                    ue = POLLOUT;
                } else {
                    if (!p->c_eof && p->c2u.len < BUF_SIZE)
                        ce |= POLLIN;
                    if (p->u2c.len > p->u2c.off)
                        ce |= POLLOUT;
                    if (!p->u_eof && p->u2c.len < BUF_SIZE)
                        ue |= POLLIN;
                    if (p->c2u.len > p->c2u.off)
                        ue |= POLLOUT;
                }
                fds[n] = (struct pollfd){p->cfd, ce, 0};
                idx[n++] = i;
                fds[n] = (struct pollfd){p->ufd, ue, 0};
                idx[n++] = i;
            }
        }
        /* In a black hole nothing is polled: the signal (or the timeout)
         * ends the wait. */
        int rc = poll(fds, (nfds_t)n, 100);
        if (rc <= 0 || hole)
            continue;
        for (int k = 0; k < n; k++) {
            if (!fds[k].revents)
                continue;
            if (idx[k] < 0) {
                accept_one(lfd);
                continue;
            }
            pair *p = &pairs[idx[k]];
            if (!p->used)
                continue;
            bool client = fds[k].fd == p->cfd;
            if (p->connecting) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(p->ufd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err) {
                    say("connection #%d: connect to 127.0.0.1:%d: %s", p->n,
                        target_port, strerror(err));
                    pair_close(p, "upstream unreachable");
                } else {
                    p->connecting = false;
                    say("connection #%d: connected to 127.0.0.1:%d", p->n,
                        target_port);
                }
                continue;
            }
            bool ok = true;
            if (fds[k].revents & (POLLIN | POLLHUP | POLLERR))
                ok = client ? fill(p->cfd, &p->c2u, &p->c_eof)
                            : fill(p->ufd, &p->u2c, &p->u_eof);
            if (ok && (fds[k].revents & POLLOUT))
                ok = client ? drain(p->cfd, &p->u2c) : drain(p->ufd, &p->c2u);
            if (!ok) {
                pair_close(p, client ? "client error" : "upstream error");
                continue;
            }
            /* A side that closed: once what it sent is delivered, close
             * both (AMQP does not half-close). */
            if ((p->c_eof && p->c2u.len == p->c2u.off) ||
                (p->u_eof && p->u2c.len == p->u2c.off))
                pair_close(p, p->c_eof ? "client closed" : "upstream closed");
        }
    }
    for (int i = 0; i < MAX_PAIRS; i++)
        pair_close(&pairs[i], "proxy exiting");
    close(lfd);
    say("exit");
    return 0;
}
