/* Pre-emption signals and the exit status of a pre-empted run (cli, signals.c). */
#ifndef DPT_CLI_SIGNALS_H
#define DPT_CLI_SIGNALS_H

#include <signal.h>

/* Exit status of a run stopped by a signal after writing its checkpoint: EX_TEMPFAIL of
 * sysexits.h, "try again later" (requeue and resume; docs/resume.md). */
#define DPT_EXIT_PREEMPTED 75

/* Handlers for SIGTERM, SIGINT, SIGUSR1; returns the flag they set (to the signal's number). */
const volatile sig_atomic_t *dpt__cli_signals_install(void);
int dpt__cli_signal_received(void); /* the signal that set the flag; 0: none */
const char *dpt__cli_signal_name(int sig);

#endif
