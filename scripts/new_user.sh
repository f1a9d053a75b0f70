#!/usr/bin/env bash
# The new-user path, reproduced: a fresh clone in a temporary directory, the README's two commands, and a
# screenshot of every dashboard view in Debian's chromium.
#
#   scripts/new_user.sh                 clone HEAD; `make run` until the dashboard answers; screenshots
#   scripts/new_user.sh --test          also `make test` in the clone (takes minutes)
#   scripts/new_user.sh --worktree      copy the working tree (uncommitted changes included) instead of HEAD
#   scripts/new_user.sh --keep          keep the temporary clone (its path is printed)
#   scripts/new_user.sh --out DIR       write the screenshots to DIR (default: docs/screenshots of this repository)
#
# Needs git, make, python3 (3.11), a free port 8501 (where `make run` serves) and /usr/bin/chromium
# (`apt-get install -y chromium`; never `playwright install`). Exit status: 0 when every step passed.
set -euo pipefail

SRC="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$SRC/docs/screenshots"
RUN_TESTS=0
WORKTREE=0
KEEP=0
WAIT_SECONDS="${AIMUSIC_NEW_USER_WAIT:-1500}"   # install + first pass; the install alone took 2.5 min here
URL="http://127.0.0.1:8501"

while [ $# -gt 0 ]; do
  case "$1" in
    --test) RUN_TESTS=1 ;;
    --worktree) WORKTREE=1 ;;
    --keep) KEEP=1 ;;
    --out) OUT="$(mkdir -p "$2" && cd "$2" && pwd)"; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

say() { printf '\n== %s (%ss)\n' "$1" "$SECONDS"; }
fail() { echo "new_user: $1" >&2; exit 1; }

for tool in git make python3; do command -v "$tool" >/dev/null || fail "$tool is missing"; done
[ -x /usr/bin/chromium ] || fail "no /usr/bin/chromium: apt-get install -y chromium"
if python3 - <<'EOF'
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", 8501))
except OSError:
    sys.exit(0)  # taken
sys.exit(1)
EOF
then fail "port 8501 is taken: stop the dashboard that runs there first (make run serves on 8501)"; fi

TMP="$(mktemp -d "${TMPDIR:-/tmp}/aimusic-new-user.XXXXXX")"
CLONE="$TMP/aimusic-monitor"
RUN_PID=""
cleanup() {
  if [ -n "$RUN_PID" ] && kill -0 "$RUN_PID" 2>/dev/null; then
    kill -TERM -- "-$RUN_PID" 2>/dev/null || true   # make run's process group (make, aimusic, streamlit)
    for _ in $(seq 1 40); do kill -0 "$RUN_PID" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$RUN_PID" 2>/dev/null || true
  fi
  if [ "$KEEP" = 1 ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

if [ "$WORKTREE" = 1 ]; then
  say "copying the working tree of $SRC (tracked and untracked files git does not ignore)"
  git -C "$SRC" ls-files -z --cached --others --exclude-standard | python3 -c '
import os, shutil, sys
src, dst = sys.argv[1], sys.argv[2]
for name in sys.stdin.buffer.read().decode().split("\0"):
    path = os.path.join(src, name)
    if name and os.path.isfile(path):  # tracked files deleted in the working tree are left out
        os.makedirs(os.path.dirname(os.path.join(dst, name)), exist_ok=True)
        shutil.copy2(path, os.path.join(dst, name))
' "$SRC" "$CLONE"
  git -C "$CLONE" init -q && git -C "$CLONE" add -A >/dev/null
else
  say "cloning $SRC (HEAD)"
  git clone --quiet "$SRC" "$CLONE"
fi
cd "$CLONE"
export PREFECT_HOME="$TMP/prefect"   # a new user's Prefect home: nothing from earlier runs

say "make run (in the background, until the dashboard answers on $URL)"
setsid make run >"$TMP/make-run.log" 2>&1 &
RUN_PID=$!
started=$SECONDS
until python3 -c "import urllib.request,sys; urllib.request.urlopen('$URL/_stcore/health', timeout=2)" 2>/dev/null; do
  kill -0 "$RUN_PID" 2>/dev/null || { tail -40 "$TMP/make-run.log"; fail "make run exited before serving"; }
  [ $((SECONDS - started)) -lt "$WAIT_SECONDS" ] || { tail -40 "$TMP/make-run.log"; fail "no dashboard after ${WAIT_SECONDS}s"; }
  sleep 2
done
echo "dashboard answering after $((SECONDS - started))s"
sed -n '/aimusic start/,$p' "$TMP/make-run.log" | grep -v '^\s*$' | head -40 || true

say "screenshots of every view -> $OUT"
.venv/bin/python scripts/screenshots.py --url "$URL" --out "$OUT"

problems=0
tracebacks=$(grep -c "Traceback" "$TMP/make-run.log" || true)
overflows=$(grep -c "Inotify queue overflowed" "$TMP/make-run.log" || true)
echo "make run's terminal: ${tracebacks} traceback(s), ${overflows} 'Inotify queue overflowed' line(s)"
[ "$tracebacks" = 0 ] && [ "$overflows" = 0 ] || problems=1

kill -TERM -- "-$RUN_PID" 2>/dev/null || true
wait "$RUN_PID" 2>/dev/null || true
RUN_PID=""

if [ "$RUN_TESTS" = 1 ]; then
  say "make test"
  if make test >"$TMP/make-test.log" 2>&1; then tail -3 "$TMP/make-test.log"; else tail -40 "$TMP/make-test.log"; problems=1; fi
fi

say "done: $([ "$problems" = 0 ] && echo "every step passed" || echo "some steps failed")"
exit "$problems"
