/* amqp_util.h: one AMQP connection over a URL list, with timeouts, and the broker-error mapper. */
#ifndef DS_COMMON_AMQP_UTIL_H
#define DS_COMMON_AMQP_UTIL_H

#include <stdbool.h>
#include <stddef.h>

#include "amqp_compat.h"
#include "datasync.h"

/* The one channel every datasync connection uses. */
#define DS_AMQP_CHANNEL 1

typedef struct ds_amqp {
    amqp_connection_state_t conn; /* NULL when not connected */
    int next_url;                 /* index of the URL to try first next time */
    bool broken;                  /* dropped: start with the URL after it */
    char host[256];               /* host:port of the connected broker */
    const char *client_name;      /* optional: the connection's name in the
                                broker's tools, e.g. "datasync-consumer a" */
    /* Optional, borrowed: where amqps:// URLs find amqp.ca_file, cert_file,
     * key_file and verify_peer. NULL: no CA, so amqps:// is refused (with
     * peer verification on, as it is then) and amqp:// works as always. */
    const struct ds_config *tls;
    const struct ds_logger *lg; /* optional: gets the verify_peer warning */
} ds_amqp;

/*
 * Connects to the first reachable broker of a space-separated URL list,
 * starting at a->next_url (the URL after it when the last connection was
 * dropped: a cluster's next member) and going round once, logs in, opens
 * DS_AMQP_CHANNEL. amqps:// URLs go over TLS with a->tls's settings; a
 * broker whose certificate does not verify is a DS_ECONNECT naming
 * amqp.ca_file, a TLS file that cannot be loaded a DS_EINVAL. timeout_ms bounds the TCP connect, the login and every
 * later socket read/write (so a black-holed broker cannot block forever);
 * heartbeat is in seconds (0: off).
 * Returns 0, or DS_ECONNECT / DS_EAMQP / DS_EINVAL (bad URL) with err saying
 * which URL failed and why (password not shown).
 */
int ds__amqp_connect(ds_amqp *a, const char *urls, int heartbeat,
                     int timeout_ms, char *err, size_t errlen);

/* Closes the channel and connection gracefully when possible, frees it,
 * leaves a->conn NULL. Safe when not connected. */
void ds__amqp_close(ds_amqp *a);

/* Drops the connection without the closing handshake (after a socket error
 * or timeout, when the handshake would only block). The next
 * ds__amqp_connect starts with the URL after this connection's: its broker
 * may be gone for good, and a host that is down costs a whole connect
 * timeout (a refused port on the same machine costs nothing, a powered-off
 * host across a network does). */
void ds__amqp_drop(ds_amqp *a);

/* Maps an RPC reply (what = the call, e.g. "queue.declare") to a DS_E code
 * and message: library errors, connection and channel closes with the
 * broker's reply code and text. Returns 0 for AMQP_RESPONSE_NORMAL. */
int ds__amqp_reply_error(amqp_rpc_reply_t r, const char *what, char *err,
                         size_t errlen);

/* Maps a rabbitmq-c status code (< 0) to a DS_E code and message. */
int ds__amqp_status_error(int status, const char *what, char *err,
                          size_t errlen);

/* True when a connection- or channel-closing reply code ends the connection
 * for good: the caller must reconnect before any other call. */
bool ds__amqp_reply_closed_connection(amqp_rpc_reply_t r);

/* Builds an amqp_bytes_t that borrows s (NULL gives empty bytes). */
amqp_bytes_t ds__amqp_str(const char *s);

/* Copies b into out as a C string when it fits (len > b.len); else "". */
void ds__amqp_copy_str(amqp_bytes_t b, char *out, size_t len);

/* Fills the properties every change event travels with: content type
 * application/json, persistent, message_id = the event id, timestamp, app
 * id "datasync", header x-origin. props and header borrow id and origin;
 * header is the one entry props' headers point at. */
void ds__amqp_event_props(amqp_basic_properties_t *props,
                          amqp_table_entry_t *header, const char *id,
                          const char *origin);

/* A marker is no change: a message of type "datasync.marker" whose
 * message_id names it. A reader of the archive appends one to know where
 * the archive ended; datasync bootstrap sends one through a peer's queue
 * and waits until that peer's consumer recorded it (everything queued
 * before it is then committed). Fills props (persistent, type, message_id
 * = id, borrowed) for a marker. */
void ds__amqp_marker_props(amqp_basic_properties_t *props, const char *id);

/* Whether props are a marker's. */
bool ds__amqp_is_marker(const amqp_basic_properties_t *props);

/* After a basic.return method frame: reads the returned message on channel
 * and copies its message_id into id ("" when it has none). Returns 0 or a
 * DS_E code with err. */
int ds__amqp_read_return(amqp_connection_state_t conn, amqp_channel_t channel,
                         char *id, size_t idlen, char *err, size_t errlen);

#endif
