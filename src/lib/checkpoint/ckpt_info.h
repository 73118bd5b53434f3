/* What a CRIU image directory holds, decoded: the process tree with each
 * thread's credentials and seccomp state, namespaces, the user namespace's
 * ID maps, mounts, open files and sockets, TCP streams and memory. It is
 * what `edgemig checkpoint inspect` shows and what the validator
 * (checkpoint/ckpt_validate.h) judges. Every file is read with the limits of
 * checkpoint/criu_image.h; names that are not CRIU images are listed in
 * `other` and decoded by no one. */
#ifndef EDGEMIG_CHECKPOINT_CKPT_INFO_H
#define EDGEMIG_CHECKPOINT_CKPT_INFO_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "checkpoint/criu_decode.h"
#include "util/error.h"

#define EM_CKPT_MAX_ENTRIES 65536 /* files in an image directory */

struct em_ckpt_thread {
        uint32_t tid; /* from core-<tid>.img */
        struct em_ck_core core;
};

struct em_ckpt_ids {
        uint32_t pid; /* from ids-<pid>.img */
        struct em_ck_ids ids;
};

struct em_ckpt_mount {
        char img[256];
        struct em_ck_mount m;
};

struct em_ckpt_fd {
        uint32_t files_id; /* from fdinfo-<files_id>.img */
        struct em_ck_fdinfo fi;
};

struct em_ckpt_tcp {
        uint32_t ino; /* from tcp-stream-<ino hex>.img */
        struct em_ck_tcp t;
};

struct em_ckpt_mm {
        uint32_t pid; /* mm-<pid>.img, pagemap-<pid>.img */
        struct em_ck_mm mm;
        uint64_t pages; /* present in pages-*.img */
};

struct em_ckpt_info {
        bool has_inventory, has_userns, has_seccomp;
        struct em_ck_inventory inv;
        char userns_img[256];
        struct em_ck_userns *userns;
        struct em_ck_seccomp seccomp;
        struct em_ck_pstree *tasks;
        struct em_ckpt_thread *threads;
        struct em_ckpt_ids *ids;
        struct em_ckpt_mount *mounts;
        struct em_ck_file *files;
        struct em_ckpt_fd *fds;
        struct em_ckpt_tcp *tcp;
        struct em_ckpt_mm *mms;
        size_t n_tasks, n_threads, n_ids, n_mounts, n_files, n_fds, n_tcp, n_mms;
        size_t n_userns; /* userns-*.img files seen */
        char **names;    /* every file in the directory, sorted (NULL-terminated) */
};

void em_ckpt_info_free(struct em_ckpt_info *ci);
#define cleanup_ckpt_info __attribute__((cleanup(em_ckpt_info_free)))

/* Decodes the CRIU images in dir. Fails on the first malformed image, with
 * its name; an empty or foreign directory fails for lack of inventory.img
 * and pstree.img. */
int em_ckpt_info_load(const char *dir, struct em_ckpt_info *ci, em_error_t *err);
int em_ckpt_info_load_at(int dirfd, struct em_ckpt_info *ci, em_error_t *err);

/* Lookups; NULL when absent. */
const struct em_ckpt_thread *em_ckpt_thread(const struct em_ckpt_info *ci, uint32_t tid);
const struct em_ckpt_ids *em_ckpt_ids(const struct em_ckpt_info *ci, uint32_t pid);
const struct em_ck_mount *em_ckpt_mount(const struct em_ckpt_info *ci, uint32_t mnt_id);

/* The decoded images as JSON (edgemig checkpoint inspect --json). */
json_t *em_ckpt_info_json(const struct em_ckpt_info *ci);

/* Bytes in the regular files of a writable layer (the checkpoint's upper
 * dir), and how many entries it has; symlinks are not followed. */
int em_ckpt_upper_size(const char *upper, uint64_t *bytes, uint64_t *entries, em_error_t *err);

#endif
