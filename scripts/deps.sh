# Sourced by run.sh and test.sh: installs the Debian packages the build, the tests and the main
# job need, only when one is missing (so a set-up machine starts at once). iproute2 (ip, tc):
# the emulated cluster of the cluster test label (scripts/cluster.sh).
DPT_DEBIAN_PACKAGES="build-essential cmake pkg-config libopenmpi-dev openmpi-bin libopenblas-dev
  libhdf5-dev hdf5-tools libcmocka-dev zlib1g-dev dataset-fashion-mnist iproute2"

dpt_install_deps() {
    local missing=""
    for p in $DPT_DEBIAN_PACKAGES "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    echo "dptrain: installing Debian packages:$missing"
    if [ "$(id -u)" -ne 0 ]; then
        echo "dptrain: error: missing packages:$missing; run as root or: sudo apt-get install$missing" >&2
        return 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q && apt-get install -y -q --no-install-recommends $missing
}
