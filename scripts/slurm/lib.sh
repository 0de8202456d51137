# Sourced by the batch scripts of scripts/slurm (scripts/slurm/README.md): the launch with
# Slurm's pre-emption signal forwarded, the requeue on dptrain's "stopped with a checkpoint"
# status, and the resume-or-start choice. Slurm copies a batch script to its spool folder, so the
# scripts find this file through $SLURM_SUBMIT_DIR: submit from the repository's root.

DPT_EXIT_PREEMPTED=75 # dptrain: stopped by a signal after writing a checkpoint (docs/resume.md)

# dpt_slurm_resumable RUN: true when RUN holds a checkpoint to continue, of a plain run
# (RUN/checkpoints) or of an ensemble or cv run (RUN/members/NN/checkpoints).
dpt_slurm_resumable() {
    compgen -G "$1/checkpoints/*.h5" >/dev/null || compgen -G "$1/members/*/checkpoints/*.h5" >/dev/null
}

# dpt_slurm_launch COMMAND...: runs the launch (mpirun or srun) in the background and forwards
# SIGUSR1 (sbatch --signal=B:USR1@T sends it to this shell) to it; mpirun and srun pass it on to
# every rank, which agree at the next step, write a checkpoint and exit 75. On 75 the job
# requeues itself. Returns the launch's status.
dpt_slurm_launch() {
    "$@" &
    local pid=$! rc
    trap 'kill -USR1 $pid 2>/dev/null' USR1
    wait $pid
    rc=$?
    # `wait` returns early (status > 128) when the trap fires: wait for the launch itself.
    while kill -0 $pid 2>/dev/null; do
        wait $pid
        rc=$?
    done
    trap - USR1
    if [ $rc -eq $DPT_EXIT_PREEMPTED ]; then
        echo "dptrain: pre-empted with a checkpoint; requeueing job ${SLURM_JOB_ID:-?}"
        scontrol requeue "${SLURM_JOB_ID:?}"
    fi
    return $rc
}

# dpt_slurm_mpirun: the launcher command, as an array in DPT_LAUNCH. DPT_LAUNCHER=srun uses
# `srun --mpi=pmix` (Slurm places and binds the tasks); the default is Open MPI's mpirun, which
# reads the allocation from Slurm. DPT_MPI_IFACE (e.g. ib0, eth1) restricts MPI's TCP traffic
# to one network, as scripts/cluster.sh does for the emulated hosts.
dpt_slurm_mpirun() {
    if [ "${DPT_LAUNCHER:-mpirun}" = srun ]; then
        DPT_LAUNCH=(srun --mpi=pmix --cpu-bind=cores --kill-on-bad-exit=0)
        return
    fi
    DPT_LAUNCH=(mpirun --map-by "${DPT_MAP_BY:-slot}" --bind-to "${DPT_BIND_TO:-core}")
    if [ -n "${DPT_MPI_IFACE:-}" ]; then
        DPT_LAUNCH+=(--mca btl_tcp_if_include "$DPT_MPI_IFACE" --mca oob_tcp_if_include
                     "$DPT_MPI_IFACE")
    fi
}
