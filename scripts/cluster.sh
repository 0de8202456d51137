#!/usr/bin/env bash
# An emulated cluster on one machine (docs/cluster.md): N "hosts", each a network namespace with
# its own address, joined by one bridge that lives in a namespace of its own, so the hosts can
# reach each other and nothing else (no uplink, no default route, no NAT, no forwarding).
#
#   scripts/cluster.sh up N [--slots S] [--rate RATE] [--delay DELAY]
#   scripts/cluster.sh mpirun MPIRUN-ARGS...     mpirun on host 0 with the options of the cluster
#   scripts/cluster.sh exec K COMMAND...         COMMAND inside host K (hostname and network)
#   scripts/cluster.sh status
#   scripts/cluster.sh down                      remove everything `up` created (idempotent)
#
# Hosts are the namespaces PREFIX-h0 .. PREFIX-h(N-1) with addresses SUBNET.1 .. SUBNET.N; the
# bridge is br0 in PREFIX-sw. A process on host K runs in PREFIX-hK's network namespace and in a
# UTS namespace whose hostname is PREFIX-hK, so MPI_Get_processor_name and Open MPI's node names
# agree with the hostfile. Filesystem, PIDs and CPUs stay shared with the machine.
#   --slots S     slots per host in the hostfile (default 2)
#   --rate RATE   cap every link, both directions (tc units: 1gbit, 100mbit); tc netem when the
#                 kernel has it, otherwise tbf
#   --delay D     one-way delay added at each host's egress (tc units: 50us, 1ms); needs netem
# Environment: DPT_CLUSTER_DIR (state folder, default /tmp/dpt-cluster), DPT_CLUSTER_PREFIX
# (default dpt), DPT_CLUSTER_SUBNET (first three octets of a /24, default 10.213.0).
# The state folder holds: hostfile, hosts (/etc/hosts lines), agent (Open MPI rsh agent),
# mpirun.args (the mpirun options, one per line) and cluster.env. Names resolve inside the hosts
# through /etc/netns/PREFIX-hK/hosts, which `ip netns exec` mounts over /etc/hosts.
set -u
dir=${DPT_CLUSTER_DIR:-/tmp/dpt-cluster}
prefix=${DPT_CLUSTER_PREFIX:-dpt}
subnet=${DPT_CLUSTER_SUBNET:-10.213.0}
me=cluster.sh
hosts=0 # set by load from cluster.env

die() {
    echo "$me: $*" >&2
    exit 1
}

usage() {
    sed -n '6,10p' "$0" | sed 's/^# *//' >&2
    exit 2
}

need_tools() {
    local t
    for t in ip unshare hostname; do
        command -v "$t" >/dev/null 2>&1 || die "'$t' not found (Debian packages iproute2, util-linux)"
    done
}

# Our namespaces, from the state file or, after a lost state folder, by name.
our_namespaces() {
    ip netns list 2>/dev/null | awk '{print $1}' |
        grep -E "^${prefix}-(h[0-9]+|sw)\$" || true
}

cmd_down() {
    local ns pids left=0
    if [ -f "$dir/cluster.env" ]; then
        # shellcheck disable=SC1091
        prefix=$(. "$dir/cluster.env" && echo "$prefix")
    fi
    for ns in $(our_namespaces); do
        # Whatever still runs inside a host (a rank or orted of a failed launch) would keep the
        # namespace alive after its name is gone: end it first.
        pids=$(ip netns pids "$ns" 2>/dev/null)
        if [ -n "$pids" ]; then
            # shellcheck disable=SC2086
            kill -9 $pids 2>/dev/null
            for _ in $(seq 50); do
                [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && break
                sleep 0.1
            done
        fi
        ip netns del "$ns" 2>/dev/null || { echo "$me: cannot delete namespace $ns" >&2; left=1; }
        case $ns in
            *-h[0-9]*)
                rm -f "/etc/netns/$ns/hosts"
                rmdir "/etc/netns/$ns" 2>/dev/null
                ;;
        esac
    done
    rmdir /etc/netns 2>/dev/null # only when it is empty (it did not exist before us)
    if [ -d "$dir" ]; then
        rm -f "$dir/hostfile" "$dir/hosts" "$dir/agent" "$dir/mpirun.args" "$dir/cluster.env"
        rmdir "$dir" 2>/dev/null || echo "$me: $dir holds other files; left in place" >&2
    fi
    return $left
}

# shape NS DEV DELAY: the rate (and DELAY, when not empty) on the egress of one end of a link.
shape() {
    local ns=$1 dev=$2 delay=$3
    if [ "$netem" = 1 ]; then
        local args=()
        [ -n "$rate" ] && args+=(rate "$rate")
        [ -n "$delay" ] && args+=(delay "$delay")
        [ ${#args[@]} -gt 0 ] || return 0
        ip -n "$ns" link set "$dev" txqueuelen 10000
        tc -n "$ns" qdisc add dev "$dev" root netem "${args[@]}" limit 10000
    elif [ -n "$rate" ]; then
        # tbf: the bucket holds 1 ms at the rate (at least 64 KiB, a GSO packet), and up to
        # 20 ms of packets wait in its queue.
        tc -n "$ns" qdisc add dev "$dev" root tbf rate "$rate" burst "$burst" latency 20ms
    fi
}

# bits per second of a tc rate (1gbit, 100mbit, 10gbit, 500kbit, 1000000bit)
rate_bps() {
    awk -v r="$1" 'BEGIN { n = r + 0; u = tolower(substr(r, length(n "") + 1));
        m["bit"] = 1; m["kbit"] = 1e3; m["mbit"] = 1e6; m["gbit"] = 1e9; m["tbit"] = 1e12;
        m["bps"] = 8; m["kbps"] = 8e3; m["mbps"] = 8e6; m["gbps"] = 8e9;
        if (!(u in m) || n <= 0) exit 1; printf "%.0f\n", n * m[u] }'
}

netem_available() {
    local probe=$prefix-sw
    ip -n "$probe" link add nmprobe type veth peer name nmprobe1 2>/dev/null || return 1
    local ok=1
    tc -n "$probe" qdisc add dev nmprobe root netem delay 1us 2>/dev/null && ok=0
    ip -n "$probe" link del nmprobe 2>/dev/null
    return $ok
}

cmd_up() {
    local n="" slots=2 k
    rate="" delay=""
    while [ $# -gt 0 ]; do
        case $1 in
            --rate) rate=${2:?--rate needs a value}; shift 2 ;;
            --delay) delay=${2:?--delay needs a value}; shift 2 ;;
            --slots) slots=${2:?--slots needs a value}; shift 2 ;;
            -h | --help) usage ;;
            -*) die "up: unknown option $1" ;;
            *) [ -z "$n" ] || die "up: one host count only"; n=$1; shift ;;
        esac
    done
    [[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 250 ] ||
        die "up: the host count must be 1..250, not '${n}'"
    [[ $slots =~ ^[0-9]+$ ]] && [ "$slots" -ge 1 ] || die "up: --slots must be a positive integer"
    [[ $subnet =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "DPT_CLUSTER_SUBNET must be like 10.213.0"
    [[ $dir =~ ^/[^[:space:]]*$ ]] || die "DPT_CLUSTER_DIR must be an absolute path without spaces"
    [[ $prefix =~ ^[a-z][a-z0-9-]{0,39}$ ]] || die "DPT_CLUSTER_PREFIX: lower-case letters, digits, -"
    if [ -n "$rate" ]; then
        local bps
        bps=$(rate_bps "$rate") || die "up: --rate $rate is not a tc rate such as 1gbit or 100mbit"
        burst=$((bps / 8 / 1000))
        [ $burst -ge 65536 ] || burst=65536
    fi
    need_tools
    command -v tc >/dev/null 2>&1 || { [ -z "$rate$delay" ] || die "'tc' not found (iproute2)"; }
    [ -e "$dir/cluster.env" ] && die "a cluster is already up in $dir; run '$0 down' first"
    [ -n "$(our_namespaces)" ] &&
        die "namespaces of an earlier cluster exist ($(our_namespaces | tr '\n' ' ')); run '$0 down'"

    local err
    if ! err=$(ip netns add "$prefix-sw" 2>&1); then
        echo "$me: cannot create network namespaces (needs root or CAP_NET_ADMIN + CAP_SYS_ADMIN):" \
            "ip netns add: ${err//$'\n'/; }" >&2
        exit 1
    fi
    # From here on a failure removes what was made.
    trap 'echo "$me: up failed; removing what was created" >&2; cmd_down >/dev/null 2>&1' ERR
    set -eE -o pipefail
    netem=0
    if [ -n "$rate$delay" ] && netem_available; then netem=1; fi
    if [ -n "$delay" ] && [ $netem = 0 ]; then
        echo "$me: --delay needs tc netem, which this kernel lacks (CONFIG_NET_SCH_NETEM);" \
            "--rate alone works (tbf)" >&2
        false
    fi
    local sw=$prefix-sw
    ip -n "$sw" link set lo up
    ip -n "$sw" link add br0 type bridge
    ip -n "$sw" link set br0 up
    mkdir -p "$dir"
    : >"$dir/hosts"
    : >"$dir/hostfile"
    for ((k = 0; k < n; k++)); do
        local h=$prefix-h$k
        ip netns add "$h"
        ip -n "$h" link set lo up
        ip -n "$sw" link add "p$k" type veth peer name eth0 netns "$h"
        ip -n "$sw" link set "p$k" master br0
        ip -n "$sw" link set "p$k" up
        ip -n "$h" addr add "$subnet.$((k + 1))/24" dev eth0
        ip -n "$h" link set eth0 up
        shape "$h" eth0 "$delay" # host -> switch
        shape "$sw" "p$k" "" # switch -> host: the rate only
        echo "$subnet.$((k + 1)) $h" >>"$dir/hosts"
        echo "$h slots=$slots" >>"$dir/hostfile"
    done
    # Names for the hosts inside the hosts (ip netns exec mounts /etc/netns/NS/hosts over
    # /etc/hosts). Open MPI does not need them (the agent maps names), so a read-only /etc only
    # costs a warning.
    for ((k = 0; k < n; k++)); do
        if ! { mkdir -p "/etc/netns/$prefix-h$k" &&
            { cat /etc/hosts; echo "# emulated cluster ($0)"; cat "$dir/hosts"; } \
                >"/etc/netns/$prefix-h$k/hosts"; } 2>/dev/null; then
            echo "$me: warning: cannot write /etc/netns/$prefix-h$k/hosts: host names do not" \
                "resolve inside the hosts (Open MPI does not need them)" >&2
            break
        fi
    done

    cat >"$dir/agent" <<EOF
#!/bin/sh
# Open MPI rsh agent of the emulated cluster in $dir (written by scripts/cluster.sh up):
#   agent [ssh options] HOST COMMAND...
# Like ssh, joins COMMAND into one shell command and runs it on HOST: in HOST's network namespace,
# with HOST as hostname (a UTS namespace of its own), and with a login-like environment (ssh does
# not carry the caller's variables either: pass them with mpirun -x).
while [ \$# -gt 0 ]; do
    case \$1 in
        -[1246AaCfgKkMNnqsTtVvXxYy]) shift ;;
        -?) shift 2 ;;
        *) break ;;
    esac
done
host=\$1
shift
case \$host in
$(for ((k = 0; k < n; k++)); do echo "    $prefix-h$k | $subnet.$((k + 1))) ns=$prefix-h$k ;;"; done)
    *) echo "cluster agent: \$host is not a host of the emulated cluster in $dir" >&2; exit 255 ;;
esac
exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME="\${HOME:-/root}" \\
    LANG=C.UTF-8 USER="\$(id -un)" LOGNAME="\$(id -un)" SHELL=/bin/sh \\
    ip netns exec "\$ns" unshare --uts sh -c 'hostname "\$0" && exec sh -c "\$1"' "\$ns" "\$*"
EOF
    chmod +x "$dir/agent"

    # One option a line; `mpirun` below drops a line whose option (or MCA name) the caller gives.
    cat >"$dir/mpirun.args" <<EOF
--hostfile $dir/hostfile
--mca plm rsh
--mca plm_rsh_agent $dir/agent
--mca plm_rsh_no_tree_spawn 1
--mca btl tcp,vader,self
--mca btl_tcp_if_include $subnet.0/24
--mca oob_tcp_if_include $subnet.0/24
--mca mpi_yield_when_idle 1
--bind-to none
--allow-run-as-root
EOF
    cat >"$dir/cluster.env" <<EOF
prefix=$prefix
subnet=$subnet
hosts=$n
slots=$slots
rate=$rate
delay=$delay
shaper=$([ -z "$rate$delay" ] && echo none || { [ $netem = 1 ] && echo netem || echo tbf; })
EOF
    trap - ERR
    set +eE +o pipefail
    local links
    links=$(sed -n 's/^shaper=//p' "$dir/cluster.env")${rate:+ rate $rate}${delay:+ delay $delay}
    echo "$me: $n hosts up ($prefix-h0..$prefix-h$((n - 1)), $subnet.1-$subnet.$n, $slots slots" \
        "each, links: $links); state in $dir"
}

load() {
    [ -f "$dir/cluster.env" ] || die "no cluster is up in $dir (run '$0 up N')"
    # shellcheck disable=SC1091
    . "$dir/cluster.env"
}

# Runs "$@" on host K: its network namespace and a UTS namespace with its name, /etc/hosts of the
# cluster. The caller's environment is kept (this is the "login shell" of the user).
on_host() {
    local k=$1
    shift
    [[ $k =~ ^[0-9]+$ ]] && [ "$k" -lt "$hosts" ] || die "no host $k (hosts 0..$((hosts - 1)))"
    exec ip netns exec "$prefix-h$k" unshare --uts sh -c 'hostname "$0" && exec "$@"' \
        "$prefix-h$k" "$@"
}

cmd_mpirun() {
    load
    # The caller's options win: a default is dropped when the same option or MCA name is given.
    local given=" " a prev=""
    for a in "$@"; do
        case $prev in
            --mca | -mca | --gmca | -gmca) given="$given$a " ;;
        esac
        case $a in
            --hostfile | -hostfile | --machinefile | -machinefile | --host | -host | -H)
                given="$given--hostfile " ;;
            --bind-to | -bind-to) given="$given--bind-to " ;;
        esac
        prev=$a
    done
    local args=() line key words
    while read -r line; do
        key=${line%% *}
        [ "$key" = --mca ] && { key=${line#--mca }; key=${key%% *}; }
        case $given in *" $key "*) continue ;; esac
        read -r -a words <<<"$line"
        args+=("${words[@]}")
    done <"$dir/mpirun.args"
    # The ranks on host 0 are mpirun's children and see its environment; the other hosts get only
    # what -x names (as over ssh). Forward the variables dptrain, OpenBLAS and the sanitizers read.
    local v
    for v in $(compgen -e); do
        case $v in
            DPT_CLUSTER_*) ;;
            DPT_* | OPENBLAS_* | OMP_* | GOTO_* | ASAN_OPTIONS | LSAN_OPTIONS | UBSAN_OPTIONS)
                args+=(-x "$v") ;;
        esac
    done
    unset SLURM_JOB_ID SLURM_JOBID # the hostfile is the allocation, not a surrounding job
    on_host 0 mpirun "${args[@]}" "$@"
}

cmd_status() {
    load
    cat "$dir/cluster.env"
    local k
    for ((k = 0; k < hosts; k++)); do
        echo "$prefix-h$k: $(ip -n "$prefix-h$k" -4 -o addr show dev eth0 | awk '{print $4}')," \
            "qdisc $(tc -n "$prefix-h$k" qdisc show dev eth0 | head -n 1 | cut -d' ' -f2)," \
            "$(ip netns pids "$prefix-h$k" | wc -l) processes"
    done
}

[ $# -ge 1 ] || usage
cmd=$1
shift
case $cmd in
    up) cmd_up "$@" ;;
    down) cmd_down ;;
    mpirun) cmd_mpirun "$@" ;;
    exec)
        load
        [ $# -ge 2 ] || die "usage: $0 exec K COMMAND..."
        on_host "$@"
        ;;
    status) cmd_status ;;
    -h | --help | help) usage ;;
    *) die "unknown command '$cmd' (up, down, mpirun, exec, status)" ;;
esac
