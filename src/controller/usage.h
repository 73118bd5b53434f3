/* The text of `edgemig-controller --help`, which help2man also turns into the man
 * page. */
#ifndef EDGEMIG_CONTROLLER_USAGE_H
#define EDGEMIG_CONTROLLER_USAGE_H

extern const char controller_usage[];

#endif
