/**
 * The assignment_results channel contract (docs/PAYLOAD.md), as TypeScript types.
 * Field names are the wire names: what the daemon broadcasts and read_assignment_results returns.
 */

export type Status = 'not_submitted' | 'submitted' | 'ai_marked' | 'teacher_marked';
export type Scope = 'cell' | 'pupil' | 'activity' | 'assignment';
export type Op = 'insert' | 'update' | 'delete';
export type Source = 'pupil' | 'upload' | 'ai' | 'teacher' | 'system';
export type ResultsEvent = 'result_cell' | 'result_cells' | 'result_refresh';

export interface AiInfo {
  model: string | null;
  feedbackAt: string | null;
  hasFeedback: boolean;
}

/** One pupil x activity cell: always the cell's whole current state. */
export interface Cell {
  assignmentId: string;
  groupId: string;
  lessonId: string;
  activityId: string;
  pupilId: string;
  submissionId: string | null;
  op: Op;
  source: Source;
  status: Status;
  score: number | null;
  aiScore: number | null;
  teacherScore: number | null;
  ai: AiInfo | null;
  submittedAt: string | null;
  uploadCount: number;
  hasUpload: boolean;
  needsMarking: boolean;
  changedAt: string;
  eventId: string;
  seq: number;
  prevSeq: number | null;
}

export interface CellsPayload {
  assignmentId: string;
  eventId: string;
  seq: number;
  prevSeq: number | null;
  cells: Cell[];
}

export interface RefreshPayload {
  assignmentId: string;
  groupId: string;
  lessonId: string;
  scope: Scope;
  pupilId: string | null;
  activityId: string | null;
  reason: string;
  eventId: string;
  seq: number;
  prevSeq: number | null;
}

export interface Activity {
  activityId: string;
  title: string;
  kind: string;
  position: number;
}

/** What `read_assignment_results(group_id, lesson_id, pupil_id, activity_id)` returns. */
export interface AssignmentResults {
  assignmentId: string;
  groupId: string;
  lessonId: string;
  seq: number | null;
  activities: Activity[];
  pupilIds: string[];
  cells: Cell[];
}

/** What to refetch, and why. */
export interface RefetchRequest {
  scope: Scope;
  reason: string;
  pupilId: string | null;
  activityId: string | null;
}

export interface Counters {
  received: number;
  applied: number;
  duplicates: number;
  gaps: number;
  refreshes: number;
  ignored: number;
}

/** The matrix a results page renders. Immutable: every change produces a new object. */
export interface MatrixState {
  groupId: string;
  lessonId: string;
  activities: readonly Activity[];
  pupilIds: readonly string[];
  /** Keyed by cellKey(pupilId, activityId). */
  cells: Readonly<Record<string, Cell>>;
  /** The last channel seq applied; null until the first whole-assignment snapshot. */
  lastSeq: number | null;
  /** A detected gap: the next whole-assignment snapshot must reach this seq. */
  requiredSeq: number | null;
  assignmentRefetchPending: boolean;
  loaded: boolean;
  counters: Counters;
}

/** `denied`: the join was refused for good (the channel's policy does not let this user read it);
 * the subscription stopped and does not retry. */
export type ConnectionStatus =
  | 'connecting'
  | 'subscribed'
  | 'reconnecting'
  | 'polling'
  | 'denied'
  | 'closed';

/** The server call that runs read_assignment_results for a scope (e.g. a Next.js server action). */
export type Refetch = (args: {
  groupId: string;
  lessonId: string;
  pupilId: string | null;
  activityId: string | null;
}) => Promise<AssignmentResults>;
