/**
 * useAssignmentResults: the React binding of subscribeAssignmentResults.
 *
 *   const { matrix, status, refetching, deniedBy } = useAssignmentResults(supabase,
 *     { groupId, lessonId },
 *     { refetch: readResults, enabled: process.env.NEXT_PUBLIC_RESULTS_REALTIME_ENABLED !== 'false' });
 *
 * `deniedBy` is what made the status `denied` (the join's refusal or the refetch's error), so the
 * page can say why.
 */
import { useEffect, useMemo, useRef, useState } from 'react';

import { emptyMatrix } from './reducer.js';
import { type RealtimeHost, subscribeAssignmentResults } from './subscribe.js';
import type { ConnectionStatus, MatrixState, Refetch } from './types.js';

export interface UseAssignmentResultsOptions {
  refetch: Refetch;
  enabled?: boolean;
  pollIntervalMs?: number;
  /** Upper bound of the backoff between channel re-creations and refetch retries (default 10 s). */
  maxBackoffMs?: number;
  onError?: (error: unknown) => void;
}

export interface AssignmentResultsView {
  matrix: MatrixState;
  status: ConnectionStatus;
  refetching: boolean;
  /** While status is 'denied': the refusal (a join error, or a refetch error with its code). */
  deniedBy: unknown;
}

export function useAssignmentResults(
  supabase: RealtimeHost,
  { groupId, lessonId }: { groupId: string; lessonId: string },
  options: UseAssignmentResultsOptions,
): AssignmentResultsView {
  const [matrix, setMatrix] = useState<MatrixState>(() => emptyMatrix(groupId, lessonId));
  const [status, setStatus] = useState<ConnectionStatus>('connecting');
  const [refetching, setRefetching] = useState(false);
  const [deniedBy, setDeniedBy] = useState<unknown>(null);
  // The latest callbacks without resubscribing when the caller passes new closures.
  const latest = useRef(options);
  latest.current = options;
  const { enabled = true, pollIntervalMs, maxBackoffMs } = options;

  useEffect(() => {
    setMatrix(emptyMatrix(groupId, lessonId));
    setDeniedBy(null);
    setRefetching(false); // a refetch of the previous assignment ended with its subscription
    const subscription = subscribeAssignmentResults(
      supabase,
      { groupId, lessonId },
      {
        refetch: (args) => latest.current.refetch(args),
        onChange: setMatrix,
        onStatus: (next, error) => {
          setStatus(next);
          setDeniedBy(next === 'denied' ? (error ?? null) : null);
        },
        onRefetching: (active) => setRefetching(active),
        onError: (error) => latest.current.onError?.(error),
      },
      { enabled, pollIntervalMs, maxBackoffMs },
    );
    return () => {
      void subscription.unsubscribe();
    };
  }, [supabase, groupId, lessonId, enabled, pollIntervalMs, maxBackoffMs]);

  // Until the effect has run for new props, the state is still the previous assignment's: never
  // show one group's marks under another's header, not even for one render.
  const blank = useMemo(() => emptyMatrix(groupId, lessonId), [groupId, lessonId]);
  if (matrix.groupId !== groupId || matrix.lessonId !== lessonId) {
    return { matrix: blank, status: enabled ? 'connecting' : 'polling', refetching: false, deniedBy: null };
  }
  return { matrix, status, refetching, deniedBy };
}
