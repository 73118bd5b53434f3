/* Typed decoders for the CRIU images that decide what a restored process may
 * do: credentials and seccomp (core-*.img), namespaces (ids-*.img,
 * inventory.img, userns-*.img), the process tree (pstree.img), mounts
 * (mountpoints-*.img), open files and sockets (files.img, fdinfo-*.img,
 * tcp-stream-*.img), seccomp filters (seccomp.img) and memory (mm-*.img,
 * pagemap-*.img).
 *
 * Field numbers are those of CRIU's images/<name>.proto (CRIU 4.2, checked
 * against images that CRIU 4.2.1 wrote here). Each decoder reads exactly
 * the fields it names and skips the others; a second occurrence of a
 * singular field it reads is refused, because protobuf-c, which CRIU uses,
 * would merge or override it and the validator must see what CRIU sees.
 * Repeated scalars are accepted packed and unpacked, like protobuf-c. */
#ifndef EDGEMIG_CHECKPOINT_CRIU_DECODE_H
#define EDGEMIG_CHECKPOINT_CRIU_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define EM_CK_CAP_WORDS   4   /* CRIU writes 2 (64 bits); more is refused above 4 */
#define EM_CK_MAX_GROUPS  256 /* supplementary groups per thread */
#define EM_CK_MAX_EXTENTS 340 /* the kernel's limit on uid_map lines */
#define EM_CK_MAX_THREADS 65536
#define EM_CK_NAME_MAX    4096 /* paths and mount options */
#define EM_CK_COMM_MAX    64

/* enum seccomp_mode, fd_types (the ones acted on), ns kinds in
 * task_kobj_ids_entry */
enum { EM_CK_SECCOMP_DISABLED = 0, EM_CK_SECCOMP_STRICT = 1, EM_CK_SECCOMP_FILTER = 2 };
enum {
        EM_CK_FD_REG = 1,
        EM_CK_FD_PIPE = 2,
        EM_CK_FD_FIFO = 3,
        EM_CK_FD_INETSK = 4,
        EM_CK_FD_UNIXSK = 5,
        EM_CK_FD_PACKETSK = 10,
        EM_CK_FD_TTY = 11,
        EM_CK_FD_NETLINKSK = 13,
        EM_CK_FD_NS = 14,
        EM_CK_FD_TUNF = 15,
        EM_CK_FD_EXT = 16,
        EM_CK_FD_MEMFD = 18,
        EM_CK_FD_BPFMAP = 19,
        EM_CK_FD_PIDFD = 20,
};
/* task_kobj_ids_entry field numbers of the namespaces */
enum {
        EM_CK_NS_PID = 5,
        EM_CK_NS_NET = 6,
        EM_CK_NS_IPC = 7,
        EM_CK_NS_UTS = 8,
        EM_CK_NS_MNT = 9,
        EM_CK_NS_USER = 10,
        EM_CK_NS_CGROUP = 11,
        EM_CK_NS_TIME = 12,
        EM_CK_NS_FIRST = EM_CK_NS_PID,
        EM_CK_NS_LAST = EM_CK_NS_TIME,
};
const char *em_ck_ns_name(int kind); /* "pid", "net", ... */

struct em_ck_caps {
        uint32_t w[EM_CK_CAP_WORDS];
        size_t n;
};

struct em_ck_creds {
        uint32_t uid, gid, euid, egid, suid, sgid, fsuid, fsgid, secbits, no_new_privs;
        bool has_nnp;
        struct em_ck_caps inh, prm, eff, bnd, amb;
        uint32_t groups[EM_CK_MAX_GROUPS];
        size_t n_groups;
};

/* task_core's task_state of a zombie (CRIU's TASK_DEAD). */
#define EM_CK_TASK_DEAD 2

/* core_entry with its task_core_entry (tc) and thread_core_entry. */
struct em_ck_core {
        uint32_t mtype;
        bool has_tc, has_thread, has_creds, has_seccomp, has_old_seccomp;
        uint32_t task_state;
        char comm[EM_CK_COMM_MAX];
        uint32_t seccomp_mode, seccomp_filter;         /* thread_core 11, 12 */
        uint32_t old_seccomp_mode, old_seccomp_filter; /* tc 11, 12 (deprecated) */
        struct em_ck_creds creds;
};

/* task_kobj_ids_entry: id[EM_CK_NS_*] and vm/files/fs/sighand in 1..4. */
struct em_ck_ids {
        uint32_t id[EM_CK_NS_LAST + 1];
        uint64_t seen; /* bit n: field n present */
};

struct em_ck_inventory {
        uint32_t img_version;
        bool has_root_ids, ns_per_id;
        struct em_ck_ids root_ids;
};

struct em_ck_pstree {
        uint32_t pid, ppid, pgid, sid;
        uint32_t *threads;
        size_t n_threads;
};

struct em_ck_extent {
        uint32_t first, lower_first, count;
};

struct em_ck_userns {
        struct em_ck_extent uid[EM_CK_MAX_EXTENTS], gid[EM_CK_MAX_EXTENTS];
        size_t n_uid, n_gid;
};

struct em_ck_mount {
        uint32_t fstype, mnt_id, parent_mnt_id, flags, sb_flags;
        bool ext_mount, deleted;
        char *root, *mountpoint, *source, *options, *fsname, *ext_key; /* NULL if absent */
};

/* file_entry with the parts of its sub-message that matter. */
struct em_ck_file {
        uint32_t type, id;
        char *name;     /* reg: path; unix: socket name (bytes, NUL-free or NULL); */
        int32_t mnt_id; /* reg, unix: -1 when absent */
        uint64_t size;
        /* inet */
        uint32_t ino, family, sk_type, proto, state, src_port, dst_port;
        uint32_t src_addr[4], dst_addr[4];
        size_t n_src, n_dst;
        /* ns file */
        uint32_t ns_id, ns_cflag;
};

struct em_ck_fdinfo {
        uint32_t id, flags, type, fd;
};

struct em_ck_seccomp_filter {
        uint8_t *prog; /* struct sock_filter[], 8 bytes each */
        size_t len;
        uint32_t prev, flags;
        bool has_prev;
};

struct em_ck_seccomp {
        struct em_ck_seccomp_filter *f;
        size_t n;
};

struct em_ck_mm {
        uint64_t vma_bytes;
        size_t n_vmas;
        uint32_t exe_file_id;
};

struct em_ck_tcp {
        uint32_t inq_len, outq_len, inq_seq, outq_seq;
};

/* Decoders over one protobuf message (img names the image in errors). */
int em_ck_decode_core(const char *img, const uint8_t *p, size_t len, struct em_ck_core *c,
                      em_error_t *err);
int em_ck_decode_ids(const char *img, const uint8_t *p, size_t len, struct em_ck_ids *ids,
                     em_error_t *err);
int em_ck_decode_inventory(const char *img, const uint8_t *p, size_t len,
                           struct em_ck_inventory *inv, em_error_t *err);
int em_ck_decode_pstree(const char *img, const uint8_t *p, size_t len, struct em_ck_pstree *ps,
                        em_error_t *err);
int em_ck_decode_userns(const char *img, const uint8_t *p, size_t len, struct em_ck_userns *u,
                        em_error_t *err);
int em_ck_decode_mount(const char *img, const uint8_t *p, size_t len, struct em_ck_mount *m,
                       em_error_t *err);
int em_ck_decode_file(const char *img, const uint8_t *p, size_t len, struct em_ck_file *f,
                      em_error_t *err);
int em_ck_decode_fdinfo(const char *img, const uint8_t *p, size_t len, struct em_ck_fdinfo *fi,
                        em_error_t *err);
int em_ck_decode_seccomp(const char *img, const uint8_t *p, size_t len, struct em_ck_seccomp *s,
                         em_error_t *err);
int em_ck_decode_mm(const char *img, const uint8_t *p, size_t len, struct em_ck_mm *mm,
                    em_error_t *err);
/* One pagemap_entry: adds its pages to *present when they are in pages-*.img. */
int em_ck_decode_pagemap_entry(const char *img, const uint8_t *p, size_t len, uint64_t *present,
                               em_error_t *err);
int em_ck_decode_tcp(const char *img, const uint8_t *p, size_t len, struct em_ck_tcp *t,
                     em_error_t *err);

void em_ck_pstree_free(struct em_ck_pstree *ps);
void em_ck_mount_free(struct em_ck_mount *m);
void em_ck_file_free(struct em_ck_file *f);
void em_ck_seccomp_free(struct em_ck_seccomp *s);

/* Capability word array as a 64-bit mask; *beyond is set when a bit above
 * 63 is present. */
uint64_t em_ck_caps_mask(const struct em_ck_caps *c, bool *beyond);

#endif
