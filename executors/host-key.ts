// SSH host keys as operators see them: "SHA256:<base64 without padding>" of
// the raw public key blob, exactly what `ssh-keygen -lf` prints. Pinned
// fingerprints are compared in constant time, and the UI's "fetch and
// confirm" step reads a server's fingerprint without authenticating.

import { createHash, timingSafeEqual } from 'node:crypto';
import { NodeSSH } from 'node-ssh';
import { ExecutorError } from './types.js';

const FINGERPRINT = /^SHA256:([A-Za-z0-9+/]{43})=?$/;

export function fingerprintOf(keyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`;
}

/** The 32-byte digest of a "SHA256:…" fingerprint; INVALID_ARGUMENT for anything else. */
export function parseFingerprint(fingerprint: string): Buffer {
  const m = FINGERPRINT.exec(fingerprint.trim());
  const digest = m ? Buffer.from(m[1] ?? '', 'base64') : null;
  if (!digest || digest.length !== 32) {
    throw new ExecutorError(
      'INVALID_ARGUMENT',
      `not a SHA256 host key fingerprint: ${JSON.stringify(fingerprint)} (expected "SHA256:" and 43 base64 characters, as ssh-keygen -lf prints)`,
    );
  }
  return digest;
}

export function fingerprintMatches(keyBlob: Buffer, pinned: Buffer): boolean {
  const digest = createHash('sha256').update(keyBlob).digest();
  return digest.length === pinned.length && timingSafeEqual(digest, pinned);
}

/** The key type named at the start of an SSH public key blob, e.g. "ssh-ed25519". */
export function keyTypeOf(keyBlob: Buffer): string {
  if (keyBlob.length < 4) return 'unknown';
  const len = keyBlob.readUInt32BE(0);
  return len > 0 && len < 64 && 4 + len <= keyBlob.length ? keyBlob.subarray(4, 4 + len).toString('latin1') : 'unknown';
}

export interface FetchedHostKey {
  fingerprint: string;
  keyType: string;
}

/**
 * The fingerprint of the host key a server presents to Trainyard (the same
 * key negotiation as later connections, so the same key type). Nothing is
 * authenticated: the handshake is abandoned right after the key arrives.
 */
export async function fetchHostKeyFingerprint(
  host: string,
  port = 22,
  options: { timeoutMs?: number } = {},
): Promise<FetchedHostKey> {
  let presented: FetchedHostKey | undefined;
  const ssh = new NodeSSH();
  try {
    await ssh.connect({
      host,
      port,
      username: 'trainyard-host-key-fetch',
      readyTimeout: options.timeoutMs ?? 10_000,
      hostVerifier: (key: Buffer) => {
        presented = { fingerprint: fingerprintOf(key), keyType: keyTypeOf(key) };
        return false;
      },
    });
  } catch (e) {
    if (presented) return presented;
    throw new ExecutorError('UNREACHABLE', `cannot fetch the host key of ${host}:${port}: ${(e as Error).message}`, {
      cause: e,
    });
  } finally {
    ssh.dispose();
  }
  // A server that skipped host key verification would be a broken SSH server.
  throw new ExecutorError(
    'UNREACHABLE',
    `${host}:${port} completed a handshake without presenting a verifiable host key`,
  );
}
