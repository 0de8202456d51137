/* Central differences in double (tests): the finite-difference oracle of the gradient tests. */
#include "fdgrad.h"

void dpt_fd_central(double *g, double *v, int64_t n, double h, dpt_fd_objective f, void *ctx) {
    for (int64_t i = 0; i < n; i++) {
        const double keep = v[i];
        v[i] = keep + h;
        const double fp = f(ctx);
        v[i] = keep - h;
        const double fm = f(ctx);
        v[i] = keep;
        g[i] = (fp - fm) / (2 * h);
    }
}
