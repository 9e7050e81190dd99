/* inbox.c: one AMQP connection and channel, one frame pump: deliveries into a FIFO, dead-letter confirms, closes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "inbox.h"
#include "topology.h"

/* Bounds the TCP connect, the login and every RPC of the connection. */
#define DS_INBOX_CONNECT_TIMEOUT_MS 5000

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void dsc_message_free(dsc_message *m)
{
    if (!m)
        return;
    free(m->body.bytes);
    empty_amqp_pool(&m->pool);
    free(m);
}

static void free_buffered(dsc_inbox *in)
{
    while (in->head) {
        dsc_message *m = in->head;
        in->head = m->next;
        dsc_message_free(m);
    }
    in->tail = NULL;
    in->count = 0;
    dsc_message_free(in->partial);
    in->partial = NULL;
    in->body_got = 0;
    in->skip_header = false;
    in->skip_body = 0;
    ds__confirms_fail(&in->dead, NULL, NULL); /* the wait ends with it */
}

void dsc_inbox_init(dsc_inbox *in, const ds_config *cfg, const ds_logger *lg)
{
    memset(in, 0, sizeof *in);
    in->cfg = cfg;
    in->lg = lg;
    ds__confirms_init(&in->dead);
    snprintf(in->node, sizeof in->node, "%s", cfg->node_id);
    ds__topology_node_queue(cfg->node_id, in->queue, sizeof in->queue);
    ds__topology_dead_exchange(cfg, in->dead_exchange,
                               sizeof in->dead_exchange);
}

bool dsc_inbox_connected(const dsc_inbox *in)
{
    return in->amqp.conn != NULL;
}

void dsc_inbox_close(dsc_inbox *in)
{
    ds__amqp_close(&in->amqp);
    free_buffered(in);
    ds__confirms_free(&in->dead);
}

void dsc_inbox_drop(dsc_inbox *in)
{
    ds__amqp_drop(&in->amqp);
    free_buffered(in);
}

/* 403 "queue ... in exclusive use": another consumer holds the queue (a
 * 403 for missing permissions says otherwise). */
static bool in_exclusive_use(amqp_rpc_reply_t r)
{
    const amqp_channel_close_t *m = r.reply.decoded;

    if (r.reply_type != AMQP_RESPONSE_SERVER_EXCEPTION ||
        r.reply.id != AMQP_CHANNEL_CLOSE_METHOD || m->reply_code != 403)
        return false;
    return memmem(m->reply_text.bytes, m->reply_text.len, "exclusive use",
                  13) != NULL;
}

/* A passive queue.declare of the node queue: its ready messages and its
 * consumers (either may be NULL). An RPC on the consuming channel:
 * rabbitmq-c queues the deliveries and confirms that arrive meanwhile, and
 * the pump reads them next. */
static int queue_counts(dsc_inbox *in, uint32_t *messages, uint32_t *consumers,
                        char *err, size_t errlen)
{
    if (!in->amqp.conn)
        return ds__seterr(err, errlen, DS_ECONNECT,
                          "not connected to the broker");
    amqp_queue_declare_ok_t *ok = amqp_queue_declare(
        in->amqp.conn, DS_AMQP_CHANNEL, ds__amqp_str(in->queue),
        1 /* passive */, 0, 0, 0, amqp_empty_table);
    if (!ok)
        return ds__amqp_reply_error(amqp_get_rpc_reply(in->amqp.conn),
                                    "queue.declare (passive)", err, errlen);
    if (messages)
        *messages = ok->message_count;
    if (consumers)
        *consumers = ok->consumer_count;
    return 0;
}

int dsc_inbox_open(dsc_inbox *in, char *err, size_t errlen)
{
    const ds_config *cfg = in->cfg;
    amqp_connection_state_t conn;
    bool single_active = false;
    uint32_t consumers = 0;
    int rc;

    dsc_inbox_drop(in);
    in->standby = false;
    in->amqp.tls = cfg;
    in->amqp.lg = in->lg;
    rc = ds__amqp_connect(&in->amqp, cfg->amqp_url, cfg->amqp_heartbeat,
                          DS_INBOX_CONNECT_TIMEOUT_MS, err, errlen);
    if (rc)
        return rc;
    conn = in->amqp.conn;
    in->gen++;
    ds__confirms_restart(&in->dead);

    rc = ds__topology_declare_exchanges(&in->amqp, cfg, err, errlen);
    if (rc == 0)
        rc = ds__topology_declare_node(&in->amqp, cfg, in->node, &single_active,
                                       err, errlen);
    if (rc)
        goto fail;
    amqp_basic_qos(conn, DS_AMQP_CHANNEL, 0, (uint16_t)cfg->amqp_prefetch, 0);
    rc = ds__amqp_reply_error(amqp_get_rpc_reply(conn), "basic.qos", err,
                              errlen);
    if (rc)
        goto fail;
    amqp_confirm_select(conn, DS_AMQP_CHANNEL);
    rc = ds__amqp_reply_error(amqp_get_rpc_reply(conn), "confirm.select", err,
                              errlen);
    if (rc)
        goto fail;
    /* Counted before this one joins: a quorum queue counts only its
     * active consumer. */
    if (single_active) {
        rc = queue_counts(in, NULL, &consumers, err, errlen);
        if (rc)
            goto fail;
    }
    /* One consumer of the node at a time, so batches keep the queue's
     * order: the queue's single active consumer lets a second one (a
     * standby, a copy started by mistake) wait on the queue; a queue of an
     * earlier release has none, and an exclusive consumer refuses it
     * instead (it then retries). */
    amqp_basic_consume(conn, DS_AMQP_CHANNEL, ds__amqp_str(in->queue),
                       amqp_empty_bytes, 0 /* no_local */, 0 /* no_ack */,
                       !single_active /* exclusive */, amqp_empty_table);
    amqp_rpc_reply_t r = amqp_get_rpc_reply(conn);
    if (in_exclusive_use(r)) {
        rc = ds__seterr(err, errlen, DS_ESTATE,
                        "queue %s is in exclusive use by another "
                        "datasync-consumer of node %s: standing by",
                        in->queue, in->node);
        goto fail;
    }
    rc = ds__amqp_reply_error(r, "basic.consume", err, errlen);
    if (rc)
        goto fail;
    /* The broker gives the queue to the consumer that came first: with
     * another one there, this one waits (until its first delivery). */
    in->standby = consumers > 0;
    return 0;
fail:
    dsc_inbox_drop(in);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Frames                                                                     */

static int copy_bytes(amqp_pool_t *pool, amqp_bytes_t *out, amqp_bytes_t src)
{
    if (src.len == 0) {
        *out = amqp_empty_bytes;
        return 0;
    }
    amqp_pool_alloc_bytes(pool, src.len, out);
    if (!out->bytes)
        return DS_ENOMEM;
    memcpy(out->bytes, src.bytes, src.len);
    return 0;
}

/* Deep-copies the properties into the message's own pool: the frame's
 * memory goes back to rabbitmq-c right after. */
static int copy_props(dsc_message *m, const amqp_basic_properties_t *p)
{
    static const struct {
        amqp_flags_t flag;
        size_t offset;
    } fields[] = {
#define F(flag, field) {flag, offsetof(amqp_basic_properties_t, field)}
        F(AMQP_BASIC_CONTENT_TYPE_FLAG, content_type),
        F(AMQP_BASIC_CONTENT_ENCODING_FLAG, content_encoding),
        F(AMQP_BASIC_CORRELATION_ID_FLAG, correlation_id),
        F(AMQP_BASIC_REPLY_TO_FLAG, reply_to),
        F(AMQP_BASIC_EXPIRATION_FLAG, expiration),
        F(AMQP_BASIC_MESSAGE_ID_FLAG, message_id),
        F(AMQP_BASIC_TYPE_FLAG, type),
        F(AMQP_BASIC_USER_ID_FLAG, user_id),
        F(AMQP_BASIC_APP_ID_FLAG, app_id),
        F(AMQP_BASIC_CLUSTER_ID_FLAG, cluster_id),
#undef F
    };

    /* rabbitmq-c fills only the fields whose flag is set: the others hold
     * whatever its pool held, so they are made empty here, and the kept
     * ones copied out of the frame, which is released. */
    m->props = *p;
    m->props.headers = amqp_empty_table;
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        amqp_bytes_t *dst =
            (amqp_bytes_t *)((char *)&m->props + fields[i].offset);
        const amqp_bytes_t *src =
            (const amqp_bytes_t *)((const char *)p + fields[i].offset);
        *dst = amqp_empty_bytes;
        if ((p->_flags & fields[i].flag) && copy_bytes(&m->pool, dst, *src))
            return DS_ENOMEM;
    }
    if (p->_flags & AMQP_BASIC_HEADERS_FLAG) {
        if (amqp_table_clone(&p->headers, &m->props.headers, &m->pool) !=
            AMQP_STATUS_OK)
            return DS_ENOMEM;
    }
    return 0;
}

static void complete(dsc_inbox *in)
{
    dsc_message *m = in->partial;
    in->partial = NULL;
    m->next = NULL;
    if (in->tail)
        in->tail->next = m;
    else
        in->head = m;
    in->tail = m;
    in->count++;
}

/* A dead letter's verdict (ds_confirm_fn), counted for the waiting
 * dsc_inbox_dead_letter. */
static void dead_settled(void *ctx, ds_confirm *e)
{
    dsc_inbox *in = ctx;

    if (e->state == DS_CONFIRM_NACKED)
        in->dead_nacked++;
    else if (e->state == DS_CONFIRM_UNROUTABLE)
        in->dead_unroutable++;
    else if (e->state == DS_CONFIRM_ACKED)
        in->dead_acked++;
}

static int protocol_error(const char *what, char *err, size_t errlen)
{
    return ds__seterr(err, errlen, DS_EAMQP,
                      "unexpected %s frame from the broker", what);
}

static int handle_method(dsc_inbox *in, const amqp_frame_t *f, char *err,
                         size_t errlen)
{
    amqp_connection_state_t conn = in->amqp.conn;

    switch (f->payload.method.id) {
    case AMQP_BASIC_DELIVER_METHOD: {
        const amqp_basic_deliver_t *d = f->payload.method.decoded;
        if (in->partial || in->skip_header || in->skip_body)
            return protocol_error("basic.deliver", err, errlen);
        dsc_message *m = calloc(1, sizeof *m);
        if (!m)
            return ds__seterr(err, errlen, DS_ENOMEM, "inbox: out of memory");
        init_amqp_pool(&m->pool, 1024);
        m->tag = d->delivery_tag;
        m->gen = in->gen;
        m->redelivered = d->redelivered;
        in->partial = m;
        in->body_got = 0;
        return 0;
    }
    case AMQP_BASIC_RETURN_METHOD: {
        const amqp_basic_return_t *r = f->payload.method.decoded;
        DS_LOG(in->lg, DS_LOG_ERROR,
               "dead letter returned by the broker: %u %.*s (exchange %s)",
               r->reply_code, (int)r->reply_text.len,
               (const char *)r->reply_text.bytes, in->dead_exchange);
        /* Its content is skipped unread: the oldest one waiting is marked
         * (returns come in publish order). */
        ds__confirms_returned(&in->dead, NULL);
        in->skip_header = true;
        return 0;
    }
    case AMQP_BASIC_ACK_METHOD: {
        const amqp_basic_ack_t *a = f->payload.method.decoded;
        ds__confirms_answer(&in->dead, a->delivery_tag, a->multiple, true,
                            dead_settled, in);
        return 0;
    }
    case AMQP_BASIC_NACK_METHOD: {
        const amqp_basic_nack_t *n = f->payload.method.decoded;
        ds__confirms_answer(&in->dead, n->delivery_tag, n->multiple, false,
                            dead_settled, in);
        return 0;
    }
    case AMQP_BASIC_CANCEL_METHOD:
        return ds__seterr(err, errlen, DS_EAMQP,
                          "the broker cancelled the consumer of %s (queue "
                          "deleted?)",
                          in->queue);
    case AMQP_CHANNEL_CLOSE_METHOD: {
        const amqp_channel_close_t *c = f->payload.method.decoded;
        amqp_channel_close_ok_t ok = {0};
        amqp_send_method(conn, f->channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
        return ds__seterr(err, errlen, DS_EAMQP,
                          "channel closed by the broker: %u %.*s",
                          c->reply_code, (int)c->reply_text.len,
                          (const char *)c->reply_text.bytes);
    }
    case AMQP_CONNECTION_CLOSE_METHOD: {
        const amqp_connection_close_t *c = f->payload.method.decoded;
        amqp_connection_close_ok_t ok = {0};
        amqp_send_method(conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
        return ds__seterr(err, errlen, DS_ECONNECT,
                          "connection closed by the broker: %u %.*s",
                          c->reply_code, (int)c->reply_text.len,
                          (const char *)c->reply_text.bytes);
    }
    default:
        DS_LOG(in->lg, DS_LOG_DEBUG, "ignoring AMQP method 0x%08x",
               (unsigned)f->payload.method.id);
        return 0;
    }
}

static int handle_frame(dsc_inbox *in, const amqp_frame_t *f, char *err,
                        size_t errlen)
{
    dsc_message *m = in->partial;

    switch (f->frame_type) {
    case AMQP_FRAME_METHOD:
        return handle_method(in, f, err, errlen);
    case AMQP_FRAME_HEADER: {
        uint64_t size = f->payload.properties.body_size;
        if (in->skip_header) {
            in->skip_header = false;
            in->skip_body = (size_t)size;
            return 0;
        }
        if (!m || m->body.bytes || size > SIZE_MAX / 2)
            return protocol_error("content header", err, errlen);
        if (copy_props(m, f->payload.properties.decoded))
            return ds__seterr(err, errlen, DS_ENOMEM, "inbox: out of memory");
        /* One byte more, so an empty body still owns a buffer. */
        m->body.bytes = malloc((size_t)size + 1);
        if (!m->body.bytes)
            return ds__seterr(err, errlen, DS_ENOMEM,
                              "inbox: out of memory for a %llu-byte message",
                              (unsigned long long)size);
        m->body.len = (size_t)size;
        if (size == 0)
            complete(in);
        return 0;
    }
    case AMQP_FRAME_BODY: {
        amqp_bytes_t frag = f->payload.body_fragment;
        if (in->skip_body) {
            in->skip_body -=
                frag.len < in->skip_body ? frag.len : in->skip_body;
            return 0;
        }
        if (!m || !m->body.bytes || in->body_got + frag.len > m->body.len)
            return protocol_error("content body", err, errlen);
        memcpy((char *)m->body.bytes + in->body_got, frag.bytes, frag.len);
        in->body_got += frag.len;
        if (in->body_got == m->body.len)
            complete(in);
        return 0;
    }
    default:
        return 0;
    }
}

/* Reads and handles at most one frame, waiting up to timeout_ms. *got
 * says whether one came. */
static int read_frame(dsc_inbox *in, int64_t timeout_ms, bool *got, char *err,
                      size_t errlen)
{
    amqp_frame_t f;
    struct timeval tv;

    *got = false;
    if (!in->amqp.conn)
        return ds__seterr(err, errlen, DS_ECONNECT,
                          "not connected to the broker");
    if (timeout_ms < 0)
        timeout_ms = 0;
    tv.tv_sec = (time_t)(timeout_ms / 1000);
    tv.tv_usec = (suseconds_t)(timeout_ms % 1000) * 1000;
    int st = amqp_simple_wait_frame_noblock(in->amqp.conn, &f, &tv);
    if (st == AMQP_STATUS_TIMEOUT)
        return 0;
    if (st != AMQP_STATUS_OK)
        return ds__amqp_status_error(st, "broker connection", err, errlen);
    *got = true;
    int rc = handle_frame(in, &f, err, errlen);
    /* Everything the frame held is copied: let rabbitmq-c reuse its memory
     * (it keeps it while frames are queued). */
    amqp_maybe_release_buffers(in->amqp.conn);
    return rc;
}

int dsc_inbox_pump(dsc_inbox *in, size_t want, int timeout_ms, char *err,
                   size_t errlen)
{
    int64_t deadline = now_ms() + timeout_ms;
    bool got;

    while (in->count < want) {
        int64_t left = deadline - now_ms();
        int rc = read_frame(in, left, &got, err, errlen);
        if (rc)
            return rc;
        if (!got && left <= 0)
            break;
    }
    return 0;
}

dsc_message *dsc_inbox_take(dsc_inbox *in)
{
    dsc_message *m = in->head;
    if (!m)
        return NULL;
    in->head = m->next;
    if (!in->head)
        in->tail = NULL;
    in->count--;
    m->next = NULL;
    return m;
}

int dsc_inbox_ack(dsc_inbox *in, uint64_t gen, uint64_t tag, char *err,
                  size_t errlen)
{
    if (gen != in->gen || !in->amqp.conn)
        return 0;
    int st = amqp_basic_ack(in->amqp.conn, DS_AMQP_CHANNEL, tag, 1);
    if (st != AMQP_STATUS_OK)
        return ds__amqp_status_error(st, "basic.ack", err, errlen);
    return 0;
}

static void set_entry(amqp_table_entry_t *e, const char *key, const char *val)
{
    e->key = amqp_cstring_bytes(key);
    e->value.kind = AMQP_FIELD_KIND_UTF8;
    e->value.value.bytes = amqp_cstring_bytes(val);
}

static int publish_dead(dsc_inbox *in, const dsc_message *m, const char *reason,
                        char *err, size_t errlen)
{
    amqp_basic_properties_t props = m->props;
    int old = (m->props._flags & AMQP_BASIC_HEADERS_FLAG)
                  ? m->props.headers.num_entries
                  : 0;
    amqp_table_entry_t *entries = malloc(((size_t)old + 2) * sizeof *entries);
    int n = 0;

    if (!entries)
        return ds__seterr(err, errlen, DS_ENOMEM, "inbox: out of memory");
    /* Earlier reasons (a replayed dead letter) are replaced, not repeated. */
    for (int i = 0; i < old; i++) {
        const amqp_table_entry_t *e = &m->props.headers.entries[i];
        if ((e->key.len == 16 &&
             memcmp(e->key.bytes, "x-datasync-error", 16) == 0) ||
            (e->key.len == 15 &&
             memcmp(e->key.bytes, "x-datasync-node", 15) == 0))
            continue;
        entries[n++] = *e;
    }
    set_entry(&entries[n++], "x-datasync-error", reason);
    set_entry(&entries[n++], "x-datasync-node", in->node);
    props.headers.num_entries = n;
    props.headers.entries = entries;
    props._flags |= AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
    props._flags &=
        ~(amqp_flags_t)(AMQP_BASIC_USER_ID_FLAG | AMQP_BASIC_EXPIRATION_FLAG);
    props.delivery_mode = AMQP_DELIVERY_PERSISTENT;

    int st = amqp_basic_publish(in->amqp.conn, DS_AMQP_CHANNEL,
                                ds__amqp_str(in->dead_exchange),
                                ds__amqp_str(in->queue), 1 /* mandatory */,
                                0 /* immediate */, &props, m->body);
    free(entries);
    if (st != AMQP_STATUS_OK)
        return ds__amqp_status_error(st, "dead-letter publish", err, errlen);
    if (ds__confirms_add(&in->dead, NULL, NULL, 0) == 0)
        return ds__seterr(err, errlen, DS_ENOMEM, "inbox: out of memory");
    return 0;
}

int dsc_inbox_dead_letter(dsc_inbox *in, dsc_message *const *msgs,
                          const char *const *reasons, size_t n, int timeout_ms,
                          char *err, size_t errlen)
{
    int64_t deadline = now_ms() + timeout_ms;
    int rc;

    if (n == 0)
        return 0;
    if (!in->amqp.conn)
        return ds__seterr(err, errlen, DS_ECONNECT,
                          "not connected to the broker");
    /* Late answers of an earlier call that gave up are ignored. */
    ds__confirms_fail(&in->dead, NULL, NULL);
    in->dead_acked = in->dead_nacked = in->dead_unroutable = 0;
    for (size_t i = 0; i < n; i++) {
        rc = publish_dead(in, msgs[i], reasons[i], err, errlen);
        if (rc)
            goto out;
    }
    for (;;) {
        size_t acked = in->dead_acked + in->dead_unroutable;

        if (in->dead_nacked > 0) {
            rc = ds__seterr(err, errlen, DS_ENACK,
                            "the broker refused a dead letter (nack)");
            goto out;
        }
        if (acked == n) {
            rc = in->dead_unroutable > 0
                     ? ds__seterr(err, errlen, DS_EUNROUTABLE,
                                  "dead letter unroutable: no queue bound "
                                  "to %s with key %s",
                                  in->dead_exchange, in->queue)
                     : 0;
            goto out;
        }
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            rc = ds__seterr(err, errlen, DS_ETIMEOUT,
                            "no confirm for %zu dead letter(s) in %d ms",
                            n - acked, timeout_ms);
            goto out;
        }
        bool got;
        rc = read_frame(in, left, &got, err, errlen);
        if (rc)
            goto out;
    }
out:
    ds__confirms_fail(&in->dead, NULL, NULL);
    return rc;
}

long dsc_inbox_queue_depth(dsc_inbox *in, char *err, size_t errlen)
{
    uint32_t messages;
    int rc = queue_counts(in, &messages, NULL, err, errlen);
    return rc ? rc : (long)messages;
}
