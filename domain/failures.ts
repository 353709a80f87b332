// The catalogue of expected failures. Anything thrown that is not in it is a bug.

/**
 * ApplicationFailure types the workflow and its activities throw and tell apart. The values
 * are stored in workflow histories and retry policies: never rename one.
 */
export const FAILURE = {
  /** The status table refuses the action (an update validator); the API answers 409. */
  notAllowed: 'NotAllowed',
  /** A row an activity needs (run, process, template, machine) is gone. */
  notFound: 'NotFound',
  /** The run finished before its slot was granted: no slot is needed any more. */
  runFinished: 'RunFinished',
  machineLost: 'MachineLost',
  launchFailed: 'LaunchFailed',
  hostKeyMismatch: 'HostKeyMismatch',
  /** The "fetch and confirm" step could not read the host key the address presents (unreachable, no SSH). */
  hostKeyUnreadable: 'HostKeyUnreadable',
  machineRemoved: 'MachineRemoved',
  fenced: 'Fenced',
  /**
   * What the trainer wrote cannot be read or stored, the same way on every attempt (a FIFO for a log, data PostgreSQL
   * refuses).
   */
  trainerOutputRejected: 'TrainerOutputRejected',
  /** The trainer wrote no metric line for its template's stallSeconds, and the template restarts stalled runs. */
  stalled: 'Stalled',
  /**
   * The process or run an activity names belongs to another workflow (a restored backup gave its id to a new
   * row): the activity refuses, and the workflow ends without touching it (activities/ownership.ts).
   */
  notOwner: 'NotOwner',
} as const;
export type FailureType = (typeof FAILURE)[keyof typeof FAILURE];

/**
 * Error classes (by `name`) that a start-up step or a CLI command throws when something
 * outside the program is wrong (a setting, a port, a server that is down): their message
 * says what to do, so they are shown as one line without a stack.
 */
export const EXPECTED_ERROR = {
  config: 'ConfigError',
  databaseUnreachable: 'DatabaseUnreachableError',
  temporalUnreachable: 'TemporalUnreachableError',
  temporalConnectionRefused: 'TemporalConnectionRefusedError',
  devServer: 'DevServerError',
  temporalCli: 'TemporalCliError',
  portInUse: 'PortInUseError',
  keybox: 'KeyboxError',
  service: 'ServiceError',
  usage: 'UsageError',
  /** postgres.js: the database refused a start-up statement (rights, disk, a migration it cannot apply). */
  postgres: 'PostgresError',
} as const;
export type ExpectedErrorName = (typeof EXPECTED_ERROR)[keyof typeof EXPECTED_ERROR];

const EXPECTED_NAMES: ReadonlySet<string> = new Set(Object.values(EXPECTED_ERROR));

/** Whether `error` is one of the catalogued expected errors (else it is a bug, shown with its stack). */
export function isExpectedError(error: unknown): error is Error {
  return error instanceof Error && EXPECTED_NAMES.has(error.name);
}
