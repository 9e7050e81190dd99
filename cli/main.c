/* main.c: the datasync command: global options, the command table, --help and --version. */
#include <locale.h>
#include <string.h>

#include "cli.h"

typedef struct command {
    const char *name;
    const char *summary;
    int (*run)(cli_ctx *ctx, int argc, char **argv);
} command;

static const command commands[] = {
    {"setup", "declare the exchanges and each node's queues (idempotent)",
     cli_cmd_setup},
    {"publish", "publish one change, or changes and events one per line",
     cli_cmd_publish},
    {"replay", "publish whole events again, to every node or to one",
     cli_cmd_replay},
    {"dlq", "list, export, replay or purge a node's dead letters", cli_cmd_dlq},
    {"status", "queue depth, consumers and dead letters per node",
     cli_cmd_status},
    {"bootstrap", "give a new or rebuilt server a peer's rows, then its queue",
     cli_cmd_bootstrap},
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void print_help(FILE *out)
{
    fputs("Usage: datasync [-c FILE] [-v] COMMAND [OPTIONS]\n"
          "\n"
          "Operates datasync: the broker topology, publishing and replaying\n"
          "changes, dead letters, and the state of each node's queue.\n"
          "\n"
          "Options:\n"
          "  -c, --config FILE  the configuration (default: $DATASYNC_CONFIG,\n"
          "                     else built-in defaults); see datasync.conf(5)\n"
          "  -v, --verbose      also libdatasync's info messages\n"
          "  -h, --help         this help; COMMAND --help for a command's\n"
          "  -V, --version      the version\n"
          "\n"
          "Commands:\n",
          out);
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fputc('\n', out);
    cli_print_exit_codes(out);
    fputs("\nSee datasync(1).\n", out);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    cli_ctx ctx;
    int c;

    setlocale(LC_CTYPE, "");
    memset(&ctx, 0, sizeof ctx);
    /* '+': stop at the command, whose options are its own. */
    while ((c = cli_getopt(&ctx, argc, argv, "+c:vhV", longopts)) != -1) {
        switch (c) {
        case 'c':
            ctx.config_arg = optarg;
            break;
        case 'v':
            ctx.verbose = true;
            break;
        case 'h':
            print_help(stdout);
            return CLI_EXIT_OK;
        case 'V':
            printf("datasync %s\n", ds_version());
            return CLI_EXIT_OK;
        default:
            return CLI_EXIT_USAGE;
        }
    }
    if (optind >= argc)
        return cli_usage_error(&ctx, "no command given (setup, publish, "
                                     "replay, dlq, status, bootstrap)");
    if (strcmp(argv[optind], "help") == 0) {
        /* "datasync help publish" is "datasync publish --help". */
        if (optind + 1 < argc) {
            char *args[] = {argv[optind + 1], (char *)"--help", NULL};
            for (size_t i = 0; i < N_COMMANDS; i++) {
                if (strcmp(commands[i].name, args[0]) == 0) {
                    ctx.cmd = commands[i].name;
                    optind = 0;
                    return commands[i].run(&ctx, 2, args);
                }
            }
            return cli_usage_error(&ctx, "unknown command '%s'", args[0]);
        }
        print_help(stdout);
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (strcmp(commands[i].name, argv[optind]) == 0) {
            char **cargv = argv + optind;
            int cargc = argc - optind;

            ctx.cmd = commands[i].name;
            optind = 0; /* GNU getopt starts over at cargv[1] */
            return commands[i].run(&ctx, cargc, cargv);
        }
    }
    return cli_usage_error(&ctx,
                           "unknown command '%s' (setup, publish, "
                           "replay, dlq, status, bootstrap)",
                           argv[optind]);
}
