# Shared by scripts/dev and scripts/test: tool installation, free ports, starting and
# stopping local servers. Source it; do not run it.
#
# Tools are cached outside the clone (DECISIONS 5), so a fresh clone on a used machine
# starts in seconds: ${XDG_CACHE_HOME:-$HOME/.cache}/matbakh-files/{venv,garage}.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${MATBAKH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/matbakh-files}
VENV=$CACHE/venv
GARAGE_VERSION=2.5.0
GARAGE_BIN=$CACHE/garage-$GARAGE_VERSION/bin/garage
REGION=${AWS_REGION:-eu-central-1}

# Local servers must never be reached through a proxy, and the SDK must not probe EC2 metadata.
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
export AWS_EC2_METADATA_DISABLED=true

STARTED_PIDS=()

log() { printf '\033[1m==> [%s] %s\033[0m\n' "$(date +%T)" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# The Python tools (moto, cargo-lambda, cfn-lint) in a cached venv, reinstalled when
# scripts/tools.txt changes.
ensure_python_tools() {
  local stamp=$VENV/.tools-$(sha256sum "$ROOT/scripts/tools.txt" | cut -c1-16)
  if [[ ! -f $stamp ]]; then
    log "installing moto, cargo-lambda, cfn-lint into $VENV"
    command -v python3 >/dev/null || die "python3 is required"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
    "$VENV/bin/pip" install --quiet -r "$ROOT/scripts/tools.txt"
    touch "$stamp"
  fi
  export PATH=$VENV/bin:$PATH
}

# cmake and nasm build libjpeg-turbo (turbojpeg) and rav1e's assembly; Debian packages.
ensure_native_tools() {
  local missing=()
  command -v cmake >/dev/null || missing+=(cmake)
  command -v nasm >/dev/null || missing+=(nasm)
  # dav1d (the AVIF decoder) builds with meson + ninja.
  command -v meson >/dev/null || missing+=(meson)
  command -v ninja >/dev/null || missing+=(ninja-build)
  apt_install "for the image codecs" "${missing[@]}"
  # The HTTP legacy source's TLS test makes its certificates with openssl (migrate/tests/tls.rs).
  command -v openssl >/dev/null || apt_install "for the TLS test's certificates" openssl
  # Info-ZIP's unzip reads the GDPR export's archives in its tests (app/src/archive.rs).
  command -v unzip >/dev/null || apt_install "for the export archive's reader test" unzip
}

# wrk (Debian's), the load benchmark's HTTP load tool (scripts/bench load).
ensure_wrk() {
  command -v wrk >/dev/null || apt_install "for the load benchmark" wrk
}

# The arm64 release build (what `sam build` deploys): dav1d's build calls the GNU cross compiler
# by name (zig, which cargo-lambda uses for Rust and the cc crate, is not asked).
ensure_arm64_cross_tools() {
  local missing=()
  command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(gcc-aarch64-linux-gnu)
  [[ -e /usr/aarch64-linux-gnu/include/stdio.h ]] || missing+=(libc6-dev-arm64-cross)
  apt_install "for the arm64 build of dav1d" "${missing[@]}"
}

# check_bootstrap FILE: FILE is an arm64 ELF executable that provided.al2023 can load: it needs
# no glibc newer than Amazon Linux 2023's 2.34 and no packed relocations (GLIBC_ABI_DT_RELR,
# glibc 2.36), as a linker other than cargo lambda's zig (built against glibc 2.17) could make.
AL2023_GLIBC=2.34
check_bootstrap() {
  local file=$1 needs newest
  python3 -c 'import sys; h = open(sys.argv[1], "rb").read(20); sys.exit(h[:4] != b"\x7fELF" or h[18] != 183)' "$file" ||
    { echo "$file: not an arm64 ELF file" >&2; return 1; }
  needs=$(readelf -VW "$file" | grep -o 'GLIBC_[A-Z0-9_.]*' | sort -Vu)
  if grep -q GLIBC_ABI_DT_RELR <<<"$needs"; then
    echo "$file: packed relocations (GLIBC_ABI_DT_RELR), which glibc $AL2023_GLIBC cannot load" >&2
    return 1
  fi
  newest=$(grep -o '^GLIBC_[0-9.]*$' <<<"$needs" | sed 's/GLIBC_//' | sort -V | tail -n 1)
  if [[ -n $newest && $(printf '%s\n%s\n' "$newest" "$AL2023_GLIBC" | sort -V | tail -n 1) != "$AL2023_GLIBC" ]]; then
    echo "$file: needs glibc $newest, Amazon Linux 2023 has $AL2023_GLIBC" >&2
    return 1
  fi
}

# apt_install WHY PACKAGE...: installs the Debian packages given, if any.
apt_install() {
  local why=$1
  shift
  (($# == 0)) && return
  log "installing $* (Debian packages, $why)"
  local sudo=()
  ((EUID == 0)) || sudo=(sudo)
  "${sudo[@]}" apt-get install -y --no-install-recommends "$@" >/dev/null ||
    { "${sudo[@]}" apt-get update >/dev/null && "${sudo[@]}" apt-get install -y --no-install-recommends "$@" >/dev/null; } ||
    die "could not install $*; install them and run again"
}

# clamd (Debian's clamav-daemon) for the thumbnailer's virus-scan test.
ensure_clamd() {
  [[ -x /usr/sbin/clamd ]] || apt_install "for the virus-scan test" clamav-daemon
}

# PostgreSQL (DECISIONS 34): the legacy database of the migration's metadata tests and the demo.
ensure_postgres() {
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || apt_install "for the legacy database" postgresql
  PG_BIN=$(dirname "$(compgen -G "/usr/lib/postgresql/*/bin/initdb" | sort -V | tail -1)")
}

# start_postgres DIR: a PostgreSQL of its own in DIR (initdb, trust on 127.0.0.1 only, no
# fsync) on a free port, as the postgres user when run as root (initdb refuses root); stopped
# with the other servers. Exports LEGACY_DATABASE_URL (database `legacy`, user `legacy`).
start_postgres() {
  local dir=$1 port as=() deadline
  ensure_postgres
  port=$(free_port)
  mkdir -p "$dir"
  if ((EUID == 0)); then
    chown postgres: "$dir"
    chmod o+x "$(dirname "$dir")"
    as=(runuser -u postgres --)
  fi
  "${as[@]}" "$PG_BIN/initdb" -D "$dir/data" -A trust -U legacy -E UTF8 --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; die "initdb failed"; }
  start_bg "$dir/postgres.log" "${as[@]}" "$PG_BIN/postgres" -D "$dir/data" -p "$port" -k "$dir" \
    -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off
  deadline=$((SECONDS + 30))
  until "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port"; do
    kill -0 "$LAST_PID" 2>/dev/null || { cat "$dir/postgres.log" >&2; die "postgres exited"; }
    ((SECONDS < deadline)) || die "postgres did not start; see $dir/postgres.log"
    sleep 0.2
  done
  "$PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U legacy legacy || die "could not create the legacy database"
  export LEGACY_DATABASE_URL="postgres://legacy@127.0.0.1:$port/legacy"
}

# start_clamd DIR: clamd on a free port with only the test signatures (scripts/clamd; no
# download); exports CLAMD_TEST_ADDR once it answers PING.
start_clamd() {
  local dir=$1 port deadline
  port=$(free_port)
  mkdir -p "$dir/db"
  cp "$ROOT/scripts/clamd/test-signatures.hdb" "$dir/db/"
  cat >"$dir/clamd.conf" <<CONF
Foreground yes
DatabaseDirectory $dir/db
TCPAddr 127.0.0.1
TCPSocket $port
StreamMaxLength 100M
PidFile $dir/clamd.pid
CONF
  start_bg "$dir/clamd.log" /usr/sbin/clamd -c "$dir/clamd.conf"
  deadline=$((SECONDS + 60))
  until clamd_ping "$port"; do
    kill -0 "$LAST_PID" 2>/dev/null || die "clamd exited; see $dir/clamd.log"
    ((SECONDS < deadline)) || die "clamd did not answer within 60 s; see $dir/clamd.log"
    sleep 0.2
  done
  export CLAMD_TEST_ADDR=127.0.0.1:$port
}

clamd_ping() (
  local reply=
  exec 3<>"/dev/tcp/127.0.0.1/$1" 2>/dev/null || exit 1
  printf 'zPING\0' >&3
  IFS= read -r -d '' -t 2 reply <&3
  [[ $reply == PONG ]]
)

# Garage, the S3 server that enforces signatures and POST policies (moto does not), built once
# per machine with only what the tests use: its S3 API on the SQLite engine (no LMDB, K2V or
# metrics): 6.2 minutes on 2 cores from an empty target folder, 7.0 with every default feature
# (2026-12-06). A machine that built it with them keeps that binary: the same S3 API.
ensure_garage() {
  if [[ ! -x $GARAGE_BIN ]]; then
    log "building garage $GARAGE_VERSION (once per machine, about 6 minutes on 2 cores)"
    cargo install garage --version "$GARAGE_VERSION" --locked --no-default-features --features bundled-libs,sqlite \
      --root "$CACHE/garage-$GARAGE_VERSION"
  fi
}

# s3s-fs, a fast S3 server over a directory that checks signatures: the migration benchmark's
# target (LOCAL-STACK.md; 0.17 needs a newer rustc). About 4 minutes to build, once.
S3S_FS_VERSION=0.14.1
S3S_FS_BIN=$CACHE/s3s-fs-$S3S_FS_VERSION/bin/s3s-fs
ensure_s3s_fs() {
  if [[ ! -x $S3S_FS_BIN ]]; then
    log "building s3s-fs $S3S_FS_VERSION (once per machine, about 4 minutes)"
    cargo install "s3s-fs@$S3S_FS_VERSION" --locked --features binary --root "$CACHE/s3s-fs-$S3S_FS_VERSION"
  fi
}

# cargo-audit, for the dependency audit (audit_dependencies), once per machine: unoptimised and
# without binary scanning (`--debug --no-default-features`), 2 minutes on 2 cores instead of
# 10 (session 28's cold run, beside the arm64 build); it reads the offline advisory database in
# 0.35 s instead of 0.06 and reports the same.
CARGO_AUDIT_VERSION=0.22.2
CARGO_AUDIT_ROOT=$CACHE/cargo-audit-$CARGO_AUDIT_VERSION-debug
CARGO_AUDIT_BIN=$CARGO_AUDIT_ROOT/bin/cargo-audit
ensure_cargo_audit() {
  if [[ ! -x $CARGO_AUDIT_BIN ]]; then
    log "building cargo-audit $CARGO_AUDIT_VERSION (once per machine, about 2 minutes on 2 cores)"
    cargo install cargo-audit --version "$CARGO_AUDIT_VERSION" --locked --debug --no-default-features \
      --root "$CARGO_AUDIT_ROOT"
  fi
}

# The RustSec advisory database: the offline snapshot beside the clone (this machine cannot
# fetch the live one; its SNAPSHOT.md says as of when), or MATBAKH_ADVISORY_DB.
ADVISORY_DB=${MATBAKH_ADVISORY_DB:-$ROOT/../shared/advisory-db}

# audit_dependencies: every Cargo.lock of the repo against the advisory database, offline (no
# fetch, no crates.io look-up for yanked versions). A vulnerability fails; warnings
# (unmaintained, unsound) are listed. Appends what failed to the caller's `failed` array.
audit_dependencies() {
  ensure_cargo_audit
  if [[ ! -d $ADVISORY_DB/crates ]]; then
    failed+=("cargo audit: no advisory database at $ADVISORY_DB")
    return
  fi
  local lock snapshot
  snapshot=$(tr '\n' ' ' <"$ADVISORY_DB/SNAPSHOT.md" 2>/dev/null | grep -o 'as of [0-9-]*' | head -1) || true
  for lock in Cargo.lock fuzz/Cargo.lock; do
    log "cargo audit $lock (RustSec advisories ${snapshot:-of unknown date}; newer ones are not in it)"
    "$CARGO_AUDIT_BIN" audit --db "$ADVISORY_DB" --no-fetch --stale --no-yanked --file "$ROOT/$lock" ||
      failed+=("cargo audit $lock")
  done
}

# Real Uppy (npm @uppy/core + @uppy/aws-s3, pinned in tests/uppy/package-lock.json) for the
# client test; npm keeps its own download cache outside the clone.
ensure_uppy_client() {
  command -v node >/dev/null || die "node (20.10 or later) is required for the Uppy client test"
  [[ -d $ROOT/tests/uppy/node_modules/@uppy/aws-s3 ]] ||
    (cd "$ROOT/tests/uppy" && npm ci --no-audit --no-fund --silent) || die "npm ci in tests/uppy failed"
}

# The field's own template checkers, pinned: aws-sam-cli (`sam validate --lint`, `sam build`)
# and checkov, in their own venv (their dependencies clash with moto's).
SAM_VERSION=1.170.0 CHECKOV_VERSION=3.2.459
DEPLOY_VENV=$CACHE/venv-deploy
ensure_deploy_tools() {
  if [[ ! -f $DEPLOY_VENV/.sam-$SAM_VERSION-checkov-$CHECKOV_VERSION ]]; then
    log "installing aws-sam-cli $SAM_VERSION and checkov $CHECKOV_VERSION into $DEPLOY_VENV"
    python3 -m venv "$DEPLOY_VENV"
    "$DEPLOY_VENV/bin/pip" install --quiet "aws-sam-cli==$SAM_VERSION" "checkov==$CHECKOV_VERSION" ||
      die "pip install aws-sam-cli checkov failed"
    touch "$DEPLOY_VENV/.sam-$SAM_VERSION-checkov-$CHECKOV_VERSION"
  fi
  export SAM_CLI_TELEMETRY=0
}

# Every template check but `sam build`: cfn-lint, `sam validate --lint`, checkov (strict: a
# finding fails unless the template skips it with a reason), and the least-privilege test.
# Appends what failed to the caller's `failed` array.
check_template() {
  ensure_deploy_tools
  log "cfn-lint template.yaml template-replica.yaml template-edge.yaml"
  cfn-lint template.yaml template-replica.yaml template-edge.yaml || failed+=("cfn-lint")
  log "sam validate --lint"
  "$DEPLOY_VENV/bin/sam" validate --lint --region "$REGION" || failed+=("sam validate")
  log "checkov (every finding fixed, or skipped in the template with its reason)"
  BC_SKIP_MAPPING=TRUE "$DEPLOY_VENV/bin/checkov" -f template.yaml -f template-replica.yaml -f template-edge.yaml --framework cloudformation \
    --compact --quiet --skip-download || failed+=("checkov")
  log "template rules: least privilege (scripts/iam_check.py), queues, alarms, logs, functions, EU regions, CDN caching, edge alarms; scripts/deploy_web.py against moto"
  python3 -m unittest discover -s tests/template || failed+=("template rules")
}

# The web app's Uppy packages (pinned in web/package-lock.json), bundled by esbuild into
# web/vendor/ (a quarter of a second); rebuilt when the lock file changes.
ensure_web_app() {
  command -v node >/dev/null || die "node (20.10 or later) is required for the web app"
  [[ -d $ROOT/web/node_modules/@uppy/core && $ROOT/web/node_modules/.package-lock.json -nt $ROOT/web/package-lock.json ]] ||
    (cd "$ROOT/web" && npm ci --no-audit --no-fund --silent) || die "npm ci in web failed"
  [[ -f $ROOT/web/vendor/uppy.mjs && $ROOT/web/vendor/uppy.mjs -nt $ROOT/web/package-lock.json ]] ||
    (cd "$ROOT/web" && npm run build --silent >/dev/null) || die "bundling Uppy for the web app failed"
}

# The browser test: playwright-core (tests/web/package-lock.json) driving Debian's Chromium.
ensure_browser_test() {
  ensure_web_app
  [[ -d $ROOT/tests/web/node_modules/playwright-core ]] ||
    (cd "$ROOT/tests/web" && npm ci --no-audit --no-fund --silent) || die "npm ci in tests/web failed"
  if ! command -v chromium >/dev/null; then
    log "installing Debian's chromium (browser tests)"
    local sudo=""
    ((EUID == 0)) || sudo=sudo
    $sudo apt-get install -y -qq chromium >/dev/null 2>&1 ||
      { $sudo apt-get update -qq && $sudo apt-get install -y -qq chromium >/dev/null; } ||
      die "could not install chromium (apt-get install chromium)"
  fi
  CHROMIUM_BIN=${CHROMIUM_BIN:-$(command -v chromium)}
  export CHROMIUM_BIN
}

# imgproxy's official Node client (pinned in tests/imgproxy/package-lock.json) for the
# transformer's URL test, and terser (pinned in edge/package-lock.json) that builds the CloudFront
# Function in template.yaml from edge/.
ensure_imgproxy_client() {
  command -v node >/dev/null || die "node (20.10 or later) is required for the imgproxy client test"
  [[ -d $ROOT/tests/imgproxy/node_modules/@imgproxy/imgproxy-node ]] ||
    (cd "$ROOT/tests/imgproxy" && npm ci --no-audit --no-fund --silent) || die "npm ci in tests/imgproxy failed"
  [[ -d $ROOT/edge/node_modules/terser ]] ||
    (cd "$ROOT/edge" && npm ci --no-audit --no-fund --silent) || die "npm ci in edge failed"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port_in_use() {
  python3 -c 'import socket, sys; s = socket.socket(); sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)' "$1"
}

# wait_for_http URL SECONDS PID: polls until URL answers or PID dies.
wait_for_http() {
  local url=$1 deadline=$((SECONDS + $2)) pid=$3
  until curl -s -o /dev/null --max-time 2 "$url"; do
    kill -0 "$pid" 2>/dev/null || die "process $pid serving $url exited; see its log"
    ((SECONDS < deadline)) || die "$url did not answer within $2 s"
    sleep 0.2
  done
}

# start_bg LOGFILE CMD...: runs CMD in its own process group and remembers its PID (in
# STARTED_PIDS, and in LAST_PID). Call it directly, not in $(...): a subshell's memory is lost.
start_bg() {
  local logfile=$1; shift
  setsid "$@" >"$logfile" 2>&1 </dev/null &
  LAST_PID=$!
  STARTED_PIDS+=("$LAST_PID")
}

stop_started() {
  local pid
  for pid in "${STARTED_PIDS[@]}"; do
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${STARTED_PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  STARTED_PIDS=()
}

# start_moto PORT LOGFILE: moto's server on 127.0.0.1 (never `localhost`: the Rust S3
# client would switch to virtual-hosted addressing), with scripts/moto_server.py's fixes.
start_moto() {
  local port=$1 logfile=$2
  start_bg "$logfile" "$VENV/bin/python3" "$ROOT/scripts/moto_server.py" -H 127.0.0.1 -p "$port"
  wait_for_http "http://127.0.0.1:$port/moto-api/" 30 "$LAST_PID"
}

# start_garage DIR: a single-node Garage in DIR with one bucket and one key; exports
# GARAGE_ENDPOINT, GARAGE_REGION, GARAGE_BUCKET, GARAGE_ACCESS_KEY_ID, GARAGE_SECRET_ACCESS_KEY.
start_garage() {
  local dir=$1 s3_port rpc_port node key_out
  s3_port=$(free_port); rpc_port=$(free_port)
  mkdir -p "$dir/meta" "$dir/data"
  cat >"$dir/garage.toml" <<TOML
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc_port"
rpc_public_addr = "127.0.0.1:$rpc_port"
rpc_secret = "$(python3 -c 'import secrets; print(secrets.token_hex(32))')"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3_port"
root_domain = ".s3.garage.localhost"
TOML
  local g=("$GARAGE_BIN" -c "$dir/garage.toml")
  start_bg "$dir/garage.log" "${g[@]}" server
  wait_for_http "http://127.0.0.1:$s3_port/" 30 "$LAST_PID"
  local deadline=$((SECONDS + 30))
  until node=$("${g[@]}" node id -q 2>/dev/null); do
    ((SECONDS < deadline)) || die "garage did not come up; see $dir/garage.log"
    sleep 0.2
  done
  "${g[@]}" layout assign -z dc1 -c 1G "${node%%@*}" >/dev/null
  "${g[@]}" layout apply --version 1 >/dev/null
  "${g[@]}" bucket create enforcing >/dev/null
  key_out=$("${g[@]}" key create tests)
  "${g[@]}" bucket allow --read --write --owner enforcing --key tests >/dev/null
  export GARAGE_ENDPOINT=http://127.0.0.1:$s3_port GARAGE_REGION=garage GARAGE_BUCKET=enforcing
  GARAGE_ACCESS_KEY_ID=$(awk '/Key ID:/ {print $3}' <<<"$key_out")
  GARAGE_SECRET_ACCESS_KEY=$(awk '/Secret key:/ {print $3}' <<<"$key_out")
  export GARAGE_ACCESS_KEY_ID GARAGE_SECRET_ACCESS_KEY
  [[ -n $GARAGE_ACCESS_KEY_ID && -n $GARAGE_SECRET_ACCESS_KEY ]] || die "could not read garage's key: $key_out"
}

# local_aws_env PORT: the environment that points the AWS SDKs at moto on PORT.
local_aws_env() {
  export AWS_ENDPOINT_URL=http://127.0.0.1:$1
  export AWS_REGION=$REGION AWS_DEFAULT_REGION=$REGION
  export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local
}

# export_env_file FILE: exports every NAME=VALUE line of FILE (a value in single quotes loses them).
export_env_file() {
  local line name value
  while IFS= read -r line; do
    [[ -z $line || $line == \#* ]] && continue
    name=${line%%=*} value=${line#*=}
    [[ $value == \'*\' ]] && value=${value:1:${#value}-2}
    export "$name=$value"
  done <"$1"
}
