/* cli.h: what the datasync command's modules share: context, exit codes, broker session, confirmed publishing, input lines. */
#ifndef DS_CLI_CLI_H
#define DS_CLI_CLI_H

#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <mysql.h>

#include "amqp_util.h"
#include "config.h"
#include "confirms.h"
#include "datasync.h"
#include "error.h"
#include "event.h"

/* ------------------------------------------------------------------------ */
/* Exit codes: one table (cli.c) prints them in --help and maps DS_E codes.  */

enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAILURE = 1,  /* I/O, spool, out of memory, anything else */
    CLI_EXIT_USAGE = 2,    /* bad command line */
    CLI_EXIT_CONFIG = 3,   /* bad configuration file or setting */
    CLI_EXIT_INPUT = 4,    /* invalid input: JSON, schema, size */
    CLI_EXIT_BROKER = 5,   /* broker unreachable, refused or failed a call */
    CLI_EXIT_PARTIAL = 6,  /* not everything was confirmed by the broker */
    CLI_EXIT_NOTFOUND = 7, /* a queue does not exist: run setup */
    CLI_EXIT_WARN = 8,     /* status: something needs a person's attention */
    CLI_EXIT_INTERRUPTED = 130 /* SIGINT or SIGTERM: stopped, summarised */
};

/* The exit code for a DS_E code (0 for 0). */
int cli_exit_code(int err);

/* The exit-code table, as printed by datasync --help. */
void cli_print_exit_codes(FILE *out);

/* ------------------------------------------------------------------------ */
/* The context of one run.                                                  */

typedef struct cli_ctx {
    const char *config_arg;  /* -c FILE, or NULL */
    const char *config_path; /* the file read, NULL: defaults only */
    const char *cmd;         /* "publish", "dlq list", ...: prefixes errors */
    bool verbose;            /* -v: the library's info messages too */
    bool cfg_loaded;
    ds_config cfg;
} cli_ctx;

/* "datasync CMD: message" on stderr. */
void cli_error(const cli_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void cli_warn(const cli_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prints "datasync CMD: message" and "Try 'datasync CMD --help'." and
 * returns CLI_EXIT_USAGE. */
int cli_usage_error(const cli_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Loads the configuration (-c FILE, else $DATASYNC_CONFIG, else defaults)
 * once. Returns 0, or prints "FILE:LINE: reason" and returns
 * CLI_EXIT_CONFIG. */
int cli_config(cli_ctx *ctx);

/* "the configuration file X" or "the defaults (no -c FILE or
 * DATASYNC_CONFIG)", for messages that send the user to the config. */
const char *cli_config_name(const cli_ctx *ctx);

/* getopt_long (GNU, reset by the caller with optind = 0) without getopt's
 * own messages: returns the option, -1 at the end, or '?' after printing
 * a usage error for an unknown option or a missing argument. */
int cli_getopt(const cli_ctx *ctx, int argc, char **argv, const char *shortopts,
               const struct option *longopts);

/* Node names: --nodes a,b,c, or node.id when list is NULL. Each name is
 * checked against [A-Za-z0-9._-]{1,64}. Returns 0 and a malloc'd array of
 * *n names (free with cli_nodes_free), or an exit code after printing. */
int cli_nodes(cli_ctx *ctx, const char *list, char ***names, size_t *n);
void cli_nodes_free(char **names, size_t n);

/* A node given with --node: checked, or node.id when NULL. Returns 0 or an
 * exit code after printing. */
int cli_node(cli_ctx *ctx, const char *given, const char **out);

/* Copies the URL list into out with every password replaced by "***". */
void cli_redact_urls(const char *urls, char *out, size_t len);

/* From now on, SIGINT and SIGTERM only ask the command to stop sending
 * (cli_interrupted); a second one ends the process as usual. */
void cli_catch_interrupts(void);
bool cli_interrupted(void);

/* Whether long-running commands draw a progress line (stderr is a tty). */
bool cli_interactive(void);

/* Sleeps ms milliseconds (signals do not cut it short). */
void cli_sleep_ms(uint64_t ms);

/* ------------------------------------------------------------------------ */
/* Progress line and rate limit (progress.c).                                */

typedef struct cli_progress {
    bool on;          /* stderr is a terminal */
    const char *what; /* "events", "read from the archive" */
    uint64_t total;   /* 0: unknown, no time left shown */
    uint64_t start_ms, drawn_ms;
} cli_progress;

/* Starts the clock; the line is drawn only when stderr is a terminal. */
void cli_progress_start(cli_progress *pg, const char *what, uint64_t total);
/* Redraws "done[/total] what[extra], rate/s[, time left]" at most every
 * 200 ms, or now with force. */
void cli_progress_draw(cli_progress *pg, uint64_t done, const char *extra,
                       bool force);
/* Clears the line (before printing anything else to stderr). */
void cli_progress_end(cli_progress *pg);
/* When item i (from 0) may go out at rate per second from start_ms (0: no
 * limit, now). */
uint64_t cli_rate_slot(uint64_t start_ms, unsigned long rate, uint64_t i);
/* Sleeps until slot (monotonic ms) or an interrupt. */
void cli_rate_wait(uint64_t slot);
/* n with thousands separators ("12,000") in buf; returns buf. */
const char *cli_thousands(uint64_t n, char *buf, size_t len);

/* A point in time for --since/--until (timearg.c): RFC 3339
 * ("2026-12-01T10:00:00Z", "...+01:00", fractions, or a date alone for
 * midnight UTC), or an age before now_ms: "-90s", "-30m", "-2h", "-7d",
 * "-1w". Returns 0 with *out_ms (unix ms), or -1 if s is neither. */
int cli_parse_time(const char *s, int64_t now_ms, int64_t *out_ms);

/* ------------------------------------------------------------------------ */
/* The broker session of the commands that talk AMQP themselves (broker.c).  */

/* Channel 1 (DS_AMQP_CHANNEL) does the RPCs and basic.get; this one, in
 * confirm mode, publishes. */
#define CLI_PUB_CHANNEL 2

typedef struct cli_broker {
    ds_amqp amqp;
    const cli_ctx *ctx;
    char urls[2048]; /* redacted, for messages */
    bool pub_open;
} cli_broker;

/* Connects to the first reachable broker of amqp.url. Returns 0, or a DS_E
 * code with err naming the URLs (without password) and why. */
int cli_broker_open(cli_broker *b, const cli_ctx *ctx, char *err,
                    size_t errlen);

/* Closes: messages got and not acked go back to their queue. */
void cli_broker_close(cli_broker *b);

/* Passive queue.declare. Returns 0 with the counts, DS_ENOTFOUND (channel
 * reopened, err says to run setup), or another DS_E code with err. */
int cli_queue_inspect(cli_broker *b, const char *queue, uint32_t *ready,
                      uint32_t *consumers, char *err, size_t errlen);

/* queue.purge. Returns 0 with the count removed, or a DS_E code. */
int cli_queue_purge(cli_broker *b, const char *queue, uint32_t *purged,
                    char *err, size_t errlen);

/* One message from basic.get (no_ack = 0): the caller acks it by tag or
 * lets cli_broker_close requeue it. */
typedef struct cli_msg {
    uint64_t tag;
    bool redelivered;
    amqp_message_t msg; /* body and properties, owned */
} cli_msg;

/* basic.get on channel 1. Returns 0 with *got true and m filled (release
 * with cli_msg_free), 0 with *got false when the queue is empty, or a DS_E
 * code with err. */
int cli_get(cli_broker *b, const char *queue, cli_msg *m, bool *got, char *err,
            size_t errlen);
void cli_msg_free(cli_msg *m);

/* A header of m's properties as text ("" when absent); numbers and
 * timestamps are formatted. */
void cli_msg_header(const cli_msg *m, const char *name, char *out, size_t len);

/* Formats unix seconds as RFC 3339 UTC. */
void cli_format_time(uint64_t unix_s, char *out, size_t len);

/* ------------------------------------------------------------------------ */
/* Publishing with a window of publisher confirms (confirm.c).              */

/* What became of one publish (id: its message_id): 0 (confirmed), DS_ENACK,
 * DS_EUNROUTABLE, or the error that left it unanswered. */
typedef void (*cli_pub_done_fn)(void *ctx, uint64_t cookie, const char *id,
                                int result);

typedef struct cli_pub {
    cli_broker *b;
    cli_pub_done_fn done;
    void *done_ctx;
    int timeout_ms;   /* no answer for this long: give up */
    size_t window;    /* publishes held at most, answered or not */
    ds_confirms sent; /* the publishes (cookie: the caller's), oldest first */
    uint64_t confirmed, nacked, unroutable, unanswered;
    uint64_t last_answer_ms;
} cli_pub;

/* Opens the publishing channel in confirm mode with room for window
 * unconfirmed messages. done is called once per publish, in any order. */
int cli_pub_open(cli_pub *p, cli_broker *b, size_t window, int timeout_ms,
                 cli_pub_done_fn done, void *done_ctx, char *err,
                 size_t errlen);

/* Publishes persistent-or-as-props, mandatory; waits for room in the window
 * first. message_id in props is what a basic.return is matched by. */
int cli_pub_send(cli_pub *p, const char *exchange, const char *routing_key,
                 const amqp_basic_properties_t *props, amqp_bytes_t body,
                 uint64_t cookie, char *err, size_t errlen);

/* Handles confirms, returns and closes for up to wait_ms (0: only what has
 * arrived). Returns 0 or a DS_E code when the connection or a channel is
 * lost, or nothing was answered for timeout_ms while waiting. */
int cli_pub_pump(cli_pub *p, int wait_ms, char *err, size_t errlen);

/* Handles answers until slot (monotonic ms, from cli_rate_slot) or an
 * interrupt: a rate limit that keeps confirms flowing. Returns 0 or a DS_E
 * code as cli_pub_pump. */
int cli_pub_pump_until(cli_pub *p, uint64_t slot, char *err, size_t errlen);

/* Waits until every publish is answered. Returns 0 or a DS_E code; what
 * stays unanswered is settled with that code. */
int cli_pub_finish(cli_pub *p, char *err, size_t errlen);

/* Settles everything unanswered with result and frees the window. */
void cli_pub_close(cli_pub *p, int result);

/* ------------------------------------------------------------------------ */
/* Reading the archive stream (archive.c).                                   */

#define CLI_ARCHIVE_PREFETCH 1000

typedef struct cli_archive {
    cli_broker b; /* its own connection: the marker, then deliveries */
    char stream[300];
    char marker[37]; /* message_id of this reader's end marker */
    amqp_envelope_t env;
    bool have; /* env holds the current message */
    uint64_t last_tag, unacked;
    uint64_t read;    /* messages delivered, markers included */
    uint64_t markers; /* of them, end markers (ours and others') */
} cli_archive;

/* Sends a marker (ds__amqp_marker_props; body says why) straight to queue
 * through the default exchange and waits for its confirm. Returns 0 with
 * its id, or a DS_E code with err. */
int cli_marker_send(cli_broker *b, const char *queue, const char *why,
                    char id[37], char *err, size_t errlen);

/* Opens the archive <exchange>.archive for reading from since_ms (unix ms;
 * 0: from the first message kept). First appends an end marker and waits
 * for its confirm, so the read ends exactly where the archive stood then.
 * Reading starts a few minutes before since_ms (producers' clocks are not
 * the broker's): the caller filters by each event's hlc. Returns 0, or
 * DS_ENOTFOUND (no stream: err says to run setup) or another DS_E code
 * with err. */
int cli_archive_open(cli_archive *ar, const cli_ctx *ctx, int64_t since_ms,
                     char *err, size_t errlen);

/* The next message: 1 with body (valid until the next call), 0 at the end
 * marker, or a DS_E code with err. Other readers' markers are skipped. */
int cli_archive_next(cli_archive *ar, amqp_bytes_t *body, char *err,
                     size_t errlen);

void cli_archive_close(cli_archive *ar);

/* replay --since (replay_archive.c): what the command line chose. */
typedef struct cli_replay_opts {
    int64_t since_ms, until_ms; /* the window [since, until), unix ms */
    char **tables;              /* --table, several; none: every table */
    size_t ntables;
    char **nodes; /* --node / --nodes: their queues */
    size_t nnodes;
    bool all_nodes; /* --all-nodes: every queue bound for replays */
    bool dry_run;   /* counts per table and op, nothing sent */
    unsigned long rate;
} cli_replay_opts;

/* Reads the archive's window and sends each change in it, unchanged, to
 * the chosen node queues (never through the exchange's change key, so the
 * archive and other servers see nothing). Prints a summary. Returns an exit
 * code. */
int cli_replay_archive(cli_ctx *ctx, const cli_replay_opts *o);

/* ------------------------------------------------------------------------ */
/* Copying rows between databases, for bootstrap (copy.c).                   */

typedef struct cli_copy {
    MYSQL *src; /* the peer, inside a consistent snapshot */
    MYSQL *dst; /* the new server (autocommit off) */
    /* Called every 1000 rows and at the end with the rows copied so far. */
    void (*progress)(void *ctx, uint64_t rows);
    void *progress_ctx;
} cli_copy;

/* Runs select_sql on src (streamed: any size in constant memory) and
 * inserts its rows into table's cols on dst, in multi-row prepared
 * INSERTs committed one by one; values travel as the text protocol gives
 * them (binary columns as blobs). select_sql must yield ncols columns in
 * the order of cols. Returns 0 with *copied, 1 when interrupted
 * (cli_interrupted; what was committed stays), or a DS_E code with err
 * (dst rolled back). */
int cli_copy_query(cli_copy *cp, const char *select_sql, const char *table,
                   const char *const *cols, size_t ncols, uint64_t *copied,
                   char *err, size_t errlen);

/* ------------------------------------------------------------------------ */
/* Input: one change or whole event per line (input.c).                     */

enum { CLI_KIND_CHANGE = 1, CLI_KIND_EVENT = 2 };

/* One valid line. */
typedef struct cli_item {
    int kind;
    size_t line;
    const char *text; /* the line, NUL-terminated (borrowed) */
    ds_event ev;      /* EVENT: everything; CHANGE: op, table, key, data */
    char *key_json;   /* CHANGE: what ds_emit takes (malloc'd) */
    char *data_json;  /* CHANGE: NULL for delete */
} cli_item;

void cli_item_clear(cli_item *it);

/* Builds a change from its parts (the --op/--table/--key/--data options or
 * a change line) and checks it as the producer would, size included.
 * Returns 0, or a DS_E code with err naming the field. */
int cli_change_build(const char *op, const char *table, const char *key_json,
                     const char *data_json, const ds_config *cfg, cli_item *it,
                     char *err, size_t errlen);

/* Parses and checks one line (kinds: CLI_KIND_* accepted). Returns 0, or a
 * DS_E code with err. */
int cli_line_parse(const char *line, size_t len, unsigned kinds,
                   const ds_config *cfg, cli_item *it, char *err,
                   size_t errlen);

typedef struct cli_input {
    const cli_ctx *ctx;
    const char *name; /* the path, or "standard input" */
    FILE *f;
    FILE *copy; /* standard input kept for the second pass */
    bool own_f;
    long long start; /* where the lines start in f */
    unsigned kinds;
    size_t valid, invalid;
    size_t *invalid_lines; /* the first pass's bad lines, in order */
    size_t next_invalid;   /* the second pass's place in them */
} cli_input;

/* Opens path ("-": standard input). Returns 0 or an exit code after
 * printing. */
int cli_input_open(cli_input *in, const cli_ctx *ctx, const char *path,
                   unsigned kinds);

/* First pass: checks every line and prints "line N: reason" for each bad
 * one. Returns 0 or an exit code after printing (read error). */
int cli_input_check(cli_input *in);

/* Second pass: calls fn for each line the first found valid, in order,
 * until it returns non-zero (returned). A line found valid that no longer
 * parses (the file changed in between) is reported and stops it:
 * CLI_EXIT_INPUT. */
int cli_input_each(cli_input *in, int (*fn)(cli_item *it, void *ctx),
                   void *fnctx);

void cli_input_close(cli_input *in);

/* ------------------------------------------------------------------------ */
/* Publishing through libdatasync (emit.c).                                  */

typedef struct cli_producer {
    ds_producer *p;
    const cli_ctx *ctx;
    pthread_mutex_t lock;
    char last_problem[DS_ERRMSG_SIZE]; /* the library's last warning */
    char last_info[DS_ERRMSG_SIZE];    /* and its last info message */
} cli_producer;

/* A producer from the same configuration file (ds_options_load), in mode
 * (DS_MODE_SYNC / DS_MODE_ASYNC). With origin_optional, a missing node.id
 * is replaced (for replays, which keep each event's origin). Returns 0 or an
 * exit code after printing. */
int cli_producer_open(cli_producer *cp, const cli_ctx *ctx,
                      ds_producer_mode mode, bool origin_optional);

/* How many of the emitted changes the broker answered (confirmed, directly
 * or drained from the spool, or returned unroutable), from the counters. */
uint64_t cli_producer_answered(cli_producer *cp, uint64_t emitted);

/* Tells why ds_emit or ds_emit_event refused the change of input line
 * `line` (0: not from a file) and returns the exit code. DS_ESPOOL:
 * neither the broker nor the spool took it, and the library counted it
 * lost; *emitted counts it too, so the summary's "lost" includes it. */
int cli_producer_emit_failed(cli_producer *cp, size_t line, int rc,
                             uint64_t *emitted);

/* Waits until the emitted changes are confirmed or spooled, and what was
 * spooled drained, as long as the counters move; calls tick (if not NULL)
 * about every 200 ms. Returns 0 or the last ds_flush error. */
int cli_producer_flush(cli_producer *cp, uint64_t emitted, void (*tick)(void *),
                       void *tickctx);

/* Prints "verb: published P, spooled S, skipped K[, unroutable U][, lost
 * L]" on stdout (and why on stderr), frees the producer, returns the exit
 * code: 0 when all emitted were confirmed and nothing skipped, 1 when some
 * were lost (neither confirmed nor spooled). */
int cli_producer_close(cli_producer *cp, const char *verb, uint64_t emitted,
                       uint64_t skipped, int flush_rc);

/* ------------------------------------------------------------------------ */
/* Commands: each returns the process's exit code.                          */

int cli_cmd_setup(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_publish(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_replay(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_dlq(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_bootstrap(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_status(cli_ctx *ctx, int argc, char **argv);

#endif
