#include "checkpoint/seccomp_eval.h"

#include <string.h>

/* Instruction classes and fields of linux/bpf_common.h. */
#define CLS(c)  ((c)&0x07)
#define MODE(c) ((c)&0xe0)
#define OP(c)   ((c)&0xf0)
#define SRCX(c) ((c)&0x08)
enum { LD = 0, LDX = 1, ST = 2, STX = 3, ALU = 4, JMP = 5, RET = 6, MISC = 7 };
enum { IMM = 0x00, ABS = 0x20, MEM = 0x60, LEN = 0x80 };
#define SECCOMP_DATA_LEN 64u /* struct seccomp_data */

struct insn {
        uint16_t code;
        uint8_t jt, jf;
        uint32_t k;
};

struct vm {
        uint32_t a, x, mem[16];
        uint8_t data[SECCOMP_DATA_LEN];
};

static struct insn fetch(const uint8_t *p)
{
        return (struct insn){(uint16_t)(p[0] | p[1] << 8), p[2], p[3],
                             (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 |
                                 (uint32_t)p[7] << 24};
}

static int load(const struct vm *vm, const struct insn *in, uint32_t *out)
{
        switch (MODE(in->code)) {
        case IMM:
                *out = in->k;
                return 0;
        case ABS: /* 32-bit loads only, aligned, inside seccomp_data */
                if ((in->code & 0x18) != 0 || in->k % 4 != 0 || in->k > SECCOMP_DATA_LEN - 4)
                        return -1;
                memcpy(out, vm->data + in->k, 4);
                return 0;
        case MEM:
                if (in->k >= 16)
                        return -1;
                *out = vm->mem[in->k];
                return 0;
        case LEN:
                *out = SECCOMP_DATA_LEN;
                return 0;
        default:
                return -1;
        }
}

static int alu(struct vm *vm, const struct insn *in)
{
        uint32_t v = SRCX(in->code) ? vm->x : in->k;

        switch (OP(in->code)) {
        case 0x00:
                vm->a += v;
                return 0;
        case 0x10:
                vm->a -= v;
                return 0;
        case 0x20:
                vm->a *= v;
                return 0;
        case 0x30:
                if (v == 0)
                        return -1;
                vm->a /= v;
                return 0;
        case 0x40:
                vm->a |= v;
                return 0;
        case 0x50:
                vm->a &= v;
                return 0;
        case 0x60:
                vm->a = v >= 32 ? 0 : vm->a << v;
                return 0;
        case 0x70:
                vm->a = v >= 32 ? 0 : vm->a >> v;
                return 0;
        case 0x80:
                vm->a = -vm->a;
                return 0;
        case 0x90:
                if (v == 0)
                        return -1;
                vm->a %= v;
                return 0;
        case 0xa0:
                vm->a ^= v;
                return 0;
        default:
                return -1;
        }
}

/* The offset to add to pc after this jump, or -1. */
static long jump(const struct vm *vm, const struct insn *in)
{
        uint32_t v = SRCX(in->code) ? vm->x : in->k;
        bool c;

        switch (OP(in->code)) {
        case 0x00:
                return (long)in->k; /* JA */
        case 0x10:
                c = vm->a == v;
                break;
        case 0x20:
                c = vm->a > v;
                break;
        case 0x30:
                c = vm->a >= v;
                break;
        case 0x40:
                c = (vm->a & v) != 0;
                break;
        default:
                return -1;
        }
        return c ? in->jt : in->jf;
}

/* One instruction: 1 to go on (pc updated), 0 at RET, -1 invalid. */
static int step(struct vm *vm, const struct insn *in, size_t *pc, uint32_t *ret)
{
        long off = 0;

        switch (CLS(in->code)) {
        case LD:
                if (load(vm, in, &vm->a) < 0)
                        return -1;
                break;
        case LDX:
                if (MODE(in->code) == ABS || load(vm, in, &vm->x) < 0)
                        return -1;
                break;
        case ST:
        case STX:
                if (in->k >= 16)
                        return -1;
                vm->mem[in->k] = CLS(in->code) == ST ? vm->a : vm->x;
                break;
        case ALU:
                if (alu(vm, in) < 0)
                        return -1;
                break;
        case JMP:
                if ((off = jump(vm, in)) < 0)
                        return -1;
                break;
        case RET:
                *ret = (in->code & 0x18) == 0x10 ? vm->a : in->k;
                return 0;
        default: /* MISC */
                if (in->code == (MISC | 0x00))
                        vm->x = vm->a;
                else if (in->code == (MISC | 0x80))
                        vm->a = vm->x;
                else
                        return -1;
        }
        *pc += 1 + (size_t)off;
        return 1;
}

int em_seccomp_run(const uint8_t *prog, size_t len, uint32_t arch, uint32_t nr, uint32_t *ret)
{
        struct vm vm;
        size_t n = len / 8, pc = 0;

        if (len == 0 || len % 8 != 0)
                return -1;
        memset(&vm, 0, sizeof(vm));
        memcpy(vm.data, &nr, 4); /* the host is little-endian like the images */
        memcpy(vm.data + 4, &arch, 4);
        while (pc < n) {
                struct insn in = fetch(prog + 8 * pc);
                int r = step(&vm, &in, &pc, ret);
                if (r <= 0)
                        return r;
        }
        return -1; /* ran off the end (or jumped past it) */
}

uint32_t em_seccomp_stricter(uint32_t a, uint32_t b)
{
        return (int32_t)(a & EM_SECCOMP_RET_ACTION) <= (int32_t)(b & EM_SECCOMP_RET_ACTION) ? a : b;
}

bool em_seccomp_denies(uint32_t ret)
{
        return (int32_t)(ret & EM_SECCOMP_RET_ACTION) <= (int32_t)EM_SECCOMP_RET_ERRNO;
}
