/* http.c: GET /metrics and GET /health on libmicrohttpd's own thread; request parsing, limits and timeouts are the library's. */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "config.h"
#include "error.h"
#include "http.h"
#include "ids.h"

/* Older libmicrohttpd (before 0.9.71) returned int from handlers. */
#if MHD_VERSION < 0x00097002
#define MHD_Result int
#endif

struct dsc_http {
    struct MHD_Daemon *daemon;
    dsc_metrics *m;
    const ds_logger *lg;
};

/* libmicrohttpd's own messages (a client that broke off, a full
 * connection table): debug level, so a port scan cannot flood the log. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    const dsc_http *h = cls;
    char line[512];

    if (!h->lg->fn || DS_LOG_DEBUG < h->lg->level)
        return;
    vsnprintf(line, sizeof line, fmt, ap);
    line[strcspn(line, "\r\n")] = '\0';
    DS_LOG(h->lg, DS_LOG_DEBUG, "metrics endpoint: %s", line);
}

/* Queues body (malloc'd, taken over) with status and content type. */
static enum MHD_Result reply(struct MHD_Connection *conn, unsigned int status,
                             const char *type, char *body, size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO; /* closes the connection */
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result ok = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result reply_text(struct MHD_Connection *conn,
                                  unsigned int status, const char *line)
{
    char *body;
    int n = asprintf(&body, "%s\n", line);
    if (n < 0)
        return MHD_NO;
    return reply(conn, status, "text/plain; charset=utf-8", body, (size_t)n);
}

/* Answers at the first call, before any request body is read: neither path
 * takes one, and libmicrohttpd then closes the connection instead of
 * reading what was sent. */
static enum MHD_Result answer(void *cls, struct MHD_Connection *conn,
                              const char *url, const char *method,
                              const char *version, const char *upload_data,
                              size_t *upload_data_size, void **req_cls)
{
    dsc_http *h = cls;
    bool metrics = strcmp(url, "/metrics") == 0;
    bool health = strcmp(url, "/health") == 0;

    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)req_cls;
    if (!metrics && !health)
        return reply_text(conn, MHD_HTTP_NOT_FOUND,
                          "not found: try /metrics or /health");
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
        strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                          "method not allowed: GET or HEAD");
    if (health) {
        char reason[300];
        int status = dsc_metrics_health(h->m, reason, sizeof reason);
        return reply_text(conn, (unsigned int)status, reason);
    }
    size_t len;
    char *body = dsc_metrics_render(h->m, ds__now_ms(), &len);
    if (!body)
        return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
                          "out of memory");
    return reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
                 body, len);
}

/* Binds and listens here rather than in libmicrohttpd, so a port in use
 * or a name that does not resolve is said in plain words. Returns the
 * socket, or a DS_E code with err. */
static int listen_on(const char *listen_at, bool *ipv6, char *err,
                     size_t errlen)
{
    char host[256], port[8], why[256];
    int portnum, fd = -1, one = 1;
    struct addrinfo hints = {0}, *ai = NULL;

    if (ds__config_split_listen(listen_at, host, &portnum, why, sizeof why))
        return ds__seterr(err, errlen, DS_ECONFIG, "metrics.listen: %s", why);
    snprintf(port, sizeof port, "%d", portnum);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV | AI_ADDRCONFIG;
    int rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
    if (rc)
        return ds__seterr(err, errlen, DS_ECONFIG, "metrics.listen %s: %s",
                          listen_at, gai_strerror(rc));
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
    if (fd < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 64) != 0) {
        rc = ds__seterr(err, errlen, DS_EIO, "metrics.listen %s: %s", listen_at,
                        strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return rc;
    }
    *ipv6 = ai->ai_family == AF_INET6;
    freeaddrinfo(ai);
    return fd;
}

int dsc_http_start(dsc_http **out, const char *listen_at, dsc_metrics *m,
                   const ds_logger *lg, char *err, size_t errlen)
{
    dsc_http *h = calloc(1, sizeof *h);
    bool ipv6 = false;
    sigset_t all, old;

    *out = NULL;
    if (!h)
        return ds__seterr(err, errlen, DS_ENOMEM, "out of memory");
    h->m = m;
    h->lg = lg;
    int fd = listen_on(listen_at, &ipv6, err, errlen);
    if (fd < 0) {
        free(h);
        return fd;
    }
    /* The thread is made inside MHD_start_daemon and inherits this mask:
     * SIGTERM, SIGHUP... stay with the main thread, whose blocking calls
     * they interrupt. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    h->daemon = MHD_start_daemon(
        MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG |
            (ipv6 ? MHD_USE_IPv6 : 0),
        0, NULL, NULL, answer, h, MHD_OPTION_LISTEN_SOCKET, fd,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)DSC_HTTP_MAX_CONNECTIONS,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)DSC_HTTP_TIMEOUT_S,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)DSC_HTTP_MEMORY_LIMIT,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h, MHD_OPTION_END);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!h->daemon) {
        close(fd);
        free(h);
        return ds__seterr(err, errlen, DS_EIO,
                          "metrics.listen %s: libmicrohttpd did not start",
                          listen_at);
    }
    *out = h;
    return 0;
}

void dsc_http_stop(dsc_http *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->daemon); /* joins the thread, closes the socket */
    free(h);
}
