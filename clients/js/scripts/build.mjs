// Bundles the demo page (page/main.ts + the reference client + supabase-js) into dist/, so the
// demo server serves everything itself: no CDN. Run by `npm run build` (from `make install-js`).
import { copyFile, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist');
await mkdir(out, { recursive: true });
await build({
  entryPoints: [join(root, 'page', 'main.ts')],
  outfile: join(out, 'demo-page.js'),
  bundle: true,
  format: 'iife',
  platform: 'browser',
  target: ['es2020'],
  minify: true,
  sourcemap: false,
  legalComments: 'eof',
  logLevel: 'warning',
});
await copyFile(join(root, 'page', 'index.html'), join(out, 'index.html'));
await copyFile(join(root, 'page', 'page.css'), join(out, 'page.css'));
console.log(`built ${join(out, 'demo-page.js')}`);
