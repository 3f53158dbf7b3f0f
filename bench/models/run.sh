#!/usr/bin/env bash
# Benchmark: `spinbook models put/get` against `aws s3 cp` on the same
# versitygw, one file, interleaved A/B rounds; prints a Markdown table of
# median throughput for docs/benchmarks.md.
#   bench/models/run.sh [SIZE_MB] [ROUNDS]     (default 1024 MiB, 5 rounds)
# Needs what scripts/setup --for-tests installs (versitygw, awscli).
set -euo pipefail
cd "$(dirname "$0")/../.."
size_mb=${1:-1024}
rounds=${2:-5}
export PATH="/usr/local/go/bin:$PATH"

vgw=$(command -v versitygw || echo /var/cache/spinbook/versitygw-v1.8.0/versitygw)
[ -x "$vgw" ] || { echo "no versitygw: run scripts/setup --for-tests" >&2; exit 1; }
aws=/usr/bin/aws
[ -x "$aws" ] || aws=$(command -v aws)

work=$(mktemp -d /var/tmp/spinbook-bench-XXXXXX)
trap 'kill "$vgw_pid" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/gw" "$work/out"

CGO_ENABLED=0 go build -o "$work/spinbook" ./cmd/spinbook

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY="bench-$RANDOM$RANDOM" AWS_DEFAULT_REGION=us-east-1
ROOT_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID ROOT_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY \
  "$vgw" --port "127.0.0.1:$port" --quiet posix "$work/gw" >"$work/vgw.log" 2>&1 &
vgw_pid=$!
endpoint="http://127.0.0.1:$port"
for _ in $(seq 100); do "$aws" --endpoint-url "$endpoint" s3 ls >/dev/null 2>&1 && break; sleep 0.1; done
"$aws" --endpoint-url "$endpoint" s3 mb s3://bench >/dev/null

cat >"$work/spinbook.yaml" <<YAML
models:
  url: s3://bench/spinbook/
  endpoint: $endpoint
  path_style: true
  access_key_id: \${env:AWS_ACCESS_KEY_ID}
  secret_access_key: \${env:AWS_SECRET_ACCESS_KEY}
YAML
export SPINBOOK_CONFIG="$work/spinbook.yaml"

head -c "$((size_mb << 20))" /dev/urandom >"$work/model.bin"
bytes=$(stat -c %s "$work/model.bin")

# secs CMD...: wall-clock seconds of one run.
secs() {
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }'
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
declare -a sp_put aw_put sp_get aw_get
for r in $(seq "$rounds"); do
  # Alternate which tool goes first, so neither always meets a warm cache.
  if ((r % 2)); then order="sp aw"; else order="aw sp"; fi
  for tool in $order; do
    if [ "$tool" = sp ]; then
      sp_put+=("$(secs "$work/spinbook" models put "$work/model.bin" model.bin --force)")
    else
      aw_put+=("$(secs "$aws" --endpoint-url "$endpoint" s3 cp "$work/model.bin" s3://bench/aws/model.bin)")
    fi
  done
  for tool in $order; do
    rm -f "$work/out/model.bin"
    if [ "$tool" = sp ]; then
      sp_get+=("$(secs "$work/spinbook" models get model.bin "$work/out/model.bin")")
    else
      aw_get+=("$(secs "$aws" --endpoint-url "$endpoint" s3 cp s3://bench/aws/model.bin "$work/out/model.bin")")
    fi
  done
  echo "round $r: put spinbook ${sp_put[-1]}s aws ${aw_put[-1]}s; get spinbook ${sp_get[-1]}s aws ${aw_get[-1]}s" >&2
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
mbps() { awk -v n="$bytes" -v s="$1" 'BEGIN { printf "%.0f", n / s / 1e6 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

sp_p=$(median "${sp_put[@]}"); aw_p=$(median "${aw_put[@]}")
sp_g=$(median "${sp_get[@]}"); aw_g=$(median "${aw_get[@]}")
echo
vgw_version=$(basename "$(dirname "$vgw")"); vgw_version=${vgw_version#versitygw-}
echo "$(date -u +%Y-%m-%d), $(nproc) cores, load average $load_before before and $(cut -d' ' -f1-3 /proc/loadavg) after, versitygw $vgw_version (posix on $(findmnt -n -o FSTYPE --target "$work" 2>/dev/null || stat -f -c %T "$work")), $("$aws" --version 2>&1 | cut -d' ' -f1), a ${size_mb} MiB file, median of $rounds interleaved rounds:"
echo
echo "| operation | spinbook models | aws s3 cp | ratio (spinbook / aws) |"
echo "|---|---|---|---|"
printf '| put | %s MB/s (%.2f s) | %s MB/s (%.2f s) | %s |\n' "$(mbps "$sp_p")" "$sp_p" "$(mbps "$aw_p")" "$aw_p" "$(ratio "$aw_p" "$sp_p")"
printf '| get | %s MB/s (%.2f s) | %s MB/s (%.2f s) | %s |\n' "$(mbps "$sp_g")" "$sp_g" "$(mbps "$aw_g")" "$aw_g" "$(ratio "$aw_g" "$sp_g")"
