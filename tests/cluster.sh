#!/bin/sh
# make cluster: start three atoll nodes on loopback (one bootstraps, two join), print how to use them, stop them all on Ctrl-C.
#
# usage: sh tests/cluster.sh [ATOLL_BIN]
# env:   KEEP=1          keep the data dir after stopping
#        NODES=N         number of nodes (default 3)
#        ATOLL_ARGS=...  extra flags for every node (e.g. "--log-level debug")
set -eu

BIN=${1:-build/debug/atoll}
NODES=${NODES:-3}
ATOLL_ARGS=${ATOLL_ARGS:-}

if ! "$BIN" serve --help 2>&1 | grep -q -- '--peer-listen'; then
    echo "cluster.sh: $BIN has no --peer-listen: cluster support is not built" >&2
    exit 1
fi
case "$BIN" in /*) ;; *) BIN="$(pwd)/$BIN" ;; esac

DIR=$(mktemp -d "${TMPDIR:-/tmp}/atoll-cluster.XXXXXX")
SECRET_FILE="$DIR/cluster-secret"
od -An -tx1 -N24 /dev/urandom | tr -d ' \n' >"$SECRET_FILE"
echo >>"$SECRET_FILE"
chmod 600 "$SECRET_FILE"

PIDS=""
stopping=0
cleanup() {
    [ "$stopping" = 1 ] && return
    stopping=1
    echo
    echo "stopping the cluster..."
    for pid in $PIDS; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in $PIDS; do
        # SIGTERM on the leader transfers leadership first: give it time
        i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 150 ]; do
            sleep 0.1
            i=$((i + 1))
        done
        kill -KILL "$pid" 2>/dev/null || true
    done
    if [ "${KEEP:-0}" = 1 ]; then
        echo "data and logs kept in $DIR"
    else
        rm -rf "$DIR"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_ready() { # api_port log
    i=0
    while [ $i -lt 300 ]; do
        if curl -sf -o /dev/null "http://127.0.0.1:$1/v2/"; then
            return 0
        fi
        sleep 0.1
        i=$((i + 1))
    done
    echo "node on port $1 did not become ready; its log:" >&2
    tail -n 30 "$2" >&2
    exit 1
}

FIRST_PEER=""
API_LIST=""
n=1
while [ $n -le "$NODES" ]; do
    api=$(free_port)
    peer=$(free_port)
    name="node$n"
    join=""
    [ -n "$FIRST_PEER" ] && join="--join $FIRST_PEER"
    # shellcheck disable=SC2086 # word splitting of $join and $ATOLL_ARGS is wanted
    "$BIN" serve --name "$name" --listen "127.0.0.1:$api" \
        --peer-listen "127.0.0.1:$peer" --data-dir "$DIR/$name" \
        --cluster-secret-file "$SECRET_FILE" $join $ATOLL_ARGS \
        >"$DIR/$name.log" 2>&1 &
    PIDS="$PIDS $!"
    wait_ready "$api" "$DIR/$name.log"
    [ -z "$FIRST_PEER" ] && FIRST_PEER="127.0.0.1:$peer"
    API_LIST="$API_LIST $name=127.0.0.1:$api(peer:$peer)"
    eval "API_$n=127.0.0.1:$api"
    eval "PEER_$n=127.0.0.1:$peer"
    n=$((n + 1))
done

# wait until every node is in the members table with a final role
i=0
while [ $i -lt 300 ]; do
    if curl -sf "http://$API_1/_atoll/members" 2>/dev/null |
        python3 -c 'import json, sys
d = json.load(sys.stdin)
sys.exit(0 if d.get("leader") and len(d["nodes"]) == int(sys.argv[1]) and
         all(m["role"] in ("voter", "standby") for m in d["nodes"]) else 1)' "$NODES"; then
        break
    fi
    sleep 0.1
    i=$((i + 1))
done

cat <<EOT

atoll cluster of $NODES nodes is up (data and logs in $DIR):
$(for x in $API_LIST; do echo "  $x"; done)

Try:
  $BIN status --addr $API_1
  $BIN members --addr ${API_2:-$API_1}
  skopeo copy --dest-tls-verify=false oci:./myimage:v1 docker://$API_1/team/app:v1
  skopeo inspect --tls-verify=false docker://${API_2:-$API_1}/team/app:v1
  curl -s http://${API_3:-$API_1}/v2/team/app/tags/list
  $BIN members transfer --peer $PEER_1 --cluster-secret-file $SECRET_FILE
  tail -f $DIR/node1.log

Ctrl-C stops every node$( [ "${KEEP:-0}" = 1 ] || echo " and removes $DIR (KEEP=1 keeps it)").
EOT

# report nodes that die; exit when all are gone
while :; do
    alive=0
    for pid in $PIDS; do
        if kill -0 "$pid" 2>/dev/null; then
            alive=$((alive + 1))
        fi
    done
    [ "$alive" = 0 ] && { echo "every node has exited"; exit 1; }
    sleep 1
done
