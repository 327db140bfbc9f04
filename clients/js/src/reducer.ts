/**
 * The pure matrix reducer: the same rules as daemon/client/matrix.py, checked against the same
 * case table (test/fixtures/reducer-cases.json).
 *
 * - a message whose seq is not above the last applied seq is a duplicate: ignored;
 * - a cell is replaced only by something newer: a message with a higher seq than the cell's, or a
 *   refetch whose channel seq is at least the cell's;
 * - a prevSeq that is not the last applied seq is a gap: the cells are applied anyway (full state)
 *   and the whole assignment is refetched once; a snapshot that does not cover the gap is refetched
 *   again;
 * - result_refresh refetches the named scope; only a whole-assignment snapshot moves lastSeq.
 */
import type {
  AssignmentResults,
  Cell,
  Counters,
  MatrixState,
  RefetchRequest,
  Scope,
} from './types.js';

export type Step = [MatrixState, RefetchRequest[]];

const STATUSES = new Set(['not_submitted', 'submitted', 'ai_marked', 'teacher_marked']);
const SCOPES = new Set<Scope>(['cell', 'pupil', 'activity', 'assignment']);

/** A message or snapshot that breaks PAYLOAD.md: the client refetches instead of guessing. */
export class MalformedPayload extends Error {}
const Malformed = MalformedPayload;
class Foreign extends Error {}

export const cellKey = (pupilId: string, activityId: string): string => `${pupilId}|${activityId}`;
export const channelName = (groupId: string, lessonId: string): string =>
  `assignment_results:${groupId}:${lessonId}`;

/**
 * A group id with ':' has no channel: its name would not say which group it is for
 * (sql/migrations/0012); such a group's results are polled.
 */
export const hasChannel = (groupId: string): boolean => !groupId.includes(':');
export const assignmentIdOf = (groupId: string, lessonId: string): string =>
  `${groupId}__${lessonId}`;

const ZERO: Counters = { received: 0, applied: 0, duplicates: 0, gaps: 0, refreshes: 0, ignored: 0 };

export function emptyMatrix(groupId: string, lessonId: string): MatrixState {
  return {
    groupId,
    lessonId,
    activities: [],
    pupilIds: [],
    cells: {},
    lastSeq: null,
    requiredSeq: null,
    assignmentRefetchPending: false,
    loaded: false,
    counters: ZERO,
  };
}

function bump(state: MatrixState, key: keyof Counters): MatrixState {
  return { ...state, counters: { ...state.counters, [key]: state.counters[key] + 1 } };
}

/** A number printed as text (a numeric column read as a string): what JSON would write, no more. */
const DECIMAL = /^-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?$/;

function int(payload: Record<string, unknown>, key: string): number {
  const value = payload[key];
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new Malformed(`${key} must be an integer`);
  }
  return value;
}

function optInt(payload: Record<string, unknown>, key: string): number | null {
  return payload[key] === null || payload[key] === undefined ? null : int(payload, key);
}

function optNum(payload: Record<string, unknown>, key: string): number | null {
  const value = payload[key];
  if (value === null || value === undefined) return null;
  // Number() alone also reads '' as 0 and '0x10' as 16, which the Python client does not.
  const number = typeof value === 'string' && DECIMAL.test(value) ? Number(value) : value;
  if (typeof number !== 'number' || !Number.isFinite(number)) {
    throw new Malformed(`${key} must be a number or null`);
  }
  return number;
}

function optBool(payload: Record<string, unknown>, key: string): boolean | null {
  const value = payload[key];
  if (value === null || value === undefined) return null;
  if (typeof value !== 'boolean') throw new Malformed(`${key} must be true, false or null`);
  return value;
}

function optStr(payload: Record<string, unknown>, key: string): string | null {
  const value = payload[key];
  if (value === null || value === undefined) return null;
  if (typeof value !== 'string') throw new Malformed(`${key} must be a string or null`);
  return value;
}

/** Validates a wire cell and stamps the seq it is current at. */
export function parseCell(raw: unknown, seq: number): Cell {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new Malformed('a cell must be an object');
  }
  const c = raw as Record<string, unknown>;
  for (const key of ['pupilId', 'activityId']) {
    if (typeof c[key] !== 'string' || c[key] === '') throw new Malformed(`${key} is required`);
  }
  if (!STATUSES.has(c.status as string)) throw new Malformed('status is not a known status');
  if (c.ai !== null && c.ai !== undefined) {
    if (typeof c.ai !== 'object' || Array.isArray(c.ai)) throw new Malformed('ai must be an object or null');
    const ai = c.ai as Record<string, unknown>;
    optStr(ai, 'model');
    optStr(ai, 'feedbackAt');
    optBool(ai, 'hasFeedback');
  }
  for (const key of ['op', 'source', 'submittedAt', 'changedAt']) optStr(c, key);
  const uploadCount = optInt(c, 'uploadCount') ?? 0;
  return {
    ...(c as unknown as Cell),
    submissionId: optStr(c, 'submissionId'),
    score: optNum(c, 'score'),
    aiScore: optNum(c, 'aiScore'),
    teacherScore: optNum(c, 'teacherScore'),
    uploadCount,
    hasUpload: optBool(c, 'hasUpload') ?? uploadCount > 0,
    needsMarking: optBool(c, 'needsMarking') ?? false,
    seq,
  };
}

function requestAssignment(state: MatrixState, reason: string): Step {
  if (state.assignmentRefetchPending) return [state, []];
  return [
    { ...state, assignmentRefetchPending: true },
    [{ scope: 'assignment', reason, pupilId: null, activityId: null }],
  ];
}

/** The first load, or a reload after a reconnect. */
export function start(state: MatrixState, reason = 'initial'): Step {
  return requestAssignment(state, reason);
}

function sequence(
  state: MatrixState,
  seq: number,
  prev: number | null,
): [MatrixState, boolean, RefetchRequest[]] {
  const last = state.lastSeq;
  if (last !== null && seq <= last) return [bump(state, 'duplicates'), true, []];
  const expectedPrev = prev ?? 0;
  let effects: RefetchRequest[] = [];
  if (last === null) {
    if (expectedPrev > 0) {
      state = { ...state, requiredSeq: Math.max(state.requiredSeq ?? 0, expectedPrev) };
    }
  } else if (expectedPrev !== last) {
    state = bump(state, 'gaps');
    state = { ...state, requiredSeq: Math.max(state.requiredSeq ?? 0, expectedPrev) };
    [state, effects] = requestAssignment(state, 'gap');
  }
  return [{ ...state, lastSeq: seq }, false, effects];
}

function applyCells(state: MatrixState, cells: Cell[], seq: number, prev: number | null): Step {
  let duplicate: boolean;
  let effects: RefetchRequest[];
  [state, duplicate, effects] = sequence(state, seq, prev);
  if (duplicate) return [state, []];
  const merged: Record<string, Cell> = { ...state.cells };
  const pupils = [...state.pupilIds];
  const known = new Set(state.activities.map((a) => a.activityId));
  let unknownActivity = false;
  for (const cell of cells) {
    const key = cellKey(cell.pupilId, cell.activityId);
    const current = merged[key];
    if (current === undefined || current.seq < cell.seq) merged[key] = cell;
    if (!pupils.includes(cell.pupilId)) pupils.push(cell.pupilId);
    if (state.loaded && !known.has(cell.activityId)) unknownActivity = true;
  }
  state = bump({ ...state, cells: merged, pupilIds: pupils }, 'applied');
  if (unknownActivity) {
    const [next, more] = requestAssignment(state, 'unknown_activity');
    return [next, [...effects, ...more]];
  }
  return [state, effects];
}

function applyRefresh(
  state: MatrixState,
  payload: Record<string, unknown>,
  seq: number,
  prev: number | null,
): Step {
  let duplicate: boolean;
  let effects: RefetchRequest[];
  [state, duplicate, effects] = sequence(state, seq, prev);
  if (duplicate) return [state, []];
  state = bump(state, 'refreshes');
  const scope = payload.scope as Scope;
  const reason = typeof payload.reason === 'string' && payload.reason ? payload.reason : 'refresh';
  const pupilId = optStr(payload, 'pupilId');
  const activityId = optStr(payload, 'activityId');
  if (
    scope === 'assignment' ||
    !SCOPES.has(scope) ||
    ((scope === 'cell' || scope === 'pupil') && pupilId === null) ||
    ((scope === 'cell' || scope === 'activity') && activityId === null)
  ) {
    // A refresh carries no cells: a load already under way may have read before its changes, so
    // the snapshot that ends the load must be at least as new as the refresh.
    state = { ...state, requiredSeq: Math.max(state.requiredSeq ?? 0, seq) };
    if (effects.some((e) => e.scope === 'assignment')) return [state, effects];
    const [next, more] = requestAssignment(state, reason);
    return [next, [...effects, ...more]];
  }
  return [
    state,
    [
      ...effects,
      {
        scope,
        reason,
        pupilId: scope === 'cell' || scope === 'pupil' ? pupilId : null,
        activityId: scope === 'cell' || scope === 'activity' ? activityId : null,
      },
    ],
  ];
}

/** One broadcast from the channel: its event name and payload. */
export function applyBroadcast(state: MatrixState, event: string, raw: unknown): Step {
  state = bump(state, 'received');
  const payload = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
  try {
    if (event !== 'result_cell' && event !== 'result_cells' && event !== 'result_refresh') {
      return [bump(state, 'ignored'), []];
    }
    const seq = int(payload, 'seq');
    const prev = optInt(payload, 'prevSeq');
    const found = payload.assignmentId;
    if (found !== undefined && found !== null && found !== assignmentIdOf(state.groupId, state.lessonId)) {
      throw new Foreign();
    }
    if (event === 'result_refresh') return applyRefresh(state, payload, seq, prev);
    let cells: Cell[];
    if (event === 'result_cell') {
      cells = [parseCell(payload, seq)];
    } else {
      if (!Array.isArray(payload.cells)) throw new Malformed('cells must be an array');
      cells = payload.cells.map((c) => parseCell(c, seq));
    }
    return applyCells(state, cells, seq, prev);
  } catch (error) {
    if (error instanceof Foreign) return [bump(state, 'ignored'), []];
    if (error instanceof Malformed) return requestAssignment(state, 'malformed');
    throw error;
  }
}

function inScope(request: RefetchRequest, pupilId: string, activityId: string): boolean {
  switch (request.scope) {
    case 'assignment':
      return true;
    case 'pupil':
      return pupilId === request.pupilId;
    case 'activity':
      return activityId === request.activityId;
    case 'cell':
      return pupilId === request.pupilId && activityId === request.activityId;
  }
}

/** A refetch result for the request's scope. Only an assignment snapshot moves lastSeq. */
export function applySnapshot(
  state: MatrixState,
  snapshot: AssignmentResults,
  request: RefetchRequest,
): Step {
  const snapSeq = snapshot.seq ?? 0;
  if (typeof snapSeq !== 'number' || !Array.isArray(snapshot.cells)) {
    throw new Error('read_assignment_results returned an unexpected shape');
  }
  const cells = snapshot.cells.map((c) => parseCell(c, snapSeq));
  if (request.scope !== 'assignment') {
    const merged: Record<string, Cell> = { ...state.cells };
    for (const cell of cells) {
      if (!inScope(request, cell.pupilId, cell.activityId)) continue;
      const key = cellKey(cell.pupilId, cell.activityId);
      const current = merged[key];
      if (current === undefined || current.seq <= snapSeq) merged[key] = cell;
    }
    const pupils = [...state.pupilIds];
    for (const p of snapshot.pupilIds ?? []) if (!pupils.includes(p)) pupils.push(p);
    return [{ ...state, cells: merged, pupilIds: pupils }, []];
  }
  const activities = [...(snapshot.activities ?? [])].sort(
    (a, b) =>
      (a.position ?? 0) - (b.position ?? 0) ||
      (a.activityId < b.activityId ? -1 : a.activityId > b.activityId ? 1 : 0),
  );
  const activityIds = new Set(activities.map((a) => a.activityId));
  const next: Record<string, Cell> = {};
  for (const cell of cells) next[cellKey(cell.pupilId, cell.activityId)] = cell;
  const pupils = [...(snapshot.pupilIds ?? [])];
  for (const [key, cell] of Object.entries(state.cells)) {
    if (cell.seq > snapSeq && activityIds.has(cell.activityId)) {
      next[key] = cell;
      if (!pupils.includes(cell.pupilId)) pupils.push(cell.pupilId);
    }
  }
  state = {
    ...state,
    activities,
    pupilIds: pupils,
    cells: next,
    lastSeq: Math.max(state.lastSeq ?? 0, snapSeq),
    loaded: true,
    assignmentRefetchPending: false,
  };
  if (state.requiredSeq !== null && snapSeq < state.requiredSeq) {
    return requestAssignment(state, 'gap_not_covered');
  }
  return [{ ...state, requiredSeq: null }, []];
}

/** The cell at (pupil, activity), if known. */
export function getCell(state: MatrixState, pupilId: string, activityId: string): Cell | undefined {
  return state.cells[cellKey(pupilId, activityId)];
}
