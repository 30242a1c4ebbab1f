// The records of an AppendLog file as its next open would read them: up to the first NUL (the zero-filled
// space ahead of the records while the log is open), one per line.
import fs from 'node:fs';

export function logRecords(file: string): string[] {
  const bytes = fs.readFileSync(file);
  const zero = bytes.indexOf(0);
  return bytes
    .toString('utf8', 0, zero < 0 ? bytes.length : zero)
    .split('\n')
    .filter((l) => l.length > 0);
}
