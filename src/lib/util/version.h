#ifndef EDGEMIG_UTIL_VERSION_H
#define EDGEMIG_UTIL_VERSION_H

#define EM_VERSION "0.1.0"
/* 2: a pages file's digest is the sha256 of its page hashes (delta/pagelist.h). */
#define EM_PROTOCOL_VERSION 2

#endif
