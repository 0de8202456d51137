/* Reference convolution (kernels): plain loops over the checked 3-D geometry, every sum accumulated
 * in double and rounded once. It is the oracle of every conv test, so it is written for obvious
 * correctness, not speed: each output element is a direct sum over its definition (backward_data
 * gathers instead of scattering), taken in row-major order. Needs no workspace. */
#include "conv_impl.h"

/* Input coordinate of output position p and tap t along one axis; -1 when it falls in padding. */
static int64_t in_coord(int64_t p, int64_t t, int64_t stride, int64_t pad, int64_t dil,
                        int64_t extent) {
    int64_t i = p * stride - pad + t * dil;
    return i >= 0 && i < extent ? i : -1;
}

/* Output coordinate whose tap t reads input coordinate i along one axis; -1 if there is none. */
static int64_t out_coord(int64_t i, int64_t t, int64_t stride, int64_t pad, int64_t dil,
                         int64_t extent) {
    int64_t s = i + pad - t * dil;
    if (s < 0 || s % stride != 0)
        return -1;
    s /= stride;
    return s < extent ? s : -1;
}

static int64_t volume(const int64_t e[3]) {
    return e[0] * e[1] * e[2];
}

/* What a walk runs over, at a fixed point: the taps of an output position (forward), the taps
 * through which an input position is read (backward-data), the output positions of a tap (weight
 * gradient). */
typedef enum { TAPS_FROM_OUTPUT, TAPS_TO_OUTPUT, POSITIONS_OF_TAP } walk;

/* Along axis a: the coordinate in the walked-over tensor of step r from `fixed`, or -1. */
static int64_t walk_coord(const dpt_conv_geom *g, int a, walk m, int64_t fixed, int64_t r) {
    if (m == TAPS_TO_OUTPUT)
        return out_coord(fixed, r, g->stride[a], g->pad[a], g->dil[a], g->out[a]);
    if (m == TAPS_FROM_OUTPUT)
        return in_coord(fixed, r, g->stride[a], g->pad[a], g->dil[a], g->in[a]);
    return in_coord(r, fixed, g->stride[a], g->pad[a], g->dil[a], g->in[a]);
}

/* acc + sum over the steps r of the walk (row-major, skipping those that fall outside) of
 * u[r] * v[the coordinate of r], in double. u is indexed by taps, or by output positions for
 * POSITIONS_OF_TAP; v by output positions for TAPS_TO_OUTPUT, else by input positions. Inlined,
 * so that each pass gets the loops of its own walk. */
static inline __attribute__((always_inline)) double walk_sum(double acc, const float *u,
                                                             const float *v, const dpt_conv_geom *g,
                                                             const int64_t fixed[3], walk m) {
    const int64_t *n = m == POSITIONS_OF_TAP ? g->out : g->k;
    const int64_t *e = m == TAPS_TO_OUTPUT ? g->out : g->in;
    for (int64_t r0 = 0; r0 < n[0]; r0++) {
        const int64_t c0 = walk_coord(g, 0, m, fixed[0], r0);
        if (c0 < 0)
            continue;
        for (int64_t r1 = 0; r1 < n[1]; r1++) {
            const int64_t c1 = walk_coord(g, 1, m, fixed[1], r1);
            if (c1 < 0)
                continue;
            const float *ur = u + (r0 * n[1] + r1) * n[2], *vr = v + (c0 * e[1] + c1) * e[2];
            for (int64_t r2 = 0; r2 < n[2]; r2++) {
                const int64_t c2 = walk_coord(g, 2, m, fixed[2], r2);
                if (c2 >= 0)
                    acc += (double)ur[r2] * (double)vr[c2];
            }
        }
    }
    return acc;
}

/* c = the (D, H, W) coordinates of row-major offset f in extents e. */
static void unflatten(int64_t c[3], int64_t f, const int64_t e[3]) {
    c[2] = f % e[2];
    c[1] = f / e[2] % e[1];
    c[0] = f / e[2] / e[1];
}

static size_t ref_workspace(const dpt_conv_geom *g) {
    return 0;
}

/* y: (N, O, oD, oH, oW)  x: (N, C, D, H, W)  w: (O, C/groups, kD, kH, kW)  b: (O) or NULL */
static void ref_forward(float *y, const float *x, const float *w, const float *b,
                        const dpt_conv_geom *g, float *work) {
    const int64_t Cg = g->C / g->groups, Og = g->O / g->groups;
    const int64_t X = volume(g->in), P = volume(g->out), taps = volume(g->k);
    for (int64_t n = 0; n < g->N; n++)
        for (int64_t o = 0; o < g->O; o++)
            for (int64_t p = 0; p < P; p++) {
                int64_t pc[3];
                unflatten(pc, p, g->out);
                double acc = b ? (double)b[o] : 0.0;
                for (int64_t c = 0; c < Cg; c++)
                    acc = walk_sum(acc, w + (o * Cg + c) * taps,
                                   x + (n * g->C + o / Og * Cg + c) * X, g, pc, TAPS_FROM_OUTPUT);
                y[(n * g->O + o) * P + p] = (float)acc;
            }
}

/* dx: (N, C, D, H, W)  dy: (N, O, oD, oH, oW)  w: (O, C/groups, kD, kH, kW); writes dx */
static void ref_backward_data(float *dx, const float *dy, const float *w, const dpt_conv_geom *g,
                              float *work) {
    const int64_t Cg = g->C / g->groups, Og = g->O / g->groups;
    const int64_t X = volume(g->in), P = volume(g->out), taps = volume(g->k);
    for (int64_t n = 0; n < g->N; n++)
        for (int64_t ci = 0; ci < g->C; ci++)
            for (int64_t i = 0; i < X; i++) {
                const int64_t q = ci / Cg, c = ci % Cg;
                int64_t ic[3];
                unflatten(ic, i, g->in);
                double acc = 0.0;
                for (int64_t o = q * Og; o < (q + 1) * Og; o++)
                    acc = walk_sum(acc, w + (o * Cg + c) * taps, dy + (n * g->O + o) * P, g, ic,
                                   TAPS_TO_OUTPUT);
                dx[(n * g->C + ci) * X + i] = (float)acc;
            }
}

/* dw: (O, C/groups, kD, kH, kW) += ...  db: (O) += ... or NULL
 * dy: (N, O, oD, oH, oW)  x: (N, C, D, H, W) */
static void ref_backward_weight(float *dw, float *db, const float *dy, const float *x,
                                const dpt_conv_geom *g, float *work) {
    const int64_t Cg = g->C / g->groups, Og = g->O / g->groups;
    const int64_t X = volume(g->in), P = volume(g->out), taps = volume(g->k);
    for (int64_t o = 0; o < g->O; o++)
        for (int64_t c = 0; c < Cg; c++)
            for (int64_t t = 0; t < taps; t++) {
                int64_t tc[3];
                unflatten(tc, t, g->k);
                double acc = 0.0;
                for (int64_t n = 0; n < g->N; n++)
                    acc = walk_sum(acc, dy + (n * g->O + o) * P,
                                   x + (n * g->C + o / Og * Cg + c) * X, g, tc, POSITIONS_OF_TAP);
                float *d = dw + (o * Cg + c) * taps + t;
                *d = (float)((double)*d + acc);
            }
    if (!db)
        return;
    for (int64_t o = 0; o < g->O; o++) {
        double acc = 0.0;
        for (int64_t n = 0; n < g->N; n++)
            for (int64_t p = 0; p < P; p++)
                acc += (double)dy[(n * g->O + o) * P + p];
        db[o] = (float)((double)db[o] + acc);
    }
}

const dpt_conv_impl dpt__conv_ref = {.name = "ref",
                                     .workspace = ref_workspace,
                                     .forward = ref_forward,
                                     .backward_data = ref_backward_data,
                                     .backward_weight = ref_backward_weight};
