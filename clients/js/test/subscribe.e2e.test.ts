// subscribeAssignmentResults with the real supabase-js against the hub, fed by the real daemon:
// join, patch, refresh, gap, reconnect, flag-off polling.
import { createHmac } from 'node:crypto';

import { createClient, type SupabaseClient } from '@supabase/supabase-js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import {
  AlreadySubscribedError,
  getCell,
  refetchErrorCode,
  subscribeAssignmentResults,
} from '../src/index.js';
import type {
  AssignmentSubscription,
  ConnectionStatus,
  MatrixState,
  Refetch,
} from '../src/index.js';
import {
  answer,
  broadcast,
  refetchVia,
  reserveSeq,
  startStack,
  type Stack,
  type StackInfo,
} from './support/stack.js';

let stack: Stack;
let info: StackInfo;
const open: { sub: AssignmentSubscription; supabase: SupabaseClient }[] = [];

beforeAll(async () => {
  stack = await startStack();
  info = stack.info;
}, 120_000);
afterAll(async () => stack?.stop());
afterEach(async () => {
  for (const { sub, supabase } of open.splice(0)) {
    await sub.unsubscribe();
    await supabase.removeAllChannels();
  }
});

/** Every WebSocket supabase-js opens, so a test can cut the connection under it. */
const sockets: WebSocket[] = [];
class TrackedWebSocket extends WebSocket {
  constructor(url: string | URL, protocols?: string | string[]) {
    super(url, protocols);
    sockets.push(this);
  }
}

interface Watched {
  sub: AssignmentSubscription;
  statuses: ConnectionStatus[];
  refetches: string[];
  errors: unknown[];
  until(predicate: (state: MatrixState) => boolean, what: string): Promise<MatrixState>;
}

/** An HS256 Supabase user token signed with the stack's JWT secret. */
function userToken(sub: string): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const claims = { role: 'authenticated', sub, iat: now, exp: now + 3600 };
  const body = `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}`;
  return `${body}.${createHmac('sha256', info.jwtSecret).update(body).digest('base64url')}`;
}

function watch(
  groupIndex: number,
  options: {
    enabled?: boolean;
    pollIntervalMs?: number;
    token?: string;
    lessonId?: string;
    /** Wraps the refetch, e.g. to hold a read's answer back. */
    wrapRefetch?: (read: Refetch) => Refetch;
  } = {},
): Watched {
  const group = info.groups[groupIndex];
  const token = options.token ?? group.teacherToken;
  const supabase = createClient(info.hubUrl, info.anonKey, {
    accessToken: async () => token,
    realtime: { transport: TrackedWebSocket as unknown as typeof WebSocket },
  });
  const statuses: ConnectionStatus[] = [];
  const refetches: string[] = [];
  const errors: unknown[] = [];
  const waiters = new Set<() => void>();
  const sub = subscribeAssignmentResults(
    supabase,
    { groupId: group.id, lessonId: options.lessonId ?? info.lessonId },
    {
      refetch: (options.wrapRefetch ?? ((read) => read))(refetchVia(info, token, refetches)),
      onError: (error) => errors.push(error),
      onChange: () => waiters.forEach((wake) => wake()),
      onStatus: (status) => {
        statuses.push(status);
        waiters.forEach((wake) => wake());
      },
    },
    { maxBackoffMs: 500, enabled: options.enabled, pollIntervalMs: options.pollIntervalMs },
  );
  open.push({ sub, supabase });
  const until = (predicate: (state: MatrixState) => boolean, what: string) =>
    new Promise<MatrixState>((resolve, reject) => {
      const check = () => {
        if (predicate(sub.getState())) {
          waiters.delete(check);
          clearTimeout(timer);
          resolve(sub.getState());
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`${what}: not reached in 15 s; state ${JSON.stringify(sub.getState().counters)}`));
      }, 15_000);
      waiters.add(check);
      check();
    });
  return { sub, statuses, refetches, errors, until };
}

/** What the daemon sends for a cell too large to send: a cell-scope result_refresh; its seq. */
async function refreshCell(groupId: string, pupilId: string, activityId: string): Promise<number> {
  const seq = await reserveSeq(info, groupId);
  await broadcast(info, groupId, 'result_refresh', {
    assignmentId: `${groupId}__${info.lessonId}`,
    groupId,
    lessonId: info.lessonId,
    scope: 'cell',
    pupilId,
    activityId,
    reason: 'too_large',
    eventId: `test:${seq}`,
    seq,
    prevSeq: seq - 1,
  });
  return seq;
}

const statusIs = (pupil: string, activity: string, status: string) => (state: MatrixState) =>
  getCell(state, pupil, activity)?.status === status;

describe('subscribeAssignmentResults against the hub and the daemon', () => {
  it('joins, loads the matrix and patches cells in place', async () => {
    const w = watch(0);
    const loaded = await w.until((s) => s.loaded && w.sub.getStatus() === 'subscribed', 'loaded');
    expect(loaded.activities).toHaveLength(6);
    expect(loaded.pupilIds).toHaveLength(14);
    const pupil = info.groups[0].pupilIds[0];
    await answer(info, pupil, 'act-define', 'light and water');
    const state = await w.until(statusIs(pupil, 'act-define', 'submitted'), 'patched');
    expect(getCell(state, pupil, 'act-define')?.needsMarking).toBe(true);
    expect(state.counters.received).toBeGreaterThanOrEqual(1);
    expect(state.counters.gaps).toBe(0);
    expect(w.refetches).toEqual(['assignment']);
    expect(w.statuses).toContain('subscribed');
  });

  it('refetches the cell a result_refresh names', async () => {
    const w = watch(0);
    await w.until((s) => s.loaded && w.sub.getStatus() === 'subscribed', 'loaded');
    const [pupil, other] = info.groups[0].pupilIds.slice(3, 5);
    await answer(info, other, 'act-define', 'so the channel has a seq');
    await w.until(statusIs(other, 'act-define', 'submitted'), 'first message');
    await answer(info, pupil, 'act-explain', 'unseen', true);
    await answer(info, other, 'act-explain', 'unseen too', true);
    const seq = await refreshCell(info.groups[0].id, pupil, 'act-explain');
    const state = await w.until(statusIs(pupil, 'act-explain', 'submitted'), 'refreshed cell');
    expect(state.counters.refreshes).toBe(1);
    expect(state.lastSeq).toBe(seq);
    expect(getCell(state, other, 'act-explain')?.status).toBe('not_submitted');
    expect(w.refetches).toEqual(['assignment', pupil]);
  });

  it('reads a cell again when a second refresh names it while the first read is answering', async () => {
    // The first read of the cell happens at once but its answer is held back; the cell changes,
    // a second refresh names it: that refresh must not be served by the older read.
    let firstReadDone!: () => void;
    const firstRead = new Promise<void>((resolve) => (firstReadDone = resolve));
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let cellReads = 0;
    const w = watch(0, {
      wrapRefetch: (read) => async (args) => {
        const snapshot = await read(args);
        if (args.pupilId !== null && cellReads++ === 0) {
          firstReadDone();
          await held;
        }
        return snapshot;
      },
    });
    await w.until((s) => s.loaded && w.sub.getStatus() === 'subscribed', 'loaded');
    const group = info.groups[0];
    const [pupil, other] = group.pupilIds.slice(7, 9);
    await answer(info, other, 'act-define', 'so the channel has a seq');
    await w.until(statusIs(other, 'act-define', 'submitted'), 'first message');
    const refresh = () => refreshCell(group.id, pupil, 'act-explain');
    await refresh();
    await firstRead;
    await answer(info, pupil, 'act-explain', 'after the first read', true);
    const second = await refresh();
    await w.until((s) => s.lastSeq === second, 'second refresh received');
    release();
    const state = await w.until(statusIs(pupil, 'act-explain', 'submitted'), 'read again');
    expect(state.counters.gaps).toBe(0);
    expect(w.refetches.filter((r) => r === pupil)).toHaveLength(2);
  });

  it('refuses a second subscription to one assignment on one client at once, saying why', async () => {
    // supabase-js hands the second channel() of a topic the first one's object, whose subscribe()
    // never answers: the second subscription would wait in 'connecting' for ever.
    const w = watch(0);
    const { supabase } = open[open.length - 1];
    const group = info.groups[0];
    const again = (onStatus: (status: ConnectionStatus, error?: unknown) => void) => {
      const sub = subscribeAssignmentResults(
        supabase,
        { groupId: group.id, lessonId: info.lessonId },
        { refetch: refetchVia(info, group.teacherToken), onStatus },
      );
      open.push({ sub, supabase });
      return sub;
    };
    const refused: [ConnectionStatus, unknown][] = [];
    const second = again((status, error) => refused.push([status, error]));
    expect(second.getStatus()).toBe('denied');
    expect(refused.at(-1)?.[1]).toBeInstanceOf(AlreadySubscribedError);
    await w.until((s) => s.loaded && w.sub.getStatus() === 'subscribed', 'the first one loads');
    await w.sub.unsubscribe();
    const third = await new Promise<ConnectionStatus>((resolve) => {
      again((status) => {
        if (status === 'subscribed' || status === 'denied') resolve(status);
      });
    });
    expect(third).toBe('subscribed'); // the assignment is free again once the first one ended
  });

  it('refetches the whole assignment once on a gap', async () => {
    const w = watch(0);
    await w.until((s) => s.loaded && w.sub.getStatus() === 'subscribed', 'loaded');
    const [pupil, other] = info.groups[0].pupilIds.slice(5, 7);
    await answer(info, pupil, 'act-define', 'before the gap');
    await w.until(statusIs(pupil, 'act-define', 'submitted'), 'before');
    await answer(info, other, 'act-explain', 'lost with the message', true);
    const lost = await reserveSeq(info, info.groups[0].id);
    await answer(info, pupil, 'act-quiz-1', 'after the gap');
    const state = await w.until(
      (s) =>
        s.counters.gaps === 1 &&
        !s.assignmentRefetchPending &&
        statusIs(other, 'act-explain', 'submitted')(s) &&
        statusIs(pupil, 'act-quiz-1', 'submitted')(s),
      'gap filled',
    );
    expect(state.lastSeq).toBeGreaterThan(lost);
    expect(w.refetches).toEqual(['assignment', 'assignment']);
  });

  it('rejoins after the connection drops and refetches what it missed', async () => {
    const w = watch(1);
    await w.until((s) => s.loaded && w.sub.getStatus() === 'subscribed', 'loaded');
    const [pupil, other] = info.groups[1].pupilIds.slice(0, 2);
    const socket = sockets.at(-1);
    expect(socket).toBeDefined();
    await answer(info, pupil, 'act-quiz-2', 'written while away', true);
    socket?.close(4000, 'test: network drop');
    const state = await w.until(
      (s) => statusIs(pupil, 'act-quiz-2', 'submitted')(s) && w.sub.getStatus() === 'subscribed',
      'rejoined and refetched',
    );
    expect(w.refetches.filter((r) => r === 'assignment').length).toBeGreaterThanOrEqual(2);
    expect(state.loaded).toBe(true);
    await answer(info, other, 'act-define', 'live again');
    await w.until(statusIs(other, 'act-define', 'submitted'), 'live messages after the rejoin');
  });

  it('stops with denied, and does not rejoin, when the policy refuses the join', async () => {
    const pupil = info.groups[0].pupilIds[0];
    const w = watch(0, { token: userToken(pupil) });
    await w.until(() => w.sub.getStatus() === 'denied', 'denied');
    expect(w.statuses.filter((s) => s === 'denied')).toHaveLength(1);
    expect(w.statuses).not.toContain('subscribed');
    // The channel is gone, so supabase-js has nothing to rejoin.
    expect(open.at(-1)?.supabase.getChannels()).toHaveLength(0);
    expect(w.refetches).toEqual([]);
  });

  it('stops with denied when the database refuses the refetch for good', async () => {
    // A teacher of the group may join any of its channels, but this lesson is not assigned.
    const w = watch(0, { lessonId: 'no-such-lesson' });
    await w.until(() => w.sub.getStatus() === 'denied', 'denied');
    expect(w.statuses).toContain('subscribed');
    expect(w.refetches).toEqual(['assignment']); // not retried
    expect(w.errors.map(refetchErrorCode)).toEqual(['P0002']);
    expect(open.at(-1)?.supabase.getChannels()).toHaveLength(0);
  });

  it('polls without subscribing when realtime is switched off', async () => {
    const w = watch(1, { enabled: false, pollIntervalMs: 100 });
    await w.until((s) => s.loaded, 'loaded by polling');
    const pupil = info.groups[1].pupilIds[5];
    await answer(info, pupil, 'act-photo', 'polled', true);
    const state = await w.until(statusIs(pupil, 'act-photo', 'submitted'), 'polled change');
    expect(w.sub.getStatus()).toBe('polling');
    expect(state.counters.received).toBe(0);
    expect(open.at(-1)?.supabase.getChannels()).toHaveLength(0);
  });
});
