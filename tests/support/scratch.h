/* A scratch folder for tests that write files: created by the cmocka group setup, removed with
 * everything in it by the teardown. */
#ifndef DPT_TEST_SCRATCH_H
#define DPT_TEST_SCRATCH_H

/* The folder's path while the group runs ("/tmp/dpt_test_XXXXXX" made unique). */
extern char dpt_scratch_dir[128];

int dpt_scratch_setup(void **state);
int dpt_scratch_teardown(void **state);

#endif
