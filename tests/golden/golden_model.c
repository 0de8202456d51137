/* model_step.h5 handler: pending until the trainer issue (#4) lands. */
#include "golden.h"

const golden_handler golden_model_handlers[] = {
    {"model_step", NULL, 1e-4, 1e-4},
    {NULL, NULL, 0, 0},
};
