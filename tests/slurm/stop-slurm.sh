#!/usr/bin/env bash
# Stop the daemons that tests/slurm/start-slurm.sh started, and only those: the PIDs recorded in
# its state directory, each checked to still be the named program. Daemons it did not start
# (an existing munged, a real cluster) are left alone. Then removes the slurm.conf it wrote.
# Idempotent.
#
#   IMAGE3_SLURM_STATE   state directory [/var/lib/image3-slurm]
#   IMAGE3_SLURM_CONF    the slurm.conf start-slurm.sh wrote [/etc/slurm/slurm.conf]
#   --purge              also delete the state directory (job state, spool, logs)
set -euo pipefail

STATE="${IMAGE3_SLURM_STATE:-/var/lib/image3-slurm}"
CONF="${IMAGE3_SLURM_CONF:-/etc/slurm/slurm.conf}"
MARKER="# image3-ci-slurm"
say() { echo "stop-slurm: $*" >&2; }

# Whether PID is a live (not zombie) process running the named program.
is_running() {  # pid name
    [[ $1 =~ ^[0-9]+$ && -r /proc/$1/comm && $(<"/proc/$1/comm") == "$2" ]] || return 1
    [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]
}

stop() {  # name
    local f="$STATE/$1.pid" pid
    [[ -s $f ]] || return 0
    pid=$(<"$f")
    if is_running "$pid" "$1"; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do is_running "$pid" "$1" || break; sleep 0.1; done
        if is_running "$pid" "$1"; then
            say "$1 (pid $pid) ignored SIGTERM for 10 s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        say "stopped $1 (pid $pid)"
    fi
    rm -f "$f"
}

# Reverse order of start: the node daemon, the controller, then munge.
stop slurmd
stop slurmctld
stop munged

# Remove the slurm.conf that start-slurm.sh wrote (never one without its marker). With a
# slurm.conf but no controller, `scontrol` waits ~9 s for it, and the SLURM executor plugin runs
# `scontrol show config` whenever Snakemake starts (to word its --help): every snakemake command
# on this machine would then start 9 s slower. Without a slurm.conf scontrol fails at once.
if [[ -e $CONF ]] && head -1 "$CONF" | grep -qF "$MARKER"; then
    rm -f "$CONF"
    say "removed $CONF"
fi

if [[ ${1:-} == --purge ]]; then
    rm -rf "$STATE"
    say "removed $STATE"
fi
