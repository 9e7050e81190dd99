/* logq.c: the producer's log messages, queued under its lock and handed to the host's callback after the lock is released. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "logq.h"

void ds__logq_add(ds_logq *q, const ds_logger *lg, ds_log_level level,
                  const char *fmt, ...)
{
    va_list ap;
    unsigned at;

    if (!lg->fn || level < lg->level)
        return;
    if (q->count == DS_LOGQ_MAX) {
        q->dropped++;
        return;
    }
    at = (q->head + q->count) % DS_LOGQ_MAX;
    q->msgs[at].level = level;
    va_start(ap, fmt);
    vsnprintf(q->msgs[at].text, sizeof q->msgs[at].text, fmt, ap);
    va_end(ap);
    q->count++;
}

void ds__logq_unlock(ds_logq *q, const ds_logger *lg, pthread_mutex_t *lock)
{
    char text[DS_LOGQ_MSG];
    ds_log_level level;
    ds_log_fn fn;
    void *userdata;

    if ((q->count == 0 && q->dropped == 0) || q->delivering) {
        pthread_mutex_unlock(lock);
        return;
    }
    q->delivering = true;
    while (q->count > 0 || q->dropped > 0) {
        if (q->count > 0) {
            level = q->msgs[q->head].level;
            memcpy(text, q->msgs[q->head].text, sizeof text);
            q->head = (q->head + 1) % DS_LOGQ_MAX;
            q->count--;
        } else {
            level = DS_LOG_WARN;
            snprintf(text, sizeof text,
                     "%u log messages dropped: the log callback fell behind",
                     q->dropped);
            q->dropped = 0;
        }
        /* Read under the lock: ds_producer_set_log may change them. */
        fn = lg->fn;
        userdata = lg->userdata;
        pthread_mutex_unlock(lock);
        if (fn)
            fn(userdata, level, text);
        pthread_mutex_lock(lock);
    }
    q->delivering = false;
    pthread_mutex_unlock(lock);
}

void ds__logq_after_fork(ds_logq *q)
{
    q->head = q->count = q->dropped = 0;
    q->delivering = false;
}
