/* edgemig debug decode FILE: what is inside one of edgemig's binary files. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "migrate/common/decode.h"
#include "util/cleanup.h"
#include "util/json.h"

static const char usage[] =
    "Usage: edgemig debug decode FILE [--json] [--limit N]\n"
    "\n"
    "Print what is inside one of edgemig's binary files, found by its magic,\n"
    "so that a stuck session's staging directory (<root>/incoming/ID/,\n"
    "<root>/outgoing/ID/) or a page cache can be looked into:\n"
    "  EMF1       a frame stream (a captured session): every frame's type,\n"
    "             sequence number, flags, stream and lengths; PAGES_DATA\n"
    "             payloads op by op, JSON payloads as JSON; a stream that breaks\n"
    "             off is shown up to the break, with the reason\n"
    "  ops        a raw page-delta stream (BEGIN/ZERO/REF/DATA/XDATA/...)\n"
    "  EMPCIDX1   a page cache index (<root>/pagecache/NAME/PEER/index.bin)\n"
    "  EMSHADW1   the source's memory shadow index (<root>/known/NAME/...)\n"
    "  EMKNOWN1   a post-copy known-pages list (edgemig-known-PID.bin)\n"
    "  CRIU       pagemap-ID.img (entries, with a summary of the pages-N.img\n"
    "             next to it), or a pages-N.img\n"
    "The reading is the one a migration does (the same library code).\n"
    "\n"
    "Options:\n"
    "  --json       print everything as one JSON object\n"
    "  --limit N    in text, at most N items of each list (default 50; 0: all)\n"
    "\n"
    "Exit status: 0 decoded; 1 unreadable or not a known format; 2 usage.\n";

static void print_value(const char *k, const json_t *v)
{
        cleanup_free char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);

        printf(" %s=%s", k, t ? t : "?");
}

static void print_list(const char *key, const json_t *a, int depth, size_t limit);

/* One item on one line (lists as key[N]), then its lists below it. */
static void print_item(const json_t *v, int depth, size_t limit)
{
        const char *k;
        json_t *sub;

        printf("%*s", depth * 2, "");
        if (!json_is_object(v))
                print_value("value", v);
        json_object_foreach((json_t *)v, k, sub)
        {
                if (json_is_array(sub))
                        printf(" %s[%zu]", k, json_array_size(sub));
                else
                        print_value(k, sub);
        }
        putchar('\n');
        json_object_foreach((json_t *)v, k, sub)
        {
                if (json_is_array(sub) && json_array_size(sub) > 0)
                        print_list(k, sub, depth + 1, limit);
        }
}

static void print_list(const char *key, const json_t *a, int depth, size_t limit)
{
        size_t i;
        json_t *v;

        printf("%*s%s (%zu):\n", depth * 2, "", key, json_array_size(a));
        json_array_foreach(a, i, v)
        {
                if (limit && i >= limit) {
                        printf("%*s... %zu more (--limit)\n", depth * 2 + 2, "",
                               json_array_size(a) - i);
                        break;
                }
                print_item(v, depth + 1, limit);
        }
}

static void print_text(const json_t *j, size_t limit)
{
        const char *k;
        json_t *v;

        printf("%s: %s\n", em_json_str(j, "file"), em_json_str(j, "format"));
        json_object_foreach((json_t *)j, k, v)
        {
                if (strcmp(k, "file") == 0 || strcmp(k, "format") == 0 || json_is_array(v))
                        continue;
                printf(" ");
                print_value(k, v);
                putchar('\n');
        }
        json_object_foreach((json_t *)j, k, v)
        {
                if (json_is_array(v))
                        print_list(k, v, 1, limit);
        }
}

static int cmd_decode(int argc, char **argv, em_error_t *err)
{
        cleanup_json json_t *j = NULL;
        bool json = false;
        int limit = 50, first;
        const struct em_opt table[] = {
            EM_OPT_FLAG("json", 0, &json),
            EM_OPT_INT("limit", 0, &limit, 0, 1000000000),
            EM_OPT_END,
        };
        int r = cli_parse(usage, table, argc, argv, &first, err);

        if (r != 0)
                return r < 0 ? 2 : 0;
        if (cli_operands(argc, argv, first, 1, 1, "FILE", err) < 0)
                return 2;
        if (em_decode_file(argv[first], &j, err) < 0)
                return 1;
        if (json)
                return em_json_print(j, err) < 0 ? 1 : 0;
        print_text(j, (size_t)limit);
        return 0;
}

int cmd_debug(struct em_cli *cli, int argc, char **argv, em_error_t *err)
{
        (void)cli;
        if (argc >= 2 && strcmp(argv[1], "decode") == 0)
                return cmd_decode(argc - 1, argv + 1, err);
        if (argc >= 2 && strcmp(argv[1], "--help") != 0 && strcmp(argv[1], "-h") != 0)
                return em_error_set(err, 0, "unknown debug command '%s'; see --help", argv[1]), 2;
        cli_print_help(usage);
        return argc >= 2 ? 0 : 2;
}
