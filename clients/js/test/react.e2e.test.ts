// useAssignmentResults rendered by React (react-dom into a jsdom document) with the real
// supabase-js against the hub and the daemon: it loads, patches on a SQL write, and leaves the
// channel when the component unmounts; a refusal is shown with what refused.
import { createClient } from '@supabase/supabase-js';
import { JSDOM } from 'jsdom';
import { act, createElement, type ReactElement } from 'react';
import { createRoot, type Root } from 'react-dom/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { getCell, type Refetch, refetchErrorCode } from '../src/index.js';
import { type AssignmentResultsView, useAssignmentResults } from '../src/react.js';
import { answer, refetchVia, startStack, type Stack } from './support/stack.js';

let stack: Stack;
// react-dom renders into jsdom's document; everything else (WebSocket, URL) stays Node's own.
const dom = new JSDOM('<!doctype html><body></body>');
Object.assign(globalThis, { window: dom.window, document: dom.window.document });

/**
 * act() for what the test itself does (mount, unmount). Everything in between is driven by the
 * network, as in a browser, where React must not expect act(): the flag is on only meanwhile.
 */
function inAct(work: () => void): void {
  const flags = globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean };
  flags.IS_REACT_ACT_ENVIRONMENT = true;
  try {
    act(work);
  } finally {
    flags.IS_REACT_ACT_ENVIRONMENT = false;
  }
}

beforeAll(async () => {
  stack = await startStack();
}, 120_000);
afterAll(async () => stack?.stop());

/** Renders the hook and lets the test wait until what it returned satisfies a predicate. */
function renderHook(initial: Parameters<typeof useAssignmentResults>) {
  let props = initial;
  const views: AssignmentResultsView[] = [];
  const waiters = new Set<() => void>();
  function Probe(): ReactElement | null {
    const view = useAssignmentResults(...props);
    views.push(view);
    waiters.forEach((wake) => wake());
    return createElement('span', null, view.status);
  }
  const container = document.createElement('div');
  document.body.append(container);
  let root: Root;
  inAct(() => {
    root = createRoot(container);
    root.render(createElement(Probe));
  });
  const until = (predicate: (view: AssignmentResultsView) => boolean, what: string) =>
    new Promise<AssignmentResultsView>((resolve, reject) => {
      const check = () => {
        const last = views.at(-1);
        if (last && predicate(last)) {
          waiters.delete(check);
          clearTimeout(timer);
          resolve(last);
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`${what}: not reached in 15 s (last status ${views.at(-1)?.status})`));
      }, 15_000);
      waiters.add(check);
      check();
    });
  return {
    until,
    views,
    text: () => container.textContent,
    /** Renders again with other props (as a parent would). */
    rerender: (next: Parameters<typeof useAssignmentResults>) => {
      props = next;
      inAct(() => root.render(createElement(Probe)));
    },
    unmount: () => inAct(() => root.unmount()),
  };
}

describe('useAssignmentResults', () => {
  it('loads, patches cells in place and leaves the channel on unmount', async () => {
    const { info } = stack;
    const group = info.groups[1];
    const supabase = createClient(info.hubUrl, info.anonKey, {
      accessToken: async () => group.teacherToken,
    });
    const refetches: string[] = [];
    const hook = renderHook([
      supabase,
      { groupId: group.id, lessonId: info.lessonId },
      { refetch: refetchVia(info, group.teacherToken, refetches) },
    ]);
    const loaded = await hook.until((v) => v.matrix.loaded && v.status === 'subscribed', 'loaded');
    expect(loaded.matrix.pupilIds).toEqual(expect.arrayContaining(group.pupilIds));
    expect(hook.text()).toBe('subscribed');

    const pupil = group.pupilIds[2];
    await answer(info, pupil, 'act-define', 'from the hook test');
    const patched = await hook.until(
      (v) => getCell(v.matrix, pupil, 'act-define')?.status === 'submitted',
      'patched',
    );
    expect(getCell(patched.matrix, pupil, 'act-define')?.needsMarking).toBe(true);
    expect(refetches).toEqual(['assignment']);

    const topic = `realtime:assignment_results:${group.id}:${info.lessonId}`;
    expect(supabase.getChannels().map((c) => c.topic)).toContain(topic);
    await hook.unmount();
    await expect.poll(() => supabase.getChannels().map((c) => c.topic), { timeout: 5_000 }).not.toContain(topic);
    await supabase.removeAllChannels();
  });

  it('never shows the previous assignment after a switch, nor its refetch', async () => {
    const { info } = stack;
    const [a, b] = info.groups;
    const supabase = createClient(info.hubUrl, info.anonKey, {
      accessToken: async () => a.teacherToken,
    });
    const read = refetchVia(info, a.teacherToken);
    let reads = 0;
    const refetch: Refetch = async (args) => (++reads === 2 ? new Promise(() => {}) : read(args));
    const options = { refetch, enabled: false, pollIntervalMs: 100 }; // the 2nd poll never ends
    const hook = renderHook([supabase, { groupId: a.id, lessonId: info.lessonId }, options]);
    await hook.until((v) => v.matrix.loaded && v.refetching, 'loaded, then refetching');
    const before = hook.views.length;
    hook.rerender([supabase, { groupId: b.id, lessonId: info.lessonId }, options]);
    const first = hook.views[before];
    expect(first.matrix.groupId).toBe(b.id);
    expect(first.matrix.loaded).toBe(false);
    expect(first.refetching).toBe(false);
    // a's teacher may not read b's results: b ends denied, with no refetch of a still shown
    const denied = await hook.until((v) => v.status === 'denied', 'denied');
    expect(refetchErrorCode(denied.deniedBy)).toBe('42501');
    expect(denied.refetching).toBe(false);
    expect(hook.views.slice(before).every((v) => v.matrix.groupId === b.id)).toBe(true);
    await hook.unmount();
    await supabase.removeAllChannels();
  });

  it('says why it is denied', async () => {
    const { info } = stack;
    const group = info.groups[0];
    const supabase = createClient(info.hubUrl, info.anonKey, {
      accessToken: async () => group.teacherToken,
    });
    const hook = renderHook([
      supabase,
      { groupId: group.id, lessonId: 'no-such-lesson' },
      { refetch: refetchVia(info, group.teacherToken) },
    ]);
    const denied = await hook.until((v) => v.status === 'denied', 'denied');
    expect(refetchErrorCode(denied.deniedBy)).toBe('P0002');
    expect(String(denied.deniedBy)).toContain('no-such-lesson is not assigned');
    expect(denied.refetching).toBe(false);
    await hook.unmount();
    await supabase.removeAllChannels();
  });
});
