/* config.h: datasync.conf, every key with its default and bounds, from one table of directives. */
#ifndef DS_COMMON_CONFIG_H
#define DS_COMMON_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "datasync.h"
#include "logsink.h"

typedef enum { DS_QUEUE_CLASSIC = 0, DS_QUEUE_QUORUM = 1 } ds_queue_type;
typedef enum { DS_MODE_SYNC = 0, DS_MODE_ASYNC = 1 } ds_producer_mode;

/* Values live in fixed buffers so a configuration is a plain value: copied by
 * assignment, never freed. A value longer than its buffer is a config error. */
typedef struct ds_config {
    /* [node] */
    char node_id[65]; /* "" when not set: required by the consumer only */
    char node_clock_file[1024]; /* "" turns the shared clock off */
    /* [amqp] */
    /* Several URLs, space-separated, tried in turn: amqp.url as written,
     * with amqp.password_file's password put into each URL that names a
     * user without a password. What connections use. */
    char amqp_url[2048];
    char amqp_url_written[2048]; /* amqp.url exactly as written */
    char amqp_password[256];     /* from amqp.password_file; "" = none */
    char amqp_exchange[256];
    char amqp_routing_key[256];
    ds_queue_type amqp_queue_type;
    int amqp_prefetch;  /* 1..65535 */
    int amqp_heartbeat; /* seconds, 0..3600; 0 = off */
    /* TLS, for amqps:// URLs only: the CA that signs the brokers'
     * certificates, an optional client certificate and key (PEM). */
    char amqp_ca_file[1024];
    char amqp_cert_file[1024];
    char amqp_key_file[1024];
    bool amqp_verify_peer; /* check the broker's certificate and host name */
    /* [mysql] */
    char mysql_host[256];
    int mysql_port;
    char mysql_socket[1024];
    char mysql_user[256];
    char mysql_password[256]; /* mysql.password or mysql.password_file */
    char mysql_database[65];
    /* [apply] */
    char apply_tables[4096]; /* space-separated table names */
    int apply_batch_max;     /* 1..10000 */
    int apply_batch_wait_ms; /* 0..60000 */
    long apply_max_message_bytes;
    int apply_tombstone_retention_hours;
    /* [producer] */
    ds_producer_mode producer_mode;
    char producer_spool_dir[1024];
    int producer_confirm_timeout_ms;
    /* [log] */
    ds_log_level log_level;
    ds_log_format log_format; /* text or json lines */
    char log_file[1024];      /* "" = stderr; reopened on SIGHUP */
    /* [archive] */
    bool archive_enabled;     /* the stream <exchange>.archive */
    char archive_max_age[16]; /* RabbitMQ's x-max-age: 7D, 12h, ... */
    long archive_max_bytes;   /* x-max-length-bytes; 0: no size limit */
    /* [capture] (datasync-capture only) */
    long capture_server_id;        /* replica id; 0: not set (required) */
    char capture_tables[4096];     /* space-separated; "": apply.tables */
    char capture_state_file[1024]; /* the last GTID saved */
    /* capture.start: a first start (no state) copies the tables as they
     * are at a consistent snapshot, then reads the binlog from there
     * ("snapshot"); or starts at the current position ("current"). */
    bool capture_snapshot;
    /* [metrics] (datasync-consumer only) */
    char metrics_listen[300]; /* "HOST:PORT" of /metrics and /health; "": off */
} ds_config;

/* Fills every key with its default. */
void ds__config_defaults(ds_config *cfg);

/* Reads an INI file over cfg (lines of any length). Returns 0; DS_EIO when
 * the file cannot be read ("PATH: strerror"); DS_ENOMEM; DS_ECONFIG for the
 * first bad line (unknown section or key, out-of-bounds value, a password
 * file that cannot be read), with err = "PATH:LINE: reason". On failure cfg
 * is left as it was. */
int ds__config_load(ds_config *cfg, const char *path, char *err, size_t errlen);

/* Sets one key written "section.key" ("amqp.url"); a *.password_file key
 * reads its file now. Returns 0 or DS_ECONFIG with err = "section.key:
 * reason" (cfg untouched). */
int ds__config_set(ds_config *cfg, const char *key, const char *value,
                   char *err, size_t errlen);

/* Calls fn with "section.key" for each key whose value differs between a
 * and b, in the table's order (a key sharing its value with an earlier one,
 * mysql.password_file, is not named again). Values are never passed: they
 * may be secrets. Returns the number of keys named. */
int ds__config_each_change(const ds_config *a, const ds_config *b,
                           void (*fn)(const char *key, void *ctx), void *ctx);

/* The configuration file to read: given if not NULL, else $DATASYNC_CONFIG,
 * else NULL (defaults only). */
const char *ds__config_path(const char *given);

/* Splits a space-separated list (amqp_url, apply_tables) in place of a copy:
 * calls fn for each word with its length; stops at the first non-zero
 * return and returns it. */
int ds__config_each_word(const char *list,
                         int (*fn)(const char *word, size_t len, void *ctx),
                         void *ctx);

/* Splits a listen address: "HOST:PORT", "[IPV6]:PORT", or ":PORT" for every
 * interface (host ""). host gets at most 255 bytes, port 1..65535. Returns 0,
 * or -1 with reason filled. */
int ds__config_split_listen(const char *value, char host[256], int *port,
                            char *reason, size_t len);

#endif
