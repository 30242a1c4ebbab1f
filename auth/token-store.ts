// TokenStore port: login tokens, stored by their SHA-256 so a leaked store yields no usable token.
import { createHash, randomBytes } from 'node:crypto';

export interface TokenStore {
  readonly adapter: 'redis' | 'embedded';
  /** Stores a token for the user; it stops working after ttlSeconds or on revoke. */
  save(tokenHash: string, userId: string, ttlSeconds: number): Promise<void>;
  /** The user a token belongs to, or null when unknown, expired or revoked. */
  lookup(tokenHash: string): Promise<string | null>;
  revoke(tokenHash: string): Promise<void>;
  close(): Promise<void>;
}

export const TOKEN_PREFIX = 'pt_';
export const newToken = () => TOKEN_PREFIX + randomBytes(32).toString('base64url');
export const hashToken = (token: string) => createHash('sha256').update(token).digest('hex');
