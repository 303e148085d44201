# Sourced by the side-by-side scripts: `run TAG CMD...` runs CMD (at most TIMEOUT seconds,
# default 900), keeps the last JSON line it prints, and appends
# {"tag", "load1" (before the run), "wall" (seconds), "result"} to $out and stdout.
run() {
  local tag=$1; shift
  local load=$(cut -d' ' -f1 /proc/loadavg)
  local t0=$(date +%s.%N)
  local line=$(timeout "${TIMEOUT:-900}" "$@" 2>/dev/null | grep '^{' | tail -n 1)
  local t1=$(date +%s.%N)
  echo "{\"tag\":\"$tag\",\"load1\":$load,\"wall\":$(echo "$t1 - $t0" | bc),\"result\":${line:-null}}" | tee -a "$out"
}
