// Strict POSIX shell quoting, and the /bin/sh functions both executors run on
// a machine (locally through child_process, remotely in a persistent SSH
// shell). Every function is fixed text; whatever varies reaches it as a quoted
// positional argument, never spliced into the program.

import { ExecutorError } from './types.js';

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Refuses what cannot travel through argv, the environment or UTF-8 unchanged. */
export function assertShellSafeText(value: string, what: string): void {
  if (value.includes('\0')) {
    throw new ExecutorError('INVALID_ARGUMENT', `${what} cannot contain a NUL byte`);
  }
  if (LONE_SURROGATE.test(value)) {
    throw new ExecutorError('INVALID_ARGUMENT', `${what} is not valid Unicode (lone surrogate)`);
  }
}

/**
 * One shell word that means exactly `value`: always single-quoted, each `'`
 * written as `'\''`. Inside single quotes a POSIX shell interprets nothing,
 * not `$`, backquotes, backslashes or newlines.
 */
export function quote(value: string): string {
  assertShellSafeText(value, 'a shell argument');
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/** A command line of quoted words. */
export function commandLine(argv: readonly string[]): string {
  return argv.map(quote).join(' ');
}

/** Lines of `stdout` that start with `<tag> `, without the tag; anything else (login-script noise) is ignored. */
export function taggedLines(stdout: string, tag: string): string[] {
  const prefix = `${tag} `;
  return stdout
    .split('\n')
    .filter((line) => line.startsWith(prefix))
    .map((line) => line.slice(prefix.length));
}

/** The operations of the shell library; each takes positional arguments and returns its status. */
export type ShellOp =
  | 'trainyard_launch'
  | 'trainyard_read_handle'
  | 'trainyard_inspect'
  | 'trainyard_signal'
  | 'trainyard_remove_run_dir'
  | 'trainyard_list_runs'
  | 'trainyard_probe'
  | 'trainyard_home';

export const REMOVE_OUTSIDE_ROOT_STATUS = 3;

/** The most of a pid or exit_code file that is read: the wrapper writes a few dozen bytes. */
export const SMALL_FILE_BYTES = 256;

// trainyard_stat PID: reads /proc/PID/stat into st_state and st_start
// (fields 3 and 22). The command name (field 2) may hold spaces and
// parentheses, so fields are counted after its last ") ".
//
// trainyard_alive PID PGID START succeeds while the group the wrapper leads
// still has a live process:
// - the leader alive with its recorded start time: alive;
// - the PID owned by a process with another start time: the PID was reused,
//   which the kernel does only once nothing uses it as a PID, PGID or session
//   id any more, so the whole group is gone;
// - the leader gone or a zombie (an init that does not reap is common in
//   containers): when kill -0 finds no process in the group, it is gone;
//   else one awk pass over /proc finds any non-zombie member in the wrapper's
//   session started no earlier than it.
const PROCESS_FUNCTIONS = `
trainyard_stat() {
  { IFS= read -r trainyard_line < "/proc/$1/stat"; } 2>/dev/null || return 1
  set -- \${trainyard_line##*') '}
  [ -n "\${20:-}" ] || return 1
  st_state=$1 st_start=\${20}
}
trainyard_alive() {
  if trainyard_stat "$1"; then
    [ "$st_start" = "$3" ] || return 1
    case $st_state in Z|X|x) ;; *) return 0 ;; esac
  fi
  kill -s 0 -- "-$2" 2>/dev/null || return 1
  cat /proc/[0-9]*/stat 2>/dev/null | awk -v g="$2" -v s="$3" '
    !sub(/^.*\\) /, "") { next }
    $3 == g && $4 == g && $1 != "Z" && $1 != "X" && $1 != "x" && $20 + 0 >= s + 0 { found = 1; exit }
    END { exit !found }'
}
`;

// trainyard_inspect PID PGID START RUNDIR prints `trainyard-state <0|1> [exit code]`.
//
// trainyard_signal SIG PID PGID START RUNDIR signals the group only while it
// is still the trainer's, so a reused PID never gets a stray signal (dash's
// kill takes `--` only after `-s SIG`). A TERM is announced in
// RUNDIR/stop_requested first, for a trainer being forked right now (see the
// wrapper).
//
// trainyard_read_handle RUNDIR prints `trainyard-pid <pid> <pgid> <start>` when
// a wrapper recorded itself there.
//
// A trainer may have put a FIFO, a device or a huge file where pid, exit_code or
// stop_requested belong: files are read only when `[ -f ]` says they are regular,
// and then only their first bytes (head -c), so no request waits on a FIFO or reads
// a whole disk; stop_requested is created only when nothing is there yet.
//
// trainyard_remove_run_dir ROOT RUNDIR (both checked lexically already)
// resolves the run dir's parent physically, so a symlink on the way cannot lead
// rm outside the runs root; a run dir that is itself a symlink goes as a link.
//
// trainyard_probe ROOT prints `trainyard-df <df -Pk line>` for the nearest
// existing directory of the runs root and `trainyard-gpu <csv>` per GPU.
const OP_FUNCTIONS = `
trainyard_head() {
  [ -f "$1" ] || return 1
  trainyard_line=$(head -c ${SMALL_FILE_BYTES} -- "$1" 2>/dev/null) || return 1
  trainyard_line=\${trainyard_line%%"$trainyard_nl"*}
}
trainyard_inspect() {
  if trainyard_alive "$1" "$2" "$3"; then trainyard_a=1; else trainyard_a=0; fi
  trainyard_head "$4/exit_code" || trainyard_line=
  printf 'trainyard-state %s %s\\n' "$trainyard_a" "$trainyard_line"
}
trainyard_signal() {
  trainyard_alive "$2" "$3" "$4" || return 0
  if [ "$1" = TERM ] && ! [ -e "$5/stop_requested" ] && ! [ -L "$5/stop_requested" ]; then : > "$5/stop_requested"; fi
  kill -s "$1" -- "-$3" 2>/dev/null
  return 0
}
trainyard_read_handle() {
  trainyard_head "$1/pid" && printf 'trainyard-pid %s\\n' "$trainyard_line"
  return 0
}
trainyard_remove_run_dir() {
  [ -e "$2" ] || [ -L "$2" ] || return 0
  trainyard_root=$(cd -P -- "$1" 2>/dev/null && pwd -P) || return ${REMOVE_OUTSIDE_ROOT_STATUS}
  trainyard_parent=$(cd -P -- "\${2%/*}" 2>/dev/null && pwd -P) || return ${REMOVE_OUTSIDE_ROOT_STATUS}
  case "$trainyard_parent/" in
    "$trainyard_root"/*) ;;
    *) printf 'trainyard: %s resolves outside the runs root %s\\n' "$2" "$trainyard_root" >&2; return ${REMOVE_OUTSIDE_ROOT_STATUS} ;;
  esac
  rm -rf -- "$trainyard_parent/\${2##*/}"
}
trainyard_list_runs() {
  [ -d "$1" ] && ! [ -L "$1" ] || return 0
  for trainyard_d in "$1"/run-*; do
    if [ -d "$trainyard_d" ] && ! [ -L "$trainyard_d" ]; then printf 'trainyard-run %s\\n' "\${trainyard_d##*/}"; fi
  done
  return 0
}
trainyard_probe() {
  trainyard_dir=$1
  while [ ! -d "$trainyard_dir" ]; do trainyard_dir=\${trainyard_dir%/*}; [ -n "$trainyard_dir" ] || trainyard_dir=/; done
  df -Pk -- "$trainyard_dir" 2>/dev/null | while IFS= read -r trainyard_line; do printf 'trainyard-df %s\\n' "$trainyard_line"; done
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader,nounits 2>/dev/null |
      while IFS= read -r trainyard_line; do printf 'trainyard-gpu %s\\n' "$trainyard_line"; done
  fi
  return 0
}
trainyard_home() {
  printf 'trainyard-home %s\\n' "$HOME"
}
`;

/** The process and operation functions (the launch function lives with the wrapper). */
export const SHELL_FUNCTIONS = `unset CDPATH\ntrainyard_nl='\n'\n${PROCESS_FUNCTIONS}${OP_FUNCTIONS}`;
