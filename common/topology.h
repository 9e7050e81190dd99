/* topology.h: the names and declarations of datasync's exchanges and queues (the broker contract). */
#ifndef DS_COMMON_TOPOLOGY_H
#define DS_COMMON_TOPOLOGY_H

#include <stddef.h>

#include "amqp_util.h"
#include "config.h"

/* "<exchange>.dead", e.g. "datasync.dead": the direct dead-letter exchange. */
void ds__topology_dead_exchange(const ds_config *cfg, char *out, size_t len);

/* "datasync.<node>": a node's queue. The routing key of its dead letters in
 * the dead-letter exchange is this same name. */
void ds__topology_node_queue(const char *node, char *out, size_t len);

/* "datasync.<node>.dead": a node's dead-letter queue. */
void ds__topology_dead_queue(const char *node, char *out, size_t len);

/* "<exchange>.archive", e.g. "datasync.archive": the stream that keeps every
 * change for replay --since ([archive] in the configuration). */
void ds__topology_archive_queue(const ds_config *cfg, char *out, size_t len);

/* "<routing_key>.replay", e.g. "data.sync.replay": the key every node queue
 * is also bound with, so a replay reaches all node queues but not the
 * archive (which would keep the copies). */
void ds__topology_replay_key(const ds_config *cfg, char *out, size_t len);

/* Declares the topic exchange amqp.exchange and the dead-letter exchange,
 * both durable. Idempotent. Returns 0 or a DS_E code with err. */
int ds__topology_declare_exchanges(ds_amqp *a, const ds_config *cfg, char *err,
                                   size_t errlen);

/* The replicas of a quorum queue datasync declares
 * (x-quorum-initial-group-size): with amqp.queue_type = quorum and N >= 3
 * URLs in amqp.url (one per cluster node), the largest odd number <= N, at
 * most 7; else 0: not set, the broker's default (every cluster node). */
int ds__topology_quorum_size(const ds_config *cfg);

/* Declares node's queue (amqp.queue_type, durable, dead-lettering to the dead
 * exchange, a single active consumer) bound to amqp.exchange with
 * amqp.routing_key and the replay key, and its dead-letter queue bound to
 * the dead exchange; quorum queues, both, with ds__topology_quorum_size()
 * replicas when not 0. Idempotent; a queue of an earlier release, declared
 * without the single active consumer or the group size, is taken as it is,
 * and *single_active (may be NULL) says whether the node queue has one. A
 * queue that exists with other arguments (e.g. another queue type) gives
 * DS_EAMQP with a message saying so; the connection must then be
 * reopened. */
int ds__topology_declare_node(ds_amqp *a, const ds_config *cfg,
                              const char *node, bool *single_active, char *err,
                              size_t errlen);

/* Declares the archive stream (x-queue-type stream, x-max-age
 * archive.max_age, x-max-length-bytes archive.max_bytes when not 0) bound to
 * amqp.exchange with amqp.routing_key. Idempotent while the keys stay the
 * same; a stream declared with other retention gives DS_EAMQP saying so
 * (the connection must then be reopened). */
int ds__topology_declare_archive(ds_amqp *a, const ds_config *cfg, char *err,
                                 size_t errlen);

#endif
