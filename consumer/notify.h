/* notify.h: tells systemd how the consumer is doing (sd_notify: READY, WATCHDOG, STOPPING, STATUS), or nothing when built without libsystemd or run outside a notify unit. */
#ifndef DS_CONSUMER_NOTIFY_H
#define DS_CONSUMER_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

/* One per consumer; the apply loop's thread only. */
typedef struct dsc_notify {
    bool on;                /* $NOTIFY_SOCKET was set at start */
    uint64_t watchdog_ms;   /* ping period: half of WatchdogSec; 0 = none */
    uint64_t next_watchdog; /* ds__mono_ms */
} dsc_notify;

/* Reads the environment systemd gave ($NOTIFY_SOCKET, $WATCHDOG_USEC). */
void dsc_notify_init(dsc_notify *n);

/* READY=1 with a STATUS line: start-up is over, the queue is consumed. */
void dsc_notify_ready(dsc_notify *n, const char *status);

/* WATCHDOG=1, at most every watchdog_ms: call it as often as liked
 * from every loop, wait and backoff of the apply loop. */
void dsc_notify_watchdog(dsc_notify *n);

/* STATUS=, one line for `systemctl status`. */
void dsc_notify_status(dsc_notify *n, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* STOPPING=1: the batch in hand is finished, then the process exits. */
void dsc_notify_stopping(dsc_notify *n);

#endif
