export * from './types.js';
export {
  applyBroadcast,
  applySnapshot,
  assignmentIdOf,
  cellKey,
  channelName,
  emptyMatrix,
  getCell,
  hasChannel,
  parseCell,
  start,
  type Step,
} from './reducer.js';
export {
  AlreadySubscribedError,
  isPermanentRefetchError,
  isPermanentRefusal,
  PERMANENT_JOIN_ERRORS,
  PERMANENT_REFETCH_CODES,
  refetchErrorCode,
  refusalReason,
  subscribeAssignmentResults,
  type AssignmentRef,
  type AssignmentSubscription,
  type Handlers,
  type Options,
  type RealtimeHost,
} from './subscribe.js';
