// Global setup: one hub (with a throwaway, migrated, seeded database) for the whole vitest run.
// test/support/hub_server.py prints one JSON line and serves until its stdin closes.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import type { TestProject } from 'vitest/node';

export interface HubInfo {
  url: string;
  jwtSecret: string;
  anonKey: string;
  serviceRoleKey: string;
  teacherToken: string;
  pupilToken: string;
  topic: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    hub: HubInfo;
  }
}

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const python = process.env.RESULTS_REALTIME_PYTHON ?? `${repoRoot}.venv/bin/python`;
const script = fileURLToPath(new URL('./support/hub_server.py', import.meta.url));

function firstJsonLine(child: ChildProcessWithoutNullStreams): Promise<HubInfo> {
  return new Promise((resolve, reject) => {
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      if (line.startsWith('{') && line.includes('"url"')) resolve(JSON.parse(line) as HubInfo);
    });
    child.on('exit', (code) =>
      reject(new Error(`hub_server.py exited (${code}) before it was ready:\n${stderr}`)),
    );
    child.on('error', reject);
  });
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const child = spawn(python, [script], { cwd: repoRoot, stdio: ['pipe', 'pipe', 'pipe'] });
  const timeout = setTimeout(() => child.kill('SIGKILL'), 90_000);
  const info = await firstJsonLine(child).finally(() => clearTimeout(timeout));
  project.provide('hub', info);
  return async () => {
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.stdin.end();
    const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    await exited;
    clearTimeout(killer);
  };
}
