/* Streamed training samples (data, --stream): the rows of /train/x that a step needs, read from
 * the HDF5 file in ascending order by one reader thread into one of two buffers, so the next
 * step's rows arrive while the current step computes. Rows stored as memory wants them
 * (unfiltered, whole rows per chunk, native type) are read with pread(2) at the chunk addresses
 * HDF5 gives at open; anything else goes through H5Dread and a chunk cache sized for the chunk
 * layout. Knows no MPI and no models: which rows a rank needs is the trainer's decision.
 *
 * HDF5 (Debian's build is not thread-safe) is called by the reader thread only while a request
 * is in flight; the owner must dpt_stream_drain before it calls HDF5 itself (a checkpoint).
 * DPT_STREAM_NO_DIRECT=1 in the environment forces the H5Dread path (tests). */
#ifndef DPT_STREAM_H
#define DPT_STREAM_H

#include <stdint.h>

#include "dpt/data.h"
#include "dpt/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dpt_stream dpt_stream;

/* Options of dpt_stream_open; zero means default. */
typedef struct {
    /* Most dataset indices one request holds (a rank's slice and its mix partners); requests of
     * the statistics pass use at least ~4 MiB of rows. >= 1. */
    int64_t max_rows;
    /* The sampler's shuffle window in chunks (0: the exact global permutation). It sizes the
     * chunk cache: a window's chunks stay cached until every row of them was read. */
    int64_t window_chunks;
} dpt_stream_cfg;

/* Opens /train/x of the HDF5 file `path` for reading the samples of `train` (a split that
 * dpt_data_load marked streamed: its geometry and type must match the file's) and starts the
 * reader thread. Errors name the file. *out is NULL on error. */
dpt_status dpt_stream_open(dpt_stream **out, const char *path, const dpt_dataset *train,
                           const dpt_stream_cfg *cfg);
/* Stops and joins the reader (after its request, if one is in flight), closes the file, frees.
 * NULL is fine. */
void dpt_stream_close(dpt_stream *s);
/* Rows per chunk of /train/x along N; for a contiguous dataset, the rows of about 1 MiB (the unit
 * a chunk-aware shuffle keeps together). >= 1. */
int64_t dpt_stream_chunk_rows(const dpt_stream *s);

/* Starts reading the samples of dataset indices idx[0..n) (any order, repeats allowed,
 * 0 <= n <= max_rows) into the buffer the last dpt_stream_take did not return; returns at once. A
 * request still in flight is completed and dropped first. */
void dpt_stream_post(dpt_stream *s, const int64_t *idx, int64_t n);
/* Waits for the posted request and makes *view a view of `train` (its labels and normalization)
 * whose samples are the rows read: dpt_dataset_gather(view, ...) then takes any posted index.
 * The view stays valid until the next dpt_stream_take. A failed read (a truncated file, a read
 * error, a non-finite float) is returned with the message naming the file. */
dpt_status dpt_stream_take(dpt_stream *s, const dpt_dataset *train, dpt_dataset *view);
/* Waits until the reader is idle (its request stays available to dpt_stream_take), so the caller
 * may call HDF5. */
void dpt_stream_drain(dpt_stream *s);

/* dpt_dataset_channel_stats over the streamed samples idx[0..n) of `train` (idx NULL: all N),
 * read a block at a time with the next block prefetched; the same bits as the in-memory
 * statistics. Two passes over those rows of the file. */
dpt_status dpt_stream_channel_stats(dpt_stream *s, const dpt_dataset *train, const int64_t *idx,
                                    int64_t n, double *mean, double *std);

#ifdef __cplusplus
}
#endif
#endif
