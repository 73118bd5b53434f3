#include "migrate/common/logsync.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "migrate/common/proto.h"
#include "util/cleanup.h"
#include "util/fsutil.h"
#include "util/json.h"

/* Copies the last EM_LOGSYNC_MAX bytes of in, from the first line start
 * among them, to workdir/log. */
static int cut_tail(int in, off_t size, const char *out_path, em_error_t *err)
{
        char buf[65536];
        off_t off = size - (off_t)EM_LOGSYNC_MAX;
        ssize_t n;
        cleanup_close int out =
            open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0640);

        if (out < 0)
                return em_error_set(err, errno, "creating %s", out_path);
        if ((n = pread(in, buf, sizeof(buf), off)) < 0)
                return em_error_set(err, errno, "reading the log");
        char *nl = memchr(buf, '\n', (size_t)n);
        off += nl != NULL ? nl - buf + 1 : 0;
        while ((n = pread(in, buf, sizeof(buf), off)) > 0) {
                if (em_write_all(out, buf, (size_t)n, err) < 0)
                        return -1;
                off += n;
        }
        return n < 0 ? em_error_set(err, errno, "reading the log") : 0;
}

int em_logsync_send(em_conn_t *c, const char *log_path, const char *workdir, int level,
                    uint64_t *raw_sent, em_error_t *err)
{
        cleanup_close int fd = open(log_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        cleanup_free char *cut = NULL;
        struct stat st;

        if (fd < 0 && errno == ENOENT)
                return 0;
        if (fd < 0 || fstat(fd, &st) < 0)
                return em_error_set(err, errno, "opening %s", log_path);
        if ((uint64_t)st.st_size <= EM_LOGSYNC_MAX)
                return em_proto_send_file(c, EM_FRAME_LOG_FILE, log_path, EM_LOGSYNC_NAME, level,
                                          raw_sent, err);
        if ((cut = em_path_join(workdir, EM_LOGSYNC_NAME)) == NULL)
                return em_error_set(err, ENOMEM, "log");
        if (cut_tail(fd, st.st_size, cut, err) < 0)
                return em_error_wrap(err, "cutting the log to its last %llu MiB",
                                     (unsigned long long)(EM_LOGSYNC_MAX >> 20));
        return em_proto_send_file(c, EM_FRAME_LOG_FILE, cut, EM_LOGSYNC_NAME, level, raw_sent, err);
}

int em_logsync_recv(em_conn_t *c, const json_t *hdr, int dirfd, em_error_t *err)
{
        const char *name = em_json_str(hdr, "file");
        long long size = em_json_int(hdr, "size", -1);

        if (name == NULL || strcmp(name, EM_LOGSYNC_NAME) != 0 || size < 0 ||
            (uint64_t)size > EM_LOGSYNC_MAX)
                return em_error_set(err, EPROTO,
                                    "protocol error: a log file must be named '%s' and at most "
                                    "%llu bytes",
                                    EM_LOGSYNC_NAME, (unsigned long long)EM_LOGSYNC_MAX);
        return em_proto_recv_file(c, hdr, EM_FRAME_LOG_FILE, dirfd, false, NULL, err);
}
