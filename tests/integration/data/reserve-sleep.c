/* A process that reserves a large range of address space and never
 * touches it, as MariaDB does (about 8 TiB): PROT_NONE, MAP_NORESERVE, so
 * it costs no memory. Writes DIR/up once it holds the reservation, then
 * sleeps. Usage: reserve-sleep DIR GIB. For
 * tests/integration/34-postcopy-reserved.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv)
{
        unsigned long gib = argc > 2 ? strtoul(argv[2], NULL, 10) : 8192;
        char path[256];
        FILE *f;

        if (argc < 2 || mmap(NULL, gib << 30, PROT_NONE,
                             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0) == MAP_FAILED)
                return 1;
        snprintf(path, sizeof(path), "%s/up", argv[1]);
        f = fopen(path, "w");
        if (f == NULL || fclose(f) != 0)
                return 1;
        for (;;)
                pause();
}
