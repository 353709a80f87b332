// A machine's address kept from readers without machines.view: a connection error quotes
// it, so a process's last error shows the machine's name in its place for them.

/**
 * The machine's address out of a text (a connection error quotes it) for readers without
 * machines.view: the full address and its host part become the machine's name.
 */
export function redactAddress(text: string, address: string, name: string): string {
  const host = address.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
  let out = text;
  for (const part of new Set([address, host])) {
    if (part === '' || part === name) continue;
    out = out.split(part).join(name);
  }
  return out;
}

/** A process as a reader without machines.view may see it: no machine address anywhere in it. */
export function withoutAddress<T extends { lastError: string | null; machineAddress: string; machineName: string }>(
  view: T,
): T {
  return view.lastError === null
    ? view
    : { ...view, lastError: redactAddress(view.lastError, view.machineAddress, view.machineName) };
}
