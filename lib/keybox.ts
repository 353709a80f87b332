// Encrypts SSH private keys at rest with AES-256-GCM under a key derived from
// TRAINYARD_SECRET (HKDF-SHA256), so a database dump alone reveals no key.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const INFO = Buffer.from('trainyard ssh private keys v1');

function keyFrom(secret: string): Buffer {
  return Buffer.from(crypto.hkdfSync('sha256', Buffer.from(secret), Buffer.alloc(0), INFO, 32));
}

export function encryptSecret(secret: string, plaintext: string): string {
  const iv = crypto.randomBytes(12);
  const cipher = crypto.createCipheriv('aes-256-gcm', keyFrom(secret), iv);
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return `v1.${iv.toString('base64url')}.${cipher.getAuthTag().toString('base64url')}.${body.toString('base64url')}`;
}

export class KeyboxError extends Error {
  override name = 'KeyboxError';
}

export function decryptSecret(secret: string, sealed: string): string {
  const [version, iv, tag, body] = sealed.split('.');
  if (version !== 'v1' || !iv || !tag || body === undefined) throw new KeyboxError('The stored key is not in a known format.');
  try {
    const decipher = crypto.createDecipheriv('aes-256-gcm', keyFrom(secret), Buffer.from(iv, 'base64url'));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString('utf8');
  } catch {
    throw new KeyboxError('The stored SSH key cannot be decrypted: TRAINYARD_SECRET differs from the one it was stored with.');
  }
}

/** Reads a key by a path relative to TRAINYARD_KEYS_DIR; never from anywhere else. */
export function readKeyFile(keysDir: string | null, relative: string): string {
  if (!keysDir) throw new KeyboxError('privateKeyPath needs TRAINYARD_KEYS_DIR to be set.');
  const root = fs.realpathSync(keysDir);
  const file = path.resolve(root, relative);
  let real: string;
  try {
    real = fs.realpathSync(file);
  } catch {
    throw new KeyboxError(`No key file ${relative} in TRAINYARD_KEYS_DIR.`);
  }
  if (!real.startsWith(root + path.sep)) throw new KeyboxError(`The key path ${relative} leaves TRAINYARD_KEYS_DIR.`);
  return fs.readFileSync(real, 'utf8');
}
