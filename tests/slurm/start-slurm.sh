#!/usr/bin/env bash
# Bring up a single-node SLURM cluster on this machine (Debian 12, as root, no systemd needed),
# for tests/test_slurm.py and for trying profiles/slurm-ci by hand:
#
#   sudo tests/slurm/start-slurm.sh     # installs munge + slurm from Debian if missing
#   snakemake --profile profiles/slurm-ci ...
#   sudo tests/slurm/stop-slurm.sh      # stops exactly the daemons this script started
#
# What it does: installs the Debian packages munge, slurmctld, slurmd, slurm-client when a
# binary is missing; renders tests/slurm/slurm.conf.template into /etc/slurm/slurm.conf (node =
# this host with its CPUs and memory, partition `debug`); makes sure a munge key exists; starts
# munged, slurmctld -D and slurmd -D under nohup, records their PIDs in the state directory; and
# waits until `sinfo` shows the node idle. Idempotent: daemons recorded as running are left alone,
# so a second call only waits for the node.
#
# Environment:
#   IMAGE3_SLURM_STATE   state directory (PIDs, daemon logs, spool)  [/var/lib/image3-slurm]
#   IMAGE3_SLURM_CONF    where to write slurm.conf                   [/etc/slurm/slurm.conf]
#   IMAGE3_SLURM_WAIT    seconds to wait for the node to become idle [60]
#
# Exit codes: 0 cluster up; 1 failure; 3 refused (not root, not Debian, or a slurm.conf that this
# script did not write is already in place: a real cluster's configuration is never touched).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STATE="${IMAGE3_SLURM_STATE:-/var/lib/image3-slurm}"
CONF="${IMAGE3_SLURM_CONF:-/etc/slurm/slurm.conf}"
WAIT="${IMAGE3_SLURM_WAIT:-60}"
MARKER="# image3-ci-slurm"

say() { echo "start-slurm: $*" >&2; }
refuse() { say "$*"; exit 3; }
die() { say "ERROR: $*"; exit 1; }

[[ $(id -u) -eq 0 ]] || refuse "must run as root (it installs packages and starts daemons)"
if [[ -e $CONF ]] && ! head -1 "$CONF" | grep -qF "$MARKER"; then
    refuse "$CONF exists and was not written by this script; not touching a real cluster's config"
fi

# Whether PID is a live (not zombie) process running the named program.
is_running() {  # pid name
    [[ $1 =~ ^[0-9]+$ && -r /proc/$1/comm && $(<"/proc/$1/comm") == "$2" ]] || return 1
    [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]
}

# A PID from the state directory, if that process is still alive and is the named program.
alive_pid() {  # name
    local f="$STATE/$1.pid" pid
    [[ -s $f ]] || return 1
    pid=$(<"$f")
    is_running "$pid" "$1" || return 1
    echo "$pid"
}

# --- 1. packages ------------------------------------------------------------------------------
need=()
command -v munged >/dev/null || need+=(munge)
command -v slurmctld >/dev/null || need+=(slurmctld)
command -v slurmd >/dev/null || need+=(slurmd)
{ command -v sbatch >/dev/null && command -v squeue >/dev/null && command -v sinfo >/dev/null; } \
    || need+=(slurm-client)
if ((${#need[@]})); then
    command -v apt-get >/dev/null || refuse "missing ${need[*]} and no apt-get (Debian only)"
    say "installing ${need[*]}"
    # No init system may start the daemons behind our back during the install (Debian's
    # policy-rc.d convention); a policy file already in place is left as it is.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt_install() { apt-get install -y -q --no-install-recommends "${need[@]}" >"$1" 2>&1; }
    mkdir -p "$STATE"
    if ! apt_install "$STATE/apt.log"; then
        say "install failed without an index update; running apt-get update"
        if ! apt-get update -q >"$STATE/apt-update.log" 2>&1; then
            tail -20 "$STATE/apt-update.log" >&2
            die "apt-get update failed"
        fi
        if ! apt_install "$STATE/apt.log"; then
            tail -20 "$STATE/apt.log" >&2
            die "apt-get install failed"
        fi
    fi
    if [[ -n $(trap -p EXIT) ]]; then rm -f /usr/sbin/policy-rc.d; trap - EXIT; fi
fi

# --- 2. configuration -------------------------------------------------------------------------
HOST=$(hostname -s)
ADDR=$(getent ahostsv4 "$HOST" | awk 'NR==1 {print $1}')
[[ -n $ADDR ]] || ADDR=127.0.0.1
CPUS=$(nproc --all)
# RealMemory must not exceed what slurmd detects, or the node is drained: take MemTotal less 5%.
MEM_MB=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.95}' /proc/meminfo)
mkdir -p "$STATE/slurmctld" "$STATE/slurmd" "$(dirname "$CONF")"
sed -e "s|@HOST@|$HOST|g" -e "s|@ADDR@|$ADDR|g" -e "s|@CPUS@|$CPUS|g" -e "s|@MEM_MB@|$MEM_MB|g" \
    -e "s|@STATE@|$STATE|g" "$HERE/slurm.conf.template" >"$CONF.new"
if [[ -e $CONF ]] && cmp -s "$CONF" "$CONF.new"; then
    rm "$CONF.new"
else
    mv "$CONF.new" "$CONF"
    if alive_pid slurmctld >/dev/null || alive_pid slurmd >/dev/null; then
        say "configuration changed; reconfiguring the running daemons"
        scontrol reconfigure || true
    fi
fi
export SLURM_CONF="$CONF"

# --- 3. munge ---------------------------------------------------------------------------------
if pid=$(alive_pid munged); then
    say "munged already running (pid $pid)"
else
    if [[ ! -s /etc/munge/munge.key ]]; then
        say "creating /etc/munge/munge.key"
        mkdir -p /etc/munge
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown munge:munge /etc/munge /etc/munge/munge.key
    chmod 700 /etc/munge
    chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown munge:munge /run/munge /var/lib/munge /var/log/munge
    chmod 755 /run/munge
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        say "a munged not started by this script is already running; using it"
    else
        # munged forks into the background itself; its pid file is the daemon's PID.
        rm -f /run/munge/munged.pid
        runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
        for _ in $(seq 50); do [[ -s /run/munge/munged.pid ]] && break; sleep 0.1; done
        cp /run/munge/munged.pid "$STATE/munged.pid"
        alive_pid munged >/dev/null || die "munged did not start (see /var/log/munge/munged.log)"
        say "started munged (pid $(<"$STATE/munged.pid"))"
    fi
fi
munge -n | unmunge >/dev/null || die "munge does not work"

# --- 4. slurmctld and slurmd ------------------------------------------------------------------
start_daemon() {  # name
    local name=$1 pid
    if pid=$(alive_pid "$name"); then
        say "$name already running (pid $pid)"
        return
    fi
    for other in $(pgrep -x "$name" || true); do
        is_running "$other" "$name" && die "a $name (pid $other) not started by this script is running"
    done
    # -D: stay in the foreground, so $! is the daemon itself; nohup + redirects detach it from
    # the caller's terminal and pipes.
    nohup "/usr/sbin/$name" -D -f "$CONF" </dev/null >>"$STATE/$name.out" 2>&1 &
    echo $! >"$STATE/$name.pid"
    sleep 0.2
    if ! alive_pid "$name" >/dev/null; then
        tail -20 "$STATE/$name.out" "$STATE/$name.log" >&2 || true
        die "$name exited at start"
    fi
    say "started $name (pid $(<"$STATE/$name.pid"))"
}
start_daemon slurmctld
start_daemon slurmd

# --- 5. wait for the node ---------------------------------------------------------------------
deadline=$((SECONDS + WAIT))
state=""
while ((SECONDS < deadline)); do
    state=$(sinfo -h -N -n "$HOST" -o %T 2>/dev/null | head -1 || true)
    case $state in
        idle | mixed | allocated)
            say "node $HOST is $state ($CPUS CPUs, $MEM_MB MB); partition debug"
            exit 0 ;;
        down* | drain*)  # e.g. left down by an earlier run: bring it back
            scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 0.5
done
tail -20 "$STATE/slurmctld.log" "$STATE/slurmd.log" >&2 || true
die "node $HOST not idle after ${WAIT}s (sinfo state: '${state:-none}')"
