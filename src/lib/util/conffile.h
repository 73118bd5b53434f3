/* Configuration files for the front ends' options: every long option of a
 * binary can be set in a file of `key = value` lines, the key being the
 * option's name without "--" (edgemigd's /etc/edgemig/edgemigd.conf).
 *
 *   # comments and blank lines are ignored
 *   listen = 10.0.0.2:7878
 *   tls-cert = /etc/edgemig/pki/h2.crt
 *   allow-peer = h1          # not a comment: '#' only starts a line
 *   allow-peer = h3          (repeatable options: one line per value)
 *   insecure = false         (flags: true/false, yes/no, on/off, 1/0)
 *
 * A value may be written in double quotes to keep blanks at its ends.
 * Values go through the same option table and parsers as the command line
 * (util/opts.h), so a file accepts exactly what the command line accepts and
 * its errors name the file, the line and the option. The command line is
 * parsed after the file: a single-valued option given there wins; a
 * repeatable one adds to the file's values. */
#ifndef EDGEMIG_UTIL_CONFFILE_H
#define EDGEMIG_UTIL_CONFFILE_H

#include "util/error.h"
#include "util/opts.h"

/* Where the default files live: `make SYSCONFDIR=…` (default /etc). */
#ifndef EM_SYSCONFDIR
#define EM_SYSCONFDIR "/etc"
#endif
#define EM_CONF_EDGEMIGD   EM_SYSCONFDIR "/edgemig/edgemigd.conf"
#define EM_CONF_CONTROLLER EM_SYSCONFDIR "/edgemig/controller.conf"

/* Owns the file's text, which string options point into: free it after the
 * last use of the parsed values. */
struct em_conffile {
        char *text;
        const char *path; /* the file read, NULL if none */
};
void em_conffile_free(struct em_conffile *cf);

/* Applies the file at path to table's destinations. ENOENT is reported with
 * status ENOENT so that a caller can treat a missing default as empty. */
int em_conffile_parse(const struct em_opt *table, const char *path, struct em_conffile *cf,
                      em_error_t *err);

/* The file a front end reads: the value of `--config FILE` (or
 * --config=FILE) in argv before "--"; NULL for `--config none`; else dflt. */
const char *em_conffile_choose(int argc, char **argv, const char *dflt, bool *named);

/* For front ends: the chosen file, then argv (em_opts_parse). The table
 * must hold a STRING entry "config" so that argv may name the file. A
 * missing default file is no error; a missing named one is. --help and
 * --version win over an error in the file. */
int em_opts_parse_config(const struct em_opt *table, const char *dflt, int argc, char **argv,
                         unsigned flags, int *first, struct em_conffile *cf, em_error_t *err);

#endif
