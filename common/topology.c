/* topology.c: declares datasync's exchanges, per-node queues and the archive stream, the names users and tools rely on. */
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "topology.h"

void ds__topology_dead_exchange(const ds_config *cfg, char *out, size_t len)
{
    snprintf(out, len, "%s.dead", cfg->amqp_exchange);
}

void ds__topology_node_queue(const char *node, char *out, size_t len)
{
    snprintf(out, len, "datasync.%s", node);
}

void ds__topology_dead_queue(const char *node, char *out, size_t len)
{
    snprintf(out, len, "datasync.%s.dead", node);
}

void ds__topology_archive_queue(const ds_config *cfg, char *out, size_t len)
{
    snprintf(out, len, "%s.archive", cfg->amqp_exchange);
}

void ds__topology_replay_key(const ds_config *cfg, char *out, size_t len)
{
    snprintf(out, len, "%s.replay", cfg->amqp_routing_key);
}

static int declare_exchange(ds_amqp *a, const char *name, const char *type,
                            char *err, size_t errlen)
{
    char what[320];

    amqp_exchange_declare(a->conn, DS_AMQP_CHANNEL, ds__amqp_str(name),
                          ds__amqp_str(type), 0 /* passive */, 1 /* durable */,
                          0 /* auto_delete */, 0 /* internal */,
                          amqp_empty_table);
    snprintf(what, sizeof what, "exchange.declare %s", name);
    return ds__amqp_reply_error(amqp_get_rpc_reply(a->conn), what, err, errlen);
}

int ds__topology_declare_exchanges(ds_amqp *a, const ds_config *cfg, char *err,
                                   size_t errlen)
{
    char dead[300];
    int rc;

    rc = declare_exchange(a, cfg->amqp_exchange, "topic", err, errlen);
    if (rc < 0)
        return rc;
    ds__topology_dead_exchange(cfg, dead, sizeof dead);
    return declare_exchange(a, dead, "direct", err, errlen);
}

/* A 406 on queue.declare means the queue exists with other arguments: say
 * which, since the broker's text alone reads like a protocol fault.
 * expected describes the queue datasync wants; hint says what to change. */
static int queue_declare_error(amqp_rpc_reply_t r, const char *queue,
                               const char *expected, const char *hint,
                               char *err, size_t errlen)
{
    char what[320];

    snprintf(what, sizeof what, "queue.declare %s", queue);
    if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
        r.reply.id == AMQP_CHANNEL_CLOSE_METHOD &&
        ((amqp_channel_close_t *)r.reply.decoded)->reply_code == 406) {
        return ds__seterr(err, errlen, DS_EAMQP,
                          "queue %s already exists with other arguments than "
                          "%s; %s",
                          queue, expected, hint);
    }
    return ds__amqp_reply_error(r, what, err, errlen);
}

static bool is_precondition_failed(amqp_rpc_reply_t r)
{
    return r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
           r.reply.id == AMQP_CHANNEL_CLOSE_METHOD &&
           ((amqp_channel_close_t *)r.reply.decoded)->reply_code == 406;
}

/* args' last entry, when sized, is x-quorum-initial-group-size. */
static int declare_queue(ds_amqp *a, const char *queue, amqp_table_t args,
                         bool sized, const char *expected, const char *hint,
                         char *err, size_t errlen)
{
    amqp_channel_close_ok_t close_ok = {0};
    amqp_rpc_reply_t r;

    amqp_queue_declare(a->conn, DS_AMQP_CHANNEL, ds__amqp_str(queue),
                       0 /* passive */, 1 /* durable */, 0 /* exclusive */,
                       0 /* auto_delete */, args);
    r = amqp_get_rpc_reply(a->conn);
    if (!sized || !is_precondition_failed(r))
        return queue_declare_error(r, queue, expected, hint, err, errlen);
    /* RabbitMQ compares the group size of an existing queue too, and the
     * queues of a release before datasync set one have none: declare as
     * they were (the size only matters at creation). The 406 closed the
     * channel, with nothing else in flight on it: acknowledge, reopen. */
    amqp_send_method(a->conn, DS_AMQP_CHANNEL, AMQP_CHANNEL_CLOSE_OK_METHOD,
                     &close_ok);
    amqp_channel_open(a->conn, DS_AMQP_CHANNEL);
    r = amqp_get_rpc_reply(a->conn);
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
        return ds__amqp_reply_error(r, "channel.open", err, errlen);
    args.num_entries--;
    return declare_queue(a, queue, args, false, expected, hint, err, errlen);
}

static void set_str(amqp_table_entry_t *e, const char *key, const char *value)
{
    e->key = amqp_cstring_bytes(key);
    e->value.kind = AMQP_FIELD_KIND_UTF8;
    e->value.value.bytes = amqp_cstring_bytes(value);
}

static int bind_queue(ds_amqp *a, const char *queue, const char *exchange,
                      const char *key, char *err, size_t errlen)
{
    char what[600];

    amqp_queue_bind(a->conn, DS_AMQP_CHANNEL, ds__amqp_str(queue),
                    ds__amqp_str(exchange), ds__amqp_str(key),
                    amqp_empty_table);
    snprintf(what, sizeof what, "queue.bind %s to %s", queue, exchange);
    return ds__amqp_reply_error(amqp_get_rpc_reply(a->conn), what, err, errlen);
}

static int count_word(const char *word, size_t len, void *ctx)
{
    (void)word;
    (void)len;
    ++*(int *)ctx;
    return 0;
}

int ds__topology_quorum_size(const ds_config *cfg)
{
    int n = 0;

    if (cfg->amqp_queue_type != DS_QUEUE_QUORUM)
        return 0;
    ds__config_each_word(cfg->amqp_url, count_word, &n);
    /* amqp.url lists the cluster's nodes. An odd number of replicas: a
     * fourth survives no more failures than three (a majority of 4 is 3),
     * and seven is plenty; beyond it each write waits for more disks. Under
     * three the broker's default (every node) is as good as any. */
    if (n < 3)
        return 0;
    if (n > 7)
        n = 7;
    return n % 2 ? n : n - 1;
}

int ds__topology_declare_node(ds_amqp *a, const ds_config *cfg,
                              const char *node, char *err, size_t errlen)
{
    char queue[128], dead_queue[128], dead_exchange[300], replay_key[300];
    char expected[512], hint[300];
    const char *type =
        cfg->amqp_queue_type == DS_QUEUE_QUORUM ? "quorum" : "classic";
    amqp_table_entry_t entries[4], dead_entries[2];
    amqp_table_t args;
    int rc, n = 0, size = ds__topology_quorum_size(cfg);

    ds__topology_node_queue(node, queue, sizeof queue);
    ds__topology_dead_queue(node, dead_queue, sizeof dead_queue);
    ds__topology_dead_exchange(cfg, dead_exchange, sizeof dead_exchange);
    ds__topology_replay_key(cfg, replay_key, sizeof replay_key);
    snprintf(expected, sizeof expected,
             "a %s queue dead-lettering to %s (amqp.queue_type = %s)", type,
             dead_exchange, type);
    snprintf(hint, sizeof hint,
             "delete it or set amqp.queue_type to its type%s",
             cfg->amqp_queue_type == DS_QUEUE_QUORUM
                 ? " (or it was declared with another number of "
                   "replicas: give amqp.url as many brokers as then)"
                 : "");

    /* Both queues carry the type, so a cluster's dead letters are as safe as
     * its changes. Only the node queue dead-letters: whatever the broker
     * itself rejects lands where the consumer's own dead letters do. */
    set_str(&entries[n++], "x-queue-type", type);
    set_str(&entries[n++], "x-dead-letter-exchange", dead_exchange);
    set_str(&entries[n++], "x-dead-letter-routing-key", queue);
    if (size > 0) {
        entries[n].key = amqp_cstring_bytes("x-quorum-initial-group-size");
        entries[n].value.kind = AMQP_FIELD_KIND_I32;
        entries[n++].value.value.i32 = size;
    }

    /* The dead-letter queue: the type and the size, no dead-lettering. */
    dead_entries[0] = entries[0];
    dead_entries[1] = entries[n - 1];
    args.num_entries = size > 0 ? 2 : 1;
    args.entries = dead_entries;
    rc = declare_queue(a, dead_queue, args, size > 0, expected, hint, err,
                       errlen);
    if (rc == 0)
        rc = bind_queue(a, dead_queue, dead_exchange, queue, err, errlen);
    if (rc < 0)
        return rc;

    /* Two bindings: the changes, and replays from the archive sent to every
     * node queue but not to the archive itself (replay --all-nodes). */
    args.num_entries = n;
    args.entries = entries;
    rc = declare_queue(a, queue, args, size > 0, expected, hint, err, errlen);
    if (rc == 0)
        rc = bind_queue(a, queue, cfg->amqp_exchange, cfg->amqp_routing_key,
                        err, errlen);
    if (rc == 0)
        rc = bind_queue(a, queue, cfg->amqp_exchange, replay_key, err, errlen);
    return rc;
}

int ds__topology_declare_archive(ds_amqp *a, const ds_config *cfg, char *err,
                                 size_t errlen)
{
    char stream[300], expected[300];
    amqp_table_entry_t entries[3];
    amqp_table_t args = {2, entries};
    int rc;

    ds__topology_archive_queue(cfg, stream, sizeof stream);
    set_str(&entries[0], "x-queue-type", "stream");
    set_str(&entries[1], "x-max-age", cfg->archive_max_age);
    if (cfg->archive_max_bytes > 0) {
        entries[2].key = amqp_cstring_bytes("x-max-length-bytes");
        entries[2].value.kind = AMQP_FIELD_KIND_I64;
        entries[2].value.value.i64 = cfg->archive_max_bytes;
        args.num_entries = 3;
    }
    snprintf(expected, sizeof expected,
             "a stream with archive.max_age = %s and archive.max_bytes = %ld",
             cfg->archive_max_age, cfg->archive_max_bytes);
    rc = declare_queue(a, stream, args, false, expected,
                       "a stream's retention cannot change once declared: "
                       "set the keys back, or change it with a policy "
                       "(rabbitmqctl set_policy)",
                       err, errlen);
    if (rc == 0)
        rc = bind_queue(a, stream, cfg->amqp_exchange, cfg->amqp_routing_key,
                        err, errlen);
    return rc;
}
