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

/* Acknowledges the 406 that closed the channel (nothing else was in flight
 * on it) and opens it again. */
static int reopen_channel(ds_amqp *a, char *err, size_t errlen)
{
    amqp_channel_close_ok_t close_ok = {0};

    amqp_send_method(a->conn, DS_AMQP_CHANNEL, AMQP_CHANNEL_CLOSE_OK_METHOD,
                     &close_ok);
    amqp_channel_open(a->conn, DS_AMQP_CHANNEL);
    return ds__amqp_reply_error(amqp_get_rpc_reply(a->conn), "channel.open",
                                err, errlen);
}

/*
 * Declares queue with args, whose last noptional entries are arguments a
 * queue of an earlier release may lack (x-single-active-consumer, the
 * quorum group size). RabbitMQ compares them with an existing queue's and
 * refuses a difference (406), yet they only matter at creation: on a 406
 * the declaration is tried again without some of them, all subsets from
 * the fullest down, until one matches. *kept (may be NULL) gets the mask of
 * the optional entries the queue has (bit i: optional entry i).
 */
static int declare_queue(ds_amqp *a, const char *queue, amqp_table_t args,
                         int noptional, unsigned *kept, const char *expected,
                         const char *hint, char *err, size_t errlen)
{
    const int nfixed = args.num_entries - noptional;
    amqp_table_entry_t entries[8];
    amqp_rpc_reply_t r;

    for (unsigned mask = (1u << noptional) - 1;; mask--) {
        int n = nfixed;
        memcpy(entries, args.entries, (size_t)nfixed * sizeof *entries);
        for (int i = 0; i < noptional; i++)
            if (mask & (1u << i))
                entries[n++] = args.entries[nfixed + i];
        amqp_queue_declare(a->conn, DS_AMQP_CHANNEL, ds__amqp_str(queue),
                           0 /* passive */, 1 /* durable */, 0 /* exclusive */,
                           0 /* auto_delete */, (amqp_table_t){n, entries});
        r = amqp_get_rpc_reply(a->conn);
        if (kept)
            *kept = mask;
        if (mask == 0 || !is_precondition_failed(r))
            return queue_declare_error(r, queue, expected, hint, err, errlen);
        int rc = reopen_channel(a, err, errlen);
        if (rc)
            return rc;
    }
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

/* Sets e to a boolean or a 32-bit integer argument. */
static void set_bool(amqp_table_entry_t *e, const char *key, bool value)
{
    e->key = amqp_cstring_bytes(key);
    e->value.kind = AMQP_FIELD_KIND_BOOLEAN;
    e->value.value.boolean = value;
}

static void set_i32(amqp_table_entry_t *e, const char *key, int32_t value)
{
    e->key = amqp_cstring_bytes(key);
    e->value.kind = AMQP_FIELD_KIND_I32;
    e->value.value.i32 = value;
}

int ds__topology_declare_node(ds_amqp *a, const ds_config *cfg,
                              const char *node, bool *single_active, char *err,
                              size_t errlen)
{
    char queue[128], dead_queue[128], dead_exchange[300], replay_key[300];
    char expected[512], hint[300];
    const char *type =
        cfg->amqp_queue_type == DS_QUEUE_QUORUM ? "quorum" : "classic";
    amqp_table_entry_t entries[5], dead_entries[2];
    int rc, n = 0, size = ds__topology_quorum_size(cfg);
    unsigned kept = 0;

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
     * its changes; the group size too, optional (declare_queue). */
    set_str(&dead_entries[0], "x-queue-type", type);
    set_i32(&dead_entries[1], "x-quorum-initial-group-size", size);
    rc = declare_queue(a, dead_queue,
                       (amqp_table_t){size > 0 ? 2 : 1, dead_entries}, size > 0,
                       NULL, expected, hint, err, errlen);
    if (rc == 0)
        rc = bind_queue(a, dead_queue, dead_exchange, queue, err, errlen);
    if (rc < 0)
        return rc;

    /* Only the node queue dead-letters: whatever the broker itself rejects
     * lands where the consumer's own dead letters do. A single active
     * consumer: a second datasync-consumer of the node (a standby, a copy
     * started by mistake) waits, visible in status, and takes over when the
     * first leaves, instead of taking every other batch; quorum queues
     * ignore the exclusive consumers that did this before. */
    set_str(&entries[n++], "x-queue-type", type);
    set_str(&entries[n++], "x-dead-letter-exchange", dead_exchange);
    set_str(&entries[n++], "x-dead-letter-routing-key", queue);
    set_bool(&entries[n++], "x-single-active-consumer", true);
    if (size > 0)
        set_i32(&entries[n++], "x-quorum-initial-group-size", size);
    rc = declare_queue(a, queue, (amqp_table_t){n, entries}, n - 3, &kept,
                       expected, hint, err, errlen);
    if (single_active)
        *single_active = (kept & 1u) != 0;
    /* Two bindings: the changes, and replays from the archive sent to every
     * node queue but not to the archive itself (replay --all-nodes). */
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
    rc = declare_queue(a, stream, args, 0, NULL, expected,
                       "a stream's retention cannot change once declared: "
                       "set the keys back, or change it with a policy "
                       "(rabbitmqctl set_policy)",
                       err, errlen);
    if (rc == 0)
        rc = bind_queue(a, stream, cfg->amqp_exchange, cfg->amqp_routing_key,
                        err, errlen);
    return rc;
}
