/* A process that uses a memory protection key, as Node.js's wasm code
 * space does where the CPU has PKU: one page tagged with a key of its own
 * (pkey_alloc, pkey_mprotect) holds a counter it bumps and writes to
 * DIR/n every 100 ms, so a test sees it run. Without protection keys
 * (CPU, kernel) it writes DIR/nopku and sleeps. For
 * tests/integration/29-checkpoint-pkeys.sh. */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

static void put(const char *dir, const char *leaf, unsigned long n)
{
        char tmp[256], path[256];
        FILE *f;

        snprintf(tmp, sizeof(tmp), "%s/.%s", dir, leaf);
        snprintf(path, sizeof(path), "%s/%s", dir, leaf);
        f = fopen(tmp, "w");
        if (f == NULL)
                return;
        fprintf(f, "%lu\n", n);
        if (fclose(f) == 0)
                rename(tmp, path);
}

int main(int argc, char **argv)
{
        const char *dir = argc > 1 ? argv[1] : ".";
        int key = pkey_alloc(0, 0);
        volatile unsigned long *page;

        if (key < 0) {
                put(dir, "nopku", 0);
                for (;;)
                        pause();
        }
        page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (page == MAP_FAILED ||
            pkey_mprotect((void *)page, 4096, PROT_READ | PROT_WRITE, key) != 0) {
                perror("pkey_mprotect");
                return 1;
        }
        for (;;) {
                (*page)++;
                put(dir, "n", *page);
                usleep(100000);
        }
}
