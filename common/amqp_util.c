/* amqp_util.c: connects to the first reachable broker of a URL list, with bounded waits, and maps broker errors. */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>

#include "amqp_util.h"
#include "config.h"
#include "error.h"
#include "log.h"

#ifdef DS_RABBITMQ_C_NEW_HEADERS
#include <rabbitmq-c/ssl_socket.h>
#else
#include <amqp_ssl_socket.h>
#endif

amqp_bytes_t ds__amqp_str(const char *s)
{
    amqp_bytes_t b;
    b.len = s ? strlen(s) : 0;
    b.bytes = (void *)(s ? s : "");
    return b;
}

void ds__amqp_copy_str(amqp_bytes_t b, char *out, size_t len)
{
    if (b.len < len) {
        memcpy(out, b.bytes, b.len);
        out[b.len] = '\0';
    } else if (len > 0) {
        out[0] = '\0';
    }
}

void ds__amqp_event_props(amqp_basic_properties_t *props,
                          amqp_table_entry_t *header, const char *id,
                          const char *origin)
{
    struct timespec now;

    clock_gettime(CLOCK_REALTIME, &now);
    header->key = amqp_cstring_bytes("x-origin");
    header->value.kind = AMQP_FIELD_KIND_UTF8;
    header->value.value.bytes = amqp_cstring_bytes(origin);
    memset(props, 0, sizeof *props);
    props->_flags = AMQP_BASIC_CONTENT_TYPE_FLAG |
                    AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG |
                    AMQP_BASIC_TIMESTAMP_FLAG | AMQP_BASIC_APP_ID_FLAG |
                    AMQP_BASIC_HEADERS_FLAG;
    props->content_type = amqp_cstring_bytes("application/json");
    props->delivery_mode = AMQP_DELIVERY_PERSISTENT;
    props->message_id = amqp_cstring_bytes(id);
    props->timestamp = (uint64_t)now.tv_sec;
    props->app_id = amqp_cstring_bytes("datasync");
    props->headers.num_entries = 1;
    props->headers.entries = header;
}

static const char MARKER_TYPE[] = "datasync.marker";

void ds__amqp_marker_props(amqp_basic_properties_t *props, const char *id)
{
    memset(props, 0, sizeof *props);
    props->_flags = AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG |
                    AMQP_BASIC_DELIVERY_MODE_FLAG |
                    AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_APP_ID_FLAG;
    props->type = amqp_cstring_bytes(MARKER_TYPE);
    props->message_id = amqp_cstring_bytes(id);
    props->delivery_mode = AMQP_DELIVERY_PERSISTENT;
    props->content_type = amqp_cstring_bytes("application/json");
    props->app_id = amqp_cstring_bytes("datasync");
}

bool ds__amqp_is_marker(const amqp_basic_properties_t *props)
{
    return (props->_flags & AMQP_BASIC_TYPE_FLAG) &&
           props->type.len == sizeof MARKER_TYPE - 1 &&
           memcmp(props->type.bytes, MARKER_TYPE, props->type.len) == 0;
}

int ds__amqp_read_return(amqp_connection_state_t conn, amqp_channel_t channel,
                         char *id, size_t idlen, char *err, size_t errlen)
{
    amqp_message_t msg;
    int rc = ds__amqp_reply_error(amqp_read_message(conn, channel, &msg, 0),
                                  "reading a returned message", err, errlen);
    if (rc < 0)
        return rc;
    ds__amqp_copy_str((msg.properties._flags & AMQP_BASIC_MESSAGE_ID_FLAG)
                          ? msg.properties.message_id
                          : amqp_empty_bytes,
                      id, idlen);
    amqp_destroy_message(&msg);
    return 0;
}

int ds__amqp_status_error(int status, const char *what, char *err,
                          size_t errlen)
{
    int code;
    switch (status) {
    case AMQP_STATUS_NO_MEMORY:
        code = DS_ENOMEM;
        break;
    case AMQP_STATUS_TIMEOUT:
    case AMQP_STATUS_HEARTBEAT_TIMEOUT:
        code = DS_ETIMEOUT;
        break;
    case AMQP_STATUS_SOCKET_ERROR:
    case AMQP_STATUS_SOCKET_CLOSED:
    case AMQP_STATUS_CONNECTION_CLOSED:
    case AMQP_STATUS_TCP_ERROR:
    case AMQP_STATUS_HOSTNAME_RESOLUTION_FAILED:
        code = DS_ECONNECT;
        break;
    default:
        code = DS_EAMQP;
    }
    return ds__seterr(err, errlen, code, "%s: %s", what,
                      amqp_error_string2(status));
}

int ds__amqp_reply_error(amqp_rpc_reply_t r, const char *what, char *err,
                         size_t errlen)
{
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        return 0;
    case AMQP_RESPONSE_NONE:
        return ds__seterr(err, errlen, DS_EAMQP, "%s: no reply from broker",
                          what);
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        return ds__amqp_status_error(r.library_error, what, err, errlen);
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        break;
    }
    if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        const amqp_connection_close_t *c = r.reply.decoded;
        return ds__seterr(
            err, errlen, c->reply_code == 320 ? DS_ECONNECT : DS_EAMQP,
            "%s: connection closed by broker: %u %.*s", what, c->reply_code,
            (int)c->reply_text.len, (const char *)c->reply_text.bytes);
    }
    if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        const amqp_channel_close_t *c = r.reply.decoded;
        return ds__seterr(
            err, errlen, c->reply_code == 404 ? DS_ENOTFOUND : DS_EAMQP,
            "%s: channel closed by broker: %u %.*s", what, c->reply_code,
            (int)c->reply_text.len, (const char *)c->reply_text.bytes);
    }
    return ds__seterr(err, errlen, DS_EAMQP,
                      "%s: unexpected method 0x%08x from broker", what,
                      (unsigned)r.reply.id);
}

bool ds__amqp_reply_closed_connection(amqp_rpc_reply_t r)
{
    /* Every error we see ends the connection or the one channel we use, and
     * rabbitmq-c 0.11 cannot reopen a channel mid-stream safely for us:
     * treat anything but a normal reply as fatal to the connection. */
    return r.reply_type != AMQP_RESPONSE_NORMAL;
}

struct url_pick {
    int want; /* index to connect to */
    int index;
    char url[1024];
    bool found;
};

static int pick_url(const char *word, size_t len, void *ctx)
{
    struct url_pick *p = ctx;
    if (p->index++ != p->want)
        return 0;
    if (len >= sizeof p->url)
        len = sizeof p->url - 1;
    memcpy(p->url, word, len);
    p->url[len] = '\0';
    p->found = true;
    return 1;
}

static int count_url(const char *word, size_t len, void *ctx)
{
    (void)word;
    (void)len;
    ++*(int *)ctx;
    return 0;
}

/* Bounds every later socket wait the kernel can bound: rabbitmq-c 0.11 polls
 * with an infinite deadline inside basic.publish, so TCP_USER_TIMEOUT is what
 * turns a black-holed peer into an error there. */
static void set_socket_timeouts(amqp_connection_state_t conn, int timeout_ms)
{
    int fd = amqp_get_sockfd(conn);
    unsigned int user_timeout = (unsigned int)timeout_ms;
    int on = 1;

    if (fd < 0)
        return;
    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout,
               sizeof user_timeout);
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

/* Logs in announcing connection.blocked, without which RabbitMQ throttles a
 * publisher under a resource alarm without telling it why; rabbitmq-c merges
 * this capability into its own defaults. */
static amqp_rpc_reply_t login(amqp_connection_state_t conn,
                              const struct amqp_connection_info *info,
                              int heartbeat, const char *client_name)
{
    amqp_table_entry_t cap, props[2];
    amqp_table_t caps = {1, &cap}, table = {1, props};

    cap.key = amqp_cstring_bytes("connection.blocked");
    cap.value.kind = AMQP_FIELD_KIND_BOOLEAN;
    cap.value.value.boolean = 1;
    props[0].key = amqp_cstring_bytes("capabilities");
    props[0].value.kind = AMQP_FIELD_KIND_TABLE;
    props[0].value.value.table = caps;
    if (client_name) {
        props[1].key = amqp_cstring_bytes("connection_name");
        props[1].value.kind = AMQP_FIELD_KIND_UTF8;
        props[1].value.value.bytes = amqp_cstring_bytes(client_name);
        table.num_entries = 2;
    }
    return amqp_login_with_properties(
        conn, info->vhost, 0, AMQP_DEFAULT_FRAME_SIZE, heartbeat, &table,
        AMQP_SASL_METHOD_PLAIN, info->user, info->password);
}

/*
 * The TLS socket of an amqps:// URL, set up from a->tls.
 *
 * OpenSSL initialisation: rabbitmq-c 0.11 initialises OpenSSL itself, once,
 * under its own mutex, at the first amqp_ssl_socket_new() (its default,
 * amqp_set_initialize_ssl_library(1)); with OpenSSL 1.1 and later (Debian
 * 12 ships 3.0) that initialisation is idempotent and safe next to a host
 * that uses OpenSSL too. So we call neither amqp_set_initialize_ssl_library
 * nor amqp_uninitialize_ssl_library (which would tear OpenSSL down under
 * such a host): the only process-wide state is rabbitmq-c's own. Every
 * socket gets its own SSL_CTX, so connections share no TLS settings.
 */
static int tls_socket(ds_amqp *a, amqp_connection_state_t conn,
                      const char *host, int port, amqp_socket_t **out,
                      char *err, size_t errlen)
{
    const ds_config *cfg = a->tls;
    bool verify = !cfg || cfg->amqp_verify_peer;
    const char *ca = cfg ? cfg->amqp_ca_file : "";
    const char *cert = cfg ? cfg->amqp_cert_file : "";
    const char *key = cfg ? cfg->amqp_key_file : "";
    amqp_socket_t *sock = NULL;

    if (verify && !*ca)
        return ds__seterr(err, errlen, DS_EINVAL,
                          "amqps://%s:%d: amqp.ca_file is not set: it names "
                          "the CA certificate that signed the broker's (or "
                          "set amqp.verify_peer = false, for tests only)",
                          host, port);
    if (!*cert != !*key)
        return ds__seterr(err, errlen, DS_EINVAL,
                          "amqp.cert_file and amqp.key_file go together: set "
                          "both or neither");
    sock = amqp_ssl_socket_new(conn);
    if (!sock)
        return ds__seterr(err, errlen, DS_EAMQP,
                          "amqps://%s:%d: cannot set up TLS (out of memory, "
                          "or OpenSSL failed to initialise)",
                          host, port);
    if (*ca && amqp_ssl_socket_set_cacert(sock, ca) != AMQP_STATUS_OK)
        return ds__seterr(err, errlen, DS_EINVAL,
                          "amqp.ca_file: cannot load '%s' (a readable PEM "
                          "CA certificate is expected)",
                          ca);
    if (*cert && amqp_ssl_socket_set_key(sock, cert, key) != AMQP_STATUS_OK)
        return ds__seterr(err, errlen, DS_EINVAL,
                          "amqp.cert_file/key_file: cannot load '%s' with "
                          "'%s' (a PEM certificate and its unencrypted key "
                          "are expected)",
                          cert, key);
    amqp_ssl_socket_set_verify_peer(sock, verify);
    amqp_ssl_socket_set_verify_hostname(sock, verify);
    if (!verify && a->lg)
        DS_LOG(a->lg, DS_LOG_WARN,
               "amqps://%s:%d: amqp.verify_peer = false: the broker's "
               "certificate is not checked, anyone on the path can pose as "
               "the broker",
               host, port);
    *out = sock;
    return 0;
}

/* Says why opening the socket to host:port failed, TLS failures naming what
 * to check. */
static int open_error(ds_amqp *a, int status, bool tls, const char *host,
                      int port, char *err, size_t errlen)
{
    const char *ca = a->tls ? a->tls->amqp_ca_file : "";

    switch (status) {
    case AMQP_STATUS_SSL_PEER_VERIFY_FAILED:
        return ds__seterr(err, errlen, DS_ECONNECT,
                          "amqps://%s:%d: TLS: the broker's certificate is "
                          "not signed by the CA of amqp.ca_file (%s)",
                          host, port, ca);
    case AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED:
        return ds__seterr(err, errlen, DS_ECONNECT,
                          "amqps://%s:%d: TLS: the broker's certificate does "
                          "not name host '%s' (compare the URL's host with "
                          "the certificate's subjectAltName)",
                          host, port, host);
    case AMQP_STATUS_SSL_CONNECTION_FAILED:
    case AMQP_STATUS_SSL_ERROR:
        return ds__seterr(err, errlen, DS_ECONNECT,
                          "amqps://%s:%d: TLS handshake failed (%s): is it "
                          "a TLS port, and does the broker want a client "
                          "certificate (amqp.cert_file)?",
                          host, port, amqp_error_string2(status));
    }
    /* rabbitmq-c keeps the connect's errno to itself: say what to check
     * instead. */
    return ds__seterr(err, errlen, DS_ECONNECT,
                      "cannot connect to %s:%d (%s): is RabbitMQ running "
                      "and listening there%s?",
                      host, port, amqp_error_string2(status),
                      tls ? " with TLS" : "");
}

static int connect_one(ds_amqp *a, const char *url_text, int heartbeat,
                       int timeout_ms, char *err, size_t errlen)
{
    struct amqp_connection_info info;
    char url[1024];
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    amqp_connection_state_t conn = NULL;
    amqp_socket_t *sock = NULL;
    amqp_rpc_reply_t r;
    int rc, status;

    snprintf(url, sizeof url, "%s", url_text);
    amqp_default_connection_info(&info);
    if (amqp_parse_url(url, &info) != AMQP_STATUS_OK)
        return ds__seterr(err, errlen, DS_EINVAL,
                          "amqp.url: cannot parse a URL (expected "
                          "amqp://user:password@host:port/vhost)");

    conn = amqp_new_connection();
    if (!conn)
        return ds__seterr(err, errlen, DS_ENOMEM, "amqp: out of memory");
    if (info.ssl) {
        rc = tls_socket(a, conn, info.host, info.port, &sock, err, errlen);
        if (rc < 0)
            goto fail;
    } else {
        sock = amqp_tcp_socket_new(conn);
        if (!sock) {
            rc = DS_ENOMEM;
            goto fail;
        }
    }
    status = amqp_socket_open_noblock(sock, info.host, info.port, &tv);
    if (status != AMQP_STATUS_OK) {
        rc = open_error(a, status, info.ssl, info.host, info.port, err, errlen);
        goto fail;
    }
    set_socket_timeouts(conn, timeout_ms);
    amqp_set_handshake_timeout(conn, &tv);
    amqp_set_rpc_timeout(conn, &tv);
    r = login(conn, &info, heartbeat, a->client_name);
    if (info.ssl && r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
        r.library_error == AMQP_STATUS_SSL_ERROR) {
        /* With TLS 1.3 the client's side of the handshake is done before
         * the broker has checked the client: a broker that wants a
         * certificate it did not get (or does not trust) ends the session
         * at the first read, which is the login's. */
        const char *cert = a->tls ? a->tls->amqp_cert_file : "";
        rc = ds__seterr(err, errlen, DS_ECONNECT,
                        "amqps://%s:%d: TLS: the broker ended the session "
                        "after the handshake (%s): %s",
                        info.host, info.port,
                        amqp_error_string2(r.library_error),
                        *cert ? "does it trust the CA that signed the client "
                                "certificate (amqp.cert_file)?"
                              : "does it want a client certificate "
                                "(amqp.cert_file)?");
        goto fail;
    }
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        char why[DS_ERRMSG_SIZE];
        rc = ds__amqp_reply_error(r, "login", why, sizeof why);
        /* "amqp://host/" names the vhost "", not "/": say how to. */
        /* The broker answered and said no (403 login refused, 530 no such
         * vhost): DS_EAMQP, not the DS_ECONNECT of an outage. */
        if (rc != DS_ENOMEM)
            rc =
                r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && rc == DS_EAMQP
                    ? DS_EAMQP
                    : DS_ECONNECT;
        rc = ds__seterr(err, errlen, rc, "%s:%d (user %s, vhost '%s'): %s%s",
                        info.host, info.port, info.user, info.vhost, why,
                        info.vhost[0] ? ""
                                      : " (the URL names an empty vhost: end "
                                        "it with /%2f for the default vhost "
                                        "\"/\")");
        goto fail;
    }
    amqp_channel_open(conn, DS_AMQP_CHANNEL);
    rc = ds__amqp_reply_error(amqp_get_rpc_reply(conn), "channel.open", err,
                              errlen);
    if (rc < 0)
        goto fail;
    a->conn = conn;
    snprintf(a->host, sizeof a->host, "%s:%d", info.host, info.port);
    return 0;

fail:
    amqp_destroy_connection(conn);
    return rc;
}

int ds__amqp_connect(ds_amqp *a, const char *urls, int heartbeat,
                     int timeout_ms, char *err, size_t errlen)
{
    int n = 0, rc = DS_ECONNECT;

    if (a->conn)
        return 0;
    ds__config_each_word(urls, count_url, &n);
    if (n == 0)
        return ds__seterr(err, errlen, DS_EINVAL, "amqp.url: no URL given");
    if (a->broken)
        a->next_url = (a->next_url + 1) % n;
    a->broken = false;
    for (int tried = 0; tried < n; tried++) {
        struct url_pick pick = {.want = (a->next_url + tried) % n};
        ds__config_each_word(urls, pick_url, &pick);
        rc = connect_one(a, pick.url, heartbeat, timeout_ms, err, errlen);
        if (rc == 0) {
            a->next_url = pick.want;
            return 0;
        }
        if (rc == DS_ENOMEM || rc == DS_EINVAL)
            return rc;
    }
    /* Next time start with the URL after the one that failed first, so a
     * dead first broker doesn't cost a timeout on every attempt. */
    a->next_url = (a->next_url + 1) % n;
    return rc;
}

void ds__amqp_close(ds_amqp *a)
{
    if (!a->conn)
        return;
    amqp_channel_close(a->conn, DS_AMQP_CHANNEL, AMQP_REPLY_SUCCESS);
    amqp_connection_close(a->conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(a->conn);
    a->conn = NULL;
}

void ds__amqp_drop(ds_amqp *a)
{
    if (!a->conn)
        return;
    a->broken = true;
    amqp_destroy_connection(a->conn);
    a->conn = NULL;
}
