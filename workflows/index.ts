// The workflow bundle's entry: every workflow type the worker registers.
export { trainingProcessWorkflow } from './training-process.js';
export { probeMachineWorkflow } from './probe-machine.js';
export { fetchHostKeyWorkflow } from './fetch-host-key.js';
export { notificationDeliveryWorkflow } from './notification-delivery.js';
export { stopTrainersWorkflow } from './stop-trainers.js';
