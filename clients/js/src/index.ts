export * from './types.js';
export {
  applyBroadcast,
  applySnapshot,
  assignmentIdOf,
  cellKey,
  channelName,
  emptyMatrix,
  getCell,
  parseCell,
  start,
  type Step,
} from './reducer.js';
export {
  subscribeAssignmentResults,
  type AssignmentRef,
  type AssignmentSubscription,
  type Handlers,
  type Options,
  type RealtimeHost,
} from './subscribe.js';
