#!/usr/bin/env bash
# The Slurm recipes of scripts/slurm run here as Slurm would run them, minus Slurm: the batch
# script under bash with SLURM_JOB_ID and SLURM_SUBMIT_DIR set, `scontrol` a stand-in that
# records the requeue, and SIGUSR1 sent to the batch shell as `sbatch --signal=B:USR1@T` does.
# The pre-empted job must exit 75 and requeue itself; its rerun (the requeued job) resumes and
# ends with the weights of an uninterrupted run (h5diff -d 0). mpirun takes this host's cores.
. "$(dirname "$0")/common.sh"
mkdir -p "$tmp/bin"
cat >"$tmp/bin/scontrol" <<EOS
#!/bin/sh
echo "\$@" >>"$tmp/scontrol.log"
EOS
chmod +x "$tmp/bin/scontrol"
export PATH="$tmp/bin:$PATH" SLURM_JOB_ID=4242 SLURM_SUBMIT_DIR=$src DPTRAIN=$dptrain
export DPT_CHECKPOINT_EVERY=5steps
ranks=$(nproc)
[ "$ranks" -gt 2 ] && ranks=2
export SLURM_NTASKS=$ranks SLURM_NTASKS_PER_NODE=$ranks

# preempt NAME SCRIPT RUN OPTIONS...: the job signalled after its first checkpoint, then requeued
preempt() {
    local name=$1 script=$2 run=$3
    shift 3
    : >"$tmp/scontrol.log"
    DPT_TEST_SLOW_SAVE_MS=50 bash "$src/scripts/slurm/$script" "$run" "$@" >"$run.job1.log" 2>&1 &
    local job=$! i
    for i in $(seq 600); do
        compgen -G "$run/checkpoints/step-*.h5" >/dev/null ||
            compgen -G "$run/members/*/checkpoints/step-*.h5" >/dev/null && break
        sleep 0.1
    done
    kill -USR1 $job
    wait $job
    local rc=$?
    [ $rc = 75 ] && grep -qx "requeue 4242" "$tmp/scontrol.log"
    pass_if $? "$name: pre-empted job: status $rc (wanted 75), scontrol: $(cat "$tmp/scontrol.log"); $(tail -n 3 "$run.job1.log")"
    bash "$src/scripts/slurm/$script" "$run" "$@" >"$run.job2.log" 2>&1
    rc=$?
    [ $rc = 0 ] && grep -q "resum" "$run.job2.log"
    pass_if $? "$name: requeued job: status $rc; $(tail -n 3 "$run.job2.log")"
}

same() { # NAME FILE_A FILE_B
    h5diff -d 0 "$2" "$3" /params >/dev/null 2>&1 && h5diff -d 0 "$2" "$3" /optimizer >/dev/null 2>&1
    pass_if $? "$1: $3 differs from $2"
}

# 1. train.sbatch: a plain run
plain=(--model lenet5 --data sample --epochs 4 --batch 32 --test-samples 100)
"$mpirun" -np "$ranks" "$dptrain" train "${plain[@]}" --out "$tmp/ref" --no-progress >/dev/null 2>&1
preempt train.sbatch train.sbatch "$tmp/run" "${plain[@]}"
same train.sbatch "$tmp/ref/checkpoints/final.h5" "$tmp/run/checkpoints/final.h5"

# 2. multinode.sbatch, here on one node
preempt multinode.sbatch multinode.sbatch "$tmp/dp" "${plain[@]}"
same multinode.sbatch "$tmp/ref/checkpoints/final.h5" "$tmp/dp/checkpoints/final.h5"

# 3. ensemble.sbatch: members in groups that tile the node; every member resumes
ens=(--model lenet5 --data sample --epochs 3 --batch 32 --test-samples 100 --ensemble bagging
     --members "$ranks")
"$mpirun" -np "$ranks" "$dptrain" train "${ens[@]}" --out "$tmp/ens-ref" --no-progress \
    >/dev/null 2>&1
preempt ensemble.sbatch ensemble.sbatch "$tmp/ens" "${ens[@]}"
for f in "$tmp"/ens-ref/members/*/checkpoints/final.h5; do
    same ensemble.sbatch "$f" "$tmp/ens/${f#"$tmp"/ens-ref/}"
done
h5diff -d 0 "$tmp/ens-ref/results.h5" "$tmp/ens/results.h5" >/dev/null
pass_if $? "ensemble.sbatch: results.h5 differs"

# 4. a layout whose groups would span nodes is refused before anything runs
check "ensemble.sbatch: member across nodes" fail "a member would span nodes" \
    env SLURM_NTASKS=6 SLURM_NTASKS_PER_NODE="3(x2)" bash "$src/scripts/slurm/ensemble.sbatch" \
    "$tmp/span" --members 3 --ensemble bagging
[ ! -e "$tmp/span" ]
pass_if $? "ensemble.sbatch: the refused layout created its folder"

echo "$passed passed, $failures failed"
[ "$failures" = 0 ]
