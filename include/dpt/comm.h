/* Data-parallel building blocks over MPI (comm): world and group communicators, error agreement
 * and coordinated abort, parameter broadcast, checksums, metric and batch-norm reductions,
 * bucketed gradient allreduce overlapped with backward, and the exact (bit-reproducible) sum of
 * --deterministic mode, and the node-shared buffer that holds one copy of the data per node.
 * comm knows no layers and no files: gradients are one flat float array cut into segments
 * (offset, count) in layer order, and a shared buffer is bytes.
 *
 * Contracts follow HPL: every collective says over which communicator it runs, which arguments
 * must be equal on every rank of it ("global input"), and which buffers are local input and
 * global output. Every communicator created here has MPI_ERRORS_RETURN, and MPI error codes come
 * back as DPT_EMPI with MPI_Error_string's text in dpt_last_error(). */
#ifndef DPT_COMM_H
#define DPT_COMM_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "dpt/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* DPT_OK for MPI_SUCCESS; otherwise records "WHAT: <MPI_Error_string text>" and returns
 * DPT_EMPI. For callers that use the communicators below directly. */
dpt_status dpt_mpi_status(int mpi_rc, const char *what);

/* ---- Groups ------------------------------------------------------------------------------ */

/* Group of a world rank: 0 <= result < n_groups. Must be a pure function of its arguments (it is
 * evaluated on every rank for every rank). */
typedef int (*dpt_group_map_fn)(void *ctx, int world_rank, int world_size);

#define DPT_AGREE_TIMEOUT_DEFAULT 10.0 /* seconds */
/* Seconds a rank waits inside a collective of training (gradient allreduce, metric sums,
 * batch-norm statistics, broadcasts, checksums) before the job stops. It must exceed the longest
 * legitimate lag between ranks: a checkpoint written by the leader, an evaluation, the first
 * step's warm-up, a slow file system. Five minutes leaves room for all of them on a healthy
 * cluster and still ends a stuck job long before anyone wonders. */
#define DPT_COLLECTIVE_TIMEOUT_DEFAULT 300.0

/* Zero fields take the defaults given. Global input: equal on every rank. */
typedef struct {
    int n_groups;         /* G: ensemble members, folds or sweep points; 0 means 1 */
    dpt_group_map_fn map; /* NULL: block layout, world rank r -> group r / (world_size / G), which
                           * needs world_size % G == 0 */
    void *map_ctx;
    double agree_timeout; /* seconds dpt_group_agree waits for the other ranks before it aborts
                           * the job; 0: DPT_AGREE_TIMEOUT_DEFAULT; < 0: wait forever */
    double collective_timeout; /* the same for every other collective (see "Timeouts" below);
                                * 0: DPT_COLLECTIVE_TIMEOUT_DEFAULT; < 0: wait forever */
    const char *what;     /* names the layout in errors, e.g. "--members 3"; NULL: "groups" */
} dpt_group_cfg;

/* A rank as people know it, for messages: its rank in MPI_COMM_WORLD (mpirun's numbering, also
 * inside a rank group's private world) and its host. */
typedef struct dpt_group_peer {
    int rank;
    char host[60];
} dpt_group_peer;

/* Where a rank is. Read the fields; do not write them (the setters below excepted). Tagged, so
 * that other headers can forward-declare `struct dpt_group` without including MPI. */
typedef struct dpt_group {
    MPI_Comm world;      /* duplicate of the parent communicator (MPI_ERRORS_RETURN) */
    MPI_Comm comm;       /* this rank's group, ranks in world order (MPI_ERRORS_RETURN);
                          * MPI_COMM_NULL when dpt_group_init failed */
    MPI_Comm agree_comm; /* private duplicate of `world` for dpt_group_agree, so that an
                          * agreement can never match a collective a late rank is still in */
    int world_rank, world_size;
    int rank, size;       /* in the group */
    int group, n_groups;  /* this rank's group index (member/fold/sweep point) and G */
    int leader;           /* 1 on group rank 0: logs, checkpoints, broadcasts parameters */
    double agree_timeout; /* resolved: seconds, or < 0 for no limit */
    double collective_timeout; /* resolved: seconds, or < 0 for no limit */
    MPI_Comm watch_comm;  /* private duplicate of `world` for the roll call after a timeout */
    dpt_group_peer *peers; /* world_size entries: world rank -> launch rank and host */
    int64_t step;          /* label of the collectives that follow (dpt_group_set_step); -1 */
} dpt_group;

/* Collective over `parent` (usually MPI_COMM_WORLD). cfg: global input (NULL: one group).
 * Duplicates `parent` into g->world and g->agree_comm first, then validates the layout (G >= 1,
 * G <= world size, block layout divisible, every group non-empty, map results in range) and
 * splits g->world by group with the world rank as key. A bad layout gives DPT_EINVAL with the
 * same message on every rank, e.g. "--members 3: 4 ranks cannot be split into 3 groups of equal
 * size". On failure the world communicators stay valid whenever they could be created, so
 * dpt_group_agree and dpt_group_abort still work; call dpt_group_free in every case. */
dpt_status dpt_group_init(dpt_group *g, MPI_Comm parent, const dpt_group_cfg *cfg);
/* Collective over g->world (MPI_Comm_free). Safe after a failed or no init (zeroed struct). */
void dpt_group_free(dpt_group *g);

/* Local. Sets g->collective_timeout: seconds > 0, 0 for DPT_COLLECTIVE_TIMEOUT_DEFAULT, < 0 for
 * no limit. Global input: set the same value on every rank (--collective-timeout). */
void dpt_group_set_timeout(dpt_group *g, double seconds);
/* Local. Names the collectives that follow "step N's ..." in timeout messages (the trainer sets
 * its global step before each step); -1 drops the step. */
void dpt_group_set_step(dpt_group *g, int64_t step);

/* ---- Rank groups for a queue of jobs (groups.c) ----------------------------------------- */

/* G jobs (ensemble members, folds, sweep points) over the R ranks of `world`: P = min(G, R)
 * groups of R / P consecutive ranks (R % P == 0, or DPT_EINVAL naming `what`; with `fit`, P is
 * instead the largest divisor of R not above min(G, R): 3 sweep points on 4 ranks run as 2
 * groups of 2); job j runs on group j % P, the jobs of a group one after another in job order. */
typedef struct {
    dpt_group split;   /* world split into the P groups (agreement over the whole world) */
    dpt_group member;  /* this rank's group as a world of its own: inside a job, agreement,
                        * checks and collectives involve only the group, so groups never wait
                        * for each other */
    MPI_Comm leaders;  /* the P group leaders, in group order (MPI_COMM_NULL elsewhere) */
    int n_jobs, n_groups, group_size;
} dpt_rank_groups;

/* Collective over world->world. On failure the status is agreed over the world; call
 * dpt_rank_groups_free in every case. */
dpt_status dpt_rank_groups_init(dpt_rank_groups *rg, const dpt_group *world, int n_jobs,
                                int fit, const char *what);
void dpt_rank_groups_free(dpt_rank_groups *rg);
/* Group that runs job j, and its first world rank. */
int dpt_rank_groups_group_of(const dpt_rank_groups *rg, int job);
/* One line per group for the start of a run: "group 1: ranks 2-3, members 2 4" (what_job names
 * a job: "member", "fold", "round"). Returns the characters written (snprintf rules). */
int dpt_rank_groups_describe(const dpt_rank_groups *rg, const char *what_job, char *buf,
                             size_t n);
/* Sends `bytes` of job j's result from the leader of its group to the first leader (world rank
 * 0), over the leaders' communicator. Call on every leader for every job in job order (the
 * others return at once); buf: local input on the job's leader, output on world rank 0. */
dpt_status dpt_rank_groups_to_root(const dpt_rank_groups *rg, int job, void *buf, size_t bytes);
/* Collective over the world: returns when every rank has called it, however long that takes
 * (groups finish their queues at different times), polling with sleeps so waiting ranks leave
 * the cores to the ranks still training. No deadline: a failing group aborts the job instead. */
dpt_status dpt_rank_groups_wait_all(const dpt_rank_groups *rg);
/* For a job that failed (its status agreed over its group): the group leader prints
 * "dptrain: error: WHAT: <message>" and every rank of the group aborts the whole launch
 * (MPI_Abort on the world), so the other groups stop at once. */
_Noreturn void dpt_rank_groups_abort(const dpt_rank_groups *rg, const char *what,
                                     dpt_status st);

/* ---- One read-only copy per node (node.c) ------------------------------------------------ */

/* A buffer shared by the ranks of one node through MPI-3 shared memory: the node leader (the
 * lowest rank of g->world on the node) allocates it with MPI_Win_allocate_shared and fills it;
 * the other ranks of the node map the same pages (MPI_Win_shared_query) and only read them. A
 * node then holds one copy of the data whatever its rank count, and its ranks' proportional set
 * sizes each carry 1/size of it.
 *
 * Protocol, on every rank of g->world (the leader's `bytes` is the only size anyone gives):
 *   dpt_node_buffer_init(&b, g);          collective over g->world: finds the node's ranks
 *   dpt_node_buffer_alloc(&b, bytes);     collective over b.node: the leader's bytes (0 when it
 *                                         has nothing to share, e.g. its files failed), the
 *                                         others' argument is ignored; b.base and b.bytes out
 *   leader: write b.base[0 .. b.bytes)
 *   dpt_node_buffer_publish(&b);          collective over b.node: afterwards every rank sees the
 *                                         leader's writes; nobody writes again
 *   dpt_node_buffer_free(&b);             collective over b.node, once nobody reads b.base
 * The waits in alloc and publish are those of every collective here (polled, bounded by
 * g->collective_timeout with a roll call naming a rank that never arrives), so the others wait
 * as long as the leader reads files, without spinning on the cores. A failure on the leader
 * still has to reach alloc (with 0) and publish, so that nobody waits for it; the status itself
 * travels through dpt_group_agree. */
typedef struct dpt_node_buffer {
    const dpt_group *g; /* borrowed: timeouts and the roll call; must outlive the buffer */
    MPI_Comm node;      /* the ranks of g->world on this node, world order (MPI_ERRORS_RETURN);
                         * MPI_COMM_NULL when init failed */
    int rank, size;     /* in `node`; rank 0 is the node leader */
    MPI_Win win;        /* MPI_WIN_NULL while nothing is allocated */
    int locked;         /* win is in a passive-target epoch (MPI_Win_lock_all) until free */
    void *base;         /* the leader's buffer, DPT_ALIGN-aligned, mapped by every rank of the
                         * node; NULL when bytes is 0 */
    size_t bytes;
} dpt_node_buffer;

/* Collective over g->world (MPI_Comm_split_type, MPI_COMM_TYPE_SHARED, keyed by world rank).
 * Zeroes *b first; call dpt_node_buffer_free in every case. */
dpt_status dpt_node_buffer_init(dpt_node_buffer *b, const dpt_group *g);
/* Collective over b->node. bytes: local input on the node leader (0: no buffer), ignored
 * elsewhere; b->bytes and b->base: output on every rank of the node. When /dev/shm (where MPI
 * keeps shared windows) has less room than `bytes`, the leader returns DPT_ENOMEM saying so and
 * the others DPT_OK with no buffer (agree to learn it); DPT_EMPI (MPI's text) when the window
 * cannot be created for another reason. */
dpt_status dpt_node_buffer_alloc(dpt_node_buffer *b, size_t bytes);
/* Collective over b->node: MPI_Win_sync, a barrier, MPI_Win_sync (the MPI-3 shared-memory
 * synchronization), so the leader's writes are visible to every rank of the node; the others
 * then map every page (so each rank's PSS holds its share of the copy from the start). */
dpt_status dpt_node_buffer_publish(dpt_node_buffer *b);
/* Collective over b->node (MPI_Win_free, MPI_Comm_free). Safe after a failed or no init (a
 * zeroed struct). */
void dpt_node_buffer_free(dpt_node_buffer *b);

/* ---- Agreement and coordinated abort (agree.c) ------------------------------------------- */

/* Collective over g->agree_comm (every world rank). st: local input. Returns the worst status
 * over all ranks (the largest code; DPT_OK only when every rank passed DPT_OK) on every rank.
 * When it is not DPT_OK, the lowest world rank holding that status broadcasts its
 * dpt_last_error() text and every rank records it as "rank R: <text>", so rank 0 can print
 * "dptrain: error: rank 3: data.h5: cannot open: ..." and every rank can exit non-zero.
 *
 * Dead or stuck ranks: the agreement is an MPI_Iallreduce (and, on error, an MPI_Ibcast)
 * completed like every collective here (see "Timeouts" below), with g->agree_timeout as the
 * limit: when it passes, the roll call names the ranks that did not reach the agreement in one
 * line ("dptrain: error: rank 3 (host n07) did not reach the error agreement within 10 s;
 * stopping every rank") and MPI_Abort ends the job: mpirun then kills every rank, including
 * ranks blocked in other collectives, and exits non-zero. So no rank hangs as long as one rank
 * reaches the agreement; a rank that exits without MPI_Finalize is caught by mpirun itself. The
 * clock starts when this rank enters, so the timeout must exceed the longest time a healthy rank
 * may lag behind at an agreement point (the leader writing a checkpoint, an uneven evaluation):
 * agree right after collective phases, or raise agree_timeout. This is one of the places, with
 * dpt_group_abort and the timeouts of wait.c, where library code ends the process. g: global
 * input. */
dpt_status dpt_group_agree(const dpt_group *g, dpt_status st);

/* ---- Timeouts (wait.c) ------------------------------------------------------------------ */

/* Every wait inside the collectives of this header (and dpt_group_agree) is a nonblocking MPI
 * operation polled with MPI_Test: a short spin, then sleeps growing from 10 us to 1 ms, so that
 * ranks oversubscribing a core leave it to the ones still computing. The clock starts when the
 * rank starts waiting. When g->collective_timeout (g->agree_timeout for an agreement) passes,
 * the rank stops waiting for good and takes part in a roll call over g->watch_comm:
 *   - it sends "here" to the lowest rank of the collective's communicator, which collects such
 *     reports for a grace period of clamp(timeout / 4, 2 s, 10 s) from its own timeout on;
 *   - that collector prints ONE line naming the ranks that did not report, by launch rank and
 *     host, and what it waited in, then calls MPI_Abort (every rank exits non-zero):
 *     "dptrain: error: rank 1 (host n07) did not reach step 120's gradient allreduce within
 *     30 s; stopping every rank";
 *   - when no abort comes within twice the grace period, the collector is silent itself: the
 *     ranks report to the next lowest rank, which collects and names it, and so on.
 * With several stuck ranks the line names them all. A rank that is merely slow but reaches the
 * collective within the timeout of every waiting rank costs nothing. Nothing of this runs while
 * collectives complete in time: the cost per wait is one clock read. */

/* Local (not collective): prints "dptrain: error: rank R: <dpt_last_error()>" to stderr and
 * calls MPI_Abort(g->world, 1), which ends every rank of the job. For a rank that knows the
 * others cannot reach an agreement (it is about to die, or a collective failed half-way). */
_Noreturn void dpt_group_abort(const dpt_group *g, dpt_status st);

/* ---- Collectives (collectives.c) --------------------------------------------------------- */

typedef enum {
    DPT_SCOPE_GROUP, /* g->comm: ranks training one replica */
    DPT_SCOPE_WORLD, /* g->world: every rank of the launch */
} dpt_scope;

/* Collective over g->comm. n: global input. buf: global input on the group leader (group rank 0),
 * global output elsewhere. Used once after initialization so that replicas start identical. */
dpt_status dpt_group_bcast_f32(const dpt_group *g, float *buf, int64_t n);
/* The same for doubles (e.g. statistics only the leader computed). */
dpt_status dpt_group_bcast_f64(const dpt_group *g, double *buf, int64_t n);

/* 64-bit hash of a byte buffer (not cryptographic; mixes 8-byte words, then the tail and the
 * length). Equal bytes give equal hashes on every platform of the same endianness. */
uint64_t dpt_hash64(const void *buf, size_t bytes);

/* Collective over the scope's communicator. scope, what: global input. buf, bytes: local input
 * that should be identical (bytes may differ: that is a mismatch too). DPT_OK on every rank when
 * every rank's dpt_hash64 equals that of the scope's rank 0; otherwise DPT_EINVAL with the same
 * message on every rank, naming (world) ranks: "WHAT differs between ranks: ranks 2, 3 differ
 * from rank 0 (2 of 4 ranks differ)". Uses: initial parameters (group scope), command line and
 * version (world scope). Two small collectives; a mismatch costs one more per rank named. */
dpt_status dpt_group_check_same(const dpt_group *g, dpt_scope scope, const void *buf, size_t bytes,
                                const char *what);

/* Collective over the scope's communicator. n: global input. buf: local input, global output (the
 * sum over the scope, in place). Metrics: loss sums, correct counts, sample counts. The double
 * sum is MPI's (order may depend on the rank count); use the int64 one when exactness matters. */
dpt_status dpt_group_sum_f64(const dpt_group *g, dpt_scope scope, double *buf, int64_t n);
dpt_status dpt_group_sum_i64(const dpt_group *g, dpt_scope scope, int64_t *buf, int64_t n);
/* The same for floats. Exact (order-free) when each element has at most one non-zero
 * contribution, which is how evaluation gathers rows computed on different ranks. */
dpt_status dpt_group_sum_f32(const dpt_group *g, dpt_scope scope, float *buf, int64_t n);

/* The per-step flags of the trainer (a stop was requested, the loss is not finite): the same
 * as dpt_group_sum_f64 over g->comm, named "stop-flag allreduce" in timeout messages. */
dpt_status dpt_group_sum_flags(const dpt_group *g, double *flags, int64_t n);

/* The synced batch-norm reducer: same signature as nn's dpt_bn_reduce_fn, so
 * dpt_model_set_bn_reducer(m, dpt_group_bn_reduce, g) installs it. ctx: a const dpt_group *,
 * borrowed. Collective over g->comm; n: global input (every rank of the group calls it in the
 * same sequence); buf: local input, global output (in-place sum of doubles). */
dpt_status dpt_group_bn_reduce(void *ctx, double *buf, int64_t n);

/* ---- Bucketed gradient allreduce (allreduce.c) ------------------------------------------- */

/* One parameter tensor's gradient inside the flat buffer, in floats. */
typedef struct {
    int64_t offset, count;
} dpt_comm_segment;

#define DPT_BUCKET_BYTES_DEFAULT (25 << 20) /* PyTorch DDP's bucket_cap_mb: the largest default */
#define DPT_BUCKET_BYTES_MIN_DEFAULT (512 << 10)
/* The default cap for a gradient of grad_bytes: a quarter of it, within [0.5 MiB, 25 MiB], so
 * that a gradient smaller than one 25 MiB bucket is still cut and its first allreduce starts
 * during backward (fmnist-cnn over 1 Gbit/s: 1.24x the images/s, docs/scaling.md), while a
 * gradient under 0.5 MiB stays one blocking allreduce. */
int64_t dpt_bucket_bytes_default(int64_t grad_bytes);

typedef struct {
    int64_t bucket_bytes; /* cap per bucket (--bucket-mb * 2^20); 0: dpt_bucket_bytes_default */
    int blocking;         /* 1: no overlap, one allreduce of the whole buffer in wait */
} dpt_bucketer_cfg;

typedef struct {
    double wait_seconds;       /* time inside the last dpt_bucketer_wait */
    double total_wait_seconds; /* summed over every step */
    int64_t steps;             /* completed waits */
    int started_early;         /* buckets of the last step started before dpt_bucketer_wait */
} dpt_bucketer_stats;

/* Buckets: contiguous ranges of whole segments, formed from the END of the buffer, because
 * backward finishes the last layers first. Walking segments from last to first, a segment joins
 * the current bucket unless that would take it over bucket_bytes; so a bucket never exceeds the
 * cap, except a bucket holding a single larger segment. Bucket 0 ends at the end of the buffer.
 *
 * Ordering: MPI needs every rank to start collectives on a communicator in the same order, but
 * ranks may finish segments in different orders. So buckets are started strictly in bucket order
 * 0, 1, 2, ...: a complete bucket whose predecessor is still incomplete waits for it. With the
 * usual backward order (a suffix of the buffer becomes final after each layer) every bucket
 * starts as soon as it is complete.
 *
 * Step protocol (per training step, on every rank of the group):
 *   dpt_bucketer_begin(b, 1.0 / global_batch);
 *   backward: after each layer, dpt_bucketer_mark_from(b, first offset of the layer's segments)
 *             (or dpt_bucketer_mark_segments), and dpt_bucketer_progress(b) now and then;
 *   dpt_bucketer_wait(b);   -> every rank holds sum over the group * scale, bit-identical
 * Once a segment is marked, its gradient memory belongs to MPI until dpt_bucketer_wait returns:
 * do not read or write it. Nothing here allocates after dpt_bucketer_init. */
typedef struct dpt_bucketer {
    const dpt_group *g; /* borrowed */
    float *grad;        /* borrowed flat gradient buffer of n floats */
    int64_t n;
    int n_segs, n_buckets;
    dpt_comm_segment *segs;      /* copy, in layer order */
    int *seg_bucket;             /* bucket of each segment */
    unsigned char *seg_done;     /* marked this step */
    int64_t *b_offset, *b_count; /* floats covered by each bucket */
    int *b_first;                /* first segment of each bucket */
    int *b_missing;              /* segments of each bucket not yet marked this step */
    MPI_Request *req;            /* one per bucket */
    int first_pending;           /* buckets [0, first_pending) are complete */
    int next_start;              /* buckets [0, next_start) were started this step */
    int in_step;                 /* between begin and wait */
    int blocking;
    int64_t bucket_bytes;
    float scale;
    int want_sumsq;     /* this step was begun with dpt_bucketer_begin_sumsq */
    double local_sumsq; /* that step's sum of squares of this rank's own gradient (see there) */
    dpt_status st; /* first error of this step, returned by wait */
    char err[512]; /* its message */
    dpt_bucketer_stats stats;
} dpt_bucketer;

/* Local (no communication). Borrows g and grad (n floats), which must outlive the bucketer;
 * copies segs and cfg. segs: n_segs >= 1 segments in layer order tiling [0, n) without gaps
 * (segs[0].offset == 0, each starts where the previous ends, each count >= 1); every argument
 * must be equal on every rank of the group (global input), so every rank forms the same
 * buckets. DPT_EINVAL for a bad tiling or cap, DPT_ERANGE (overlapped mode) for a segment of more
 * than INT_MAX floats (one MPI message), DPT_ENOMEM. */
dpt_status dpt_bucketer_init(dpt_bucketer *b, const dpt_group *g, float *grad, int64_t n,
                             const dpt_comm_segment *segs, int n_segs, const dpt_bucketer_cfg *cfg);
void dpt_bucketer_free(dpt_bucketer *b);

/* Bucket i (0 <= i < b->n_buckets) covers grad[*offset, *offset + *count). */
void dpt_bucketer_bucket(const dpt_bucketer *b, int i, int64_t *offset, int64_t *count);

/* Local. Starts a step: no segment is final yet. scale: global input, applied in wait (the float
 * nearest to it multiplies every sum), normally 1/global_batch. The previous step must have been
 * waited for (asserted when buckets are still in flight). */
void dpt_bucketer_begin(dpt_bucketer *b, double scale);
/* Local. The same, and this step also measures the rank's own gradient before the sums replace
 * it: each bucket's sum of squares (in double, dpt_norm2's order) is added to b->local_sumsq just
 * before its allreduce starts (blocking mode: the whole buffer's, before the allreduce).
 * Unscaled: the values as backward left them. Valid from dpt_bucketer_wait's return until the
 * next begin. Costs one read of the gradient; for the gradient noise scale (noise_scale.h). */
void dpt_bucketer_begin_sumsq(dpt_bucketer *b, double scale);

/* Collective over g->comm in the bucket-order sense above. Marks segments [first, last) final
 * (marking a segment twice is harmless) and starts MPI_Iallreduce (SUM, in place) on every
 * bucket that became startable. The first MPI error is also kept for dpt_bucketer_wait, so a
 * caller without a status path (a backward hook) may ignore the return value. */
dpt_status dpt_bucketer_mark_segments(dpt_bucketer *b, int first, int last);
/* Same, for every segment that starts at or after `offset` (floats): "everything from here to the
 * end of the buffer is final". offset >= n marks nothing. */
dpt_status dpt_bucketer_mark_from(dpt_bucketer *b, int64_t offset);

/* Local: MPI_Test on the buckets in flight, which lets MPI advance them (Open MPI progresses
 * non-blocking collectives only inside MPI calls). Call between layers. */
dpt_status dpt_bucketer_progress(dpt_bucketer *b);

/* Collective over g->comm. Starts, in order, every bucket not started yet (the whole buffer is
 * final now, marked or not), waits for all, then multiplies every element by the step's scale.
 * Blocking mode: one allreduce of the whole buffer here. grad: local input, global output.
 * Returns the first error of the step. The time spent is in b->stats. */
dpt_status dpt_bucketer_wait(dpt_bucketer *b);

/* ---- Exact sums for --deterministic (exact_sum.c) ---------------------------------------- */

/* Bit-reproducible gradient sums for any rank count that divides the global batch (DESIGN §6).
 *
 * Why chunks: quantizing a rank's already-summed gradient would make the result depend on how
 * samples were split between ranks. Instead the trainer cuts the global batch into K fixed
 * chunks of C consecutive samples (chunk k = samples [k*C, (k+1)*C) of the global batch, the same
 * samples whatever the rank count; ghost batch norm with a ghost size dividing C), computes each
 * of its chunks' gradient with backward (floats that depend only on the chunk), and quantizes
 * every chunk gradient to int64 with one exponent E shared by the whole group:
 *     q = rint(x * 2^E)          (exact in double, round-half-even)
 * Integer addition is exact and associative, so the local sum of chunks and the MPI int64 SUM
 * over ranks give the same integers for any split; the result (sum * 2^-E * extra_scale, rounded
 * to float) is therefore the same bits for 1, 2, 4 or 8 ranks.
 *
 * The exponent: with M the largest |x| over all K chunks of the global batch and e the smallest
 * integer with M < 2^e, E = 62 - ceil(log2 K) - e. Every |q| <= 2^(62 - ceil(log2 K)), so any sum
 * of K of them stays below 2^62 < 2^63: no overflow, by construction. Precision: each value is
 * rounded to a multiple of 2^-E, i.e. an absolute error <= 2^-(E+1) < M * 2^(ceil(log2 K) - 62)
 * per contribution (for K = 1024: relative to the largest gradient element, 2^-52, about double
 * precision); values much smaller than M keep fewer significant bits (a value M * 2^-40 keeps
 * about 12 of its 24 bits for K = 1024). The final conversion rounds once to double and once to
 * float.
 *
 * How the trainer gets M before quantizing (the simplest correct design): it keeps each of its
 * local chunk gradients (local_chunks * n floats), takes dpt_exact_maxabs over them, and calls
 * dpt_exact_agree (one allreduce MAX of one double) once all its chunks are done; then begin,
 * add_chunk for each kept chunk, allreduce, result. Cost against the float path: that memory,
 * one extra 8-byte allreduce per step, an int64 allreduce of twice the bytes, and no overlap of
 * communication with backward. M and E depend only on the global batch, never on the split.
 *
 * Non-finite gradients: dpt_exact_maxabs returns +inf for NaN/Inf, and dpt_exact_agree turns that
 * into DPT_ENONFINITE on every rank of the group. */

/* The scale of one step. Identical on every rank of the group after dpt_exact_agree. */
typedef struct {
    int exponent;         /* E: q = rint(x * 2^E) */
    int64_t total_chunks; /* K: chunks in the global batch (all ranks together) */
    double maxabs;        /* M */
    double qmax;          /* 2^(62 - ceil(log2 K)): bound on |q| */
} dpt_exact_scale;

/* max |x[i]| over n floats (0 for n == 0); +inf when any element is NaN or infinite. */
double dpt_exact_maxabs(const float *x, int64_t n);

/* Local, pure: the scale for largest magnitude `maxabs` (finite, >= 0) and K = total_chunks >= 1
 * contributions, by the rule above (E = 0 when maxabs == 0). A serial program that computes it
 * from the same chunks gets the same scale, hence the same result bits. */
dpt_exact_scale dpt_exact_scale_make(double maxabs, int64_t total_chunks);

/* Collective over g->comm. local_maxabs: local input (dpt_exact_maxabs over this rank's chunks;
 * 0 when it has none). total_chunks: global input. *out: global output. DPT_ENONFINITE on every
 * rank when any rank saw a non-finite value; DPT_EINVAL for total_chunks < 1. */
dpt_status dpt_exact_agree(const dpt_group *g, double local_maxabs, int64_t total_chunks,
                           dpt_exact_scale *out);

/* An int64 accumulator over n values (plus one slot counting chunks). init allocates once. */
typedef struct dpt_exact_acc {
    int64_t n;
    int64_t *acc; /* n + 1: the sums, then the number of chunks added */
    dpt_exact_scale scale;
    double mul;  /* 2^E */
    int reduced; /* allreduce done since begin */
} dpt_exact_acc;

dpt_status dpt_exact_acc_init(dpt_exact_acc *a, int64_t n);
void dpt_exact_acc_free(dpt_exact_acc *a);
/* Local. Zeroes the sums and fixes the scale of this step. */
void dpt_exact_acc_begin(dpt_exact_acc *a, const dpt_exact_scale *scale);
/* Local. acc += rint(chunk * 2^E), exactly; chunk: n floats, one chunk's summed gradient.
 * DPT_ERANGE (nothing added) when some |chunk[i]| exceeds the agreed maximum or is not finite:
 * the chunk was not part of dpt_exact_agree. */
dpt_status dpt_exact_acc_add_chunk(dpt_exact_acc *a, const float *chunk);
/* Collective over g->comm: allreduce (MPI_INT64_T, SUM, in place) of the sums and the chunk
 * counts. a->n and the scale: global input. DPT_EINVAL on every rank when the chunk counts of
 * the group do not add up to total_chunks. */
dpt_status dpt_exact_acc_allreduce(dpt_exact_acc *a, const dpt_group *g);
/* Local. out[i] = (float)((double)sum_i * 2^-E * extra_scale), e.g. extra_scale = 1/global_batch.
 * Before the allreduce it gives this rank's partial sum (a serial program's whole sum). */
void dpt_exact_acc_result(const dpt_exact_acc *a, float *out, double extra_scale);

#ifdef __cplusplus
}
#endif
#endif
