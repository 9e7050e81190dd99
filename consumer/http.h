/* http.h: the consumer's HTTP endpoint, GET /metrics and GET /health, served by libmicrohttpd on a thread of its own. */
#ifndef DS_CONSUMER_HTTP_H
#define DS_CONSUMER_HTTP_H

#include <stddef.h>

#include "log.h"
#include "metrics.h"

/* At most this many connections at once; more wait in the listen queue
 * (64) until one ends or is closed for being idle. */
#define DSC_HTTP_MAX_CONNECTIONS 256
/* A connection idle this long is closed (a slow or silent client). */
#define DSC_HTTP_TIMEOUT_S 10
/* Bytes a request's line and headers may take; a longer one gets 414/431. */
#define DSC_HTTP_MEMORY_LIMIT (16 * 1024)

typedef struct dsc_http dsc_http;

/*
 * Listens on listen ("HOST:PORT", metrics.listen; the host is resolved, the
 * first address taken) and serves from libmicrohttpd's own polling thread,
 * which never touches the apply loop's state: it reads m (borrowed, must
 * outlive the endpoint) and logs through lg (borrowed) at debug level.
 *   GET|HEAD /metrics  200, Prometheus text format 0.0.4
 *   GET|HEAD /health   200 "ok", or 503 with a one-line reason
 *   other paths        404; other methods on the two paths 405
 * Returns 0 and *out, or DS_ECONFIG (the address does not resolve),
 * DS_EIO (cannot listen: in use, no permission...) or DS_ENOMEM, with err.
 * Call from the main thread, before other threads that take signals: the
 * endpoint's thread blocks every signal.
 */
int dsc_http_start(dsc_http **out, const char *listen, dsc_metrics *m,
                   const ds_logger *lg, char *err, size_t errlen);

/* Stops the thread, closes every connection and the socket, frees h. NULL
 * is a no-op. */
void dsc_http_stop(dsc_http *h);

#endif
