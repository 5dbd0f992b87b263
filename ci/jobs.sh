# ci/jobs.sh - sourced by the long lanes (ci/lane-full-*): run independent
# commands side by side, one per core, and collect each one's exit status.
# The lanes were sequential; on a 2-core machine their independent binaries
# and scenario shards now take about half the wall time, with the same
# commands, logs and results.
#
#   jobs_init            once, before the first job (JOBS: how many at a
#                        time, default the number of cores)
#   job NAME CMD...      run CMD (a command or a shell function) in the
#                        background once fewer than JOBS run; its exit
#                        status is kept under NAME
#   jobs_wait            wait for every job
#   job_status NAME      print NAME's exit status (255 when it left none)
#
# Each job's output goes where its command sends it (every lane redirects
# to its own per-job log); nothing here prints.
jobs_init() {
  JOBS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/migcert-jobs.XXXXXX")
  JOBS_MAX=${JOBS:-$(nproc 2>/dev/null || echo 2)}
  trap 'rm -rf "$JOBS_DIR"' EXIT
}

job() {
  local name=$1
  shift
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS_MAX" ]; do
    wait -n 2>/dev/null || true
  done
  ( "$@"; echo $? > "$JOBS_DIR/$name" ) &
}

jobs_wait() {
  wait
}

job_status() {
  cat "$JOBS_DIR/$1" 2>/dev/null || echo 255
}
