// The pure reducer against the case table shared with the Python client (same rules, same results).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

import {
  applyBroadcast,
  applySnapshot,
  channelName,
  emptyMatrix,
  getCell,
  hasChannel,
  start,
} from '../src/reducer.js';
import type { AssignmentResults, MatrixState, RefetchRequest } from '../src/types.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;
const doc: Json = JSON.parse(
  readFileSync(new URL('./fixtures/reducer-cases.json', import.meta.url), 'utf8'),
);

const fullCell = (partial: Json): Json => ({ ...doc.cellDefaults, ...partial });
const snapshotOf = (partial: Json): AssignmentResults => ({
  assignmentId: `${doc.groupId}__${doc.lessonId}`,
  groupId: doc.groupId,
  lessonId: doc.lessonId,
  seq: partial.seq ?? null,
  activities: doc.activities,
  pupilIds: partial.pupilIds ?? doc.pupilIds,
  cells: (partial.cells ?? []).map(fullCell),
});
const payloadOf = (event: string, payload: Json): Json => {
  if (event === 'result_cell') return fullCell(payload);
  if (event === 'result_cells' && Array.isArray(payload.cells)) {
    return { ...payload, cells: payload.cells.map(fullCell) };
  }
  return payload;
};
const requestOf = (raw: Json): RefetchRequest => ({
  scope: raw.scope,
  reason: raw.reason,
  pupilId: raw.pupilId ?? null,
  activityId: raw.activityId ?? null,
});

function run(testCase: Json): MatrixState {
  let state = emptyMatrix(doc.groupId, doc.lessonId);
  testCase.steps.forEach((step: Json, index: number) => {
    let effects: RefetchRequest[];
    if (step.op === 'start') [state, effects] = start(state);
    else if (step.op === 'broadcast') {
      [state, effects] = applyBroadcast(state, step.event, payloadOf(step.event, step.payload));
    } else {
      [state, effects] = applySnapshot(state, snapshotOf(step.snapshot), requestOf(step.request));
    }
    expect(effects, `step ${index} (${step.op}) effects`).toEqual(step.expectEffects);
  });
  return state;
}

describe('matrix reducer (shared cases)', () => {
  for (const testCase of doc.cases as Json[]) {
    it(testCase.name, () => {
      const state = run(testCase);
      const want = testCase.expect;
      if ('lastSeq' in want) expect(state.lastSeq).toBe(want.lastSeq);
      if ('loaded' in want) expect(state.loaded).toBe(want.loaded);
      if ('pendingAssignment' in want) {
        expect(state.assignmentRefetchPending).toBe(want.pendingAssignment);
      }
      if ('requiredSeq' in want) expect(state.requiredSeq).toBe(want.requiredSeq);
      if ('pupilIds' in want) expect([...state.pupilIds]).toEqual(want.pupilIds);
      if ('activityIds' in want) {
        expect(state.activities.map((a) => a.activityId)).toEqual(want.activityIds);
      }
      if ('cellCount' in want) expect(Object.keys(state.cells)).toHaveLength(want.cellCount);
      for (const cell of want.cells ?? []) {
        expect(getCell(state, cell.pupilId, cell.activityId)).toMatchObject(cell);
      }
      expect(state.counters).toMatchObject(want.counters ?? {});
    });
  }
});

describe('matrix reducer (immutability)', () => {
  it('never mutates the previous state', () => {
    const [loaded] = applySnapshot(
      start(emptyMatrix(doc.groupId, doc.lessonId))[0],
      snapshotOf({ seq: 1, cells: [{ pupilId: doc.pupilIds[0], activityId: 'act-1' }] }),
      requestOf({ scope: 'assignment', reason: 'initial' }),
    );
    const frozen = JSON.stringify(loaded);
    const cell = fullCell({ pupilId: doc.pupilIds[0], activityId: 'act-1', status: 'submitted', seq: 2, prevSeq: 1 });
    const [next] = applyBroadcast(loaded, 'result_cell', cell);
    expect(JSON.stringify(loaded)).toBe(frozen);
    expect(getCell(next, doc.pupilIds[0], 'act-1')?.status).toBe('submitted');
  });
});

describe('channel names', () => {
  it('name a group and a lesson; a group id with ":" has none (it is polled)', () => {
    expect(channelName('grp-7a', 'lesson:1')).toBe('assignment_results:grp-7a:lesson:1');
    expect(hasChannel('grp-7a')).toBe(true);
    expect(hasChannel('grp:7a')).toBe(false);
  });
});
