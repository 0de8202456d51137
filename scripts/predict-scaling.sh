#!/usr/bin/env bash
# Predicted data-parallel efficiency from the ring-allreduce cost model (docs/scaling.md):
#   T_allreduce(p) = buckets * 2(p-1) alpha + 2(p-1)/p * bytes / beta
#   efficiency without overlap  E = t_step / (t_step + T_allreduce)
#   with ideal overlap          E = t_step / (t_step + max(0, T_allreduce - backward share * t_step))
# where t_step is one rank's compute time per step (forward + backward + optimizer).
#   scripts/predict-scaling.sh --step-ms T --params N [--backward F] [--bucket-mb B (dptrain's)] \
#       --link NAME:ALPHA_US:BETA_MBPS [--link ...] [--ranks "8 16 ... 1024"]
# Prints one markdown table: a row per link and rank count, the allreduce time and both
# efficiencies. bench-links.sh calls it with the values it measured and fitted.
set -euo pipefail
usage() {
    echo "usage: $0 --step-ms T --params N [--backward F] [--bucket-mb B]" \
        "--link NAME:ALPHA_US:BETA_MBPS ... [--ranks LIST]" >&2
    exit 2
}
step_ms="" params="" backward=0.6 bucket_mb="" ranks="2 4 8 16 32 64 128 256 512 1024" links=()
while [ $# -gt 0 ]; do
    case $1 in
    --step-ms) step_ms=$2; shift 2 ;;
    --params) params=$2; shift 2 ;;
    --backward) backward=$2; shift 2 ;;
    --bucket-mb) bucket_mb=$2; shift 2 ;;
    --link) links+=("$2"); shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    *) usage ;;
    esac
done
[ -n "$step_ms" ] && [ -n "$params" ] && [ ${#links[@]} -gt 0 ] || usage
# dptrain's default bucket (dpt_bucket_bytes_default): a quarter of the gradient, 0.5 to 25 MiB
[ -n "$bucket_mb" ] || bucket_mb=$(awk -v n="$params" 'BEGIN { q = n * 4 / 4 / 1048576
    print (q < 0.5 ? 0.5 : (q > 25 ? 25 : q)) }')
echo "| link | ranks | allreduce (ms) | efficiency, no overlap | efficiency, overlap |"
echo "|---|---|---|---|---|"
for l in "${links[@]}"; do
    IFS=: read -r name alpha beta <<<"$l"
    for p in $ranks; do
        awk -v p="$p" -v a="$alpha" -v b="$beta" -v n="$params" -v t="$step_ms" -v f="$backward" \
            -v cap="$bucket_mb" -v name="$name" 'BEGIN {
            bytes = 4 * n
            k = int((bytes + cap * 1048576 - 1) / (cap * 1048576)); if (k < 1) k = 1
            ms = (k * 2 * (p - 1) * a + 2 * (p - 1) / p * bytes / b) / 1000 # alpha us, beta B/us
            hidden = ms - f * t; if (hidden < 0) hidden = 0
            printf "| %s | %d | %.2f | %.0f %% | %.0f %% |\n", name, p, ms, 100 * t / (t + ms), 100 * t / (t + hidden)
        }'
    done
done
