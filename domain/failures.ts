// ApplicationFailure types the workflow and its activities tell apart.
export const FAILURE = {
  notAllowed: 'NotAllowed',
  machineLost: 'MachineLost',
  launchFailed: 'LaunchFailed',
  hostKeyMismatch: 'HostKeyMismatch',
  machineRemoved: 'MachineRemoved',
  fenced: 'Fenced',
} as const;
