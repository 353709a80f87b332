// Delivers one event to one channel, durably: the activity is retried with exponential
// backoff (on the server, so a receiver down for hours costs no history) until it answers
// 2xx or the retry budget (24 h by default) is spent. The workflow id is the event's
// idempotency key and the channel (domain/notifications.ts), so an event announced twice
// is delivered once.
import { proxyActivities } from '@temporalio/workflow';
import type { DeliveryInput, NotificationActivities } from '../activities/types.js';
import { FAILURE } from '../domain/failures.js';
import { controlTaskQueue } from './messages.js';

export async function notificationDeliveryWorkflow(input: DeliveryInput): Promise<{ httpStatus: number }> {
  const { deliverNotification } = proxyActivities<NotificationActivities>({
    taskQueue: controlTaskQueue(input.installation),
    // One attempt: the request itself times out sooner (activities/notify.ts).
    startToCloseTimeout: '1m',
    scheduleToCloseTimeout: input.retry.giveUpAfterMs,
    retry: {
      initialInterval: input.retry.initialIntervalMs,
      backoffCoefficient: 2,
      maximumInterval: input.retry.maximumIntervalMs,
      // A deleted channel has nobody left to tell.
      nonRetryableErrorTypes: [FAILURE.notFound],
    },
  });
  return deliverNotification(input);
}
