#include "platform/admission.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define ADDR_MAX 64

struct child {
        pid_t pid; /* 0: free slot */
        char addr[ADDR_MAX];
        int64_t start_ms;
        bool overdue_reported;
};

struct em_admission {
        struct em_admission_limits l;
        struct child *c; /* l.max_children slots */
        size_t n;
        double tokens;
        int64_t refill_ms;
};

void em_admission_limits_init(struct em_admission_limits *l)
{
        l->max_children = 64;
        l->max_per_addr = 8;
        l->rate = 20;
        l->deadline_ms = 3600 * 1000;
        l->max_sessions_per_peer = 4;
}

int em_admission_new(const struct em_admission_limits *l, em_admission_t **out, em_error_t *err)
{
        em_admission_t *a = calloc(1, sizeof(*a));

        if (l->max_children < 1 || l->max_per_addr < 1 || l->rate < 1 || l->deadline_ms < 0) {
                free(a);
                return em_error_set(err, EINVAL, "admission limits must be positive");
        }
        if (a == NULL || (a->c = calloc((size_t)l->max_children, sizeof(*a->c))) == NULL) {
                free(a);
                return em_error_set(err, ENOMEM, "admission table");
        }
        a->l = *l;
        a->tokens = 2.0 * l->rate;
        a->refill_ms = -1;
        *out = a;
        return 0;
}

void em_admission_free(em_admission_t **a)
{
        if (*a == NULL)
                return;
        free((*a)->c);
        free(*a);
        *a = NULL;
}

/* The address part of "IP:PORT" / "[IPv6]:PORT". */
static void addr_of(const char *peer, char out[ADDR_MAX])
{
        const char *end = peer[0] == '[' ? strchr(peer, ']') : strrchr(peer, ':');
        size_t n = end ? (size_t)(end - peer) : strlen(peer);

        if (n >= ADDR_MAX)
                n = ADDR_MAX - 1;
        memcpy(out, peer, n);
        out[n] = '\0';
}

static void refill(em_admission_t *a, int64_t now_ms)
{
        if (a->refill_ms >= 0 && now_ms > a->refill_ms) {
                a->tokens += (double)(now_ms - a->refill_ms) * a->l.rate / 1000.0;
                if (a->tokens > 2.0 * a->l.rate)
                        a->tokens = 2.0 * a->l.rate;
        }
        a->refill_ms = now_ms;
}

const char *em_admission_check(em_admission_t *a, const char *peer, int64_t now_ms)
{
        char addr[ADDR_MAX];
        int same = 0;

        refill(a, now_ms);
        if (a->n >= (size_t)a->l.max_children)
                return "connections";
        addr_of(peer, addr);
        for (int i = 0; i < a->l.max_children; i++)
                same += a->c[i].pid != 0 && strcmp(a->c[i].addr, addr) == 0;
        if (same >= a->l.max_per_addr)
                return "per-peer";
        if (a->tokens < 1.0)
                return "rate";
        a->tokens -= 1.0;
        return NULL;
}

void em_admission_add(em_admission_t *a, pid_t pid, const char *peer, int64_t now_ms)
{
        for (int i = 0; i < a->l.max_children; i++) {
                if (a->c[i].pid != 0)
                        continue;
                a->c[i] = (struct child){.pid = pid, .start_ms = now_ms};
                addr_of(peer, a->c[i].addr);
                a->n++;
                return;
        }
}

void em_admission_remove(em_admission_t *a, pid_t pid)
{
        for (int i = 0; i < a->l.max_children; i++) {
                if (a->c[i].pid == pid && pid != 0) {
                        a->c[i].pid = 0;
                        a->n--;
                        return;
                }
        }
}

pid_t em_admission_overdue(em_admission_t *a, int64_t now_ms, const char **peer)
{
        for (int i = 0; a->l.deadline_ms > 0 && i < a->l.max_children; i++) {
                struct child *c = &a->c[i];
                if (c->pid == 0 || c->overdue_reported || now_ms - c->start_ms < a->l.deadline_ms)
                        continue;
                c->overdue_reported = true;
                *peer = c->addr;
                return c->pid;
        }
        return 0;
}

size_t em_admission_count(const em_admission_t *a)
{
        return a->n;
}
