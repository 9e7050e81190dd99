/* notify.c: sd_notify through libsystemd when the Makefile found it (DS_HAVE_SYSTEMD), no-ops otherwise. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "ids.h"
#include "notify.h"

#ifdef DS_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>

static void notify_send(dsc_notify *n, const char *state)
{
    if (n->on)
        sd_notify(0, state);
}

void dsc_notify_init(dsc_notify *n)
{
    uint64_t usec = 0;

    n->on = getenv("NOTIFY_SOCKET") != NULL;
    /* > 0 only when $WATCHDOG_USEC is set (and $WATCHDOG_PID, if set, is
     * this process). Pinging at half the period leaves a whole half for a
     * slow round of the loop. */
    n->watchdog_ms =
        n->on && sd_watchdog_enabled(0, &usec) > 0 ? usec / 2000 : 0;
    if (n->on && n->watchdog_ms == 0 && usec > 0)
        n->watchdog_ms = 1;
    n->next_watchdog = 0;
}
#else
static void notify_send(dsc_notify *n, const char *state)
{
    (void)n;
    (void)state;
}

void dsc_notify_init(dsc_notify *n)
{
    n->on = false;
    n->watchdog_ms = 0;
    n->next_watchdog = 0;
}
#endif

void dsc_notify_ready(dsc_notify *n, const char *status)
{
    char line[600];

    if (!n->on)
        return;
    snprintf(line, sizeof line, "READY=1\nSTATUS=%s", status);
    notify_send(n, line);
}

void dsc_notify_watchdog(dsc_notify *n)
{
    if (n->watchdog_ms == 0)
        return;
    uint64_t now = ds__mono_ms();
    if (now < n->next_watchdog)
        return;
    n->next_watchdog = now + n->watchdog_ms;
    notify_send(n, "WATCHDOG=1");
}

void dsc_notify_status(dsc_notify *n, const char *fmt, ...)
{
    char line[600];
    va_list ap;
    int k;

    if (!n->on)
        return;
    k = snprintf(line, sizeof line, "STATUS=");
    va_start(ap, fmt);
    vsnprintf(line + k, sizeof line - (size_t)k, fmt, ap);
    va_end(ap);
    for (char *p = line; *p; p++)
        if (*p == '\n')
            *p = ' ';
    notify_send(n, line);
}

void dsc_notify_stopping(dsc_notify *n)
{
    notify_send(n, "STOPPING=1\nSTATUS=stopping: finishing the batch in hand");
}
