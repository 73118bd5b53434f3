#ifndef EDGEMIG_UTIL_VERSION_H
#define EDGEMIG_UTIL_VERSION_H

#define EM_VERSION          "0.1.0"
#define EM_PROTOCOL_VERSION 1

#endif
