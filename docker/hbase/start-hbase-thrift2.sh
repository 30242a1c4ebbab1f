#!/usr/bin/env bash
# Runs the standalone HBase master and the Thrift2 gateway side by side; if either exits, stop the other
# and exit non-zero so the container restarts as a whole.
set -uo pipefail

mkdir -p "${HBASE_LOG_DIR:-/data/logs}"

hbase master start &
master=$!

# The gateway finds the master through the embedded ZooKeeper and retries until it is up.
# Defaults (TThreadPoolServer, binary protocol, buffered transport) match Parley's client; pass
# HBASE_THRIFT2_ARGS (e.g. "-f -c") only if the client changes transport or protocol.
# shellcheck disable=SC2086
hbase thrift2 start -p "${HBASE_THRIFT2_PORT:-9090}" ${HBASE_THRIFT2_ARGS:-} &
thrift=$!

stop() { kill -TERM "$master" "$thrift" 2>/dev/null; }
trap stop TERM INT

wait -n "$master" "$thrift"
status=$?
stop
wait
exit $(( status == 0 ? 1 : status ))
