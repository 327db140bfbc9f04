// Which join refusals stop a subscription for good: the case table shared with the Python client
// (tests/test_client_subscription.py reads the same file).
import { readFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { isPermanentRefusal, refusalReason } from '../src/index.js';

interface RefusalCase {
  reason: string;
  permanent: boolean;
}
const { cases } = JSON.parse(
  readFileSync(new URL('./fixtures/join-refusals.json', import.meta.url), 'utf8'),
) as { cases: RefusalCase[] };

describe('join refusals', () => {
  it.each(cases)('$reason -> permanent: $permanent', ({ reason, permanent }) => {
    // supabase-js reports a join error reply as an Error whose cause is the reply.
    const error = new Error(reason, { cause: { reason } });
    expect(refusalReason(error)).toBe(reason);
    expect(isPermanentRefusal(reason)).toBe(permanent);
  });

  it('finds no reason in a socket error', () => {
    expect(refusalReason(new Error('WebSocket closed'))).toBeNull();
    expect(refusalReason('Unauthorized: not an Error')).toBeNull();
  });
});
