/* The text of `edgemig-probe --help`, which help2man also turns into the man
 * page. */
#ifndef EDGEMIG_PROBE_USAGE_H
#define EDGEMIG_PROBE_USAGE_H

extern const char probe_usage[];

#endif
