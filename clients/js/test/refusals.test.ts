// Which join refusals and refetch errors stop a subscription for good: the case tables shared
// with the Python client (tests/test_client_subscription.py reads the same files).
import { readFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import {
  isPermanentRefetchError,
  isPermanentRefusal,
  refetchErrorCode,
  refusalReason,
} from '../src/index.js';

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

interface RefetchErrorCase {
  code: string;
  what: string;
  permanent: boolean;
}
const refetchErrors = (
  JSON.parse(
    readFileSync(new URL('./fixtures/refetch-errors.json', import.meta.url), 'utf8'),
  ) as { cases: RefetchErrorCase[] }
).cases;

describe('refetch errors', () => {
  it.each(refetchErrors)('$code ($what) -> permanent: $permanent', ({ code, permanent }) => {
    // What supabase.rpc returns as `error` (a PostgrestError), thrown by the app's refetch.
    const error = { code, message: 'from PostgREST', details: null, hint: null };
    expect(refetchErrorCode(error)).toBe(code);
    expect(isPermanentRefetchError(error)).toBe(permanent);
    expect(isPermanentRefetchError(Object.assign(new Error('wrapped'), { code }))).toBe(permanent);
  });

  it('retries an error without a code', () => {
    expect(refetchErrorCode(new Error('fetch failed'))).toBeNull();
    expect(isPermanentRefetchError(new Error('fetch failed'))).toBe(false);
    expect(isPermanentRefetchError({ code: 42501 })).toBe(false);
    expect(isPermanentRefetchError(null)).toBe(false);
  });
});
