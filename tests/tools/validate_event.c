/* validate_event.c: runs ds__event_parse on files for the agreement check. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "event.h"

/* Reads a whole file into a malloc'd buffer; NULL with errno set. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL, *grown;
    size_t cap = 0, n = 0;

    if (!f)
        return NULL;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            if (!(grown = realloc(buf, cap)))
                goto fail;
            buf = grown;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        errno = EIO;
        goto fail;
    }
    fclose(f);
    *len = n;
    return buf;

fail:
    free(buf);
    fclose(f);
    return NULL;
}

/* Messages can quote member names, which may hold any character; the
 * agreement script needs exactly one line per file. */
static void print_invalid(const char *path, const char *msg)
{
    printf("%s: invalid: ", path);
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            printf("\\x%02x", *p);
        else
            putchar(*p);
    }
    putchar('\n');
}

int main(int argc, char **argv)
{
    int status = 0;

    if (argc < 2) {
        fprintf(stderr, "usage: validate_event FILE...\n");
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        char err[DS_ERRMSG_SIZE] = "";
        ds_event ev;
        size_t len = 0;
        char *body = read_file(argv[i], &len);

        if (!body) {
            fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
            status = 1; /* not processed: the caller must not count it */
            continue;
        }
        /* The buffer is not terminated on purpose: parsing must honour len. */
        if (ds__event_parse(&ev, body, len, err, sizeof(err)) == 0)
            printf("%s: ok\n", argv[i]);
        else
            print_invalid(argv[i], err);
        ds__event_clear(&ev);
        free(body);
    }
    return status;
}
