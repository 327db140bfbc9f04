// supabase-js (realtime-js, vsn 2.0.0) against the local hub: join, deny, receive, send.
import { createClient, type RealtimeChannel, type SupabaseClient } from '@supabase/supabase-js';
import { afterEach, describe, expect, inject, it } from 'vitest';

const hub = inject('hub');
const clients: SupabaseClient[] = [];

type Status = { status: string; err?: Error };
type Broadcast = { type: string; event: string; payload: unknown; meta?: unknown };

/** A client whose realtime token is `token`, set before any join (as Supabase docs advise). */
async function client(token: string): Promise<SupabaseClient> {
  const supabase = createClient(hub.url, hub.anonKey, {
    accessToken: async () => token,
    realtime: { heartbeatIntervalMs: 5_000 },
  });
  clients.push(supabase);
  await supabase.realtime.setAuth();
  return supabase;
}

/** Subscribe and resolve with the first status; broadcasts are queued for `next()`. */
function subscribe(channel: RealtimeChannel): {
  status: Promise<Status>;
  next: () => Promise<Broadcast>;
} {
  const queue: Broadcast[] = [];
  const waiters: ((b: Broadcast) => void)[] = [];
  channel.on('broadcast', { event: '*' }, (message) => {
    const waiter = waiters.shift();
    if (waiter) waiter(message as Broadcast);
    else queue.push(message as Broadcast);
  });
  const status = new Promise<Status>((resolve) => {
    channel.subscribe((s, err) => resolve({ status: s, err }));
  });
  const next = () =>
    new Promise<Broadcast>((resolve) => {
      const queued = queue.shift();
      if (queued) resolve(queued);
      else waiters.push(resolve);
    });
  return { status, next };
}

async function postBatch(messages: object[], token = hub.serviceRoleKey): Promise<number> {
  const resp = await fetch(`${hub.url}/realtime/v1/api/broadcast`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    body: JSON.stringify({ messages }),
  });
  return resp.status;
}

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.removeAllChannels()));
});

describe('supabase-js against the hub', () => {
  it('connects with vsn 2.0.0', async () => {
    const supabase = await client(hub.anonKey);
    expect(supabase.realtime.vsn).toBe('2.0.0');
  });

  it("lets a teacher join the group's private channel and receive REST broadcasts", async () => {
    const channel = (await client(hub.teacherToken)).channel(hub.topic, { config: { private: true } });
    const sub = subscribe(channel);
    expect((await sub.status).status).toBe('SUBSCRIBED');
    const payload = { cell: { score: 0.75, text: 'Größe ✓' }, seq: 3, nested: [1, { a: null }] };
    expect(await postBatch([{ topic: hub.topic, event: 'cell', payload, private: true }])).toBe(202);
    expect(await sub.next()).toEqual({ type: 'broadcast', event: 'cell', payload });
  });

  it('refuses a pupil with Realtime’s Unauthorized reason', async () => {
    const channel = (await client(hub.pupilToken)).channel(hub.topic, { config: { private: true } });
    const { status, err } = await subscribe(channel).status;
    expect(status).toBe('CHANNEL_ERROR');
    expect(err?.message).toBe(
      `Unauthorized: You do not have permissions to read from this Channel topic: ${hub.topic}`,
    );
  });

  it('delivers a broadcast sent by another supabase-js client (kind 3 in, kind 4 out)', async () => {
    const topic = `room:js:${Math.random().toString(36).slice(2)}`;
    const receiver = subscribe((await client(hub.anonKey)).channel(topic));
    const sender = (await client(hub.anonKey)).channel(topic, { config: { broadcast: { ack: true } } });
    const senderSub = subscribe(sender);
    expect((await receiver.status).status).toBe('SUBSCRIBED');
    expect((await senderSub.status).status).toBe('SUBSCRIBED');
    const result = await sender.send({ type: 'broadcast', event: 'move', payload: { x: 1, y: 'ü' } });
    expect(result).toBe('ok');
    expect(await receiver.next()).toEqual({ type: 'broadcast', event: 'move', payload: { x: 1, y: 'ü' } });
  });

  it('receives httpSend messages from the single REST endpoint', async () => {
    const listener = subscribe((await client(hub.teacherToken)).channel(hub.topic, { config: { private: true } }));
    expect((await listener.status).status).toBe('SUBSCRIBED');
    const service = (await client(hub.serviceRoleKey)).channel(hub.topic, { config: { private: true } });
    const sent = await service.httpSend('cell', { seq: 9 });
    expect(sent.success).toBe(true);
    expect(await listener.next()).toEqual({ type: 'broadcast', event: 'cell', payload: { seq: 9 } });
  });
});
