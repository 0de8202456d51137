/* optim.h5 handlers: pending until the optimizer issue (#3) lands. */
#include "golden.h"

const golden_handler golden_optim_handlers[] = {
    {"sgd", NULL, 1e-5, 1e-5},      {"momentum", NULL, 1e-5, 1e-5}, {"nesterov", NULL, 1e-5, 1e-5},
    {"adagrad", NULL, 1e-5, 1e-5},  {"rmsprop", NULL, 1e-5, 1e-5},  {"adadelta", NULL, 1e-5, 1e-5},
    {"adam", NULL, 1e-5, 1e-5},     {"adamw", NULL, 1e-5, 1e-5},    {NULL, NULL, 0, 0},
};
