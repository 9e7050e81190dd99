/* consumer.h: the daemon's loop: gather a batch, check it, apply it, dead-letter the poison, ack. */
#ifndef DS_CONSUMER_CONSUMER_H
#define DS_CONSUMER_CONSUMER_H

#include <signal.h>
#include <stddef.h>

#include "config.h"
#include "log.h"
#include "reload.h"

typedef struct dsc_consumer dsc_consumer;

/*
 * Starts a consumer: connects to the database, creates the metadata tables
 * when they are missing, reads the catalogue of apply.tables, connects to
 * the broker, declares the topology and consumes its queue exclusively.
 * The database or broker not up yet, or another consumer holding the
 * queue, is waited for with backoff (logged) until it passes or *stop is
 * set. cfg and lg are borrowed and must outlive it; the loop ends once
 * *stop is non-zero; each change of *hangups (SIGHUPs, may be NULL)
 * reloads the settings given to dsc_consumer_set_reload (or is logged as
 * ignored without them). Returns 0 and *out; DS_ECLOSED when *stop was set
 * while it waited (a clean stop: the caller exits 0); or a DS_E code with
 * err (the caller prints it and exits 1).
 */
int dsc_consumer_new(dsc_consumer **out, const ds_config *cfg,
                     const ds_logger *lg, volatile sig_atomic_t *stop,
                     volatile sig_atomic_t *hangups, char *err, size_t errlen);

/* What a SIGHUP reloads (see dsc_reload); settings->cfg and ->lg must be
 * the cfg and lg given to dsc_consumer_new. Borrowed; its http and metrics
 * are set to the consumer's endpoint here. */
void dsc_consumer_set_reload(dsc_consumer *c, dsc_settings *settings);

/* Runs until *stop: then finishes the batch in hand (committed and acked,
 * or left unacked for redelivery if it cannot be within about 4 s), closes
 * the broker connection and returns 0. */
int dsc_consumer_run(dsc_consumer *c);

/* Closes everything and frees c. NULL is a no-op. */
void dsc_consumer_free(dsc_consumer *c);

#endif
