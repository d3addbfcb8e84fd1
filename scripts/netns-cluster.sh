#!/usr/bin/env bash
# An emulated cluster on one machine: N "hosts" qh0…qh{N-1}, each a network namespace
# with one veth (qnet0, 10.77.0.(10+i)/24) into a bridge that lives in its own switch
# namespace (qsw), so nothing changes on the real host's interfaces. Every link is
# rate-limited in both directions with tc tbf (host egress on qnet0, switch egress on
# the bridge port vqhI). netem is unavailable here: there is no added latency.
#
#   scripts/netns-cluster.sh up [--hosts N] [--rate 100mbit|1gbit|10gbit]
#   scripts/netns-cluster.sh down                 # removes everything `up` created; idempotent
#   scripts/netns-cluster.sh status               # namespaces, addresses, qdiscs and counters
#   scripts/netns-cluster.sh run [--host qhI] -- COMMAND…   # in qh0 unless --host
#
# `run` and scripts/netns-rsh give each host its own UTS namespace with hostname qhI,
# so OpenMPI sees N distinct nodes. Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN).
# Docs: docs/emulated-cluster.md.
set -euo pipefail

SWITCH=qsw                       # the switch namespace holding bridge br0
PREFIX=qh                        # host namespaces: qh0, qh1, …
SUBNET=10.77.0                   # host i has 10.77.0.(10+i)/24
IFACE=qnet0                      # the host's interface (its end of the veth)
STATE=/run/qtrain-netns-cluster  # what `up` created, read by `down` and `status`
MAX_HOSTS=64

die() { echo "netns-cluster: $*" >&2; exit 1; }

# tbf parameters of a preset: rate, bucket (≈ 4 ms of traffic, ≥ one 64 KB GSO packet),
# queue latency bound. Unknown names are an error (the presets are what the docs and
# tests compare).
preset() {
  case "$1" in
    100mbit) echo "rate 100mbit burst 64kb latency 50ms" ;;
    1gbit)   echo "rate 1gbit burst 512kb latency 50ms" ;;
    10gbit)  echo "rate 10gbit burst 5mb latency 50ms" ;;
    *) die "unknown --rate '$1' (presets: 100mbit, 1gbit, 10gbit)" ;;
  esac
}

need_tools() {
  [ "$(id -u)" = 0 ] || die "must run as root (network namespaces need CAP_NET_ADMIN)"
  if ! command -v ip >/dev/null 2>&1 || ! command -v tc >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || die "ip/tc missing: install iproute2"
    echo "netns-cluster: installing iproute2"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends iproute2 >/dev/null 2>&1 \
      || { apt-get update -qq && apt-get install -y -qq --no-install-recommends iproute2 >/dev/null; }
  fi
  command -v unshare >/dev/null 2>&1 || die "unshare (util-linux) missing"
}

ns_exists() { [ -e "/run/netns/$1" ]; }   # where `ip netns add` mounts a namespace

# Namespaces this script may own: the switch and qh<number>, as recorded in $STATE or,
# when the state was lost, found by name.
owned_namespaces() {
  if [ -f "$STATE/namespaces" ]; then
    cat "$STATE/namespaces"
  else
    ip netns list | awk '{print $1}' | grep -E "^(${PREFIX}[0-9]+|${SWITCH})$" || true
  fi
}

cmd_down() {
  need_tools
  local ns pid
  for ns in $(owned_namespaces); do
    if ns_exists "$ns"; then
      # processes left in the namespace (a hung orted) would keep it alive: end them by pid
      for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -TERM "$pid" 2>/dev/null || true; done
      sleep 0.2
      for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
      ip netns del "$ns"   # deleting a namespace deletes its veth ends (and so the pairs)
    fi
    case "$ns" in "$PREFIX"[0-9]*) rm -rf "/etc/netns/$ns" ;; esac
  done
  rmdir /etc/netns 2>/dev/null || true
  rm -rf "$STATE"
  echo "netns-cluster: down"
}

cmd_up() {
  need_tools
  local hosts=4 rate=1gbit
  while [ $# -gt 0 ]; do
    case "$1" in
      --hosts) hosts=${2:?--hosts needs a number}; shift 2 ;;
      --rate) rate=${2:?--rate needs a preset}; shift 2 ;;
      *) die "unknown argument '$1' (up [--hosts N] [--rate 100mbit|1gbit|10gbit])" ;;
    esac
  done
  [[ "$hosts" =~ ^[0-9]+$ ]] && [ "$hosts" -ge 1 ] && [ "$hosts" -le $MAX_HOSTS ] \
    || die "--hosts must be 1…$MAX_HOSTS, got '$hosts'"
  local tbf; tbf=$(preset "$rate")

  # start from nothing: a previous cluster (any size) is removed first
  if [ -d "$STATE" ] || [ -n "$(owned_namespaces)" ]; then cmd_down >/dev/null; fi
  mkdir -p "$STATE"
  trap 'echo "netns-cluster: up failed, removing what was created" >&2; cmd_down >/dev/null 2>&1' ERR

  ip netns add "$SWITCH"
  echo "$SWITCH" >>"$STATE/namespaces"
  ip -n "$SWITCH" link set lo up
  ip -n "$SWITCH" link add br0 type bridge stp_state 0
  ip -n "$SWITCH" link set br0 up

  local hostsfile i ns
  hostsfile=$(printf '127.0.0.1 localhost\n'; for ((i = 0; i < hosts; i++)); do printf '%s.%d %s%d\n' "$SUBNET" $((10 + i)) "$PREFIX" "$i"; done)
  for ((i = 0; i < hosts; i++)); do
    ns=$PREFIX$i
    ip netns add "$ns"
    echo "$ns" >>"$STATE/namespaces"
    ip link add "$IFACE" netns "$ns" type veth peer name "v$ns" netns "$SWITCH"
    ip -n "$SWITCH" link set "v$ns" master br0
    ip -n "$SWITCH" link set "v$ns" up
    # IPv4 only: no link-local IPv6 addresses for OpenMPI to pick up
    ip netns exec "$ns" sh -c 'for f in all default; do p=/proc/sys/net/ipv6/conf/$f/disable_ipv6; [ ! -e $p ] || echo 1 >$p; done'
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$SUBNET.$((10 + i))/24" dev "$IFACE"
    ip -n "$ns" link set "$IFACE" up
    # both directions: host → switch on qnet0, switch → host on the bridge port
    # shellcheck disable=SC2086
    tc -n "$ns" qdisc add dev "$IFACE" root tbf $tbf
    # shellcheck disable=SC2086
    tc -n "$SWITCH" qdisc add dev "v$ns" root tbf $tbf
    mkdir -p "/etc/netns/$ns"
    printf '%s\n' "$hostsfile" >"/etc/netns/$ns/hosts"   # `ip netns exec` bind-mounts it on /etc/hosts
  done
  echo "$hosts" >"$STATE/hosts"
  echo "$rate" >"$STATE/rate"
  trap - ERR

  # the bridge forwards at once (no STP); check that qh0 reaches the last host
  local last=$((10 + hosts - 1))
  if [ "$hosts" -gt 1 ] && ! wait_reachable "$last"; then
    cmd_down >/dev/null
    die "qh0 cannot reach $SUBNET.$last: bridge or veth setup failed"
  fi
  echo "netns-cluster: up: $hosts hosts ${PREFIX}0…$PREFIX$((hosts - 1)) on $SUBNET.0/24 ($IFACE), $rate each way per link"
}

# TCP connect from qh0 to a closed port of host .N: "refused" means the packet arrived.
wait_reachable() {
  local t out
  for t in 1 2 3 4 5 6 7 8 9 10; do
    out=$(ip netns exec "${PREFIX}0" timeout 2 bash -c "exec 3<>/dev/tcp/$SUBNET.$1/9" 2>&1 || true)
    case "$out" in *refused*) return 0 ;; esac
    sleep 0.3
  done
  return 1
}

cmd_status() {
  if [ ! -f "$STATE/hosts" ]; then
    echo "netns-cluster: down (no cluster)"
    return 3
  fi
  echo "netns-cluster: $(cat "$STATE/hosts") hosts, rate $(cat "$STATE/rate") per link and direction"
  local ns
  for ns in $(grep -E "^${PREFIX}[0-9]+$" "$STATE/namespaces"); do
    if ! ns_exists "$ns"; then echo "$ns: MISSING"; continue; fi
    echo "$ns: $(ip -n "$ns" -4 -o addr show dev "$IFACE" | awk '{print $4}') on $IFACE"
    tc -n "$ns" -s qdisc show dev "$IFACE" | sed 's/^/  host   /'
    tc -n "$SWITCH" -s qdisc show dev "v$ns" | sed 's/^/  switch /'
  done
}

# Run a command in a host: its network namespace (with /etc/netns/qhI/hosts as
# /etc/hosts) and a fresh UTS namespace whose hostname is the host's name.
cmd_run() {
  local host=${PREFIX}0
  while [ $# -gt 0 ]; do
    case "$1" in
      --host) host=${2:?--host needs a name}; shift 2 ;;
      --) shift; break ;;
      *) break ;;
    esac
  done
  [ $# -gt 0 ] || die "run needs a command: run [--host qhI] -- COMMAND…"
  ns_exists "$host" || die "no host '$host': run 'scripts/netns-cluster.sh up' first"
  exec ip netns exec "$host" unshare --uts -- sh -c 'hostname "$1" && shift && exec "$@"' sh "$host" "$@"
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down ;;
  status) shift; cmd_status ;;
  run) shift; cmd_run "$@" ;;
  *) die "usage: $0 up [--hosts N] [--rate 100mbit|1gbit|10gbit] | down | status | run [--host qhI] -- COMMAND…" ;;
esac
