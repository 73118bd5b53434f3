/* What api.c and api_actions.c share: the api's state. */
#ifndef EDGEMIG_PLATFORM_API_INT_H
#define EDGEMIG_PLATFORM_API_INT_H

#include <pthread.h>
#include <sqlite3.h>

#include "platform/api.h"

struct em_api {
        sqlite3 *db;          /* NULL once closed */
        pthread_mutex_t lock; /* serializes db and the counters */
        struct em_api_opts o;
        int workers; /* actions running (under lock) */
        bool closed;
        unsigned long long refused; /* requests refused: authentication or authorization */
        unsigned long long reports, decisions[3], http_requests;
};

#endif
