import { pino, type Logger } from 'pino';

export type { Logger };

// Credentials never reach the log, whatever object a hook logs.
const redact = ['password', '*.password', 'token', '*.token', 'headers.authorization', '*.headers.authorization'];

export function createLogger(level: string, name = 'parley'): Logger {
  return pino({ name, level, redact: { paths: redact, censor: '[redacted]' } });
}
