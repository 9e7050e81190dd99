/* cluster.h: a three-server datasync cluster on the private services, for the consumer's integration tests (test_consumer*.c). */
#ifndef DS_TESTS_CLUSTER_H
#define DS_TESTS_CLUSTER_H

/*
 * tc_setup makes, for a prefix, three servers <prefix>-a.. each with its
 * own database <prefix>_a.. (the tables kv, users, orders, tags, and x,
 * which no change may touch), its configuration and log under the run
 * directory, and a running datasync-consumer; every server binds its queue
 * to the exchange <prefix>. The cluster also holds a connection to the
 * broker with a publishing channel in confirm mode.
 *
 * Like itest.h's helpers these fail the current cmocka test when something
 * they need does not work, and are called from the test's own thread.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "itest.h"

#define TC_NODES 3
/* Our own publishing channel, in confirm mode (itest uses 1 and 2). */
#define TC_PUB_CHANNEL 3

typedef struct tc_cluster {
    char exchange[64];
    char node[TC_NODES][32];
    char queue[TC_NODES][64];
    char dead[TC_NODES][64];
    char db[TC_NODES][64];
    char *conf[TC_NODES];
    char *log[TC_NODES];
    pid_t pid[TC_NODES];
    amqp_connection_state_t amqp;
    uint64_t pub_seq; /* last publish seq on TC_PUB_CHANNEL */
} tc_cluster;

/* ----- the cluster ----- */

/* Sets up prefix's cluster: databases <prefix>_a.., exchange <prefix>,
 * nodes <prefix>-a.., clean queues, consumers running. extra_conf (may be
 * NULL) is appended to every configuration file. */
void tc_setup(tc_cluster *cl, const char *prefix, const char *extra_conf);

/* Stops every consumer (SIGTERM, 5 s), frees and closes what tc_setup
 * made. The databases and queues stay. */
void tc_teardown(tc_cluster *cl);

/* (Re)opens the cluster's broker connection with TC_PUB_CHANNEL in confirm
 * mode (tc_setup does it; after a broker restart, call it again). */
void tc_amqp_open(tc_cluster *cl);

/* Starts node i's consumer and waits (20 s) until it consumes; fails if it
 * exits or does not get there. */
void tc_start(tc_cluster *cl, int i);

/* Sends sig to node i's consumer and waits up to timeout_ms for its exit
 * (then SIGKILL). Returns the exit status, or -signal, or -1000 if it had to
 * be killed; 0 when it was not running. */
int tc_stop(tc_cluster *cl, int i, int sig, int timeout_ms);

/* ----- logs ----- */

/* A file's size, 0 when it does not exist (an offset for tc_log_has). */
long tc_file_size(const char *path);

/* Whether the log, from offset on, contains needle. */
bool tc_log_has(const char *path, long offset, const char *needle);

/* ----- changes ----- */

/* A change event, malloc'd. key and data are JSON text (data NULL for a
 * delete or to leave it out). */
char *tc_event(const char *op, const char *table, const char *key,
               const char *data, const char *origin, uint64_t hlc);

/* Publishes n bodies (persistent, mandatory) to every server through the
 * exchange, then waits for the broker's confirms of them all. */
void tc_publish_all(tc_cluster *cl, char *const *bodies, size_t n);

/* The same to node i's queue only, through the default exchange. */
void tc_publish_to(tc_cluster *cl, int i, char *const *bodies, size_t n);

/* Frees n bodies. */
void tc_free_all(char **bodies, size_t n);

/* ----- what the servers hold ----- */

/* Every row of sql, fields joined by '|', rows by '\n'; malloc'd. NULL when
 * the database cannot be reached. */
char *tc_dump(const char *dbname, const char *sql);

/* Polls until node i's dump of sql equals want, or timeout_ms; fails with
 * both sides otherwise. */
void tc_wait_dump(tc_cluster *cl, int i, const char *sql, const char *want,
                  int timeout_ms);

/* One dead letter of node i: body and its x-datasync-error, both malloc'd;
 * false when the queue stays empty for timeout_ms. */
bool tc_dead_get(tc_cluster *cl, int i, char **body, char **reason,
                 int timeout_ms);

/* Messages of a queue, ready plus unacknowledged, from rabbitmqctl; -1 if
 * it cannot be read. */
long tc_queue_total(const char *queue);

#endif
