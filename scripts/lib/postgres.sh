# shellcheck shell=bash
# A private, throwaway PostgreSQL for tests and benchmarks. Sourced, never run.
#
# start_test_postgres: when DATABASE_URL is set, the tests use that server (it must allow
# CREATE DATABASE). Otherwise initdb into a temporary directory, as an unprivileged user when we
# are root (initdb and postgres refuse root), on a free loopback port, with TLS from a throwaway CA
# so the TLS tests have a real server to verify. Exports:
#   TEST_DATABASE_URL    superuser URL, plaintext on loopback (explicit sslmode=disable)
#   TEST_PG_TLS_CA_FILE  the CA that signed the server certificate (CN/SAN localhost, 127.0.0.1)
#   TEST_PG_PORT         the port
#   TEST_PG_DATA_DIR     its data directory (postmaster.pid: `make bench` reads PostgreSQL's CPU)
# The server and its directory are removed when the calling shell exits.
#
# TEST_PG_DURABLE=1 starts it with real commits (fsync, synchronous_commit and full-page writes
# on, as RDS runs): for `make bench`, where commit cost is what is measured. The test suites
# leave it unset and get fsync=off.

pg_bin_dir() {
  local dir
  # The directory initdb really lives in: a PATH entry may be links to a few of its tools only
  # (here /usr/local/bin has initdb and pg_ctl, not psql or pg_test_fsync).
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(readlink -f "$(command -v initdb)")"; return 0
  fi
  for dir in /usr/lib/postgresql/*/bin; do
    [ -x "$dir/initdb" ] && { echo "$dir"; return 0; }
  done
  return 1
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start_test_postgres() {
  if [ -n "${DATABASE_URL:-}" ]; then
    export TEST_DATABASE_URL=$DATABASE_URL
    echo "tests use the PostgreSQL named by DATABASE_URL" >&2
    return 0
  fi
  local bin
  if ! bin=$(pg_bin_dir); then
    ensure_apt postgresql psql
    bin=$(pg_bin_dir) || die "PostgreSQL server binaries (initdb, pg_ctl) not found even after installing 'postgresql'"
  fi
  command -v openssl >/dev/null 2>&1 || ensure_apt openssl openssl

  local user dir port
  dir=$(mktemp -d /tmp/counter-pg.XXXXXX)
  port=$(free_port)
  user=$(id -un)
  if [ "$(id -u)" -eq 0 ]; then
    user=counter-pg
    id -u "$user" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$user" \
      || die "cannot create the unprivileged user '$user' for PostgreSQL"
  fi

  # Throwaway CA and server certificate: the TLS tests verify against this CA, and must be
  # refused when they trust only the system roots.
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=counter-test-ca" \
    -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null || die "openssl could not create the test CA"
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null || die "openssl could not create the server key"
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' >"$dir/server.ext"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 2 -extfile "$dir/server.ext" -out "$dir/server.crt" 2>/dev/null || die "openssl could not sign the server certificate"
  chmod 600 "$dir/server.key"

  chown -R "$user" "$dir"
  local as=()
  [ "$(id -u)" -eq 0 ] && as=(runuser -u "$user" --)
  "${as[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
  cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 300
ssl = on
ssl_cert_file = '$dir/server.crt'
ssl_key_file = '$dir/server.key'
CONF
  if [ "${TEST_PG_DURABLE:-0}" = 1 ]; then
    cat >>"$dir/data/postgresql.conf" <<CONF
# Real commits: every COMMIT waits for its WAL to reach the disk.
fsync = on
synchronous_commit = on
full_page_writes = on
CONF
  else
    cat >>"$dir/data/postgresql.conf" <<CONF
# A test server: durability is not what is under test, speed of the run is.
fsync = off
full_page_writes = off
CONF
  fi
  # As on RDS, members of rds_iam sign in with a password (there: an IAM token) over TLS only; the
  # IAM tests create rds_iam and set their role's password to the token. First match wins, so
  # these lines go before initdb's trust lines.
  { printf 'hostssl all +rds_iam 127.0.0.1/32 password\nhostssl all +rds_iam ::1/128 password\n'
    printf 'host all +rds_iam 127.0.0.1/32 reject\nhost all +rds_iam ::1/128 reject\n'
    cat "$dir/data/pg_hba.conf"; } >"$dir/pg_hba.conf" && mv "$dir/pg_hba.conf" "$dir/data/pg_hba.conf"
  chown "$user" "$dir/data/pg_hba.conf"
  "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null \
    || { cat "$dir/server.log" >&2; die "PostgreSQL did not start"; }
  # shellcheck disable=SC2064 # expand now: the trap must stop this very server.
  trap "${as[*]} '$bin/pg_ctl' -D '$dir/data' -m immediate stop >/dev/null 2>&1; rm -rf '$dir'" EXIT

  export TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
  export TEST_PG_TLS_CA_FILE="$dir/ca.crt"
  export TEST_PG_PORT=$port
  export TEST_PG_BIN_DIR=$bin
  export TEST_PG_DATA_DIR=$dir/data
  echo "throwaway PostgreSQL on 127.0.0.1:$port ($dir$([ "${TEST_PG_DURABLE:-0}" = 1 ] && echo ", durable commits"))" >&2
}
