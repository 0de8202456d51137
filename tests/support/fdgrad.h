/* Central-difference gradients in double for any scalar objective (tests). */
#ifndef DPT_TEST_FDGRAD_H
#define DPT_TEST_FDGRAD_H

#include <stdint.h>

typedef double (*dpt_fd_objective)(void *ctx);

/* g[i] = (f(v + h e_i) - f(v - h e_i)) / 2h for i < n, perturbing v in place (restored exactly).
 * f reads v through ctx. */
void dpt_fd_central(double *g, double *v, int64_t n, double h, dpt_fd_objective f, void *ctx);

#endif
