# Sourced by scripts/test.sh and scripts/test-release.sh: where a run's time goes, and what its test
# runners counted.
#   phase NAME         ends the running phase and starts NAME (printed with the clock and the total so far)
#   logged NAME CMD…   runs CMD, its output also kept, so the closing report can repeat the runner's
#                      own summary lines (cargo's `test result:`, vitest's `Test Files` and `Tests`)
#                      and the wall seconds CMD took (the only measure of work run beside the phases)
#   timed NAME CMD…    runs CMD and reports its wall seconds as `logged` does, keeping no output
#   beside CMD…        runs CMD (a command or a function of `logged` steps) in the background, in its
#                      own process group, beside the phases that follow
#   joined             waits for everything started `beside`; fails if any of it failed. A run that
#                      ends first (a failed phase) stops it, rather than leave browsers running.
#   $_phase_logs       the run's scratch folder (its logs; marks between the jobs), removed at its end
# On exit, pass or fail, the run ends with one line per phase: its wall seconds and the CPU seconds its
# processes used (user + system; on a machine shared with other work the wall time stretches, the CPU
# time much less), then the total, the load average, and those summary lines: a spec that was skipped
# or not collected shows up in the counts.
_phase_names=()
_phase_secs=()
_phase_cpus=()
_phase_name=''
_phase_start=$SECONDS
_phase_cpu_start=0
_phase_logs=$(mktemp -d)
_phase_load_before=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')

# Sets _cpu to the user + system seconds of every finished child process so far (`times`, second
# line). `times` runs in this shell: in a `$(…)` subshell it would see no children.
_cpu_now() {
  times >"$_phase_logs/times"
  _cpu=$(tail -1 "$_phase_logs/times" | awk '{ t = 0; for (i = 1; i <= 2; i++) { split($i, p, /[ms]/); t += p[1] * 60 + p[2] } printf "%d", t }')
}

phase() {
  _phase_end
  _phase_name=$1
  _phase_start=$SECONDS
  _cpu_now
  _phase_cpu_start=$_cpu
  echo "== $1 ($(date +%T), ${SECONDS}s in)"
}

_phase_end() {
  [ -n "$_phase_name" ] || return 0
  _cpu_now
  _phase_names+=("$_phase_name")
  _phase_secs+=($((SECONDS - _phase_start)))
  _phase_cpus+=($((_cpu - _phase_cpu_start)))
  _phase_name=''
}

logged() {
  local name=$1 start=$SECONDS rc=0
  shift
  "$@" 2>&1 | tee "$_phase_logs/$(printf '%02d' "${#_phase_names[@]}")-$name.log" || rc=$?
  _step_done "$name" "$start" "$rc"
}

timed() {
  local name=$1 start=$SECONDS rc=0
  shift
  "$@" || rc=$?
  _step_done "$name" "$start" "$rc"
}

# Appended from any process, so steps run `beside` are timed too.
_step_done() {
  printf '%6ss  %s (exit %d)\n' $((SECONDS - $2)) "$1" "$3" >>"$_phase_logs/steps"
  return "$3"
}

_beside=()
beside() {
  # Job control on for this one job: it gets a process group of its own, which can be stopped whole.
  set -m
  "$@" &
  _beside+=($!)
  set +m
}

joined() {
  local pid rc=0
  for pid in "${_beside[@]}"; do wait "$pid" || rc=1; done
  _beside=()
  return "$rc"
}

_phase_report() {
  local rc=$? pid
  for pid in "${_beside[@]}"; do kill -- "-$pid" 2>/dev/null || true; done
  _phase_end
  _cpu_now
  echo
  echo "== $(basename "$0"): time per phase (exit $rc)"
  echo '  wall     cpu'
  local i
  for i in "${!_phase_names[@]}"; do
    printf '%6ss %6ss  %s\n' "${_phase_secs[$i]}" "${_phase_cpus[$i]}" "${_phase_names[$i]}"
  done
  printf '%6ss %6ss  total (%dm%02ds); load average before %s, after %s\n' "$SECONDS" "$_cpu" \
    $((SECONDS / 60)) $((SECONDS % 60)) "$_phase_load_before" "$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
  if [ -s "$_phase_logs/steps" ]; then
    echo '-- wall seconds of each logged step (those run beside the phases overlap them):'
    cat "$_phase_logs/steps"
  fi
  local log
  for log in "$_phase_logs"/*.log; do
    [ -e "$log" ] || continue
    echo "-- $(basename "$log" .log | cut -d- -f2-):"
    # Colours off; cargo prints one `test result:` per test binary, vitest its two count lines.
    sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E '^test result:|^ *(Test Files|Tests) ' | sed 's/^ */   /' ||
      echo '   (no summary line: the runner did not finish)'
  done
  # What failed, repeated last: a CI log is often cut in the middle, where a step run beside the
  # others printed its failures. Vitest's "Failed Tests" section, cargo's `failures:`; 80 lines each.
  local name
  for log in "$_phase_logs"/*.log; do
    [ -e "$log" ] || continue
    name=$(basename "$log" .log | cut -d- -f2-)
    grep -qE "^ *[0-9]+s  $name \(exit [1-9]" "$_phase_logs/steps" 2>/dev/null || continue
    echo "-- $name failed; its failures, as the runner printed them:"
    sed 's/\x1b\[[0-9;]*m//g' "$log" | sed -n '/Failed Tests\|^failures:$/,$p' | head -80 | sed 's/^/   /'
  done
  rm -rf "$_phase_logs"
  return $rc
}
trap _phase_report EXIT
