// Vitest: the hub tests need a running hub (started once by test/hub.setup.ts) and a WebSocket
// global, which Node 20 only has behind --experimental-websocket (Node 22+ has it by default).
import { defineConfig } from 'vitest/config';

const needsWebSocketFlag = typeof (globalThis as { WebSocket?: unknown }).WebSocket === 'undefined';
const execArgv = needsWebSocketFlag ? ['--experimental-websocket'] : [];

export default defineConfig({
  test: {
    globalSetup: ['test/hub.setup.ts'],
    pool: 'forks',
    // Each end-to-end file starts its own stack (PostgreSQL, hub, daemon): one file at a time keeps
    // a 2-core machine from starving them.
    fileParallelism: false,
    poolOptions: { forks: { execArgv } },
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
