/* CRIU image files as records, before any message is decoded. A file starts
 * with u32 IMG_COMMON_MAGIC and u32 <type magic> (the inventory has only its
 * type magic), then u32 (LE) length + protobuf message records. Some images
 * (tcp-stream, pipes-data, ...) carry raw payload after their first record;
 * their readers take only the records they need.
 * Magic values are CRIU's criu/include/magic.h (facts, not code). */
#ifndef EDGEMIG_CHECKPOINT_CRIU_IMAGE_H
#define EDGEMIG_CHECKPOINT_CRIU_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define EM_CRIU_MAGIC_COMMON    0x54564319u
#define EM_CRIU_MAGIC_INVENTORY 0x58313116u
#define EM_CRIU_MAGIC_PSTREE    0x50273030u
#define EM_CRIU_MAGIC_FDINFO    0x56213732u
#define EM_CRIU_MAGIC_PAGEMAP   0x56084025u
#define EM_CRIU_MAGIC_CORE      0x55053847u
#define EM_CRIU_MAGIC_IDS       0x54432030u
#define EM_CRIU_MAGIC_MNTS      0x55563928u
#define EM_CRIU_MAGIC_MM        0x57492820u
#define EM_CRIU_MAGIC_TCPSTREAM 0x51465506u
#define EM_CRIU_MAGIC_USERNS    0x55474906u
#define EM_CRIU_MAGIC_SECCOMP   0x64413049u
#define EM_CRIU_MAGIC_FILES     0x56303138u

/* A protobuf image is read whole; none of ours comes near this (a pagemap
 * of 64 MiB already describes terabytes). */
#define EM_CRIU_IMG_MAX (64u << 20)
#define EM_CRIU_REC_MAX (16u << 20)

struct em_criu_img {
        char name[256];
        uint8_t *buf;
        size_t len, off;
};

void em_criu_img_free(struct em_criu_img *img);
#define cleanup_criu_img __attribute__((cleanup(em_criu_img_free)))

/* Reads name in dirfd and checks its magics (type_magic alone for the
 * inventory). Errors name the file. */
int em_criu_img_open(int dirfd, const char *name, uint32_t type_magic, struct em_criu_img *img,
                     em_error_t *err);
/* The same over a buffer the caller keeps alive (tests, fuzzing). */
int em_criu_img_from(const char *name, const uint8_t *buf, size_t len, uint32_t type_magic,
                     struct em_criu_img *img, em_error_t *err);
/* 1 and the next record, 0 at the end, -1 on a truncated or oversized one. */
int em_criu_img_next(struct em_criu_img *img, const uint8_t **rec, size_t *len, em_error_t *err);

#endif
