#!/usr/bin/env bash
# An ensemble on 2 emulated hosts x 2 ranks (docs/cluster.md, docs/ensembles.md): with
# --map-by slot, Open MPI puts ranks 0 1 on host 0 and 2 3 on host 1, dptrain forms its rank
# groups of consecutive ranks, so each bagging member trains inside one host.
#  - dptrain's layout lines ("group 0: ranks 0-1, member 0") against where every rank really ran
#    (its network namespace and hostname) and against Open MPI's --display-map: no group spans
#    two hosts, and the two groups are on different hosts;
#  - with --deterministic each member's final weights equal those of the same launch on one host
#    (mpirun -np 4 here), bit for bit.
# shellcheck source=tests/cluster/common.sh
. "$(dirname "$0")/common.sh"

cluster_up 2 --slots 2
p=$DPT_CLUSTER_PREFIX
bag=(train --data sample --model lenet5 --batch 32 --test-samples 128 --no-progress
    --ensemble bagging --members 2 --deterministic --micro-batch 8 --max-steps 12
    --optim momentum --lr 0.05)
on_one_host bagging-1host-np4 4 "${bag[@]}" --out "$tmp/one"
on_cluster bagging-2x2 -np 4 --map-by slot --display-map -- "${bag[@]}" --out "$tmp/two"

expect_placement bagging-2x2 "0 0 1 1"
# Open MPI's own map: node of each rank
omap=$(awk '/Data for node:/ { node = $4 } /Process rank:/ { for (i = 1; i < NF; i++)
        if ($i == "rank:") print $(i + 1), node }' "$tmp/bagging-2x2.log" | sort -n)
[ "$(echo "$omap" | tr '\n' ' ')" = "0 $p-h0 1 $p-h0 2 $p-h1 3 $p-h1 " ]
pass_if $? "--display-map: ranks on [$(echo "$omap" | tr '\n' ' ')], wanted 0 1 on $p-h0, 2 3 on $p-h1"

grep -q "2 members on 4 ranks: 2 groups of 2 ranks" "$tmp/bagging-2x2.log"
pass_if $? "layout: not 2 groups of 2 ranks"
# group -> hosts of its ranks, from the layout lines and the placement of each rank
groups=$(sed -n 's/^ *group \([0-9]*\): ranks* \([0-9-]*\),.*/\1 \2/p' "$tmp/bagging-2x2.log")
hosts_of_groups=""
while read -r g r; do
    lo=${r%-*} hi=${r#*-}
    h=$(placement bagging-2x2 | awk -v lo="$lo" -v hi="$hi" '$1 >= lo && $1 <= hi { print $2 }' |
        sort -u | tr '\n' ' ')
    echo "  member group $g: ranks $lo-$hi on $h"
    [ "$(echo "$h" | wc -w)" = 1 ]
    pass_if $? "group $g (ranks $lo-$hi) spans hosts: $h"
    hosts_of_groups="$hosts_of_groups$h"
done <<<"$groups"
[ "$(echo "$groups" | wc -l)" = 2 ] && [ "$hosts_of_groups" = "$p-h0 $p-h1 " ]
pass_if $? "groups [$groups] not on host 0 and host 1 in turn (got $hosts_of_groups)"

for m in 00 01; do
    same_params "$tmp/one/members/$m/checkpoints/final.h5" "$tmp/two/members/$m/checkpoints/final.h5"
done
a=$(grep -oE "^ensemble test accuracy [0-9.]+" "$tmp/bagging-1host-np4.log")
b=$(grep -oE "^ensemble test accuracy [0-9.]+" "$tmp/bagging-2x2.log")
[ -n "$a" ] && [ "$a" = "$b" ]
pass_if $? "ensemble accuracy on one host '$a', on two '$b'"
finish
