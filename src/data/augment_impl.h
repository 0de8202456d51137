/* Internal to the data module: the split between augment.c (per-sample transforms, noise, the
 * batch fill) and mix.c (mixup / cutmix draws and blending). Not part of the public API. */
#ifndef DPT_DATA_AUGMENT_IMPL_H
#define DPT_DATA_AUGMENT_IMPL_H

#include "dpt/augment.h"

/* Fills p->mix, p->lam and p->mix_lo/hi from the stream (seed, MIX, member) at (epoch, sample). */
void dpt__mix_draw(dpt_augment_params *p, const dpt_augment *a, uint32_t epoch, int64_t sample);

/* Blends the transformed partner `xp` into the transformed sample `x` (both (C, D, H, W)) as `p`
 * says, and writes the soft target row (K) when `soft` is not NULL. */
void dpt__mix_apply(float *x, float *soft, const float *xp, const dpt_augment_params *p,
                    const dpt_augment *a, int32_t y_self, int32_t y_partner);

#endif
