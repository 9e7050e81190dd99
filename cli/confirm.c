/* confirm.c: publishing with a window of publisher confirms: acks, nacks and
 * returns read as they come. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ids.h"

/* rabbitmq-c 0.11 has no amqp_publisher_confirm_wait: the window is read
 * with amqp_simple_wait_frame_noblock, frame by frame. A basic.return comes
 * before the ack of the same message; it is matched by message_id. */

int cli_pub_open(cli_pub *p, cli_broker *b, size_t window, int timeout_ms,
                 cli_pub_done_fn done, void *done_ctx, char *err, size_t errlen)
{
    int rc;

    memset(p, 0, sizeof *p);
    p->b = b;
    p->done = done;
    p->done_ctx = done_ctx;
    p->timeout_ms = timeout_ms;
    p->window = window ? window : 1;
    ds__confirms_init(&p->sent);
    /* Room for the whole window now: a publish that went out is always
     * recorded. */
    if (ds__confirms_reserve(&p->sent, p->window) < 0)
        return ds__seterr(err, errlen, DS_ENOMEM, "out of memory");
    if (!b->amqp.conn)
        return ds__seterr(err, errlen, DS_ECONNECT,
                          "the connection to the broker (%s) was lost",
                          b->urls);
    amqp_channel_open(b->amqp.conn, CLI_PUB_CHANNEL);
    rc = ds__amqp_reply_error(amqp_get_rpc_reply(b->amqp.conn), "channel.open",
                              err, errlen);
    if (rc == 0) {
        amqp_confirm_select(b->amqp.conn, CLI_PUB_CHANNEL);
        rc = ds__amqp_reply_error(amqp_get_rpc_reply(b->amqp.conn),
                                  "confirm.select", err, errlen);
    }
    if (rc < 0) {
        ds__amqp_drop(&b->amqp);
        return rc;
    }
    b->pub_open = true;
    return 0;
}

/* How publishes settle: the pub, and the code of those left unanswered. */
typedef struct settle_ctx {
    cli_pub *p;
    int lost;
} settle_ctx;

/* One publish's verdict (ds_confirm_fn): counted, and told to done. */
static void settle(void *arg, ds_confirm *e)
{
    settle_ctx *cx = arg;
    cli_pub *p = cx->p;
    int result = ds__confirm_result(e, cx->lost);

    if (result == 0)
        p->confirmed++;
    else if (result == DS_ENACK)
        p->nacked++;
    else if (result == DS_EUNROUTABLE)
        p->unroutable++;
    else
        p->unanswered++;
    if (p->done)
        p->done(p->done_ctx, e->cookie, e->id, result);
}

static void on_confirm(cli_pub *p, uint64_t tag, bool multiple, bool ack)
{
    settle_ctx cx = {p, 0};

    ds__confirms_answer(&p->sent, tag, multiple, ack, settle, &cx);
    p->last_answer_ms = ds__mono_ms();
}

static int on_return(cli_pub *p, amqp_channel_t ch, char *err, size_t errlen)
{
    char id[64];
    int rc;

    rc = ds__amqp_read_return(p->b->amqp.conn, ch, id, sizeof id, err, errlen);
    if (rc < 0)
        return rc;
    /* The oldest unanswered publish with that id; without an id, or with
     * one we did not send, the oldest unanswered one (returns come in
     * publish order). */
    if (!id[0] || !ds__confirms_returned(&p->sent, id))
        ds__confirms_returned(&p->sent, NULL);
    return 0;
}

static int lost(cli_pub *p, int rc)
{
    ds__amqp_drop(&p->b->amqp);
    p->b->pub_open = false;
    return rc;
}

static int on_frame(cli_pub *p, const amqp_frame_t *f, char *err, size_t errlen)
{
    if (f->frame_type != AMQP_FRAME_METHOD)
        return 0;
    switch (f->payload.method.id) {
    case AMQP_BASIC_ACK_METHOD: {
        const amqp_basic_ack_t *a = f->payload.method.decoded;
        if (f->channel == CLI_PUB_CHANNEL)
            on_confirm(p, a->delivery_tag, a->multiple, true);
        return 0;
    }
    case AMQP_BASIC_NACK_METHOD: {
        const amqp_basic_nack_t *n = f->payload.method.decoded;
        if (f->channel == CLI_PUB_CHANNEL)
            on_confirm(p, n->delivery_tag, n->multiple, false);
        return 0;
    }
    case AMQP_BASIC_RETURN_METHOD:
        return on_return(p, f->channel, err, errlen);
    case AMQP_CHANNEL_CLOSE_METHOD: {
        const amqp_channel_close_t *c = f->payload.method.decoded;
        return ds__seterr(
            err, errlen, DS_EAMQP, "the broker (%s) closed channel %u: %u %.*s",
            p->b->urls, f->channel, c->reply_code, (int)c->reply_text.len,
            (const char *)c->reply_text.bytes);
    }
    case AMQP_CONNECTION_CLOSE_METHOD: {
        const amqp_connection_close_t *c = f->payload.method.decoded;
        return ds__seterr(err, errlen, DS_ECONNECT,
                          "the broker (%s) closed the connection: %u %.*s",
                          p->b->urls, c->reply_code, (int)c->reply_text.len,
                          (const char *)c->reply_text.bytes);
    }
    }
    return 0;
}

int cli_pub_pump(cli_pub *p, int wait_ms, char *err, size_t errlen)
{
    amqp_connection_state_t conn = p->b->amqp.conn;
    bool waited = false;

    if (!conn)
        return ds__seterr(err, errlen, DS_ECONNECT,
                          "the connection to the broker (%s) was lost",
                          p->b->urls);
    for (;;) {
        /* Wait once, for the first frame; then take only what is there. */
        int ms = waited ? 0 : wait_ms;
        struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
        amqp_frame_t f;
        int st, rc;

        waited = true;
        st = amqp_simple_wait_frame_noblock(conn, &f, &tv);
        if (st == AMQP_STATUS_TIMEOUT)
            break;
        if (st != AMQP_STATUS_OK) {
            char why[DS_ERRMSG_SIZE];
            rc = ds__amqp_status_error(st, "waiting for publisher confirms",
                                       why, sizeof why);
            return lost(p, ds__seterr(err, errlen, rc, "broker %s: %s",
                                      p->b->urls, why));
        }
        rc = on_frame(p, &f, err, errlen);
        if (rc < 0)
            return lost(p, rc);
        amqp_maybe_release_buffers_on_channel(conn, f.channel);
    }
    if (p->sent.unsettled > 0 &&
        ds__mono_ms() - p->last_answer_ms > (uint64_t)p->timeout_ms)
        return lost(p,
                    ds__seterr(err, errlen, DS_ETIMEOUT,
                               "the broker (%s) confirmed nothing for %d "
                               "ms (%zu publishes unanswered)",
                               p->b->urls, p->timeout_ms, p->sent.unsettled));
    return 0;
}

int cli_pub_send(cli_pub *p, const char *exchange, const char *routing_key,
                 const amqp_basic_properties_t *props, amqp_bytes_t body,
                 uint64_t cookie, char *err, size_t errlen)
{
    char id[64];
    int st, rc;

    while (p->sent.count >= p->window) {
        rc = cli_pub_pump(p, 100, err, errlen);
        if (rc < 0)
            return rc;
    }
    if (!p->b->amqp.conn)
        return ds__seterr(err, errlen, DS_ECONNECT,
                          "the connection to the broker (%s) was lost",
                          p->b->urls);
    st = amqp_basic_publish(p->b->amqp.conn, CLI_PUB_CHANNEL,
                            ds__amqp_str(exchange), ds__amqp_str(routing_key),
                            1 /* mandatory */, 0 /* immediate */, props, body);
    if (st != AMQP_STATUS_OK) {
        char why[DS_ERRMSG_SIZE];
        rc = ds__amqp_status_error(st, "basic.publish", why, sizeof why);
        return lost(
            p, ds__seterr(err, errlen, rc, "broker %s: %s", p->b->urls, why));
    }
    if (p->sent.unsettled == 0)
        p->last_answer_ms = ds__mono_ms();
    ds__amqp_copy_str((props->_flags & AMQP_BASIC_MESSAGE_ID_FLAG)
                          ? props->message_id
                          : amqp_empty_bytes,
                      id, sizeof id);
    /* Cannot fail: the window's room was reserved at open. */
    ds__confirms_add(&p->sent, id, NULL, cookie);
    /* Take whatever confirms have come, without waiting. */
    return cli_pub_pump(p, 0, err, errlen);
}

int cli_pub_finish(cli_pub *p, char *err, size_t errlen)
{
    while (p->sent.unsettled > 0) {
        int rc = cli_pub_pump(p, 200, err, errlen);
        if (rc < 0) {
            cli_pub_close(p, rc);
            return rc;
        }
    }
    return 0;
}

void cli_pub_close(cli_pub *p, int result)
{
    settle_ctx cx = {p, result ? result : DS_ETIMEOUT};

    ds__confirms_fail(&p->sent, settle, &cx);
    ds__confirms_free(&p->sent);
}

int cli_pub_pump_until(cli_pub *p, uint64_t slot, char *err, size_t errlen)
{
    uint64_t now;

    while ((now = ds__mono_ms()) < slot && !cli_interrupted()) {
        int rc = cli_pub_pump(p, (int)(slot - now), err, errlen);
        if (rc < 0)
            return rc;
    }
    return 0;
}
