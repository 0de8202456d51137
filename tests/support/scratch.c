/* The scratch folder of scratch.h. */
#include "scratch.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

char dpt_scratch_dir[128];

int dpt_scratch_setup(void **state) {
    (void)state;
    snprintf(dpt_scratch_dir, sizeof dpt_scratch_dir, "/tmp/dpt_test_XXXXXX");
    return mkdtemp(dpt_scratch_dir) ? 0 : -1;
}

int dpt_scratch_teardown(void **state) {
    (void)state;
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dpt_scratch_dir);
    return system(cmd);
}
