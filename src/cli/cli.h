/* Internal interface between main.c and the subcommands (cli). */
#ifndef DPT_CLI_CLI_H
#define DPT_CLI_CLI_H

#include "dpt/comm.h"
#include "dpt/train.h"

/* Agrees on `st` over the world; on failure rank 0 prints "dptrain: error: <message>". Returns the
 * exit status: 0 when every rank succeeded, 1 otherwise. */
int dpt__cli_finish(const dpt_group *g, dpt_status st);
/* dpt__cli_finish for a status known to be an error. */
int dpt__cli_fail(const dpt_group *g, dpt_status st);

int dpt__cli_train(dpt_group *g, int argc, char **argv, const char *search_path);
int dpt__cli_cv(dpt_group *g, int argc, char **argv, const char *search_path);
/* Parses argv[0..argc) as `dptrain train` options into cfg (defaults first), refusing the options
 * a sweep point cannot take; strings point into argv. */
dpt_status dpt__cli_parse_point(int argc, char **argv, const char *search_path,
                                dpt_train_cfg *cfg, int *no_progress);
/* `usage` and the train option table, for the help of commands that take train options. */
void dpt__cli_print_train_options(FILE *out, const char *usage);
int dpt__cli_sweep(dpt_group *g, int argc, char **argv, const char *search_path);
int dpt__cli_interpolate(dpt_group *g, int argc, char **argv, const char *search_path);
int dpt__cli_eval(dpt_group *g, int argc, char **argv, const char *search_path);
int dpt__cli_sharpness(dpt_group *g, int argc, char **argv, const char *search_path);
int dpt__cli_selfcheck(int argc, char **argv);

#endif
