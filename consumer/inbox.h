/* inbox.h: the consumer's AMQP side: one channel, one frame pump for deliveries, confirms and closes. */
#ifndef DS_CONSUMER_INBOX_H
#define DS_CONSUMER_INBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "amqp_util.h"
#include "config.h"
#include "confirms.h"
#include "log.h"

/* One delivered message: its own copy of the body and properties, so the
 * connection's buffers can be released while it waits in a batch. */
typedef struct dsc_message {
    uint64_t tag; /* delivery tag, valid on connection generation gen */
    uint64_t gen;
    bool redelivered;
    amqp_bytes_t body;             /* malloc'd */
    amqp_basic_properties_t props; /* allocated from pool */
    amqp_pool_t pool;
    struct dsc_message *next;
} dsc_message;

void dsc_message_free(dsc_message *m);

typedef struct dsc_inbox {
    ds_amqp amqp;
    const ds_config *cfg; /* borrowed */
    const ds_logger *lg;  /* borrowed */
    char node[65];
    char queue[128];
    char dead_exchange[300];
    uint64_t gen; /* bumped at every connection: tags of older ones are void */
    /* Deliveries complete and waiting, oldest first. */
    dsc_message *head, *tail;
    size_t count;
    /* The delivery whose header or body frames are still coming. */
    dsc_message *partial;
    size_t body_got;
    /* A basic.return's content to skip, and how much of it is left. */
    bool skip_header;
    size_t skip_body;
    /* Publisher confirms of the dead letters in flight, and how those of
     * the dsc_inbox_dead_letter call under way settled. */
    ds_confirms dead;
    size_t dead_acked, dead_nacked, dead_unroutable;
    /* Another consumer of the node held the queue when this one started
     * consuming (single active consumer): this one waits. The consumer
     * clears it at the first delivery. */
    bool standby;
} dsc_inbox;

/* Zeroes in; no connection yet. cfg and lg are borrowed. */
void dsc_inbox_init(dsc_inbox *in, const ds_config *cfg, const ds_logger *lg);

/*
 * Connects (amqp.url list, heartbeat), declares the exchanges and this
 * node's queues, sets basic.qos(amqp.prefetch), confirm.select (for dead
 * letters) and basic.consume with manual acks. Drops whatever the previous
 * connection had buffered: those messages come again. Returns 0, or a
 * DS_E code with err; the connection is then dropped.
 */
int dsc_inbox_open(dsc_inbox *in, char *err, size_t errlen);

/* Whether a connection is up. */
bool dsc_inbox_connected(const dsc_inbox *in);

/* Closes gracefully (unacked messages go back to the queue) and frees
 * the buffered ones. */
void dsc_inbox_close(dsc_inbox *in);

/* Drops the connection after an error, without the closing handshake, and
 * frees the buffered messages. */
void dsc_inbox_drop(dsc_inbox *in);

/*
 * The frame pump: reads frames for up to timeout_ms, returning early once
 * `want` messages are buffered. Deliveries are queued; confirms recorded;
 * heartbeats sent and checked by rabbitmq-c as it reads. Returns 0, or a
 * DS_E code with err when the connection or channel was lost (the caller
 * drops and reopens it).
 */
int dsc_inbox_pump(dsc_inbox *in, size_t want, int timeout_ms, char *err,
                   size_t errlen);

/* Takes the oldest buffered message (the caller frees it), or NULL. */
dsc_message *dsc_inbox_take(dsc_inbox *in);

/* Acks every message up to tag with one basic.ack(multiple). A tag of an
 * older connection is skipped (returns 0): the broker gives those again. */
int dsc_inbox_ack(dsc_inbox *in, uint64_t gen, uint64_t tag, char *err,
                  size_t errlen);

/*
 * Publishes each message to the dead-letter exchange, routing key
 * "datasync.<node>", with its original body and properties (user_id and
 * expiration dropped: the broker would refuse the one and expire the
 * other), persistent, mandatory, headers plus x-datasync-error (reasons[i])
 * and x-datasync-node; then pumps until the broker confirmed them all or
 * timeout_ms passed. Returns 0; DS_ENACK, DS_EUNROUTABLE, DS_ETIMEOUT or a
 * connection error with err.
 */
int dsc_inbox_dead_letter(dsc_inbox *in, dsc_message *const *msgs,
                          const char *const *reasons, size_t n, int timeout_ms,
                          char *err, size_t errlen);

/* Messages ready in the node's queue (passive queue.declare), or < 0. */
long dsc_inbox_queue_depth(dsc_inbox *in, char *err, size_t errlen);

#endif
