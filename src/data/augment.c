/* Per-sample augmentation (data): flip, shift with fill, cutout and Gaussian noise, each drawn
 * from the counter-based RNG at (epoch, dataset index), and the batch fill that applies them (and
 * mix.c's mixing) to a list of samples, read through dpt_dataset_gather, into
 * caller-preallocated buffers. Knows no models and no MPI; the batch composition comes from the
 * sampler. */
#include <math.h>
#include <string.h>

#include "augment_impl.h"
#include "dpt/rng.h"

static int mixing_on(const dpt_augment *a) {
    return a->cfg.mixup_alpha > 0.0f || a->cfg.cutmix_alpha > 0.0f;
}

dpt_status dpt_augment_init(dpt_augment *a, const dpt_augment_cfg *cfg, const dpt_dataset *ds) {
    memset(a, 0, sizeof *a);
    const int64_t ext[3] = {ds->D, ds->H, ds->W};
    if (!(cfg->flip_prob >= 0.0f && cfg->flip_prob <= 1.0f))
        return dpt_errorf(DPT_EINVAL, "augment: flip_prob %g is not in [0, 1]", cfg->flip_prob);
    if (!(cfg->noise_std >= 0.0f) || !isfinite(cfg->noise_std))
        return dpt_errorf(DPT_EINVAL, "augment: noise_std %g must be >= 0", cfg->noise_std);
    if (!(cfg->mixup_alpha >= 0.0f) || !isfinite(cfg->mixup_alpha))
        return dpt_errorf(DPT_EINVAL, "augment: mixup_alpha %g must be >= 0", cfg->mixup_alpha);
    if (!(cfg->cutmix_alpha >= 0.0f) || !isfinite(cfg->cutmix_alpha))
        return dpt_errorf(DPT_EINVAL, "augment: cutmix_alpha %g must be >= 0", cfg->cutmix_alpha);
    if (cfg->cutout < 0)
        return dpt_errorf(DPT_EINVAL, "augment: cutout %lld must be >= 0", (long long)cfg->cutout);
    if (cfg->member >= (1u << 20))
        return dpt_errorf(DPT_EINVAL, "augment: member %u must be < 2^20", cfg->member);
    for (int ax = 3 - ds->sdims; ax < 3; ax++)
        if (cfg->shift < 0 || cfg->shift >= ext[ax] || ext[ax] > (int64_t)UINT32_MAX)
            return dpt_errorf(DPT_EINVAL,
                              "augment: shift %lld must be in [0, %lld) (the sample extent)",
                              (long long)cfg->shift, (long long)ext[ax]);
    a->cfg = *cfg;
    a->C = ds->C, a->D = ds->D, a->H = ds->H, a->W = ds->W, a->K = ds->K, a->sdims = ds->sdims;
    a->normalized = ds->normalized;
    a->fill = dpt_alloc_aligned(dpt_size_mul((size_t)a->C, sizeof(float)));
    a->scratch =
        dpt_alloc_aligned(dpt_size_mul((size_t)dpt_dataset_sample_numel(ds), sizeof(float)));
    a->sample =
        dpt_alloc_aligned(dpt_size_mul((size_t)dpt_dataset_sample_numel(ds), sizeof(float)));
    if (!a->fill || !a->scratch || !a->sample) {
        dpt_augment_free(a);
        return DPT_ENOMEM;
    }
    for (int64_t c = 0; c < a->C; c++)
        a->fill[c] = (float)(-ds->norm_mean[c] / ds->norm_std[c]);
    return DPT_OK;
}

void dpt_augment_free(dpt_augment *a) {
    if (!a)
        return;
    dpt_free_aligned(a->fill);
    dpt_free_aligned(a->scratch);
    dpt_free_aligned(a->sample);
    memset(a, 0, sizeof *a);
}

void dpt_augment_draw(dpt_augment_params *p, const dpt_augment *a, uint32_t epoch, int64_t sample) {
    const dpt_augment_cfg *cfg = &a->cfg;
    const int64_t ext[3] = {a->D, a->H, a->W};
    memset(p, 0, sizeof *p);
    dpt_rng r;
    dpt_rng_init(&r, dpt_rng_key_make(cfg->seed, DPT_RNG_AUGMENT, cfg->member), epoch,
                 (uint64_t)sample);
    /* The flip word is always drawn, so turning flips on or off leaves the later draws alone. */
    p->flip = dpt_rng_uniformf(&r) < cfg->flip_prob;
    for (int ax = 3 - a->sdims; ax < 3 && cfg->shift > 0; ax++)
        p->shift[ax] = (int64_t)dpt_rng_below(&r, (uint32_t)(2 * cfg->shift + 1)) - cfg->shift;
    for (int ax = 0; ax < 3; ax++)
        p->cut_lo[ax] = 0, p->cut_hi[ax] = ext[ax];
    if (cfg->cutout > 0) {
        p->cut = 1;
        for (int ax = 3 - a->sdims; ax < 3; ax++) {
            int64_t centre = dpt_rng_below(&r, (uint32_t)ext[ax]);
            int64_t lo = centre - cfg->cutout / 2, hi = lo + cfg->cutout;
            p->cut_lo[ax] = lo < 0 ? 0 : lo;
            p->cut_hi[ax] = hi > ext[ax] ? ext[ax] : hi;
        }
    }
    dpt__mix_draw(p, a, epoch, sample);
}

void dpt_augment_transform(float *out, const float *in, const dpt_augment_params *p,
                           const dpt_augment *a) {
    DPT_ASSERT(out != in);
    const int64_t D = a->D, H = a->H, W = a->W, plane = D * H * W;
    for (int64_t c = 0; c < a->C; c++) {
        const float fill = a->fill[c];
        for (int64_t z = 0; z < D; z++)
            for (int64_t h = 0; h < H; h++) {
                float *o = out + c * plane + (z * H + h) * W;
                int64_t sz = z - p->shift[0], sh = h - p->shift[1];
                if (sz < 0 || sz >= D || sh < 0 || sh >= H) {
                    for (int64_t w = 0; w < W; w++)
                        o[w] = fill;
                    continue;
                }
                const float *row = in + c * plane + (sz * H + sh) * W;
                for (int64_t w = 0; w < W; w++) {
                    int64_t sw = w - p->shift[2]; /* position in the flipped row */
                    o[w] = sw < 0 || sw >= W ? fill : row[p->flip ? W - 1 - sw : sw];
                }
            }
        if (!p->cut)
            continue;
        for (int64_t z = p->cut_lo[0]; z < p->cut_hi[0]; z++)
            for (int64_t h = p->cut_lo[1]; h < p->cut_hi[1]; h++) {
                float *o = out + c * plane + (z * H + h) * W;
                for (int64_t w = p->cut_lo[2]; w < p->cut_hi[2]; w++)
                    o[w] = fill;
            }
    }
}

void dpt_augment_noise(float *x, int64_t n, const dpt_augment *a, uint32_t epoch, int64_t sample) {
    if (a->cfg.noise_std <= 0.0f)
        return;
    dpt_rng r;
    dpt_rng_init(&r, dpt_rng_key_make(a->cfg.seed, DPT_RNG_NOISE, a->cfg.member), epoch,
                 (uint64_t)sample);
    const double sd = a->cfg.noise_std;
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)((double)x[i] + sd * dpt_rng_normal(&r));
}

/* Steps 1-3 of `p` on dataset sample s into out (C, D, H, W): the sample's values come from the
 * gather; without a transform they go straight to out. */
static void transform_sample(dpt_augment *a, float *out, const dpt_dataset *ds, int64_t s,
                             const dpt_augment_params *p) {
    if (!p->flip && !p->cut && p->shift[0] == 0 && p->shift[1] == 0 && p->shift[2] == 0) {
        dpt_dataset_gather(ds, out, &s, 0, 1); /* what the transform would copy */
        return;
    }
    dpt_dataset_gather(ds, a->sample, &s, 0, 1);
    dpt_augment_transform(out, a->sample, p, a);
}

/* One sample: steps 1-5 of augment.h into x (C, D, H, W) and its soft target row. */
static void fill_one(dpt_augment *a, float *x, float *soft, const dpt_dataset *ds, int64_t s,
                     int64_t partner, uint32_t epoch) {
    const int64_t per = dpt_dataset_sample_numel(ds);
    DPT_ASSERT(s >= 0 && s < ds->N);
    dpt_augment_params p;
    dpt_augment_draw(&p, a, epoch, s);
    transform_sample(a, x, ds, s, &p);
    int32_t y = ds->y[s], yp = y;
    if (p.mix != DPT_MIX_NONE && partner != s) {
        DPT_ASSERT(partner >= 0 && partner < ds->N);
        dpt_augment_params pp;
        dpt_augment_draw(&pp, a, epoch, partner);
        transform_sample(a, a->scratch, ds, partner, &pp);
        yp = ds->y[partner];
    } else {
        p.mix = DPT_MIX_NONE; /* a sample mixed with itself is itself */
        p.lam = 1.0f;
    }
    dpt__mix_apply(x, soft, a->scratch, &p, a, y, yp);
    dpt_augment_noise(x, per, a, epoch, s);
}

void dpt_augment_fill(dpt_augment *a, float *x, int32_t *labels, float *soft, const dpt_dataset *ds,
                      const int64_t *idx, const int64_t *partner, int64_t n, uint32_t epoch) {
    DPT_ASSERT(ds->C == a->C && ds->D == a->D && ds->H == a->H && ds->W == a->W);
    DPT_ASSERT(ds->K == a->K && ds->normalized == a->normalized);
    DPT_ASSERT(!mixing_on(a) || (partner && soft));
    const int64_t per = dpt_dataset_sample_numel(ds);
    for (int64_t i = 0; i < n; i++) {
        fill_one(a, x + i * per, soft ? soft + i * a->K : NULL, ds, idx[i],
                 mixing_on(a) ? partner[i] : idx[i], epoch);
        if (labels)
            labels[i] = ds->y[idx[i]];
    }
}

int64_t dpt_batch_fill(dpt_augment *a, float *x, int32_t *labels, float *soft,
                       const dpt_dataset *ds, const dpt_sampler *s, int64_t step, int rank,
                       int size) {
    DPT_ASSERT(ds->C == a->C && ds->D == a->D && ds->H == a->H && ds->W == a->W);
    DPT_ASSERT(ds->K == a->K && ds->normalized == a->normalized);
    DPT_ASSERT(!mixing_on(a) || soft);
    const int64_t per = dpt_dataset_sample_numel(ds);
    const int64_t *idx = NULL;
    int64_t first = 0;
    int64_t n = dpt_sampler_slice(s, step, rank, size, &idx, &first);
    for (int64_t i = 0; i < n; i++) {
        int64_t partner = mixing_on(a) ? dpt_sampler_partner(s, step, first + i) : idx[i];
        fill_one(a, x + i * per, soft ? soft + i * a->K : NULL, ds, idx[i], partner,
                 (uint32_t)s->epoch);
        if (labels)
            labels[i] = ds->y[idx[i]];
    }
    return n;
}
