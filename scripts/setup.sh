#!/usr/bin/env bash
# Installs what building and testing wework-msgaudit needs and is missing, on Debian/Ubuntu:
#   - apt packages (ARCHITECTURE.md decision 17): FFmpeg dev libraries + clang for ffmpeg-next, ffmpeg
#     (ffprobe), sox, iproute2 (unshare/ip), binutils (nm), supervisor (tests/deploy_supervisord.rs),
#     docker-compose unless `docker compose` works, systemd for systemd-analyze (tests/deploy_files.rs),
#     chromium + chromium-driver + a CJK font (the review console's browser test, tests/console.rs),
#     MariaDB server;
#   - the real vendor SDK from the PyPI package pyweworkfinance==1.1.0, into .cache/sdk/ (git-ignored),
#     checked against its known sha256 (decision 15) — never committed;
#   - a running MariaDB on 127.0.0.1:3306 (or its Unix socket) with a database `test`.
# Usage: scripts/setup.sh [--no-sdk] [--no-db]
set -euo pipefail
cd "$(dirname "$0")/.."

want_sdk=1 want_db=1
for arg in "$@"; do
  case "$arg" in
    --no-sdk) want_sdk=0 ;;
    --no-db) want_db=0 ;;
    *) echo "setup.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# --- apt packages -------------------------------------------------------------------------------
packages=(pkg-config clang libclang-dev libavformat-dev libavcodec-dev libavutil-dev libswresample-dev
          ffmpeg sox libsox-fmt-all iproute2 binutils util-linux python3 python3-pip python3-venv unzip supervisor
          systemd chromium chromium-driver fonts-wqy-microhei fonts-noto-color-emoji)
[ "$want_db" = 1 ] && packages+=(mariadb-server mariadb-client)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# `docker compose config` for tests/deploy_files.rs: the compose plugin when Docker has it, else
# Debian's docker-compose, without its recommended Docker engine (nothing here runs containers).
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then
  echo "setup: installing docker-compose (to validate docker-compose.yml)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
fi

# --- the real vendor SDK (tests only) -------------------------------------------------------------
SDK_DIR=.cache/sdk
SDK_SO=$SDK_DIR/libWeWorkFinanceSdk_C_x86.so
SDK_SHA256=79ced4de6b18d5e96a21cd06f325794dc8957f8925120538d56d4ce827d3dfd0
if [ "$want_sdk" = 1 ]; then
  if ! echo "$SDK_SHA256  $SDK_SO" | sha256sum -c --status 2>/dev/null; then
    echo "setup: fetching the vendor SDK (pip download --no-deps pyweworkfinance==1.1.0)"
    mkdir -p "$SDK_DIR/pip"
    python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$SDK_DIR/pip" pyweworkfinance==1.1.0
    python3 - "$SDK_DIR" <<'PY'
import glob, sys, zipfile
d = sys.argv[1]
whl = sorted(glob.glob(f"{d}/pip/pyweworkfinance-1.1.0-*.whl"))[-1]
with zipfile.ZipFile(whl) as z:
    for name in ("libWeWorkFinanceSdk_C_x86.so", "WeWorkFinanceSdk_C.h"):
        with open(f"{d}/{name}", "wb") as f:
            f.write(z.read(f"pyweworkfinance/libs/linux/{name}"))
PY
    echo "$SDK_SHA256  $SDK_SO" | sha256sum -c --status || {
      echo "setup: $SDK_SO does not have the expected sha256 $SDK_SHA256: refusing to use it" >&2; exit 1; }
  fi
  echo "setup: real SDK at $SDK_SO (sha256 ok)"
fi

# --- moto_server: the S3-compatible server of the object-store tests (PyPI moto[server]) ----------
MOTO_VENV=.cache/moto-venv
if ! command -v moto_server >/dev/null 2>&1 && [ ! -x "$MOTO_VENV/bin/moto_server" ]; then
  echo "setup: installing moto[server] into $MOTO_VENV"
  python3 -m venv "$MOTO_VENV"
  "$MOTO_VENV/bin/pip" install --quiet --disable-pip-version-check 'moto[server]'
fi

# --- MariaDB ------------------------------------------------------------------------------------
if [ "$want_db" = 1 ]; then
  if ! (exec 3<>/dev/tcp/127.0.0.1/3306) 2>/dev/null; then
    echo "setup: starting MariaDB"
    $SUDO mkdir -p /run/mysqld && $SUDO chown mysql:mysql /run/mysqld 2>/dev/null || true
    $SUDO start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
    for _ in $(seq 1 60); do
      (exec 3<>/dev/tcp/127.0.0.1/3306) 2>/dev/null && break
      sleep 1
    done
  fi
  mysql_root() {
    mariadb -uroot -h127.0.0.1 -P3306 "$@" 2>/dev/null || $SUDO mariadb -uroot --socket=/run/mysqld/mysqld.sock "$@"
  }
  mysql_root -e "CREATE DATABASE IF NOT EXISTS test" || { echo "setup: cannot reach MariaDB" >&2; exit 1; }
  echo "setup: MariaDB ready (database test)"
fi
