/* reload.c: SIGHUP: read the configuration again, apply the keys that are safe to change while running, name the others. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "reload.h"

/* One key that can change while running: how to take its new value. */
typedef struct reloadable {
    const char *key;
    bool (*take)(dsc_settings *st, const ds_config *next); /* false: kept */
} reloadable;

static bool take_level(dsc_settings *st, const ds_config *next)
{
    st->cfg->log_level = next->log_level;
    st->lg->level = next->log_level;
    return true;
}

static bool take_format(dsc_settings *st, const ds_config *next)
{
    st->cfg->log_format = next->log_format;
    ds__log_sink_set_format(st->sink, next->log_format);
    return true;
}

static bool take_file(dsc_settings *st, const ds_config *next)
{
    char err[DS_ERRMSG_SIZE];

    if (ds__log_sink_reopen(st->sink, next->log_file, err, sizeof err) != 0) {
        DS_LOG(st->lg, DS_LOG_ERROR,
               "reload: log.file: %s; still writing to %s", err,
               st->cfg->log_file[0] ? st->cfg->log_file : "stderr");
        return false;
    }
    memcpy(st->cfg->log_file, next->log_file, sizeof st->cfg->log_file);
    return true;
}

/* The loop reads both before each batch; the batch in hand is done. */
static bool take_batch_max(dsc_settings *st, const ds_config *next)
{
    st->cfg->apply_batch_max = next->apply_batch_max;
    return true;
}

static bool take_batch_wait(dsc_settings *st, const ds_config *next)
{
    st->cfg->apply_batch_wait_ms = next->apply_batch_wait_ms;
    return true;
}

/* The endpoint on the new address, or none. The old one stops first (the
 * new address may be the same port on another host name); when the new
 * one cannot listen, the old one comes back, logged at ERROR like a log
 * file that cannot be opened. */
static bool take_metrics_listen(dsc_settings *st, const ds_config *next)
{
    char err[DS_ERRMSG_SIZE];
    const char *old = st->cfg->metrics_listen;

    if (!st->http)
        return false;
    dsc_http_stop(*st->http);
    *st->http = NULL;
    if (!next->metrics_listen[0] ||
        dsc_http_start(st->http, next->metrics_listen, st->metrics, st->lg, err,
                       sizeof err) == 0) {
        memcpy(st->cfg->metrics_listen, next->metrics_listen,
               sizeof st->cfg->metrics_listen);
        return true;
    }
    DS_LOG(st->lg, DS_LOG_ERROR, "reload: metrics.listen: %s; still %s%s", err,
           old[0] ? "on " : "off", old);
    if (old[0] && dsc_http_start(st->http, old, st->metrics, st->lg, err,
                                 sizeof err) != 0)
        DS_LOG(st->lg, DS_LOG_ERROR,
               "reload: metrics.listen: %s %s again: %s; no endpoint until "
               "a restart",
               "cannot listen on", old, err);
    return false;
}
static const reloadable reloadables[] = {
    {"log.level", take_level},
    {"log.format", take_format},
    {"log.file", take_file},
    {"apply.batch_max", take_batch_max},
    {"apply.batch_wait_ms", take_batch_wait},
    {"metrics.listen", take_metrics_listen},
};

#define N_RELOADABLES (sizeof reloadables / sizeof reloadables[0])

typedef struct changes {
    dsc_settings *st;
    const ds_config *next;
    char applied[256]; /* the keys taken, for the summary line */
    int kept;          /* keys that need a restart */
} changes;

static void on_change(const char *key, void *ctx)
{
    changes *ch = ctx;

    for (size_t i = 0; i < N_RELOADABLES; i++) {
        if (strcmp(reloadables[i].key, key) != 0)
            continue;
        if (!reloadables[i].take(ch->st, ch->next))
            return;
        size_t used = strlen(ch->applied);
        snprintf(ch->applied + used, sizeof ch->applied - used, "%s%s",
                 used ? ", " : "", key);
        return;
    }
    ch->kept++;
    DS_LOG(ch->st->lg, DS_LOG_WARN, "reload: %s changed; restart to apply",
           key);
}

int dsc_reload(dsc_settings *st)
{
    char err[DS_ERRMSG_SIZE];
    ds_config next;
    int rc;

    /* First, whatever the file says: logrotate has moved the file away and
     * signalled; lines from here on go to a new one at the same path. */
    if (ds__log_sink_reopen(st->sink, st->cfg->log_file, err, sizeof err) != 0)
        DS_LOG(st->lg, DS_LOG_ERROR, "reload: log file: %s", err);
    if (!st->path) {
        DS_LOG(st->lg, DS_LOG_INFO,
               "reload: no configuration file (-c or DATASYNC_CONFIG); log "
               "reopened, nothing else to read");
        return 0;
    }
    ds__config_defaults(&next);
    rc = ds__config_load(&next, st->path, err, sizeof err);
    if (rc) {
        DS_LOG(st->lg, DS_LOG_ERROR,
               "reload: %s; nothing changed, the running settings stay", err);
        return rc;
    }
    changes ch = {.st = st, .next = &next};
    ds__config_each_change(st->cfg, &next, on_change, &ch);
    DS_LOG(st->lg, DS_LOG_INFO, "reload: %s read; applied: %s%s", st->path,
           ch.applied[0] ? ch.applied : "nothing changed",
           ch.kept ? "; the other changes wait for a restart" : "");
    return 0;
}
