/* Model presets (nn): named architectures written as spec strings, so that a preset is exactly
 * what its spec says and `--print-model` shows it. `classes` is the data set's class count.
 * Convolutions followed by batch norm carry no bias: batch norm subtracts the channel mean, so a
 * bias there has a zero gradient and only costs parameters. */
#include <string.h>

#include "dpt/model.h"

static const struct {
    const char *name, *spec;
} presets[] = {
    /* LeCun et al. 1998 with today's ReLU and max pooling; the 5x5 first convolution pads 28x28
     * inputs to the paper's 32x32 receptive field. */
    {"lenet5", "conv2d(6,5,pad=2) relu maxpool(2) conv2d(16,5) relu maxpool(2) flatten "
               "dense(120) relu dense(84) relu dense(classes)"},
    /* The reference Fashion-MNIST CNN: (conv-bn-relu) x2, pool, (conv-bn-relu) x2, pool, MLP. */
    {"fmnist-cnn", "conv2d(32,3,pad=1,bias=0) bn relu conv2d(32,3,pad=1,bias=0) bn relu "
                   "maxpool(2) conv2d(64,3,pad=1,bias=0) bn relu conv2d(64,3,pad=1,bias=0) bn "
                   "relu maxpool(2) flatten dense(128) relu dropout(0.5) dense(classes)"},
    {"mlp", "flatten dense(256) relu dense(128) relu dense(classes)"},
    /* Sequences (C, L), L divisible by 4. */
    {"cnn1d", "conv1d(16,5,pad=2,bias=0) bn relu maxpool(2) conv1d(32,5,pad=2,bias=0) bn relu "
              "maxpool(2) flatten dense(64) relu dense(classes)"},
    /* Volumes (C, D, H, W), each extent divisible by 4. */
    {"cnn3d", "conv3d(8,3,pad=1,bias=0) bn relu maxpool(2) conv3d(16,3,pad=1,bias=0) bn relu "
              "maxpool(2) flatten dense(64) relu dense(classes)"},
};

const char *dpt_model_preset(const char *name) {
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
        if (strcmp(presets[i].name, name) == 0)
            return presets[i].spec;
    return NULL;
}

const char *dpt_model_preset_names(void) {
    return "lenet5, fmnist-cnn, mlp, cnn1d, cnn3d";
}
