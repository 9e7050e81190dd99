/* error.c: error-code names and texts, made from the one list in datasync.h. */
#include <stdarg.h>
#include <stdio.h>

#include "error.h"

#define DS__STR(x) #x
#define DS__XSTR(x) DS__STR(x)

const char *ds_strerror(int err)
{
    switch (err) {
    case DS_OK:
        return "success";
#define DS__ERR_TEXT(name, code, text)                                         \
    case DS_##name:                                                            \
        return text;
        DS_ERRNO_MAP(DS__ERR_TEXT)
#undef DS__ERR_TEXT
    }
    return "unknown error";
}

const char *ds_err_name(int err)
{
    switch (err) {
    case DS_OK:
        return "OK";
#define DS__ERR_NAME(name, code, text)                                         \
    case DS_##name:                                                            \
        return #name;
        DS_ERRNO_MAP(DS__ERR_NAME)
#undef DS__ERR_NAME
    }
    return "UNKNOWN";
}

const char *ds_version(void)
{
    return DS__XSTR(DS_VERSION_MAJOR) "." DS__XSTR(
        DS_VERSION_MINOR) "." DS__XSTR(DS_VERSION_PATCH);
}

int ds__seterr(char *buf, size_t len, int code, const char *fmt, ...)
{
    if (buf && len > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, len, fmt, ap);
        va_end(ap);
    }
    return code;
}
