// Expected failures, typed, so the API maps them to HTTP codes and the CLI to one line.
// A plain Error escaping a service is a bug.
import { EXPECTED_ERROR } from '../domain/failures.js';

export type ServiceErrorCode =
  'invalid' | 'unauthenticated' | 'forbidden' | 'not_found' | 'not_allowed' | 'conflict' | 'unavailable';

export const HTTP_STATUS: Record<ServiceErrorCode, number> = {
  invalid: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  not_allowed: 409,
  conflict: 409,
  unavailable: 503,
};

export class ServiceError extends Error {
  override name = EXPECTED_ERROR.service;
  constructor(
    readonly code: ServiceErrorCode,
    message: string,
    /** The input field at fault, for 400s. */
    readonly field?: string,
  ) {
    super(message);
  }
}

export const notFound = (what: string, id: unknown) =>
  new ServiceError('not_found', `${what} ${String(id)} does not exist.`);
export const invalid = (field: string, message: string) => new ServiceError('invalid', message, field);
