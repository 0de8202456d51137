/* Umbrella header: the public API of libdpt. */
#ifndef DPT_DPT_H
#define DPT_DPT_H

#include "dpt/conv.h"
#include "dpt/loss.h"
#include "dpt/ops.h"
#include "dpt/rng.h"
#include "dpt/status.h"
#include "dpt/tensor.h"
#include "dpt/timer.h"

#endif
