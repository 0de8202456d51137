/* Samplers (data): the epoch order of the training samples, its global batches and each rank's
 * slice of them (DESIGN §2), and the index lists that come before it: stratified validation
 * split, bootstrap with out-of-bag set, subsample, weighted draws, K-fold partition. Knows no
 * models and no MPI: a rank is only a (rank, size) pair, so all of this is computed identically
 * on every rank.
 *
 * Every function here is a pure function of its arguments; "global input" below means the
 * argument must be equal on every rank of the group for the ranks to agree. */
#ifndef DPT_SAMPLER_H
#define DPT_SAMPLER_H

#include <stdint.h>

#include "dpt/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The slice of a global batch of `n` samples taken by rank `rank` of `size`: positions
 * [*begin, *begin + *count). The first n % size ranks take n / size + 1 samples, the others
 * n / size, so the slices tile [0, n) in rank order and their counts sum to exactly n even when
 * size does not divide n (a rank may get 0 samples when n < size; it must still join the
 * collectives). Uneven slices mean the trainer sums gradients over the group and scales by
 * 1 / n, never averages per-rank means. n, size: global input. */
void dpt_shard_range(int64_t n, int rank, int size, int64_t *begin, int64_t *count);

/* Sampler configuration; zero means default. All fields are global input. */
typedef struct {
    int64_t global_batch; /* b_g >= 1: samples per step over the whole group */
    uint32_t seed;
    uint32_t member; /* ensemble member / fold / sweep point (< 2^20): part of the key */
    int drop_last;   /* 1: drop the last partial global batch; 0: keep it (smaller) */
    int no_shuffle;  /* 1: the epoch order is the pool order (evaluation) */
    /* Chunk-aware shuffle (--stream-window) when window_blocks > 0: the pool is cut into blocks
     * of block_rows consecutive entries (an HDF5 file's chunks when the pool is 0..N-1); the
     * epoch order visits the blocks in a random order, W = window_blocks at a time, and shuffles
     * the samples within each window of W blocks. 0: the exact permutation below. */
    int64_t block_rows;
    int64_t window_blocks;
} dpt_sampler_cfg;

/* Epoch order over a pool of dataset indices. The order of epoch e is
 * order[i] = pool[perm[i]], perm = dpt_rng_permutation(n, key(seed, DPT_RNG_SHUFFLE, member), e),
 * so it depends only on (seed, member, epoch, pool) and never on the rank or the rank count.
 * Chunk-aware (window_blocks W > 0): blocks = dpt_rng_permutation(ceil(n / block_rows), key, e);
 * window w holds the pool positions of blocks[w*W .. w*W + W), shuffled by Fisher-Yates from the
 * stream (key, e, w + 1); order is the windows in turn.
 * Global batch t is order[t*b_g .. t*b_g + size_t), and rank r of R takes its dpt_shard_range.
 * Resuming needs only (epoch, step): nothing else is stateful. */
typedef struct {
    dpt_sampler_cfg cfg;
    int64_t n;      /* pool size */
    int64_t *pool;  /* owned copy of the pool (n) */
    int64_t *order; /* owned (n): dataset indices in the current epoch's order */
    int64_t steps;  /* global batches per epoch */
    int64_t epoch;  /* epoch of `order`; -1 before the first dpt_sampler_set_epoch */
    int64_t *blocks; /* owned: the block order of a chunk-aware shuffle; NULL otherwise */
} dpt_sampler;

/* Copies `cfg` and the pool idx[0..n) (idx NULL: 0..n-1); allocates the order buffer once, so
 * nothing is allocated per epoch or step. cfg, idx, n: global input. DPT_EINVAL when
 * global_batch < 1, n < 1, n >= 2^32, or drop_last leaves no step (n < b_g). */
dpt_status dpt_sampler_init(dpt_sampler *s, const dpt_sampler_cfg *cfg, const int64_t *idx,
                            int64_t n);
void dpt_sampler_free(dpt_sampler *s);
/* Computes the order of `epoch` (global input). Call before the epoch's first step. */
void dpt_sampler_set_epoch(dpt_sampler *s, uint32_t epoch);
/* Steps per epoch: floor(n / b_g) with drop_last, ceil(n / b_g) without; the same on every rank. */
int64_t dpt_sampler_steps(const dpt_sampler *s);
/* Size of global batch `step`: b_g, or the remainder for a kept last partial batch. */
int64_t dpt_sampler_batch_size(const dpt_sampler *s, int64_t step);
/* Rank `rank` of `size` in global batch `step`: *idx points at the slice's dataset indices
 * (borrowed from the sampler, valid until the next set_epoch); returns their count. When
 * `first` is not NULL it receives the slice's first position within the global batch. */
int64_t dpt_sampler_slice(const dpt_sampler *s, int64_t step, int rank, int size,
                          const int64_t **idx, int64_t *first);
/* The mixup/cutmix partner of the j-th sample of global batch `step` (0 <= j < batch size):
 * the sample at the mirrored position b - 1 - j of the same global batch. It depends only on
 * (seed, member, epoch, pool, step, j), so any rank can fetch it from its copy of the dataset. */
int64_t dpt_sampler_partner(const dpt_sampler *s, int64_t step, int64_t j);

/* ---- Index lists (src/data/resample.c). `pool` NULL means 0..n-1; outputs are dataset indices
 * (pool elements), caller-allocated. Labels `y` are indexed by dataset index. ---- */

/* Stratified validation split of the pool: val gets round(fraction * n) samples, and each class
 * c with n_c pool members gets floor or ceil of fraction * n_c (largest remainders first, ties to
 * the smaller class), chosen by the permutation key(seed, DPT_RNG_SPLIT, member) at counter 0.
 * train (n - n_val) and val (n_val) keep pool order. y NULL: not stratified. Labels must be in
 * [0, K). train and val need room for n. DPT_EINVAL on fraction outside [0, 1). */
dpt_status dpt_resample_split(int64_t *train, int64_t *n_train, int64_t *val, int64_t *n_val,
                              const int64_t *pool, int64_t n, const int32_t *y, int64_t K,
                              double fraction, uint32_t seed, uint32_t member);

/* Bootstrap replica: m draws with replacement from the pool (uniform positions from the stream
 * key(seed, DPT_RNG_BOOTSTRAP, member), counter 0), written to in_bag sorted by pool position;
 * oob receives the pool elements never drawn (pool order), *n_oob their count. oob needs room for
 * n. A pool with duplicates is sampled by position. */
void dpt_resample_bootstrap(int64_t *in_bag, int64_t m, int64_t *oob, int64_t *n_oob,
                            const int64_t *pool, int64_t n, uint32_t seed, uint32_t member);

/* Subsample: m distinct pool positions (0 <= m <= n), every m-subset equally likely, from the
 * stream key(seed, DPT_RNG_BOOTSTRAP, member) at counter (1, 0), so it shares no numbers with
 * the bootstrap (counter 0) of the same member. in_bag (m) gets them in pool order, oob (room
 * for n) the other n - m, in pool order; *n_oob = n - m. This is bagging without replacement
 * (scikit-learn's bootstrap=False with max_samples = m); the same subsets in distribution, not
 * the same draws. */
void dpt_resample_subsample(int64_t *in_bag, int64_t m, int64_t *oob, int64_t *n_oob,
                            const int64_t *pool, int64_t n, uint32_t seed, uint32_t member);

/* Weighted draws (boosting by resampling): m draws with replacement, position i with
 * probability w[i] / sum(w) (w indexed by pool position), from the stream
 * key(seed, DPT_RNG_BOOTSTRAP, member) at counter (2, 0). Each draw inverts the cumulative sums
 * (double, pool order) at a 53-bit uniform times the total. drawn (m) receives the pool elements
 * sorted by pool position. DPT_EINVAL for a negative or non-finite weight or a sum that is zero
 * or overflows; DPT_ENOMEM (n doubles of scratch). */
dpt_status dpt_resample_weighted(int64_t *drawn, int64_t m, const double *w, const int64_t *pool,
                                 int64_t n, uint32_t seed, uint32_t member);

/* K-fold: fold_of[i] in [0, k) for pool position i, scikit-learn's assignment.
 * y NULL (KFold): fold f is a contiguous block of positions, the first n % k blocks holding
 *   n / k + 1 and the rest n / k, in pool order.
 * y given (StratifiedKFold): classes are numbered in order of first appearance in the pool;
 *   class c's fold sizes are how many of its members land in each fold when the numbered labels,
 *   sorted, are dealt to the folds round robin; its samples, in pool order, take fold 0 that many
 *   times, then fold 1, and so on. So per-class counts of two folds differ by at most 1, and
 *   fold sizes too. Labels must be in [0, K); classes without samples in the pool are ignored.
 * Without shuffle this equals scikit-learn's test folds exactly. With shuffle each class's
 * (y NULL: the single block sequence's) fold labels are permuted by Fisher-Yates, class after
 * class in the numbering order, from the stream key(seed, DPT_RNG_SPLIT, member) at counter
 * (1, 0): the fold sizes stay exact; the assignment matches scikit-learn only in distribution
 * (numpy's generator is not ours). DPT_EINVAL unless 2 <= k <= n, or when every class has fewer
 * than k samples (scikit-learn's error; it only warns when some class has fewer). */
dpt_status dpt_resample_kfold(int32_t *fold_of, const int64_t *pool, int64_t n, const int32_t *y,
                              int64_t K, int k, int shuffle, uint32_t seed, uint32_t member);
/* Fold `fold` of a K-fold assignment as lists: val = pool elements with fold_of == fold,
 * train = the rest, both in pool order. train and val need room for n. */
void dpt_resample_fold(int64_t *train, int64_t *n_train, int64_t *val, int64_t *n_val,
                       const int32_t *fold_of, const int64_t *pool, int64_t n, int fold);

#ifdef __cplusplus
}
#endif
#endif
