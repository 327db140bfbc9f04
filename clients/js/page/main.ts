/**
 * The demo's results page: the reference client on supabase-js against the local hub, with the
 * refetch going to the demo server's endpoint (there is no PostgREST locally). Bundled by esbuild
 * into dist/demo-page.js at install time; no CDN.
 */
import { createClient } from '@supabase/supabase-js';

import { cellKey, refusalReason, subscribeAssignmentResults } from '../src/index.js';
import type { AssignmentResults, Cell, ConnectionStatus, MatrixState, Refetch } from '../src/index.js';

interface PageConfig {
  supabaseUrl: string;
  anonKey: string;
  accessToken: string;
  groupId: string;
  lessonId: string;
  enabled: boolean;
  pollIntervalMs: number;
  title: string;
  names: Record<string, string>;
  groups: { id: string; name: string; href: string }[];
}

const GLYPHS: Record<Cell['status'], string> = {
  not_submitted: '·',
  submitted: '●',
  ai_marked: '◆',
  teacher_marked: '★',
};
const STATUS_WORDS: Record<Cell['status'], string> = {
  not_submitted: 'not submitted',
  submitted: 'submitted',
  ai_marked: 'AI-marked',
  teacher_marked: 'teacher-marked',
};

/** What a screen reader says of a cell: the glyphs and the highlight say it only to the eye. */
function cellWords(cell: Cell | undefined): string {
  const words = [STATUS_WORDS[cell?.status ?? 'not_submitted']];
  if (cell?.score !== null && cell?.score !== undefined) words.push(`score ${cell.score}`);
  if (cell?.hasUpload) words.push(`${cell.uploadCount} ${cell.uploadCount === 1 ? 'file' : 'files'}`);
  if (cell?.needsMarking) words.push('needs marking');
  return words.join(', ');
}

const $ = <T extends HTMLElement>(selector: string): T => {
  const element = document.querySelector<T>(selector);
  if (!element) throw new Error(`missing ${selector}`);
  return element;
};

async function main(): Promise<void> {
  const response = await fetch(`/config.json${window.location.search}`);
  if (!response.ok) throw new Error(`config: ${response.status} ${await response.text()}`);
  const config = (await response.json()) as PageConfig;
  $('#title').textContent = config.title;
  document.title = `${config.title} · live`;
  $('#groups').replaceChildren(
    ...config.groups.map((group) => {
      const link = document.createElement('a');
      link.href = group.href;
      link.textContent = group.name;
      if (group.id === config.groupId) link.setAttribute('aria-current', 'page');
      return link;
    }),
  );

  const supabase = createClient(config.supabaseUrl, config.anonKey, {
    accessToken: async () => config.accessToken,
  });

  const refetch: Refetch = async (args) => {
    const res = await fetch('/api/read_assignment_results', {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${config.accessToken}`,
      },
      body: JSON.stringify({
        group_id: args.groupId,
        lesson_id: args.lessonId,
        pupil_id: args.pupilId,
        activity_id: args.activityId,
      }),
    });
    if (!res.ok) {
      // { message, code }: the code (a SQLSTATE) tells the client whether to retry.
      const { message, code } = errorBody(await res.text());
      throw Object.assign(new Error(`refetch failed: ${res.status} ${message}`), { code });
    }
    return (await res.json()) as AssignmentResults;
  };

  let messages = 0;
  let lastState: MatrixState | null = null;
  subscribeAssignmentResults(
    supabase,
    { groupId: config.groupId, lessonId: config.lessonId },
    {
      refetch,
      onChange: (state) => {
        messages = state.counters.received;
        lastState = state;
        if (state.loaded) $('#load-error').hidden = true;
        render(state, config.names);
        $('#messages').textContent = String(messages);
      },
      onStatus: (status: ConnectionStatus, error?: unknown) => {
        const badge = $('#connection');
        badge.dataset.state = status;
        // A denied join or refetch is final: say why (e.g. not a teacher of the group).
        badge.textContent =
          status === 'denied' ? `denied: ${refusalReason(error) ?? String(error)}` : status;
      },
      onRefetching: (active) => {
        $('#refetch-notice').hidden = !active;
      },
      onError: (error) => {
        console.warn('results:', error);
        // Until the first load succeeds the table is empty: say why rather than look "subscribed".
        if (!lastState?.loaded) {
          const notice = $('#load-error');
          notice.textContent = `could not load the results (${errorText(error)}); retrying`;
          notice.hidden = false;
        }
      },
    },
    { enabled: config.enabled, pollIntervalMs: config.pollIntervalMs },
  );
  (window as unknown as { resultsState: () => MatrixState | null }).resultsState = () => lastState;
}

function errorText(error: unknown): string {
  if (typeof error === 'object' && error !== null && 'message' in error) {
    return String((error as { message: unknown }).message);
  }
  return String(error);
}

/** The demo server's { message, code }, or the text of an error that is not JSON (a 500). */
function errorBody(text: string): { message: string; code?: string } {
  try {
    const body = JSON.parse(text) as { message?: unknown; code?: unknown };
    return {
      message: typeof body.message === 'string' ? body.message : text,
      code: typeof body.code === 'string' ? body.code : undefined,
    };
  } catch {
    return { message: text };
  }
}

function render(state: MatrixState, names: Record<string, string>): void {
  $('#last-seq').textContent = state.lastSeq === null ? '-' : String(state.lastSeq);
  const head = $('#matrix thead');
  const headRow = document.createElement('tr');
  const corner = th('pupil');
  corner.scope = 'col';
  headRow.append(corner);
  for (const activity of state.activities) {
    const cell = th(activity.title);
    cell.scope = 'col';
    const kind = document.createElement('small');
    kind.textContent = activity.kind;
    cell.append(kind);
    headRow.append(cell);
  }
  head.replaceChildren(headRow);

  const body = $<HTMLTableSectionElement>('#matrix tbody');
  const existing = new Map<string, HTMLTableRowElement>();
  for (const row of Array.from(body.rows)) existing.set(row.dataset.pupil ?? '', row);
  const rows: HTMLTableRowElement[] = [];
  let needs = 0;
  for (const pupilId of state.pupilIds) {
    const row = existing.get(pupilId) ?? document.createElement('tr');
    row.dataset.pupil = pupilId;
    const cells: HTMLTableCellElement[] = [];
    const name = document.createElement('th');
    name.scope = 'row';
    name.className = 'pupil';
    name.textContent = names[pupilId] ?? pupilId.slice(0, 8);
    cells.push(name);
    for (const activity of state.activities) {
      const cell = state.cells[cellKey(pupilId, activity.activityId)];
      if (cell?.needsMarking) needs += 1;
      cells.push(td(cell, pupilId, activity.activityId));
    }
    row.replaceChildren(...cells);
    rows.push(row);
  }
  body.replaceChildren(...rows);
  $('#needs-marking').textContent = String(needs);
}

function th(text: string): HTMLTableCellElement {
  const cell = document.createElement('th');
  cell.textContent = text;
  return cell;
}

function td(cell: Cell | undefined, pupilId: string, activityId: string): HTMLTableCellElement {
  const out = document.createElement('td');
  const span = document.createElement('span');
  span.className = 'cell';
  span.dataset.pupil = pupilId;
  span.dataset.activity = activityId;
  span.dataset.status = cell?.status ?? 'not_submitted';
  span.dataset.needsMarking = String(cell?.needsMarking ?? false);
  span.dataset.hasUpload = String(cell?.hasUpload ?? false);
  span.dataset.seq = String(cell?.seq ?? '');
  const shown = document.createElement('span');
  shown.setAttribute('aria-hidden', 'true');
  shown.textContent = GLYPHS[cell?.status ?? 'not_submitted'];
  if (cell?.score !== null && cell?.score !== undefined) shown.textContent += ` ${cell.score}`;
  if (cell?.hasUpload) {
    const upload = document.createElement('span');
    upload.className = 'upload';
    upload.textContent = `⇪${cell.uploadCount}`;
    shown.append(upload);
  }
  const said = document.createElement('span');
  said.className = 'sr-only';
  said.textContent = cellWords(cell);
  span.append(shown, said);
  out.append(span);
  return out;
}

main().catch((error) => {
  console.error(error);
  const badge = document.querySelector<HTMLElement>('#connection');
  if (badge) {
    badge.dataset.state = 'reconnecting';
    badge.textContent = `error: ${String(error)}`;
  }
});
