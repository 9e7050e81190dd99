/* broker.c: the CLI's own AMQP session: connect by amqp.url, inspect and purge queues, basic.get without removing. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "log.h"

/* A connection's one warning (amqp.verify_peer = false) as the CLI's own. */
static void on_log(void *userdata, ds_log_level level, const char *message)
{
    if (level >= DS_LOG_WARN)
        cli_warn(userdata, "%s", message);
}

int cli_broker_open(cli_broker *b, const cli_ctx *ctx, char *err, size_t errlen)
{
    ds_logger lg = {DS_LOG_WARN, on_log, (void *)ctx};
    char why[DS_ERRMSG_SIZE];
    int rc;

    memset(b, 0, sizeof *b);
    b->ctx = ctx;
    b->amqp.tls = &ctx->cfg;
    b->amqp.lg = &lg;
    cli_redact_urls(ctx->cfg.amqp_url, b->urls, sizeof b->urls);
    /* The confirm timeout bounds every wait of the CLI too: connect, login,
     * RPCs and confirms. */
    rc =
        ds__amqp_connect(&b->amqp, ctx->cfg.amqp_url, ctx->cfg.amqp_heartbeat,
                         ctx->cfg.producer_confirm_timeout_ms, why, sizeof why);
    b->amqp.lg = NULL; /* lg ends here: the CLI connects once */
    if (rc < 0)
        return ds__seterr(err, errlen, rc == DS_EINVAL ? DS_ECONFIG : rc,
                          "cannot reach the broker (amqp.url = %s): %s",
                          b->urls, why);
    return 0;
}

void cli_broker_close(cli_broker *b)
{
    /* connection.close alone: it closes both channels, and the messages
     * got and not acked go back to their queues without an explicit
     * reject (which a quorum queue would count against a delivery limit). */
    if (!b->amqp.conn)
        return;
    amqp_connection_close(b->amqp.conn, AMQP_REPLY_SUCCESS);
    ds__amqp_drop(&b->amqp);
    b->pub_open = false;
}

static int not_connected(cli_broker *b, char *err, size_t errlen)
{
    return ds__seterr(err, errlen, DS_ECONNECT,
                      "the connection to the broker (%s) was lost", b->urls);
}

/* After a failed RPC on channel 1: a 404 closed only the channel, which is
 * confirmed and reopened; anything else ends the connection. */
static void recover(cli_broker *b, amqp_rpc_reply_t r)
{
    amqp_channel_close_ok_t close_ok = {0};

    if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
        r.reply.id == AMQP_CHANNEL_CLOSE_METHOD &&
        ((amqp_channel_close_t *)r.reply.decoded)->reply_code ==
            AMQP_NOT_FOUND &&
        amqp_send_method(b->amqp.conn, DS_AMQP_CHANNEL,
                         AMQP_CHANNEL_CLOSE_OK_METHOD,
                         &close_ok) == AMQP_STATUS_OK) {
        amqp_channel_open(b->amqp.conn, DS_AMQP_CHANNEL);
        if (amqp_get_rpc_reply(b->amqp.conn).reply_type ==
            AMQP_RESPONSE_NORMAL) {
            amqp_maybe_release_buffers(b->amqp.conn);
            return;
        }
    }
    ds__amqp_drop(&b->amqp);
    b->pub_open = false;
}

int cli_queue_inspect(cli_broker *b, const char *queue, uint32_t *ready,
                      uint32_t *consumers, char *err, size_t errlen)
{
    amqp_queue_declare_ok_t *ok;
    amqp_rpc_reply_t r;
    char what[300];
    int rc;

    if (!b->amqp.conn)
        return not_connected(b, err, errlen);
    ok = amqp_queue_declare(b->amqp.conn, DS_AMQP_CHANNEL, ds__amqp_str(queue),
                            1 /* passive */, 0, 0, 0, amqp_empty_table);
    if (ok) {
        if (ready)
            *ready = ok->message_count;
        if (consumers)
            *consumers = ok->consumer_count;
        amqp_maybe_release_buffers_on_channel(b->amqp.conn, DS_AMQP_CHANNEL);
        return 0;
    }
    r = amqp_get_rpc_reply(b->amqp.conn);
    snprintf(what, sizeof what, "queue.declare (passive) %s", queue);
    rc = ds__amqp_reply_error(r, what, err, errlen);
    recover(b, r);
    if (rc == DS_ENOTFOUND)
        return ds__seterr(err, errlen, rc,
                          "queue %s does not exist on the broker (%s): run "
                          "datasync setup",
                          queue, b->urls);
    return rc;
}

int cli_queue_purge(cli_broker *b, const char *queue, uint32_t *purged,
                    char *err, size_t errlen)
{
    amqp_queue_purge_ok_t *ok;
    amqp_rpc_reply_t r;
    char what[300];
    int rc;

    if (!b->amqp.conn)
        return not_connected(b, err, errlen);
    ok = amqp_queue_purge(b->amqp.conn, DS_AMQP_CHANNEL, ds__amqp_str(queue));
    if (ok) {
        *purged = ok->message_count;
        return 0;
    }
    r = amqp_get_rpc_reply(b->amqp.conn);
    snprintf(what, sizeof what, "queue.purge %s", queue);
    rc = ds__amqp_reply_error(r, what, err, errlen);
    recover(b, r);
    return rc;
}

int cli_get(cli_broker *b, const char *queue, cli_msg *m, bool *got, char *err,
            size_t errlen)
{
    amqp_rpc_reply_t r;
    char what[300];
    int rc;

    memset(m, 0, sizeof *m);
    *got = false;
    if (!b->amqp.conn)
        return not_connected(b, err, errlen);
    snprintf(what, sizeof what, "basic.get %s", queue);
    r = amqp_basic_get(b->amqp.conn, DS_AMQP_CHANNEL, ds__amqp_str(queue),
                       0 /* no_ack */);
    rc = ds__amqp_reply_error(r, what, err, errlen);
    if (rc < 0) {
        recover(b, r);
        return rc;
    }
    if (r.reply.id != AMQP_BASIC_GET_OK_METHOD) {
        amqp_maybe_release_buffers_on_channel(b->amqp.conn, DS_AMQP_CHANNEL);
        return 0; /* basic.get-empty */
    }
    m->tag = ((amqp_basic_get_ok_t *)r.reply.decoded)->delivery_tag;
    m->redelivered = ((amqp_basic_get_ok_t *)r.reply.decoded)->redelivered;
    r = amqp_read_message(b->amqp.conn, DS_AMQP_CHANNEL, &m->msg, 0);
    rc = ds__amqp_reply_error(r, what, err, errlen);
    if (rc < 0) {
        /* Half a message on the wire: the connection is unusable. */
        ds__amqp_drop(&b->amqp);
        b->pub_open = false;
        return rc;
    }
    amqp_maybe_release_buffers_on_channel(b->amqp.conn, DS_AMQP_CHANNEL);
    *got = true;
    return 0;
}

void cli_msg_free(cli_msg *m)
{
    if (m->tag)
        amqp_destroy_message(&m->msg);
    memset(m, 0, sizeof *m);
}

void cli_msg_header(const cli_msg *m, const char *name, char *out, size_t len)
{
    const amqp_basic_properties_t *p = &m->msg.properties;
    size_t nlen = strlen(name);

    out[0] = '\0';
    if (!(p->_flags & AMQP_BASIC_HEADERS_FLAG))
        return;
    for (int i = 0; i < p->headers.num_entries; i++) {
        const amqp_table_entry_t *e = &p->headers.entries[i];
        const amqp_field_value_t *v = &e->value;

        if (e->key.len != nlen || memcmp(e->key.bytes, name, nlen) != 0)
            continue;
        switch (v->kind) {
        case AMQP_FIELD_KIND_UTF8:
        case AMQP_FIELD_KIND_BYTES:
            snprintf(out, len, "%.*s", (int)v->value.bytes.len,
                     (const char *)v->value.bytes.bytes);
            break;
        case AMQP_FIELD_KIND_TIMESTAMP:
            cli_format_time(v->value.u64, out, len);
            break;
        case AMQP_FIELD_KIND_I8:
            snprintf(out, len, "%d", v->value.i8);
            break;
        case AMQP_FIELD_KIND_U8:
            snprintf(out, len, "%u", v->value.u8);
            break;
        case AMQP_FIELD_KIND_I16:
            snprintf(out, len, "%d", v->value.i16);
            break;
        case AMQP_FIELD_KIND_U16:
            snprintf(out, len, "%u", v->value.u16);
            break;
        case AMQP_FIELD_KIND_I32:
            snprintf(out, len, "%" PRId32, v->value.i32);
            break;
        case AMQP_FIELD_KIND_U32:
            snprintf(out, len, "%" PRIu32, v->value.u32);
            break;
        case AMQP_FIELD_KIND_I64:
            snprintf(out, len, "%" PRId64, v->value.i64);
            break;
        case AMQP_FIELD_KIND_U64:
            snprintf(out, len, "%" PRIu64, v->value.u64);
            break;
        default:
            break;
        }
        return;
    }
}
