/* topology.c: declares datasync's exchanges and per-node queues, the names users and tools rely on. */
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
 * which, since the broker's text alone reads like a protocol fault. */
static int queue_declare_error(amqp_rpc_reply_t r, const char *queue,
                               const ds_config *cfg, char *err, size_t errlen)
{
    char what[320];

    snprintf(what, sizeof what, "queue.declare %s", queue);
    if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
        r.reply.id == AMQP_CHANNEL_CLOSE_METHOD &&
        ((amqp_channel_close_t *)r.reply.decoded)->reply_code == 406) {
        return ds__seterr(
            err, errlen, DS_EAMQP,
            "queue %s already exists with other arguments than a %s queue "
            "dead-lettering to %s.dead (amqp.queue_type = %s); delete it or "
            "set amqp.queue_type to its type",
            queue,
            cfg->amqp_queue_type == DS_QUEUE_QUORUM ? "quorum" : "classic",
            cfg->amqp_exchange,
            cfg->amqp_queue_type == DS_QUEUE_QUORUM ? "quorum" : "classic");
    }
    return ds__amqp_reply_error(r, what, err, errlen);
}

static int declare_queue(ds_amqp *a, const ds_config *cfg, const char *queue,
                         amqp_table_t args, char *err, size_t errlen)
{
    amqp_queue_declare(a->conn, DS_AMQP_CHANNEL, ds__amqp_str(queue),
                       0 /* passive */, 1 /* durable */, 0 /* exclusive */,
                       0 /* auto_delete */, args);
    return queue_declare_error(amqp_get_rpc_reply(a->conn), queue, cfg, err,
                               errlen);
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

int ds__topology_declare_node(ds_amqp *a, const ds_config *cfg,
                              const char *node, char *err, size_t errlen)
{
    char queue[128], dead_queue[128], dead_exchange[300];
    const char *type =
        cfg->amqp_queue_type == DS_QUEUE_QUORUM ? "quorum" : "classic";
    amqp_table_entry_t entries[3];
    amqp_table_t args;
    int rc;

    ds__topology_node_queue(node, queue, sizeof queue);
    ds__topology_dead_queue(node, dead_queue, sizeof dead_queue);
    ds__topology_dead_exchange(cfg, dead_exchange, sizeof dead_exchange);

    /* Both queues carry the type, so a cluster's dead letters are as safe as
     * its changes. Only the node queue dead-letters: whatever the broker
     * itself rejects lands where the consumer's own dead letters do. */
    entries[0].key = amqp_cstring_bytes("x-queue-type");
    entries[0].value.kind = AMQP_FIELD_KIND_UTF8;
    entries[0].value.value.bytes = amqp_cstring_bytes(type);
    entries[1].key = amqp_cstring_bytes("x-dead-letter-exchange");
    entries[1].value.kind = AMQP_FIELD_KIND_UTF8;
    entries[1].value.value.bytes = amqp_cstring_bytes(dead_exchange);
    entries[2].key = amqp_cstring_bytes("x-dead-letter-routing-key");
    entries[2].value.kind = AMQP_FIELD_KIND_UTF8;
    entries[2].value.value.bytes = amqp_cstring_bytes(queue);

    args.num_entries = 1;
    args.entries = entries;
    rc = declare_queue(a, cfg, dead_queue, args, err, errlen);
    if (rc == 0)
        rc = bind_queue(a, dead_queue, dead_exchange, queue, err, errlen);
    if (rc < 0)
        return rc;

    args.num_entries = 3;
    rc = declare_queue(a, cfg, queue, args, err, errlen);
    if (rc == 0)
        rc = bind_queue(a, queue, cfg->amqp_exchange, cfg->amqp_routing_key,
                        err, errlen);
    return rc;
}
