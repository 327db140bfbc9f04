// How one field of a cell is read, against the case table shared with the Python client.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

import { MalformedPayload, parseCell } from '../src/reducer.js';

interface Case {
  key: string;
  value: unknown;
  expect: unknown;
}
const doc = JSON.parse(
  readFileSync(new URL('./fixtures/cell-parsing.json', import.meta.url), 'utf8'),
) as { cell: Record<string, unknown>; cases: Case[] };

describe('parseCell', () => {
  it.each(doc.cases.map((c) => [`${c.key}=${JSON.stringify(c.value)}`, c] as const))(
    '%s',
    (_, { key, value, expect: expected }) => {
      const raw = { ...doc.cell, [key]: value };
      if (expected === 'malformed') {
        expect(() => parseCell(raw, 1)).toThrow(MalformedPayload);
        return;
      }
      expect((parseCell(raw, 1) as unknown as Record<string, unknown>)[key]).toEqual(expected);
    },
  );
});
