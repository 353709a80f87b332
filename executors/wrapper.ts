// How a trainer is started on a machine: `trainyard_launch` (a function of
// the shell library, so a single request to the machine's shell) creates the
// run directory, writes the wrapper, the command and the env file into it, and
// starts the wrapper detached under setsid.
//
// Run directory layout:
//   wrapper.sh   the wrapper below        command      the template's command
//   env          `export K='v'` lines     pid          "<pid> <pgid> <start time>"
//   stdout.log   stderr.log               exit_code    written atomically once the command exits
//   stop_requested   created by a stop before its TERM

import { assertShellSafeText, quote } from './shell.js';
import { ExecutorError, type LaunchSpec } from './types.js';

/**
 * The wrapper, started as `setsid /bin/sh ./wrapper.sh <workingDir>` in the
 * run dir with stdin from /dev/null, stderr to stderr.log and stdout on a pipe
 * to trainyard_launch, which it closes once its identity is recorded.
 */
const WRAPPER_SCRIPT = `# Trainyard run wrapper (executors/wrapper.ts).
# It leads the trainer's session and process group. It records its identity in
# ./pid, runs the command with only the variables of ./env and records the
# command's exit status in ./exit_code.
# TERM, INT and HUP are caught, not ignored: an ignored signal would stay ignored
# in the trainer, while caught ones are reset to the default in the subshell
# that becomes the trainer. A caught signal waits until the foreground command
# has exited, so the exit status of a trainer stopped with TERM is still
# recorded; a KILL of the group takes the wrapper along and leaves no exit_code.
# A stop can come as soon as ./pid exists, so what may fail or take time happens
# before it. A stop's TERM could still fall between the fork of the trainer and
# its reset of the signal: trainyard_signal creates ./stop_requested before it
# signals, and the trainer, once TERM would kill it, looks for that file.
# record() removes whatever the trainer left at exit_code.tmp (a FIFO would block
# the write) before it writes the code and renames it over exit_code.
trap ':' TERM INT HUP
unset CDPATH
rundir=$PWD
workdir=$1
record() {
  rm -f -- "$rundir/exit_code.tmp"
  printf '%s\\n' "$1" > "$rundir/exit_code.tmp" && mv -f -- "$rundir/exit_code.tmp" "$rundir/exit_code"
}
{ IFS= read -r stat < "/proc/$$/stat"; } 2>/dev/null || { echo "trainyard: cannot read /proc/$$/stat" >&2; exit 125; }
set -- \${stat##*') '}
if [ "$3" != "$$" ] || [ "$4" != "$$" ] || [ -z "\${20:-}" ]; then
  echo 'trainyard: the wrapper does not lead its own session and process group' >&2
  exit 125
fi
case $workdir in
  '') workdir=$rundir ;;
  /*) ;;
  '~') workdir=$HOME ;;
  '~/'*) workdir=$HOME/\${workdir#'~/'} ;;
  *) workdir=$HOME/$workdir ;;
esac
command=$(cat -- "$rundir/command") || command=
printf '%s %s %s\\n' "$$" "$3" "\${20}" > pid.tmp && mv -f pid.tmp pid || exit 125
exec > stdout.log
if [ -z "$command" ]; then
  echo 'trainyard: cannot read the command' >&2
  record 125
  exit 125
fi
if ! cd -- "$workdir" 2>/dev/null; then
  printf 'trainyard: cannot enter the working directory %s\\n' "$workdir" >&2
  record 126
  exit 126
fi
(
  trap - TERM INT HUP
  if [ -e "$rundir/stop_requested" ]; then exit 143; fi
  exec env -i /bin/sh -c '. "$1" && exec /bin/sh -c "$2"' trainyard "$rundir/env" "$command"
)
code=$?
record "$code"
exit "$code"
`;

export const LAUNCH_STATUS = {
  cannotCreate: 71,
  runDirExists: 72,
  cannotWrite: 73,
  wrapperFailed: 74,
} as const;

/**
 * trainyard_launch RUNDIR WORKDIR COMMAND ENVFILE prints
 * `trainyard-pid <pid> <pgid> <start>` once the wrapper has recorded it. The
 * run dir must not exist yet, so a retried launch never starts a second
 * trainer. The command is data here: it only lands in ./command. The pipe from
 * the wrapper carries nothing; its end (the wrapper's stdout moving to
 * stdout.log) says the identity is recorded. The explicit `exec` matters: a
 * shell that would rather fork (bash) would otherwise hold the pipe open
 * until the trainer ends.
 */
export const LAUNCH_FUNCTION = `
trainyard_wrapper=${quote(WRAPPER_SCRIPT)}
trainyard_launch() {
  trainyard_parent=\${1%/*}
  [ -d "\${trainyard_parent:-/}" ] || mkdir -p -- "\${trainyard_parent:-/}" || return ${LAUNCH_STATUS.cannotCreate}
  if ! mkdir -m 700 -- "$1" 2>/dev/null; then
    { [ -e "$1" ] || [ -L "$1" ]; } && return ${LAUNCH_STATUS.runDirExists}
    printf 'trainyard: cannot create the run directory %s\\n' "$1" >&2
    return ${LAUNCH_STATUS.cannotCreate}
  fi
  printf '%s' "$trainyard_wrapper" > "$1/wrapper.sh" &&
    printf '%s' "$3" > "$1/command" &&
    printf '%s' "$4" > "$1/env" || return ${LAUNCH_STATUS.cannotWrite}
  ( cd -- "$1" && exec setsid /bin/sh ./wrapper.sh "$2" < /dev/null 2> stderr.log & ) |
    while read -r trainyard_line; do :; done
  if trainyard_head "$1/pid"; then
    printf 'trainyard-pid %s\\n' "$trainyard_line"
    return 0
  fi
  [ -f "$1/stderr.log" ] && tail -c 4096 -- "$1/stderr.log" >&2
  return ${LAUNCH_STATUS.wrapperFailed}
}
`;

export const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

// Read-only in bash (which is /bin/sh on some distributions): assigning one
// aborts the shell that sources the env file.
const RESERVED_ENV_KEYS = new Set(['BASHOPTS', 'BASH_VERSINFO', 'EUID', 'PPID', 'SHELLOPTS', 'UID']);

/** The command and the env file travel as arguments; a local exec caps one argument at 128 KiB. */
const MAX_ARGUMENT_BYTES = 120 * 1024;

/** The env file: one `export K='v'` per variable, values strictly quoted, keys validated. */
export function envFileText(env: Record<string, string>): string {
  let text = '';
  for (const [key, value] of Object.entries(env)) {
    if (!ENV_KEY.test(key)) {
      throw new ExecutorError('INVALID_ARGUMENT', `invalid environment variable name ${JSON.stringify(key)}`);
    }
    if (RESERVED_ENV_KEYS.has(key)) {
      throw new ExecutorError('INVALID_ARGUMENT', `environment variable ${key} is reserved by the shell`);
    }
    if (typeof value !== 'string') {
      throw new ExecutorError('INVALID_ARGUMENT', `environment variable ${key} must be a string`);
    }
    assertShellSafeText(value, `environment variable ${key}`);
    text += `export ${key}=${quote(value)}\n`;
  }
  return text;
}

/** The arguments of trainyard_launch for a spec whose runDir is already checked. */
export function launchArgs(spec: LaunchSpec): string[] {
  if (spec.command.trim() === '') {
    throw new ExecutorError('INVALID_ARGUMENT', 'the command is empty');
  }
  assertShellSafeText(spec.command, 'the command');
  const workingDir = spec.workingDir ?? '';
  assertShellSafeText(workingDir, 'the working directory');
  const env = envFileText(spec.env);
  if (Buffer.byteLength(spec.command) > MAX_ARGUMENT_BYTES || Buffer.byteLength(env) > MAX_ARGUMENT_BYTES) {
    throw new ExecutorError(
      'INVALID_ARGUMENT',
      `the command and the environment must each stay under ${MAX_ARGUMENT_BYTES} bytes`,
    );
  }
  return [spec.runDir, workingDir, spec.command, env];
}
