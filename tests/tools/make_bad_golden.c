/* Writes golden folders the `golden` test must reject (tests/CMakeLists.txt runs it on each):
 *   DIR/unknown-op/a.h5   one case whose op no handler knows
 *   DIR/wrong-count/a.h5  num_cases = 2 with one case group
 *   DIR/missing-ref/a.h5  a relu case without its `dx` reference
 *   DIR/empty/            no .h5 file at all
 * and DIR/good/a.h5, a relu case that passes, so the rejections are not a broken setup. */
#include <stdio.h>
#include <sys/stat.h>

#include "dpt/h5file.h"

static int write_relu(const char *dir, const char *op, int num_cases, int with_dx) {
    char path[512];
    mkdir(dir, 0777);
    snprintf(path, sizeof path, "%s/a.h5", dir);
    const float x[4] = {-1.5f, -0.25f, 0.5f, 2.0f}, dy[4] = {1, 2, 3, 4};
    const double y[4] = {0, 0, 0.5, 2.0}, dx[4] = {0, 0, 3, 4};
    int64_t dims[2] = {2, 2};
    dpt_h5w w;
    dpt_h5w_open(&w, path);
    dpt_h5w_attr_i64(&w, "/", "num_cases", num_cases);
    dpt_h5w_f32(&w, "case_000/x", x, 2, dims);
    dpt_h5w_f32(&w, "case_000/dy", dy, 2, dims);
    dpt_h5w_f64(&w, "case_000/y", y, 2, dims);
    if (with_dx)
        dpt_h5w_f64(&w, "case_000/dx", dx, 2, dims);
    dpt_h5w_attr_str(&w, "case_000", "op", op);
    dpt_h5w_attr_str(&w, "case_000", "desc", "relu x=2x2 (runner self-test)");
    return dpt_h5w_close(&w, 1) == DPT_OK ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: make_bad_golden DIR\n");
        return 2;
    }
    char sub[400];
    int bad = mkdir(argv[1], 0777) != 0;
    snprintf(sub, sizeof sub, "%s/good", argv[1]);
    bad |= write_relu(sub, "relu", 1, 1);
    snprintf(sub, sizeof sub, "%s/unknown-op", argv[1]);
    bad |= write_relu(sub, "relu6", 1, 1);
    snprintf(sub, sizeof sub, "%s/wrong-count", argv[1]);
    bad |= write_relu(sub, "relu", 2, 1);
    snprintf(sub, sizeof sub, "%s/missing-ref", argv[1]);
    bad |= write_relu(sub, "relu", 1, 0);
    snprintf(sub, sizeof sub, "%s/empty", argv[1]);
    bad |= mkdir(sub, 0777) != 0;
    if (bad)
        fprintf(stderr, "make_bad_golden: %s: cannot write the folders: %s\n", argv[1],
                dpt_last_error());
    return bad;
}
