// Every error a client can see, with the code it maps to in each protocol (PROTOCOL.md).
export type ErrorCode =
  | 'bad_request'
  | 'forbidden'
  | 'too_large'
  | 'rate_limited'
  | 'unknown_recipient'
  | 'unavailable'
  | 'unauthorized'
  | 'not_found'
  | 'conflict'
  | 'internal';

const httpStatus: Record<ErrorCode, number> = {
  bad_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  too_large: 413,
  unknown_recipient: 404,
  rate_limited: 429,
  internal: 500,
  unavailable: 503,
};

export class ParleyError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
  get status(): number {
    return httpStatus[this.code];
  }
}

export const badRequest = (m: string) => new ParleyError('bad_request', m);
export const forbidden = (m: string) => new ParleyError('forbidden', m);
export const tooLarge = (m: string) => new ParleyError('too_large', m);
export const rateLimited = (m: string) => new ParleyError('rate_limited', m);
export const unknownRecipient = (m: string) => new ParleyError('unknown_recipient', m);
export const unavailable = (m: string) => new ParleyError('unavailable', m);
export const unauthorized = (m: string) => new ParleyError('unauthorized', m);
export const notFound = (m: string) => new ParleyError('not_found', m);
export const conflict = (m: string) => new ParleyError('conflict', m);

/** Any thrown value as a ParleyError; unknown failures become `unavailable` (a backend broke) without details. */
export function asParleyError(err: unknown): ParleyError {
  if (err instanceof ParleyError) return err;
  return new ParleyError('unavailable', 'the service is temporarily unavailable');
}

/** CONNACK return codes of MQTT 3.1.1 [MQTT-3.2.2.3]. */
export const Connack = { badUsernameOrPassword: 4, notAuthorized: 5, identifierRejected: 2, serverUnavailable: 3 } as const;

/** An error Aedes turns into a CONNACK with this return code. */
export function connackError(returnCode: number, message: string): Error & { returnCode: number } {
  return Object.assign(new Error(message), { returnCode });
}
