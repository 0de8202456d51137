#!/usr/bin/env bash
# Data parallelism across emulated hosts (docs/cluster.md). Oracle: the same job launched the
# usual way, mpirun -np 1 on this machine.
#  - the cluster is isolated: each host has lo and eth0 on the private /24 only, no default
#    route, no forwarding; the switch namespace holds the bridge and the host ports only; the
#    namespace this test runs in gains no interface;
#  - 2 hosts x 1 rank and 2 hosts x 2 ranks with --deterministic give final weights bit-identical
#    to 1 rank (h5diff -d 0 on /params), for lenet5 and for fmnist-cnn with ghost batch norm;
#    every rank is checked to have run in the namespace (and under the hostname) of its host.
#    Before the runs each host gets a second interface with the same address on every host, as
#    docker0 (172.17.0.1/16) on real nodes: Open MPI's TCP transport would try it and hang
#    (measured: mpirun still waiting after 60 s); btl_tcp_if_include of scripts/cluster.sh keeps
#    the traffic on the cluster subnet, so these runs also test that option.
# shellcheck source=tests/cluster/common.sh
. "$(dirname "$0")/common.sh"

links_before=$(ip -o link show | awk -F': ' '{print $2}' | sort | tr '\n' ' ')
cluster_up 2 --slots 2
p=$DPT_CLUSTER_PREFIX

# -- isolation
for k in 0 1; do
    got=$(ip -n "$p-h$k" -o link show | awk -F': ' '{sub(/@.*/, "", $2); print $2}' | sort | tr '\n' ' ')
    [ "$got" = "eth0 lo " ]
    pass_if $? "host $k: interfaces '$got', wanted 'eth0 lo '"
    got=$(ip -n "$p-h$k" -4 route show table all | grep -v '^local\|^broadcast' | tr '\n' ';')
    [ "$got" = "10.213.0.0/24 dev eth0 proto kernel scope link src 10.213.0.$((k + 1)) ;" ]
    pass_if $? "host $k: routes '$got', wanted only the connected /24 (no default route)"
done
for ns in "$p-h0" "$p-h1" "$p-sw"; do
    [ "$(ip netns exec "$ns" cat /proc/sys/net/ipv4/ip_forward)" = 0 ]
    pass_if $? "$ns forwards IPv4"
done
got=$(ip -n "$p-sw" -o link show | awk -F': ' '{sub(/@.*/, "", $2); print $2}' | sort | tr '\n' ' ')
[ "$got" = "br0 lo p0 p1 " ]
pass_if $? "switch: interfaces '$got', wanted 'br0 lo p0 p1 '"
links_after=$(ip -o link show | awk -F': ' '{print $2}' | sort | tr '\n' ' ')
[ "$links_before" = "$links_after" ]
pass_if $? "this namespace's interfaces changed: '$links_before' -> '$links_after'"

# -- a docker0-like decoy interface on every host, then bit-identical weights across hosts
for k in 0 1; do
    ip -n "$p-h$k" link add docker0 type veth peer name docker0-peer &&
        ip -n "$p-h$k" addr add 172.17.0.1/16 dev docker0 &&
        ip -n "$p-h$k" link set docker0 up && ip -n "$p-h$k" link set docker0-peer up
    pass_if $? "host $k: cannot add the decoy interface"
done
lenet=(train --data sample --model lenet5 --epochs 1 --batch 32 --micro-batch 8 --deterministic
    --max-steps 12 --optim momentum --lr 0.05 --test-samples 128 --no-progress)
cnn=(train --data sample --model fmnist-cnn --epochs 1 --batch 32 --micro-batch 8 --deterministic
    --bn ghost:8 --max-steps 6 --test-samples 128 --no-progress)
on_one_host lenet5-1rank 1 "${lenet[@]}" --out "$tmp/lenet5-1rank"
on_cluster lenet5-2x1 -np 2 --map-by ppr:1:node -- "${lenet[@]}" --out "$tmp/lenet5-2x1"
on_cluster lenet5-2x2 -np 4 --map-by ppr:2:node -- "${lenet[@]}" --out "$tmp/lenet5-2x2"
on_one_host cnn-1rank 1 "${cnn[@]}" --out "$tmp/cnn-1rank"
on_cluster cnn-2x2 -np 4 --map-by ppr:2:node -- "${cnn[@]}" --out "$tmp/cnn-2x2"

expect_placement lenet5-2x1 "0 1"
expect_placement lenet5-2x2 "0 0 1 1"
expect_placement cnn-2x2 "0 0 1 1"
grep -q "4 ranks x 1 thread, global batch 32" "$tmp/lenet5-2x2.log"
pass_if $? "lenet5-2x2: dptrain did not report 4 ranks"
for run in lenet5-2x1 lenet5-2x2; do
    same_params "$tmp/lenet5-1rank/checkpoints/final.h5" "$tmp/$run/checkpoints/final.h5"
done
same_params "$tmp/cnn-1rank/checkpoints/final.h5" "$tmp/cnn-2x2/checkpoints/final.h5"

cluster_down
for ns in "$p-h0" "$p-h1" "$p-sw"; do
    ! ip netns list | grep -q "^$ns\b"
    pass_if $? "namespace $ns still exists after down"
done
[ ! -e "$DPT_CLUSTER_DIR" ] && [ ! -e "/etc/netns/$p-h0" ]
pass_if $? "down left $DPT_CLUSTER_DIR or /etc/netns/$p-h0 behind"
"$cluster" down >"$tmp/down2.log" 2>&1
pass_if $? "a second down (nothing left to remove) failed: $(cat "$tmp/down2.log")"
finish
