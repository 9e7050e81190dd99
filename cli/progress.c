/* progress.c: the progress line and the rate limit of the CLI's long-running commands. */
#include <stdio.h>

#include "cli.h"
#include "ids.h"

void cli_progress_start(cli_progress *pg, const char *what, uint64_t total)
{
    pg->on = cli_interactive();
    pg->what = what;
    pg->total = total;
    pg->start_ms = ds__mono_ms();
    pg->drawn_ms = 0;
}

void cli_progress_draw(cli_progress *pg, uint64_t done, const char *extra,
                       bool force)
{
    uint64_t now = ds__mono_ms(), elapsed, rate, left;

    if (!pg->on || (!force && now - pg->drawn_ms < 200))
        return;
    pg->drawn_ms = now;
    elapsed = now - pg->start_ms;
    rate = elapsed ? done * 1000u / elapsed : 0;
    if (pg->total) {
        left = rate && pg->total > done ? (pg->total - done) / rate : 0;
        fprintf(stderr, "\r%llu/%llu %s%s, %llu/s, %llu:%02llu left\033[K",
                (unsigned long long)done, (unsigned long long)pg->total,
                pg->what, extra ? extra : "", (unsigned long long)rate,
                (unsigned long long)(left / 60),
                (unsigned long long)(left % 60));
    } else {
        fprintf(stderr, "\r%llu %s%s, %llu/s\033[K", (unsigned long long)done,
                pg->what, extra ? extra : "", (unsigned long long)rate);
    }
}

void cli_progress_end(cli_progress *pg)
{
    if (pg->on)
        fputs("\r\033[K", stderr);
}

uint64_t cli_rate_slot(uint64_t start_ms, unsigned long rate, uint64_t i)
{
    return rate ? start_ms + i * 1000u / rate : 0;
}

void cli_rate_wait(uint64_t slot)
{
    uint64_t now;

    while ((now = ds__mono_ms()) < slot && !cli_interrupted())
        cli_sleep_ms(slot - now < 200 ? slot - now : 200);
}

const char *cli_thousands(uint64_t n, char *buf, size_t len)
{
    char digits[32];
    int nd = snprintf(digits, sizeof digits, "%llu", (unsigned long long)n);
    size_t o = 0;

    for (int i = 0; i < nd && o + 2 < len; i++) {
        if (i > 0 && (nd - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
    return buf;
}
