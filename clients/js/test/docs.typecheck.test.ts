// The dashboard guide's code is what teams copy: its snippets must compile against the client as
// it is. They import the app's own Supabase helpers (`@/lib/supabase/*`), which get stubs here.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';

const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const guide = readFileSync(join(packageRoot, '..', '..', 'docs', 'dashboard.md'), 'utf8');

// Inside node_modules, so that the snippets resolve react and supabase-js as the client does.
const workDir = mkdtempSync(join(packageRoot, 'node_modules', '.doc-snippets-'));
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

const STUBS: Record<string, string> = {
  'lib/supabase/server.ts': `import type { SupabaseClient } from '@supabase/supabase-js';
export declare function createClient(): Promise<SupabaseClient>;`,
  'lib/supabase/client.ts': `import type { SupabaseClient } from '@supabase/supabase-js';
export declare function createClient(): SupabaseClient;`,
};

/** The guide's snippets, each under the file name its first line gives (or a made-up one). */
function snippets(): Map<string, string> {
  const found = new Map<string, string>();
  for (const [index, match] of [...guide.matchAll(/```(tsx?)\n([\s\S]*?)```/g)].entries()) {
    const [, language, code] = match;
    const named = /^\/\/ .*\/([\w.-]+\.tsx?)\n/.exec(code);
    const name = named ? named[1] : `snippet-${index}.${language}`;
    // "..." stands for the page's own rendering.
    found.set(name, code.replace(/^\s*\.\.\.\s*$/m, '  return null;'));
  }
  return found;
}

function compile(files: Map<string, string>): string[] {
  for (const [name, text] of [...Object.entries(STUBS), ...files]) {
    mkdirSync(dirname(join(workDir, name)), { recursive: true });
    writeFileSync(join(workDir, name), text);
  }
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    lib: ['lib.es2022.d.ts', 'lib.dom.d.ts', 'lib.dom.iterable.d.ts'],
    jsx: ts.JsxEmit.ReactJSX,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    esModuleInterop: true,
    isolatedModules: true,
    types: ['node'],
    baseUrl: workDir,
    paths: {
      '@results-realtime/client': [join(packageRoot, 'src', 'index.ts')],
      '@results-realtime/client/react': [join(packageRoot, 'src', 'react.ts')],
      '@/*': [join(workDir, '*')],
    },
  };
  const program = ts.createProgram(
    [...files.keys()].map((name) => join(workDir, name)),
    options,
  );
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const text = ts.flattenDiagnosticMessageText(d.messageText, '\n');
    const where = d.file ? `${d.file.fileName.slice(workDir.length + 1)}: ` : '';
    return `${where}TS${d.code} ${text}`;
  });
}

describe('docs/dashboard.md', () => {
  const files = snippets();

  it('has the server action and the page', () => {
    expect([...files.keys()]).toEqual(expect.arrayContaining(['actions.ts']));
    expect([...files.values()].some((code) => code.includes('useAssignmentResults('))).toBe(true);
  });

  it('compiles against the client', () => {
    expect(compile(files)).toEqual([]);
  });
});
