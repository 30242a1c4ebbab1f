/**
 * node:assert/strict, with one change: `assert(value)` and `assert.ok(value)` without a message get one.
 *
 * Without a message, node builds one from the failing line's source: it reads the test file and parses
 * it with acorn from the failing column onwards. On a TypeScript file run through tsx that parse can
 * spin for many minutes at full CPU (seen with test/attachments.test.ts under node 20), so a failing
 * assertion hung the run instead of failing the test. The stack trace still names the line.
 */
import strict from 'node:assert/strict';
import { inspect } from 'node:util';

function ok(value: unknown, message?: string | Error): asserts value {
  if (value) return;
  strict.ok(value, message ?? `expected a truthy value, got ${inspect(value, { depth: 2, breakLength: Infinity })}`);
}

const assert: typeof strict = Object.assign(ok, strict, { ok, strict: undefined as unknown as typeof strict });
assert.strict = assert;

export default assert;
