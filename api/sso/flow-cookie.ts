// What a browser carries between "Sign in with SSO" and the provider's redirect back: the PKCE
// verifier, state and nonce, sealed (AES-256-GCM under a key derived from TRAINYARD_SECRET)
// so the browser can neither read nor change them, and short-lived. Sealed by the keybox
// (lib/keybox.ts), under a key of its own purpose.
import { decryptSecret, encryptSecret } from '../../lib/keybox.js';

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

const FLOW_INFO = Buffer.from('trainyard oidc flow cookie v1');

export function sealFlow(secret: string, flow: FlowState): string {
  return encryptSecret(secret, JSON.stringify(flow), FLOW_INFO);
}

/** The flow, or null when the cookie is missing, forged, damaged or expired. */
export function openFlow(secret: string, sealed: string | undefined, now = Date.now()): FlowState | null {
  if (!sealed) return null;
  try {
    const flow = JSON.parse(decryptSecret(secret, sealed, FLOW_INFO, 'The sign-in cookie')) as FlowState;
    const fields = [flow.state, flow.nonce, flow.verifier, flow.next];
    if (fields.some((f) => typeof f !== 'string') || typeof flow.expires !== 'number') return null;
    return flow.expires > now ? flow : null;
  } catch {
    return null;
  }
}
