/* Driver for bench/unpack-throughput: unpacks one layer blob with the store's
 * unpacker and prints "seconds entries tar_bytes diff_id".
 *   unpack_throughput BLOB gzip|zstd|none PARENT_DIR NAME */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/unpack.h"

int main(int argc, char **argv)
{
        struct em_unpack_opts o = {.comp = EM_COMP_NONE};
        struct em_unpack_stats st;
        struct timespec a, b;
        char diff_id[EM_DIGEST_STR_LEN + 1];
        em_error_t err = NULL;

        if (argc != 5) {
                fprintf(stderr, "usage: %s BLOB gzip|zstd|none PARENT_DIR NAME\n", argv[0]);
                return 2;
        }
        o.comp = strcmp(argv[2], "gzip") == 0   ? EM_COMP_GZIP
                 : strcmp(argv[2], "zstd") == 0 ? EM_COMP_ZSTD
                                                : EM_COMP_NONE;
        int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
        int dfd = open(argv[3], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || dfd < 0) {
                perror("open");
                return 1;
        }
        clock_gettime(CLOCK_MONOTONIC, &a);
        if (em_layer_unpack(fd, &o, dfd, argv[4], diff_id, &st, &err) < 0) {
                fprintf(stderr, "unpack: %s\n", em_error_msg(err));
                return 1;
        }
        clock_gettime(CLOCK_MONOTONIC, &b);
        printf("%.6f %llu %llu %s\n", (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9,
               (unsigned long long)st.entries, (unsigned long long)st.tar_bytes, diff_id);
        return 0;
}
