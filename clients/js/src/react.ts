/**
 * useAssignmentResults: the React binding of subscribeAssignmentResults.
 *
 *   const { matrix, status, refetching } = useAssignmentResults(supabase, { groupId, lessonId },
 *     { refetch: readAssignmentResultsAction, enabled: process.env.NEXT_PUBLIC_RESULTS_REALTIME_ENABLED !== 'false' });
 */
import { useEffect, useRef, useState } from 'react';

import { emptyMatrix } from './reducer.js';
import { type RealtimeHost, subscribeAssignmentResults } from './subscribe.js';
import type { ConnectionStatus, MatrixState, Refetch } from './types.js';

export interface UseAssignmentResultsOptions {
  refetch: Refetch;
  enabled?: boolean;
  pollIntervalMs?: number;
  onError?: (error: unknown) => void;
}

export interface AssignmentResultsView {
  matrix: MatrixState;
  status: ConnectionStatus;
  refetching: boolean;
}

export function useAssignmentResults(
  supabase: RealtimeHost,
  { groupId, lessonId }: { groupId: string; lessonId: string },
  options: UseAssignmentResultsOptions,
): AssignmentResultsView {
  const [matrix, setMatrix] = useState<MatrixState>(() => emptyMatrix(groupId, lessonId));
  const [status, setStatus] = useState<ConnectionStatus>('connecting');
  const [refetching, setRefetching] = useState(false);
  // The latest callbacks without resubscribing when the caller passes new closures.
  const latest = useRef(options);
  latest.current = options;
  const { enabled = true, pollIntervalMs } = options;

  useEffect(() => {
    setMatrix(emptyMatrix(groupId, lessonId));
    const subscription = subscribeAssignmentResults(
      supabase,
      { groupId, lessonId },
      {
        refetch: (args) => latest.current.refetch(args),
        onChange: setMatrix,
        onStatus: (next) => setStatus(next),
        onRefetching: (active) => setRefetching(active),
        onError: (error) => latest.current.onError?.(error),
      },
      { enabled, pollIntervalMs },
    );
    return () => {
      void subscription.unsubscribe();
    };
  }, [supabase, groupId, lessonId, enabled, pollIntervalMs]);

  return { matrix, status, refetching };
}
