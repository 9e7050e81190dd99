/* consumer.h: the daemon's loop: gather a batch, check it, apply it, dead-letter the poison, ack. */
#ifndef DS_CONSUMER_CONSUMER_H
#define DS_CONSUMER_CONSUMER_H

#include <signal.h>
#include <stddef.h>

#include "config.h"
#include "log.h"

typedef struct dsc_consumer dsc_consumer;

/*
 * Starts a consumer: connects to the database, creates the metadata tables,
 * reads the catalogue of apply.tables, connects to the broker and declares
 * the topology. cfg and lg are borrowed and must outlive it; the loop ends
 * once *stop is non-zero. Returns 0 and *out, or a DS_E code with err
 * (the caller prints it and exits 1).
 */
int dsc_consumer_new(dsc_consumer **out, const ds_config *cfg,
                     const ds_logger *lg, volatile sig_atomic_t *stop,
                     char *err, size_t errlen);

/* Runs until *stop: then finishes the batch in hand (committed and acked,
 * or left unacked for redelivery if it cannot be within about 4 s), closes
 * the broker connection and returns 0. */
int dsc_consumer_run(dsc_consumer *c);

/* Closes everything and frees c. NULL is a no-op. */
void dsc_consumer_free(dsc_consumer *c);

#endif
