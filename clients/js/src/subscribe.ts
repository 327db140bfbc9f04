/**
 * subscribeAssignmentResults: keeps a results matrix current from the private channel
 * `assignment_results:{groupId}:{lessonId}`, framework-agnostic.
 *
 * Subscribes first, then loads the matrix through the injected `refetch` (so nothing published in
 * between is lost); patches cells from broadcasts; refetches what a result_refresh names and the
 * whole assignment once per gap; refetches after every rejoin (messages may have been missed while
 * away); recreates the channel with backoff when it is closed or times out. A join the channel's
 * policy refuses (`Unauthorized`) is not retried: the status becomes `denied` and the channel is
 * removed (the Python client, daemon/client/subscription.py, does the same; shared case table
 * test/fixtures/join-refusals.json). So is a refetch the database refuses for good (not a teacher,
 * the lesson not assigned, the function missing: the error's `code`, test/fixtures/
 * refetch-errors.json): the status becomes `denied` and nothing more is read. With `enabled: false` (the RESULTS_REALTIME_ENABLED switch)
 * it does not subscribe and polls `refetch` instead, and so for a group id with `:`, which has no
 * channel.
 */
import type { RealtimeChannel, SupabaseClient } from '@supabase/supabase-js';

import {
  applyBroadcast,
  applySnapshot,
  channelName,
  emptyMatrix,
  hasChannel,
  start,
} from './reducer.js';
import type { ConnectionStatus, MatrixState, Refetch, RefetchRequest } from './types.js';

/** The part of a SupabaseClient this module uses (any supabase-js v2 client fits). */
export type RealtimeHost = Pick<SupabaseClient, 'channel' | 'removeChannel' | 'realtime'>;

export interface AssignmentRef {
  groupId: string;
  lessonId: string;
}

export interface Handlers {
  /** Runs read_assignment_results for a scope on the server (e.g. a Next.js server action). */
  refetch: Refetch;
  /** Every new matrix state (render it). */
  onChange?: (state: MatrixState) => void;
  /** Connection lifecycle: connecting, subscribed, reconnecting, polling, denied, closed. */
  onStatus?: (status: ConnectionStatus, error?: unknown) => void;
  /** True while at least one refetch runs (show a short "refreshing" notice). */
  onRefetching?: (active: boolean, request: RefetchRequest) => void;
  /** A refetch or channel error (retried, except a denied join or refetch; for logging). */
  onError?: (error: unknown) => void;
}

export interface Options {
  /** The feature flag: false means no subscription, poll `refetch` every pollIntervalMs. */
  enabled?: boolean;
  pollIntervalMs?: number;
  /** Upper bound of the backoff between channel re-creations and refetch retries. */
  maxBackoffMs?: number;
}

export interface AssignmentSubscription {
  getState(): MatrixState;
  getStatus(): ConnectionStatus;
  /** Leaves the channel (or stops polling); no handler is called afterwards. */
  unsubscribe(): Promise<void>;
}

/**
 * Join refusals a retry cannot cure: Realtime's RLS read check said no for this user. Every other
 * refusal (rate limits, an unreachable project database, an expired token that a session refresh
 * replaces, a timeout) is transient and retried.
 */
export const PERMANENT_JOIN_ERRORS: ReadonlySet<string> = new Set(['Unauthorized']);

/** The `reason` of a join error reply (supabase-js puts the reply in the error's `cause`). */
export function refusalReason(error: unknown): string | null {
  if (!(error instanceof Error)) return null;
  const cause: unknown = error.cause;
  if (typeof cause === 'object' && cause !== null) {
    const reason = (cause as { reason?: unknown }).reason;
    if (typeof reason === 'string') return reason;
  }
  return null;
}

/** True for a join refusal a retry cannot cure (`<Code>: <message>`, the code decides). */
export function isPermanentRefusal(reason: string): boolean {
  const code = reason.split(':', 1)[0].trim();
  return PERMANENT_JOIN_ERRORS.has(code);
}

/**
 * Refetch errors a retry cannot cure, by their `code`: PostgreSQL's SQLSTATE as supabase.rpc
 * reports it (insufficient_privilege: not a teacher of the group; no_data_found: the lesson is not
 * assigned; undefined_function: the database is not migrated) and PostgREST's own for a function
 * it does not know. Every other error (a timeout, a lost connection, an error without a code) is
 * retried with backoff.
 */
export const PERMANENT_REFETCH_CODES: ReadonlySet<string> = new Set([
  '42501',
  'P0002',
  '42883',
  'PGRST202',
]);

/** The `code` a refetch error carries (a PostgrestError, or any object with a string code). */
export function refetchErrorCode(error: unknown): string | null {
  if (typeof error !== 'object' || error === null) return null;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : null;
}

/** True for a refetch error a retry cannot cure. */
export function isPermanentRefetchError(error: unknown): boolean {
  const code = refetchErrorCode(error);
  return code !== null && PERMANENT_REFETCH_CODES.has(code);
}

/**
 * The channels this module's live subscriptions hold, per Supabase client. supabase-js gives a
 * second `channel()` of a topic the first one's object, whose `subscribe()` then never answers: a
 * second subscription to one assignment on one client would wait in 'connecting' for ever.
 */
const channelsInUse = new WeakMap<RealtimeHost, Set<string>>();

/** Why a second subscription to the same assignment on the same client is refused. */
export class AlreadySubscribedError extends Error {
  constructor(readonly channel: string) {
    super(
      `already subscribed to ${channel} with this Supabase client: one subscription per ` +
        'assignment and client; share its state between components (e.g. React context)',
    );
    this.name = 'AlreadySubscribedError';
  }
}

const sameRequest = (a: RefetchRequest, b: RefetchRequest): boolean =>
  a.scope === b.scope && a.pupilId === b.pupilId && a.activityId === b.activityId;

export function subscribeAssignmentResults(
  supabase: RealtimeHost,
  assignment: AssignmentRef,
  handlers: Handlers,
  options: Options = {},
): AssignmentSubscription {
  const { groupId, lessonId } = assignment;
  const enabled = (options.enabled ?? true) && hasChannel(groupId);
  const pollIntervalMs = options.pollIntervalMs ?? 5000;
  const maxBackoffMs = options.maxBackoffMs ?? 10000;

  let state = emptyMatrix(groupId, lessonId);
  let status: ConnectionStatus = enabled ? 'connecting' : 'polling';
  let stopped = false;
  /** A refetch was refused for good: nothing more is read or scheduled. */
  let denied = false;
  let channel: RealtimeChannel | null = null;
  let everSubscribed = false;
  let channelAttempt = 0;
  const inFlight: RefetchRequest[] = [];
  /** Requests to run again when their in-flight read ends: it may predate a reconnect. */
  const rerun: RefetchRequest[] = [];
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const topic = channelName(groupId, lessonId);
  let holdsTopic = false;
  /** Lets another subscription of this client have the topic: this one ends or gives up. */
  const releaseTopic = (): void => {
    if (holdsTopic) channelsInUse.get(supabase)?.delete(topic);
    holdsTopic = false;
  };

  const later = (ms: number, fn: () => void): void => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      if (!stopped && !denied) fn();
    }, ms);
    timers.add(timer);
  };
  const backoff = (attempt: number): number =>
    Math.min(maxBackoffMs, 250 * 2 ** Math.min(attempt, 10)) * (0.5 + Math.random() / 2);

  const setStatus = (next: ConnectionStatus, error?: unknown): void => {
    status = next;
    handlers.onStatus?.(next, error);
  };
  const commit = (next: MatrixState, effects: RefetchRequest[]): void => {
    const changed = next !== state;
    state = next;
    if (changed) handlers.onChange?.(state);
    for (const request of effects) void runRefetch(request, 0);
  };

  async function runRefetch(request: RefetchRequest, attempt: number): Promise<void> {
    if (stopped || denied) return;
    if (inFlight.some((r) => sameRequest(r, request))) {
      // Nor may a rejoin or a refresh be served by a read that started before it: that read may
      // predate the disconnect or the refresh's change. Once it ends, one more runs.
      if (!rerun.some((r) => sameRequest(r, request))) rerun.push(request);
      return;
    }
    inFlight.push(request);
    if (inFlight.length === 1) handlers.onRefetching?.(true, request);
    try {
      const snapshot = await handlers.refetch({
        groupId,
        lessonId,
        pupilId: request.pupilId,
        activityId: request.activityId,
      });
      if (stopped) return;
      remove(request);
      const [next, effects] = applySnapshot(state, snapshot, request);
      commit(next, effects);
      const again = rerun.findIndex((r) => sameRequest(r, request));
      if (again >= 0) void runRefetch(rerun.splice(again, 1)[0], 0);
    } catch (error) {
      remove(request);
      if (stopped || denied) return;
      if (isPermanentRefetchError(error)) {
        deny(error);
        handlers.onError?.(error);
        return;
      }
      handlers.onError?.(error);
      later(backoff(attempt), () => void runRefetch(request, attempt + 1));
    } finally {
      if (!stopped && inFlight.length === 0) handlers.onRefetching?.(false, request);
    }
  }
  /** A refetch refused for good: the channel goes, polling and retries end, the status says why. */
  function deny(error: unknown): void {
    denied = true;
    releaseTopic();
    for (const timer of timers) clearTimeout(timer);
    timers.clear();
    rerun.length = 0;
    const current = channel;
    channel = null;
    if (current) void supabase.removeChannel(current);
    setStatus('denied', error);
  }
  function remove(request: RefetchRequest): void {
    const index = inFlight.indexOf(request);
    if (index >= 0) inFlight.splice(index, 1);
  }

  function reload(reason: string): void {
    const [next, effects] = start(state, reason);
    if (effects.length === 0) {
      // An assignment refetch is already pending: make sure one runs (again, after a rejoin).
      void runRefetch({ scope: 'assignment', reason, pupilId: null, activityId: null }, 0);
      return;
    }
    commit(next, effects);
  }

  async function openChannel(): Promise<void> {
    if (stopped || denied) return;
    // Private channels need the user's JWT on the socket before the join.
    await supabase.realtime.setAuth();
    if (stopped || denied) return;
    const current = supabase.channel(topic, {
      config: { private: true, broadcast: { self: false, ack: false } },
    });
    channel = current;
    current.on('broadcast', { event: '*' }, (message: { event: string; payload?: unknown }) => {
      if (stopped || channel !== current) return;
      const [next, effects] = applyBroadcast(state, message.event, message.payload ?? {});
      commit(next, effects);
    });
    current.subscribe((subscribeStatus, error) => {
      if (stopped || channel !== current) return;
      switch (subscribeStatus) {
        case 'SUBSCRIBED':
          channelAttempt = 0;
          setStatus('subscribed');
          // First join: the initial load. A rejoin: messages may have been missed meanwhile.
          reload(everSubscribed ? 'rejoined' : 'initial');
          everSubscribed = true;
          break;
        case 'CHANNEL_ERROR': {
          const reason = refusalReason(error);
          if (reason !== null && isPermanentRefusal(reason)) {
            // Removing the channel stops supabase-js from rejoining it: no retry, by design.
            channel = null;
            releaseTopic();
            void supabase.removeChannel(current);
            setStatus('denied', error);
            handlers.onError?.(error);
            break;
          }
          // supabase-js rejoins an errored channel by itself (and after a dropped socket).
          setStatus('reconnecting', error);
          handlers.onError?.(error);
          break;
        }
        case 'CLOSED':
        case 'TIMED_OUT':
          setStatus('reconnecting', error);
          channel = null;
          void supabase.removeChannel(current);
          later(backoff(channelAttempt++), () => void openChannel().catch(onChannelFailure));
          break;
      }
    });
  }
  function onChannelFailure(error: unknown): void {
    if (stopped || denied) return; // a channel still opening when the refetch was refused
    handlers.onError?.(error);
    setStatus('reconnecting', error);
    later(backoff(channelAttempt++), () => void openChannel().catch(onChannelFailure));
  }

  function poll(): void {
    reload('poll');
    later(pollIntervalMs, poll);
  }

  handlers.onStatus?.(status);
  const inUse = channelsInUse.get(supabase) ?? new Set<string>();
  channelsInUse.set(supabase, inUse);
  if (enabled && inUse.has(topic)) {
    denied = true;
    const error = new AlreadySubscribedError(topic);
    setStatus('denied', error);
    handlers.onError?.(error);
  } else if (enabled) {
    inUse.add(topic);
    holdsTopic = true;
    void openChannel().catch(onChannelFailure);
  } else {
    poll();
  }

  return {
    getState: () => state,
    getStatus: () => status,
    async unsubscribe() {
      if (stopped) return;
      stopped = true;
      releaseTopic();
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      const current = channel;
      channel = null;
      status = 'closed';
      if (current) await supabase.removeChannel(current);
    },
  };
}
