/* Augmentation (data): per-sample transforms keyed by the counter-based RNG, so a sample's
 * transform depends on (seed, member, epoch, dataset index) only, never on its batch position,
 * its rank or the rank count (DESIGN §2); and the batch fill that turns a list of dataset indices
 * into an input buffer and targets. Knows no models and no MPI. Label smoothing is the loss's.
 *
 * Per sample s at epoch e, in this order:
 *   1. flip    reverse the last axis (W) with probability flip_prob     [stream AUGMENT (e, s)]
 *   2. shift   translate by an integer in [-shift, shift] along each spatial axis; pixels moved in
 *              from outside are the fill value (= zero padding + random crop)  [stream AUGMENT]
 *   3. cutout  set a box of side `cutout` (per spatial axis, centre uniform over the sample,
 *              clipped at the borders) to the fill value, in every channel     [stream AUGMENT]
 *   4. mix     mixup (x = lam*x_s + (1-lam)*x_p) or cutmix (the partner's pixels in a box of
 *              relative volume 1-lam), lam ~ Beta(alpha, alpha), the partner p transformed by its
 *              own steps 1-3; targets lam*onehot(y_s) + (1-lam)*onehot(y_p)  [stream MIX (e, s)]
 *   5. noise   add N(0, noise_std^2) to every element                     [stream NOISE (e, s)]
 * The fill value of channel c is the normalized image of a raw 0, -norm_mean[c]/norm_std[c]
 * (0 for data that were not normalized): padding and cutout act as on the raw image, as with
 * torchvision transforms applied before Normalize. */
#ifndef DPT_AUGMENT_H
#define DPT_AUGMENT_H

#include <stdint.h>

#include "dpt/data.h"
#include "dpt/sampler.h"
#include "dpt/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Zero means off for every transform. All fields are global input. */
typedef struct {
    uint32_t seed;
    uint32_t member;   /* ensemble member (< 2^20): part of every key */
    float flip_prob;   /* in [0, 1] */
    int64_t shift;     /* max shift in pixels along each spatial axis, < that axis' extent */
    int64_t cutout;    /* side of the cut box in pixels */
    float noise_std;   /* in normalized input units */
    float mixup_alpha; /* Beta(alpha, alpha); with cutmix too, each sample picks one with p 1/2 */
    float cutmix_alpha;
} dpt_augment_cfg;

enum { DPT_MIX_NONE = 0, DPT_MIX_MIXUP = 1, DPT_MIX_CUTMIX = 2 };

/* The random choices for one (epoch, sample); spatial arrays are indexed (D, H, W) and hold
 * half-open boxes [lo, hi). A pure function of (cfg, epoch, sample, sample shape). */
typedef struct {
    int flip;
    int64_t shift[3]; /* out[z] = in[z - shift] along each axis */
    int cut;          /* cutout box present */
    int64_t cut_lo[3], cut_hi[3];
    int mix;                      /* DPT_MIX_* */
    float lam;                    /* weight of the sample's own target (1 when mix is NONE) */
    int64_t mix_lo[3], mix_hi[3]; /* cutmix: the box taken from the partner */
} dpt_augment_params;

/* Per-trainer augmentation state: the copied config, the sample shape, the fill values and one
 * scratch sample, all allocated here once so that filling a batch allocates nothing. */
typedef struct {
    dpt_augment_cfg cfg;
    int64_t C, D, H, W, K;
    int sdims;
    int normalized; /* ds->normalized at init, checked by every fill */
    float *fill;    /* (C) fill values */
    float *scratch; /* (C*D*H*W): the transformed partner */
    float *sample;  /* (C*D*H*W): a gathered sample before its transform */
} dpt_augment;

/* Validates and copies `cfg` and reads the shape, K and normalization of `ds` (call after
 * dpt_data_normalize; `ds` need not outlive `a`). Zeroes *a first. Errors name the field. */
dpt_status dpt_augment_init(dpt_augment *a, const dpt_augment_cfg *cfg, const dpt_dataset *ds);
void dpt_augment_free(dpt_augment *a);

/* The random choices of sample `sample` (a dataset index) at `epoch`. */
void dpt_augment_draw(dpt_augment_params *p, const dpt_augment *a, uint32_t epoch, int64_t sample);
/* Steps 1-3 of `p` on one sample: out, in: (C, D, H, W), distinct buffers. */
void dpt_augment_transform(float *out, const float *in, const dpt_augment_params *p,
                           const dpt_augment *a);
/* Step 5: x[0..n) += noise_std * N(0, 1) from the stream (seed, NOISE, member) at (epoch, sample).
 */
void dpt_augment_noise(float *x, int64_t n, const dpt_augment *a, uint32_t epoch, int64_t sample);

/* Fills the n samples idx[0..n) of `ds` (the batch's local input; `ds` must be the dataset given
 * to init, or one of the same shape and normalization):
 *   x:      (n, C, D, H, W) inputs, transformed as above
 *   labels: (n) each sample's own label, or NULL
 *   soft:   (n, K) targets, one-hot or mixed (each row sums to 1), or NULL; required with mixing
 *   partner:(n) dataset index of each sample's mix partner; required with mixing, else ignored.
 * All buffers are the caller's (preallocated once); nothing is allocated. */
void dpt_augment_fill(dpt_augment *a, float *x, int32_t *labels, float *soft, const dpt_dataset *ds,
                      const int64_t *idx, const int64_t *partner, int64_t n, uint32_t epoch);

/* The training-step form: fills rank `rank` of `size`'s slice of global batch `step` of the
 * sampler's current epoch, with partners from dpt_sampler_partner. Returns the slice's count
 * (buffers need room for the largest: ceil(b_g / size) samples). The concatenation of the slices
 * over ranks 0..size-1 equals the size-1 fill, whatever `size` is. */
int64_t dpt_batch_fill(dpt_augment *a, float *x, int32_t *labels, float *soft,
                       const dpt_dataset *ds, const dpt_sampler *s, int64_t step, int rank,
                       int size);

#ifdef __cplusplus
}
#endif
#endif
