/* libFuzzer target: the checkpoint readers (io/checkpoint.c) on an in-memory file image:
 * dpt_checkpoint_load (format, version, model spec and input shape, every parameter and buffer,
 * member and normalization), then on success dpt_checkpoint_load_state into the model it built
 * and an Adam optimizer (the /train state, optimizer slots, a two-column history), and
 * dpt_checkpoint_read_config (every dataset read once, /config). The input is an edit script
 * (fuzz_h5.h) applied to one of three checkpoints that dpt_checkpoint_save writes at start-up:
 * weights of one dense layer, weights of a small CNN with batch norm, and the CNN's full state
 * (Adam slots, history, member, normalization, mid-epoch per-rank state, /config). HDF5 parses
 * the edited image through the core driver (dpt__h5_set_file_image); access() on the path sees
 * the same bytes in a memfd. Models are built for batches of 2; allocations above the cap fail
 * (DPT_ENOMEM) instead of running the machine out of memory. Oracle: no crash, no sanitizer
 * report, no leak; what loads comes with a model and at most 16 normalization channels, and a
 * configuration that reads comes with both strings. */
#include "fuzz_h5.h"

#include <math.h>
#include <sys/stat.h>

#include "dpt/checkpoint.h"

FUZZ_ASAN_DEFAULTS(64)

static fuzz_file file;
static char scratch[96];
static fuzz_image bases[3];
/* Names the readers look for (make_seeds refers to them by index), then every other object and
 * attribute of the bases. */
static fuzz_names names = {
    .objs = {{"input_shape", ""},
             {"params/00_conv2d/weight", ""},
             {"buffers/01_batchnorm2d/running_var", ""},
             {"data/norm_mean", ""},
             {"data/norm_std", ""},
             {"optimizer/exp_avg", ""},
             {"metrics/train_loss", ""},
             {"metrics/test_accuracy", ""},
             {"member/train_indices", ""},
             {"train/best_params", ""},
             {"train/best_buffers", ""},
             {"train/rank_buffers", ""},
             {"train/rank_sums", ""},
             {"config", ""},
             {"train", ""},
             {"member", ""}},
    .n_objs = 16,
    .attrs = {{"/", "format"},
              {"/", "version"},
              {"/", "model_spec"},
              {"/", "data_source"},
              {"member", "kind"},
              {"member", "alpha"},
              {"optimizer", "kind"},
              {"optimizer", "step"},
              {"train", "global_step"},
              {"train", "ranks"},
              {"config", "argv"},
              {"config", "settings"}},
    .n_attrs = 12,
};

/* The history columns of the full-state base. */
static const char *const metric_names[] = {"train_loss", "test_accuracy"};

static void read_base(fuzz_image *img, const char *path) {
    FILE *f = fopen(path, "rb");
    struct stat sb;
    if (!f || stat(path, &sb) != 0 || !(img->buf = malloc((size_t)sb.st_size)) ||
        fread(img->buf, 1, (size_t)sb.st_size, f) != (size_t)sb.st_size)
        abort();
    img->size = (size_t)sb.st_size;
    fclose(f);
    remove(path);
}

static void save(const char *dir, const char *name, const dpt_checkpoint *c, fuzz_image *img) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (dpt_checkpoint_save(path, c) != DPT_OK) {
        fprintf(stderr, "fuzz_checkpoint: %s\n", dpt_last_error());
        abort();
    }
    read_base(img, path);
}

/* The bases, written by dpt_checkpoint_save into a temporary directory and read back. */
static void make_bases(void) {
    char dir[] = "/tmp/fuzz_checkpoint.XXXXXX";
    if (!mkdtemp(dir))
        abort();
    dpt_model *m = NULL;
    dpt_model_cfg mc = {.max_batch = 2, .num_classes = 3, .seed = 7};
    if (dpt_model_create(&m, "flatten dense(classes)", dpt_shape_make(3, (int64_t[]){1, 2, 2}),
                         &mc) != DPT_OK)
        abort();
    save(dir, "dense.h5", &(dpt_checkpoint){.model = m, .epoch = 1, .step = 1, .seed = 7},
         &bases[0]);
    dpt_model_destroy(m);

    if (dpt_model_create(&m, "conv2d(2,3,bias=0) bn relu maxpool(2) flatten dense(classes)",
                         dpt_shape_make(3, (int64_t[]){1, 6, 6}), &mc) != DPT_OK)
        abort();
    dpt_checkpoint c = {.model = m,
                        .epoch = 1,
                        .step = 4,
                        .seed = 7,
                        .config = "--lr 0.001",
                        .data_source = "sample"};
    save(dir, "weights.h5", &c, &bases[1]);

    int64_t n;
    dpt_model_params(m, &n);
    dpt_optim_cfg oc = {.kind = DPT_OPTIM_ADAM};
    dpt_optim *o = NULL;
    if (dpt_optim_create(&o, &oc, n, NULL, 0) != DPT_OK)
        abort();
    double mean[1] = {0.28}, std[1] = {0.35}, loss[2] = {1.1, 0.7}, acc[2] = {0.5, 0.75};
    const double *values[2] = {loss, acc};
    int64_t train_idx[4] = {0, 2, 2, 3}, heldout[1] = {1};
    float rank_buffers[2 * 4] = {0, 0, 0, 0, 1, 1, 1, 1};
    double rank_sums[2 * 3] = {1.5, 3, 4, 1.25, 2, 4};
    dpt_checkpoint_state st = {.global_step = 5,
                               .epoch = 1,
                               .epoch_step = 1,
                               .images = 10,
                               .last_lr = 1e-3,
                               .es_best_loss = NAN,
                               .ranks = 2,
                               .rank_buffers = rank_buffers,
                               .rank_sums = rank_sums};
    c.optim = o;
    c.channels = 1, c.norm_mean = mean, c.norm_std = std;
    c.n_metrics = 2, c.metric_rows = 2, c.metric_names = metric_names, c.metric_values = values;
    c.member_kind = "bagging", c.member_id = 1, c.member_alpha = NAN;
    c.member_train_idx = train_idx, c.member_n_train = 4;
    c.member_heldout_idx = heldout, c.member_n_heldout = 1;
    c.state = &st;
    c.config_argv = "--model\x1f"
                    "lenet5\x1f--epochs\x1f"
                    "2";
    c.config_settings = "--epochs 2\n--seed 7\n";
    save(dir, "full_state.h5", &c, &bases[2]);
    dpt_optim_destroy(o);
    dpt_model_destroy(m);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fuzz_hdf5_free_lists();
    make_bases();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* the edits' own failures are expected */
    fuzz_file_init(&file, "fuzz-checkpoint");
    snprintf(scratch, sizeof scratch, "%s/(edit)", file.path); /* exists nowhere: below a file */
    fuzz_h5_names_of(&names, bases, 3, scratch);
    return 0;
}

static void load_state(dpt_model *m) {
    int64_t n = 0;
    dpt_model_params(m, &n);
    dpt_optim_cfg oc = {.kind = DPT_OPTIM_ADAM};
    dpt_optim *o = NULL;
    if (dpt_optim_create(&o, &oc, n, NULL, 0) != DPT_OK)
        return;
    dpt_checkpoint_state st;
    if (dpt_checkpoint_load_state(file.path, m, o, 2, metric_names, n, &st) == DPT_OK)
        dpt_checkpoint_state_free(&st);
    dpt_optim_destroy(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_in in = {data, size};
    const fuzz_image *base = &bases[fin_u8(&in) % 3];
    fuzz_image img;
    fuzz_h5_edit(&img, base, &in, &names, scratch);
    fuzz_file_set(&file, img.buf, img.size);
    dpt__h5_set_file_image(file.path, img.buf, img.size);
    dpt_model *m = NULL;
    dpt_checkpoint_info info;
    if (dpt_checkpoint_load(file.path, 2, &m, &info) == DPT_OK) {
        if (!m || info.channels < 0 || info.channels > 16)
            abort();
        load_state(m);
        dpt_model_destroy(m);
    }
    int64_t step = 0;
    char *argv = NULL, *settings = NULL;
    if (dpt_checkpoint_read_config(file.path, &step, &argv, &settings) == DPT_OK) {
        if (!argv || !settings)
            abort();
        free(argv), free(settings);
    }
    dpt__h5_set_file_image(NULL, NULL, 0);
    free(img.buf);
    return 0;
}
