/* Umbrella header: the public API of libdpt. */
#ifndef DPT_DPT_H
#define DPT_DPT_H

#include "dpt/augment.h"
#include "dpt/checkpoint.h"
#include "dpt/conv.h"
#include "dpt/data.h"
#include "dpt/comm.h"
#include "dpt/h5file.h"
#include "dpt/loss.h"
#include "dpt/model.h"
#include "dpt/ops.h"
#include "dpt/optim.h"
#include "dpt/rng.h"
#include "dpt/runtime.h"
#include "dpt/sampler.h"
#include "dpt/schedule.h"
#include "dpt/status.h"
#include "dpt/tensor.h"
#include "dpt/timer.h"
#include "dpt/train.h"

#endif
