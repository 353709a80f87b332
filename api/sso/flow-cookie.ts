// What a browser carries between "Sign in with SSO" and the provider's redirect back: the PKCE
// verifier, state and nonce, sealed (AES-256-GCM under a key derived from TRAINYARD_SECRET)
// so the browser can neither read nor change them, and short-lived.
import crypto from 'node:crypto';

export const FLOW_COOKIE = 'ty_oidc';
export const FLOW_TTL_MS = 10 * 60 * 1000;

export interface FlowState {
  state: string;
  nonce: string;
  verifier: string;
  /** Where to go once signed in (already checked by safeNext). */
  next: string;
  /** Epoch ms after which the flow is void. */
  expires: number;
}

function keyOf(secret: string): Buffer {
  return Buffer.from(crypto.hkdfSync('sha256', secret, 'trainyard', 'oidc-flow-cookie', 32));
}

export function sealFlow(secret: string, flow: FlowState): string {
  const iv = crypto.randomBytes(12);
  const cipher = crypto.createCipheriv('aes-256-gcm', keyOf(secret), iv);
  const body = Buffer.concat([cipher.update(JSON.stringify(flow), 'utf8'), cipher.final()]);
  return [iv, cipher.getAuthTag(), body].map((part) => part.toString('base64url')).join('.');
}

/** The flow, or null when the cookie is missing, forged, damaged or expired. */
export function openFlow(secret: string, sealed: string | undefined, now = Date.now()): FlowState | null {
  if (!sealed) return null;
  const [iv, tag, body, extra] = sealed.split('.').map((part) => Buffer.from(part, 'base64url'));
  if (!iv || !tag || !body || extra || iv.length !== 12 || tag.length !== 16) return null;
  try {
    const decipher = crypto.createDecipheriv('aes-256-gcm', keyOf(secret), iv);
    decipher.setAuthTag(tag);
    const flow = JSON.parse(Buffer.concat([decipher.update(body), decipher.final()]).toString('utf8')) as FlowState;
    const fields = [flow.state, flow.nonce, flow.verifier, flow.next];
    if (fields.some((f) => typeof f !== 'string') || typeof flow.expires !== 'number') return null;
    return flow.expires > now ? flow : null;
  } catch {
    return null;
  }
}
