#!/usr/bin/env bash
# Training over shaped links (docs/cluster.md). Oracle: the 1-rank run, as in
# test_cluster_deterministic.sh.
#  - links at 1 Gbit/s with 50 us one-way delay (tc netem); on a kernel without netem (no
#    CONFIG_NET_SCH_NETEM) `up --delay` refuses with a clear line and the links are shaped at the
#    same rate by tbf, without delay: the test says which ran. A 2 hosts x 2 ranks deterministic
#    run completes with weights bit-identical to 1 rank, and its traffic went through the shaper
#    of each host (tc statistics);
#  - the shaper really limits: at 50 Mbit/s the same run cannot take less than the bytes host 0
#    sent divided by the rate, and tbf reports packets it held back (with netem: the run takes
#    longer than over unshaped links).
# shellcheck source=tests/cluster/common.sh
. "$(dirname "$0")/common.sh"

lenet=(train --data sample --model lenet5 --epochs 1 --batch 32 --micro-batch 8 --deterministic
    --max-steps 12 --optim momentum --lr 0.05 --test-samples 128 --no-progress)
on_one_host lenet5-1rank 1 "${lenet[@]}" --out "$tmp/ref"

if "$cluster" up 2 --slots 2 --rate 1gbit --delay 50us >"$tmp/up.log" 2>&1; then
    cluster_is_up=1
    cat "$tmp/up.log"
    shaper=netem
else
    cluster_is_up=1
    "$cluster" down >/dev/null 2>&1
    if grep -q "lacks" "$tmp/up.log"; then
        echo "  this kernel has no tc netem: $(cat "$tmp/up.log")"
        echo "  links shaped to 1 Gbit/s by tbf, no delay"
        shaper=tbf
        cluster_up 2 --slots 2 --rate 1gbit
    else
        cluster_up 2 --slots 2 --rate 1gbit --delay 50us # fails with the reason
    fi
fi
p=$DPT_CLUSTER_PREFIX
for k in 0 1; do
    q=$(tc -n "$p-h$k" qdisc show dev eth0)
    case $q in *"$shaper"*) true ;; *) false ;; esac
    pass_if $? "host $k: eth0 qdisc '$q', wanted $shaper"
done

sent() { # bytes the root qdisc of eth0 on host K has sent
    tc -s -n "$p-h$1" qdisc show dev eth0 | awk '/Sent/ { print $2; exit }'
}
b0=$(sent 0) b1=$(sent 1)
on_cluster lenet5-2x2-1gbit -np 4 --map-by ppr:2:node -- "${lenet[@]}" --out "$tmp/shaped"
expect_placement lenet5-2x2-1gbit "0 0 1 1"
same_params "$tmp/ref/checkpoints/final.h5" "$tmp/shaped/checkpoints/final.h5"
# 12 steps, each allreducing 61706 int64: a ring over 2 hosts moves about 0.5 MB each way a step
s0=$(($(sent 0) - b0)) s1=$(($(sent 1) - b1))
echo "  through the shapers: host 0 sent $s0 bytes, host 1 $s1 bytes"
[ "$s0" -gt 3000000 ] && [ "$s1" -gt 3000000 ]
pass_if $? "less traffic than 12 steps of gradients went through the shapers ($s0, $s1 bytes)"
cluster_down

# -- the shaper limits the rate: unshaped, then 50 Mbit/s
cluster_up 2 --slots 2
on_cluster lenet5-2x2-unshaped -np 4 --map-by ppr:2:node -- "${lenet[@]}" --out "$tmp/free"
cluster_down
cluster_up 2 --slots 2 --rate 50mbit
b0=$(sent 0)
on_cluster lenet5-2x2-50mbit -np 4 --map-by ppr:2:node -- "${lenet[@]}" --out "$tmp/slow"
s0=$(($(sent 0) - b0))
same_params "$tmp/ref/checkpoints/final.h5" "$tmp/slow/checkpoints/final.h5"
floor_ms=$((s0 * 8 / 50000)) # bytes * 8 / 50e6 bit/s, in ms
took=$(cat "$tmp/lenet5-2x2-50mbit.ms") free=$(cat "$tmp/lenet5-2x2-unshaped.ms")
echo "  at 50 Mbit/s: host 0 sent $s0 bytes, at least $floor_ms ms on the wire; the run took" \
    "$took ms (unshaped: $free ms)"
[ "$took" -ge "$floor_ms" ]
pass_if $? "the 50 Mbit/s run took $took ms, less than its bytes need at that rate ($floor_ms ms)"
# The floor alone also holds for a slow unshaped run (under ASan). tbf counts the packets it held
# back (overlimits), whatever the compute speed; netem has no such counter: there the shaped run
# must be the slower one.
if [ "$(sed -n 's/^shaper=//p' "$DPT_CLUSTER_DIR/cluster.env")" = tbf ]; then
    held=$(tc -s -n "$p-h0" qdisc show dev eth0 | sed -n 's/.*overlimits \([0-9]*\).*/\1/p')
    echo "  tbf held back $held packets on host 0"
    [ "${held:-0}" -gt 0 ]
    pass_if $? "tbf at 50 Mbit/s held back no packet: the link was not shaped"
else
    [ "$took" -gt "$free" ]
    pass_if $? "the 50 Mbit/s run ($took ms) was not slower than the unshaped one ($free ms)"
fi
finish
