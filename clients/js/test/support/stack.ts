// The demo's stack (seeded school, hub, daemon, demo web page) for end-to-end tests, started by
// test/support/hub_server.py --stack; plus SQL writes through psql (the tests act as the app,
// Storage and the AI worker would: plain SQL).
import { execFile, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import type { AssignmentResults, Refetch } from '../../src/index.js';

export interface StackGroup {
  id: string;
  name: string;
  pageUrl: string;
  teacherId: string;
  teacherToken: string;
  pupilIds: string[];
}

export interface StackInfo {
  databaseUrl: string;
  jwtSecret: string;
  hubUrl: string;
  webUrl: string;
  anonKey: string;
  serviceRoleKey: string;
  lessonId: string;
  groups: StackGroup[];
}

export interface Stack {
  info: StackInfo;
  stop(): Promise<void>;
}

const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
const python = process.env.RESULTS_REALTIME_PYTHON ?? `${repoRoot}.venv/bin/python`;
const script = fileURLToPath(new URL('./hub_server.py', import.meta.url));

export async function startStack(): Promise<Stack> {
  const child: ChildProcessWithoutNullStreams = spawn(python, [script, '--stack'], {
    cwd: repoRoot,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const info = await new Promise<StackInfo>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`stack not ready in 90 s:\n${stderr}`)), 90_000);
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (!line.startsWith('{')) return;
      const event = JSON.parse(line) as { event?: string };
      if (event.event === 'demo.ready') {
        clearTimeout(timer);
        resolve(event as unknown as StackInfo);
      }
    });
    child.on('exit', (code) => reject(new Error(`stack exited (${code}):\n${stderr}`)));
  });
  return {
    info,
    async stop() {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.stdin.end();
      const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(killer);
    },
  };
}

/** Runs SQL through psql; values go in as psql variables (:'name'), never spliced into SQL. */
export function sql(
  info: StackInfo,
  statement: string,
  vars: Record<string, string | number> = {},
): Promise<string> {
  const args = ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', info.databaseUrl];
  for (const [name, value] of Object.entries(vars)) args.push('-v', `${name}=${value}`);
  return new Promise((resolve, reject) => {
    const child = execFile('psql', [...args, '-f', '-'], (error, stdout, stderr) => {
      if (error) reject(new Error(`psql failed: ${stderr || error.message}`));
      else resolve(stdout.trim());
    });
    child.stdin?.end(statement);
  });
}

export const answer = (info: StackInfo, pupil: string, activity: string, text: string, silent = false) =>
  sql(
    info,
    `${silent ? 'set session_replication_role = replica;' : ''}
     insert into public.submissions (activity_id, user_id, body)
     values (:'activity', :'pupil', jsonb_build_object('text', :'text'::text))
     on conflict (activity_id, user_id) do update set body = excluded.body, updated_at = now();`,
    { activity, pupil, text },
  );

export const upload = (info: StackInfo, pupil: string, activity: string, file: string) =>
  sql(
    info,
    `insert into storage.objects (bucket_id, name, owner, metadata)
     values ('submissions', :'name', :'pupil', '{}');`,
    { name: `${info.lessonId}/${activity}/${pupil}/${file}`, pupil },
  );

export const deleteUpload = (info: StackInfo, pupil: string, activity: string, file: string) =>
  sql(info, `delete from storage.objects where bucket_id = 'submissions' and name = :'name';`, {
    name: `${info.lessonId}/${activity}/${pupil}/${file}`,
  });

/** Takes the channel's next seq away from the daemon, as if its message had been lost. */
export async function reserveSeq(info: StackInfo, groupId: string): Promise<number> {
  const out = await sql(
    info,
    `update results_realtime.channel_sequences set last_seq = last_seq + 1
     where channel = :'channel' returning last_seq;`,
    { channel: `assignment_results:${groupId}:${info.lessonId}` },
  );
  if (!out) throw new Error('the channel has no seq yet: write something first');
  return Number(out);
}

/** What the daemon does: a REST batch broadcast with the service role. */
export async function broadcast(info: StackInfo, groupId: string, event: string, payload: unknown) {
  const response = await fetch(`${info.hubUrl}/realtime/v1/api/broadcast`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      authorization: `Bearer ${info.serviceRoleKey}`,
      apikey: info.serviceRoleKey,
    },
    body: JSON.stringify({
      messages: [
        { topic: `assignment_results:${groupId}:${info.lessonId}`, event, payload, private: true },
      ],
    }),
  });
  if (response.status !== 202) throw new Error(`broadcast: ${response.status} ${await response.text()}`);
}

/** The injected refetch: the demo server's endpoint, under the teacher's token. */
export function refetchVia(info: StackInfo, token: string, calls: string[] = []): Refetch {
  return async (args) => {
    calls.push(args.pupilId ?? args.activityId ?? 'assignment');
    const response = await fetch(`${info.webUrl}/api/read_assignment_results`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({
        group_id: args.groupId,
        lesson_id: args.lessonId,
        pupil_id: args.pupilId,
        activity_id: args.activityId,
      }),
    });
    if (!response.ok) {
      // The demo server answers { message, code } (the SQLSTATE, as PostgREST's error.code);
      // an error it did not expect is plain text.
      const text = await response.text();
      let body: { message?: string; code?: string } = {};
      try {
        body = JSON.parse(text) as typeof body;
      } catch {
        body = { message: text };
      }
      throw Object.assign(new Error(`refetch ${response.status}: ${body.message ?? text}`), {
        code: body.code,
      });
    }
    return (await response.json()) as AssignmentResults;
  };
}
