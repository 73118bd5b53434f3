#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "checkpoint/seccomp_eval.h"

#define KILL_PROCESS 0x80000000u
#define KILL_THREAD  0x00000000u
#define TRAP         0x00030000u
#define USER_NOTIF   0x7fc00000u
#define TRACE        0x7ff00000u
#define LOG          0x7ffc0000u

struct prog {
        uint8_t b[8 * 64];
        size_t n;
};

static void ins(struct prog *p, uint16_t code, uint8_t jt, uint8_t jf, uint32_t k)
{
        uint8_t *o = p->b + p->n;

        o[0] = (uint8_t)code, o[1] = (uint8_t)(code >> 8), o[2] = jt, o[3] = jf;
        for (int i = 0; i < 4; i++)
                o[4 + i] = (uint8_t)(k >> (8 * i));
        p->n += 8;
}

/* ld [4]; jeq X86_64 ? next : kill; ld [0]; jeq 165 ? errno : allow */
static void arch_and_mount(struct prog *p)
{
        ins(p, 0x20, 0, 0, 4);
        ins(p, 0x15, 1, 0, EM_AUDIT_ARCH_X86_64);
        ins(p, 0x06, 0, 0, KILL_PROCESS);
        ins(p, 0x20, 0, 0, 0);
        ins(p, 0x15, 0, 1, 165);
        ins(p, 0x06, 0, 0, EM_SECCOMP_RET_ERRNO | 1);
        ins(p, 0x06, 0, 0, EM_SECCOMP_RET_ALLOW);
}

static void test_run(void **state)
{
        struct prog p = {0};
        uint32_t r;

        (void)state;
        arch_and_mount(&p);
        assert_int_equal(em_seccomp_run(p.b, p.n, EM_AUDIT_ARCH_X86_64, 165, &r), 0);
        assert_true(r == (EM_SECCOMP_RET_ERRNO | 1));
        assert_int_equal(em_seccomp_run(p.b, p.n, EM_AUDIT_ARCH_X86_64, 0, &r), 0);
        assert_true(r == EM_SECCOMP_RET_ALLOW);
        assert_int_equal(em_seccomp_run(p.b, p.n, EM_AUDIT_ARCH_I386, 21, &r), 0);
        assert_true(r == KILL_PROCESS);
        /* x32 numbers are other numbers: this filter lets x32 mount through */
        assert_int_equal(
            em_seccomp_run(p.b, p.n, EM_AUDIT_ARCH_X86_64, 165 | EM_X32_SYSCALL_BIT, &r), 0);
        assert_true(r == EM_SECCOMP_RET_ALLOW);
}

static void test_alu_and_memory(void **state)
{
        struct prog p = {0};
        uint32_t r;

        (void)state;
        /* A = nr; M[3] = A; A = 0; X = 7; A = M[3]; A += X; A &= 0xff; tax;
         * txa; jset 0x80 ? allow : errno */
        ins(&p, 0x20, 0, 0, 0);
        ins(&p, 0x02, 0, 0, 3);
        ins(&p, 0x00, 0, 0, 0);
        ins(&p, 0x01, 0, 0, 7);
        ins(&p, 0x60, 0, 0, 3);
        ins(&p, 0x0c, 0, 0, 0);
        ins(&p, 0x54, 0, 0, 0xff);
        ins(&p, 0x07, 0, 0, 0);
        ins(&p, 0x87, 0, 0, 0);
        ins(&p, 0x45, 0, 1, 0x80);
        ins(&p, 0x06, 0, 0, EM_SECCOMP_RET_ALLOW);
        ins(&p, 0x06, 0, 0, EM_SECCOMP_RET_ERRNO);
        assert_int_equal(em_seccomp_run(p.b, p.n, 0, 121, &r), 0); /* 121 + 7 = 0x80 */
        assert_true(r == EM_SECCOMP_RET_ALLOW);
        assert_int_equal(em_seccomp_run(p.b, p.n, 0, 1, &r), 0);
        assert_true(r == EM_SECCOMP_RET_ERRNO);
}

static void test_invalid(void **state)
{
        static const struct {
                uint16_t code;
                uint32_t k;
        } bad[] = {
            {0x28, 0},  /* ld half-word */
            {0x20, 64}, /* load past seccomp_data */
            {0x20, 2},  /* unaligned */
            {0x40, 0},  /* ld ind */
            {0x60, 16}, /* scratch index out of range */
            {0x34, 0},  /* div by 0 */
            {0x05, 5},  /* ja past the end */
            {0xc4, 0},  /* unknown ALU op */
            {0x27, 0},  /* unknown misc */
        };
        uint32_t r;

        (void)state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                struct prog p = {0};
                ins(&p, bad[i].code, 0, 0, bad[i].k);
                ins(&p, 0x06, 0, 0, EM_SECCOMP_RET_ALLOW);
                assert_int_equal(em_seccomp_run(p.b, p.n, 0, 0, &r), -1);
        }
        struct prog noret = {0};
        ins(&noret, 0x00, 0, 0, 1);
        assert_int_equal(em_seccomp_run(noret.b, noret.n, 0, 0, &r), -1);
        assert_int_equal(em_seccomp_run(noret.b, 0, 0, 0, &r), -1);
        assert_int_equal(em_seccomp_run(noret.b, 7, 0, 0, &r), -1);
}

static void test_actions(void **state)
{
        (void)state;
        assert_true(em_seccomp_stricter(EM_SECCOMP_RET_ALLOW, KILL_PROCESS) == KILL_PROCESS);
        assert_true(em_seccomp_stricter(EM_SECCOMP_RET_ERRNO | 5, TRAP) == TRAP);
        assert_true(em_seccomp_stricter(LOG, EM_SECCOMP_RET_ERRNO) == EM_SECCOMP_RET_ERRNO);
        assert_true(em_seccomp_denies(KILL_PROCESS) && em_seccomp_denies(KILL_THREAD));
        assert_true(em_seccomp_denies(TRAP) && em_seccomp_denies(EM_SECCOMP_RET_ERRNO | 1));
        assert_false(em_seccomp_denies(USER_NOTIF) || em_seccomp_denies(TRACE));
        assert_false(em_seccomp_denies(LOG) || em_seccomp_denies(EM_SECCOMP_RET_ALLOW));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_run),
            cmocka_unit_test(test_alu_and_memory),
            cmocka_unit_test(test_invalid),
            cmocka_unit_test(test_actions),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
