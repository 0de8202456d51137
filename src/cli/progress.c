/* Rank 0's output during training (cli): a progress line redrawn in place on a terminal, and one
 * log line per epoch. Inside an ensemble several group leaders print, so every line carries the
 * member's label and the in-place line is off. */
#include "progress.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dpt/timer.h"

/* At most one redraw per period: under mpirun a rank's stdout looks like a terminal even when
 * mpirun's output goes to a file (--no-progress turns the line off there). */
#define REDRAW_PERIOD 0.5

static void prefix(const char *label, char *buf, size_t n) {
    if (label && *label)
        snprintf(buf, n, "[%s] ", label);
    else
        buf[0] = '\0';
}

static void on_step(void *ctx, const dpt_step_report *r) {
    dpt_cli_progress *p = ctx;
    if (!p->live)
        return;
    double now = dpt_now();
    if (now - p->last_draw < REDRAW_PERIOD && r->step + 1 < r->steps)
        return;
    p->last_draw = now;
    fprintf(p->out, "\repoch %lld/%lld %3.0f%%  loss %.4f  acc %.4f  %6.0f img/s  ETA %3.0fs ",
            (long long)r->epoch + 1, (long long)r->epochs,
            100.0 * (double)(r->step + 1) / (double)r->steps, r->loss, r->acc, r->images_per_s,
            r->eta_seconds);
    fflush(p->out);
    p->drawn = 1;
}

static void clear_line(dpt_cli_progress *p) {
    if (p->drawn)
        fprintf(p->out, "\r\033[K");
    p->drawn = 0;
}

static void on_epoch(void *ctx, const char *label, const dpt_epoch_report *r) {
    dpt_cli_progress *p = ctx;
    clear_line(p);
    if (p->quiet)
        return;
    char pre[80], val[64] = "", noise[32] = "";
    prefix(label, pre, sizeof pre);
    if (r->val_loss == r->val_loss) /* not NaN: there is a validation list */
        snprintf(val, sizeof val, "  val loss %.4f acc %.4f", r->val_loss, r->val_acc);
    if (r->b_simple == r->b_simple) /* not NaN: --noise-scale-every */
        snprintf(noise, sizeof noise, "  B_simple %.4g", r->b_simple);
    fprintf(p->out,
            "%sepoch %3lld  step %6lld  lr %.3g  train loss %.4f acc %.4f%s  test loss %.4f acc "
            "%.4f  %.0f img/s  %.1fs%s\n",
            pre, (long long)r->epoch, (long long)r->step, r->lr, r->train_loss, r->train_acc, val,
            r->test_loss, r->test_acc, r->images_per_s, r->seconds, noise);
    fflush(p->out);
}

static void on_message(void *ctx, const char *label, const char *text) {
    dpt_cli_progress *p = ctx;
    clear_line(p);
    if (p->quiet)
        return;
    char pre[80];
    prefix(label, pre, sizeof pre);
    fprintf(p->out, "%s%s\n", pre, text);
    fflush(p->out);
}

dpt_progress dpt_cli_progress_init(dpt_cli_progress *p, FILE *out, int quiet, int no_live,
                                   int several_groups) {
    memset(p, 0, sizeof *p);
    p->out = out;
    p->quiet = quiet;
    p->live = !quiet && !no_live && !several_groups && isatty(fileno(out));
    return (dpt_progress){.step = on_step, .epoch = on_epoch, .message = on_message, .ctx = p};
}
