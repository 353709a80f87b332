// ApplicationFailure types the workflow and its activities tell apart.
export const FAILURE = {
  notAllowed: 'NotAllowed',
  machineLost: 'MachineLost',
  launchFailed: 'LaunchFailed',
  hostKeyMismatch: 'HostKeyMismatch',
  machineRemoved: 'MachineRemoved',
  fenced: 'Fenced',
  /** What the trainer wrote cannot be read or stored, the same way on every attempt (a FIFO for a log, data PostgreSQL refuses). */
  trainerOutputRejected: 'TrainerOutputRejected',
} as const;
