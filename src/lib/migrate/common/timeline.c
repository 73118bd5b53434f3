#include "migrate/common/timeline.h"

#include <stdbool.h>
#include <string.h>

#include "util/json.h"

static void print_phases(FILE *f, const json_t *r)
{
        size_t i;
        json_t *p;

        fprintf(f, "  %-10s %-6s %8s %8s %12s\n", "phase", "side", "start", "ms", "wire bytes");
        json_array_foreach(json_object_get(r, "phases"), i, p)
        {
                const char *side = em_json_str(p, "side");
                bool target = side != NULL && strcmp(side, "target") == 0;
                fprintf(f, "  %-10.20s %-6s %8lld %8lld ", em_json_str(p, "name") ?: "?",
                        target ? "target" : "source", em_json_int(p, "start_ms", 0),
                        em_json_int(p, "duration_ms", -1));
                if (target)
                        fprintf(f, "%12s\n", "-");
                else
                        fprintf(f, "%12lld\n", em_json_int(p, "bytes_wire", 0));
        }
}

static void print_rounds(FILE *f, const json_t *r)
{
        size_t i;
        json_t *rd;

        json_array_foreach(json_object_get(r, "rounds"), i, rd)
        {
                fprintf(f, "  round %lld: %lld dirty bytes, %lld on the wire, %lld ms",
                        em_json_int(rd, "round", 0), em_json_int(rd, "dirty_bytes", 0),
                        em_json_int(rd, "bytes_wire", 0), em_json_int(rd, "duration_ms", 0));
                if (json_object_get(rd, "left_bytes"))
                        fprintf(f, "; %lld bytes left", em_json_int(rd, "left_bytes", 0));
                if (json_object_get(rd, "throttle_pct"))
                        fprintf(f, "; throttled to %lld %% CPU",
                                em_json_int(rd, "throttle_pct", 0));
                fputc('\n', f);
        }
        if (em_json_str(r, "stop_reason"))
                fprintf(f, "  pre-copy stopped: %s%s\n", em_json_str(r, "stop_reason"),
                        em_json_str(r, "final_mode") ? ", handed off with lazy pages" : "");
}

void em_timeline_print(FILE *f, const json_t *r)
{
        print_phases(f, r);
        print_rounds(f, r);
        if (json_is_true(json_object_get(r, "ok")))
                fprintf(f, "  handoff time %lld ms, downtime %lld ms, %.2f MB on the wire\n",
                        em_json_int(r, "handoff_ms", -1), em_json_int(r, "downtime_ms", -1),
                        (double)em_json_int(r, "bytes_wire", 0) / 1e6);
}
