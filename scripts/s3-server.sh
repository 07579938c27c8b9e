#!/usr/bin/env bash
# s3-server.sh — a throwaway single-node Ceph RADOS Gateway on 127.0.0.1, the local S3 server
# for s3xfer's tests, demo and benchmarks.
#
#   scripts/s3-server.sh start            install (if needed) + start (or reuse) and print env lines
#   scripts/s3-server.sh env              print the env lines only
#   scripts/s3-server.sh stop             stop radosgw, osd, mon and delete the data dir
#   scripts/s3-server.sh status           exit 0 if the gateway answers, else 1
#   scripts/s3-server.sh gc               reclaim space of deleted objects now
#   scripts/s3-server.sh restart-gateway  SIGKILL radosgw, start it again, wait until it answers
#   scripts/s3-server.sh kill-gateway     SIGKILL radosgw only
#   scripts/s3-server.sh start-gateway    start radosgw (if not running), wait until it answers
#
# `start` prints exactly these lines to stdout (everything else goes to stderr); in a shell use
# `set -a; eval "$(scripts/s3-server.sh start)"; set +a` (set -a exports them):
#   S3_ENDPOINT=http://127.0.0.1:7480
#   AWS_ACCESS_KEY_ID=...
#   AWS_SECRET_ACCESS_KEY=...
#   AWS_REGION=us-east-1
#
# Environment (all optional):
#   S3XFER_CEPH_DIR         data dir holding all cluster state     (default /tmp/s3xfer-ceph)
#   S3XFER_CEPH_PORT        gateway port                            (default 7480)
#   S3XFER_CEPH_MON_PORT    mon msgr2 port; msgr1 uses the next one (default 40789)
#   S3XFER_CEPH_ACCESS_KEY  S3 access key of the test user          (default s3xfer-test-access)
#   S3XFER_CEPH_SECRET_KEY  S3 secret key of the test user
#
# Facts behind the settings: ../shared/notes/ceph-rgw.md (Ceph 16.2 on Debian 12).
set -euo pipefail

DIR=${S3XFER_CEPH_DIR:-/tmp/s3xfer-ceph}
DIR=${DIR%/}
PORT=${S3XFER_CEPH_PORT:-7480}
MON_PORT=${S3XFER_CEPH_MON_PORT:-40789}
MON_PORT1=$((MON_PORT + 1))
ACCESS_KEY=${S3XFER_CEPH_ACCESS_KEY:-s3xfer-test-access}
SECRET_KEY=${S3XFER_CEPH_SECRET_KEY:-s3xfer-test-secret-key-0123456789}
REGION=us-east-1
ENDPOINT="http://127.0.0.1:${PORT}"
S3_UID=s3xfer

CONF="$DIR/ceph.conf"
MARKER="$DIR/.s3xfer-ceph"      # proves the dir is ours before we rm -rf it
LOCK="$DIR.lock"                # outside the dir: the dir itself gets deleted
RGW_NAME=client.rgw.local

# Bounded waits (seconds).
MON_WAIT=60
OSD_WAIT=120
RGW_WAIT=120                    # first start creates the rgw pools

PACKAGES=(ceph-mon ceph-osd radosgw curl)
COMMANDS=(ceph-mon ceph-osd radosgw radosgw-admin curl ceph ceph-authtool monmaptool rados)

log() { echo "s3-server: $*" >&2; }
die() { echo "s3-server: ERROR: $*" >&2; exit 1; }

log_tail() {  # log_tail FILE... — show the end of daemon logs after a failure
    local f
    for f in "$@"; do
        [[ -s $f ]] || continue
        echo "----- last lines of $f -----" >&2
        tail -n 30 "$f" >&2 || true
    done
}

print_env() {
    printf 'S3_ENDPOINT=%s\nAWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\nAWS_REGION=%s\n' \
        "$ENDPOINT" "$ACCESS_KEY" "$SECRET_KEY" "$REGION"
}

# Cluster CLI wrappers: always our conf, never /etc/ceph, never hang forever.
ceph_cli() { timeout 30 ceph -c "$CONF" --connect-timeout 20 "$@"; }
rgw_admin() { timeout 60 radosgw-admin -c "$CONF" "$@"; }

# ---------------------------------------------------------------------------------------------
# Packages

apt_running() {  # (pgrep ignores a pattern longer than 15 chars, so one name at a time)
    local n
    for n in apt apt-get dpkg unattended-upgr; do pgrep -x "$n" >/dev/null && return 0; done
    return 1
}

wait_for_apt() {  # another apt/dpkg (e.g. a provisioning step) may hold the locks
    local i
    for ((i = 0; i < 600; i++)); do
        apt_running || return 0
        ((i % 30 == 0)) && log "waiting for a running apt/dpkg to finish..."
        sleep 1
    done
    die "apt/dpkg is still running after 10 minutes"
}

ensure_packages() {
    local c missing=()
    for c in "${COMMANDS[@]}"; do command -v "$c" >/dev/null || missing+=("$c"); done
    ((${#missing[@]} == 0)) && return 0
    wait_for_apt
    missing=()
    for c in "${COMMANDS[@]}"; do command -v "$c" >/dev/null || missing+=("$c"); done
    ((${#missing[@]} == 0)) && return 0

    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null || die "need root (or sudo) to install ${PACKAGES[*]}"
        sudo=(sudo -n)
    fi
    log "missing ${missing[*]}; installing ${PACKAGES[*]} (~15-25 s)..."
    # CI has no terminal and no stdin; apt starts no ceph daemons.
    local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -y -q
        -o DPkg::Lock::Timeout=300)
    "${apt[@]}" update </dev/null >&2 || die "apt-get update failed"
    "${apt[@]}" install --no-install-recommends "${PACKAGES[@]}" </dev/null >&2 ||
        die "apt-get install ${PACKAGES[*]} failed"
    for c in "${COMMANDS[@]}"; do
        command -v "$c" >/dev/null || die "$c still missing after installing ${PACKAGES[*]}"
    done
}

# ---------------------------------------------------------------------------------------------
# Processes. A pid counts as ours only if its command line names our ceph.conf, so a stale pid
# file whose pid got reused by some other process is never trusted or killed.

is_ours() {  # is_ours PID
    local pid=$1 arg
    [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
    while IFS= read -r -d '' arg; do
        [[ $arg == "$CONF" ]] && return 0
    done <"/proc/$pid/cmdline" 2>/dev/null
    return 1
}

pid_of() {  # pid_of NAME — live pid of daemon NAME (mon.a, osd.0, client.rgw.local) or fail
    local f="$DIR/run/$1.pid" pid
    [[ -r $f ]] || return 1
    pid=$(tr -dc '0-9' <"$f" 2>/dev/null) || return 1
    is_ours "$pid" || return 1
    echo "$pid"
}

all_our_pids() {  # every process still using our ceph.conf (daemons, hung CLI calls)
    local p pid
    for p in /proc/[0-9]*; do
        pid=${p#/proc/}
        [[ $pid == "$$" || $pid == "$BASHPID" ]] && continue
        is_ours "$pid" && echo "$pid"
    done
    return 0
}

# A dying process loses its command line before it closes its files (sockets, the listening
# port), so "exited" means: gone, or a zombie (state Z; nobody may reap it in a container).
exited() {  # exited PID
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    stat=${stat##*) }
    [[ ${stat:0:1} == [ZX] ]]
}

wait_gone() {  # wait_gone SECONDS PID... — true once all the pids have exited
    local secs=$1 pid alive i
    shift
    for ((i = 0; i < secs * 10; i++)); do
        alive=0
        for pid in "$@"; do exited "$pid" || alive=1; done
        ((alive)) || return 0
        sleep 0.1
    done
    return 1
}

stop_daemon() {  # stop_daemon NAME SECONDS — SIGTERM, bounded wait, then SIGKILL
    local name=$1 secs=$2 pid
    pid=$(pid_of "$name") || { rm -f "$DIR/run/$name.pid"; return 0; }
    log "stopping $name (pid $pid)..."
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone "$secs" "$pid"; then
        log "$name did not exit within ${secs}s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        wait_gone 10 "$pid" || die "$name (pid $pid) survives SIGKILL"
    fi
    rm -f "$DIR/run/$name.pid"
}

# Start a daemon fully detached: own session, stdio to a log file, and no inherited descriptors
# (our lock fd, a test runner's pipes), so nobody waits on the daemons after this script exits.
# Ceph daemons fork into the background themselves; the foreground part returns once they run.
spawn() {  # spawn OUTFILE CMD...
    local out=$1
    shift
    (
        for fd in /proc/$BASHPID/fd/*; do
            fd=${fd##*/}
            if ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
        done
        exec setsid -w "$@" </dev/null >>"$out" 2>&1
    )
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

http_code() { curl -s -o /dev/null -m "${2:-5}" -w '%{http_code}' "$1" 2>/dev/null || true; }

gateway_answers() { local c; c=$(http_code "$ENDPOINT/" 5); [[ -n $c && $c != 000 ]]; }

# ---------------------------------------------------------------------------------------------
# Cluster

write_conf() {  # write_conf FSID
    cat >"$CONF" <<EOF
# Throwaway single-node cluster for s3xfer tests — written by scripts/s3-server.sh.
# Everything lives under $DIR; nothing uses /etc/ceph or /var/lib/ceph.
[global]
fsid = $1
mon initial members = a
mon host = [v2:127.0.0.1:$MON_PORT,v1:127.0.0.1:$MON_PORT1]
# Loopback only.
public addr = 127.0.0.1
cluster addr = 127.0.0.1
keyring = $DIR/keyring
run dir = $DIR/run
crash dir = $DIR/crash
mon data = $DIR/mon.\$id
osd data = $DIR/osd.\$id
rgw data = $DIR/rgw
mon cluster log file = $DIR/log/\$cluster.\$channel.log

# One OSD: pools of size 1, placement across OSDs not hosts, few PGs, no autoscaler (no mgr).
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim allowed = false

# Faster start-up (cold start ~16 s -> ~6 s).
paxos propose interval = 0.05
paxos min wait = 0.01

# Warn about the mon's disk only below 2% free (default 30%; dev disks are often fuller).
# The full ratios stay at their defaults (changing them gave HEALTH_ERR).
mon data avail warn = 2
mon data avail crit = 1

# BlueStore on a sparse 20 GiB file in the data dir (memstore would keep all data in RAM).
osd objectstore = bluestore
bluestore block create = true
bluestore block size = 21474836480
osd memory target = 1073741824

[mon]
log file = $DIR/log/\$name.log
pid file = $DIR/run/\$name.pid
admin socket = $DIR/run/\$name.asok

[osd]
log file = $DIR/log/\$name.log
pid file = $DIR/run/\$name.pid
admin socket = $DIR/run/\$name.asok

[$RGW_NAME]
log file = $DIR/log/\$name.log
pid file = $DIR/run/\$name.pid
admin socket = $DIR/run/\$name.asok
# tcp_nodelay: without it small GETs on reused connections stall ~41 ms (Nagle).
rgw frontends = beast endpoint=127.0.0.1:$PORT tcp_nodelay=1
# Shut down in seconds, not the default 120.
rgw exit timeout secs = 5
EOF
}

create_keyring() {
    local k="$DIR/keyring"
    ceph-authtool --create-keyring "$k" --gen-key -n mon. --cap mon 'allow *' >/dev/null
    ceph-authtool "$k" --gen-key -n client.admin \
        --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *'
    ceph-authtool "$k" --gen-key -n osd.0 \
        --cap mon 'allow profile osd' --cap osd 'allow *' --cap mgr 'allow profile osd'
    ceph-authtool "$k" --gen-key -n "$RGW_NAME" --cap mon 'allow rw' --cap osd 'allow rwx'
    chmod 600 "$k"
}

wait_until() {  # wait_until SECONDS WHAT LOGFILE CMD... — poll CMD every 0.2 s
    local secs=$1 what=$2 logf=$3 end
    shift 3
    end=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= end)); then
            log_tail "$logf"
            die "$what not ready after ${secs}s (log: $logf)"
        fi
        sleep 0.2
    done
}

mon_ready() { ceph_cli mon stat; }
osd_up() { local d; d=$(ceph_cli osd dump 2>/dev/null) && grep -q '^osd\.0 up' <<<"$d"; }

start_mon() {
    port_busy "$MON_PORT" && die "mon port $MON_PORT is in use by another process" \
        "(another cluster? set S3XFER_CEPH_MON_PORT)"
    log "starting mon.a on 127.0.0.1:$MON_PORT..."
    spawn "$DIR/log/mon.a.out" ceph-mon -c "$CONF" -i a ||
        { log_tail "$DIR/log/mon.a.out" "$DIR/log/mon.a.log"; die "ceph-mon failed to start"; }
    wait_until "$MON_WAIT" "mon.a" "$DIR/log/mon.a.log" mon_ready
}

start_osd() {
    log "starting osd.0..."
    spawn "$DIR/log/osd.0.out" ceph-osd -c "$CONF" -i 0 ||
        { log_tail "$DIR/log/osd.0.out" "$DIR/log/osd.0.log"; die "ceph-osd failed to start"; }
    wait_until "$OSD_WAIT" "osd.0 (up in the osdmap)" "$DIR/log/osd.0.log" osd_up
}

# A SIGKILLed gateway leaves its watches on the rgw control objects behind; until the OSD
# times them out (30 s) every metadata write (bucket create/delete, user change) waits ~30 s for
# the dead watcher's answer. Blocklisting the dead client drops its watches at once. Only called
# while no gateway runs, so every watcher found belongs to a dead one.
drop_dead_watchers() {
    local objs obj addrs addr
    objs=$(timeout 10 rados -c "$CONF" -p default.rgw.control ls 2>/dev/null) || return 0
    addrs=$(for obj in $objs; do
        timeout 10 rados -c "$CONF" -p default.rgw.control listwatchers "$obj" 2>/dev/null || true
    done | sed -n 's/^watcher=\([^ ]*\) .*/\1/p' | sort -u)
    for addr in $addrs; do
        log "blocklisting the dead gateway's client $addr (drops its watches)"
        ceph_cli osd blocklist add "$addr" 600 >/dev/null 2>&1 || log "could not blocklist $addr"
    done
}

start_gateway() {
    if pid_of "$RGW_NAME" >/dev/null; then
        log "radosgw already running"
    else
        drop_dead_watchers
        if port_busy "$PORT"; then
            die "port $PORT is in use by another process (set S3XFER_CEPH_PORT)"
        fi
        log "starting radosgw on $ENDPOINT..."
        spawn "$DIR/log/$RGW_NAME.out" radosgw -c "$CONF" -n "$RGW_NAME" || {
            log_tail "$DIR/log/$RGW_NAME.out" "$DIR/log/$RGW_NAME.log"
            die "radosgw failed to start"
        }
    fi
    wait_until "$RGW_WAIT" "radosgw ($ENDPOINT)" "$DIR/log/$RGW_NAME.log" gateway_answers
}

kill_gateway() {
    local pid
    if pid=$(pid_of "$RGW_NAME"); then
        log "killing radosgw (pid $pid) with SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        wait_gone 10 "$pid" || die "radosgw (pid $pid) survives SIGKILL"
    else
        log "radosgw is not running"
    fi
}

ensure_user() {  # the S3 user with the fixed test keys
    local info rc=0
    info=$(rgw_admin user info --uid="$S3_UID" 2>/dev/null) || rc=$?
    if ((rc == 124)); then
        return 1
    elif ((rc != 0)); then
        log "creating S3 user $S3_UID"
        rgw_admin user create --uid="$S3_UID" --display-name="s3xfer tests" \
            --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >/dev/null || return 1
    elif ! grep -q "\"access_key\": \"$ACCESS_KEY\"" <<<"$info" ||
        ! grep -q "\"secret_key\": \"$SECRET_KEY\"" <<<"$info"; then
        log "adding the configured key to S3 user $S3_UID"
        rgw_admin key create --uid="$S3_UID" --key-type=s3 \
            --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >/dev/null || return 1
    fi
}

# Remove the data dir, but only if it is ours (guards against a mistyped S3XFER_CEPH_DIR).
remove_dir() {
    [[ -e $DIR ]] || return 0
    if [[ ! -e $MARKER ]] && [[ -n $(ls -A "$DIR" 2>/dev/null) ]]; then
        die "$DIR exists, is not empty and was not made by this script; not deleting it"
    fi
    rm -rf "$DIR"
}

stop_all() {  # stop_all [kill] — "kill": a broken cluster being thrown away, no graceful stop
    # radosgw first (it hangs in shutdown once its OSD is gone), then osd, then mon.
    if [[ -d $DIR && ${1:-} != kill ]]; then
        stop_daemon "$RGW_NAME" 15
        stop_daemon osd.0 30
        stop_daemon mon.a 15
    fi
    # Anything left over without a pid file (half-made start, hung CLI call).
    local pids
    pids=$(all_our_pids | tr '\n' ' ')
    if [[ -n ${pids// /} ]]; then
        log "killing leftover processes: $pids"
        # shellcheck disable=SC2086
        kill -KILL $pids 2>/dev/null || true
        # shellcheck disable=SC2086
        wait_gone 10 $pids || die "leftover processes survive SIGKILL: $pids"
    fi
    remove_dir
}

create_cluster() {
    local fsid osd_uuid
    log "creating a fresh cluster in $DIR"
    mkdir -p "$DIR"/{run,log,crash,rgw,mon.a,osd.0}
    : >"$MARKER"
    fsid=$(cat /proc/sys/kernel/random/uuid)
    osd_uuid=$(cat /proc/sys/kernel/random/uuid)
    write_conf "$fsid"
    create_keyring
    monmaptool --create --fsid "$fsid" \
        --addv a "[v2:127.0.0.1:$MON_PORT,v1:127.0.0.1:$MON_PORT1]" "$DIR/monmap" >/dev/null
    ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/keyring" \
        >>"$DIR/log/mkfs.log" 2>&1 || { log_tail "$DIR/log/mkfs.log"; die "ceph-mon --mkfs failed"; }
    start_mon
    ceph_cli osd new "$osd_uuid" 0 >/dev/null || die "ceph osd new failed"
    log "formatting osd.0 (bluestore, sparse 20 GiB file)..."
    timeout 120 ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$osd_uuid" \
        >>"$DIR/log/mkfs.log" 2>&1 ||
        { log_tail "$DIR/log/mkfs.log" "$DIR/log/osd.0.log"; die "ceph-osd --mkfs failed"; }
    start_osd
    start_gateway
}

# Reuse a cluster from an earlier run if everything in it is alive and answering.
running_healthy() {
    [[ -e $MARKER && -r $CONF ]] || return 1
    grep -qF "beast endpoint=127.0.0.1:$PORT " "$CONF" || return 1
    grep -qF "[v2:127.0.0.1:$MON_PORT," "$CONF" || return 1
    pid_of mon.a >/dev/null && pid_of osd.0 >/dev/null || return 1
    if ! pid_of "$RGW_NAME" >/dev/null; then
        log "mon and osd are running but radosgw is not; starting it"
        osd_up || return 1
        (start_gateway) || return 1     # subshell: a failure here means "start fresh", not exit
    fi
    gateway_answers && has_room && ensure_user
}

# Whether the running cluster can still take writes. Deleted objects are reclaimed only after the
# gateway's GC wait, so a reused cluster fills up run after run; a full OSD makes every upload
# hang without an error (and its GC cannot run then either). Nearly full: reclaim now. Full: the
# caller starts a fresh cluster.
has_room() {
    local health
    health=$(ceph_cli health 2>/dev/null) || return 0   # no answer: the gateway check decides
    # "backfillfull" (past 90%) counts as full: it came with uploads and gc hanging here.
    if grep -qi 'nearfull' <<<"$health" && ! grep -qiE '(^|[^a-z])(backfill)?full osd' <<<"$health"; then
        log "the OSD is nearly full; reclaiming the space of deleted objects"
        timeout 900 radosgw-admin -c "$CONF" gc process --include-all >&2 || true
        return 0
    fi
    if grep -qiE '(^|[^a-z])(backfill)?full osd' <<<"$health"; then
        log "the OSD is full (deleted objects not reclaimed yet); starting a fresh cluster"
        return 1
    fi
}

cmd_start() {
    exec 3>&1 1>&2      # only the env lines reach stdout
    ensure_packages
    local t0=$SECONDS
    if running_healthy; then
        log "reusing the running cluster in $DIR"
    else
        if [[ -e $DIR ]] || [[ -n $(all_our_pids) ]]; then
            log "no healthy cluster in $DIR; killing what is left of it"
            stop_all kill
        fi
        create_cluster
        ensure_user || die "could not create the S3 user (see $DIR/log)"
        log "ready in $((SECONDS - t0))s: $ENDPOINT (data in $DIR)"
    fi
    print_env >&3
}

with_lock() {  # serialise start/stop/... between concurrent callers (e.g. parallel test workers)
    mkdir -p "$(dirname "$LOCK")"
    exec 9>"$LOCK"
    flock -w 600 9 || die "timed out waiting for the lock $LOCK"
}

usage() {  # usage EXIT_CODE
    sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit "$1"
}

main() {
    local cmd=${1:-}
    case $cmd in
    start)
        with_lock
        cmd_start
        ;;
    env)
        print_env
        ;;
    stop)
        with_lock
        stop_all
        log "stopped"
        ;;
    status)
        gateway_answers
        ;;
    gc)
        [[ -r $CONF ]] || die "no cluster in $DIR"
        # can take a while after many deletions; the 60 s limit of rgw_admin is too short
        timeout 900 radosgw-admin -c "$CONF" gc process --include-all >&2
        ;;
    kill-gateway)
        with_lock
        [[ -r $CONF ]] || die "no cluster in $DIR"
        kill_gateway
        ;;
    start-gateway)
        with_lock
        [[ -r $CONF ]] || die "no cluster in $DIR (run start)"
        start_gateway
        ;;
    restart-gateway)
        with_lock
        [[ -r $CONF ]] || die "no cluster in $DIR (run start)"
        kill_gateway
        start_gateway
        ;;
    -h | --help | help)
        usage 0
        ;;
    *)
        [[ -n $cmd ]] && echo "s3-server: unknown command: $cmd" >&2
        usage 2
        ;;
    esac
}

main "$@"
