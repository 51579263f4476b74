#!/usr/bin/env bash
# xcap in two minutes, without a NIC: two private network namespaces joined
# by a veth pair (10.200.0.1 <-> 10.200.0.2, addresses that exist only
# inside them), xcap at XDP on the receiving side with
#   tcp port 443 and tcp[13]&8!=0      (TCP to/from 443 with PSH set)
# then matching traffic (data to port 443) and non-matching traffic (ping,
# UDP, data to port 8443). Shows xcap's per-packet lines and counters, then
# the same capture written to a pcap file and read back by tcpdump.
# Everything it creates is deleted on exit, even on failure.
#
#   scripts/demo.sh            # runs scripts/setup.sh first, builds, runs
#   XCAP=/path/to/xcap scripts/demo.sh   # use an already built binary
set -euo pipefail

cd "$(dirname "$0")/.."
if [[ $EUID -ne 0 ]]; then
  echo "demo: needs root (network namespaces, XDP)" >&2
  exit 1
fi

if [[ -z "${XCAP:-}" ]]; then
  scripts/setup.sh
  echo "demo: building xcap (release)" >&2
  cargo build --release --quiet -p xcap
  XCAP="${CARGO_TARGET_DIR:-target}/release/xcap"
fi

NS_TX="xcap-demo-tx-$$"
NS_RX="xcap-demo-rx-$$"
TMP="$(mktemp -d)"
cleanup() {
  set +e
  jobs -p | xargs -r kill 2>/dev/null
  wait 2>/dev/null
  ip netns del "$NS_TX" 2>/dev/null
  ip netns del "$NS_RX" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$NS_TX"
ip netns add "$NS_RX"
ip link add veth-tx netns "$NS_TX" type veth peer name veth-rx netns "$NS_RX"
ip -n "$NS_TX" addr add 10.200.0.1/24 dev veth-tx
ip -n "$NS_RX" addr add 10.200.0.2/24 dev veth-rx
for ns in "$NS_TX" "$NS_RX"; do ip -n "$ns" link set lo up; done
ip -n "$NS_TX" link set veth-tx up
ip -n "$NS_RX" link set veth-rx up
tx() { ip netns exec "$NS_TX" "$@"; }
rx() { ip netns exec "$NS_RX" "$@"; }

# Servers on the receiving side: TCP 443 and 8443 (the latter does not
# match the filter), UDP 5000.
rx bash -c 'while :; do nc -l -p 443 >/dev/null; done' &
rx bash -c 'while :; do nc -l -p 8443 >/dev/null; done' &
rx bash -c 'nc -u -l -p 5000 >/dev/null' &
# Resolve ARP before the capture, so it starts with a quiet link.
tx ping -c 1 -W 1 10.200.0.2 >/dev/null

traffic() {
  tx ping -c 3 -i 0.2 -q 10.200.0.2 >/dev/null                    # no match: ICMP
  echo "not matching" | tx nc -u -w0 10.200.0.2 5000 || true        # no match: UDP
  echo "not matching" | tx nc -q0 -w1 10.200.0.2 8443 || true       # no match: other port
  for i in 1 2 3; do
    echo "GET / HTTP/1.0 (request $i)" | tx nc -q0 -w1 10.200.0.2 443 || true   # match: PSH to 443
  done
  sleep 0.5
}

FILTER='tcp port 443 and tcp[13]&8!=0'
echo
echo "== xcap -v -i veth-rx --xdp '$FILTER'   (in namespace $NS_RX)"
ip netns exec "$NS_RX" "$XCAP" -v -i veth-rx --xdp "$FILTER" 2>"$TMP/err1" &
XPID=$!
sleep 1
traffic
kill -INT "$XPID"
wait "$XPID" || true
cat "$TMP/err1"

echo
echo "== xcap -i veth-rx --xdp -w demo.pcap '$FILTER', then tcpdump -r demo.pcap"
ip netns exec "$NS_RX" "$XCAP" -i veth-rx --xdp -w "$TMP/demo.pcap" "$FILTER" 2>"$TMP/err2" &
XPID=$!
sleep 1
traffic
kill -INT "$XPID"
wait "$XPID" || true
cat "$TMP/err2"
echo
tcpdump -n -r "$TMP/demo.pcap" 2>&1
echo
echo "demo: done; namespaces and files are removed"
