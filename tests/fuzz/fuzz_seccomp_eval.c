/* libFuzzer target: the seccomp filter interpreter the target runs on a
 * peer's seccomp.img filters. Any program must end in a result or be
 * reported invalid, within one step per instruction (no hang, no read
 * outside the program or seccomp_data). Sources:
 * src/lib/checkpoint/seccomp_eval.c */
#include <stdint.h>
#include <stdlib.h>

#include "checkpoint/seccomp_eval.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const uint32_t arch[] = {EM_AUDIT_ARCH_X86_64, EM_AUDIT_ARCH_I386, 0};
        uint32_t r;

        for (size_t a = 0; a < 3; a++)
                for (uint32_t nr = 0; nr < 400; nr += 57)
                        if (em_seccomp_run(data, size & ~(size_t)7, arch[a], nr, &r) == 0 &&
                            em_seccomp_stricter(r, EM_SECCOMP_RET_ALLOW) != r &&
                            em_seccomp_stricter(r, EM_SECCOMP_RET_ALLOW) != EM_SECCOMP_RET_ALLOW)
                                abort();
        return 0;
}
