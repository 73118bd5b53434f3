/* libFuzzer target: the tar member name sanitizer, then the whole layer
 * unpacker on the input as an (uncompressed) tar. Invariants: a cleaned path
 * is relative, has no "." / ".." / empty components; unpacking never creates
 * anything outside the layer directory (a sibling canary stays empty).
 * Built by tests/fuzz/run. */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/unpack.h"
#include "util/fsutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_clean(const char *out)
{
        if (out[0] == '/')
                abort();
        for (const char *p = out; *p;) {
                size_t n = strcspn(p, "/");
                if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.') ||
                    n > NAME_MAX)
                        abort();
                p += n;
                if (*p == '/')
                        p++;
        }
}

static size_t entries(const char *dir)
{
        DIR *d = opendir(dir);
        struct dirent *de;
        size_t n = 0;

        if (d == NULL)
                abort();
        while ((de = readdir(d)) != NULL)
                n += de->d_name[0] != '.' || (de->d_name[1] != '\0' && strcmp(de->d_name, ".."));
        closedir(d);
        return n;
}

static char root[64], canary[96], layers[96], blob[96];

static void remove_dirs(void)
{
        em_error_t err = NULL;

        em_rm_rf(root, &err);
        em_error_free(&err);
}

static void setup_dirs(void)
{
        if (root[0] != '\0')
                return;
        snprintf(root, sizeof(root), "/tmp/fuzz_tarpath.XXXXXX");
        if (mkdtemp(root) == NULL)
                abort();
        snprintf(canary, sizeof(canary), "%s/canary", root);
        snprintf(layers, sizeof(layers), "%s/layers", root);
        snprintf(blob, sizeof(blob), "%s/blob", root);
        mkdir(canary, 0755);
        mkdir(layers, 0755);
        atexit(remove_dirs);
}

static void fuzz_unpack(const uint8_t *data, size_t size)
{
        em_error_t err = NULL;
        struct em_unpack_opts o = {.comp = EM_COMP_NONE};
        int fd = open(blob, O_RDWR | O_CREAT | O_TRUNC, 0600);
        int lfd = open(layers, O_RDONLY | O_DIRECTORY);

        if (fd < 0 || lfd < 0 || write(fd, data, size) != (ssize_t)size)
                abort();
        if (em_layer_unpack(fd, &o, lfd, "L", NULL, NULL, &err) < 0 && entries(layers) != 0)
                abort(); /* a failed unpack left a partial layer */
        em_error_free(&err);
        if (entries(canary) != 0)
                abort(); /* something escaped the layer directory */
        em_rm_rf_at(lfd, "L", &err);
        em_error_free(&err);
        close(lfd);
        close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char out[PATH_MAX];
        em_error_t err = NULL;

        if (size < PATH_MAX + 16) {
                char *s = strndup((const char *)data, size);
                if (s == NULL)
                        return 0;
                if (em_tarpath_clean(s, out, sizeof(out), &err) == 0) {
                        check_clean(out);
                        if (strlen(out) > strlen(s))
                                abort();
                }
                em_error_free(&err);
                free(s);
        }
        if (size >= 512) {
                setup_dirs();
                fuzz_unpack(data, size);
        }
        return 0;
}
