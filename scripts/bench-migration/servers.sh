# Sourced by the migration benchmarks (after lib.sh, with $work set): moto for the ledger,
# s3s-fs (which checks signatures) for S3, rclone's remote `bench:` on it, and `timed`.

# start_servers WORK: starts both servers and exports the endpoints, MIGRATION_TABLE and the
# S3 keys; MOTO_PID and S3S_PID name the servers (their CPU is reported beside the tool's).
start_servers() {
  log "starting moto (the ledger) and s3s-fs (S3)"
  local moto_port s3_port
  moto_port=$(free_port)
  start_moto "$moto_port" "$1/moto.log"
  MOTO_PID=$LAST_PID
  local_aws_env "$moto_port"
  python3 scripts/local_resources.py --endpoint "$AWS_ENDPOINT_URL" --region "$REGION" --prefix bench \
    --param AuthIssuer=bench --param AuthAudience=bench --env-out "$1/functions.env" >/dev/null
  s3_port=$(free_port)
  mkdir -p "$1/s3"
  export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret-key
  start_bg "$1/s3s.log" "$S3S_FS_BIN" --host 127.0.0.1 --port "$s3_port" \
    --access-key "$AWS_ACCESS_KEY_ID" --secret-key "$AWS_SECRET_ACCESS_KEY" "$1/s3"
  S3S_PID=$LAST_PID
  wait_for_http "http://127.0.0.1:$s3_port/" 30 "$LAST_PID"
  export AWS_ENDPOINT_URL_S3=http://127.0.0.1:$s3_port MIGRATION_TABLE=bench-migrationtable
  unset TABLE_NAME

  export RCLONE_CONFIG_BENCH_TYPE=s3 RCLONE_CONFIG_BENCH_PROVIDER=Other
  export RCLONE_CONFIG_BENCH_ENDPOINT=$AWS_ENDPOINT_URL_S3 RCLONE_CONFIG_BENCH_REGION=$REGION
  export RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
}

# cpu PID: user+sys CPU seconds a process has used so far.
cpu() {
  python3 -c 'import os, sys; f = open(f"/proc/{sys.argv[1]}/stat").read().rsplit(")", 1)[1].split(); print((int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK"))' "$1"
}

# timed NAME CMD...: wall seconds, user+sys CPU seconds and peak RSS (MB) of CMD into $work/NAME,
# and the CPU the servers spent meanwhile (s3s-fs for S3, moto for the ledger).
timed() {
  local name=$1; shift
  local s3_before moto_before
  s3_before=$(cpu "$S3S_PID"); moto_before=$(cpu "$MOTO_PID")
  /usr/bin/time -o "$work/$name.time" -f '%e %U %S %M' "$@" >"$work/$name.out" 2>"$work/$name.err" ||
    { cat "$work/$name.err" >&2; die "$name failed"; }
  read -r wall user sys rss <"$work/$name.time"
  printf '%-16s %7.2f s wall  %6.2f CPU-s  %5d MB peak RSS   (s3s-fs %.1f CPU-s, moto %.1f CPU-s)\n' "$name" "$wall" \
    "$(python3 -c "print($user + $sys)")" $((rss / 1024)) \
    "$(python3 -c "print($(cpu "$S3S_PID") - $s3_before)")" "$(python3 -c "print($(cpu "$MOTO_PID") - $moto_before)")"
}
