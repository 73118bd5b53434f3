#include "migrate/target/prewarm.h"

#include "checkpoint/kdat.h"
#include "container/container.h"
#include "util/clock.h"
#include "util/fault.h"
#include "util/log.h"

int em_target_prewarm_runc(const struct em_config *cfg, const char *name, const json_t *spec,
                           bool *net_ready, em_error_t *err)
{
        em_kdat_warm_quiet(cfg);
        return em_container_prewarm(cfg, name, spec, net_ready, err);
}

int em_prewarm_run(const struct em_target_ops *ops, const struct em_config *cfg, const char *name,
                   const json_t *spec, int fd, struct em_prewarm *pw, em_error_t *err)
{
        int64_t t0 = em_mono_ms();
        em_error_t e = NULL;

        if (pw->done || ops->prewarm == NULL)
                return 0;
        pw->done = true;
        if (ops->prewarm(cfg, name, spec, &pw->net_ready, &e) < 0) {
                em_log_warn("%s (the restore sets it up instead)", em_error_msg(e));
                em_error_free(&e);
                pw->net_ready = false;
        }
        pw->end_ms = em_mono_ms();
        pw->ms = pw->end_ms - t0;
        em_log_info("pre-warmed %s in %lld ms%s", name, (long long)pw->ms,
                    pw->net_ready ? " (network namespace ready)" : "");
        return em_fault("target.after-prewarm", fd, err);
}

void em_prewarm_timing(const struct em_prewarm *pw, int64_t final_at, json_t *timing)
{
        if (!pw->done || final_at < pw->end_ms)
                return;
        json_object_set_new(timing, "prewarm_ms", json_integer(pw->ms));
        json_object_set_new(timing, "prewarm_lead_ms", json_integer(final_at - pw->end_ms));
}
