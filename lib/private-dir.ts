// The data directory is its owner's alone: it holds the secret that decrypts stored SSH
// keys, the embedded database (sessions, users, encrypted keys), Temporal's state and
// log, and the run directories of the `local` machine. The entry points (bin/) call
// keepDataPrivate first, so every file this process and its children (the Temporal dev
// server, local trainers, PGlite) create there has no group or other permission bits.
import fs from 'node:fs';
import path from 'node:path';

/** Files 0600, directories 0700, whoever creates them. */
export const PRIVATE_UMASK = 0o077;

/** Sets the process umask and tightens a data directory left loose by an older version. */
export function keepDataPrivate(dataDir: string): void {
  process.umask(PRIVATE_UMASK);
  tightenDataDir(dataDir);
}

/**
 * An existing data directory with group or other bits (made before this version, or by
 * hand) is closed along with everything in it. Once closed it stays 0700, so later starts
 * find it tight and walk nothing. A missing one is created later, already private.
 */
export function tightenDataDir(dataDir: string): void {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(dataDir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  if ((stat.mode & 0o077) === 0) return;
  tightenTree(dataDir);
  fs.chmodSync(dataDir, stat.mode & 0o7700);
}

/** Takes the group and other bits off everything under `dir` (not `dir` itself). */
export function tightenTree(dir: string): void {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name);
    // Symbolic links have no modes of their own, and what they point at is not ours to change.
    if (entry.isSymbolicLink()) continue;
    if (entry.isDirectory()) tightenTree(file);
    try {
      const mode = fs.lstatSync(file).mode;
      if (mode & 0o077) fs.chmodSync(file, mode & 0o7700);
    } catch {
      // Gone meanwhile, or another user's file: the closed directory still keeps others out.
    }
  }
}
