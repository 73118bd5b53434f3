/* The text of `edgemigd --help`, which help2man also turns into the man
 * page. */
#ifndef EDGEMIG_DAEMON_USAGE_H
#define EDGEMIG_DAEMON_USAGE_H

extern const char edgemigd_usage[];

#endif
