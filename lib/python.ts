// Finding a Python that can run the PyTorch demo trainer on this machine. Asked once, at
// seed time: `find_spec` only looks the packages up (milliseconds), importing torch would
// take seconds.
import { execFile } from 'node:child_process';

/** Debian's interpreter first (its python3-torch is what the demo is tested with), then the one on PATH. */
export const PYTHON_CANDIDATES = ['/usr/bin/python3', 'python3'];

const PROBE = [
  'import importlib.util, sys',
  "sys.exit(3) if any(importlib.util.find_spec(m) is None for m in ('torch', 'sklearn')) else print(sys.executable)",
].join('\n');

/** The absolute path of the first candidate that has torch and scikit-learn, or null. */
export async function findTorchPython(candidates: readonly string[] = PYTHON_CANDIDATES): Promise<string | null> {
  for (const candidate of candidates) {
    const found = await new Promise<string | null>((resolve) => {
      execFile(candidate, ['-c', PROBE], { timeout: 10_000, encoding: 'utf8' }, (error, stdout) => {
        const executable = stdout.trim();
        resolve(!error && executable.startsWith('/') ? executable : null);
      });
    });
    if (found) return found;
  }
  return null;
}
