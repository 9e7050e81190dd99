/* options.c: ds_options, the public face of a producer's configuration (datasync.conf keys). */
#include <stdlib.h>
#include <string.h>

#include "producer_private.h"

ds_options *ds_options_new(void)
{
    ds_options *o = calloc(1, sizeof *o);
    if (o)
        ds__config_defaults(&o->cfg);
    return o;
}

int ds_options_load(ds_options *opts, const char *path)
{
    if (!opts || !path)
        return DS_EINVAL;
    opts->errmsg[0] = '\0';
    return ds__config_load(&opts->cfg, path, opts->errmsg, sizeof opts->errmsg);
}

int ds_options_set(ds_options *opts, const char *key, const char *value)
{
    if (!opts || !key || !value)
        return DS_EINVAL;
    opts->errmsg[0] = '\0';
    return ds__config_set(&opts->cfg, key, value, opts->errmsg,
                          sizeof opts->errmsg);
}

const char *ds_options_errmsg(const ds_options *opts)
{
    return opts ? opts->errmsg : "";
}

void ds_options_free(ds_options *opts)
{
    free(opts);
}
