/* edgemigd: the per-host daemon that receives migrations. For now it starts,
 * logs and stops cleanly on SIGTERM/SIGINT. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/config.h"
#include "util/log.h"
#include "util/version.h"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
        (void)sig;
        stop_requested = 1;
}

static const char usage[] =
    "Usage: edgemigd [--root DIR] [--listen ADDR:PORT] [--log-level LEVEL] [--log-format FMT]\n"
    "\n"
    "The edgemig host daemon. One runs per edge host and receives migrations.\n"
    "\n"
    "  --root DIR            state root (default $EDGEMIG_ROOT or /var/lib/edgemig)\n"
    "  --listen ADDR:PORT    address to accept migrations on (default 0.0.0.0:7878)\n"
    "  --log-level LEVEL     error, warn, info (default) or debug\n"
    "  --log-format FORMAT   text (default) or json\n";

int main(int argc, char **argv)
{
        static const struct option opts[] = {{"root", required_argument, NULL, 'r'},
                                             {"listen", required_argument, NULL, 'L'},
                                             {"log-level", required_argument, NULL, 'l'},
                                             {"log-format", required_argument, NULL, 'f'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
        const char *root = NULL, *listen_addr = "0.0.0.0:7878";
        enum em_log_level level = EM_LOG_INFO;
        bool json = false;
        struct em_config cfg;
        em_error_t err = NULL;
        int c;

        while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (c) {
                case 'r':
                        root = optarg;
                        break;
                case 'L':
                        listen_addr = optarg;
                        break;
                case 'l':
                        if (em_log_level_parse(optarg, &level) < 0) {
                                fprintf(stderr, "edgemigd: unknown log level '%s'\n", optarg);
                                return 2;
                        }
                        break;
                case 'f':
                        json = strcmp(optarg, "json") == 0;
                        break;
                case 'h':
                        fputs(usage, stdout);
                        return 0;
                default:
                        fputs(usage, stderr);
                        return 2;
                }
        }
        em_log_setup(level, json, 2, "edgemigd");
        if (em_config_init(&cfg, root, &err) < 0) {
                em_log_error("%s", em_error_msg(err));
                em_error_free(&err);
                return 1;
        }
        struct sigaction sa = {.sa_handler = on_signal};
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);
        em_log_info("edgemigd %s starting (root %s, listen %s)", EM_VERSION, cfg.root, listen_addr);
        while (!stop_requested)
                pause();
        em_log_info("edgemigd stopping");
        em_config_free(&cfg);
        return 0;
}
