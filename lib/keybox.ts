// Encrypts SSH private keys, templates' secret env values and webhook secrets at rest with AES-256-GCM
// under keys derived from TRAINYARD_SECRET (HKDF-SHA256, one per purpose), so a
// database dump alone reveals neither.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { EXPECTED_ERROR } from '../domain/failures.js';

const INFO = Buffer.from('trainyard ssh private keys v1');
const ENV_INFO = Buffer.from('trainyard template secret env v1');
const CHANNEL_INFO = Buffer.from('trainyard notification channel secret v1');

function keyFrom(secret: string, info: Buffer = INFO): Buffer {
  return Buffer.from(crypto.hkdfSync('sha256', Buffer.from(secret), Buffer.alloc(0), info, 32));
}

export function encryptSecret(secret: string, plaintext: string, info: Buffer = INFO): string {
  const iv = crypto.randomBytes(12);
  const cipher = crypto.createCipheriv('aes-256-gcm', keyFrom(secret, info), iv);
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return `v1.${iv.toString('base64url')}.${cipher.getAuthTag().toString('base64url')}.${body.toString('base64url')}`;
}

export class KeyboxError extends Error {
  override name = EXPECTED_ERROR.keybox;
}

export function decryptSecret(
  secret: string,
  sealed: string,
  info: Buffer = INFO,
  what = 'The stored SSH key',
): string {
  const [version, iv, tag, body] = sealed.split('.');
  if (version !== 'v1' || !iv || !tag || body === undefined) throw new KeyboxError(`${what} is not in a known format.`);
  try {
    const decipher = crypto.createDecipheriv('aes-256-gcm', keyFrom(secret, info), Buffer.from(iv, 'base64url'));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString('utf8');
  } catch {
    throw new KeyboxError(`${what} cannot be decrypted: TRAINYARD_SECRET differs from the one it was stored with.`);
  }
}

/** Seals a template's secret env value for the database. */
export function sealEnvValue(secret: string, value: string): string {
  return encryptSecret(secret, value, ENV_INFO);
}

/** Opens a template's sealed secret env (name → sealed value); only a launching trainer needs this. */
export function openSecretEnv(
  secret: string,
  sealed: Record<string, string> | null | undefined,
): Record<string, string> {
  return Object.fromEntries(
    Object.entries(sealed ?? {}).map(([name, value]) => [
      name,
      decryptSecret(secret, value, ENV_INFO, `The secret env variable ${name}`),
    ]),
  );
}

/** Seals a webhook channel's signing secret for the database. */
export function sealChannelSecret(secret: string, value: string): string {
  return encryptSecret(secret, value, CHANNEL_INFO);
}

/** Opens a webhook channel's signing secret; only the delivering activity needs it. */
export function openChannelSecret(secret: string, sealed: string): string {
  return decryptSecret(secret, sealed, CHANNEL_INFO, 'The stored webhook secret');
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
