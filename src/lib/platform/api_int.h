/* What api.c and api_actions.c share: the api's state. */
#ifndef EDGEMIG_PLATFORM_API_INT_H
#define EDGEMIG_PLATFORM_API_INT_H

#include <pthread.h>

#include "platform/api.h"
#include "platform/ctlstore.h"
#include "platform/election.h"

struct em_api {
        struct em_ctlstore *store;    /* NULL once closed */
        struct em_election *election; /* with etcd: replicas elect the one that schedules */
        pthread_mutex_t lock;         /* serializes the store and the counters */
        struct em_api_opts o;
        int workers; /* actions running (under lock) */
        bool closed;
        unsigned long long refused; /* requests refused: authentication or authorization */
        unsigned long long reports, decisions[3], http_requests;
};

#endif
