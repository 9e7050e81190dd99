/* archive.c: reads the archive stream from a point in time up to an end marker that this reader appends first. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "ids.h"
#include "topology.h"

/* Producers stamp changes with their own clock, the stream indexes chunks by
 * the broker's: start this much earlier and let the caller filter by hlc. */
#define CLOCK_SLACK_S 300
/* Nothing delivered for this long before the marker: the broker is stuck. */
#define READ_TIMEOUT_S 30

/* The marker's fate is read from the counters once it is settled. */
static void marker_settled(void *ctx, uint64_t cookie, const char *id,
                           int result)
{
    (void)ctx, (void)cookie, (void)id, (void)result;
}

int cli_marker_send(cli_broker *b, const char *queue, const char *why,
                    char id[37], char *err, size_t errlen)
{
    amqp_basic_properties_t props;
    cli_pub pub;
    char body[160], ts[40];
    int rc;

    if (ds__uuid7(id) < 0)
        return ds__seterr(err, errlen, DS_EIO, "cannot make a marker id");
    ds__rfc3339_ms(ds__now_ms(), ts);
    snprintf(body, sizeof body, "{\"marker\":\"%s\",\"ts\":\"%s\"}", why, ts);
    ds__amqp_marker_props(&props, id);
    rc = cli_pub_open(&pub, b, 1, b->ctx->cfg.producer_confirm_timeout_ms,
                      marker_settled, NULL, err, errlen);
    if (rc < 0)
        return rc;
    rc = cli_pub_send(&pub, "", queue, &props, amqp_cstring_bytes(body), 0, err,
                      errlen);
    if (rc == 0)
        rc = cli_pub_finish(&pub, err, errlen);
    if (rc == 0 && pub.confirmed != 1)
        rc = ds__seterr(err, errlen, DS_EAMQP,
                        "the broker did not take a marker into %s", queue);
    cli_pub_close(&pub, rc < 0 ? rc : DS_ETIMEOUT);
    return rc;
}

static int start_consume(cli_archive *ar, int64_t since_ms, char *err,
                         size_t errlen)
{
    amqp_table_entry_t offset;
    amqp_connection_state_t conn = ar->b.amqp.conn;
    int64_t from_s = since_ms / 1000 - CLOCK_SLACK_S;

    /* Streams need a prefetch; acks only move the credit on. */
    amqp_basic_qos(conn, DS_AMQP_CHANNEL, 0, CLI_ARCHIVE_PREFETCH, 0);
    int rc = ds__amqp_reply_error(amqp_get_rpc_reply(conn), "basic.qos", err,
                                  errlen);
    if (rc < 0)
        return rc;
    offset.key = amqp_cstring_bytes("x-stream-offset");
    if (from_s <= 0) {
        offset.value.kind = AMQP_FIELD_KIND_UTF8;
        offset.value.value.bytes = amqp_cstring_bytes("first");
    } else {
        offset.value.kind = AMQP_FIELD_KIND_TIMESTAMP;
        offset.value.value.u64 = (uint64_t)from_s;
    }
    amqp_basic_consume(conn, DS_AMQP_CHANNEL, ds__amqp_str(ar->stream),
                       amqp_empty_bytes, 0 /* no_local */, 0 /* no_ack */,
                       0 /* exclusive */, (amqp_table_t){1, &offset});
    return ds__amqp_reply_error(amqp_get_rpc_reply(conn), "basic.consume", err,
                                errlen);
}

int cli_archive_open(cli_archive *ar, const cli_ctx *ctx, int64_t since_ms,
                     char *err, size_t errlen)
{
    int rc;

    memset(ar, 0, sizeof *ar);
    ds__topology_archive_queue(&ctx->cfg, ar->stream, sizeof ar->stream);
    rc = cli_broker_open(&ar->b, ctx, err, errlen);
    if (rc == 0)
        rc = cli_queue_inspect(&ar->b, ar->stream, NULL, NULL, err, errlen);
    if (rc == DS_ENOTFOUND)
        rc = ds__seterr(err, errlen, rc,
                        "the archive stream %s does not exist: run datasync "
                        "setup with archive.enabled = true (changes made "
                        "before it existed are not in it)",
                        ar->stream);
    /* Every change the broker confirmed before the marker lies before it. */
    if (rc == 0)
        rc = cli_marker_send(&ar->b, ar->stream, "end of a replay's read",
                             ar->marker, err, errlen);
    if (rc == 0)
        rc = start_consume(ar, since_ms, err, errlen);
    if (rc < 0)
        cli_archive_close(ar);
    return rc;
}

static void release(cli_archive *ar)
{
    if (ar->have) {
        amqp_destroy_envelope(&ar->env);
        ar->have = false;
    }
}

/* Acks in steps of half the prefetch, so credit flows without an ack per
 * message. */
static int ack_progress(cli_archive *ar, bool all, char *err, size_t errlen)
{
    if (ar->last_tag == 0 || (!all && ++ar->unacked < CLI_ARCHIVE_PREFETCH / 2))
        return 0;
    ar->unacked = 0;
    if (amqp_basic_ack(ar->b.amqp.conn, DS_AMQP_CHANNEL, ar->last_tag, 1) != 0)
        return ds__seterr(err, errlen, DS_EAMQP,
                          "basic.ack on the archive: connection lost");
    return 0;
}

int cli_archive_next(cli_archive *ar, amqp_bytes_t *body, char *err,
                     size_t errlen)
{
    for (;;) {
        struct timeval tv = {READ_TIMEOUT_S, 0};
        amqp_rpc_reply_t r;
        int rc;

        release(ar);
        amqp_maybe_release_buffers(ar->b.amqp.conn);
        r = amqp_consume_message(ar->b.amqp.conn, &ar->env, &tv, 0);
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
                r.library_error == AMQP_STATUS_TIMEOUT)
                return ds__seterr(err, errlen, DS_ETIMEOUT,
                                  "the archive %s sent nothing for %d s "
                                  "before reaching its end",
                                  ar->stream, READ_TIMEOUT_S);
            return ds__amqp_reply_error(r, "reading the archive", err, errlen);
        }
        ar->have = true;
        ar->read++;
        ar->last_tag = ar->env.delivery_tag;
        rc = ack_progress(ar, false, err, errlen);
        if (rc < 0)
            return rc;
        if (!ds__amqp_is_marker(&ar->env.message.properties)) {
            *body = ar->env.message.body;
            return 1;
        }
        ar->markers++;
        const amqp_bytes_t id = ar->env.message.properties.message_id;
        if (id.len == strlen(ar->marker) &&
            memcmp(id.bytes, ar->marker, id.len) == 0)
            return ack_progress(ar, true, err, errlen);
        /* Another reader's marker: not a change. */
    }
}

void cli_archive_close(cli_archive *ar)
{
    release(ar);
    cli_broker_close(&ar->b);
}
