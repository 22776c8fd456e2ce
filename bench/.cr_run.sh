#!/bin/sh
# SPDX-License-Identifier: MIT
# make bench [ONLY=NAME]: runs each benchmark against its peer in the same
# run.  Each alternates ours and the peer over several rounds and prints
# "NAME vs PEER: ours=M (min A, max B) peer=M (min A, max B) speedup=R
# (min A, max B) over N rounds" (bench/bench.h), then
# "NAME peak memory: odkd=N KiB host=N KiB" (VmHWM of odkd and of the driver
# host that served the benchmark).
# Benchmarks: call_latency, serial_throughput, bulk_throughput, data_queue,
# call_rate.
# Every benchmark checks the work it times (every call, record, block and
# byte) and fails, printing no number, when the work was not done; this
# script then goes on with the others and exits 1, naming the failures.
# BULK_GIB=N shrinks bulk_throughput's total (default 8 GiB).
set -eu
build=$(cd "${1:-build}" && pwd)
only=${2:-}
state=$(mktemp -d /tmp/odk-bench.XXXXXX)
# The samples (serial-loopback) and the test drivers (echo).
"$build/bin/odkd" --state-dir "$state" --drivers "$build/drivers" --drivers "$build/tests/drivers" \
    --dev-dir "$state" 2>"$state/odkd.log" &
odkd=$!
trap 'kill $odkd 2>/dev/null; wait $odkd 2>/dev/null; rm -rf "$state"' EXIT
i=0; until [ -S "$state/odkd.sock" ]; do
    i=$((i+1)); [ $i -lt 100 ] || { echo "bench/run: odkd did not start:" >&2; cat "$state/odkd.log" >&2; exit 1; }
    sleep 0.05
done
ctl() { "$build/bin/odkctl" --state-dir "$state" "$@"; }
want() { [ -z "$only" ] || [ "$only" = "$1" ]; }
case "$only" in
    ""|call_latency|serial_throughput|bulk_throughput|data_queue|call_rate) ;;
    *) echo "bench/run: no benchmark named $only" >&2; exit 2 ;;
esac

# Pids of the driver hosts serving device node $1 (every host when $1 is
# empty), from `odkctl --json list` (fields "provider" and "pid").
host_pids() {
    ctl --json list | tr ',{}' '\n\n\n' | awk -v dev="${1:-}" '
        /"pid"/      { sub(/.*:[ \t]*/, ""); pid = $0 }
        /"provider"/ { sub(/.*:[ \t]*/, ""); prov = $0 }
        /^[ \t]*$/ && pid != "" && prov != "" {
            if (dev == "" || prov == dev) print pid; pid = ""; prov = "" }'
}

hwm() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# Resets the peak of odkd and of the hosts of device $1 (clear_refs 5), so
# that each benchmark reports its own peak, not an earlier one's.
peak_reset() {
    for p in $odkd $(host_pids "${1:-}"); do
        echo 5 2>/dev/null >"/proc/$p/clear_refs" || :
    done
}

# Prints "NAME peak memory: odkd=N KiB host=N KiB"; with several hosts, the
# largest.
peak() {
    h=0
    for p in $(host_pids "${2:-}"); do
        v=$(hwm "$p"); [ "${v:-0}" -le "$h" ] || h=$v
    done
    echo "$1 peak memory: odkd=$(hwm $odkd) KiB host=$h KiB"
}

# Echo's selectors, from the header the driver itself uses.
selectors="$(cd "$(dirname "$0")/.." && pwd)/tests/drivers/echo/echo_selectors.h"
echo_selector() { sed -n "s/^ *$1 = \([0-9]*\),.*/\1/p" "$selectors"; }
ECHO_COUNT=$(echo_selector ECHO_COUNT)
[ -n "$ECHO_COUNT" ] || { echo "bench/run: no ECHO_COUNT in $selectors" >&2; exit 1; }

# Waits until the echo driver answers on device $1.
echo_ready() {
    i=0; until ctl call "$1" "$ECHO_COUNT" >/dev/null 2>&1; do
        i=$((i+1)); [ $i -lt 100 ] || { echo "bench/run: echo never answered on device $1" >&2; exit 1; }
        sleep 0.05
    done
}

# bench NAME COMMAND...: runs one benchmark; a failure is remembered (and
# its peak memory not printed), and the next benchmark still runs.
failed=""
bench() {
    name=$1; shift
    if "$@"; then
        return 0
    else
        echo "bench/run: $name FAILED (exit $?)" >&2
        failed="$failed $name"
        return 1
    fi
}

if want call_latency; then
    dev=$(ctl sim plug '{"properties": {"model": "echo"}}')
    echo_ready "$dev"
    peak_reset "$dev"
    hosts=$(host_pids "$dev" | paste -sd, -)
    [ -n "$hosts" ] || { echo "bench/run: no driver host serves device $dev" >&2; exit 1; }
    if bench call_latency "$build/bench/call_latency" "$state" "$dev" "$hosts"; then
        peak call_latency "$dev"
    fi
fi

if want serial_throughput; then
    dev=$(ctl sim plug '{"properties": {"model": "serial-loopback", "ring_size": 1048576}}')
    i=0; until ls "$state"/tty.loopback-* >/dev/null 2>&1; do i=$((i+1)); [ $i -lt 100 ] || { echo "bench/run: no serial-loopback tty appeared" >&2; exit 1; }; sleep 0.05; done
    peak_reset "$dev"
    if bench serial_throughput "$build/bench/serial_throughput" "$(ls "$state"/tty.loopback-* | head -1)" 32; then
        peak serial_throughput "$dev"
    fi
fi

if want bulk_throughput; then
    dev=$(ctl sim plug '{"properties": {"model": "echo"}}')
    echo_ready "$dev"
    peak_reset "$dev"
    if bench bulk_throughput "$build/bench/bulk_throughput" "$state" "$dev"; then
        peak bulk_throughput "$dev"
    fi
fi

if want data_queue; then
    dev=$(ctl sim plug '{"properties": {"model": "echo"}}')
    echo_ready "$dev"
    peak_reset "$dev"
    if bench data_queue "$build/bench/data_queue" "$state" "$dev"; then
        peak data_queue "$dev"
    fi
fi

if want call_rate; then
    dev=$(ctl sim plug '{"properties": {"model": "echo"}}')
    echo_ready "$dev"
    peak_reset "$dev"
    hosts=$(host_pids "$dev" | paste -sd, -)
    [ -n "$hosts" ] || { echo "bench/run: no driver host serves device $dev" >&2; exit 1; }
    if bench call_rate "$build/bench/call_rate" "$state" "$dev" "$hosts" $CR_ARGS; then
        peak call_rate "$dev"
    fi
fi

if [ -n "$failed" ]; then
    echo "bench/run: FAILED:$failed" >&2
    exit 1
fi
