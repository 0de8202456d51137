/* Pre-emption signals (cli): SIGTERM, SIGINT and SIGUSR1 set a flag that the trainer reads at
 * every step boundary (the ranks agree on it, write a checkpoint and exit with
 * DPT_EXIT_PREEMPTED). A second signal ends the process at once, for a user who really means it.
 * Open MPI's mpirun forwards SIGUSR1 to the ranks; on SIGTERM/SIGINT it sends SIGTERM to them and
 * SIGKILL after odls_base_sigkill_timeout seconds (docs/resume.md). */
#include <signal.h>
#include <string.h>

#include "signals.h"

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) {
    if (stop_signal) {
        signal(sig, SIG_DFL); /* async-signal-safe: the second one is not caught */
        raise(sig);
        return;
    }
    stop_signal = sig;
}

const volatile sig_atomic_t *dpt__cli_signals_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART; /* MPI and file calls continue; the flag is read between steps */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    return &stop_signal;
}

const char *dpt__cli_signal_name(int sig) {
    return sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : sig == SIGUSR1 ? "SIGUSR1"
                                                                                 : "a signal";
}

int dpt__cli_signal_received(void) { return stop_signal; }
